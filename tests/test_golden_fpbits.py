"""Round-and-flush, FP32 add/mul and BF16 read-out against exact rational arithmetic and IEEE numpy."""

from fractions import Fraction

import ml_dtypes
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pimhil.golden.fpbits import (bits_to_f32, f32_to_bits, fp32_add, fp32_mul, fp32_to_bf16, round_pack_f32)

F32_MAX = Fraction((2 ** 24 - 1) * 2 ** 104)
F32_MIN_NORMAL = Fraction(1, 2 ** 126)


def exact_round_flush(v: Fraction) -> int:
    """Reference for numerics.md §1: RNE to 24 bits with unbounded exponent, then flush / saturate."""
    sign = 1 if v < 0 else 0
    a = abs(v)
    if a == 0:
        return sign << 31
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while a >= Fraction(2) ** (e + 1):
        e += 1
    while a < Fraction(2) ** e:
        e -= 1
    scaled = a / Fraction(2) ** (e - 23)          # in [2**23, 2**24)
    q, rem = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rem
    if twice > scaled.denominator or (twice == scaled.denominator and q & 1):
        q += 1
    r = Fraction(q) * Fraction(2) ** (e - 23)
    if r < F32_MIN_NORMAL:
        return sign << 31
    if r > F32_MAX:
        return (sign << 31) | 0x7F800000
    return int(f32_to_bits(np.float32(float(r)))) | (sign << 31)


def f32_value(bits: int) -> Fraction:
    return Fraction(float(bits_to_f32(np.uint32(bits))))


finite_normal = st.integers(0, 1).flatmap(lambda s: st.integers(1, 254).flatmap(
    lambda e: st.integers(0, (1 << 23) - 1).map(lambda m: (s << 31) | (e << 23) | m)))
any_f32 = st.integers(0, 2 ** 32 - 1)


@given(st.integers(0, 1), st.integers(1, 2 ** 52), st.integers(-400, 300))
@settings(max_examples=1500, deadline=None)
def test_round_pack_matches_exact_rounding(sign, mag, exp2):
    want = exact_round_flush((-1) ** sign * Fraction(mag) * Fraction(2) ** exp2)
    assert int(round_pack_f32(sign, mag, exp2)) == want


def test_round_pack_ties_to_even():
    # 2**24 + 1 is a tie between 2**24 and 2**24 + 2: even wins; 2**24 + 3 rounds up.
    assert int(round_pack_f32(0, 2 ** 24 + 1, 0)) == int(f32_to_bits(np.float32(2 ** 24)))
    assert int(round_pack_f32(0, 2 ** 24 + 3, 0)) == int(f32_to_bits(np.float32(2 ** 24 + 4)))
    # Just below the smallest normal flushes, even though IEEE would round the subnormal up to it.
    assert int(round_pack_f32(1, 2 ** 24 - 1, -150)) == 0x80000000


@given(finite_normal, finite_normal)
@settings(max_examples=1500, deadline=None)
def test_fp32_add_is_exactly_rounded(a, b):
    want = exact_round_flush(f32_value(a) + f32_value(b))
    got = int(fp32_add(np.uint32(a), np.uint32(b)))
    if f32_value(a) + f32_value(b) == 0:
        assert got == 0                                  # exact cancellation is +0
    else:
        assert got == want


@given(finite_normal, finite_normal)
@settings(max_examples=1500, deadline=None)
def test_fp32_mul_is_exactly_rounded(a, b):
    assert int(fp32_mul(np.uint32(a), np.uint32(b))) == exact_round_flush(f32_value(a) * f32_value(b))


def test_fp32_specials():
    inf, ninf, nan, pz, nz = 0x7F800000, 0xFF800000, 0x7FC00000, 0, 0x80000000
    sub = 0x00000001
    one = 0x3F800000
    assert int(fp32_add(inf, ninf)) == nan
    assert int(fp32_add(inf, one)) == inf
    assert int(fp32_add(0xFFC12345, one)) == nan                 # payloads are not propagated
    assert int(fp32_add(nz, nz)) == nz
    assert int(fp32_add(pz, nz)) == pz
    assert int(fp32_add(sub, pz)) == pz                          # DAZ
    assert int(fp32_add(0x7F7FFFFF, 0x7F7FFFFF)) == inf          # overflow
    assert int(fp32_mul(inf, pz)) == nan
    assert int(fp32_mul(inf, pz, zero_wins=True)) == pz
    assert int(fp32_mul(ninf, pz, zero_wins=True)) == nz
    assert int(fp32_mul(sub, inf)) == nan                        # subnormal is zero
    assert int(fp32_mul(0x00800000, 0x3F000000)) == pz           # 2**-127 flushes


@given(any_f32)
@settings(max_examples=2000, deadline=None)
def test_bf16_readout_matches_ml_dtypes_rne(x):
    """ml_dtypes' float32 -> bfloat16 cast (RNE, an independent implementation) is the reference."""
    got = int(fp32_to_bf16(np.uint32(x)))
    if ((x >> 23) & 0xFF) == 0xFF and x & 0x7FFFFF:
        assert got == 0x7FC0
    else:
        ref = np.array([x], np.uint32).view(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)[0]
        assert got == int(ref)


def test_bf16_readout_ties_and_overflow():
    assert int(fp32_to_bf16(0x3F808000)) == 0x3F80     # tie, even stays
    assert int(fp32_to_bf16(0x3F818000)) == 0x3F82     # tie, odd rounds up
    assert int(fp32_to_bf16(0x7F7FFFFF)) == 0x7F80     # rounds past the largest BF16
    assert int(fp32_to_bf16(0xFFC00001)) == 0x7FC0


def test_elementwise_ops_are_the_fp32_ops_on_whole_vectors():
    from pimhil.golden import ewadd, ewmul

    rng = np.random.default_rng(2)
    a = rng.integers(0, 2 ** 32, 5000, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2 ** 32, 5000, dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(ewadd(a, b), fp32_add(a, b))
    assert np.array_equal(ewmul(a, b), fp32_mul(a, b))
    # spot-check against the exact reference on normal operands
    for i in range(200):
        ex, ey = 1 + int(a[i]) % 254, 1 + int(b[i]) % 254          # normal exponents only
        x, y = (int(a[i]) & 0x807FFFFF) | (ex << 23), (int(b[i]) & 0x807FFFFF) | (ey << 23)
        assert int(ewmul(np.uint32(x), np.uint32(y))) == exact_round_flush(f32_value(x) * f32_value(y))
    import pytest
    with pytest.raises(ValueError, match="one shape"):
        ewadd(a[:3], b[:4])


def test_zero_products_take_the_xor_of_the_signs():
    """§1 rule 1: an exact zero only comes from a zero operand in a product, and is signed by
    sign(a) xor sign(b), also in the AF multiply where a zero beats Inf (but not NaN)."""
    one, neg, sub, nsub, inf, ninf = 0x3F800000, 0xBF800000, 0x00000001, 0x80000001, 0x7F800000, 0xFF800000
    for a, b, want in [(0, one, 0), (0, neg, 0x80000000), (0x80000000, neg, 0), (0x80000000, one, 0x80000000),
                       (sub, neg, 0x80000000), (nsub, nsub, 0), (neg, 0, 0x80000000)]:
        assert int(fp32_mul(a, b)) == want and int(fp32_mul(a, b, zero_wins=True)) == want
    assert int(fp32_mul(0x80000000, inf, zero_wins=True)) == 0x80000000
    assert int(fp32_mul(0, ninf, zero_wins=True)) == 0x80000000
    assert int(fp32_mul(0x7FC00000, 0, zero_wins=True)) == 0x7FC00000      # a NaN slope against 0 is NaN
    assert int(fp32_mul(0, 0xFFC00001, zero_wins=True)) == 0x7FC00000


def test_exact_zero_sums():
    """§1 rule 1 for sums: exact cancellation is +0, (-0) + (-0) = -0, a flushed sum keeps its sign."""
    assert int(fp32_add(0x3F800000, 0xBF800000)) == 0
    assert int(fp32_add(0xBF800000, 0x3F800000)) == 0
    assert int(fp32_add(0x80000000, 0x80000000)) == 0x80000000
    assert int(fp32_add(0x80000000, 0x80000001)) == 0x80000000              # -0 + (-subnormal = -0)
    assert int(fp32_add(0x00800001, 0x80800000)) == 0                       # +2**-149: flushes to +0
    assert int(fp32_add(0x80800001, 0x00800000)) == 0x80000000              # -2**-149: flushes to -0


def bf16_nearest(sign: int, a: Fraction) -> int:
    """RNE of (-1)**sign * a onto the BF16 grid including its subnormals (spacing 2**-133 below 2**-126)."""
    q = a / Fraction(1, 2 ** 133)                       # in units of the smallest BF16 subnormal
    n, rem = divmod(q.numerator, q.denominator)
    if 2 * rem > q.denominator or (2 * rem == q.denominator and n & 1):
        n += 1
    return (sign << 15) | n                              # n <= 0x80: a subnormal pattern, or 2**-126 itself


@given(st.integers(0, 1), st.integers(0, (1 << 23) - 1))
@settings(max_examples=2000, deadline=None)
def test_bf16_readout_of_a_subnormal_is_not_flushed(sign, mant):
    """§5: the read-out applies no DAZ and no FTZ; an FP32 subnormal (only WR_BIAS can load one) reads out
    as the BF16 value nearest to it, a BF16 subnormal or 2**-126."""
    x = (sign << 31) | mant
    want = bf16_nearest(sign, Fraction(mant, 2 ** 149))
    assert int(fp32_to_bf16(np.uint32(x))) == want
