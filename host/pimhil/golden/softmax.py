"""The control hub's FP32 function unit: exp2, reciprocal and softmax (docs/numerics.md §9).

Every step is a device operation with a stated rounding: FP32 add/mul are round-and-flush (fpbits.py), exp2
is a fixed-point table interpolation, the reciprocal a table seed refined by Newton steps in FP32, and the
sum follows the unit's lane order.
"""

from __future__ import annotations

import numpy as np

from ..contract import (EXP2_FRAC_BITS, EXP2_SEGMENTS, EXP2_TABLE, FP32_QNAN, LOG2E_F32, RECIP_NEWTON_STEPS,
                        RECIP_SEGMENTS, RECIP_TABLE)
from .fpbits import as_u32, f32_daz, f32_is_nan, fp32_add, fp32_mul, round_pack_f32

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
    """1/x for positive normal FP32 x below 2**126: seed from RECIP_TABLE by the top mantissa bits, exponent
    adjusted, then RECIP_NEWTON_STEPS steps of y <- y * (2 - x*y) in round-and-flush FP32."""
    x = as_u32(x_bits)
    e = ((x >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    seg = ((x >> np.uint32(23 - (RECIP_SEGMENTS - 1).bit_length())) & np.uint32(RECIP_SEGMENTS - 1)).astype(np.int64)
    seed = _RECIP[seg].astype(np.int64) - ((e - 127) << 23)
    y = np.clip(seed, 0, 0x7F7FFFFF).astype(np.uint32)
    for _ in range(RECIP_NEWTON_STEPS):
        y = fp32_mul(y, fp32_add(TWO, fp32_mul(x, y) ^ np.uint32(0x80000000)))
    return y


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
    """Largest FP32 value (NaN if any is NaN); +0 and -0 compare equal, the first seen wins."""
    v = as_u32(v)
    f = v.view(np.float32)
    if np.any(np.isnan(f)):
        return np.uint32(FP32_QNAN)
    return v[int(np.argmax(f))]


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
