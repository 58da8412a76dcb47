"""Activation LUT (numerics.md §6): evaluation arithmetic against exact rationals, table accuracy per function."""


from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pimhil.contract import AF_SEGMENTS
from pimhil.golden import af_eval, build_lut
from pimhil.golden.activation import FUNCTIONS, segment_index
from pimhil.golden.fpbits import bits_to_f32, f32_to_bits


def test_segment_index_edges():
    xs = np.array([-1e30, -8.0, -7.75001, -7.75, -0.25, -1e-30, 0.0, 1e-30, 0.25, 7.75, 7.99, 8.0, np.inf, -np.inf],
                  np.float32)
    want = [0, 0, 0, 1, 31, 31, 32, 32, 33, 63, 63, 63, 63, 0]
    assert segment_index(f32_to_bits(xs)).tolist() == want


def _inputs():
    """A fine grid over the domain and past its ends, then magnitudes out to the FP32 maximum, both signs."""
    grid = np.linspace(-12, 12, 24001)
    far = np.logspace(np.log10(12), np.log10(3.4e38), 2000)
    return np.concatenate([grid, far, -far, [3.4028234e38, -3.4028234e38]]).astype(np.float32)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_table_accuracy(name):
    """§6: |AF(x) - f(x)| <= the stated error for every finite x, in the domain and beyond it (where the end
    segments' asymptotes serve), except leaky ReLU below -8: there the error is relative, <= 2**-23 |f(x)|."""
    f, _, _, stated = FUNCTIONS[name]
    a, b = build_lut(name)
    xs = _inputs()
    ys = bits_to_f32(af_eval(f32_to_bits(xs), a, b)).astype(np.float64)
    ref = np.array([f(float(x)) for x in xs])
    allowed = np.full(len(xs), stated)
    if name == "leaky_relu":
        allowed = np.where(xs < -8, 2.0 ** -23 * np.abs(ref), allowed)
    err = np.abs(ys - ref)
    assert np.all(err <= allowed), f"{name}: error {err.max():.2e} at x={xs[np.argmax(err - allowed)]}"
    # Infinite inputs land on the asymptotes exactly.
    y_inf = bits_to_f32(af_eval(np.array([0x7F800000, 0xFF800000], np.uint32), a, b))
    lim = {"gelu": (np.inf, 0.0), "sigmoid": (1.0, 0.0), "tanh": (1.0, -1.0), "relu": (np.inf, 0.0),
           "leaky_relu": (np.inf, -np.inf), "identity": (np.inf, -np.inf)}[name]
    assert tuple(float(v) for v in y_inf) == lim


def test_table_definitions():
    """§6's builder definitions: the chord through the segment ends, slope and intercept each one RNE float64 ->
    FP32 rounding; the end segments hold the asymptote lines; leaky ReLU's slope is 0.01."""
    import math
    for name, (f, low, high, _) in FUNCTIONS.items():
        a, b = build_lut(name)
        av, bv = bits_to_f32(a), bits_to_f32(b)
        assert (av[0], bv[0]) == tuple(np.float32(v) for v in low)
        assert (av[-1], bv[-1]) == tuple(np.float32(v) for v in high)
        for k in (1, 20, 32, 45, AF_SEGMENTS - 2):
            x0 = -8 + k / 4
            slope = (f(x0 + 0.25) - f(x0)) / 0.25
            assert av[k] == np.float32(slope) and bv[k] == np.float32(f(x0) - slope * x0)
    assert FUNCTIONS["leaky_relu"][1] == (0.01, 0.0)
    gelu = FUNCTIONS["gelu"][0]
    assert gelu(1.0) == 0.5 * (1.0 + math.erf(1.0 / math.sqrt(2.0)))     # the exact (erf) form, not tanh's


finite_f32 = st.one_of(
    st.tuples(st.integers(0, 1), st.sampled_from([0, 1, 2, 60, 100, 120, 127, 130, 200, 250, 253, 254]),
              st.integers(0, (1 << 23) - 1)).map(lambda t: (t[0] << 31) | (t[1] << 23) | t[2]),
    st.integers(0, 0x7F7FFFFF), st.integers(0x80000000, 0xFF7FFFFF))


def _value(bits: int) -> Fraction:
    """Finite FP32 value after DAZ."""
    e, m = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    v = Fraction(0) if e == 0 else Fraction((1 << 23) | m) * Fraction(2) ** (e - 150)
    return -v if bits >> 31 else v


@given(finite_f32, finite_f32, finite_f32)
@settings(max_examples=3000, deadline=None)
def test_eval_bound(x, slope, intercept):
    """§6: |y - (a_k x + b_k)| <= 2**-24 (|a_k x| + |y|) + 2**-125 for finite y, a_k, b_k and x after DAZ;
    exact rationals, every exponent range (the multiply and the add each round once, flush included)."""
    k = int(segment_index(np.uint32(x)))
    a = np.zeros(AF_SEGMENTS, np.uint32)
    b = np.zeros(AF_SEGMENTS, np.uint32)
    a[k], b[k] = slope, intercept
    y = int(af_eval(np.uint32(x), a, b))
    if ((y >> 23) & 0xFF) == 0xFF:
        return
    ax = _value(slope) * _value(x)
    exact = ax + _value(intercept)
    bound = Fraction(1, 2 ** 24) * (abs(ax) + abs(_value(y))) + Fraction(1, 2 ** 125)
    assert abs(_value(y) - exact) <= bound


def test_eval_arithmetic_against_float64():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(AF_SEGMENTS).astype(np.float32)
    b = rng.standard_normal(AF_SEGMENTS).astype(np.float32)
    xs = (rng.standard_normal(20000) * 6).astype(np.float32)
    got = bits_to_f32(af_eval(f32_to_bits(xs), f32_to_bits(a), f32_to_bits(b))).astype(np.float64)
    k = segment_index(f32_to_bits(xs))
    ax = a[k].astype(np.float64) * xs                 # exact: two 24-bit significands
    exact = ax + b[k]                                 # within 2**-53 relative: far below the bound's scale
    bound = 2.0 ** -24 * (np.abs(ax) + np.abs(got)) + 2.0 ** -125
    assert np.all(np.abs(got - exact) <= bound * (1 - 2.0 ** -20))


def test_specials():
    a, b = build_lut("sigmoid")
    x = np.array([0x7FC00000, 0xFF800000, 0x7F800000, 0x00000001, 0x80000000], np.uint32)
    y = af_eval(x, a, b)
    assert y[0] == 0x7FC00000                      # NaN stays NaN
    assert bits_to_f32(y[1]) == 0.0                # sigmoid(-Inf) = 0: a flat end segment against Inf
    assert bits_to_f32(y[2]) == 1.0
    assert abs(bits_to_f32(y[3]) - 0.5) < 1e-2     # subnormal reads as 0
    # A NaN slope against a zero input is NaN (a zero beats Inf, not NaN): NaN + b stays NaN.
    nan_lut = np.zeros(AF_SEGMENTS, np.uint32)
    nan_lut[AF_SEGMENTS // 2] = 0x7FC00000
    assert af_eval(np.array([0, 0x80000000], np.uint32), nan_lut, np.zeros(AF_SEGMENTS, np.uint32)).tolist() == [
        0x7FC00000, 0x7FC00000]
    g = build_lut("gelu")
    assert af_eval(np.array([0x7F800000], np.uint32), *g)[0] == 0x7F800000   # gelu(Inf) = Inf


def test_unknown_function():
    with pytest.raises(KeyError, match="known"):
        build_lut("swishy")
    with pytest.raises(ValueError, match="LUT needs"):
        af_eval(np.zeros(2, np.uint32), np.zeros(3, np.uint32), np.zeros(64, np.uint32))
