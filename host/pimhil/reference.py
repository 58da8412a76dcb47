"""What the device must return for a workload (bit-exact, from the golden model) and what exact arithmetic
would give (float64), for the driver's comparisons."""

from __future__ import annotations

import math

import numpy as np

from .contract import DeviceParams
from .golden import bf16_bits_to_f32, gemv
from .golden.attention import attention
from .layout import gemv_plan, pad_gemv, to_bf16_bits


def gemv_reference(w, x, p: DeviceParams) -> np.ndarray:
    """FP32 bit patterns (uint32) of y as the device computes it, padding included (exact zeros)."""
    wb, xb = to_bf16_bits(w), to_bf16_bits(x)
    wp, xp = pad_gemv(gemv_plan(p, *wb.shape), wb, xb)
    return gemv(wp, xp, lanes=p.lanes)[:wb.shape[0]].astype(np.uint32)


def gemv_f64(w, x) -> np.ndarray:
    """y in float64 from the BF16-rounded inputs: the exact answer the device approximates."""
    wf = bf16_bits_to_f32(to_bf16_bits(w)).astype(np.float64)
    xf = bf16_bits_to_f32(to_bf16_bits(x)).astype(np.float64)
    return wf @ xf


def scale_bits(d: int, scale: float | None = None) -> int:
    return int(np.float32(1.0 / math.sqrt(d) if scale is None else scale).view(np.uint32))


def attention_reference(q, k, v, p: DeviceParams, scale: float | None = None) -> np.ndarray:
    qb, kb, vb = to_bf16_bits(q), to_bf16_bits(k), to_bf16_bits(v)
    return np.asarray(attention(qb, kb, vb, scale_bits(kb.shape[1], scale), p)["out"], dtype=np.uint32)


def attention_f64(q, k, v, scale: float | None = None) -> np.ndarray:
    qf, kf, vf = (bf16_bits_to_f32(to_bf16_bits(a)).astype(np.float64) for a in (q, k, v))
    s = kf @ qf * (1.0 / math.sqrt(kf.shape[1]) if scale is None else scale)
    e = np.exp(s - s.max())
    return (e / e.sum()) @ vf
