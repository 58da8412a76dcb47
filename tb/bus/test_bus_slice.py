"""BusRegisterSlice: a master through the slice into a slave model with random answer latency. Every access
reaches the slave exactly once, holds still until answered, and comes back with its own data or error."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from tb.support.bus import BusError, BusMaster
from tb.support.bus_slave import BusSlaveModel
from tb.support.seed import rngs

ERR_FROM = 1 << 12
ACCESSES = 2000


async def _hold_still(dut, problems):
    """The slice's request to the slave does not change while it waits for `ready`."""
    held = None
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.down__valid.value):
            now = (int(dut.down__we.value), int(dut.down__addr.value), int(dut.down__wdata.value))
            if held is not None and now != held:
                problems.append(f"request changed while waiting: {held} -> {now}")
            held = None if int(dut.down__ready.value) else now
        else:
            held = None


@cocotb.test()
async def test_through_the_slice(dut):
    rng, _ = rngs(dut._log)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    slave = BusSlaveModel(dut, "down", dut.clk, rng=rng, error_from=ERR_FROM)
    master = BusMaster(dut, "up", dut.clk, timeout_cycles=100)
    problems = []
    cocotb.start_soon(_hold_still(dut, problems))
    mine, errors = {}, 0
    for _ in range(ACCESSES):
        addr = 4 * rng.randrange(1100)                       # some of them past ERR_FROM
        try:
            if rng.random() < 0.5:
                v = rng.getrandbits(32)
                await master.write(addr, v)
                mine[addr] = v
            else:
                assert await master.read(addr) == mine.get(addr, 0), f"read {addr:#x}"
            assert addr < ERR_FROM, f"{addr:#x} answered without err"
        except BusError:
            assert addr >= ERR_FROM, f"{addr:#x} answered with err"
            errors += 1
    await ClockCycles(dut.clk, 8)
    assert slave.accesses == ACCESSES, f"the slave saw {slave.accesses} accesses for {ACCESSES}"
    assert not problems, problems[:3]
    assert errors > 0
    dut._log.info("%d accesses (%d errors) each seen once by the slave", ACCESSES, errors)


def test_bus_slice():
    from hw.bus_slice import BusRegisterSlice
    from tb.support import runner

    config = "bus_slice"
    src = runner.amaranth_verilog(BusRegisterSlice, "bus_slice", runner.BUILD / config)
    runner.run(toplevel="bus_slice", sources=[src], test_module="tb.bus.test_bus_slice", config=config)
