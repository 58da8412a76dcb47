"""EWMUL / EWADD: element-wise FP32 operations of the control hub's function unit (numerics.md §7)."""

from __future__ import annotations

import numpy as np

from .fpbits import as_u32, fp32_add, fp32_mul


def _pair(a, b, name):
    a, b = as_u32(a), as_u32(b)
    if a.shape != b.shape:
        raise ValueError(f"{name} needs operands of one shape, got {a.shape} and {b.shape}")
    return a, b


def ewmul(a, b) -> np.ndarray:
    """a * b element-wise on FP32 bit patterns: DAZ, one rounding (round-and-flush), Inf x 0 = NaN.
    Raises ValueError for operands of different shapes."""
    a, b = _pair(a, b, "EWMUL")
    return fp32_mul(a, b)


def ewadd(a, b) -> np.ndarray:
    """a + b element-wise on FP32 bit patterns: DAZ, IEEE RNE, round-and-flush.
    Raises ValueError for operands of different shapes."""
    a, b = _pair(a, b, "EWADD")
    return fp32_add(a, b)
