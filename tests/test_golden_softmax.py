"""Function-unit numerics (exp2, reciprocal, softmax) and decode attention, each against the bound numerics.md
§8 states, in the form it states it: exhaustive where the input space allows, exact rationals or float64
references otherwise."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pimhil.contract import EXP2_TABLE, LOG2E_F32, PRESETS
from pimhil.golden import bf16_to_bits, bits_to_f32, f32_to_bits
from pimhil.golden.attention import attention
from pimhil.golden.fpbits import bf16_bits_to_f32, fp32_mul
from pimhil.golden.softmax import exp2_fixed, lane_max, lane_tree_sum, reciprocal, softmax

U = 2.0 ** -24
QNAN = 0x7FC00000


def test_exp2_table_endpoints():
    assert EXP2_TABLE[0] == 1 << 23 and EXP2_TABLE[-1] == 1 << 24


# ---- exp2 ------------------------------------------------------------------------------------------------
def test_exp2_every_fraction():
    """The result for t is v(f) * 2**(n-23) with v depending only on the fraction f of floor(t * 2**24), so
    the two binades [0.5, 1) and [-1, -0.5) (whose t are exactly f * 2**-24, resp. -1 + f * 2**-24) cover
    every f: the worst relative error there, plus the cut of t to 24 fraction bits (a factor 2**-d,
    0 <= d < 2**-24), is within §8's 2**-16."""
    worst = 0.0
    for sign in (0, 1):
        for lo in range(0, 1 << 23, 1 << 21):
            t = (np.uint32(sign << 31) | np.uint32(126 << 23) | np.arange(lo, lo + (1 << 21), dtype=np.uint32))
            got = bits_to_f32(exp2_fixed(t)).astype(np.float64)
            ref = np.exp2(bits_to_f32(t).astype(np.float64))
            worst = max(worst, float(np.max(np.abs(got - ref) / ref)))
    assert (1 + worst) * 2.0 ** (2.0 ** -24) - 1 <= 2.0 ** -16, worst


@given(st.floats(-300.0, 127.9921875, width=32))
@settings(max_examples=4000, deadline=None)
def test_exp2_bound(t):
    """§8: |exp2(t) - 2**t| <= 2**-16 * 2**t for -126 <= t < 128; below -126 the result is that or +0."""
    got = float(bits_to_f32(exp2_fixed(f32_to_bits(np.float32(t)))))
    ref = 2.0 ** float(np.float32(t))
    if t < -126 and got == 0.0:
        return
    assert abs(got - ref) <= 2.0 ** -16 * ref


def test_exp2_specials_and_integers():
    t = np.array([0.0, -0.0, -1.0, -126.0, -127.0, 127.0, 128.0, -300.0, 300.0, np.inf, -np.inf, np.nan], np.float32)
    got = exp2_fixed(f32_to_bits(t))
    f = bits_to_f32(got)
    assert f[0] == 1.0 and f[1] == 1.0 and f[2] == 0.5 and f[3] == 2.0 ** -126
    assert got[4] == 0                                      # 2**-127 is below the smallest normal: +0
    assert f[5] == 2.0 ** 127 and got[6] == 0x7F800000
    assert got[7] == 0 and got[8] == 0x7F800000 and got[9] == 0x7F800000 and got[10] == 0 and got[11] == QNAN
    assert exp2_fixed(np.uint32(0x00000001)) == 0x3F800000  # subnormal t reads as 0


# ---- reciprocal ----------------------------------------------------------------------------------------------
def recip_error_ok(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|x*y - 1| <= 2**-22 exactly, for normal FP32 x and y (integer significands, no rounding anywhere)."""
    ex = ((x >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    ey = ((y >> np.uint32(23)) & np.uint32(0xFF)).astype(np.int64)
    mx = (x & np.uint32(0x7FFFFF)).astype(np.int64) | (1 << 23)
    my = (y & np.uint32(0x7FFFFF)).astype(np.int64) | (1 << 23)
    k = 300 - ex - ey                                       # x*y = mx*my * 2**-k
    assert np.all((ey >= 1) & (ey <= 254)) and np.all((k >= 45) & (k <= 48))
    one = np.left_shift(np.int64(1), k)
    return np.abs(mx * my - one) <= np.left_shift(np.int64(1), k - 22)


@pytest.mark.slow
@pytest.mark.parametrize("e", [1, 127, 252])
def test_reciprocal_every_significand(e):
    """§8: relative error <= 2**-22 for every significand at both ends of the domain and in its middle (the
    scaled Newton steps make the result at any exponent an exact power-of-two scaling of these)."""
    for lo in range(0, 1 << 23, 1 << 21):
        x = np.uint32(e << 23) | np.arange(lo, lo + (1 << 21), dtype=np.uint32)
        y = reciprocal(x)
        assert np.all(recip_error_ok(x, y)), hex(int(x[np.argmin(recip_error_ok(x, y))]))
        assert np.array_equal(reciprocal(x | np.uint32(0x80000000)), y | np.uint32(0x80000000))


@pytest.mark.slow
@pytest.mark.soak
def test_reciprocal_beyond_the_domain():
    """§8: for 2**126 <= |x| < Inf the result is 2**-126 at |x| = 2**126 and +-0 otherwise."""
    for e in (253, 254):
        x = np.uint32(e << 23) | np.arange(1 << 23, dtype=np.uint32)
        y = reciprocal(x)
        want = np.zeros(1 << 23, np.uint32)
        if e == 253:
            want[0] = 0x00800000
        assert np.array_equal(y, want)
        assert np.array_equal(reciprocal(x | np.uint32(0x80000000)), want | np.uint32(0x80000000))


def test_reciprocal_critical_ranges():
    """The inputs that used to flush (0x7E7FFF01..0x7E7FFFFF), both seed segments at both domain ends, and the
    whole top and bottom segment at every exponent the domain has, sampled."""
    x = [np.arange(0x7E7FFF01, 0x7E800000, dtype=np.uint32)]
    seg = np.concatenate([np.arange(1 << 17), np.arange((1 << 23) - (1 << 17), 1 << 23)]).astype(np.uint32)
    x += [np.uint32(e << 23) | seg for e in (1, 252)]
    x += [np.uint32(e << 23) | seg[::97] for e in range(2, 252)]
    x = np.concatenate(x)
    y = reciprocal(x)
    assert np.all(recip_error_ok(x, y))
    assert np.array_equal(reciprocal(x | np.uint32(0x80000000)), y | np.uint32(0x80000000))


@given(st.integers(0, 1), st.integers(1, 252), st.integers(0, (1 << 23) - 1))
@settings(max_examples=3000, deadline=None)
def test_reciprocal_exact_rational(s, e, m):
    """§8's bound against exact rationals for any normal x with |x| < 2**126."""
    x = (s << 31) | (e << 23) | m
    y = int(reciprocal(np.uint32(x)))
    assert (y >> 31) == s

    def value(b):
        return Fraction((1 << 23) | (b & 0x7FFFFF)) * Fraction(2) ** (((b >> 23) & 0xFF) - 150)

    assert abs(value(x) * value(y) - 1) <= Fraction(1, 2 ** 22)


def test_reciprocal_outside_the_domain():
    """§8: NaN -> canonical NaN, zero or subnormal -> Inf, Inf -> zero, each with x's sign."""
    x = np.array([0x00000000, 0x80000000, 0x00000001, 0x807FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
                  0xFF800001, 0x4B000000, 0xCB000000, 0x7E800000, 0x7F000000, 0x7F7FFFFF, 0xFE800001], np.uint32)
    want = [0x7F800000, 0xFF800000, 0x7F800000, 0xFF800000, 0x00000000, 0x80000000, QNAN, QNAN,
            0x34000000, 0xB4000000, 0x00800000, 0x00000000, 0x00000000, 0x80000000]
    assert [int(v) for v in reciprocal(x)] == want


# ---- max and sum ---------------------------------------------------------------------------------------------
def test_lane_tree_sum_order():
    rng = np.random.default_rng(0)
    v = rng.random(2048).astype(np.float32)
    got = float(bits_to_f32(lane_tree_sum(f32_to_bits(v), 16)))
    # The order is stated, so it is checkable: lanes first (from +0), then a pairwise tree.
    lanes = [np.float32(0)] * 16
    for i, x in enumerate(v):
        lanes[i % 16] = np.float32(lanes[i % 16] + x)
    while len(lanes) > 1:
        lanes = [np.float32(lanes[i] + lanes[i + 1]) for i in range(0, len(lanes), 2)]
    assert got == lanes[0]
    with pytest.raises(ValueError, match="lanes evenly"):
        lane_tree_sum(f32_to_bits(v[:7]), 16)


def test_lane_max_order():
    """§8 step 1: before DAZ, in the order -Inf < ... < -0 < +0 < subnormals < ... < +Inf; NaN wins."""
    assert lane_max(f32_to_bits(np.array([1, np.nan, 3], np.float32))) == QNAN
    assert lane_max(np.array([0x80000000, 0x00000000], np.uint32)) == 0x00000000
    assert lane_max(np.array([0x00000000, 0x80000000], np.uint32)) == 0x00000000
    assert lane_max(np.array([0x00000000, 0x00000001, 0x80000000], np.uint32)) == 0x00000001
    assert lane_max(np.array([0xFF800000, 0x807FFFFF, 0xBF800000], np.uint32)) == 0x807FFFFF
    assert lane_max(np.array([0xFF800000, 0xFF800000], np.uint32)) == 0xFF800000


# ---- softmax -------------------------------------------------------------------------------------------------
def softmax_eps(T: int, B: int) -> float:
    """§8's epsilon_T = 2**-13 + h * 2**-22, h = T/B - 1 + log2 B (the roundings one e_j meets in S)."""
    return 2.0 ** -13 + (T // B - 1 + (B - 1).bit_length()) * 2.0 ** -22


def test_softmax_constant_covers_its_terms():
    """The derivation behind epsilon_T (numerics.md §8): exp2's 2**-16, three roundings and LOG2E_F32's own
    error on an exponent of at most 87.4 in magnitude, the sum's gamma_h, the reciprocal and the product."""
    delta_l = abs(Fraction(float(bits_to_f32(np.uint32(LOG2E_F32)))) / Fraction(1 / math.log(2)) - 1)
    theta = (1 + U) ** 3 * (1 + float(delta_l) + 2.0 ** -52) - 1
    eps1 = (1 + 2.0 ** -16) * math.exp(87.4 * theta) - 1
    for T, B in [(16, 16), (2048, 16), (512, 4), ((2 ** 15 - 3) * 16, 16)]:     # the last: h = 2**15
        h = T // B - 1 + (B - 1).bit_length()
        gamma = h * U / (1 - h * U)
        eps_s = (1 + eps1) * (1 + gamma) * (1 + T * 2.0 ** -125) - 1
        rho = (1 + eps1) * (1 + 2.0 ** -22) * (1 + U) / (1 - eps_s) - 1
        assert rho <= softmax_eps(T, B), (T, B, rho)


scores_spread = st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 8.0, 100.0, 1e4, 1e30])
scales = st.one_of(st.sampled_from([1 / math.sqrt(128), 1.0, 2.0 ** -120, 2.0 ** 60, 0.125]),
                   st.floats(1e-6, 1e3))


@given(st.sampled_from([16, 32, 128, 512]), st.sampled_from([16, 4]), scores_spread, scales, st.integers(0, 2 ** 32))
@settings(max_examples=300, deadline=None)
def test_softmax_bound(T, B, spread, scale, seed):
    """§8's softmax bound: |p_j - phat_j| <= epsilon_T phat_j + 2**-125, phat the exact softmax of the FP32
    scores times scale (float64 here: its error, ~2**-50 relative, is left as slack), whenever
    c = scale * LOG2E_F32 is normal and at most 2**64 and every s_j - m is finite."""
    rng = np.random.default_rng(seed)
    s = (rng.standard_normal(T) * spread).astype(np.float32)
    s[rng.integers(0, T, 3)] = s[rng.integers(0, T)]                   # ties
    s[rng.integers(0, T)] = np.float32(-0.0)
    sb = f32_to_bits(s)
    sb[rng.integers(0, T)] = 0x00000005                                  # a subnormal score
    scale_b = int(f32_to_bits(np.float32(scale)))
    c = float(bits_to_f32(fp32_mul(np.uint32(scale_b), np.uint32(LOG2E_F32))))
    p, e, m, total, r = softmax(sb, scale_b, lanes=B)
    sv = bits_to_f32(sb).astype(np.float64)
    sv[np.abs(sv) < 2.0 ** -126] = 0.0
    d = sv - float(bits_to_f32(m))
    assert 2.0 ** -126 <= c <= 2.0 ** 64 and np.all(np.abs(d) <= float(np.finfo(np.float32).max))
    x = float(bits_to_f32(np.uint32(scale_b))) * d
    ref = np.exp(x - x.max())
    ref /= ref.sum()
    got = bits_to_f32(p).astype(np.float64)
    bound = softmax_eps(T, B) * ref + 2.0 ** -125
    assert np.all(np.abs(got - ref) <= bound - 2.0 ** -50 * ref), np.max(np.abs(got - ref) / ref)
    assert np.all(bits_to_f32(e[sb == m]) == 1.0)                     # s_j - m = 0 exactly: e_j = 1


@pytest.mark.parametrize("T", [16, 512, 2048])
def test_softmax_typical(T):
    """The bound on a typical score row, and that the largest score gives exactly e = 1."""
    rng = np.random.default_rng(T)
    s = (rng.standard_normal(T) * 8).astype(np.float32)
    scale = np.float32(1 / np.sqrt(128))
    p, e, m, total, r = softmax(f32_to_bits(s), f32_to_bits(scale), lanes=16)
    ref = np.exp((s.astype(np.float64) - s.max()) * float(scale))
    ref /= ref.sum()
    got = bits_to_f32(p).astype(np.float64)
    assert np.all(np.abs(got - ref) <= softmax_eps(T, 16) * ref + 2.0 ** -125)
    assert float(bits_to_f32(e[np.argmax(s)])) == 1.0


def test_softmax_outside_the_bound_is_still_defined():
    """A negative scale with an Inf score: m = +Inf, (Inf - Inf) is NaN, so every p is NaN; a negative scale
    with finite scores can overflow S to Inf, and r = 1/Inf = +0 makes p = +0 (NaN where e itself is Inf)."""
    neg = int(f32_to_bits(np.float32(-1.0)))
    s = f32_to_bits(np.array([1.0, np.inf] + [0.0] * 14, np.float32))
    p, e, m, total, r = softmax(s, neg, lanes=16)
    assert m == 0x7F800000 and np.all(p == QNAN)
    s = f32_to_bits(np.array([100.0, -100.0] + [11.6] * 14, np.float32))     # e: 1, Inf, 14 x ~2**127.5
    p, e, m, total, r = softmax(s, neg, lanes=16)
    assert e[1] == 0x7F800000 and np.all(e[2:] < 0x7F800000)
    assert total == 0x7F800000 and r == 0 and p[1] == QNAN and np.all(p[[0, *range(2, 16)]] == 0)


# ---- attention -----------------------------------------------------------------------------------------------
def gemv_bound_f64(w: np.ndarray, x: np.ndarray, lanes: int) -> np.ndarray:
    """§4's bound per row with bias 0, in float64 (inflated by 2**-40 for its own rounding)."""
    p = np.abs(w * x[None, :])
    pad = (-p.shape[1]) % lanes
    p = np.pad(p, ((0, 0), (0, pad)))
    n = p.shape[1] // lanes
    maxes = p.reshape(p.shape[0], n, lanes).max(axis=2).sum(axis=1)
    bound = (n + 1) * 2.0 ** -23 * p.sum(axis=1) + lanes * 2.0 ** -22 * maxes + (2 * n + 1) * 2.0 ** -125
    return bound * (1 + 2.0 ** -40)


def attention_check(q, k, v, scale_bits, params):
    """§8's attention bound: |out_i - sum_j v_ij p*_j| <= rho_A sum_j |v_ij| p*_j + 2**-124 sum_j |v_ij| + beta_i."""
    r = attention(q, k, v, scale_bits, params)
    qf, kf, vf = (bf16_bits_to_f32(a).astype(np.float64) for a in (q, k, v))
    for a in (qf, kf, vf):
        a[np.abs(a) < 2.0 ** -126] = 0.0                                  # DAZ
    scale = float(bits_to_f32(np.uint32(scale_bits)))
    s_exact = np.array([math.fsum(kf[j] * qf) for j in range(kf.shape[0])])
    e_s = float(np.max(gemv_bound_f64(kf, qf, params.lanes)))
    z = scale * s_exact
    p_star = np.exp(z - z.max())
    p_star /= p_star.sum()
    T = kf.shape[0]
    rho = math.exp(2 * scale * e_s) * (1 + softmax_eps(T, params.banks)) * (1 + 2.0 ** -8) - 1
    p_dev = bf16_bits_to_f32(r["p"]).astype(np.float64)
    beta = gemv_bound_f64(vf.T, p_dev, params.lanes)
    ref = np.array([math.fsum(vf[:, i] * p_star) for i in range(vf.shape[1])])
    out = bits_to_f32(r["out"]).astype(np.float64)
    weight = np.abs(vf.T) @ p_star
    bound = rho * weight + 2.0 ** -124 * np.abs(vf.T).sum(axis=1) + beta
    assert np.all(np.abs(out - ref) <= bound - 2.0 ** -45 * weight), np.max((np.abs(out - ref) - bound) / weight)
    return np.abs(out - ref), weight


@pytest.mark.parametrize("T,d", [(64, 32), (512, 128)])
def test_attention_typical(T, d):
    params = PRESETS["sim"]
    rng = np.random.default_rng(T + d)
    q = bf16_to_bits(rng.standard_normal(d))
    k = bf16_to_bits(rng.standard_normal((T, d)))
    v = bf16_to_bits(rng.standard_normal((T, d)))
    err, weight = attention_check(q, k, v, f32_to_bits(np.float32(1 / np.sqrt(d))), params)
    # Dominated by p's BF16 rounding (2**-8 relative): within 2**-7 of the weighted magnitude on such inputs.
    assert np.all(err <= 2.0 ** -7 * weight)


@given(st.sampled_from(["sim", "board"]), st.sampled_from([1e-19, 0.01, 1.0, 4.0, 1e15]),
       st.sampled_from([1e-25, 1.0, 1e20]), st.sampled_from([0.05, 1.0, 30.0]), st.integers(0, 2 ** 32))
@settings(max_examples=60, deadline=None)
def test_attention_bound(preset, qk_mag, v_mag, scale, seed):
    """The attention bound over magnitudes from near the flush threshold to near overflow."""
    params = PRESETS[preset]
    rng = np.random.default_rng(seed)
    T, d = params.banks * 4, params.lanes * 2
    q = bf16_to_bits(rng.standard_normal(d) * qk_mag)
    k = bf16_to_bits(rng.standard_normal((T, d)) * qk_mag)
    v = bf16_to_bits(rng.standard_normal((T, d)) * v_mag)
    scale_bits = f32_to_bits(np.float32(min(scale / (qk_mag * qk_mag), 2.0 ** 63)))   # keeps c <= 2**64
    scores = bits_to_f32(attention(q, k, v, scale_bits, params)["scores"])
    if not np.all(np.isfinite(scores)):
        return
    attention_check(q, k, v, scale_bits, params)


def test_attention_shape_errors():
    p = PRESETS["sim"]
    with pytest.raises(ValueError, match="attention needs"):
        attention(np.zeros(8, np.uint16), np.zeros((16, 4), np.uint16), np.zeros((16, 4), np.uint16), 0, p)
    with pytest.raises(ValueError, match="multiple of banks"):
        attention(np.zeros(8, np.uint16), np.zeros((17, 8), np.uint16), np.zeros((17, 8), np.uint16), 0, p)
