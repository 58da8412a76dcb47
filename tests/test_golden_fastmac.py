"""The fast GEMV paths (golden/fastmac.py: numpy, numba) give mac.lane_sum/mac.accumulate's bits exactly."""

import numpy as np
import pytest

from pimhil.golden import bf16_to_bits, gemv
from pimhil.golden.fastmac import accumulate_numpy, lane_sums_numpy, numba_available
from pimhil.golden.mac import accumulate, lane_sum

IMPLS = ["numpy"] + (["numba"] if numba_available() else [])


def _edge_bits(rng, shape):
    """BF16 patterns mixing every class: zeros of both signs, subnormals, exponents from 1 to 254, values
    near 1 with ties, Inf and NaN (rare, so most bursts stay finite)."""
    kind = rng.integers(0, 100, shape)
    sign = rng.integers(0, 2, shape).astype(np.uint16) << 15
    exp = rng.integers(1, 255, shape).astype(np.uint16)
    near = rng.integers(120, 135, shape).astype(np.uint16)
    mant = rng.integers(0, 128, shape).astype(np.uint16)
    b = np.where(kind < 40, (near << 7) | mant, (exp << 7) | mant)      # narrow and wide exponent spreads
    b = np.where(kind >= 90, mant, b)                                    # subnormals and zeros (DAZ)
    b = np.where(kind == 97, 0x7F80, b)                                  # Inf
    b = np.where(kind == 98, 0x7FC1, b)                                  # NaN
    b = np.where(kind == 99, (near << 7), b)                             # exact powers of two
    return (b | sign).astype(np.uint16)


def _bits_in(rng, shape, e_lo, e_hi):
    """BF16 patterns of either sign with exponent fields in [e_lo, e_hi) and any mantissa."""
    sign = rng.integers(0, 2, shape).astype(np.uint16) << 15
    exp = rng.integers(e_lo, e_hi, shape).astype(np.uint16) << 7
    return (sign | exp | rng.integers(0, 128, shape).astype(np.uint16)).astype(np.uint16)


@pytest.mark.parametrize("lanes", [4, 16])
@pytest.mark.parametrize("seed", range(6))
def test_lane_sums_numpy_match_reference_on_edge_cases(lanes, seed):
    rng = np.random.default_rng(seed)
    w = _edge_bits(rng, (64, 8, lanes))
    x = _edge_bits(rng, (8, lanes))
    assert np.array_equal(lane_sums_numpy(w, x), lane_sum(w, x[None]))


def test_lane_sums_numpy_flush_and_overflow_thresholds():
    # products just around 2**-126 (flush or round up to the smallest normal) and 2**128 (overflow)
    w = np.array([[[0x0080 | m, 0x3F80, 0, 0] for m in range(0, 128, 9)],
                  [[0x7F7F, 0x7F7F, 0x4000, 0] for _ in range(0, 128, 9)]], np.uint16)
    x = np.array([[0x3F80 | m, 0x8080 | m, 0x3F7F, 0x7F00] for m in range(0, 128, 9)], np.uint16)
    assert np.array_equal(lane_sums_numpy(w, x), lane_sum(w, x[None]))


def test_accumulate_numpy_matches_fp32_add_chain_with_subnormal_and_special_steps():
    rng = np.random.default_rng(7)
    ls = rng.standard_normal((50, 40)).astype(np.float32).view(np.uint32)
    ls[3, 5] = 0x7F800000                               # +Inf, then -Inf: NaN
    ls[3, 9] = 0xFF800000
    ls[4, :2] = [np.float32(1.5 * 2.0 ** -125).view(np.uint32), np.float32(-2.0 ** -125).view(np.uint32)]
    ls[4, 2:] = 0                                       # intermediate 2**-126 * 1: normal; next test below
    ls[5, :2] = [np.float32(1.25 * 2.0 ** -126).view(np.uint32), np.float32(-2.0 ** -126).view(np.uint32)]
    acc = rng.standard_normal(50).astype(np.float32).view(np.uint32)
    acc[6] = 0x00000001                                 # a subnormal bias reads as zero
    acc[7] = 0x80000000
    assert np.array_equal(accumulate_numpy(acc, ls), accumulate(acc, ls))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("lanes", [4, 16])
def test_gemv_fast_paths_match_reference(impl, lanes):
    rng = np.random.default_rng(lanes)
    # k = 3 * lanes**2 + 40 and more: the numba kernel's vector groups of `lanes` bursts plus a scalar tail
    shapes = ((33, 100, None), (40, 64, "edge"), (17, 256, "heavy"), (22, 3 * lanes * lanes + 40, "edge"),
              (13, 2 * lanes * lanes, "edge-finite"), (9, 2 * lanes * lanes + 8, "edge-x-special"),
              (48, 2 * lanes * lanes, "flush"), (24, 2 * lanes * lanes, "overflow"))
    for m, k, bits in shapes:
        if bits and bits.startswith("edge"):
            w, x = _edge_bits(rng, (m, k)), _edge_bits(rng, k)
            if bits != "edge":      # no Inf/NaN in W (and none in x either for edge-finite)
                w = np.where((w & 0x7F80) == 0x7F80, w & 0x807F, w).astype(np.uint16)
            if bits == "edge-finite":
                x = np.where((x & 0x7F80) == 0x7F80, x & 0x807F, x).astype(np.uint16)
            elif bits == "edge-x-special":
                x[[3, k - 2]] = [0x7F80, 0xFF80]
        elif bits in ("flush", "overflow"):
            # products around 2**-126 (lane sums that flush or round up to 2**-126) or 2**128 (Inf)
            w_exp, x_exp = ((1, 4), (124, 128)) if bits == "flush" else ((248, 255), (127, 135))
            w = _bits_in(rng, (m, k), *w_exp)
            x = _bits_in(rng, k, *x_exp)
        else:
            scale = np.where(rng.random(k) < 0.02, 100.0, 1.0) if bits == "heavy" else 1.0
            w = bf16_to_bits(rng.standard_normal((m, k)) * scale)
            x = bf16_to_bits(rng.standard_normal(k) * scale)
        bias = rng.standard_normal(m).astype(np.float32).view(np.uint32)
        if bits == "flush":
            bias[:] = 0         # a bias of ~1 would hide lane sums of ~2**-126
        ref = gemv(w, x, lanes=lanes, bias_bits=bias, impl="reference")
        assert np.array_equal(gemv(w, x, lanes=lanes, bias_bits=bias, impl=impl), ref), (impl, m, k, bits)


def test_gemv_rejects_unknown_impl():
    with pytest.raises(ValueError, match="impl must be"):
        gemv(np.zeros((4, 8), np.uint16), np.zeros(8, np.uint16), lanes=4, impl="gpu")


@pytest.mark.parametrize("preset_name", ["sim", "board"])
def test_golden_target_whole_tile_gemv_equals_the_command_sequence(preset_name):
    """The golden target's whole-tile GEMV and bulk window access leave the device exactly as the hub's
    command sequence and word-by-word access do: results, scratch, accumulators, GB and banks."""
    from pimhil.device import Device
    from pimhil.transport.golden import GoldenTransport

    rng = np.random.default_rng(3)
    params = GoldenTransport(preset_name).params
    k = 3 * params.row_words - 5                                # several chunks, padded
    w = _edge_bits(rng, (5 * params.banks + 3, k))
    x = bf16_to_bits(rng.standard_normal(k))
    states = []
    for whole in (True, False):
        t = GoldenTransport(preset_name)
        t.device.whole_tiles = whole
        if not whole:
            t.device.write_block = lambda addr, words: False
            t.device.read_block = lambda addr, n: None
        r = Device(t).gemv(w, x)
        a = t.device.array
        states.append((r.bits, t.device.scratch.copy(), a.accs.copy(), a.gb.copy(), a.banks.copy()))
    for got, want in zip(*states):
        assert np.array_equal(got, want)
