"""LaneReduce against the golden lane_sum: 10^5 random bursts plus directed corners, one burst per cycle."""

import os

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hw.lane_reduce import LaneReduce
from pimhil.golden.mac import lane_sum
from pimhil.contract import PRESETS
from tb.support.seed import rngs
from tb.support.marks import sim_preset
from tb.support.vectors import BF16_SPECIALS, bf16_operands, pack_rows

# The DUT's own figure; a wrong one fails every comparison below, which reads results exactly this late.
LATENCY = LaneReduce.LATENCY


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.lanes = len(dut.w) // 16          # width read from the DUT
        self.py_rng, self.rng = rngs(dut._log)
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self):
        self.dut.rst.value = 1
        self.dut.en.value = 1
        self.dut.w.value = 0
        self.dut.x.value = 0
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def check(self, w, x):
        """Stream bursts (n, lanes) through the DUT and compare every result with the golden model."""
        expect = lane_sum(w, x)
        ws, xs = pack_rows(w, 16), pack_rows(x, 16)
        n = len(ws)
        got = []
        for i in range(n + LATENCY):
            await RisingEdge(self.dut.clk)
            if i < n:
                self.dut.w.value = ws[i]
                self.dut.x.value = xs[i]
            await ReadOnly()
            if i >= LATENCY:
                got.append(int(self.dut.result.value))
        got = np.array(got, dtype=np.uint32)
        bad = np.nonzero(got != expect)[0]
        for j in bad[:5]:
            self.dut._log.error("burst %d: w=%s x=%s got %08x expected %08x", j, [hex(v) for v in w[j]],
                                [hex(v) for v in x[j]], got[j], expect[j])
        assert len(bad) == 0, f"{len(bad)} of {n} lane sums differ from the golden model"
        return n


@cocotb.test()
async def test_random_bursts(dut):
    """10^5 random bursts (LANE_VECTORS overrides), mixed exponents and specials."""
    tb = TB(dut)
    await tb.reset()
    n = int(os.environ.get("LANE_VECTORS", "100000"))
    w = bf16_operands(tb.rng, (n, tb.lanes))
    x = bf16_operands(tb.rng, (n, tb.lanes))
    # Every 4th burst pairs products that cancel exactly or nearly, to exercise large normalisation shifts.
    x[::4, 1::2] = x[::4, 0::2]
    w[::4, 1::2] = w[::4, 0::2] ^ np.uint16(0x8000) ^ tb.rng.integers(0, 2, w[::4, 1::2].shape).astype(np.uint16)
    dut._log.info("checked %d bursts", await tb.check(w, x))


@cocotb.test()
async def test_corner_bursts(dut):
    """Every special against every special in lane 0, and extremes of exponent and rounding."""
    tb = TB(dut)
    await tb.reset()
    L = tb.lanes
    s = BF16_SPECIALS
    a, b = np.meshgrid(s, s)
    w = np.zeros((a.size, L), np.uint16)
    x = np.zeros((a.size, L), np.uint16)
    w[:, 0], x[:, 0] = a.ravel(), b.ravel()
    rows = [w, x]
    # Largest exponents in every lane (overflow to Inf), smallest normals (flush), alternating signs.
    big = np.full((4, L), 0x7F7F, np.uint16)
    big[1, ::2] |= 0x8000
    big[2] = 0x0080
    big[3] = 0x0080 | (np.arange(L) % 2 << 15).astype(np.uint16)
    rows = [np.concatenate([w, big]), np.concatenate([x, big])]
    # One large product plus small ones: truncation of the aligned lanes, including shifts beyond 24 bits.
    spread = np.full((64, L), 0x3F80, np.uint16)
    for i in range(64):
        spread[i, 1:] = (0x3F80 - ((i % 32) << 7)) | 0x7F
        spread[i, 1:] |= np.uint16(0x8000) if i >= 32 else np.uint16(0)
    ones = np.full((64, L), 0x3F80, np.uint16)
    rows = [np.concatenate([rows[0], spread]), np.concatenate([rows[1], ones])]
    dut._log.info("checked %d bursts", await tb.check(rows[0], rows[1]))


@pytest.mark.parametrize("lanes", [sim_preset(PRESETS["sim"].lanes), PRESETS["board"].lanes])
def test_lane_reduce(lanes):
    from tb.support import runner

    config = f"lane_reduce_l{lanes}"
    src = runner.amaranth_verilog(lambda: LaneReduce(lanes=lanes), "lane_reduce", runner.BUILD / config)
    runner.run(toplevel="lane_reduce", sources=[src], test_module="tb.lane_reduce.test_lane_reduce",
               config=config)
