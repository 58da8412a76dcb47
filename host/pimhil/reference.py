"""What the device must return for a workload (bit-exact, from the golden model) and what exact arithmetic
would give (float64), for the driver's comparisons."""

from __future__ import annotations

import math

import numpy as np

from .contract import DeviceParams
from .golden import bf16_bits_to_f32, gemv
from .golden.attention import attention, attention_tiles
from .layout import gemv_plan, pad_gemv, to_bf16_bits


def gemv_reference(w, x, p: DeviceParams) -> np.ndarray:
    """FP32 bit patterns (uint32) of y as the device computes it, padding included (exact zeros)."""
    wb, xb = to_bf16_bits(w), to_bf16_bits(x)
    wp, xp = pad_gemv(gemv_plan(p, *wb.shape), wb, xb)
    return gemv(wp, xp, lanes=p.lanes)[:wb.shape[0]].astype(np.uint32)


def gemv_f64(w, x) -> np.ndarray:
    """y in float64 from the BF16-rounded inputs: the exact answer the device approximates (row blocks of
    W at a time, so a large W is never held in float64 whole)."""
    w = np.asarray(w)
    xf = bf16_bits_to_f32(to_bf16_bits(x)).astype(np.float64)
    if w.ndim != 2 or w.shape[0] == 0:
        return bf16_bits_to_f32(to_bf16_bits(w)).astype(np.float64) @ xf
    step = max(1, (1 << 22) // max(1, w.shape[1]))
    return np.concatenate([bf16_bits_to_f32(to_bf16_bits(w[r0:r0 + step])).astype(np.float64) @ xf
                           for r0 in range(0, w.shape[0], step)])


def scale_bits(d: int, scale: float | None = None) -> int:
    return int(np.float32(1.0 / math.sqrt(d) if scale is None else scale).view(np.uint32))


def attention_reference(q, k, v, p: DeviceParams, scale: float | None = None, *,
                        tile_tokens: int | None = None) -> np.ndarray:
    """FP32 bits (uint32, (d,)) of one head's output as the device computes it: one tile, or tiles of
    tile_tokens combined (numerics.md §8.1), the split the driver's layout.attention_plan chose."""
    qb, kb, vb = to_bf16_bits(q), to_bf16_bits(k), to_bf16_bits(v)
    sb = scale_bits(kb.shape[1], scale)
    if tile_tokens is not None and tile_tokens != kb.shape[0]:
        return np.asarray(attention_tiles(qb, kb, vb, sb, p, tile_tokens)["out"], dtype=np.uint32)
    return np.asarray(attention(qb, kb, vb, sb, p)["out"], dtype=np.uint32)


def attention_f64(q, k, v, scale: float | None = None) -> np.ndarray:
    qf, kf, vf = (bf16_bits_to_f32(to_bf16_bits(a)).astype(np.float64) for a in (q, k, v))
    s = kf @ qf * (1.0 / math.sqrt(kf.shape[1]) if scale is None else scale)
    e = np.exp(s - s.max())
    return (e / e.sum()) @ vf


def error_stats(out, f64) -> dict:
    """How far device outputs are from the float64 values, in a form that survives NaN and Inf.

    max_abs_err_vs_f64: max |out - f64| over the positions where both are finite (None if there are none).
    nonfinite: {"nan": NaN outputs, "inf": +-Inf outputs, "class_mismatches": positions whose class
    (finite, NaN, +Inf, -Inf) differs between out and f64}. Every value is a plain int, float or None, so a
    summary built from it is strict JSON (no NaN)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(f64, dtype=np.float64)
    both = np.isfinite(out) & np.isfinite(ref)
    err = float(np.max(np.abs(out[both] - ref[both]))) if both.any() else None
    return {"max_abs_err_vs_f64": err,
            "nonfinite": {"nan": int(np.count_nonzero(np.isnan(out))), "inf": int(np.count_nonzero(np.isinf(out))),
                          "class_mismatches": int(np.count_nonzero(_fp_class(out) != _fp_class(ref)))}}


def _fp_class(a: np.ndarray) -> np.ndarray:
    # 0 finite, 1 NaN, 2 +Inf, 3 -Inf: an infinity of the wrong sign is as wrong as a NaN.
    return np.select([np.isnan(a), np.isposinf(a), np.isneginf(a)], [1, 2, 3], 0)
