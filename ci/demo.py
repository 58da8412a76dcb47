"""`make demo`, the main job: GEMV and decode-attention tiles through `pimctl` on the simulated device, over
the UART link and over the PCIe path, each compared bit for bit with the golden model.

Each link runs on the device its boards carry: UART on the `board` preset (4 banks x 4 lanes, the ULX3S-85F's
device, `--target sim:board`), PCIe on the `sim` preset (the whole 16 x 16 AiM channel with its 256-bit AXI4
port, `--target sim-pcie`). Why not UART on the full channel: a UART load moves at most a byte per device cycle
(GEMV 512x2048 is 2.4 million cycles), and the 16-bank model runs about 26,000 cycles/s with the driver in the
loop against the board model's 75,000-85,000, so that leg alone would take about 90 s (2026-12-03);
DEMO_UART_TARGET=sim runs it there anyway.

Each run starts its own sim server (each Verilator model is built once, both in parallel, and cached by the
RTL's hash). The two links run side by side (one simulator each, so both cores work), each link's two
workloads one after the other. The verdicts, cycles and MAC utilisation are printed as each run finishes;
every run's JSON goes to build/demo/<link>_<workload>.json, and each link's wall time to
build/demo/summary.json. Exit status is non-zero unless every result is bit-exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "demo"
GEMV = ["gemv", "--m", os.environ.get("DEMO_M", "512"), "--k", os.environ.get("DEMO_K", "2048"), "--seed", "1"]
ATTN = ["attention", "--tokens", os.environ.get("DEMO_T", "512"), "--dim", os.environ.get("DEMO_D", "128"),
        "--seed", "1"]
UART_TARGET = os.environ.get("DEMO_UART_TARGET", "sim:board")
RUNS = [("uart", UART_TARGET, GEMV), ("uart", UART_TARGET, ATTN), ("pcie", "sim-pcie", GEMV),
        ("pcie", "sim-pcie", ATTN)]


def pimctl_json(args) -> tuple[dict, int]:
    """Run `pimctl ... --json` in a fresh process; its JSON result (or an error record) and exit status."""
    p = subprocess.run([sys.executable, "-m", "pimhil.cli", *args, "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                       text=True)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), p.returncode
    except (IndexError, json.JSONDecodeError):
        return {"error": "no JSON result", "stdout": p.stdout}, p.returncode


def presets() -> list[str]:
    """The presets of the runs' sim-server targets (pimhil.sim_launch.sim_target: "sim", "sim-pcie" -> sim;
    "sim:board" -> board); other targets (DEMO_UART_TARGET=uart:/dev/ttyUSB0, golden) need no model."""
    from pimhil.sim_launch import sim_target

    return sorted({sim[1] for _, target, _ in RUNS if (sim := sim_target(target))})


def build_models():
    """Build (or reuse) every model the runs need, in parallel: the sim servers would otherwise build them
    inside a run's deadline."""
    names = presets()
    print(f"demo: building (or reusing) the device models ({', '.join(names)} preset) ...", flush=True)
    t0 = time.monotonic()
    procs = {name: subprocess.Popen([sys.executable, "-m", "tb.sim_server", "--preset", name, "--build-only",
                                     "--log", str(OUT / f"build_{name}.log")], cwd=ROOT, stdout=subprocess.DEVNULL)
             for name in names}
    failed = [name for name, p in procs.items() if p.wait() != 0]
    if failed:
        raise SystemExit(f"demo: building the {', '.join(failed)} model failed (see {OUT}/build_<preset>.log)")
    print(f"demo: models ready in {time.monotonic() - t0:.0f} s", flush=True)


def report(link, target, args, res, status) -> bool:
    """Print one run's verdict block; True if it is bit-exact and pimctl succeeded."""
    print(f"\ndemo: pimctl --target {target} {' '.join(args)}")
    if "error" in res:
        print(f"  FAILED: {res['error']}: {res.get('message', '')}")
        return False
    verdict = "BIT-EXACT" if res["bit_exact"] else f"MISMATCH ({res['mismatches']} values differ)"
    shape = f"{res['m']}x{res['k']}" if args[0] == "gemv" else f"T={res['tokens']} d={res['dim']}"
    print(f"  {args[0].upper()} {shape} over {link.upper()} vs golden model: {verdict}")
    err, specials = res["max_abs_err_vs_f64"], res.get("nonfinite", {})
    err_text = "no finite output" if err is None else f"{err:.3g}"
    if any(specials.values()):
        err_text += f" (NaN/Inf outputs: {specials})"
    print(f"  max |error| vs float64 : {err_text}")
    print(f"  cycles                 : {res['cycles']} (ideal MAC {res['ideal_mac_cycles']}, "
          f"{res['tiles']} tile(s))")
    print(f"  MAC utilisation        : {res['mac_utilization']:.4f}")
    print(f"  wall time              : {res['total_wall_s']:.1f} s (load {res['phases_s']['load_s']:.1f} s)",
          flush=True)
    return bool(res["bit_exact"]) and status == 0


def run_link(link, lock) -> tuple[bool, list, float]:
    """The link's runs one after the other: (all bit-exact, summary rows, wall seconds)."""
    ok, rows, t0 = True, [], time.monotonic()
    for run_link_name, target, args in RUNS:
        if run_link_name != link:
            continue
        name = f"{link}_{args[0]}"
        res, status = pimctl_json(["--target", target, *args])
        res["exit_status"] = status
        (OUT / f"{name}.json").write_text(json.dumps(res, indent=2))
        with lock:
            ok &= report(link, target, args, res, status)
        if "error" not in res:
            rows.append({"run": name, **{k: res[k] for k in ("bit_exact", "cycles", "mac_utilization",
                                                              "total_wall_s")}})
    return ok, rows, time.monotonic() - t0


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    build_models()
    links = list(dict.fromkeys(link for link, _, _ in RUNS))
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=len(links)) as pool:
        done = dict(zip(links, pool.map(lambda link: run_link(link, lock), links)))
    ok = all(d[0] for d in done.values())
    summary = [row for link in links for row in done[link][1]]
    walls = {link: round(done[link][2], 1) for link in links}
    (OUT / "summary.json").write_text(json.dumps({"runs": summary, "link_wall_s": walls}, indent=2))
    print("\ndemo: wall time per link (side by side): "
          + ", ".join(f"{link.upper()} {w:.1f} s" for link, w in walls.items()))
    print(f"demo: {'all results BIT-EXACT' if ok else 'FAILED'} ({OUT})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
