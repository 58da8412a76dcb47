"""What the arithmetic state holds after configuration and after reset (numerics.md §4, §6): accumulators +0,
the AF LUT all zeros (so AF gives +0 for every non-NaN input) and untouched by reset. The golden model starts
in that state; the RTL's BankPU and ActivationUnit are checked in Amaranth's simulator."""

import numpy as np
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from pimhil.contract import AF_SEGMENTS, PRESETS
from pimhil.golden import GoldenArray, af_eval

XS = [0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x7F7FFFFF, 0x7FC00000]
WANT = [0, 0, 0, 0, 0, 0, 0, 0x7FC00000]


def _sim(dut, testbench):
    rst = Signal()
    sim = Simulator(ResetInserter({"sync": rst})(dut))
    sim.add_clock(1e-6)

    async def bench(ctx):
        await testbench(ctx, rst)

    sim.add_testbench(bench)
    sim.run()


def test_golden_starts_cleared():
    arr = GoldenArray(PRESETS["board"])
    assert not arr.accs.any() and not arr.lut_a.any() and not arr.lut_b.any()
    assert af_eval(np.array(XS, np.uint32), arr.lut_a, arr.lut_b).tolist() == WANT


def test_rtl_accumulators_reset_to_plus_zero():
    from hw.bank_pu import BankPU

    pu = BankPU(lanes=2, accs=2)
    seen = []

    async def tb(ctx, rst):
        for i in range(2):
            ctx.set(pu.rd_idx, i)
            seen.append(ctx.get(pu.rd_data))
        ctx.set(pu.wr_en, 1)
        ctx.set(pu.wr_idx, 1)
        ctx.set(pu.wr_data, 0xBF800000)
        await ctx.tick()
        ctx.set(pu.wr_en, 0)
        seen.append(ctx.get(pu.rd_data))
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        seen.append(ctx.get(pu.rd_data))

    _sim(pu, tb)
    assert seen == [0, 0, 0xBF800000, 0]


def test_rtl_af_lut_starts_zero_and_survives_reset():
    from hw.activation import ActivationUnit

    af = ActivationUnit()
    out = []

    async def evaluate(ctx, x):
        ctx.set(af.x, x)
        ctx.set(af.in_valid, 1)
        for _ in range(ActivationUnit.LATENCY):
            await ctx.tick()
            ctx.set(af.in_valid, 0)
        return ctx.get(af.y)

    async def tb(ctx, rst):
        for x in XS:
            out.append(await evaluate(ctx, x))
        ctx.set(af.lut_wr_en, 1)
        ctx.set(af.lut_idx, AF_SEGMENTS // 2)             # the segment of x in [0, 1/4)
        ctx.set(af.lut_a, 0x3F800000)
        ctx.set(af.lut_b, 0x3F000000)
        await ctx.tick()
        ctx.set(af.lut_wr_en, 0)
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        out.append(await evaluate(ctx, 0x3E000000))       # 0.125 * 1 + 0.5

    _sim(af, tb)
    assert out == WANT + [0x3F200000]
