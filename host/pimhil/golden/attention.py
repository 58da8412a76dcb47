"""Decode attention for one head, in device arithmetic: scores = K q, softmax (hub), out = V^T p."""

from __future__ import annotations

import numpy as np

from ..contract import DeviceParams
from .fpbits import as_u16, fp32_to_bf16
from .mac import gemv
from .softmax import softmax


def attention(q_bits, k_bits, v_bits, scale_bits, params: DeviceParams) -> dict:
    """q (d,), K (T, d), V (T, d) as BF16 bits; scale as FP32 bits (1/sqrt(d) for standard attention).

    Returns a dict of FP32-bit arrays: scores (T,), p (T,) as BF16 bits (what the banks multiply), and
    out (d,). Raises ValueError when the shapes disagree or T is not a multiple of the bank count.
    """
    q, k, v = as_u16(q_bits), as_u16(k_bits), as_u16(v_bits)
    if q.ndim != 1 or k.ndim != 2 or k.shape != v.shape or k.shape[1] != q.shape[0]:
        raise ValueError(f"attention needs q (d,), K and V (T, d); got {q.shape}, {k.shape}, {v.shape}")
    if k.shape[0] % params.banks:
        raise ValueError(f"T={k.shape[0]} is not a multiple of banks={params.banks}")
    scores = gemv(k, q, lanes=params.lanes)
    p32, *_ = softmax(scores, scale_bits, lanes=params.banks)
    p = fp32_to_bf16(p32)
    out = gemv(np.ascontiguousarray(v.T), p, lanes=params.lanes)
    return {"scores": scores, "p": p, "out": out}
