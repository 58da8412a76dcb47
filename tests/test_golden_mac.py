"""Lane reduction and GEMV of the golden model against exact rational arithmetic, within the bounds of
numerics.md §3-§4 as stated there (every finite input, flush-to-zero and the bias included)."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pimhil.contract import PRESETS, Command, Flag, Op
from pimhil.golden import GoldenArray, bits_to_f32, gemv, lane_sum
from pimhil.golden.fpbits import bf16_bits_to_f32

L = 16
TINY = Fraction(1, 2 ** 126)                      # 2**-126: the flush threshold
OVERFLOW = Fraction(2 ** 128 - 2 ** 103)          # the smallest magnitude that rounds to Inf


def bf16_exact(bits: int) -> Fraction:
    """The value a MAC lane reads: DAZ, so a subnormal is zero (§1); finite patterns only."""
    e, m = (bits >> 7) & 0xFF, bits & 0x7F
    if e == 0:
        return Fraction(0)
    return (-1 if bits >> 15 else 1) * Fraction(128 + m) * Fraction(2) ** (e - 134)


def f32_exact(bits: int) -> Fraction:
    """The value of a finite FP32 pattern (subnormals included: the bound counts a subnormal bias as is)."""
    e, m = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    v = Fraction(m) * Fraction(2) ** -149 if e == 0 else Fraction((1 << 23) | m) * Fraction(2) ** (e - 150)
    return -v if bits >> 31 else v


def lane_bound(p: list[Fraction], lane: Fraction) -> Fraction:
    """§3: |lane - sum p| <= (L-1) 2**-22 max|p| + 2**-24 |lane| + 2**-126 for a finite lane sum."""
    pmax = max((abs(v) for v in p), default=Fraction(0))
    return (L - 1) * Fraction(1, 2 ** 22) * pmax + Fraction(1, 2 ** 24) * abs(lane) + TINY


def gemv_bound(p_bursts: list[list[Fraction]], bias: Fraction) -> Fraction:
    """§4: (n+1) 2**-23 (|bias| + sum|p|) + L 2**-22 sum_k max_l |p_kl| + (2n+1) 2**-125, n bursts."""
    n = len(p_bursts)
    total = abs(bias) + sum(abs(v) for burst in p_bursts for v in burst)
    maxes = sum(max(abs(v) for v in burst) for burst in p_bursts)
    return (n + 1) * Fraction(1, 2 ** 23) * total + L * Fraction(1, 2 ** 22) * maxes + (2 * n + 1) * Fraction(
        1, 2 ** 125)


def bf16_pairs(n: int):
    """n lanes of (w, x) BF16 patterns whose product exponents cluster in one regime per draw: around the
    flush threshold 2**-126, around 1, just below the FP32 overflow, or anywhere (2**-252 .. 2**256); with
    zeros, subnormals and exact-cancellation partners mixed in."""
    # biased exponent sum ew + ex of a product near 2**k is k + 254
    regime = st.sampled_from([-126 + 254, -124 + 254, 254, 127 + 254, None])

    def lanes(target):
        def one(args):
            sw, sx, ew, mw, mx, dx, ex_any, kind = args
            ex = ex_any if target is None else min(254, max(1, target - ew + dx))
            w, x = (sw << 15) | (ew << 7) | mw, (sx << 15) | (ex << 7) | mx
            if kind == 1:
                x = 0x8000 if sx else 0x0000
            elif kind == 2:
                x = (sx << 15) | mx                     # subnormal: reads as zero
            return w, x
        lane = st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(1, 254), st.integers(0, 127),
                         st.integers(0, 127), st.integers(-4, 4), st.integers(1, 254),
                         st.sampled_from([0] * 8 + [1, 2])).map(one)
        return st.lists(lane, min_size=n, max_size=n)

    def cancel(pairs_and_flags):
        pairs, flags = pairs_and_flags
        out = list(pairs)
        for i, f in enumerate(flags[:-1]):
            if f:
                # lane i+1 cancels lane i exactly, or up to one unit of w's last place: tiny true sums
                w, x = out[i]
                bump = f == 2 and (w & 0x7F) < 127
                out[i + 1] = ((w ^ 0x8000) + bump, x)
        return out

    flags = st.lists(st.sampled_from([0, 0, 0, 0, 1, 2]), min_size=n, max_size=n)
    return regime.flatmap(lanes).flatmap(lambda pairs: st.tuples(st.just(pairs), flags)).map(cancel)


@given(bf16_pairs(L))
@settings(max_examples=2000, deadline=None)
def test_lane_sum_within_stated_bound(pairs):
    """§3's bound, exactly: products and their sum as rationals, every exponent regime including flush."""
    w = np.array([a for a, _ in pairs], np.uint16)
    x = np.array([b for _, b in pairs], np.uint16)
    p = [bf16_exact(int(a)) * bf16_exact(int(b)) for a, b in pairs]
    exact = sum(p, Fraction(0))
    got_bits = int(lane_sum(w, x))
    if ((got_bits >> 23) & 0xFF) == 0xFF:
        # Overflow: only when the truncated sum reaches the rounding threshold, with its sign.
        assert got_bits & 0x7FFFFF == 0, hex(got_bits)
        slack = lane_bound(p, Fraction(0)) - TINY
        assert abs(exact) + slack >= OVERFLOW
        assert (got_bits >> 31) == (exact < 0) or abs(exact) <= slack
        return
    got = f32_exact(got_bits)
    assert abs(got - exact) <= lane_bound(p, got), (hex(got_bits), float(got), float(exact))


def test_lane_sum_flush_is_inside_the_bound():
    """A true sum of 1.5 * 2**-128 reads out as +0: the bound's 2**-126 term covers it (the bound without it,
    (L-1) 2**-22 max|p| + 2**-24 |lane|, would be 15 * 1.5 * 2**-150)."""
    w = np.zeros(L, np.uint16)
    x = np.zeros(L, np.uint16)
    w[0], x[0] = 0x1FC0, 0x1F80                   # 1.5 * 2**-64 and 2**-64
    p = [bf16_exact(int(a)) * bf16_exact(int(b)) for a, b in zip(w, x)]
    assert sum(p) == Fraction(3, 2 ** 129)
    assert int(lane_sum(w, x)) == 0
    assert Fraction(3, 2 ** 129) <= lane_bound(p, Fraction(0))
    assert Fraction(3, 2 ** 129) > lane_bound(p, Fraction(0)) - TINY


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


finite_f32 = st.one_of(
    st.sampled_from([0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF]),
    st.tuples(st.integers(0, 1), st.sampled_from([1, 2, 3, 100, 127, 150, 252, 253, 254]),
              st.integers(0, (1 << 23) - 1)).map(lambda t: (t[0] << 31) | (t[1] << 23) | t[2]),
    st.integers(0, 0x7F7FFFFF),
    st.integers(0x80000000, 0xFF7FFFFF),
)


@given(st.lists(bf16_pairs(L), min_size=1, max_size=6), finite_f32)
@settings(max_examples=500, deadline=None)
def test_gemv_within_stated_bound(bursts, bias):
    """§4's bound, exactly, for one row of n bursts on top of any finite bias (subnormal, huge, zero)."""
    w = np.array([[a for burst in bursts for a, _ in burst]], np.uint16)
    x = np.array([b for burst in bursts for _, b in burst], np.uint16)
    got_bits = int(gemv(w, x, lanes=L, bias_bits=np.array([bias], np.uint32))[0])
    if ((got_bits >> 23) & 0xFF) == 0xFF:
        return                                          # the bound is stated for finite results
    p = [[bf16_exact(a) * bf16_exact(b) for a, b in burst] for burst in bursts]
    b = f32_exact(bias)
    exact = b + sum(v for burst in p for v in burst)
    got = f32_exact(got_bits)
    assert abs(got - exact) <= gemv_bound(p, b), (hex(got_bits), float(got), float(exact))


def test_gemv_bound_covers_flush_and_bias():
    """A bias that DAZ reads as zero and lane sums that flush: the absolute term of the bound is what holds."""
    w = np.zeros((1, 2 * L), np.uint16)
    x = np.zeros(2 * L, np.uint16)
    w[0, 0], x[0] = 0x1FC0, 0x1F80                 # 1.5 * 2**-128 in burst 0
    w[0, L], x[L] = 0x9FC0, 0x1F00                 # -1.5 * 2**-129 in burst 1
    bias = 0x00600000                               # a subnormal: 0.75 * 2**-126
    got = int(gemv(w, x, lanes=L, bias_bits=np.array([bias], np.uint32))[0])
    assert got == 0
    p = [[bf16_exact(int(a)) * bf16_exact(int(b)) for a, b in zip(w[0, k * L:(k + 1) * L], x[k * L:(k + 1) * L])]
         for k in range(2)]
    exact = f32_exact(bias) + sum(v for burst in p for v in burst)
    assert exact > 0 and exact <= gemv_bound(p, f32_exact(bias))


def test_gemv_within_bound_on_a_large_random_matrix():
    """§4's bound on a 128 x 2048 GEMV with a random bias; the reference row sums are math.fsum's correctly
    rounded float64 values (within 2**-53 relative of exact, far below the bound's scale)."""
    rng = np.random.default_rng(7)
    m, k = 128, 2048
    from pimhil.golden import bf16_to_bits
    wb, xb = bf16_to_bits(rng.standard_normal((m, k))), bf16_to_bits(rng.standard_normal(k))
    bias = (rng.standard_normal(m) * 4).astype(np.float32)
    got = bits_to_f32(gemv(wb, xb, lanes=L, bias_bits=bias.view(np.uint32))).astype(np.float64)
    p = bf16_bits_to_f32(wb).astype(np.float64) * bf16_bits_to_f32(xb).astype(np.float64)
    n = k // L
    for i in range(m):
        exact = math.fsum([float(bias[i]), *p[i]])
        total = abs(float(bias[i])) + np.abs(p[i]).sum()
        maxes = np.abs(p[i]).reshape(n, L).max(axis=1).sum()
        bound = (n + 1) * 2.0 ** -23 * total + L * 2.0 ** -22 * maxes + (2 * n + 1) * 2.0 ** -125
        assert abs(got[i] - exact) <= bound * (1 - 2.0 ** -40) - 2.0 ** -52 * abs(exact)
    # And the bound is not vacuous: the error is far below the BF16 rounding of the result.
    ref = np.array([math.fsum([float(bias[i]), *p[i]]) for i in range(m)])
    assert np.max(np.abs(got - ref) / (np.abs(p).sum(axis=1) + np.abs(bias))) < 2.0 ** -14


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
