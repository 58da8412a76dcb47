"""Run the sim server: `python -m tb.sim_server --preset sim --link uart|uart-bytes|uart-phy|pcie [--port N]`.

Builds the device's Verilator model once (build/models/<top>-<RTL hash>, shared with the testbenches), then
serves one client on 127.0.0.1 and exits when it leaves (in any state of the device), when it stays idle for
--idle seconds, when none comes within --accept seconds, or at the --deadline. Prints
`PIM-SIM listening <link> 127.0.0.1:<port>` and, with --ready-file, writes the same as JSON.

--idle (default 30 s): the server's clients are drivers, which are never quiet for long while connected: they
poll STATUS (at most 50 ms apart) while the device works, and the idle clock stands still while an answer is
owed to them. A client that has hung or been stopped with the connection open would otherwise keep a core
busy until the deadline (an hour); 30 s frees it soon and is still far beyond any pause of a working driver.
0 disables the limit (interactive sessions, a debugger).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pimhil.sim_launch import LINKS
from tb.support import runner


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tb.sim_server", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="sim", choices=["sim", "board"])
    ap.add_argument("--link", default="uart", choices=LINKS)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--deadline", type=float, default=3600.0, help="wall-clock seconds before the server exits")
    ap.add_argument("--accept", type=float, default=120.0, help="seconds to wait for a client")
    ap.add_argument("--idle", type=float, default=30.0,
                    help="seconds a connected client may send nothing (with no answer owed) before the server "
                         "exits; 0: no limit")
    ap.add_argument("--baud-div", type=int, default=16,
                    help="uart-phy: the device's first divisor, clock cycles per bit (0: its reset divisor)")
    ap.add_argument("--line-max-baud", type=float, default=0,
                    help="uart-phy: above this host rate the simulated line runs 12%% slow (garbled); 0: none")
    ap.add_argument("--ready-file", help="write {host, port, link, preset, pid} as JSON here once listening")
    ap.add_argument("--log", help="simulator output goes here instead of the console")
    ap.add_argument("--build-only", action="store_true", help="build the model and exit")
    a = ap.parse_args(argv)

    top = f"pim_device_{a.preset}"
    src = runner.ROOT / "rtl" / f"{top}.v"
    if not src.exists():
        print(f"{src} is missing: run `make rtl` first", file=sys.stderr)
        return 2
    build_dir = runner.model_dir(top, [src])
    log = Path(a.log) if a.log else None
    r = runner.build(toplevel=top, sources=[src], build_dir=build_dir, log_file=log)
    if a.build_only:
        print(build_dir)
        return 0
    run_dir = runner.ROOT / "build" / "sim_server" / f"{a.link}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {"PIM_PRESET": a.preset, "PIM_SIM_LINK": a.link, "PIM_SIM_PORT": str(a.port),
           "PIM_SIM_DEADLINE_S": str(a.deadline), "PIM_SIM_ACCEPT_S": str(a.accept),
           "PIM_SIM_IDLE_S": str(a.idle),
           "PIM_SIM_BAUD_DIV": str(a.baud_div), "PIM_SIM_LINE_MAX_BAUD": str(a.line_max_baud),
           "PIM_SIM_READY_FILE": a.ready_file or "",
           "PYTHONPATH": os.pathsep.join([str(runner.ROOT), str(runner.ROOT / "host"),
                                          os.environ.get("PYTHONPATH", "")])}
    r.test(hdl_toplevel=top, test_module="tb.sim_server.serve", test_dir=run_dir, build_dir=build_dir,
           extra_env=env, log_file=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
