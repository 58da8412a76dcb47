"""Lane reduction and GEMV of the golden model against float64, within the bounds of numerics.md §3-§4."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pimhil.contract import PRESETS, Command, Flag, Op
from pimhil.golden import GoldenArray, bits_to_f32, gemv, lane_sum
from pimhil.golden.fpbits import bf16_bits_to_f32

L = 16
FLT_MAX = float(np.finfo(np.float32).max)
MIN_NORMAL = 2.0 ** -126

finite_bf16 = st.integers(0, 1).flatmap(lambda s: st.integers(1, 254).flatmap(
    lambda e: st.integers(0, 127).map(lambda m: (s << 15) | (e << 7) | m)))
near_one_bf16 = st.integers(0, 1).flatmap(lambda s: st.integers(110, 145).flatmap(
    lambda e: st.integers(0, 127).map(lambda m: (s << 15) | (e << 7) | m)))
zeros_subnormals = st.sampled_from([0x0000, 0x8000, 0x0001, 0x807F, 0x0040])
lane_value = st.one_of(finite_bf16, near_one_bf16, near_one_bf16, zeros_subnormals)


def products(w, x):
    wv = bf16_bits_to_f32(w).astype(np.float64)
    xv = bf16_bits_to_f32(x).astype(np.float64)
    wv[np.abs(wv) < MIN_NORMAL] = 0.0          # DAZ
    xv[np.abs(xv) < MIN_NORMAL] = 0.0
    return wv * xv                              # exact: 8x8-bit significands


@given(st.lists(lane_value, min_size=L, max_size=L), st.lists(lane_value, min_size=L, max_size=L))
@settings(max_examples=1500, deadline=None)
def test_lane_sum_within_bound_of_float64(w, x):
    w = np.array(w, np.uint16)
    x = np.array(x, np.uint16)
    p = products(w, x)
    exact = float(np.sum(p))     # float64 sum of 16 exact products: error << the bound below
    got_bits = int(lane_sum(w, x))
    got = float(bits_to_f32(np.uint32(got_bits)))
    pmax = float(np.max(np.abs(p)))
    if np.isinf(got):
        # Overflow only when the true sum is at or beyond the FP32 range (within the truncation bound).
        assert abs(exact) + L * 2.0 ** -22 * pmax >= FLT_MAX
        assert np.sign(got) == np.sign(exact)
        return
    bound = L * 2.0 ** -22 * pmax + 2.0 ** -24 * abs(got) + MIN_NORMAL
    assert abs(got - exact) <= bound, (hex(got_bits), got, exact, bound)


def test_lane_sum_special_rules():
    one, z = 0x3F80, np.zeros(L, np.uint16)

    def ls(pairs):
        w, x = z.copy(), z.copy()
        for i, (a, b) in enumerate(pairs):
            w[i], x[i] = a, b
        return int(lane_sum(w, x))

    assert ls([(0x7FC0, one)]) == 0x7FC00000                    # NaN in
    assert ls([(0x7F80, 0x0000)]) == 0x7FC00000                 # Inf x 0
    assert ls([(0x7F80, 0x0001)]) == 0x7FC00000                 # Inf x subnormal (= 0)
    assert ls([(0x7F80, one), (0xFF80, one)]) == 0x7FC00000     # +Inf and -Inf
    assert ls([(0x7F80, one), (0x7F7F, 0x7F7F)]) == 0x7F800000  # Inf wins over finite overflow
    assert ls([(0xFF80, one), (one, one)]) == 0xFF800000
    assert ls([(0x8000, one), (0x8000, one)]) == 0x00000000     # zero sum is +0
    assert ls([(one, one), (one | 0x8000, one)]) == 0x00000000  # exact cancellation is +0
    assert ls([(0x0001, 0x7F7F)]) == 0                          # subnormal input reads as zero
    assert ls([(0x7F7F, 0x7F7F)]) == 0x7F800000                 # finite overflow -> Inf
    assert ls([(0x8080, 0x0080)]) == 0x80000000                 # 2**-252 flushes to -0
    # Largest exponent difference: the small lane is shifted out entirely (truncated, no rounding up).
    assert ls([(one, one), (0x0080, 0x0080)]) == 0x3F800000


def test_lane_sum_truncation_is_toward_zero():
    # 1 + 3*2**-9 * ... : a lane 2**-33 below the largest lies entirely below the guard bits and vanishes
    # for both signs, so truncation of negative lanes does not round away from zero.
    w = np.zeros(L, np.uint16)
    x = np.zeros(L, np.uint16)
    w[0], x[0] = 0x3F80, 0x3F80
    w[1], x[1] = 0xB0FF, 0x3F80       # -(2**-29)*1.99
    assert int(lane_sum(w, x)) == 0x3F800000


def test_gemv_within_bound_of_float64():
    rng = np.random.default_rng(7)
    m, k = 128, 2048
    w = rng.standard_normal((m, k)).astype(np.float32)
    x = rng.standard_normal(k).astype(np.float32)
    from pimhil.golden import bf16_to_bits
    wb, xb = bf16_to_bits(w), bf16_to_bits(x)
    got = bits_to_f32(gemv(wb, xb, lanes=L)).astype(np.float64)
    p = bf16_bits_to_f32(wb).astype(np.float64) * bf16_bits_to_f32(xb).astype(np.float64)
    exact = p.sum(axis=1)
    n = k // L
    bound = (n + 4 * L) * 2.0 ** -22 * np.abs(p).sum(axis=1)
    assert np.all(np.abs(got - exact) <= bound)
    # And the bound is not vacuous: the error is far below the BF16 rounding of the result.
    assert np.max(np.abs(got - exact) / np.abs(p).sum(axis=1)) < 2.0 ** -14


def test_gemv_order_is_per_row_increasing_k_whatever_the_chunking():
    """The array, driven with K split into GB chunks and rows spread over banks, gives golden.gemv's bits."""
    p = PRESETS["board"]
    rng = np.random.default_rng(3)
    from pimhil.golden import bf16_to_bits
    m, k = p.banks * 3, p.gb_words * 2
    w = bf16_to_bits(rng.standard_normal((m, k)))
    x = bf16_to_bits(rng.standard_normal(k))
    bias = rng.standard_normal(m).astype(np.float32).view(np.uint32)
    arr = GoldenArray(p)
    chunk_bursts = p.gb_bursts
    bursts_per_row_needed = k // p.lanes
    assert bursts_per_row_needed <= p.bursts_per_row * 2
    # weight row i -> bank i % B, rows (i // B) * 2 + c for the two chunks
    for i in range(m):
        b, g = i % p.banks, i // p.banks
        wr = w[i].reshape(-1, p.lanes)
        for c in range(2):
            for j in range(chunk_bursts):
                arr.execute(Command(Op.WR_SBK, bank=b, row=2 * g + c, col=j, data=tuple(wr[c * chunk_bursts + j])))
        arr.execute(Command(Op.WR_BIAS, bank=b, acc=g, imm=int(bias[i])))
    out = np.zeros(m, np.uint32)
    for c in range(2):
        xc = x.reshape(-1, p.lanes)[c * chunk_bursts:(c + 1) * chunk_bursts]
        for j, burst in enumerate(xc):
            arr.execute(Command(Op.WR_GB, gb=j, data=tuple(burst)))
        for g in range(m // p.banks):
            flags = Flag.READ if c == 1 else 0
            r = arr.execute(Command(Op.MAC_ABK, flags=flags, acc=g, row=2 * g + c, count=chunk_bursts))
            if c == 1:
                for b in range(p.banks):
                    out[g * p.banks + b] = (r[0].data >> (32 * b)) & 0xFFFFFFFF
    assert np.array_equal(out, gemv(w, x, lanes=p.lanes, bias_bits=bias))


def test_gemv_rejects_bad_shapes():
    with pytest.raises(ValueError, match="gemv needs"):
        gemv(np.zeros((4, 8), np.uint16), np.zeros(7, np.uint16), lanes=4)
    with pytest.raises(ValueError, match="bias must have shape"):
        gemv(np.zeros((4, 8), np.uint16), np.zeros(8, np.uint16), lanes=4, bias_bits=np.zeros(3, np.uint32))


def test_gemv_pads_k():
    rng = np.random.default_rng(1)
    from pimhil.golden import bf16_to_bits
    w, x = bf16_to_bits(rng.standard_normal((8, 37))), bf16_to_bits(rng.standard_normal(37))
    wp, xp = np.pad(w, ((0, 0), (0, 11))), np.pad(x, (0, 11))
    assert np.array_equal(gemv(w, x, lanes=16), gemv(wp, xp, lanes=16))
