"""`pimctl`: the bench and CI command line for the PIM device.

    pimctl --target sim gemv --m 512 --k 2048 --seed 1 --json
    pimctl --target uart:/dev/ttyUSB0 probe
    pimctl --target xdma:/dev/xdma0 memtest --words 65536

Exit status: 0 on success, 1 on a mismatch (result differs from the golden model, memory test failure),
2 on usage errors, 3 on driver errors (link timeout, link error, device error, device mismatch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from .contract import BANK_BASE, GB_BASE, SCRATCH_BASE, Reg, bank_stride, windows
from .device import Device, RunResult
from .errors import PimError
from .reference import attention_f64, attention_reference, gemv_f64, gemv_reference
from .transport import TARGET_HELP, open_target

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


class Progress:
    """A one-line progress bar on stderr for transfers that take more than a moment; silent when off."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.label, self.t0, self.last = None, 0.0, 0.0

    def __call__(self, label, done, total):
        if not self.enabled:
            return
        now = time.monotonic()
        if label != self.label:
            self.label, self.t0 = label, now
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{label[:24]:24s} [{bar:30s}] {100 * frac:5.1f}% {done}/{total} words")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _rng(seed):
    return np.random.default_rng(seed)


def _result_json(r: RunResult, ref_bits, f64) -> dict:
    exact = bool(np.array_equal(r.bits, ref_bits))
    diff = int(np.count_nonzero(r.bits != ref_bits))
    return {"bit_exact": exact, "mismatches": diff, "max_abs_err_vs_f64": float(np.max(np.abs(r.out - f64))),
            "cycles": r.cycles, "mac_cycles": r.mac_cycles, "ideal_mac_cycles": r.ideal_mac_cycles,
            "mac_utilization": r.utilization, "tiles": r.tiles, "wall_s": round(r.wall_s, 3),
            "elapsed_cycles": r.elapsed_cycles, "run_cycles": r.run_cycles,
            "device_cycles_per_s": r.elapsed_cycles / r.wall_s if r.elapsed_cycles else None,
            "phases_s": {k: round(v, 3) for k, v in r.phases.items()}}


def cmd_probe(dev: Device, a) -> tuple[dict, int]:
    p = dev.params
    return {"params": p.as_dict(), "status": dev.status(), "windows": {w.name: [w.base, w.size]
                                                                      for w in windows(p)}}, EXIT_OK


def cmd_regs(dev: Device, a) -> tuple[dict, int]:
    if a.write:
        for item in a.write:
            name, _, value = item.partition("=")
            dev.write_reg(name, int(value, 0))
    names = a.names or None
    regs = {n: dev.read_reg(n) for n in names} if names else dev.regs()
    return {"regs": regs}, EXIT_OK


def cmd_memtest(dev: Device, a) -> tuple[dict, int]:
    """Random words through bank memory, the GB and scratch, read back and compared."""
    p, rng = dev.params, _rng(a.seed)
    regions = {"scratch": (SCRATCH_BASE, min(a.words, p.scratch_words)),
               "gb": (GB_BASE, p.gb_words // 2),
               "bank0": (BANK_BASE, min(a.words, p.bank_bursts * p.burst_bits // 32)),
               f"bank{p.banks - 1}": (BANK_BASE + (p.banks - 1) * bank_stride(p),
                                      min(a.words, p.bank_bursts * p.burst_bits // 32))}
    out, bad = {}, 0
    for name, (addr, n) in regions.items():
        words = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
        t0 = time.monotonic()
        dev.write_words(addr, words, label=f"memtest {name}")
        back = dev.read_words(addr, n, label=f"verify {name}")
        errors = int(np.count_nonzero(back != words))
        bad += errors
        out[name] = {"words": n, "errors": errors, "wall_s": round(time.monotonic() - t0, 3)}
    return {"memtest": out, "ok": bad == 0}, EXIT_OK if bad == 0 else EXIT_MISMATCH


def cmd_linktest(dev: Device, a) -> tuple[dict, int]:
    """Round trips of the given size, timed, with the link's own statistics."""
    rng = _rng(a.seed)
    n = min(a.words, dev.params.scratch_words)
    t0 = time.monotonic()
    bad = 0
    for _ in range(a.rounds):
        words = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
        dev.write_words(SCRATCH_BASE, words)
        bad += int(np.count_nonzero(dev.read_words(SCRATCH_BASE, n) != words))
    wall = time.monotonic() - t0
    payload = 2 * 4 * n * a.rounds
    link_regs = {r.name: dev.read_reg(r) for r in Reg if r.name.startswith(("UART_", "BUS_"))}
    return {"rounds": a.rounds, "words": n, "errors": bad, "wall_s": round(wall, 3),
            "payload_mb_s": payload / wall / 1e6, "link_stats": dict(dev.t.stats), "device_counters": link_regs,
            "ok": bad == 0}, EXIT_OK if bad == 0 else EXIT_MISMATCH


def cmd_gemv(dev: Device, a) -> tuple[dict, int]:
    rng = _rng(a.seed)
    w = (rng.standard_normal((a.m, a.k)) * a.w_scale).astype(np.float32)
    x = rng.standard_normal(a.k).astype(np.float32)
    r = dev.gemv(w, x)
    ref = gemv_reference(w, x, dev.params)
    res = {"workload": "gemv", "m": a.m, "k": a.k, "seed": a.seed, **_result_json(r, ref, gemv_f64(w, x))}
    if a.save:
        np.savez(a.save, w=w, x=x, y=r.out, y_bits=r.bits, y_golden_bits=ref)
    return res, EXIT_OK if res["bit_exact"] else EXIT_MISMATCH


def cmd_attention(dev: Device, a) -> tuple[dict, int]:
    rng = _rng(a.seed)
    q = rng.standard_normal(a.dim).astype(np.float32)
    k = rng.standard_normal((a.tokens, a.dim)).astype(np.float32)
    v = rng.standard_normal((a.tokens, a.dim)).astype(np.float32)
    r = dev.attention(q, k, v)
    ref = attention_reference(q, k, v, dev.params)
    res = {"workload": "attention", "tokens": a.tokens, "dim": a.dim, "seed": a.seed,
           **_result_json(r, ref, attention_f64(q, k, v))}
    if a.save:
        np.savez(a.save, q=q, k=k, v=v, out=r.out, out_bits=r.bits, out_golden_bits=ref)
    return res, EXIT_OK if res["bit_exact"] else EXIT_MISMATCH


def cmd_bench(dev: Device, a) -> tuple[dict, int]:
    """GEMV and attention at the given sizes, repeated; figures per run and the best."""
    runs = []
    status = EXIT_OK
    for i in range(a.repeat):
        for fn, args in ((cmd_gemv, argparse.Namespace(m=a.m, k=a.k, seed=a.seed + i, w_scale=0.05, save=None)),
                         (cmd_attention, argparse.Namespace(tokens=a.tokens, dim=a.dim, seed=a.seed + i,
                                                            save=None))):
            res, st = fn(dev, args)
            status = max(status, st)
            runs.append(res)
    return {"runs": runs, "all_bit_exact": all(r["bit_exact"] for r in runs)}, status


def _human(name: str, res: dict) -> str:
    if name in ("gemv", "attention"):
        shape = f"{res['m']}x{res['k']}" if name == "gemv" else f"T={res['tokens']} d={res['dim']}"
        lines = [f"{name.upper()} {shape} (seed {res['seed']}) vs golden model: "
                 f"{'BIT-EXACT' if res['bit_exact'] else 'MISMATCH (%d values differ)' % res['mismatches']}",
                 f"  max |error| vs float64 : {res['max_abs_err_vs_f64']:.3g}"]
        if res["cycles"]:
            lines += [f"  cycles                 : {res['cycles']} (ideal MAC {res['ideal_mac_cycles']}, "
                      f"{res['tiles']} tile{'s' if res['tiles'] > 1 else ''})",
                      f"  MAC utilisation        : {res['mac_utilization']:.4f}"]
        lines.append(f"  wall time              : {res['wall_s']:.2f} s {res['phases_s']}")
        return "\n".join(lines)
    return json.dumps(res, indent=2)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pimctl", description="Drive a PIM device: simulation, golden model or board.",
                                 epilog="targets:\n" + TARGET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="golden", help="where the device is (see below); default golden")
    ap.add_argument("--timeout", type=float, default=None, help="link deadline per request, seconds")
    ap.add_argument("--run-timeout", type=float, default=600.0, help="deadline for a queued workload, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--expect", choices=["sim", "board"], help="refuse a device with other parameters")
    # The same options after the subcommand (`pimctl gemv --m 512 --json`); SUPPRESS keeps the top-level value
    # unless they are given there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *args, **kw: _add(*args, parents=[common], **kw)
    sub.add_parser("probe", help="identity and parameters")
    r = sub.add_parser("regs", help="read (and write) registers by name")
    r.add_argument("names", nargs="*", help="register names (all if none)")
    r.add_argument("--write", action="append", metavar="NAME=VALUE", help="write before reading")
    m = sub.add_parser("memtest", help="write random words to every memory window and read them back")
    m.add_argument("--words", type=int, default=4096)
    m.add_argument("--seed", type=int, default=1)
    lt = sub.add_parser("linktest", help="timed scratch round trips and link statistics")
    lt.add_argument("--words", type=int, default=1024)
    lt.add_argument("--rounds", type=int, default=4)
    lt.add_argument("--seed", type=int, default=1)
    g = sub.add_parser("gemv", help="y = W x on the device vs the golden model")
    g.add_argument("--m", type=int, default=512)
    g.add_argument("--k", type=int, default=2048)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--w-scale", type=float, default=0.05, help="standard deviation of W")
    g.add_argument("--save", metavar="FILE.npz", help="store inputs and outputs")
    at = sub.add_parser("attention", help="decode attention for one head vs the golden model")
    at.add_argument("--tokens", type=int, default=512)
    at.add_argument("--dim", type=int, default=128)
    at.add_argument("--seed", type=int, default=1)
    at.add_argument("--save", metavar="FILE.npz", help="store inputs and outputs")
    b = sub.add_parser("bench", help="repeated GEMV and attention with figures")
    b.add_argument("--m", type=int, default=512)
    b.add_argument("--k", type=int, default=2048)
    b.add_argument("--tokens", type=int, default=512)
    b.add_argument("--dim", type=int, default=128)
    b.add_argument("--repeat", type=int, default=1)
    b.add_argument("--seed", type=int, default=1)
    return ap


COMMANDS = {"probe": cmd_probe, "regs": cmd_regs, "memtest": cmd_memtest, "linktest": cmd_linktest,
            "gemv": cmd_gemv, "attention": cmd_attention, "bench": cmd_bench}


def main(argv=None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        transport = open_target(a.target, timeout=a.timeout)
    except (ValueError, FileNotFoundError) as e:
        print(f"pimctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except PimError as e:
        return _fail(a, e)
    try:
        with transport:
            from .contract import preset
            dev = Device(transport, expect=preset(a.expect) if a.expect else None, timeout=a.run_timeout,
                         progress=Progress(not a.no_progress and not a.json))
            res, status = COMMANDS[a.cmd](dev, a)
    except ValueError as e:
        print(f"pimctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except PimError as e:
        return _fail(a, e)
    res = {"target": a.target, "command": a.cmd, **res, "total_wall_s": round(time.monotonic() - t0, 3)}
    print(json.dumps(res) if a.json else _human(a.cmd, res))
    return status


def _fail(a, e: PimError) -> int:
    err = {"target": a.target, "command": a.cmd, "error": type(e).__name__, "message": str(e)}
    for attr in ("code", "op", "addr"):
        if getattr(e, attr, None) is not None:
            err[attr] = getattr(e, attr)
    if a.json:
        print(json.dumps(err))
    print(f"pimctl: {type(e).__name__}: {e}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
