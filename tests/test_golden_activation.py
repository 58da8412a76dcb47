"""Activation LUT: evaluation arithmetic against float64 and table accuracy per function."""


import numpy as np
import pytest

from pimhil.contract import AF_SEGMENTS
from pimhil.golden import af_eval, build_lut
from pimhil.golden.activation import FUNCTIONS, segment_index
from pimhil.golden.fpbits import bits_to_f32, f32_to_bits


def test_segment_index_edges():
    xs = np.array([-1e30, -8.0, -7.75001, -7.75, -0.25, -1e-30, 0.0, 1e-30, 0.25, 7.75, 7.99, 8.0, np.inf, -np.inf],
                  np.float32)
    want = [0, 0, 0, 1, 31, 31, 32, 32, 33, 63, 63, 63, 63, 0]
    assert segment_index(f32_to_bits(xs)).tolist() == want


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_table_accuracy(name):
    f, _, _, stated = FUNCTIONS[name]
    a, b = build_lut(name)
    xs = np.linspace(-12, 12, 24001).astype(np.float32)
    ys = bits_to_f32(af_eval(f32_to_bits(xs), a, b)).astype(np.float64)
    err = max(abs(ys[i] - f(float(xs[i]))) for i in range(len(xs)))
    assert err <= stated, f"{name}: max error {err:.2e} above the stated {stated:.0e}"


def test_eval_arithmetic_against_float64():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(AF_SEGMENTS).astype(np.float32)
    b = rng.standard_normal(AF_SEGMENTS).astype(np.float32)
    xs = (rng.standard_normal(20000) * 6).astype(np.float32)
    got = bits_to_f32(af_eval(f32_to_bits(xs), f32_to_bits(a), f32_to_bits(b))).astype(np.float64)
    k = segment_index(f32_to_bits(xs))
    ax = a[k].astype(np.float64) * xs
    exact = ax + b[k]
    # two roundings (multiply, add): |err| <= 2**-24 |a x| (1 + 2**-24) + 2**-24 |y|
    bound = 2.0 ** -24 * (np.abs(ax) * (1 + 2.0 ** -24) + np.abs(exact)) + 2.0 ** -126
    assert np.all(np.abs(got - exact) <= bound)


def test_specials():
    a, b = build_lut("sigmoid")
    x = np.array([0x7FC00000, 0xFF800000, 0x7F800000, 0x00000001, 0x80000000], np.uint32)
    y = af_eval(x, a, b)
    assert y[0] == 0x7FC00000                      # NaN stays NaN
    assert bits_to_f32(y[1]) == 0.0                # sigmoid(-Inf) = 0: a flat end segment against Inf
    assert bits_to_f32(y[2]) == 1.0
    assert abs(bits_to_f32(y[3]) - 0.5) < 1e-2     # subnormal reads as 0
    g = build_lut("gelu")
    assert af_eval(np.array([0x7F800000], np.uint32), *g)[0] == 0x7F800000   # gelu(Inf) = Inf


def test_unknown_function():
    with pytest.raises(KeyError, match="known"):
        build_lut("swishy")
    with pytest.raises(ValueError, match="LUT needs"):
        af_eval(np.zeros(2, np.uint32), np.zeros(3, np.uint32), np.zeros(64, np.uint32))
