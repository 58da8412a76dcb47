"""Signal bits that can never toggle or that nothing reads, found by Yosys: what `make coverage` excludes from
toggle coverage when the exclusions file asks for it (`constant = true` in a [[code]] entry,
ci/coverage_exclusions.toml).

Yosys reads the top's Verilog (the coverage build's, with source locations), runs `proc; flatten; opt -full;
wreduce; opt -full` and writes the netlist as JSON, where a wire bit is a net number, or a string when Yosys
found it is not a signal:
- "0" or "1": constant propagation reduced the bit to a constant. `opt` only applies equivalence-preserving
  rewrites: constant folding, and flip-flops whose next value equals their initial and reset values (so a
  register loaded only from a constant is one). Such a bit holds its value in every run of every test.
- "x": `wreduce` removed the bit because no logic reads it (Amaranth's `a << b` is len(a) + 2**len(b) - 1 bits
  wide, a sum one bit wider than its operands, and the code keeps only the low bits): whatever it does, it
  cannot change anything the design does. Amaranth's Verilog has no undefined values of its own (every signal
  has an initial value, `opt -full` turns undriven bits into 0), so "x" comes from this removal only.
Verilator still counts two toggle points for every such bit.

Amaranth's expression temporaries are escaped Verilog names starting with `$` (`\\$355`), which Yosys takes for
its own internal names and removes when it optimises. They are renamed `_k$355` for Yosys (a public name it
keeps) and mapped back. Names Yosys dropped anyway (wires left without driver and load) are not reported: their
points stay counted. Results are cached per Verilog text in build/coverage/constant/.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from ci.board import ROOT, tool_env

OUT = ROOT / "build" / "coverage" / "constant"
_TMP = "_k$"

__all__ = ["constant_bits", "point_bit", "verilator_name", "yosys_script"]


def yosys_script(top: str) -> str:
    return "\n".join(["read_verilog design.v", f"hierarchy -top {top}", "proc", "flatten", "opt -full", "wreduce",
                      "opt -full", "write_json design.json", ""])


def _from_netlist(netlist: dict, top: str) -> dict[str, dict[int, str]]:
    """{flattened wire name: {bit index: "0", "1" or "x"}} for every wire with at least one such bit."""
    out: dict[str, dict[int, str]] = {}
    for name, net in netlist["modules"][top]["netnames"].items():
        off = net.get("offset", 0)
        const = {i + off: b for i, b in enumerate(net["bits"]) if b in ("0", "1", "x")}
        if const:
            out[name.replace(_TMP, "$")] = const
    return out


def constant_bits(verilog: Path, top: str) -> dict[str, dict[int, str]]:
    """The constant ("0", "1") and never-read ("x") bits of every wire of `top` in `verilog`, by flattened
    hierarchical name ("hub.array.s1").

    Raises RuntimeError when Yosys fails (its log is in build/coverage/constant/<top>-<hash>/yosys.log)."""
    text = verilog.read_text()
    script = yosys_script(top)
    digest = hashlib.sha256((text + script).encode()).hexdigest()[:12]
    work = OUT / f"{top}-{digest}"
    result = work / "constant.json"
    if result.exists():
        return {k: {int(b): v for b, v in bits.items()} for k, bits in json.loads(result.read_text()).items()}
    work.mkdir(parents=True, exist_ok=True)
    # Escaped names `\$n ` become `\_k$n `: Yosys keeps public names through opt.
    (work / "design.v").write_text(text.replace("\\$", "\\" + _TMP))
    (work / "script.ys").write_text(script)
    env = tool_env()
    proc = subprocess.run([env["YOSYS"], "-q", "-l", "yosys.log", "script.ys"], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise RuntimeError(f"yosys failed on {verilog} (exit {proc.returncode}): see {work / 'yosys.log'}\n"
                           f"{proc.stdout[-2000:]}")
    found = _from_netlist(json.loads((work / "design.json").read_text()), top)
    (work / "design.json").unlink()         # tens of MB; the result is what is kept
    result.write_text(json.dumps(found))
    return found


_HEX = re.compile(r"__0([0-9A-Fa-f]{2})")
_POINT = re.compile(r"(?P<name>.*?)(?:\[(?P<bit>\d+)\])?:(?:0->1|1->0)$")


def verilator_name(mangled: str) -> str:
    """Verilator's encoding of characters outside C identifiers (`__024` for `$`, `__02E` for `.`) undone."""
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), mangled)


def point_bit(hier: str, comment: str) -> tuple[str, int] | None:
    """(flattened wire name, bit) of a Verilator toggle point: hier "pim_device_board.hub.array" and comment
    "s1[93]:0->1" give ("hub.array.s1", 93). None when the comment is not a toggle point's."""
    m = _POINT.match(comment)
    if not m:
        return None
    scope = hier.split(".", 1)[1] if "." in hier else ""
    name = verilator_name(m.group("name"))
    return (f"{scope}.{name}" if scope else name), int(m.group("bit") or 0)
