"""BurstMemory: synchronous read that holds while rd_en is low, write visible from the next cycle,
read-during-write to the same address returns the old word."""

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from pimhil.contract import PRESETS
from tb.support.seed import rngs
from tb.support.marks import sim_preset


@cocotb.test()
async def test_random_access(dut):
    py_rng, _ = rngs(dut._log)
    Clock(dut.clk, 10, unit="ns").start()
    depth = 1 << len(dut.rd_addr)
    width = len(dut.rd_data)
    for s in (dut.rd_addr, dut.rd_en, dut.wr_addr, dut.wr_en, dut.wr_data):
        s.value = 0
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    mem = {}
    shown = None                      # what rd_data must show in the current cycle (None: unknown yet)
    for i in range(5000):
        await RisingEdge(dut.clk)
        ra, wa = py_rng.randrange(depth), py_rng.randrange(depth)
        if py_rng.random() < 0.3:
            wa = ra                    # read-during-write collisions
        re_, we = py_rng.random() < 0.7, py_rng.random() < 0.5
        data = py_rng.getrandbits(width)
        dut.rd_addr.value, dut.rd_en.value = ra, int(re_)
        dut.wr_addr.value, dut.wr_en.value, dut.wr_data.value = wa, int(we), data
        await ReadOnly()
        if shown is not None:
            got = int(dut.rd_data.value)
            assert got == shown, f"cycle {i}: rd_data {got:#x}, expected {shown:#x}"
        if re_:
            shown = mem.get(ra, 0) if ra in mem else None   # never-written words are unknown: skip them
        if we:
            mem[wa] = data


@pytest.mark.parametrize("lanes,depth", [sim_preset(PRESETS["sim"].lanes, 64), (8, 32)])
def test_burst_memory(lanes, depth):
    from hw.burst_memory import BurstMemory
    from tb.support import runner

    config = f"burst_memory_l{lanes}_d{depth}"
    src = runner.amaranth_verilog(lambda: BurstMemory(lanes=lanes, depth=depth), "burst_memory",
                                  runner.BUILD / config)
    runner.run(toplevel="burst_memory", sources=[src], test_module="tb.burst_memory.test_burst_memory",
               config=config)
