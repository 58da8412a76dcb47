"""BusArbiter: three masters hammering one slave model; every access is answered with its own data, and
round robin keeps every master moving."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from tb.support.bus import BusError, BusMaster
from tb.support.bus_slave import BusSlaveModel
from tb.support.seed import rngs

MASTERS = 3
ERR_FROM = 1 << 12


@cocotb.test()
async def test_three_masters(dut):
    rng, _ = rngs(dut._log)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    BusSlaveModel(dut, "bus", dut.clk, rng=rng, error_from=ERR_FROM)
    masters = [BusMaster(dut, f"m{i}", dut.clk) for i in range(MASTERS)]
    done = [0] * MASTERS

    async def worker(i):
        mine = {}
        for _n in range(150):
            addr = 4 * (i * 256 + rng.randrange(256))      # disjoint address ranges per master
            if rng.random() < 0.5:
                v = rng.getrandbits(32)
                await masters[i].write(addr, v)
                mine[addr] = v
            else:
                assert await masters[i].read(addr) == mine.get(addr, 0), f"master {i} read {addr:#x}"
            done[i] += 1
        try:
            await masters[i].read(ERR_FROM + 4 * i)
            raise AssertionError("an error address answered without err")
        except BusError:
            pass

    tasks = [cocotb.start_soon(worker(i)) for i in range(MASTERS)]
    # Fairness: while all three are busy, none falls far behind the others.
    for _ in range(40):
        await ClockCycles(dut.clk, 50)
        if min(done) < 150:
            assert max(done) - min(done) <= 3, f"unfair grants: {done}"
    for t in tasks:
        await t
    assert done == [150] * MASTERS


def test_bus_arbiter():
    from hw.bus import BusArbiter
    from tb.support import runner

    config = "bus_arbiter"
    src = runner.amaranth_verilog(lambda: BusArbiter(masters=MASTERS), "bus_arbiter", runner.BUILD / config)
    runner.run(toplevel="bus_arbiter", sources=[src], test_module="tb.bus.test_bus_arbiter", config=config)
