"""The function unit's operations (hw/function_unit.py: exp2, reciprocal) and the FP32 building blocks they and
the AF unit use (hw/fp32.py: add, multiply, AF multiply, BF16 read-out) against the golden model, bit for bit.

A probe takes LANES operand pairs per cycle, so a few hundred thousand operands cost seconds: random operands
over the whole range, every special class, and the reciprocal's critical ranges (both ends of its domain,
both ends of the seed table, the inputs that used to flush, everything outside the domain).
"""

import os

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from pimhil.golden.fpbits import f32_to_bits, fp32_add, fp32_mul, fp32_to_bf16
from pimhil.golden.softmax import exp2_fixed, reciprocal
from tb.support.seed import rngs
from tb.support.vectors import FP32_SPECIALS, fp32_operands

# Every lane is a copy of every operator: the model's C++ grows with LANES, the cycles shrink with it. 8 lanes took
# ~200 s to compile and 18 s to simulate; 2 take ~40 s and ~25 s (2026-12-04).
LANES = 2
# name -> golden function of (x, y); the probe's outputs carry the same names
OPS = {
    "exp2": lambda x, y: exp2_fixed(x),
    "recip": lambda x, y: reciprocal(x),
    "add": fp32_add,
    "mul": fp32_mul,
    "mulz": lambda x, y: fp32_mul(x, y, zero_wins=True),
    "bf16": lambda x, y: fp32_to_bf16(x).astype(np.uint32),
    # the same operators with a register at every cut (hw/fp32.py: pipeline_stage)
    "add_p": fp32_add,
    "mul_p": fp32_mul,
    "mulz_p": lambda x, y: fp32_mul(x, y, zero_wins=True),
}


def wrapper():
    """LANES pairs (x, y) registered in, every operation of each pair out `latency()` cycles later: the
    combinational ones and the pipelined ones delayed to the same cycle."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.fp32 import FP32_ADD_CUTS, FP32_MUL_CUTS, pipeline_stage
    from hw.fp32 import fp32_add as hw_add
    from hw.fp32 import fp32_mul as hw_mul
    from hw.fp32 import fp32_to_bf16 as hw_bf16
    from hw.function_unit import exp2_fixed as hw_exp2
    from hw.function_unit import reciprocal as hw_recip

    class FunctionUnitProbe(wiring.Component):
        x: In(32 * LANES)
        y: In(32 * LANES)
        exp2: Out(32 * LANES)
        recip: Out(32 * LANES)
        add: Out(32 * LANES)
        mul: Out(32 * LANES)
        mulz: Out(32 * LANES)
        bf16: Out(32 * LANES)
        add_p: Out(32 * LANES)
        mul_p: Out(32 * LANES)
        mulz_p: Out(32 * LANES)

        def elaborate(self, platform):
            m = Module()
            for i in range(LANES):
                x, y = Signal(32, name=f"x{i}"), Signal(32, name=f"y{i}")
                m.d.sync += [x.eq(self.x[32 * i:32 * i + 32]), y.eq(self.y[32 * i:32 * i + 32])]
                outs = {
                    "exp2": hw_exp2(m, x, name=f"e{i}"),
                    "recip": hw_recip(m, x, name=f"r{i}"),
                    "add": hw_add(m, x, y, name=f"a{i}"),
                    "mul": hw_mul(m, x, y, name=f"m{i}"),
                    "mulz": hw_mul(m, x, y, name=f"z{i}", zero_wins=True),
                    "bf16": hw_bf16(m, x, name=f"b{i}"),
                }
                cuts = {key: 0 for key in outs}
                piped = {"add_p": (hw_add, {}, FP32_ADD_CUTS), "mul_p": (hw_mul, {}, FP32_MUL_CUTS),
                         "mulz_p": (hw_mul, {"zero_wins": True}, FP32_MUL_CUTS)}
                for key, (fn, kw, n) in piped.items():
                    outs[key] = fn(m, x, y, name=f"{key}{i}", stage=pipeline_stage(m, name=f"{key}{i}_s"), **kw)
                    cuts[key] = n
                for key, sig in outs.items():
                    for _ in range(latency() - 1 - cuts[key]):
                        sig = pipeline_stage(m, name=f"{key}{i}_d")(sig)
                    m.d.comb += getattr(self, key)[32 * i:32 * i + 32].eq(sig)
            return m

    return FunctionUnitProbe()


def latency() -> int:
    """Cycles from an operand pair on x, y to its results on every output."""
    from hw.fp32 import FP32_ADD_CUTS, FP32_MUL_CUTS
    return 1 + max(FP32_ADD_CUTS, FP32_MUL_CUTS)


def _pack(v: np.ndarray) -> list[int]:
    raw = np.ascontiguousarray(v.astype("<u4").reshape(-1, LANES))
    return [int.from_bytes(r.tobytes(), "little") for r in raw]


def _unpack(words: list[int]) -> np.ndarray:
    raw = b"".join(w.to_bytes(4 * LANES, "little") for w in words)
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


async def run(dut, xs, ys):
    """Stream the operand pairs through the probe; returns {op: results} in operand order."""
    pad = (-len(xs)) % LANES
    xw, yw = _pack(np.pad(xs, (0, pad))), _pack(np.pad(ys, (0, pad)))
    got = {k: [] for k in OPS}
    lat = latency()
    for i in range(len(xw) + lat):
        await RisingEdge(dut.clk)
        if i < len(xw):
            dut.x.value = xw[i]
            dut.y.value = yw[i]
        await ReadOnly()
        if i >= lat:
            for k in OPS:
                got[k].append(int(getattr(dut, k).value))
    return {k: _unpack(v)[:len(xs)] for k, v in got.items()}


def reciprocal_edges(stride: int = 1) -> np.ndarray:
    """The domain's ends (exponent fields 1 and 252) and what lies just outside (253,
    254), the seed table's first and last segments in full at those exponents (every `stride`-th significand
    of them: FU_RECIP_STRIDE), the inputs that flushed before the fix (0x7E7FFF01..0x7E7FFFFF), and every
    zero/subnormal/Inf/NaN class."""
    seg = 1 << 17                                       # significands per seed segment
    frac = np.concatenate([np.arange(seg), np.arange((1 << 23) - seg, 1 << 23)]).astype(np.uint32)[::stride]
    xs = [(np.uint32(e) << np.uint32(23)) | frac for e in (1, 252, 253)]
    few = np.concatenate([np.arange(256), np.arange((1 << 23) - 256, 1 << 23)]).astype(np.uint32)
    xs += [(np.uint32(e) << np.uint32(23)) | few for e in (2, 126, 127, 128, 251, 254)]
    xs.append(np.arange(0x7E7FFF01, 0x7E800000, dtype=np.uint32))
    xs.append(np.array([0x00000001, 0x007FFFFF, 0x00400000, 0x7F800001, 0x7FFFFFFF], np.uint32))
    pos = np.concatenate(xs)
    # The sign only passes through (it is outside the Newton steps), so a sample of negatives suffices.
    return np.concatenate([pos, pos[::16] | np.uint32(0x80000000), FP32_SPECIALS])


def product_edges(rng) -> tuple[np.ndarray, np.ndarray]:
    """Pairs for add and multiply: every special against every special, zeros against everything, products
    straddling 2**-126 (round-and-flush versus gradual underflow) and 2**128."""
    s = FP32_SPECIALS
    xs, ys = [np.repeat(s, len(s))], [np.tile(s, len(s))]
    r = fp32_operands(rng, 4000)
    for z in (0x00000000, 0x80000000, 0x00000001, 0x80400000):
        xs += [np.full(len(r), z, np.uint32), r]
        ys += [r, np.full(len(r), z, np.uint32)]
    n = 20000
    sign = rng.integers(0, 2, (2, n)).astype(np.uint32) << np.uint32(31)
    frac = rng.integers(0, 1 << 23, (2, n)).astype(np.uint32)
    for total in (1, 127 + 128):                        # biased exponent sums at the bottom and top of range
        ea = rng.integers(1, 255, n).astype(np.int64)
        eb = np.clip(total + 127 - ea + rng.integers(-1, 2, n), 1, 254)
        xs.append(sign[0] | (ea.astype(np.uint32) << np.uint32(23)) | frac[0])
        ys.append(sign[1] | (eb.astype(np.uint32) << np.uint32(23)) | frac[1])
    return np.concatenate(xs), np.concatenate(ys)


@cocotb.test()
async def test_against_golden(dut):
    _, rng = rngs(dut._log)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 0
    px, py = product_edges(rng)
    rx = reciprocal_edges(int(os.environ.get("FU_RECIP_STRIDE", "1")))
    x = np.concatenate([
        f32_to_bits(rng.uniform(-160, 130, 20000).astype(np.float32)),      # exp2's whole interesting range
        f32_to_bits(-rng.exponential(4, 10000).astype(np.float32)),         # softmax's t <= 0
        f32_to_bits(np.arange(-150, 129, 0.25, dtype=np.float32)),          # integers and quarter steps
        fp32_operands(rng, 100000),                                          # specials, subnormals, extremes
        rng.integers(0, 1 << 32, 100000, dtype=np.uint64).astype(np.uint32),  # every pattern equally likely
        rx, px,
    ])
    y = np.concatenate([fp32_operands(rng, len(x) - len(px)), py])
    got = await run(dut, x, y)
    for k, fn in OPS.items():
        want = fn(x, y)
        bad = np.nonzero(got[k] != want)[0]
        for j in bad[:5]:
            dut._log.error("%s(%08x, %08x): rtl %08x golden %08x", k, x[j], y[j], got[k][j], want[j])
        assert len(bad) == 0, f"{len(bad)} of {len(x)} {k} results differ from the golden model"
    dut._log.info("%d operand pairs (%d reciprocal edges) bit-exact in %s", len(x), len(rx), ", ".join(OPS))


def _run(recip_stride: str):
    from tb.support import runner

    config = "function_unit"
    src = runner.amaranth_verilog(wrapper, "function_unit_probe", runner.BUILD / config)
    runner.run(toplevel="function_unit_probe", sources=[src], test_module="tb.function_unit.test_function_unit",
               config=config, extra_env={"FU_RECIP_STRIDE": recip_stride})


def test_function_unit():
    """Every operation; the reciprocal's exhaustive segments sampled (FU_RECIP_STRIDE, default every 8th)."""
    _run(os.environ.get("FU_RECIP_STRIDE", "8"))


@pytest.mark.soak
def test_function_unit_every_reciprocal_edge():
    """The same with all 786,432 significands of the reciprocal's edge segments (make soak)."""
    _run("1")
