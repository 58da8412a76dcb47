"""Random BF16/FP32 operands that reach the corners: mixed exponents, specials, subnormals, ties."""

from __future__ import annotations

import numpy as np

BF16_SPECIALS = np.array([0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC1, 0x0001, 0x807F, 0x0080, 0x8080,
                          0x7F7F, 0xFF7F, 0x3F80, 0xBF80, 0x3F81, 0xBF81], dtype=np.uint16)
FP32_SPECIALS = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001,
                          0x00000001, 0x807FFFFF, 0x00800000, 0x80800000, 0x7F7FFFFF, 0xFF7FFFFF,
                          0x3F800000, 0xBF800000], dtype=np.uint32)


# One BF16 pattern of each operand class (the names are tb/support/funcov.py's lane_class bins), the sign and
# low bits drawn per use.
_BF16_CLASS_EXPONENT = {"zero": 0x00, "subnormal": 0x00, "normal": 0x7F, "inf": 0xFF, "nan": 0xFF}


def bf16_class_rotation(rng: np.random.Generator, lanes: int, classes) -> np.ndarray:
    """len(classes) bursts of `lanes` BF16 patterns in which lane i of burst k is of class
    classes[(i + k) % len(classes)]: every lane sees every class, whatever the random operands elsewhere do."""
    n = len(classes)
    out = np.empty((n, lanes), dtype=np.uint16)
    for k in range(n):
        for i in range(lanes):
            c = classes[(i + k) % n]
            man = {"zero": 0, "inf": 0}.get(c, int(rng.integers(1, 128)))
            out[k, i] = (int(rng.integers(0, 2)) << 15) | (_BF16_CLASS_EXPONENT[c] << 7) | man
    return out


def bf16_operands(rng: np.random.Generator, shape, *, special_rate: float = 0.02) -> np.ndarray:
    """BF16 bit patterns: mostly normal numbers around 1 with exponent spread, plus full-range draws,
    exact-cancellation partners and specials."""
    n = int(np.prod(shape))
    sign = rng.integers(0, 2, n)
    kind = rng.random(n)
    exp = np.where(kind < 0.6, 127 + rng.integers(-12, 13, n), rng.integers(1, 255, n))
    mant = rng.integers(0, 128, n)
    bits = (sign << 15) | (exp << 7) | mant
    specials = rng.random(n) < special_rate
    bits = np.where(specials, BF16_SPECIALS[rng.integers(0, len(BF16_SPECIALS), n)], bits)
    return bits.astype(np.uint16).reshape(shape)


def fp32_operands(rng: np.random.Generator, n: int, *, special_rate: float = 0.03) -> np.ndarray:
    sign = rng.integers(0, 2, n).astype(np.uint64)
    exp = np.where(rng.random(n) < 0.7, 127 + rng.integers(-20, 21, n), rng.integers(0, 256, n)).astype(np.uint64)
    mant = rng.integers(0, 1 << 23, n).astype(np.uint64)
    bits = (sign << 31) | (exp << 23) | mant
    specials = rng.random(n) < special_rate
    bits = np.where(specials, FP32_SPECIALS[rng.integers(0, len(FP32_SPECIALS), n)], bits)
    return bits.astype(np.uint32)


def pack_rows(bits: np.ndarray, word_bits: int) -> list[int]:
    """Each row of an (n, lanes) array as one little-endian integer (lane 0 in the low bits)."""
    dtype = {16: "<u2", 32: "<u4"}[word_bits]
    raw = np.ascontiguousarray(bits.astype(dtype))
    return [int.from_bytes(raw[i].tobytes(), "little") for i in range(raw.shape[0])]
