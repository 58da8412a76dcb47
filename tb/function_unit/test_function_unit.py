"""Function-unit operations (hw/function_unit.py: exp2, reciprocal) against the golden model over their whole
input range, one operand per cycle through a small wrapper."""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from pimhil.golden.fpbits import f32_to_bits
from pimhil.golden.softmax import exp2_fixed, reciprocal
from tb.support.seed import rngs
from tb.support.vectors import fp32_operands


def wrapper():
    """x registered in, exp2(x) and reciprocal(x) registered out: latency 1."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.function_unit import exp2_fixed as hw_exp2
    from hw.function_unit import reciprocal as hw_recip

    class FunctionUnitProbe(wiring.Component):
        x: In(32)
        exp2: Out(32)
        recip: Out(32)

        def elaborate(self, platform):
            m = Module()
            x = Signal(32)
            m.d.sync += x.eq(self.x)
            e = hw_exp2(m, x, name="e")
            r = hw_recip(m, x, name="r")
            m.d.comb += [self.exp2.eq(e), self.recip.eq(r)]
            return m

    return FunctionUnitProbe()


async def run(dut, xs):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 0
    out_e, out_r = [], []
    for i in range(len(xs) + 1):
        await RisingEdge(dut.clk)
        if i < len(xs):
            dut.x.value = int(xs[i])
        await ReadOnly()
        if i >= 1:
            out_e.append(int(dut.exp2.value))
            out_r.append(int(dut.recip.value))
    return np.array(out_e, np.uint32), np.array(out_r, np.uint32)


@cocotb.test()
async def test_exp2_and_reciprocal(dut):
    _, rng = rngs(dut._log)
    t = np.concatenate([
        f32_to_bits(rng.uniform(-160, 130, 20000).astype(np.float32)),      # the whole interesting range
        f32_to_bits(-rng.exponential(4, 10000).astype(np.float32)),         # softmax's t <= 0
        f32_to_bits(np.arange(-150, 129, 0.25, dtype=np.float32)),          # integers and quarter steps
        fp32_operands(rng, 10000),                                           # specials, subnormals, extremes
    ])
    e, r = await run(dut, t)
    want_e = exp2_fixed(t)
    bad = np.nonzero(e != want_e)[0]
    for j in bad[:5]:
        dut._log.error("exp2(%08x): rtl %08x golden %08x", t[j], e[j], want_e[j])
    assert len(bad) == 0, f"{len(bad)} exp2 results differ"
    # Reciprocal is specified for positive normal inputs below 2**126 (softmax sums lie in [1, T]).
    pos = (t >> 31 == 0) & (((t >> 23) & 0xFF) >= 1) & (((t >> 23) & 0xFF) < 253)
    want_r = reciprocal(t[pos])
    assert np.array_equal(r[pos], want_r), f"{int(np.sum(r[pos] != want_r))} reciprocals differ"
    dut._log.info("%d exp2 and %d reciprocal results bit-exact", len(t), int(pos.sum()))


def test_function_unit():
    from tb.support import runner

    config = "function_unit"
    src = runner.amaranth_verilog(wrapper, "function_unit_probe", runner.BUILD / config)
    runner.run(toplevel="function_unit_probe", sources=[src], test_module="tb.function_unit.test_function_unit",
               config=config)
