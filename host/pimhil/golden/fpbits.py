"""Bit-level FP32/BF16 helpers: conversion, classification, round-and-flush (docs/numerics.md §1, §5).

Every function takes and returns bit patterns (uint16 for BF16, uint32 for FP32) as numpy arrays so that
NaN payloads, signed zeros and flushed values are never lost to a float conversion.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ..contract import BF16_QNAN, FP32_QNAN

_F32_EXP = np.uint32(0x7F800000)
_F32_MANT = np.uint32(0x007FFFFF)
_F32_SIGN = np.uint32(0x80000000)


def as_u32(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32)


def as_u16(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint16)


def f32_to_bits(values) -> np.ndarray:
    return np.array(values, dtype=np.float32).view(np.uint32)


def bits_to_f32(bits) -> np.ndarray:
    return np.array(bits, dtype=np.uint32).view(np.float32)


def bf16_to_bits(values) -> np.ndarray:
    """Round float values to BF16 (RNE, ml_dtypes) and return the bit patterns."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32).astype(ml_dtypes.bfloat16)).view(np.uint16)


def bf16_bits_to_f32(bits) -> np.ndarray:
    """Widen BF16 bit patterns to FP32 values (exact; subnormals kept, DAZ is applied by consumers)."""
    return (as_u16(bits).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_daz(bits) -> np.ndarray:
    """Denormals-are-zero: a subnormal FP32 pattern becomes zero of the same sign."""
    b = as_u32(bits)
    sub = ((b & _F32_EXP) == 0) & ((b & _F32_MANT) != 0)
    return np.where(sub, b & _F32_SIGN, b).astype(np.uint32)


def f32_is_nan(bits) -> np.ndarray:
    b = as_u32(bits)
    return ((b & _F32_EXP) == _F32_EXP) & ((b & _F32_MANT) != 0)


def f32_is_inf(bits) -> np.ndarray:
    b = as_u32(bits)
    return (b & ~_F32_SIGN) == _F32_EXP


def f32_flush_result(bits) -> np.ndarray:
    """Apply the output half of round-and-flush to an IEEE result: subnormal -> signed zero, NaN -> canonical."""
    b = f32_daz(bits)
    return np.where(f32_is_nan(b), np.uint32(FP32_QNAN), b).astype(np.uint32)


def round_pack_f32(sign, mag, exp2) -> np.ndarray:
    """Round-and-flush of the exact value (-1)**sign * mag * 2**exp2 to FP32 bits.

    sign: 0/1 array; mag: non-negative integers below 2**53; exp2: integer array. mag == 0 gives a zero of
    the given sign. Rounding is RNE to 24 significant bits with unbounded exponent, then results below 2**-126
    flush to signed zero and results above the FP32 range become signed Inf (numerics.md §1).
    """
    sign = np.asarray(sign, dtype=np.uint64)
    mag = np.asarray(mag, dtype=np.uint64)
    exp2 = np.asarray(exp2, dtype=np.int64)
    sign, mag, exp2 = np.broadcast_arrays(sign, mag, exp2)
    nz = mag != 0
    # frexp is exact here because mag < 2**53 converts to float64 without rounding.
    _, e = np.frexp(np.where(nz, mag, 1).astype(np.float64))
    p = e.astype(np.int64) - 1                      # position of the leading one
    shift = p - 23
    rs = np.clip(shift, 0, 63).astype(np.uint64)
    ls = np.clip(-shift, 0, 63).astype(np.uint64)
    q = np.where(shift > 0, mag >> rs, mag << ls)
    one = np.uint64(1)
    rem = mag & ((one << rs) - one)
    half = np.where(shift > 0, one << np.clip(shift - 1, 0, 63).astype(np.uint64), 0)
    up = (shift > 0) & ((rem > half) | ((rem == half) & ((q & one) == one)))
    q = q + up.astype(np.uint64)
    carry = q >> np.uint64(24)                       # rounding overflowed to 2**24
    q = np.where(carry == 1, q >> one, q)
    e_unb = exp2 + p + carry.astype(np.int64)
    bits = (sign << np.uint64(31)) | (np.clip(e_unb + 127, 0, 255).astype(np.uint64) << np.uint64(23)) | (
        q & np.uint64(0x7FFFFF))
    zero = sign << np.uint64(31)
    inf = zero | np.uint64(0x7F800000)
    out = np.where(~nz | (e_unb < -126), zero, np.where(e_unb > 127, inf, bits))
    return out.astype(np.uint32)


def fp32_add(a, b) -> np.ndarray:
    """FP32 addition of bit patterns: DAZ operands, IEEE RNE, round-and-flush result (numerics.md §4).

    IEEE addition followed by flushing a subnormal result equals the device's rule, because a sum of two
    normal numbers below 2**-126 is exact.
    """
    fa = bits_to_f32(f32_daz(a))
    fb = bits_to_f32(f32_daz(b))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to Inf and Inf-Inf are defined results here
        r = fa + fb
    return f32_flush_result(f32_to_bits(r))


def fp32_mul(a, b, *, zero_wins: bool = False) -> np.ndarray:
    """FP32 multiplication of bit patterns with DAZ and round-and-flush (exact product, one rounding).

    zero_wins: a zero operand gives signed zero even against Inf (the AF unit's rule, numerics.md §6), though
    a NaN operand still gives NaN; otherwise Inf x 0 is NaN as in IEEE. A zero product's sign is the xor (§1).
    """
    a = f32_daz(a)
    b = f32_daz(b)
    a, b = np.broadcast_arrays(a, b)
    sign = ((a ^ b) >> np.uint32(31)).astype(np.uint64)
    ea = ((a >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    eb = ((b >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    ma = (a & _F32_MANT).astype(np.uint64) | np.uint64(1 << 23)
    mb = (b & _F32_MANT).astype(np.uint64) | np.uint64(1 << 23)
    nan_a, nan_b = f32_is_nan(a), f32_is_nan(b)
    inf_a, inf_b = f32_is_inf(a), f32_is_inf(b)
    zero_a, zero_b = ea == 0, eb == 0
    prod = round_pack_f32(sign, ma * mb, ea + eb - 2 * 127 - 46)
    signed_zero = (sign << np.uint64(31)).astype(np.uint32)
    signed_inf = signed_zero | np.uint32(0x7F800000)
    zero = zero_a | zero_b
    inf = inf_a | inf_b
    if zero_wins:
        out = np.where(zero, signed_zero, np.where(inf, signed_inf, prod))
    else:
        out = np.where(inf & zero, np.uint32(FP32_QNAN), np.where(inf, signed_inf, np.where(zero, signed_zero, prod)))
    return np.where(nan_a | nan_b, np.uint32(FP32_QNAN), out).astype(np.uint32)


def fp32_to_bf16(bits) -> np.ndarray:
    """FP32 -> BF16 read-out rounding: RNE on the low 16 bits, NaN -> 0x7FC0 (numerics.md §5).

    No DAZ and no FTZ: a subnormal pattern (only WR_BIAS can load one) rounds to the nearest BF16 subnormal.
    """
    b = as_u32(bits).astype(np.uint64)
    lsb = (b >> np.uint64(16)) & np.uint64(1)
    r = ((b + np.uint64(0x7FFF) + lsb) >> np.uint64(16)) & np.uint64(0xFFFF)
    return np.where(f32_is_nan(bits), np.uint16(BF16_QNAN), r).astype(np.uint16)
