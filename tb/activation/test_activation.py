"""ActivationUnit: LUT load, then one input per cycle; every output bit-exact against golden af_eval."""

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from pimhil.contract import AF_SEGMENTS
from pimhil.golden.activation import af_eval, build_lut, FUNCTIONS
from tb.support.seed import rngs
from tb.support.vectors import fp32_operands


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.py_rng, self.rng = rngs(dut._log)
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self):
        d = self.dut
        for s in (d.in_valid, d.x, d.lut_wr_en, d.lut_idx, d.lut_a, d.lut_b):
            s.value = 0
        d.rst.value = 1
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0

    async def load(self, a, b):
        d = self.dut
        for k in range(AF_SEGMENTS):
            await RisingEdge(d.clk)
            d.lut_wr_en.value, d.lut_idx.value, d.lut_a.value, d.lut_b.value = 1, k, int(a[k]), int(b[k])
        await RisingEdge(d.clk)
        d.lut_wr_en.value = 0

    async def stream(self, xs, gaps=0.0):
        """Feed xs (with random idle cycles) and return the outputs in order; each must come exactly
        ActivationUnit.LATENCY cycles after its input (the bank array's AF walk relies on the figure)."""
        from hw.activation import ActivationUnit

        d, out, i, cycle, fed = self.dut, [], 0, 0, []
        while len(out) < len(xs):
            await RisingEdge(d.clk)
            cycle += 1
            if i < len(xs) and self.py_rng.random() >= gaps:
                d.in_valid.value, d.x.value = 1, int(xs[i])
                fed.append(cycle)
                i += 1
            else:
                d.in_valid.value = 0
            await ReadOnly()
            if int(d.out_valid.value):
                assert cycle - fed[len(out)] == ActivationUnit.LATENCY, \
                    f"output {len(out)} after {cycle - fed[len(out)]} cycles, LATENCY is {ActivationUnit.LATENCY}"
                out.append(int(d.y.value))
        return np.array(out, np.uint32)


def _inputs(tb, n):
    grid = np.linspace(-10, 10, 4001).astype(np.float32).view(np.uint32)
    edges = (np.arange(-33, 34) * 0.25).astype(np.float32).view(np.uint32)   # every segment boundary
    return np.concatenate([grid, edges, edges ^ np.uint32(1), fp32_operands(tb.rng, n)])


@cocotb.test()
async def test_function_tables(dut):
    tb = TB(dut)
    await tb.reset()
    for name in FUNCTIONS:
        a, b = build_lut(name)
        await tb.load(a, b)
        xs = _inputs(tb, 4000)
        got = await tb.stream(xs, gaps=0.1)
        want = af_eval(xs, a, b)
        bad = np.nonzero(got != want)[0]
        for j in bad[:5]:
            dut._log.error("%s: x=%08x got %08x expected %08x", name, xs[j], got[j], want[j])
        assert len(bad) == 0, f"{name}: {len(bad)} of {len(xs)} outputs differ"


@cocotb.test()
async def test_random_tables(dut):
    """Arbitrary slopes and intercepts, specials included: exercises the multiplier and adder corners."""
    tb = TB(dut)
    await tb.reset()
    for _ in range(3):
        a, b = fp32_operands(tb.rng, AF_SEGMENTS), fp32_operands(tb.rng, AF_SEGMENTS)
        await tb.load(a, b)
        xs = _inputs(tb, 6000)
        got = await tb.stream(xs)
        want = af_eval(xs, a, b)
        assert np.array_equal(got, want), f"{int(np.sum(got != want))} outputs differ"


def test_activation():
    from hw.activation import ActivationUnit
    from tb.support import runner

    config = "activation"
    src = runner.amaranth_verilog(ActivationUnit, "activation", runner.BUILD / config)
    runner.run(toplevel="activation", sources=[src], test_module="tb.activation.test_activation", config=config)
