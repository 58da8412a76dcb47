"""Generate Verilog for the top levels of both presets into rtl/ (run by `make rtl`; `--preset` for one).

Each file starts with a header that says it is generated and from what, and a JSON manifest of the top's
ports sits beside it; tests compare the Verilog parsed by pyverilog against that manifest and check that a
fresh generation reproduces the committed files byte for byte.
"""

import argparse
import os
import re
from concurrent.futures import ProcessPoolExecutor
import json
import sys
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Value

from pimhil.contract import CONTRACT_VERSION, PRESETS

from .bank_array import BankArray
from .device import Device
from .sim_device import SimDevice

HEADER = """\
// GENERATED FILE - DO NOT EDIT.
// Produced by `make rtl` (python -m hw.generate) from the Amaranth sources in hw/.
// Top: {top}; preset {preset}: {params}; contract version {version}.
// All-zero memory initialisers are omitted: bank memory and the GB, like DRAM, have no reset value.
"""

_ZERO_INIT = re.compile(r"^  initial begin\n(?:    [\\\w.$]+ ?\[\d+\] = \d+'h0+;\n)+  end\n", re.MULTILINE)


def strip_zero_memory_init(text: str) -> str:
    """Drop `initial` blocks that only set memory words to zero (tens of thousands of lines for the sim
    preset, which Verilator would otherwise compile into C++ one assignment at a time)."""
    return _ZERO_INIT.sub("", text)


# The preset a board carries: its hardware assembly is generated too, for lint and the no-simulation-logic check
# (the board flow in hw/boards/ builds its own top around the same Device).
HARDWARE_PRESETS = ("board",)


def tops():
    """(top module name, preset name, params, elaboratable factory) for every generated top:
    pim_bank_array_<preset> (the array alone), pim_device_<preset> (the simulation assembly, SimDevice, which
    testbenches and the sim server run) and pim_device_<preset>_hw (the hardware assembly, Device)."""
    for name, params in PRESETS.items():
        yield f"pim_bank_array_{name}", name, params, (lambda params=params: BankArray(params=params))
        yield f"pim_device_{name}", name, params, (lambda params=params: SimDevice(params=params))
        if name in HARDWARE_PRESETS:
            yield f"pim_device_{name}_hw", name, params, (lambda params=params: Device(params=params))


def port_manifest(component):
    # The sync domain's clock and reset are ports of every top besides the signature's members.
    ports = [{"name": "clk", "direction": "input", "width": 1}, {"name": "rst", "direction": "input", "width": 1}]
    for path, member, port in component.signature.flatten(component):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow.name == "In" else "output"
        ports.append({"name": name, "direction": direction, "width": len(Value.cast(port))})
    return ports


def generate(top, preset, params, factory):
    component = factory()
    ports = port_manifest(component)
    text = strip_zero_memory_init(verilog.convert(component, name=top, emit_src=False))
    header = HEADER.format(top=top, preset=preset, params=params.as_dict(), version=CONTRACT_VERSION)
    manifest = {"top": top, "preset": preset, "params": params.as_dict(), "contract_version": CONTRACT_VERSION,
                "ports": ports}
    return header + text, json.dumps(manifest, indent=2) + "\n"


def _generate_one(top, out):
    _, preset, params, factory = next(t for t in tops() if t[0] == top)
    v, manifest = generate(top, preset, params, factory)
    changed = [_write_if_changed(out / f"{top}.v", v), _write_if_changed(out / f"{top}.json", manifest)]
    return f"{'wrote' if any(changed) else 'unchanged'} {out / top}.v ({len(v.splitlines())} lines)"


def _write_if_changed(path: Path, text: str) -> bool:
    """Keep an unchanged file's timestamp, so Verilator models built from it stay up to date."""
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="rtl", help="output directory (default: rtl)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="tops generated in parallel")
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS),
                    help="only this preset's tops (repeatable; default: every preset)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [t[0] for t in tops() if args.preset is None or t[1] in args.preset]
    # Largest first, so the parallel jobs finish together.
    names.sort(key=lambda n: ("sim" not in n, "device" not in n))
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for msg in pool.map(_generate_one, names, [out] * len(names)):
            print(msg, file=sys.stderr)


if __name__ == "__main__":
    main()
