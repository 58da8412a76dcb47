"""AXILiteSlave and AXI4Slave against cocotbext-axi masters, each in front of a bus-slave model."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBurstType, AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster

from tb.support.bus_slave import BusSlaveModel
from tb.support.seed import rngs

ERR_FROM = 1 << 16


def wrapper():
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.axi4 import AXI4Signature, AXI4Slave
    from hw.axi_lite import AXILiteSignature, AXILiteSlave
    from hw.bus import BusSignature

    class AXIPair(wiring.Component):
        axil: In(AXILiteSignature())
        axi: In(AXI4Signature())
        lite_bus: Out(BusSignature())
        full_bus: Out(BusSignature())

        def elaborate(self, platform):
            m = Module()
            m.submodules.lite = lite = AXILiteSlave()
            m.submodules.full = full = AXI4Slave()
            wiring.connect(m, wiring.flipped(self.axil), lite.axil)
            wiring.connect(m, wiring.flipped(self.axi), full.axi)
            wiring.connect(m, lite.bus, wiring.flipped(self.lite_bus))
            wiring.connect(m, full.bus, wiring.flipped(self.full_bus))
            return m

    return AXIPair()


class TB:
    def __init__(self, dut):
        self.rng_py, self.rng = rngs(dut._log)
        Clock(dut.clk, 10, unit="ns").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        self.axi = AxiMaster(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst)
        self.lite_mem = BusSlaveModel(dut, "lite_bus", dut.clk, rng=self.rng_py, error_from=ERR_FROM,
                                      read_only=frozenset({0x40}))
        self.full_mem = BusSlaveModel(dut, "full_bus", dut.clk, rng=self.rng_py, error_from=ERR_FROM)
        self.dut = dut

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)


@cocotb.test()
async def test_axi_lite(dut):
    tb = TB(dut)
    await tb.reset()
    ref = {}
    for _ in range(300):
        addr = 4 * tb.rng_py.randrange(64)
        if tb.rng_py.random() < 0.5:
            v = tb.rng_py.getrandbits(32)
            r = await tb.axil.write(addr, v.to_bytes(4, "little"))
            if addr == 0x40:
                assert int(r.resp) == 2
            else:
                assert int(r.resp) == 0
                ref[addr] = v
        else:
            r = await tb.axil.read(addr, 4)
            assert int(r.resp) == 0 and int.from_bytes(r.data, "little") == ref.get(addr, 0)
    assert int((await tb.axil.read(ERR_FROM, 4)).resp) == 2
    before = tb.lite_mem.accesses
    assert int((await tb.axil.write(8, b"\xff\xff")).resp) == 2      # narrow strobe: refused, no access
    assert tb.lite_mem.accesses == before


@cocotb.test()
async def test_axi4_bursts(dut):
    tb = TB(dut)
    await tb.reset()
    ref = bytearray(4096)
    for _ in range(40):
        n = 4 * tb.rng_py.randint(1, 300)
        addr = 4 * tb.rng_py.randrange((len(ref) - n) // 4 + 1)
        data = bytes(tb.rng.integers(0, 256, n, dtype="uint8"))
        r = await tb.axi.write(addr, data)
        assert int(r.resp) == 0
        ref[addr:addr + n] = data
        back = await tb.axi.read(addr, n)
        assert back.data == bytes(ref[addr:addr + n]) and int(back.resp) == 0
    # FIXED: every beat to one address, the last one stays.
    r = await tb.axi.write(0x100, bytes(range(16)), burst=AxiBurstType.FIXED)
    assert int(r.resp) == 0 and tb.full_mem.mem[0x100] == int.from_bytes(bytes(range(12, 16)), "little")
    # WRAP and narrow transfers are refused without a bus access.
    before = tb.full_mem.accesses
    assert int((await tb.axi.write(0x200, bytes(16), burst=AxiBurstType.WRAP)).resp) == 2
    assert int((await tb.axi.read(0x200, 16, burst=AxiBurstType.WRAP)).resp) == 2
    assert int((await tb.axi.write(0x300, bytes(8), size=1)).resp) == 2
    assert tb.full_mem.accesses == before
    # An error part-way through a burst: SLVERR for the burst, the good beats did happen.
    r = await tb.axi.write(ERR_FROM - 8, bytes(range(16)))
    assert int(r.resp) == 2 and tb.full_mem.mem[ERR_FROM - 8] == 0x03020100


def test_axi():
    from tb.support import runner

    config = "axi"
    src = runner.amaranth_verilog(wrapper, "axi_pair", runner.BUILD / config)
    runner.run(toplevel="axi_pair", sources=[src], test_module="tb.axi.test_axi", config=config)
