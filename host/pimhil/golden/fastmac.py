"""Fast GEMV in device arithmetic: the same bits as mac.lane_sum/mac.accumulate (numerics.md §2-§4), faster.

Two implementations, chosen by `gemv(..., impl=)` in mac.py:

numpy (base install). The lane reduction is done in float64, where every step is exact:
  - a product of two BF16 values has 16 significant bits, so w * x is exact in float64 (range 2**-252..2**256);
  - dividing by the alignment unit 2**(Emax - 268 - G) is a power-of-two scaling, exact, and np.trunc of the
    quotient is the device's truncation of the magnitude (bits shifted out are dropped, toward zero);
  - the truncated lanes are integers below 2**24, so their sum (< L * 2**24) is exact in any order;
  - the sum times the unit is exact, and the one cast to float32 is RNE with unbounded exponent except below
    2**-126, where the round-and-flush rule is applied explicitly.
  A burst with an Inf or NaN operand gives a non-finite sum here and is recomputed by mac.lane_sum. The
  accumulation is numpy float32 addition, one element per step in increasing K (IEEE RNE, as fp32_add); it
  equals fp32_add's round-and-flush unless an intermediate is subnormal, and rows where one is are recomputed
  with fp32_add. NaNs are made canonical at the end (a NaN stays NaN under addition).

numba (the `fast` extra, `pip install ./host[fast]`): the integer algorithm of mac.lane_sum, compiled to SIMD
code (_mac_numba.py). Same bits, tested against the numpy path and mac.lane_sum (tests/test_golden_fastmac.py).
"""

from __future__ import annotations

import numpy as np

from ..contract import FP32_QNAN, LANE_GUARD_BITS

_MIN_NORMAL = 2.0 ** -126
# Rounded to 24 bits with unbounded exponent, values from here up to 2**-126 become 2**-126 (the tie rounds to
# the even significand 1.0); anything smaller flushes to zero (numerics.md §1).
_FLUSH_UP = 2.0 ** -126 * (1 - 2.0 ** -25)
_EXP_OFFSET = 2 * 127 + 2 * 7 + LANE_GUARD_BITS     # lane sum = S * 2**(Emax - _EXP_OFFSET)
_ZERO_E = -4096          # exponent-field sum given to zero lanes: never the maximum of a burst with a product


def _tables():
    global _VAL, _EXPF
    if _VAL is None:
        bits = np.arange(1 << 16, dtype=np.uint32)
        e = (bits >> 7) & 0xFF
        with np.errstate(invalid="ignore"):     # NaN patterns stay NaN
            val = (bits << 16).view(np.float32).astype(np.float64)
        _VAL = np.where(e == 0, np.copysign(0.0, val), val)              # DAZ: subnormal -> signed zero
        _EXPF = np.where(e == 0, _ZERO_E, e).astype(np.int16)
    return _VAL, _EXPF


_VAL = _EXPF = None


def lane_sums_numpy(w, x) -> np.ndarray:
    """Lane sums of every burst: w (R, n, L), x (n, L) BF16 bits -> FP32 bits (R, n); mac.lane_sum's bits."""
    from .mac import lane_sum
    val, expf = _tables()
    w = np.asarray(w, np.uint16)
    x = np.asarray(x, np.uint16)
    e = expf[w]
    e += expf[x]
    emax = e.max(axis=-1).astype(np.int64)
    scale = np.where(emax > 0, np.ldexp(1.0, np.clip(_EXP_OFFSET - emax, -1000, 1000)), 0.0)
    with np.errstate(invalid="ignore"):             # Inf * 0 and Inf - Inf: those bursts are redone below
        p = val[w]
        p *= val[x]
        p *= scale[..., None]
        np.trunc(p, out=p)
        s = p.sum(axis=-1)
        v = np.ldexp(s, np.clip(emax - _EXP_OFFSET, -1100, 1100))
    with np.errstate(over="ignore"):
        f = v.astype(np.float32)
    tiny = (np.abs(f) < _MIN_NORMAL) & (v != 0)
    if tiny.any():
        f = np.where(tiny, np.copysign(np.where(np.abs(v) >= _FLUSH_UP, _MIN_NORMAL, 0.0), v).astype(np.float32), f)
    out = f.view(np.uint32).copy()
    out[s == 0] = 0                                 # an exact zero sum is +0
    bad = ~np.isfinite(s)
    if bad.any():
        r, k = np.nonzero(bad)
        out[r, k] = lane_sum(w[r, k], x[k])
    return out


def accumulate_numpy(acc, lane_sums) -> np.ndarray:
    """mac.accumulate's bits: acc (R,) FP32 bits, lane_sums (R, n) FP32 bits (never subnormal) -> (R,)."""
    from .fpbits import f32_daz
    from .mac import accumulate
    acc = f32_daz(acc)
    ls = np.asarray(lane_sums, np.uint32)
    if ls.shape[-1] == 0:
        return np.asarray(acc, np.uint32).copy()
    steps = np.empty((ls.shape[-1] + 1, ls.shape[0]), np.float32)
    steps[0] = acc.view(np.float32)
    steps[1:] = ls.T.view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        np.add.accumulate(steps, axis=0, out=steps)
    mag = np.abs(steps[1:])
    sub = ((mag < _MIN_NORMAL) & (mag != 0)).any(axis=0)
    out = steps[-1].view(np.uint32).copy()
    out[np.isnan(steps[-1])] = FP32_QNAN
    if sub.any():
        rows = np.nonzero(sub)[0]
        out[rows] = accumulate(acc[rows], ls[rows])
    return out


# ---- numba -----------------------------------------------------------------------------------------------

def numba_available() -> bool:
    """True when the `fast` extra (numba) is installed (looked up, not imported: importing numba costs ~1 s)."""
    import importlib.util
    return importlib.util.find_spec("numba") is not None


def _numba_kernel():
    from ._mac_numba import kernel
    return kernel


def gemv_numba(w, x, acc, lanes: int) -> np.ndarray:
    """y = acc + W x (FP32 bits) with the numba kernel; w (M, K) and x (K,) with K a multiple of lanes.
    Raises ImportError when numba is missing."""
    return _numba_kernel()(np.ascontiguousarray(w, np.uint16), np.ascontiguousarray(x, np.uint16),
                           np.ascontiguousarray(acc, np.uint32).view(np.float32), lanes)
