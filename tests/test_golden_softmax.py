"""Function-unit numerics (exp2, reciprocal, softmax) and decode attention against float64."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pimhil.contract import PRESETS, EXP2_TABLE
from pimhil.golden import bf16_to_bits, bits_to_f32, f32_to_bits
from pimhil.golden.attention import attention
from pimhil.golden.fpbits import bf16_bits_to_f32
from pimhil.golden.softmax import exp2_fixed, lane_max, lane_tree_sum, reciprocal, softmax


def test_exp2_table_endpoints():
    assert EXP2_TABLE[0] == 1 << 23 and EXP2_TABLE[-1] == 1 << 24


@given(st.floats(-149.0, 127.875, width=32))
@settings(max_examples=3000, deadline=None)
def test_exp2_relative_error(t):
    got = float(bits_to_f32(exp2_fixed(f32_to_bits(np.float32(t)))))
    ref = 2.0 ** float(np.float32(t))
    if ref < 2.0 ** -126:
        assert got == 0.0 or abs(got - ref) <= 2e-5 * ref
    else:
        assert abs(got - ref) <= 2e-5 * ref


def test_exp2_specials_and_integers():
    t = np.array([0.0, -1.0, -126.0, -127.0, 127.0, -300.0, 300.0, np.inf, -np.inf, np.nan], np.float32)
    got = bits_to_f32(exp2_fixed(f32_to_bits(t)))
    assert got[0] == 1.0 and got[1] == 0.5 and got[2] == 2.0 ** -126
    assert got[3] == 0.0                                    # 2**-127 is below the smallest normal: flushed
    assert got[4] == 2.0 ** 127
    assert got[5] == 0.0 and np.isinf(got[6]) and got[7] == np.inf and got[8] == 0.0 and np.isnan(got[9])


@given(st.floats(2.0 ** -100, 2.0 ** 100, width=32))
@settings(max_examples=3000, deadline=None)
def test_reciprocal_relative_error(x):
    got = float(bits_to_f32(reciprocal(f32_to_bits(np.float32(x)))))
    assert abs(got * float(np.float32(x)) - 1.0) <= 2.0 ** -22


def test_lane_tree_sum_order_and_bound():
    rng = np.random.default_rng(0)
    v = rng.random(2048).astype(np.float32)
    got = float(bits_to_f32(lane_tree_sum(f32_to_bits(v), 16)))
    assert abs(got - v.astype(np.float64).sum()) <= 2048 * 2.0 ** -24 * v.sum()
    # The order is stated, so it is checkable: lanes first, then a pairwise tree.
    lanes = [np.float32(0)] * 16
    for i, x in enumerate(v):
        lanes[i % 16] = np.float32(lanes[i % 16] + x)
    while len(lanes) > 1:
        lanes = [np.float32(lanes[i] + lanes[i + 1]) for i in range(0, len(lanes), 2)]
    assert got == lanes[0]
    with pytest.raises(ValueError, match="lanes evenly"):
        lane_tree_sum(f32_to_bits(v[:7]), 16)


def test_lane_max_nan():
    assert lane_max(f32_to_bits(np.array([1, np.nan, 3], np.float32))) == 0x7FC00000


@pytest.mark.parametrize("T", [16, 512, 2048])
def test_softmax_against_float64(T):
    rng = np.random.default_rng(T)
    s = (rng.standard_normal(T) * 8).astype(np.float32)
    scale = np.float32(1 / np.sqrt(128))
    p, e, m, total, r = softmax(f32_to_bits(s), f32_to_bits(scale), lanes=16)
    ref = np.exp((s.astype(np.float64) - s.max()) * float(scale))
    ref /= ref.sum()
    got = bits_to_f32(p).astype(np.float64)
    assert np.max(np.abs(got - ref) / ref) < 1e-4
    assert float(bits_to_f32(e[np.argmax(s)])) == 1.0


@pytest.mark.parametrize("T,d", [(64, 32), (512, 128)])
def test_attention_against_float64(T, d):
    params = PRESETS["sim"]
    rng = np.random.default_rng(T + d)
    q = bf16_to_bits(rng.standard_normal(d))
    k = bf16_to_bits(rng.standard_normal((T, d)))
    v = bf16_to_bits(rng.standard_normal((T, d)))
    scale = f32_to_bits(np.float32(1 / np.sqrt(d)))
    r = attention(q, k, v, scale, params)
    qf, kf, vf = (bf16_bits_to_f32(a).astype(np.float64) for a in (q, k, v))
    s = kf @ qf * float(bits_to_f32(scale))
    p = np.exp(s - s.max())
    p /= p.sum()
    ref = vf.T @ p
    out = bits_to_f32(r["out"]).astype(np.float64)
    bound = 2.0 ** -7 * (np.abs(vf.T) @ p) + 2.0 ** -12 * np.max(np.abs(ref))
    assert np.all(np.abs(out - ref) <= bound)


def test_attention_shape_errors():
    p = PRESETS["sim"]
    with pytest.raises(ValueError, match="attention needs"):
        attention(np.zeros(8, np.uint16), np.zeros((16, 4), np.uint16), np.zeros((16, 4), np.uint16), 0, p)
    with pytest.raises(ValueError, match="multiple of banks"):
        attention(np.zeros(8, np.uint16), np.zeros((17, 8), np.uint16), np.zeros((17, 8), np.uint16), 0, p)
