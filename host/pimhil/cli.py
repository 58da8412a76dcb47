"""`pimctl`: the bench and CI command line for the PIM device.

    pimctl --target sim gemv --m 512 --k 2048 --seed 1 --json
    pimctl --target uart:/dev/ttyUSB0 probe
    pimctl --target xdma:/dev/xdma0 memtest --words 65536

Exit status: 0 on success, 1 on a mismatch (result differs from the golden model, memory test failure),
2 on usage errors, 3 on driver errors (link timeout, link error, device error, device mismatch), 130 when
interrupted (Ctrl-C; a sim server the run started is stopped).

UART rate (`uart:` and `sim-phy` targets): pimctl meets the device at the reset rate (contract.UART_RESET_BAUD;
a line break first if it does not answer), then raises the link to the fastest rate both ends make
(pimhil.uart_rate.AUTO_RATES, 3 Mbaud first), verifies it and falls back with a message on stderr
(`uart_rate` in the JSON); at the end it puts both back at the reset rate. `--baud N` asks for exactly N bit/s,
`--baud reset` stays at the reset rate. A --baud that is not auto, reset or a whole number of bit/s, or that
names a non-UART target, is a usage error; so is a rate the device's clock cannot make (after it identified).

Usage errors are found before any work starts: argument values (sizes and counts >= 1, seeds >= 0, positive
finite timeouts, a finite --w-scale, register names, 32-bit register values, the target's syntax and preset,
a writable --save path) before the target is opened; shapes against the parameters the device reports
(gemv: K must fit the banks beside x, layout.gemv_plan; attention: one tile, contract.attn_tile_problem)
right after it identifies itself, before any data is made or loaded. pimctl also makes W on the host and
checks it against the golden model there, so gemv is limited to M * K <= MAX_GEMV_ELEMENTS.

Every error is one line on stderr (`pimctl: ...`). Under --json, stdout carries one JSON object instead of
the result:

    {"target": ..., "command": ..., "error": "UsageError" | "Interrupted" | <driver exception>, "message": ...}

with "code", "op" and "addr" added for driver errors that carry them ("command" is null if the command line
could not be parsed that far).

gemv and attention results (and every run of bench) compare the device's FP32 outputs with the golden model
bit for bit (`bit_exact`, `mismatches`) and with float64 arithmetic on the same BF16 inputs:

    max_abs_err_vs_f64   max |out - f64| over the outputs where both are finite; null if there are none
    nonfinite            {"nan": NaN outputs, "inf": +-Inf outputs,
                          "class_mismatches": outputs whose class (finite, NaN, +Inf, -Inf) is not the f64 one}

No result contains NaN or Infinity: the JSON is strict.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time

import numpy as np

from .contract import (
    BANK_BASE,
    GB_BASE,
    PRESETS,
    SCRATCH_BASE,
    DeviceParams,
    Reg,
    bank_stride,
    preset,
    windows,
)
from .device import Device, RunResult
from .errors import PimError
from .layout import attention_plan, gemv_plan, to_bf16_bits
from .reference import attention_f64, attention_reference, error_stats, gemv_f64, gemv_reference
from .transport import TARGET_HELP, open_target
from . import campaign_cli, uart_rate

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
# W is drawn in float64 row blocks, scaled and kept as float32, then BF16 (padded once for the device, once for
# the golden model); float64 references run in row blocks: about 14 bytes of host memory per element at the
# peak (measured 3.3 GiB at 8192 x 28672, LLaMA3-70B's down_proj), so 2**28 elements take some 3.5 GiB.
MAX_GEMV_ELEMENTS = 1 << 28
# Longest wait the transports can be given: their deadlines end up in thread and socket waits.
MAX_TIMEOUT_S = float(threading.TIMEOUT_MAX)
# Target kinds and their argument forms, read from the one list open_target documents ("sim[:preset]",
# "uart:<pyserial URL>", ...), so that a new kind needs no second edit here.
_TARGET_FORMS = dict(re.findall(r"^\s*([a-z][a-z-]*)(.*?)\s{2,}\S", TARGET_HELP, re.MULTILINE))


class UsageError(Exception):
    """Something on the command line cannot work; reported as one line with exit status 2."""


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
    return {"bit_exact": exact, "mismatches": diff, **error_stats(r.out, f64),
            "cycles": r.cycles, "mac_cycles": r.mac_cycles, "ideal_mac_cycles": r.ideal_mac_cycles,
            "mac_utilization": r.utilization, "tiles": r.tiles, "wall_s": round(r.wall_s, 3),
            "elapsed_cycles": r.elapsed_cycles, "run_cycles": r.run_cycles,
            "device_cycles_per_s": r.elapsed_cycles / r.wall_s if r.elapsed_cycles and r.wall_s else None,
            "phases_s": {k: round(v, 3) for k, v in r.phases.items()}}


def _save(path: str, **arrays) -> None:
    try:
        np.savez(path, **arrays)
    except OSError as e:
        raise UsageError(f"--save: cannot write {path}: {e.strerror or e}") from None


def cmd_probe(dev: Device, a) -> tuple[dict, int]:
    """Identity, STATUS and the address windows."""
    p = dev.params
    return {"params": p.as_dict(), "status": dev.status(), "windows": {w.name: [w.base, w.size]
                                                                      for w in windows(p)}}, EXIT_OK


def cmd_regs(dev: Device, a) -> tuple[dict, int]:
    """Registers by name (all readable ones if none are named), after the --write values are written."""
    for name, value in a.writes:
        dev.write_reg(name, value)
    regs = {n: dev.read_reg(n) for n in a.names} if a.names else dev.regs()
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
            "payload_mb_s": payload / wall / 1e6 if wall else None, "link_stats": dict(dev.t.stats),
            "device_counters": link_regs, "ok": bad == 0}, EXIT_OK if bad == 0 else EXIT_MISMATCH


def cmd_gemv(dev: Device, a) -> tuple[dict, int]:
    """y = W x with random W (standard deviation --w-scale) and x, against the golden model and float64."""
    rng = _rng(a.seed)
    w = np.empty((a.m, a.k), np.float32) if a.save else None
    wb = np.empty((a.m, a.k), np.uint16)
    # W is drawn in float64, scaled, rounded to float32 and then to BF16, the values the device and both
    # references take. Row blocks draw the same numbers as one call (the generator's stream is consumed in C
    # order); blocks of ~1 MiB keep the temporaries in cache, so a large W costs its BF16 bits and little more.
    # A large --w-scale overflows float32 on purpose (Inf inputs): that is the test, not a warning.
    step = max(1, (1 << 17) // a.k)
    f32 = np.empty((step, a.k), np.float32)
    with np.errstate(over="ignore"):
        for r0 in range(0, a.m, step):
            n = min(step, a.m - r0)
            f32[:n] = rng.standard_normal((n, a.k)) * a.w_scale
            wb[r0:r0 + n] = to_bf16_bits(f32[:n])
            if w is not None:
                w[r0:r0 + n] = f32[:n]
    x = rng.standard_normal(a.k).astype(np.float32)
    r = dev.gemv(wb, x)
    ref = gemv_reference(wb, x, dev.params)
    with np.errstate(all="ignore"):     # Inf inputs make NaN and Inf in float64 too; error_stats sorts them
        f64 = gemv_f64(wb, x)
    res = {"workload": "gemv", "m": a.m, "k": a.k, "seed": a.seed, **_result_json(r, ref, f64)}
    if a.save:
        _save(a.save, w=w, x=x, y=r.out, y_bits=r.bits, y_golden_bits=ref)
    return res, EXIT_OK if res["bit_exact"] else EXIT_MISMATCH


def cmd_attention(dev: Device, a) -> tuple[dict, int]:
    """softmax(K q / sqrt(d)) V for --group query heads sharing random K and V (GQA; one head by default),
    split into tiles beyond one tile's tokens, against the golden model and float64."""
    rng = _rng(a.seed)
    group = getattr(a, "group", 1)
    q = rng.standard_normal(a.dim).astype(np.float32)
    k = rng.standard_normal((a.tokens, a.dim)).astype(np.float32)
    v = rng.standard_normal((a.tokens, a.dim)).astype(np.float32)
    qs = q[None]
    if group > 1:       # drawn after K and V, so a group's first head is the one-head run's q
        qs = np.concatenate([qs, rng.standard_normal((group - 1, a.dim)).astype(np.float32)])
    plan = attention_plan(dev.params, a.tokens, a.dim)
    if group == 1 and plan.tiles == 1:
        r = dev.attention(q, k, v)
        ref = attention_reference(q, k, v, dev.params)
    else:
        r = dev.attention_group(qs, k, v)
        ref = np.stack([attention_reference(qg, k, v, dev.params, tile_tokens=plan.tile_tokens) for qg in qs])
    with np.errstate(all="ignore"):
        f64 = np.stack([attention_f64(qg, k, v) for qg in qs]).reshape(r.out.shape)
    res = {"workload": "attention", "tokens": a.tokens, "dim": a.dim, "group": group, "seed": a.seed,
           "tile_tokens": plan.tile_tokens, "tiles_per_head": plan.tiles, "hub_tiles": plan.hub,
           **_result_json(r, ref, f64)}
    if a.save:
        _save(a.save, q=qs if group > 1 else q, k=k, v=v, out=r.out, out_bits=r.bits, out_golden_bits=ref)
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
        shape = (f"{res['m']}x{res['k']}" if name == "gemv" else
                 f"T={res['tokens']} d={res['dim']}" + (f" G={res['group']}" if res.get("group", 1) > 1 else "")
                 + (f" ({res['tiles_per_head']} tiles of {res['tile_tokens']})" if res.get("tiles_per_head", 1) > 1
                    else ""))
        err, nf = res["max_abs_err_vs_f64"], res["nonfinite"]
        verdict = "BIT-EXACT" if res["bit_exact"] else f"MISMATCH ({res['mismatches']} values differ)"
        lines = [f"{name.upper()} {shape} (seed {res['seed']}) vs golden model: {verdict}",
                 f"  max |error| vs float64 : {'n/a (no finite outputs)' if err is None else f'{err:.3g}'}"]
        if any(nf.values()):
            lines.append(f"  non-finite outputs     : {nf['nan']} NaN, {nf['inf']} Inf, "
                         f"{nf['class_mismatches']} of another class than float64's")
        if res["cycles"]:
            tiles = f"{res['tiles']} tile{'s' if res['tiles'] > 1 else ''}"
            lines += [f"  cycles                 : {res['cycles']} (ideal MAC {res['ideal_mac_cycles']}, {tiles})",
                      f"  MAC utilisation        : {res['mac_utilization']:.4f}"]
        lines.append(f"  wall time              : {res['wall_s']:.2f} s {res['phases_s']}")
        return "\n".join(lines)
    return json.dumps(res, indent=2)


# ---- argument checks ---------------------------------------------------------------------------------------
# argparse types raise ArgumentTypeError so that its message, not "invalid _count value", is what is shown.
def _count(text: str) -> int:
    """argparse type: a whole number >= 1 (sizes, rounds, repeats)."""
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return v


def _seed(text: str) -> int:
    """argparse type: a whole number >= 0 (numpy seeds cannot be negative)."""
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return v


def _seconds(text: str) -> float:
    """argparse type: a deadline in seconds, positive and finite (0 or less would fail every request as if
    the device had gone)."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number of seconds, not {text!r}")
    if v > MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TIMEOUT_S:.0f} seconds, not {text!r}")
    return v


def _finite(text: str) -> float:
    """argparse type: a finite number."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return v


def _positive(text: str) -> float:
    """argparse type: a positive finite number."""
    v = _finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return v


# Targets with a UART line whose rate pimctl may change.
_RATE_TARGETS = ("uart", "sim-phy")


def _baud(text: str):
    """argparse type: "auto", "reset" or a rate in bit/s (a whole number >= 1)."""
    if text in ("auto", "reset"):
        return text
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be auto, reset or a whole number of bit/s >= 1, not {text!r}")
    return v


def _reg_name(name: str) -> str:
    """A register name as the contract spells it (case-insensitive), or UsageError."""
    try:
        return Reg[name.upper()].name
    except KeyError:
        raise UsageError(f"no register named {name!r}; registers: {', '.join(r.name for r in Reg)}") from None


def _reg_write(item: str) -> tuple[str, int]:
    """(name, value) from a --write NAME=VALUE item; the value in any int() base prefix, 32 bits unsigned."""
    name, eq, text = item.partition("=")
    if not eq or not name or not text:
        raise UsageError(f"--write {item!r}: expected NAME=VALUE, e.g. CONTROL=0x2")
    name = _reg_name(name.strip())
    try:
        value = int(text.strip(), 0)
    except ValueError:
        raise UsageError(f"--write {item}: {text!r} is not an integer (decimal, 0x.., 0o.. or 0b..)") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(f"--write {item}: registers are 32 bits; the value must be in 0..0xffffffff")
    return name, value


def _check_target(target: str) -> None:
    """The target's kind, preset and argument, as far as they can be checked without opening it."""
    kind, _, rest = target.partition(":")
    form = _TARGET_FORMS.get(kind)
    if form is None:
        raise UsageError(f"unknown target {target!r}; targets: "
                         f"{', '.join(k + f for k, f in _TARGET_FORMS.items())} (pimctl --help)")
    if form.startswith("[:preset]"):
        if rest and rest not in PRESETS:
            raise UsageError(f"target {target!r}: unknown preset {rest!r}; presets: {', '.join(sorted(PRESETS))}")
    elif not rest:
        raise UsageError(f"target {target!r} needs its argument: {kind}{form}")
    if kind == "pcie-sock":
        port = rest.rpartition(":")[2]
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise UsageError(f"target {target!r}: the port must be a number in 1..65535, not {port!r}")


def _writable(path: str) -> str:
    """The file np.savez will write for `path` (it appends .npz to other names), after checking it can be
    written now: a bad path should fail before a long run, not after it."""
    out = path if path.endswith(".npz") else path + ".npz"
    if os.path.isdir(path):
        raise UsageError(f"--save {path}: is a directory; give a file name (FILE.npz)")
    existed = os.path.lexists(out)
    if existed and not os.path.isfile(out):
        raise UsageError(f"--save {path}: {out} exists and is not a regular file")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise UsageError(f"--save {path}: cannot write {out}: {e.strerror or e}") from None
    os.close(fd)
    if not existed:
        os.remove(out)      # no empty file left behind if the run then fails
    return out


def check_args(a) -> None:
    """Every check that needs no device, run before the target is opened. Normalises a.names, a.writes
    (regs) and a.save. Raises UsageError."""
    _check_target(a.target)
    if a.baud is not None and a.target.partition(":")[0] not in _RATE_TARGETS:
        raise UsageError(f"--baud {a.baud}: only uart: and sim-phy targets have a line rate, not {a.target!r}")
    if a.cmd == "regs":
        a.names = [_reg_name(n) for n in a.names]
        a.writes = [_reg_write(item) for item in a.write or ()]
    if getattr(a, "save", None):
        a.save = _writable(a.save)


def check_shapes(p: DeviceParams, a) -> None:
    """Workload shapes against what the device `p` can hold (and what pimctl makes on the host), before any
    data is made or loaded. Raises UsageError with the reason."""
    if a.cmd in ("gemv", "bench"):
        try:
            gemv_plan(p, 1, a.k)    # K alone decides whether x and a weight row fit; M is tiled
        except ValueError as e:
            raise UsageError(f"gemv --m {a.m} --k {a.k}: {e}") from None
        if a.m * a.k > MAX_GEMV_ELEMENTS:
            raise UsageError(f"gemv --m {a.m} --k {a.k}: W would have {a.m * a.k} elements; pimctl makes it and "
                             f"the golden result on the host, up to {MAX_GEMV_ELEMENTS} elements "
                             f"(M <= {MAX_GEMV_ELEMENTS // a.k} for this K)")
    if a.cmd in ("attention", "bench"):
        try:
            attention_plan(p, a.tokens, a.dim)
        except ValueError as e:
            raise UsageError(f"attention --tokens {a.tokens} --dim {a.dim}: {e}") from None


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are raised as UsageError, so that main reports them like every other usage
    error (one line, a JSON object under --json) instead of printing the usage block and exiting."""

    def error(self, message):
        raise UsageError(f"{message} ({self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """pimctl's argument parser; pure argument checks (ranges, finiteness) are its types."""
    ap = _Parser(prog="pimctl", description="Drive a PIM device: simulation, golden model or board.",
                 epilog="targets:\n" + TARGET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="golden", help="where the device is (see below); default golden")
    ap.add_argument("--timeout", type=_seconds, default=None, help="link deadline per request, seconds")
    ap.add_argument("--run-timeout", type=_seconds, default=600.0, help="deadline for a queued workload, seconds")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--expect", choices=["sim", "board"], help="refuse a device with other parameters")
    ap.add_argument("--baud", type=_baud, default=None,
                    help="UART rate after first contact: auto (default: fastest verified), reset, or bit/s")
    # The same options after the subcommand (`pimctl gemv --m 512 --json`); SUPPRESS keeps the top-level value
    # unless they are given there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--no-progress", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--timeout", type=_seconds, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *args, **kw: _add(*args, parents=[common], **kw)
    sub.add_parser("probe", help="identity and parameters")
    r = sub.add_parser("regs", help="read (and write) registers by name")
    r.add_argument("names", nargs="*", help="register names (all if none)")
    r.add_argument("--write", action="append", metavar="NAME=VALUE", help="write before reading (32-bit value)")
    m = sub.add_parser("memtest", help="write random words to every memory window and read them back")
    m.add_argument("--words", type=_count, default=4096, help="words per window at most")
    m.add_argument("--seed", type=_seed, default=1)
    lt = sub.add_parser("linktest", help="timed scratch round trips and link statistics")
    lt.add_argument("--words", type=_count, default=1024, help="words per round trip (at most the scratch size)")
    lt.add_argument("--rounds", type=_count, default=4)
    lt.add_argument("--seed", type=_seed, default=1)
    g = sub.add_parser("gemv", help="y = W x on the device vs the golden model")
    g.add_argument("--m", type=_count, default=512)
    g.add_argument("--k", type=_count, default=2048)
    g.add_argument("--seed", type=_seed, default=1)
    g.add_argument("--w-scale", type=_finite, default=0.05, help="standard deviation of W")
    g.add_argument("--save", metavar="FILE.npz", help="store inputs and outputs")
    at = sub.add_parser("attention", help="decode attention for one head vs the golden model")
    at.add_argument("--tokens", type=_count, default=512)
    at.add_argument("--dim", type=_count, default=128)
    at.add_argument("--group", type=_count, default=1, help="query heads sharing K and V (GQA group)")
    at.add_argument("--seed", type=_seed, default=1)
    at.add_argument("--save", metavar="FILE.npz", help="store inputs and outputs")
    b = sub.add_parser("bench", help="repeated GEMV and attention with figures")
    b.add_argument("--m", type=_count, default=512)
    b.add_argument("--k", type=_count, default=2048)
    b.add_argument("--tokens", type=_count, default=512)
    b.add_argument("--dim", type=_count, default=128)
    b.add_argument("--repeat", type=_count, default=1)
    b.add_argument("--seed", type=_seed, default=1)
    sub.add_parser = _add       # campaign's actions take their own --target (several boards) and --json
    campaign_cli.add_parser(sub, _count, _seconds)
    return ap


COMMANDS = {"probe": cmd_probe, "regs": cmd_regs, "memtest": cmd_memtest, "linktest": cmd_linktest,
            "gemv": cmd_gemv, "attention": cmd_attention, "bench": cmd_bench}


def main(argv=None) -> int:
    """Run pimctl with `argv` (sys.argv[1:] if None); the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    a = None
    try:
        a = build_parser().parse_args(argv)
        if a.cmd == "campaign":
            return _run_campaign(a)
        check_args(a)
        return _run(a)
    except UsageError as e:
        return _report(a, argv, "UsageError", str(e), EXIT_USAGE)
    except KeyboardInterrupt:
        # open_target's transport stops its sim server on the way out of the `with` in _run.
        return _report(a, argv, "Interrupted", "interrupted", EXIT_INTERRUPTED)


def _run(a) -> int:
    t0 = time.monotonic()
    try:
        transport = open_target(a.target, timeout=a.timeout)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    except PimError as e:
        return _fail(a, e)
    rate = None
    try:
        with transport:
            kw = {"expect": preset(a.expect) if a.expect else None, "timeout": a.run_timeout,
                  "progress": Progress(not a.no_progress and not a.json)}
            line = getattr(transport, "has_line", False)
            dev = uart_rate.open_device(transport, **kw) if line else Device(transport, **kw)
            check_shapes(dev.params, a)
            if line and a.baud != "reset":
                rate = (uart_rate.set_rate(dev, a.baud) if isinstance(a.baud, int)
                        else uart_rate.raise_rate(dev))
                if not a.json:
                    print(f"pimctl: {rate.message}", file=sys.stderr)
            res, status = COMMANDS[a.cmd](dev, a)
            if rate is not None:
                res["uart_rate"] = rate.as_dict()
                uart_rate.restore_reset_rate(dev)
    except ValueError as e:         # the Device API's own refusals of a shape or argument
        raise UsageError(str(e)) from None
    except PimError as e:
        return _fail(a, e)
    res = {"target": a.target, "command": a.cmd, **res, "total_wall_s": round(time.monotonic() - t0, 3)}
    _emit(json.dumps(res, allow_nan=False) if a.json else _human(a.cmd, res))
    return status


def _run_campaign(a) -> int:
    """`pimctl campaign ...`: spec, database and extras are checked before any case runs."""
    a.target = getattr(a, "targets", None) and a.targets[0] or "golden"
    campaign_cli.check(a, UsageError)
    a.target = a.targets[0] if a.campaign_cmd == "run" else None
    try:
        res, status = campaign_cli.run(a, UsageError)
    except PimError as e:
        return _fail(a, e)
    _emit(json.dumps(res, allow_nan=False) if a.json else campaign_cli.human(res))
    return status


def _emit(text: str) -> None:
    """Print the result; a reader that left early (`pimctl regs | head -1`) is no error of the run."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Point stdout at /dev/null so that the interpreter's final flush does not fail on the pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _fail(a, e: PimError) -> int:
    extra = {attr: getattr(e, attr) for attr in ("code", "op", "addr") if getattr(e, attr, None) is not None}
    return _report(a, None, type(e).__name__, str(e), EXIT_ERROR, prefix=f"{type(e).__name__}: ", **extra)


def _report(a, argv, error: str, message: str, status: int, *, prefix: str = "", **extra) -> int:
    """One line on stderr and, under --json, one JSON error object on stdout; returns `status`."""
    target, cmd, as_json = (a.target, a.cmd, a.json) if a is not None else _guess(argv)
    # Messages from below (a sim server's log tail, say) may span lines: the one-line promise holds anyway.
    line = " | ".join(s.strip() for s in message.splitlines() if s.strip())
    if as_json:
        _emit(json.dumps({"target": target, "command": cmd, "error": error, "message": message, **extra}))
    print(f"pimctl: {prefix}{line}", file=sys.stderr)
    return status


def _guess(argv) -> tuple[str, str | None, bool]:
    """target, command and --json from a command line argparse could not parse: best effort, for the error
    report only."""
    target, cmd, tokens = "golden", None, iter(argv)
    for tok in tokens:
        if tok == "--target":
            target = next(tokens, target)
        elif tok.startswith("--target="):
            target = tok.partition("=")[2]
        elif tok in ("--timeout", "--run-timeout", "--expect", "--baud"):
            next(tokens, None)
        elif cmd is None and (tok in COMMANDS or tok == "campaign"):
            cmd = tok
    return target, cmd, "--json" in argv


if __name__ == "__main__":
    sys.exit(main())
