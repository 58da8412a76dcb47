"""AXI4 memory-mapped slave with bursts onto the internal bus: what XDMA's H2C/C2H DMA engines drive.

32-bit data (AxSIZE must be 2), INCR and FIXED bursts up to 256 beats, one burst at a time. Every beat is one
bus access (write beats are accepted in the cycle their bus access completes: one per cycle when the bus
is ready); an error in any beat makes the write response SLVERR, and read beats that fail return 0 with
SLVERR. WRAP bursts and narrow transfers are refused with SLVERR without touching the bus.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi_lite import SLVERR
from .bus import BusSignature

__all__ = ["AXI4Slave"]

FIXED, INCR = 0b00, 0b01


class AXI4Signature(wiring.Signature):
    """Seen from the master; the slave uses it flipped (In)."""

    def __init__(self, *, addr_width=32, id_width=4):
        super().__init__({
            "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
            "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_width), "rdata": In(32), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
            "rready": Out(1),
        })


class AXI4Slave(wiring.Component):
    def __init__(self, *, addr_width=32, id_width=4):
        if not isinstance(id_width, int) or not 1 <= id_width <= 16:
            raise ValueError(f"id_width must be an int in [1, 16], not {id_width!r}")
        if not isinstance(addr_width, int) or not 12 <= addr_width <= 32:
            raise ValueError(f"addr_width must be an int in [12, 32], not {addr_width!r}")
        super().__init__({"axi": In(AXI4Signature(addr_width=addr_width, id_width=id_width)),
                          "bus": Out(BusSignature())})

    def elaborate(self, platform):
        m = Module()
        s, bus = self.axi, self.bus
        addr = Signal(32)
        left = Signal(9)           # beats still to do
        burst = Signal(2)
        ok = Signal()              # the burst is of a kind we serve
        err = Signal()
        nxt = addr + 4

        def start(ch, resp_id, state):
            """Accept the address of a burst on channel `ch` ("aw" or "ar") and go to `state`."""
            a = {f: getattr(s, f"{ch}{f}") for f in ("ready", "addr", "len", "burst", "size", "id")}
            m.d.comb += a["ready"].eq(1)
            m.d.sync += [addr.eq(a["addr"]), left.eq(a["len"] + 1), burst.eq(a["burst"]), resp_id.eq(a["id"]),
                         ok.eq((a["size"] == 2) & ((a["burst"] == INCR) | (a["burst"] == FIXED))), err.eq(0)]
            m.next = state

        with m.FSM():
            with m.State("IDLE"):
                with m.If(s.awvalid):
                    start("aw", s.bid, "W_BEAT")
                with m.Elif(s.arvalid):
                    start("ar", s.rid, "R_BEAT")
            with m.State("W_BEAT"):
                # One beat per cycle: the beat goes straight onto the bus and is accepted with it.
                beat_err = Signal()
                with m.If(s.wvalid):
                    with m.If(~ok | (s.wstrb != 0xF)):
                        m.d.comb += [s.wready.eq(1), beat_err.eq(1)]
                    with m.Else():
                        m.d.comb += [bus.valid.eq(1), bus.we.eq(1), bus.addr.eq(addr), bus.wdata.eq(s.wdata),
                                     s.wready.eq(bus.ready), beat_err.eq(bus.err)]
                with m.If(s.wvalid & s.wready):
                    m.d.sync += [err.eq(err | beat_err), left.eq(left - 1)]
                    with m.If(burst == INCR):
                        m.d.sync += addr.eq(nxt)
                    with m.If(s.wlast | (left == 1)):
                        m.d.sync += [s.bvalid.eq(1), s.bresp.eq((err | beat_err) << 1)]
                        m.next = "B"
            with m.State("B"):
                with m.If(s.bready):
                    m.d.sync += s.bvalid.eq(0)
                    m.next = "IDLE"
            with m.State("R_BEAT"):
                with m.If(~ok):
                    m.d.sync += [s.rvalid.eq(1), s.rdata.eq(0), s.rresp.eq(SLVERR), s.rlast.eq(left == 1)]
                    m.next = "R_OUT"
                with m.Else():
                    m.d.comb += [bus.valid.eq(1), bus.we.eq(0), bus.addr.eq(addr)]
                    with m.If(bus.ready):
                        m.d.sync += [s.rvalid.eq(1), s.rdata.eq(bus.rdata), s.rresp.eq(bus.err << 1),
                                     s.rlast.eq(left == 1)]
                        m.next = "R_OUT"
            with m.State("R_OUT"):
                with m.If(s.rready):
                    m.d.sync += [s.rvalid.eq(0), left.eq(left - 1)]
                    with m.If(burst == INCR):
                        m.d.sync += addr.eq(nxt)
                    with m.If(left == 1):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "R_BEAT"
        return m
