"""Activation-function unit: piecewise-linear LUT evaluation and the table builder (numerics.md §6)."""

from __future__ import annotations

import math

import numpy as np

from ..contract import AF_DOMAIN_LOG2, AF_SEGMENTS, FP32_QNAN
from .fpbits import as_u32, bits_to_f32, f32_daz, f32_is_nan, f32_to_bits, fp32_add, fp32_mul

SEGMENT_WIDTH = 2.0 ** (AF_DOMAIN_LOG2 + 1) / AF_SEGMENTS
DOMAIN = (-2.0 ** AF_DOMAIN_LOG2, 2.0 ** AF_DOMAIN_LOG2)


def segment_index(x_bits) -> np.ndarray:
    """LUT segment of each FP32 input (after DAZ); NaN inputs map to 0 (their result is NaN anyway)."""
    x = bits_to_f32(f32_daz(x_bits)).astype(np.float64)
    with np.errstate(invalid="ignore"):  # NaN inputs are masked below
        t = np.floor(x / SEGMENT_WIDTH) + AF_SEGMENTS // 2
    t = np.where(np.isnan(t), 0, np.clip(t, 0, AF_SEGMENTS - 1))
    return t.astype(np.int64)


def af_eval(x_bits, slopes, intercepts) -> np.ndarray:
    """y = a_k * x + b_k in device arithmetic (FP32 bits in, FP32 bits out)."""
    x = f32_daz(x_bits)
    a = as_u32(slopes)
    b = as_u32(intercepts)
    if a.shape != (AF_SEGMENTS,) or b.shape != (AF_SEGMENTS,):
        raise ValueError(f"LUT needs {AF_SEGMENTS} slopes and intercepts, got {a.shape} and {b.shape}")
    k = segment_index(x)
    y = fp32_add(fp32_mul(a[k], x, zero_wins=True), b[k])
    return np.where(f32_is_nan(x), np.uint32(FP32_QNAN), y).astype(np.uint32)


def _gelu(v):
    # the exact form with erf, not the tanh approximation
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def _sigmoid(v):
    # exp of a non-positive argument only, so that the reference also exists far outside the domain
    e = math.exp(-abs(v))
    return 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)


# name -> (function, (slope, intercept) below the domain, (slope, intercept) above it, stated max abs error of
# the table for every finite x (numerics.md §6): the chord error h^2/8 * max|f''| rounded up plus FP32 rounding
# inside the domain, the asymptote's distance beyond it; leaky ReLU below -8 is the one relative exception)
FUNCTIONS = {
    "gelu": (_gelu, (0.0, 0.0), (1.0, 0.0), 7e-3),
    "sigmoid": (_sigmoid, (0.0, 0.0), (0.0, 1.0), 2e-3),
    "tanh": (math.tanh, (0.0, -1.0), (0.0, 1.0), 7e-3),
    "relu": (lambda v: max(v, 0.0), (0.0, 0.0), (1.0, 0.0), 1e-6),
    "leaky_relu": (lambda v: v if v >= 0 else 0.01 * v, (0.01, 0.0), (1.0, 0.0), 1e-6),
    "identity": (lambda v: v, (1.0, 0.0), (1.0, 0.0), 1e-6),
}


def build_lut(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts (FP32 bits, AF_SEGMENTS each) for a named function.

    Inner segments hold the chord of the function across the segment, computed in float64 from f at the two
    segment ends; slope and intercept are each rounded once to FP32 (RNE). The two end segments hold the
    function's asymptotes, because they also serve every input beyond the domain (numerics.md §6).
    Raises KeyError naming the known functions for an unknown name.
    """
    try:
        f, low, high, _ = FUNCTIONS[name]
    except KeyError:
        raise KeyError(f"unknown activation {name!r}; known: {sorted(FUNCTIONS)}") from None
    a = np.zeros(AF_SEGMENTS)
    b = np.zeros(AF_SEGMENTS)
    for k in range(AF_SEGMENTS):
        x0 = DOMAIN[0] + k * SEGMENT_WIDTH
        x1 = x0 + SEGMENT_WIDTH
        if k == 0:
            a[k], b[k] = low
        elif k == AF_SEGMENTS - 1:
            a[k], b[k] = high
        else:
            a[k] = (f(x1) - f(x0)) / SEGMENT_WIDTH
            b[k] = f(x0) - a[k] * x0
    return f32_to_bits(a.astype(np.float32)), f32_to_bits(b.astype(np.float32))
