"""Decode attention for one head, in device arithmetic: scores = K q, softmax (hub), out = V^T p."""

from __future__ import annotations

import numpy as np

from ..contract import LOG2E_F32, DeviceParams
from .fpbits import as_u16, as_u32, fp32_add, fp32_mul, fp32_to_bf16
from .mac import gemv
from .softmax import exp2_fixed, lane_max, reciprocal, softmax


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


def combine(outs, ms, sums, scale_bits) -> np.ndarray:
    """The split-T combine of docs/numerics.md §8.1 (flash-decoding), in device arithmetic.

    outs (n, d): each tile's normalised output (FP32 bits); ms (n,): each tile's score maximum m_t; sums (n,):
    each tile's softmax sum S_t; scale_bits: the FP32 scale. With c = scale ⊗ LOG2E_F32 and M = max_t m_t (the
    total order of lane_max): a_t = exp2((m_t ⊖ M) ⊗ c), w_t = S_t ⊗ a_t, W = ((+0 ⊕ w_0) ⊕ w_1) ⊕ …,
    r = reciprocal(W), f_t = w_t ⊗ r, out = ((+0 ⊕ outs_0 ⊗ f_0) ⊕ outs_1 ⊗ f_1) ⊕ … . Returns FP32 bits (d,).
    """
    outs, ms, sums = as_u32(outs), as_u32(ms), as_u32(sums)
    m = lane_max(ms)
    c = fp32_mul(np.uint32(scale_bits), np.uint32(LOG2E_F32))
    a = exp2_fixed(fp32_mul(fp32_add(ms, m ^ np.uint32(0x80000000)), c))
    w = fp32_mul(sums, a)
    total = np.uint32(0)
    for wt in w:
        total = fp32_add(total, wt)
    f = fp32_mul(w, reciprocal(total))
    out = np.zeros(outs.shape[1], np.uint32)
    for t in range(outs.shape[0]):
        out = fp32_add(out, fp32_mul(outs[t], f[t]))
    return out


def attention_tiles(q_bits, k_bits, v_bits, scale_bits, params: DeviceParams, tile_tokens: int) -> dict:
    """Attention over T tokens in tiles of tile_tokens (T a multiple of it), as the driver runs it: each tile is
    attention() on its keys (out_t, and its softmax's m_t and S_t), then `combine`; one tile is attention()
    itself. Returns {"out": FP32 bits (d,), "tiles": n}. Raises ValueError on shapes that do not divide."""
    q, k, v = as_u16(q_bits), as_u16(k_bits), as_u16(v_bits)
    T = k.shape[0]
    if tile_tokens < 1 or T % tile_tokens:
        raise ValueError(f"T={T} is not a multiple of the tile size {tile_tokens}")
    n = T // tile_tokens
    if n == 1:
        return {"out": attention(q, k, v, scale_bits, params)["out"], "tiles": 1}
    outs, ms, sums = [], [], []
    for t in range(n):
        sl = slice(t * tile_tokens, (t + 1) * tile_tokens)
        scores = gemv(k[sl], q, lanes=params.lanes)
        p32, _, m, total, _ = softmax(scores, scale_bits, lanes=params.banks)
        outs.append(gemv(np.ascontiguousarray(v[sl].T), fp32_to_bf16(p32), lanes=params.lanes))
        ms.append(m)
        sums.append(total)
    return {"out": combine(np.array(outs), np.array(ms, np.uint32), np.array(sums, np.uint32), scale_bits),
            "tiles": n}
