"""Bank MAC arithmetic: exact BF16 products, aligned lane reduction, FP32 accumulation (numerics.md §2-§4)."""

from __future__ import annotations

import os

import numpy as np

from ..contract import LANE_GUARD_BITS, FP32_QNAN
from .fpbits import as_u16, as_u32, fp32_add, round_pack_f32

# value of a product = P * 2**(E - _PROD_EXP_OFFSET) with E the sum of the two biased exponent fields
_PROD_EXP_OFFSET = 2 * 127 + 2 * 7


def lane_sum(w, x) -> np.ndarray:
    """Lane reduction of BF16 bursts: w, x uint16 arrays of shape (..., L) -> FP32 bits of shape (...).

    Products are exact; lanes are aligned to the largest exponent with LANE_GUARD_BITS guard bits, truncated,
    summed as integers and rounded once to FP32 (round-and-flush).
    """
    # int32 throughout: P < 2**16, aligned lanes < 2**24, |sum| < L * 2**24, all far from 2**31.
    w = as_u16(w).astype(np.int32)
    x = as_u16(x).astype(np.int32)
    w, x = np.broadcast_arrays(w, x)
    ew, ex = (w >> 7) & 0xFF, (x >> 7) & 0xFF
    neg = ((w ^ x) >> 15) == 1
    finite = (ew != 0) & (ex != 0) & (ew != 255) & (ex != 255)
    p = np.where(finite, ((w & 0x7F) | 0x80) * ((x & 0x7F) | 0x80), 0)
    e = np.where(finite, ew + ex, 0)
    emax = np.max(e, axis=-1)
    d = np.minimum(emax[..., None] - e, 31)
    a = (p << LANE_GUARD_BITS) >> d
    s = np.sum(np.where(neg, -a, a), axis=-1, dtype=np.int64)
    out = round_pack_f32((s < 0).astype(np.uint64), np.abs(s), emax - _PROD_EXP_OFFSET - LANE_GUARD_BITS)

    special = (ew == 255) | (ex == 255)
    if np.any(special):     # Inf/NaN rules only where an Inf or NaN operand is present
        w_zero, x_zero = ew == 0, ex == 0
        w_inf, x_inf = (ew == 255) & ((w & 0x7F) == 0), (ex == 255) & ((x & 0x7F) == 0)
        w_nan, x_nan = (ew == 255) & ((w & 0x7F) != 0), (ex == 255) & ((x & 0x7F) != 0)
        nan_lane = w_nan | x_nan | (w_inf & x_zero) | (x_inf & w_zero)
        inf_lane = (w_inf | x_inf) & ~nan_lane
        pos_inf = np.any(inf_lane & ~neg, axis=-1)
        neg_inf = np.any(inf_lane & neg, axis=-1)
        nan = np.any(nan_lane, axis=-1) | (pos_inf & neg_inf)
        out = np.where(pos_inf, np.uint32(0x7F800000), out)
        out = np.where(neg_inf, np.uint32(0xFF800000), out)
        out = np.where(nan, np.uint32(FP32_QNAN), out)
    return out.astype(np.uint32)


def accumulate(acc, lane_sums) -> np.ndarray:
    """Fold lane sums into accumulators in order: acc shape (...), lane_sums shape (..., n) -> (...)."""
    acc = as_u32(acc).copy()
    lane_sums = as_u32(lane_sums)
    for k in range(lane_sums.shape[-1]):
        acc = fp32_add(acc, lane_sums[..., k])
    return acc


# Which implementation gemv uses by default: "auto" takes numba when the `fast` extra is installed and the GEMV
# is large enough to repay importing it (NUMBA_MIN_ELEMENTS), else numpy.
# PIMHIL_GOLDEN_IMPL=numpy|numba|reference overrides it (tests and benches compare them).
GEMV_IMPLS = ("auto", "numba", "numpy", "reference")
NUMBA_MIN_ELEMENTS = 1 << 17


def gemv(w_bits, x_bits, *, lanes: int, bias_bits=None, row_block: int = 256, impl: str | None = None) -> np.ndarray:
    """y = W x + bias in device arithmetic, as FP32 bits.

    w_bits: (M, K) BF16 bits; x_bits: (K,) BF16 bits; bias_bits: (M,) FP32 bits or None for +0.
    K is zero-padded to a multiple of `lanes` (zero lanes change nothing). The result does not depend on how
    rows map to banks or how K is chunked (numerics.md §4), only on the burst width `lanes`.
    impl: "reference" (lane_sum and accumulate, the statement of the arithmetic), "numpy" (fastmac's exact
    float64 reduction), "numba" (fastmac's compiled kernel; ImportError without the `fast` extra) or "auto"
    (default, or $PIMHIL_GOLDEN_IMPL): all give the same bits. Raises ValueError on bad shapes or impl.
    """
    from . import fastmac
    impl = impl or os.environ.get("PIMHIL_GOLDEN_IMPL") or "auto"
    if impl not in GEMV_IMPLS:
        raise ValueError(f"impl must be one of {GEMV_IMPLS}, not {impl!r}")
    w = as_u16(w_bits)
    if impl == "auto":
        impl = "numba" if w.size >= NUMBA_MIN_ELEMENTS and fastmac.numba_available() else "numpy"
    x = as_u16(x_bits)
    if w.ndim != 2 or x.ndim != 1 or w.shape[1] != x.shape[0]:
        raise ValueError(f"gemv needs W (M, K) and x (K,), got {w.shape} and {x.shape}")
    m, k = w.shape
    pad = (-k) % lanes
    if pad:
        w = np.pad(w, ((0, 0), (0, pad)))
        x = np.pad(x, (0, pad))
    nb = w.shape[1] // lanes
    xb = x.reshape(nb, lanes)
    acc = np.zeros(m, np.uint32) if bias_bits is None else as_u32(bias_bits).copy()
    if acc.shape != (m,):
        raise ValueError(f"bias must have shape ({m},), got {acc.shape}")
    if impl == "numba":
        return fastmac.gemv_numba(w, x, acc, lanes)
    if impl == "numpy":
        # ~64 KiB of W per block keeps the float64 temporaries in cache
        row_block = max(1, (1 << 15) // max(1, w.shape[1]))
        sums, add = fastmac.lane_sums_numpy, fastmac.accumulate_numpy
    else:
        sums, add = (lambda wb, xb_: lane_sum(wb, xb_[None])), accumulate
    for r0 in range(0, m, row_block):  # bounded temporaries for large M*K
        ls = sums(w[r0:r0 + row_block].reshape(-1, nb, lanes), xb)
        acc[r0:r0 + row_block] = add(acc[r0:r0 + row_block], ls)
    return acc
