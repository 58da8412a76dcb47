"""The control hub's FP32 function unit: exp2, reciprocal and softmax (docs/numerics.md §8).

Every step is a device operation with a stated rounding: FP32 add/mul are round-and-flush (fpbits.py), exp2
is a fixed-point table interpolation, the reciprocal a table seed refined by Newton steps in FP32, and the
sum follows the unit's lane order.
"""

from __future__ import annotations

import numpy as np

from ..contract import (EXP2_FRAC_BITS, EXP2_SEGMENTS, EXP2_TABLE, FP32_QNAN, LOG2E_F32, RECIP_NEWTON_STEPS,
                        RECIP_SEGMENTS, RECIP_TABLE)
from .fpbits import as_u32, f32_daz, f32_is_inf, f32_is_nan, fp32_add, fp32_mul, round_pack_f32

_EXP2 = np.array(EXP2_TABLE, dtype=np.int64)
_RECIP = np.array(RECIP_TABLE, dtype=np.uint32)
_SEG_SHIFT = EXP2_FRAC_BITS - (EXP2_SEGMENTS - 1).bit_length()   # fraction bits inside one segment
TWO = np.uint32(0x40000000)


def exp2_fixed(t_bits) -> np.ndarray:
    """2**t for FP32 t: t cut to fixed point (floor, EXP2_FRAC_BITS fraction bits), 2**frac from the
    64-segment table with integer linear interpolation (floor), then scaled by 2**floor(t) and rounded
    (round-and-flush). t < -150 gives +0, t >= 128 gives +Inf, NaN gives NaN."""
    t = f32_daz(t_bits)
    sign = (t >> np.uint32(31)).astype(np.int64)
    e = ((t >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    m = ((t & np.uint32(0x7FFFFF)) | np.uint32(0x800000)).astype(np.int64)
    m = np.where(e == 0, 0, m)
    # t * 2**FRAC = m * 2**(e - 150 + FRAC); shift right by k = 150 - FRAC - e (floor for negatives)
    k = 150 - EXP2_FRAC_BITS - e
    big = e - 127 >= 8                      # |t| >= 256 (or Inf): saturate below
    ks = np.clip(k, 0, 62)
    mag_floor = np.where(k > 0, m >> ks, m << np.clip(-k, 0, 62))
    inexact = np.where(k > 0, (m & ((np.int64(1) << ks) - 1)) != 0, False) | ((k > 62) & (m != 0))
    fx = np.where(sign == 1, -mag_floor - inexact.astype(np.int64), mag_floor)
    n = fx >> EXP2_FRAC_BITS
    frac = fx & ((1 << EXP2_FRAC_BITS) - 1)
    i = frac >> _SEG_SHIFT
    r = frac & ((1 << _SEG_SHIFT) - 1)
    v = _EXP2[i] + (((_EXP2[i + 1] - _EXP2[i]) * r) >> _SEG_SHIFT)
    n_c = np.clip(n, -200, 200)
    out = round_pack_f32(np.zeros_like(v, dtype=np.uint64), v, n_c - 23)
    out = np.where(big & (sign == 1), np.uint32(0), out)
    out = np.where(big & (sign == 0), np.uint32(0x7F800000), out)
    return np.where(f32_is_nan(t), np.uint32(FP32_QNAN), out).astype(np.uint32)


def reciprocal(x_bits) -> np.ndarray:
    """1/x for FP32 x, as the function unit computes it (docs/numerics.md §8).

    The Newton steps run on the significand alone, scaled into [1, 2): there every intermediate is near 1
    and stays normal whatever x's exponent is (scaling the seed instead made the Newton product flush to
    zero for x just below 2**126). The exponent and sign are applied once at the end, an exact power-of-two
    scaling that can only leave the normal range for |x| > 2**126, where the result flushes to zero.
    NaN gives the canonical NaN, a zero (after DAZ) gives Inf and Inf gives zero, each with x's sign.
    """
    x = f32_daz(x_bits)
    sign = x & np.uint32(0x80000000)
    e = ((x >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    frac = x & np.uint32(0x7FFFFF)
    xm = np.uint32(127 << 23) | frac                      # 1.frac, in [1, 2)
    seg = (frac >> np.uint32(23 - (RECIP_SEGMENTS - 1).bit_length())).astype(np.int64)
    y = _RECIP[seg]
    for _ in range(RECIP_NEWTON_STEPS):
        y = fp32_mul(y, fp32_add(TWO, fp32_mul(xm, y) ^ np.uint32(0x80000000)))
    # y lies in [0.5, 1] (checked for every significand), so its exponent field is 126 or 127.
    e_out = ((y >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64) + 127 - e
    scaled = sign | (np.clip(e_out, 0, 255).astype(np.uint32) << np.uint32(23)) | (y & np.uint32(0x7FFFFF))
    out = np.where(e_out < 1, sign, scaled)
    out = np.where(e == 0, sign | np.uint32(0x7F800000), out)
    out = np.where(f32_is_inf(x), sign, out)
    return np.where(f32_is_nan(x), np.uint32(FP32_QNAN), out).astype(np.uint32)


def lane_tree_sum(v, lanes: int) -> np.ndarray:
    """Sum of FP32 values in the function unit's order: lane l adds v[l], v[l+lanes], ... in turn (from +0),
    then the lane sums are added pairwise, (0+1), (2+3), ..., level by level."""
    v = as_u32(v)
    if v.size % lanes:
        raise ValueError(f"{v.size} values do not fill {lanes} lanes evenly")
    rows = v.reshape(-1, lanes)
    acc = np.zeros(lanes, np.uint32)
    for row in rows:
        acc = fp32_add(acc, row)
    while acc.size > 1:
        acc = fp32_add(acc[0::2], acc[1::2])
    return acc[0]


def lane_max(v) -> np.uint32:
    """Largest FP32 pattern, compared before DAZ in the total order -Inf < ... < -0 < +0 < ... < +Inf
    (the function unit's order_key); any NaN gives the canonical NaN.

    The order has no ties between different patterns, so m is the same whatever order the unit's lanes and
    tree visit the scores in; that subnormals and the zero signs are ordered changes no result, because m
    only enters s - m, which reads a subnormal m as a zero.
    """
    v = as_u32(v)
    if np.any(f32_is_nan(v)):
        return np.uint32(FP32_QNAN)
    key = np.where(v >> np.uint32(31) == 1, ~v, v | np.uint32(0x80000000))
    return v[int(np.argmax(key))]


def softmax(scores_bits, scale_bits, *, lanes: int):
    """Softmax of FP32 scores scaled by an FP32 factor, as the function unit computes it.

    m = max s;  c = scale * log2(e);  t_j = (s_j - m) * c;  e_j = exp2(t_j);  S = lane-tree sum of e_j;
    r = reciprocal(S);  p_j = e_j * r. Returns (p as FP32 bits, e, m, S, r).
    """
    s = as_u32(scores_bits)
    m = lane_max(s)
    c = fp32_mul(np.uint32(scale_bits), np.uint32(LOG2E_F32))
    t = fp32_mul(fp32_add(s, m ^ np.uint32(0x80000000)), c)
    e = exp2_fixed(t)
    total = lane_tree_sum(e, lanes)
    r = reciprocal(total)
    p = fp32_mul(e, r)
    return p, e, m, total, r
