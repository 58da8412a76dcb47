"""AXILiteSlave and AXI4Slave against cocotbext-axi masters: the AXI4 slave at each XDMA width (AXI_WIDTH: 64,
128, 256 bits), its words going to a 32-bit bus-slave model and, inside WIDE_RANGE, its 64-bit bursts to a
burst-bus model that also checks what the slave promises with `ahead`."""

import os

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiBurstType, AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster

from pimhil.contract import PRESETS
from tb.support.bus_slave import BusSlaveModel
from tb.support.marks import sim_preset
from tb.support.seed import rngs

ERR_FROM = 1 << 16
BURST_BITS = 64                      # the board preset's burst: 1, 2 or 4 of them per beat
WIDE_RANGE = (0x2000, 0x800)         # ends inside a 4 KiB page, so bursts run out of it into the word path
WIDE_BAD = 0x2400                    # the burst model refuses this burst address


def wrapper(width):
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.axi4 import AXI4Signature, AXI4Slave
    from hw.axi_lite import AXILiteSignature, AXILiteSlave
    from hw.bus import BurstBusSignature, BusSignature

    class AXIPair(wiring.Component):
        axil: In(AXILiteSignature())
        axi: In(AXI4Signature(data_width=width))
        lite_bus: Out(BusSignature())
        full_bus: Out(BusSignature())
        full_wide: Out(BurstBusSignature(BURST_BITS))

        def elaborate(self, platform):
            m = Module()
            m.submodules.lite = lite = AXILiteSlave()
            m.submodules.full = full = AXI4Slave(data_width=width, burst_bits=BURST_BITS, wide_ranges=[WIDE_RANGE])
            wiring.connect(m, wiring.flipped(self.axil), lite.axil)
            wiring.connect(m, wiring.flipped(self.axi), full.axi)
            wiring.connect(m, lite.bus, wiring.flipped(self.lite_bus))
            wiring.connect(m, full.bus, wiring.flipped(self.full_bus))
            wiring.connect(m, full.wide, wiring.flipped(self.full_wide))
            return m

    return AXIPair()


class BurstBusModel:
    """The burst bus (hw/bus.py BurstBusSignature) seen from the windows: a word memory, random latency, one
    refused burst address; checks that every access the slave announced with `ahead` does come, at the next
    burst address for INCR transfers."""

    def __init__(self, dut, prefix, clk, *, rng):
        self.s = {n: getattr(dut, f"{prefix}__{n}") for n in ("valid", "we", "addr", "wdata", "wmask", "ahead",
                                                              "incr", "ready", "rdata", "err")}
        self.clk, self.rng = clk, rng
        self.mem: dict[int, int] = {}
        self.accesses = 0
        self.expect = None          # (address or None, ahead) of the next access of a transfer
        self.s["ready"].value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        s, words = self.s, BURST_BITS // 32
        while True:
            await RisingEdge(self.clk)
            s["ready"].value, s["err"].value = 0, 0
            await ReadOnly()
            if not int(s["valid"].value):
                continue
            addr, we, ahead = int(s["addr"].value), int(s["we"].value), int(s["ahead"].value)
            wdata, wmask, incr = int(s["wdata"].value), int(s["wmask"].value), int(s["incr"].value)
            assert addr % (BURST_BITS // 8) == 0, f"burst access at {addr:#x} is not burst-aligned"
            if self.expect is not None:
                want_addr, want_ahead = self.expect
                assert ahead == want_ahead, f"access at {addr:#x}: ahead {ahead}, announced {want_ahead}"
                assert want_addr is None or addr == want_addr, f"access at {addr:#x}, announced {want_addr:#x}"
            self.expect = (addr + BURST_BITS // 8 if incr else None, ahead - 1) if ahead else None
            for _ in range(self.rng.choice([0, 0, 0, 1, 2])):
                await RisingEdge(self.clk)
            await RisingEdge(self.clk)
            self.accesses += 1
            err = addr == WIDE_BAD
            rdata = 0
            for i in range(words):
                a = addr + 4 * i
                if we and not err and wmask >> i & 1:
                    self.mem[a] = wdata >> (32 * i) & 0xFFFFFFFF
                rdata |= self.mem.get(a, 0) << (32 * i)
            s["ready"].value, s["err"].value = 1, int(err)
            s["rdata"].value = 0 if (we or err) else rdata


class TB:
    def __init__(self, dut):
        self.rng_py, self.rng = rngs(dut._log)
        self.width = int(os.environ["AXI_WIDTH"])
        Clock(dut.clk, 10, unit="ns").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        self.axi = AxiMaster(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst)
        self.lite_mem = BusSlaveModel(dut, "lite_bus", dut.clk, rng=self.rng_py, error_from=ERR_FROM,
                                      read_only=frozenset({0x40}))
        self.full_mem = BusSlaveModel(dut, "full_bus", dut.clk, rng=self.rng_py, error_from=ERR_FROM)
        self.wide_mem = BurstBusModel(dut, "full_wide", dut.clk, rng=self.rng_py)
        self.dut = dut

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def word(self, addr):
        """The 32-bit word at addr in whichever model holds it."""
        inside = WIDE_RANGE[0] <= addr < sum(WIDE_RANGE)
        return (self.wide_mem if inside else self.full_mem).mem.get(addr, 0)


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
    """Random word-aligned transfers of any length over both paths (and across from the burst path into the
    word path), written and read back; the models' memories must match what was written."""
    tb = TB(dut)
    await tb.reset()
    ref = bytearray(0x4000)
    for _ in range(60):
        n = 4 * tb.rng_py.randint(1, 300)
        addr = 4 * tb.rng_py.randrange((len(ref) - n) // 4 + 1)
        if tb.rng_py.random() < 0.5:        # aim at the burst path and its end
            addr = 4 * tb.rng_py.randrange(WIDE_RANGE[0] // 4, (sum(WIDE_RANGE) + 256) // 4)
            n = min(n, len(ref) - addr)
        beat = tb.width // 8
        if addr // beat * beat <= WIDE_BAD // beat * beat < addr + n:
            continue                        # a beat that holds the refused burst has its own checks below
        data = bytes(tb.rng.integers(0, 256, n, dtype="uint8"))
        r = await tb.axi.write(addr, data)
        assert int(r.resp) == 0, f"write of {n} bytes at {addr:#x}"
        ref[addr:addr + n] = data
        back = await tb.axi.read(addr, n)
        assert int(back.resp) == 0 and back.data == bytes(ref[addr:addr + n]), f"read of {n} bytes at {addr:#x}"
    for a in range(0, len(ref), 4):
        assert tb.word(a) == int.from_bytes(ref[a:a + 4], "little"), f"word at {a:#x}"
    beat = tb.width // 8
    # FIXED: every beat to one place, the last one stays (word path and burst path).
    for base in (0x100, WIDE_RANGE[0]):
        r = await tb.axi.write(base, bytes(range(3 * beat)), burst=AxiBurstType.FIXED)
        assert int(r.resp) == 0 and tb.word(base) == int.from_bytes(bytes(range(2 * beat, 2 * beat + 4)), "little")
    # WRAP and narrow transfers are refused without an access.
    before = tb.full_mem.accesses, tb.wide_mem.accesses
    assert int((await tb.axi.write(0x200, bytes(2 * beat), burst=AxiBurstType.WRAP)).resp) == 2
    assert int((await tb.axi.read(0x200, 2 * beat, burst=AxiBurstType.WRAP)).resp) == 2
    assert int((await tb.axi.write(0x300, bytes(8), size=1)).resp) == 2
    assert int((await tb.axi.write(WIDE_RANGE[0], bytes(8), size=1)).resp) == 2
    assert (tb.full_mem.accesses, tb.wide_mem.accesses) == before
    # A strobe that covers part of a word refuses its beat; the other beats are written.
    r = await tb.axi.write(WIDE_RANGE[0] + 2, bytes([0xAB] * (2 * beat - 2)))
    assert int(r.resp) == 2 and tb.word(WIDE_RANGE[0] + beat) == 0xABABABAB
    # An error part-way through a burst: SLVERR for the burst, the good beats did happen.
    r = await tb.axi.write(ERR_FROM - 8, bytes(range(16)))
    assert int(r.resp) == 2 and tb.full_mem.mem[ERR_FROM - 8] == 0x03020100
    r = await tb.axi.read(WIDE_BAD - beat, 3 * beat)
    assert int(r.resp) == 2
    r = await tb.axi.write(WIDE_BAD - 8, bytes([7] * 16))
    assert int(r.resp) == 2 and tb.word(WIDE_BAD - 8) == 0x07070707 and tb.word(WIDE_BAD) != 0x07070707


@pytest.mark.parametrize("width", [64, 128, sim_preset(PRESETS["sim"].axi_data_bits)])
def test_axi(width):
    from tb.support import runner

    config = f"axi{width}"
    src = runner.amaranth_verilog(lambda: wrapper(width), "axi_pair", runner.BUILD / config)
    runner.run(toplevel="axi_pair", sources=[src], test_module="tb.axi.test_axi", config=config,
               extra_env={"AXI_WIDTH": str(width)})
