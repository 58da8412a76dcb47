"""`make bench`: benchmark figures, printed and written to build/bench/results.json.

gemv_mac_utilization    ideal MAC cycles M*K/(B*L) over measured cycles, 256x1024 GEMV on the sim-preset array
                        (first MAC issued to last result received; weights and vector preloaded)
verilator_cycles_per_s  simulated cycles per wall second over repeated GEMV compute phases (testbench in loop)
golden_gflops           golden-model GEMV (bit-exact device arithmetic) of the same shape, 2*M*K / time, with the
                        default implementation (numba when the `fast` extra is installed, else numpy);
                        _numpy and _reference: the other two (golden/mac.py gemv impl=), same bits
numpy_f32_gflops        numpy float32 GEMV (W @ x) of the same shape, measured in the same run
golden_speed_ratio      golden_gflops / numpy_f32_gflops
gemv_tile_mac_utilization   512x1024 GEMV tile (the largest single tile with K >= 1024: 2 MiB of banks) through
                        the control hub on the sim-preset device: ideal MAC cycles over PERF_BUSY (command start
                        to last result in scratch)
attention_tile_cycles / attention_mac_utilization   one decode-attention head, d=128, T=512 and T=2048:
                        PERF_BUSY cycles, and the MAC-only ideal 2*T*d/(B*L) over them
uart_write_efficiency / uart_read_efficiency   payload bytes over wire bytes, 256-word frames
demo_wall_s_uart / demo_wall_s_pcie   the demo's GEMV 512x2048 + attention T=512 d=128 through pimctl on a
                        sim-preset server (both links on the 16-bank channel, unlike `make demo`, whose UART leg
                        runs on the board preset), per link, wall seconds (server start, loads and read-back
                        included)
sim_speed_ratio         simulated cycles per wall second while the pimctl GEMV's tiles run with the driver in the
                        loop (PERF_CYCLES advance from before clearing the counters to after reading them, over
                        that wall time, UART link) over raw Verilator speed on the same 256x2048 tile (testbench
                        asleep until `busy` falls); _pcie likewise over PCIe; _whole_call over the whole GEMV
                        (loads and read-back included)
uart_socket_payload_mb_s   pimctl linktest over the sim server's UART socket: payload MB/s both ways
uart_bypass_bytes_per_cycle   payload bytes per device cycle over the UART byte bypass (a byte each way per cycle),
                        16 x 256-word frames: the smaller of uart_bypass_write_bytes_per_cycle (bulk write)
                        and uart_bypass_read_bytes_per_cycle (its read-back); tb/device/test_uart_throughput.py
demo_uart_wall_s / demo_pcie_wall_s   `python -m ci.demo` (what `make demo` runs, its model already built):
                        the wall seconds of each link's runs (their pimctl total_wall_s), and demo_wall_s the
                        whole demo
pcie_load_bytes_per_cycle   payload bytes per device cycle over the PCIe path (sim-pcie server, sim preset): a 1 MiB
                        bulk write into the bank window and its read-back through the XDMA transport, device cycles
                        from PERF_CYCLES read over the BAR around each (both directions together; _write and _read
                        separately); the read-back is checked byte for byte
model_compile_s         Verilator compile of the sim-preset device model (rtl/pim_device_sim.v) from scratch in
                        a temporary build directory, wall seconds
campaign_smoke_golden_cases_per_s   `pimctl campaign run campaigns/smoke.toml --target golden` into a fresh
                        database: cases over wall seconds (process start included)
campaign_smoke_sim_cases_per_s_w1 / _w2   the same spec on sim-pcie, serial and with --workers 2 (Dask
                        LocalCluster, one sim server per worker); campaign_sim_speedup_w2 = w2 / w1
                        (BENCH_CAMPAIGN=0 skips these three runs)

`make bench BASELINE=<git rev>` (`--baseline REV`) measures that revision too, in a git worktree under
build/bench/baseline/<sha>/ with its own build/ (and its own venv unless its requirements.txt and
host/pyproject.toml equal this one's): this file and the testbenches it alone needs (MEASURING) are copied
over it, so both revisions are measured by the same instruments (groups those cannot measure on an older tree
are measured there by that revision's own ci/bench.py, and the side-by-side marks those figures with *); the
baseline runs first, then this revision, and every figure is printed side by side with the ratio this /
baseline (a figure one revision lacks shows as missing). results.json keeps both: this revision's figures at
the top level as without a baseline, the baseline's under "baseline". BENCH_ONLY=group,group runs only those
groups of figures (GROUPS).

A group that fails is recorded under "errors" and the others still run; `make bench` then exits 1 (a
baseline's failures are only reported).

Device figures come back from the testbenches as values: tb/device's `run` returns what the cocotb tests
recorded (tb/support/results.py), and so does tb/bank_array's; the pimctl figures are its --json output. The
shape knobs the testbenches
read (TILE_M, ATTN_T, ...; tb/README.md) are checked against the recorded shapes, because a variable left
set in the shell would override the ones passed here.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from pimhil.contract import preset
from pimhil.golden import bf16_to_bits, gemv
from tb.support.runner import ROOT

OUT = ROOT / "build" / "bench"


def best_time(fn, *, min_time=0.5, min_runs=3):
    """Best wall time of fn() over at least min_runs calls and min_time seconds."""
    times, t_start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - t_start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def array_gemv(repeat):
    from tb.bank_array.test_bank_array import run

    fig = run("sim", testcase="test_gemv", extra_env={"BENCH_REPEAT": str(repeat)},
              log_file=OUT / "array_gemv.log")["array_gemv"]
    assert fig["repeat"] == repeat, f"array GEMV ran {fig['repeat']} times, not {repeat} (BENCH_REPEAT set?)"
    return fig


def gemv_tile(m, k, log_name):
    """The sim-preset device testbench's GEMV tile at m x k: its recorded figures (bit-exact, or it fails)."""
    from tb.device import test_tiles

    fig = test_tiles.run("sim", testcase="test_gemv_tile", extra_env={"TILE_M": str(m), "TILE_K": str(k)},
                         log_file=OUT / log_name)["gemv_tile"]
    assert (fig["m"], fig["k"]) == (m, k), f"GEMV tile ran at {fig['m']}x{fig['k']}, not {m}x{k} (TILE_M/K set?)"
    return fig


def attention_tile(tokens, dim, log_name):
    """The sim-preset device testbench's attention head at T=tokens, d=dim: its recorded figures."""
    from tb.device import test_tiles

    fig = test_tiles.run("sim", testcase="test_attention_tile", extra_env={"ATTN_T": str(tokens), "ATTN_D": str(dim)},
                         log_file=OUT / log_name)["attention_tile"]
    assert (fig["tokens"], fig["dim"]) == (tokens, dim), f"attention ran at T={fig['tokens']} d={fig['dim']}"
    return fig


def device_runs():
    """Tile and link figures from the sim-preset device testbenches (one Verilator model, several runs)."""
    from tb.device import test_links

    gemv = gemv_tile(512, 1024, "device_gemv.log")
    res = {"gemv_tile_mac_utilization": gemv["utilization"], "gemv_tile_cycles": gemv["cycles"]}
    for t in (512, 2048):
        a = attention_tile(t, 128, f"device_attention_{t}.log")
        res[f"attention_tile_cycles_T{t}"] = a["cycles"]
        res[f"attention_mac_utilization_T{t}"] = a["utilization"]
    res.update(test_links.run("sim", testcase="test_uart_efficiency",
                              log_file=OUT / "device_uart.log")["uart_efficiency"])
    return res


def pimctl(name, *args):
    from ci.demo import pimctl_json

    res, status = pimctl_json(args)
    (OUT / "driver").mkdir(exist_ok=True)
    (OUT / "driver" / f"{name}.json").write_text(json.dumps(res, indent=2))
    if status or "error" in res:
        raise RuntimeError(f"pimctl {' '.join(args)} failed: {res}")
    return res


def driver_runs():
    """The driver in the loop: the demo's workloads per link, simulator speed, UART socket throughput."""
    raw = gemv_tile(256, 2048, "device_raw_speed.log")["raw_cycles_per_s"]
    res = {"raw_verilator_cycles_per_s": raw}
    for link, target in (("uart", "sim"), ("pcie", "sim-pcie")):
        g = pimctl(f"{link}_gemv", "--target", target, "gemv", "--m", "512", "--k", "2048", "--seed", "1")
        a = pimctl(f"{link}_attention", "--target", target, "attention", "--tokens", "512", "--dim", "128",
                   "--seed", "1")
        assert g["bit_exact"] and a["bit_exact"], (g, a)
        res[f"demo_wall_s_{link}"] = g["total_wall_s"] + a["total_wall_s"]
        res[f"demo_gemv_wall_s_{link}"] = g["total_wall_s"]
        run_cps = g["run_cycles"] / g["phases_s"]["run_s"]
        suffix = "" if link == "uart" else "_pcie"
        res[f"driver_run_cycles_per_s_{link}"] = run_cps
        res[f"sim_speed_ratio{suffix}"] = run_cps / raw
        res[f"sim_speed_ratio{suffix}_whole_call"] = g["device_cycles_per_s"] / raw
    lt = pimctl("uart_linktest", "--target", "sim", "linktest", "--words", "4096", "--rounds", "4")
    res["uart_socket_payload_mb_s"] = lt["payload_mb_s"]
    return res


def campaign_runs():
    """Campaign throughput: smoke.toml on the golden target, and on sim-pcie with 1 and 2 Dask workers."""
    import tempfile
    spec = str(ROOT / "campaigns" / "smoke.toml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "host")])}
    res = {}
    runs = [("campaign_smoke_golden_cases_per_s", ["--target", "golden"])]
    if os.environ.get("BENCH_CAMPAIGN", "1") == "1":
        runs += [("campaign_smoke_sim_cases_per_s_w1", ["--target", "sim-pcie"]),
                 ("campaign_smoke_sim_cases_per_s_w2", ["--target", "sim-pcie", "--workers", "2"])]
    with tempfile.TemporaryDirectory() as tmp:
        for i, (key, args) in enumerate(runs):
            db = os.path.join(tmp, f"{i}.db")
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "pimhil.cli", "campaign", "run", spec, "--db", db, "--json",
                                *args], capture_output=True, text=True, env=env, check=False)
            wall = time.perf_counter() - t
            out = json.loads(p.stdout)
            if p.returncode or out.get("failed") or out.get("mismatch"):
                raise RuntimeError(f"campaign {' '.join(args)} failed: {p.stdout} {p.stderr[-2000:]}")
            res[key] = out["done"] / wall
    if "campaign_smoke_sim_cases_per_s_w2" in res:
        w1, w2 = res["campaign_smoke_sim_cases_per_s_w1"], res["campaign_smoke_sim_cases_per_s_w2"]
        res["campaign_sim_speedup_w2"] = w2 / w1
    return res


def host_gemv(m, k):
    rng = np.random.default_rng(0)
    w32 = rng.standard_normal((m, k)).astype(np.float32)
    x32 = rng.standard_normal(k).astype(np.float32)
    wb, xb = bf16_to_bits(w32), bf16_to_bits(x32)
    lanes = preset("sim").lanes
    flops = 2.0 * m * k
    gemv(wb, xb, lanes=lanes)           # numba (if installed) compiles or loads its cache outside the timing
    res = {
        "golden_gflops": flops / best_time(lambda: gemv(wb, xb, lanes=lanes)) / 1e9,
        "golden_gflops_numpy": flops / best_time(lambda: gemv(wb, xb, lanes=lanes, impl="numpy")) / 1e9,
        "golden_gflops_reference": flops / best_time(lambda: gemv(wb, xb, lanes=lanes, impl="reference")) / 1e9,
        "numpy_f32_gflops": flops / best_time(lambda: w32 @ x32, min_time=0.2, min_runs=20) / 1e9,
    }
    res["golden_speed_ratio"] = res["golden_gflops"] / res["numpy_f32_gflops"]
    return res


def uart_bypass_runs():
    """The UART link's payload bytes per device cycle on the byte bypass, sim preset (bulk write, read-back)."""
    from tb.device import test_uart_throughput

    fig = test_uart_throughput.run("sim", log_file=OUT / "device_uart_bypass.log")["uart_bypass"]
    return {k: v for k, v in fig.items() if k.startswith("uart_bypass_")}


def demo_runs():
    """`python -m ci.demo` as `make demo` runs it: wall seconds per link (its runs' total_wall_s) and in all."""
    demo_dir = ROOT / "build" / "demo"
    for old in demo_dir.glob("*.json"):
        old.unlink()                        # a run that fails to write its JSON must not pass with an old one
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "ci.demo"], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    (OUT / "demo.log").write_text(p.stdout + p.stderr)
    if p.returncode:
        raise RuntimeError(f"ci.demo exited {p.returncode} (build/bench/demo.log)")
    res = {"demo_wall_s": wall}
    for link in ("uart", "pcie"):
        runs = [json.loads(f.read_text()) for f in sorted(demo_dir.glob(f"{link}_*.json"))]
        if not runs:
            raise RuntimeError(f"ci.demo wrote no {link} results in {demo_dir}")
        res[f"demo_{link}_wall_s"] = sum(r["total_wall_s"] for r in runs)
    return res


def model_compile():
    """Wall seconds of a from-scratch Verilator build of the sim-preset device model in a temporary directory."""
    from tb.support import runner

    top = "pim_device_sim"
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as tmp:
        t = time.perf_counter()
        runner.build(toplevel=top, sources=[ROOT / "rtl" / f"{top}.v"], build_dir=Path(tmp),
                     log_file=OUT / "model_compile.log")
        return {"model_compile_s": time.perf_counter() - t}


def pcie_load(nbytes=1 << 20):
    """Bulk write and read-back over the PCIe path (a sim-pcie server): payload bytes per PERF_CYCLES cycle."""
    from pimhil.contract import CSR_BASE, Reg, bank_address
    from pimhil.sim_launch import SimServer
    from pimhil.transport.sim_pcie import SimPcieTransport

    p = preset("sim")
    words = np.random.default_rng(7).integers(0, 1 << 32, nbytes // 4, dtype=np.uint64).astype(np.uint32)
    addr = bank_address(p, 0, 0)
    with SimServer("pcie", "sim", log=str(OUT / "pcie_load_server.log")) as srv:
        t = SimPcieTransport(f"{srv.host}:{srv.port}")
        try:
            def cycles():
                return t.read(CSR_BASE + Reg.PERF_CYCLES, 1)[0]
            c0 = cycles()
            t.write(addr, words.tolist())
            c1 = cycles()
            back = t.read(addr, len(words))
            c2 = cycles()
        finally:
            t.close()
    if not np.array_equal(np.asarray(back, np.uint32), words):
        raise RuntimeError("pcie_load: the read-back differs from what was written")
    cw, cr = (c1 - c0) & 0xFFFFFFFF, (c2 - c1) & 0xFFFFFFFF
    return {"pcie_load_bytes_per_cycle": 2 * nbytes / (cw + cr), "pcie_load_bytes_per_cycle_write": nbytes / cw,
            "pcie_load_bytes_per_cycle_read": nbytes / cr}


ARRAY_SHAPE = (256, 1024)       # the array testbench's GEMV on the sim preset; the golden figures use it too


def _array_runs():
    repeat = int(os.environ.get("BENCH_REPEAT", "30"))
    arr = array_gemv(repeat)
    assert (arr["m"], arr["k"]) == ARRAY_SHAPE, f"array GEMV ran at {arr['m']}x{arr['k']} (GEMV_M/K set?)"
    return {"gemv_mac_utilization": arr["mac_utilization"], "verilator_cycles_per_s": arr["cycles_per_s"],
            "shape": {"m": arr["m"], "k": arr["k"]}, "array_gemv_cycles": arr["cycles"],
            "array_gemv_ideal_cycles": arr["ideal_cycles"], "array_gemv_bit_exact": arr["bit_exact"]}


def _host_runs():
    return host_gemv(*ARRAY_SHAPE)


# Groups of figures, in the order they run: (name, function, environment switch that skips it when "0").
GROUPS = [
    ("array", _array_runs, None),
    ("host", _host_runs, None),
    ("device", device_runs, "BENCH_DEVICE"),
    ("uart_bypass", uart_bypass_runs, "BENCH_DEVICE"),
    ("driver", driver_runs, "BENCH_DRIVER"),
    ("pcie_load", pcie_load, "BENCH_PCIE_LOAD"),
    ("demo", demo_runs, "BENCH_DEMO"),
    ("model_compile", model_compile, "BENCH_COMPILE"),
    ("campaign", campaign_runs, None),
]
# What a baseline worktree gets from this revision before it is measured: this file and the testbenches only it
# needs, so that both revisions are measured the same way (the device, driver and demo are the baseline's own).
MEASURING = ("ci/bench.py", "tb/device/test_uart_throughput.py")


# What a failing group raises: a failed testbench or run (AssertionError, RuntimeError, SubprocessError), a
# figure the run did not produce (KeyError, OSError, ValueError), or, on a baseline, an instrument that needs
# something the older revision lacks (ImportError, TypeError, AttributeError).
GROUP_FAILURES = (AssertionError, RuntimeError, subprocess.SubprocessError, KeyError, OSError, ValueError,
                  ImportError, TypeError, AttributeError)


def measure() -> dict:
    """Every selected group's figures, {"errors": {group: message}} for the ones that failed."""
    only = {g for g in os.environ.get("BENCH_ONLY", "").split(",") if g}
    results, errors = {}, {}
    for name, fn, switch in GROUPS:
        if (only and name not in only) or (switch and os.environ.get(switch, "1") != "1"):
            continue
        t = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            results.update(fn())
        except GROUP_FAILURES as exc:      # recorded and reported; the other groups still run
            errors[name] = f"{type(exc).__name__}: {exc}"
            (OUT / f"error_{name}.log").write_text(traceback.format_exc())
            print(f"bench: {name} FAILED: {errors[name]}", file=sys.stderr, flush=True)
        print(f"bench: {name} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    if errors:
        results["errors"] = errors
    return results


def _git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def baseline_run(rev: str) -> dict:
    """Measure `rev` in its own worktree (build/bench/baseline/<sha>/) with this revision's instruments; its
    results.json content, with the revision named."""
    sha = _git("rev-parse", "--short=12", f"{rev}^{{commit}}")
    tree = OUT / "baseline" / sha
    if not (tree / ".git").exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        _git("worktree", "add", "--detach", str(tree), sha)
    for rel in MEASURING:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tree / rel)
    same_reqs = all((ROOT / f).read_bytes() == (tree / f).read_bytes()
                    for f in ("requirements.txt", "host/pyproject.toml"))
    venv = Path(sys.prefix) if same_reqs else tree / ".venv"
    print(f"bench: baseline {rev} ({sha}) in {tree}, venv {venv}"
          f"{' (shared: same requirements)' if same_reqs else ' (its own: requirements differ)'}",
          file=sys.stderr, flush=True)
    subprocess.run(["make", "--no-print-directory", "-C", str(tree), f"VENV={venv}", "rtl"], check=True,
                   stdout=subprocess.DEVNULL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "host")])}
    p = subprocess.run([str(venv / "bin" / "python"), "-m", "ci.bench"], cwd=tree, env=env, check=False)
    out = tree / "build" / "bench" / "results.json"
    if not out.exists():
        return {"rev": rev, "sha": sha, "errors": {"baseline": f"ci.bench exited {p.returncode}, no results"}}
    res = json.loads(out.read_text())
    if res.get("errors"):
        # Groups this revision's instruments cannot measure there (the older tree lacks a testbench or API they
        # use): run the revision's own ci/bench.py and take the figures it has under the same names.
        own = tree / "ci" / "bench_own.py"
        own.write_text(_git("show", f"{sha}:ci/bench.py"))
        print(f"bench: baseline groups {', '.join(res['errors'])} failed with this revision's instruments; "
              f"running {rev}'s own ci/bench.py for them", file=sys.stderr, flush=True)
        saved = out.read_text()
        out.unlink()
        q = subprocess.run([str(venv / "bin" / "python"), "-m", "ci.bench_own"], cwd=tree, env=env, check=False)
        own_res = json.loads(out.read_text()) if out.exists() else {}
        out.write_text(saved)
        if not own_res:
            res["errors"]["own_bench"] = f"{rev}'s own ci/bench.py exited {q.returncode} without results"
        res = merge_own_figures(res, own_res)
    return {"rev": rev, "sha": sha, **res}


def merge_own_figures(res: dict, own: dict) -> dict:
    """res with the figures only the baseline's own bench produced added (top-level keys res lacks) and listed
    under "own_instrument", so the side-by-side can mark them: same name, that revision's definition."""
    added = sorted(k for k in own if k not in res and k not in ("meta", "errors"))
    return {**res, **{k: own[k] for k in added}, "own_instrument": added} if added else dict(res)


def _flat(d: dict, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        if k in ("meta", "baseline", "errors", "rev", "sha", "own_instrument"):
            continue
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def side_by_side(base: dict, cur: dict) -> str:
    """Every figure of both revisions, one line each, with the ratio this / baseline."""
    b, c = _flat(base), _flat(cur)

    def fmt(v):
        if v is None:
            return "missing"
        return f"{v:.6g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)

    own = tuple(base.get("own_instrument", ()))
    rows = [("figure", f"baseline {base.get('sha', '?')}", f"this {cur['meta']['git']}", "this/baseline")]
    for key in sorted(set(b) | set(c)):
        bv, cv = b.get(key), c.get(key)
        num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (bv, cv))
        mark = " *" if key.split(".")[0] in own else ""      # a nested figure by its top-level key
        rows.append((key + mark, fmt(bv), fmt(cv), f"{cv / bv:.3f}" if num and bv else ""))
    for rev_name, res in (("baseline", base), ("this", cur)):
        for group, msg in res.get("errors", {}).items():
            rows.append((f"[{rev_name} {group} failed]", msg[:60], "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)
    return table + ("\n* measured by the baseline's own ci/bench.py (its definition of the figure)" if own else "")


def main():
    ap = argparse.ArgumentParser(description="benchmarks -> build/bench/results.json")
    ap.add_argument("--baseline", metavar="REV", help="also measure this git revision and print both side by side")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    base = baseline_run(args.baseline) if args.baseline else None
    results = measure()
    results["meta"] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "git": _git("rev-parse", "--short", "HEAD"),
        "verilator_repeats": int(os.environ.get("BENCH_REPEAT", "30")),
    }
    if base is not None:
        results["baseline"] = base
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "baseline"}, indent=2))
    if base is not None:
        print("\n" + side_by_side(base, results))
    print(f"written to {OUT / 'results.json'}", file=sys.stderr)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
