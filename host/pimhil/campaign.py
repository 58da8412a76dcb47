"""Comparison campaigns: a TOML spec of GEMV and attention cases, run on a target, results kept in SQLite.

A spec (campaigns/*.toml, docs/campaigns.md) names its cases and how to make their data; every case is run on
the device, compared bit for bit with the golden model, and measured against float64 and a GPU-like
reference (BF16 inputs, FP32 arithmetic in numpy's order). Each finished case is one SQLite transaction, so a
run killed at any point and started again with the same command skips what is done and loses nothing; a case
that fails is recorded with its error and the run goes on.

Only the process that runs `run_campaign` writes the database; with Dask (--workers, --scheduler) the workers
compute and send results back (campaign_dask.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
import tomllib
from dataclasses import dataclass, field

import numpy as np

from .errors import PimError
from .golden import bf16_bits_to_f32
from .layout import attention_plan, gemv_plan, to_bf16_bits
from .reference import attention_f64, attention_reference, error_stats, gemv_f64, gemv_reference

DISTRIBUTIONS = ("normal", "uniform", "llm", "edge")
MODES = ("whole", "sample")
# Failures a case can meet that say something about that case (a refused shape, a link or device error, a
# host out of memory for its data); anything else is a bug in the campaign code and stops the run.
CASE_ERRORS = (PimError, ValueError, ArithmeticError, MemoryError, OSError)


class SpecError(ValueError):
    """A campaign spec that cannot be run: its file, its TOML or a field (the message says which)."""


@dataclass(frozen=True)
class Case:
    """One case: a workload, a data distribution, a seed and a repetition. `key` is its identity in the
    database (with the target); `params` what run_case needs, JSON-ready."""

    key: str
    kind: str           # "gemv" | "attention"
    name: str
    params: dict = field(hash=False)


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    model: dict = field(hash=False)
    cases: tuple = ()
    targets: dict = field(default_factory=dict, hash=False)
    raw: dict = field(default_factory=dict, hash=False)

    def mode(self, target: str) -> dict:
        """How this spec runs on `target` ("sim-pcie:board" -> the [targets.sim-pcie] table, else the
        [targets.default] one, else whole shapes)."""
        kind = target.partition(":")[0]
        t = self.targets.get(kind) or self.targets.get("default") or {}
        return {"mode": t.get("mode", "whole"), "sample_rows": int(t.get("sample_rows", 256)),
                "sample_heads": int(t.get("sample_heads", 1))}


def load_spec(path: str) -> Spec:
    """Read and check a campaign spec. Raises SpecError naming the file and the field at fault."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise SpecError(f"campaign spec {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"campaign spec {path}: not valid TOML: {e}") from None
    return parse_spec(raw, path)


def _int(d, key, where, default=None, lo=1):
    v = d.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise SpecError(f"{where}: {key} must be a whole number >= {lo}, not {v!r}")
    return v


def parse_spec(raw: dict, path: str = "<spec>") -> Spec:
    """A Spec from parsed TOML (see load_spec). Raises SpecError."""
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{path}: `name` (a string) is required")
    dists = raw.get("distributions", ["normal"])
    if not isinstance(dists, list) or not dists or any(d not in DISTRIBUTIONS for d in dists):
        raise SpecError(f"{path}: distributions must be a non-empty list of {', '.join(DISTRIBUTIONS)}, "
                        f"not {dists!r}")
    seeds = raw.get("seeds", [1])
    if not isinstance(seeds, list) or not seeds or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise SpecError(f"{path}: seeds must be a non-empty list of whole numbers >= 0, not {seeds!r}")
    reps = _int(raw, "repetitions", path, 1)
    targets = raw.get("targets", {})
    for t, conf in targets.items():
        if not isinstance(conf, dict) or conf.get("mode", "whole") not in MODES:
            raise SpecError(f"{path}: [targets.{t}] mode must be one of {', '.join(MODES)}")
    workloads = []
    for g in raw.get("gemv", []):
        where = f"{path}: [[gemv]] {g.get('name', '?')}"
        if not isinstance(g.get("name"), str):
            raise SpecError(f"{where}: name (a string) is required")
        workloads.append(("gemv", g["name"], {"m": _int(g, "m", where), "k": _int(g, "k", where),
                                              "count": _int(g, "count", where, 1)}))
    for a in raw.get("attention", []):
        where = f"{path}: [[attention]] {a.get('name', '?')}"
        if not isinstance(a.get("name"), str):
            raise SpecError(f"{where}: name (a string) is required")
        workloads.append(("attention", a["name"], {"tokens": _int(a, "tokens", where), "dim": _int(a, "dim", where),
                                                   "group": _int(a, "group", where, 1),
                                                   "batch": _int(a, "batch", where, 1),
                                                   "count": _int(a, "count", where, 1)}))
    if not workloads:
        raise SpecError(f"{path}: no cases: add [[gemv]] or [[attention]] tables")
    names = [w[1] for w in workloads]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: workload names must be unique, got {names}")
    cases = []
    for kind, wname, shape in workloads:
        for dist in dists:
            for seed in seeds:
                for rep in range(reps):
                    key = f"{kind}:{wname}:{dist}:s{seed}:r{rep}"
                    cases.append(Case(key, kind, wname, {**shape, "dist": dist, "seed": seed, "rep": rep}))
    return Spec(name=name, description=str(raw.get("description", "")), model=dict(raw.get("model", {})),
                cases=tuple(cases), targets=targets, raw=raw)


# ---- data -------------------------------------------------------------------------------------------------
def case_key(case: Case) -> list:
    """Seed material of a case: its seed, repetition and a hash of its workload name and distribution."""
    digest = hashlib.sha256(f"{case.name}:{case.params['dist']}".encode()).digest()
    return [case.params["seed"], case.params["rep"], int.from_bytes(digest[:8], "little")]


def case_rng(case: Case) -> np.random.Generator:
    """The case's own generator: the same data on every target and every rerun."""
    return np.random.default_rng(case_key(case))


def make_vector(rng, n: int, dist: str, scale: float = 1.0) -> np.ndarray:
    """n float32 values of a distribution (DISTRIBUTIONS): normal; uniform with the same variance; llm:
    Student-t (4 degrees of freedom) with about 1 % outlier channels 20-100x larger, as LLM activations have;
    edge: zeros, BF16 subnormals, and magnitudes spread over 2**-60..2**60 with random signs."""
    if dist == "normal":
        v = rng.standard_normal(n, dtype=np.float32)
    elif dist == "uniform":
        v = rng.uniform(-math.sqrt(3), math.sqrt(3), n).astype(np.float32)
    elif dist == "llm":
        v = rng.standard_t(4, n).astype(np.float32)
        out = rng.random(n) < 0.01
        v[out] *= rng.uniform(20, 100, int(out.sum())).astype(np.float32)
    elif dist == "edge":
        mag = np.exp2(rng.uniform(-60, 60, n)).astype(np.float32)
        v = np.where(rng.random(n) < 0.5, -mag, mag)
        kind = rng.random(n)
        v[kind < 0.1] = 0.0
        v[(kind >= 0.1) & (kind < 0.15)] = np.float32(3e-39)      # a BF16 subnormal: DAZ reads it as zero
    else:
        raise ValueError(f"unknown distribution {dist!r}")
    return v * np.float32(scale)


# W is drawn in blocks of GEN_ROWS rows, each from its own generator, so that a sample of rows (a slow target)
# gets exactly the rows the whole matrix has on another target, without drawing the rest.
GEN_ROWS = 16


def make_matrix(key, m: int, k: int, dist: str, rows=None) -> np.ndarray:
    """W (m, k) float32, or only `rows` of it (the same values either way), scaled by 1/sqrt(k) as trained
    weights are. key: the case's seed material (case_key). The edge distribution keeps normal weights (its
    extremes are in the vector) except for rows scaled by 2**40 (every 17th) and 2**-40 (every 23rd from 5)."""
    rows = np.arange(m) if rows is None else np.asarray(rows)
    scale = 1.0 / math.sqrt(k)
    out = np.empty((len(rows), k), np.float32)
    blocks = rows // GEN_ROWS
    for b in np.unique(blocks):
        g = np.random.default_rng([*key, 1, int(b)])
        n = min(GEN_ROWS, m - b * GEN_ROWS)
        if dist == "llm":
            blk = g.standard_t(5, (n, k)).astype(np.float32) * np.float32(scale * 0.8)
        elif dist == "edge":
            blk = g.standard_normal((n, k), dtype=np.float32) * np.float32(scale)
        else:
            blk = make_vector(g, n * k, dist, scale).reshape(n, k)
        sel = blocks == b
        out[sel] = blk[rows[sel] - b * GEN_ROWS]
    if dist == "edge":
        out[rows % 17 == 0] *= np.float32(2.0 ** 40)
        out[(rows >= 5) & ((rows - 5) % 23 == 0)] *= np.float32(2.0 ** -40)
    return out


# ---- references and bounds ----------------------------------------------------------------------------------
def gemv_gpu(wb, xb) -> np.ndarray:
    """A GPU-like GEMV: BF16 inputs widened to FP32, FP32 dot products in numpy's (BLAS) order."""
    return bf16_bits_to_f32(wb) @ bf16_bits_to_f32(xb)


def gemv_bound(wb, xb, lanes: int) -> np.ndarray:
    """numerics.md §4's bound per output row, bias +0, for BF16 W (M, K) and x (K,) bits, in float64."""
    m, k = wb.shape
    n = -(-k // lanes)
    xa = np.abs(bf16_bits_to_f32(xb).astype(np.float64))
    xa = np.pad(xa, (0, n * lanes - k)).reshape(n, lanes)
    out = np.empty(m)
    step = max(1, (1 << 20) // (n * lanes))     # ~8 MB float64 temporaries: cached, no fresh pages per block
    for r0 in range(0, m, step):
        wa = np.abs(bf16_bits_to_f32(wb[r0:r0 + step]).astype(np.float64))
        wa = np.pad(wa, ((0, 0), (0, n * lanes - k))).reshape(-1, n, lanes)
        p = wa * xa
        out[r0:r0 + step] = ((n + 1) * 2.0 ** -23 * p.sum(axis=(1, 2)) + lanes * 2.0 ** -22 * p.max(axis=2).sum(axis=1)
                            + (2 * n + 1) * 2.0 ** -125)
    return out


def _errors(out, f64, gpu, bound, prefix="") -> dict:
    out = np.asarray(out, np.float64)
    f64 = np.asarray(f64, np.float64)
    gpu = np.asarray(gpu, np.float64)
    res = {}
    with np.errstate(all="ignore"):
        for name, ref in (("f64", f64), ("gpu", None)):
            if ref is None:
                ref, cmp_ = f64, gpu
            else:
                cmp_ = out
            fin = np.isfinite(cmp_) & np.isfinite(ref)
            d = np.abs(cmp_[fin] - ref[fin])
            norm = math.sqrt(float(np.sum(ref[fin] ** 2)))
            res[f"max_abs_err_{name}"] = float(d.max()) if d.size else None
            res[f"rel_rms_err_{name}"] = (math.sqrt(float(np.sum(d ** 2))) / norm) if d.size and norm > 0 else None
        fin = np.isfinite(out) & np.isfinite(f64) & (bound > 0)
        units = np.abs(out[fin] - f64[fin]) / bound[fin]
        res["max_err_bound_units"] = float(units.max()) if units.size else None
    return res


# ---- running one case -----------------------------------------------------------------------------------------
def _sample_rows(m: int, want: int, block: int) -> np.ndarray:
    """`want` rows of m in evenly spaced blocks of `block` (whole row groups), always including row 0."""
    if want >= m:
        return np.arange(m)
    nblocks = max(1, want // block)
    starts = np.linspace(0, max(0, m - block), nblocks).astype(int) // block * block
    return np.unique(np.concatenate([np.arange(s, min(m, s + block)) for s in starts]))


def run_case(device, case: Case, mode: dict) -> dict:
    """Run `case` on `device` (a pimhil.device.Device) and measure it. Returns the result dict (JSON-ready).
    Raises what the device raises (CASE_ERRORS), and ValueError for a shape the device cannot hold."""
    t0 = time.monotonic()
    rng = case_rng(case)
    p = device.params
    P = case.params
    if case.kind == "gemv":
        m, k = P["m"], P["k"]
        gemv_plan(p, 1, k)
        rows = _sample_rows(m, mode["sample_rows"], p.banks) if mode["mode"] == "sample" else None
        w = make_matrix(case_key(case), m, k, P["dist"], rows)
        x = make_vector(rng, k, P["dist"])
        wb, xb = to_bf16_bits(w), to_bf16_bits(x)
        del w
        r = device.gemv(wb, xb)
        ref = gemv_reference(wb, xb, p)
        f64 = np.concatenate([gemv_f64(wb[i:i + 2048], xb) for i in range(0, wb.shape[0], 2048)])
        gpu = gemv_gpu(wb, xb)
        bound = gemv_bound(wb, xb, p.lanes)
        runs = [(r, ref)]
        outs = [(r.out, f64, gpu, bound)]
        rows_run, heads_run = int(wb.shape[0]), None
        macs = int(wb.shape[0]) * k
        extra = {}
    else:
        T, d, G, B = P["tokens"], P["dim"], P["group"], P["batch"]
        plan = attention_plan(p, T, d)
        heads = [(b, g) for b in range(B) for g in range(G)]
        if mode["mode"] == "sample":
            heads = heads[:mode["sample_heads"]]
        runs, outs = [], []
        for b in range(B):
            kv = [make_vector(rng, T * d, P["dist"]).reshape(T, d) for _ in range(2)]
            qs = np.stack([make_vector(rng, d, P["dist"]) for _ in range(G)])
            gs = [g for g in range(G) if (b, g) in heads]
            if not gs:
                continue
            # one GQA group: K and V loaded once per tile, its query heads run on them
            qb, kk, vv = to_bf16_bits(qs[gs]), to_bf16_bits(kv[0]), to_bf16_bits(kv[1])
            r = device.attention_group(qb, kk, vv)
            for i, q in enumerate(qb):
                ref = attention_reference(q, kk, vv, p, tile_tokens=plan.tile_tokens)
                with np.errstate(all="ignore"):
                    f64 = attention_f64(q, kk, vv)
                    gpu = attention_gpu(q, kk, vv)
                    bound = attention_typical_bound(q, kk, vv)
                runs.append((_Head(r, i, len(qb)), ref))
                outs.append((r.out[i], f64, gpu, bound))
        rows_run, heads_run = None, len(heads)
        macs = 2 * T * d * len(heads)
        extra = {"tile_tokens": plan.tile_tokens, "tiles_per_head": plan.tiles, "hub_tiles": plan.hub}
    bits = np.concatenate([r.bits for r, _ in runs])
    refb = np.concatenate([ref for _, ref in runs])
    out, f64, gpu, bound = (np.concatenate([o[i] for o in outs]) for i in range(4))
    cycles = [r.cycles for r, _ in runs]
    cyc = round(sum(cycles)) if all(c is not None for c in cycles) else None
    ideal = round(sum(r.ideal_mac_cycles for r, _ in runs))
    res = {"bit_exact": bool(np.array_equal(bits, refb)), "mismatches": int(np.count_nonzero(bits != refb)),
           **_errors(out, f64, gpu, bound), "nonfinite": error_stats(out, f64)["nonfinite"],
           "cycles": cyc, "ideal_mac_cycles": ideal, "mac_utilization": ideal / cyc if cyc else None,
           "tiles": sum(r.tiles for r, _ in runs), "macs": macs, "rows_run": rows_run, "heads_run": heads_run,
           "mode": mode["mode"], **extra, "wall_s": round(time.monotonic() - t0, 3)}
    return res


class _Head:
    """One head's share of a GQA group's RunResult: its bits, and the group's cycles split evenly."""

    def __init__(self, r, i, n):
        self.bits, self.out, self.tiles = r.bits[i], r.out[i], r.tiles // n
        self.cycles = None if r.cycles is None else r.cycles / n
        self.ideal_mac_cycles = r.ideal_mac_cycles / n


def attention_gpu(qb, kb, vb) -> np.ndarray:
    """A GPU-like attention head: BF16 q, K, V widened to FP32; scores, softmax and V^T p in FP32."""
    q, k, v = (bf16_bits_to_f32(a) for a in (qb, kb, vb))
    s = (k @ q) * np.float32(1.0 / math.sqrt(k.shape[1]))
    e = np.exp(s - s.max())
    return (e / e.sum(dtype=np.float32)) @ v


def attention_typical_bound(qb, kb, vb) -> np.ndarray:
    """numerics.md §8's figure for typical inputs: 2**-7 * sum_j |v_ij| p*_j per output dimension."""
    q, k, v = (bf16_bits_to_f32(a).astype(np.float64) for a in (qb, kb, vb))
    s = k @ q / math.sqrt(k.shape[1])
    e = np.exp(s - s.max())
    return 2.0 ** -7 * (np.abs(v).T @ (e / e.sum()))


def case_problem(p, case: Case) -> str | None:
    """Why `case` cannot run on a device with parameters p (before any data is made), or None."""
    try:
        if case.kind == "gemv":
            gemv_plan(p, 1, case.params["k"])
        else:
            attention_plan(p, case.params["tokens"], case.params["dim"])
    except ValueError as e:
        return str(e)
    return None


# ---- the database -----------------------------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (name TEXT NOT NULL, target TEXT NOT NULL, spec TEXT NOT NULL,
    params TEXT, started REAL, PRIMARY KEY (name, target));
CREATE TABLE IF NOT EXISTS cases (campaign TEXT NOT NULL, target TEXT NOT NULL, key TEXT NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    result TEXT, finished REAL, PRIMARY KEY (campaign, target, key));
"""


def open_db(path: str, *, create: bool = True) -> sqlite3.Connection:
    """The results database at `path` (created with the schema if `create`). Raises sqlite3.Error, and
    FileNotFoundError when it does not exist and create is False."""
    import os
    if not create and not os.path.isfile(path):
        raise FileNotFoundError(f"no results database at {path}")
    conn = sqlite3.connect(path, timeout=30.0)
    conn.executescript(SCHEMA)
    return conn


def record(conn: sqlite3.Connection, campaign: str, target: str, case: Case, status: str, *, result=None,
           error=None) -> None:
    """One finished case, in its own transaction: committed when this returns."""
    with conn:
        conn.execute("INSERT OR REPLACE INTO cases VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (campaign, target, case.key, case.kind, case.name, json.dumps(case.params), status, error,
                      None if result is None else json.dumps(result, allow_nan=False), time.time()))


def finished_keys(conn, campaign: str, target: str) -> set:
    return {k for (k,) in conn.execute("SELECT key FROM cases WHERE campaign=? AND target=? AND status IN "
                                       "('done', 'failed', 'mismatch')", (campaign, target))}


def status(conn, spec_cases: dict | None = None) -> list[dict]:
    """Per (campaign, target): cases done, mismatched (run, not bit-exact), failed, and remaining."""
    rows = conn.execute("SELECT c.name, c.target, c.spec FROM campaigns c ORDER BY c.name, c.target").fetchall()
    out = []
    for name, target, spec_json in rows:
        total = len(parse_spec(json.loads(spec_json), name).cases)
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM cases WHERE campaign=? AND target=? GROUP BY "
                                   "status", (name, target)).fetchall())
        finished = sum(counts.values())
        out.append({"campaign": name, "target": target, "total": total, "done": counts.get("done", 0),
                    "mismatch": counts.get("mismatch", 0), "failed": counts.get("failed", 0),
                    "remaining": max(0, total - finished)})
    return out


def run_campaign(spec: Spec, target: str, conn: sqlite3.Connection, *, device_factory, executor=None,
                 progress=None, params=None) -> dict:
    """Run every case of `spec` not yet finished on `target`, recording each as it finishes.

    device_factory(): a Device for `target` (used in this process when executor is None). executor: an
    object with map_cases(cases, mode) yielding (case, status, result, error) as they finish (Dask), or None.
    progress(case, status, done, total) after each case. params: the device's DeviceParams, checked against
    every case before any runs (a case that cannot fit is recorded as failed). Returns counts."""
    with conn:
        # the spec as last run defines what "remaining" means; the first start time stays
        conn.execute("INSERT INTO campaigns VALUES (?,?,?,?,?) ON CONFLICT (name, target) DO UPDATE SET "
                     "spec = excluded.spec, params = excluded.params",
                     (spec.name, target, json.dumps(spec.raw), json.dumps(params.as_dict()) if params else None,
                      time.time()))
    mode = spec.mode(target)
    done = finished_keys(conn, spec.name, target)
    todo = [c for c in spec.cases if c.key not in done]
    counts = {"skipped": len(spec.cases) - len(todo), "done": 0, "mismatch": 0, "failed": 0}
    if params is not None:
        runnable = []
        for c in todo:
            problem = case_problem(params, c)
            if problem:
                record(conn, spec.name, target, c, "failed", error=f"does not fit the device: {problem}")
                counts["failed"] += 1
            else:
                runnable.append(c)
        todo = runnable
    if executor is None:
        device = device_factory() if todo else None
        results = (_run_one(device, c, mode) for c in todo)
    else:
        results = executor.map_cases(todo, mode)
    n = 0
    for case, st, result, error in results:
        record(conn, spec.name, target, case, st, result=result, error=error)
        counts[st] += 1
        n += 1
        if progress is not None:
            progress(case, st, n, len(todo))
    return counts


def _run_one(device, case: Case, mode: dict):
    """(case, status, result, error): status done (bit-exact), mismatch (ran, bits differ) or failed."""
    try:
        res = run_case(device, case, mode)
    except CASE_ERRORS as e:
        return case, "failed", None, f"{type(e).__name__}: {e}"
    return case, "done" if res["bit_exact"] else "mismatch", res, None
