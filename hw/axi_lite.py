"""AXI4-Lite slave onto the internal bus: what an XDMA core's BAR (AXI-Lite master) drives.

32-bit data, one transaction at a time. A write is performed once both AW and W have arrived; partial
strobes are refused with SLVERR and no access; a bus error answers SLVERR (writes) or SLVERR with data 0
(reads).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bus import BusSignature

__all__ = ["AXILiteSlave", "OKAY", "SLVERR"]

OKAY, SLVERR = 0b00, 0b10


class AXILiteSignature(wiring.Signature):
    """Seen from the master; the slave uses it flipped (In)."""

    def __init__(self, *, addr_width=32):
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AXILiteSlave(wiring.Component):
    def __init__(self, *, addr_width=32):
        if not isinstance(addr_width, int) or not 12 <= addr_width <= 32:
            raise ValueError(f"addr_width must be an int in [12, 32], not {addr_width!r}")
        super().__init__({"axil": In(AXILiteSignature(addr_width=addr_width)), "bus": Out(BusSignature())})

    def elaborate(self, platform):
        m = Module()
        s, bus = self.axil, self.bus
        addr = Signal(32)
        data = Signal(32)
        full = Signal()
        with m.FSM():
            with m.State("IDLE"):
                with m.If(s.awvalid & s.wvalid):
                    m.d.comb += [s.awready.eq(1), s.wready.eq(1)]
                    m.d.sync += [addr.eq(s.awaddr), data.eq(s.wdata), full.eq(s.wstrb == 0xF)]
                    m.next = "WRITE"
                with m.Elif(s.arvalid):
                    m.d.comb += s.arready.eq(1)
                    m.d.sync += addr.eq(s.araddr)
                    m.next = "READ"
            with m.State("WRITE"):
                with m.If(~full):
                    m.d.sync += [s.bvalid.eq(1), s.bresp.eq(SLVERR)]
                    m.next = "BRESP"
                with m.Else():
                    m.d.comb += [bus.valid.eq(1), bus.we.eq(1), bus.addr.eq(addr), bus.wdata.eq(data)]
                    with m.If(bus.ready):
                        m.d.sync += [s.bvalid.eq(1), s.bresp.eq(bus.err << 1)]
                        m.next = "BRESP"
            with m.State("BRESP"):
                with m.If(s.bready):
                    m.d.sync += s.bvalid.eq(0)
                    m.next = "IDLE"
            with m.State("READ"):
                m.d.comb += [bus.valid.eq(1), bus.we.eq(0), bus.addr.eq(addr)]
                with m.If(bus.ready):
                    m.d.sync += [s.rvalid.eq(1), s.rdata.eq(bus.rdata), s.rresp.eq(bus.err << 1)]
                    m.next = "RRESP"
            with m.State("RRESP"):
                with m.If(s.rready):
                    m.d.sync += s.rvalid.eq(0)
                    m.next = "IDLE"
        return m
