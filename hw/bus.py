"""The device's internal memory-mapped bus and an arbiter for several masters (UART link, AXI ports).

One request at a time per master: the master raises `valid` with `we`, `addr` (byte address, word aligned)
and `wdata`, and holds them until the slave answers with `ready` high for one cycle, `rdata` (reads) and
`err` (unmapped address, or a write to a read-only register) in that same cycle.

The burst bus (`BurstBusSignature`) is the wide path from the AXI4 slave into the bank and GB windows: one
access is one whole array burst (`addr` burst-aligned, `wmask` one bit per 32-bit word to write), with the
same valid/ready rule. `ahead` says how many more accesses of the same transfer follow: while it is non-zero
the windows keep the array for them (and may read the next bursts ahead when `incr`, consecutive bursts).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BusSignature", "BurstBusSignature", "BusArbiter"]


class BusSignature(wiring.Signature):
    def __init__(self):
        super().__init__({
            "valid": Out(1),
            "we": Out(1),
            "addr": Out(32),
            "wdata": Out(32),
            "ready": In(1),
            "rdata": In(32),
            "err": In(1),
        })


class BurstBusSignature(wiring.Signature):
    """One array burst per access: `burst_bits` of data, `burst_bits // 32` words."""

    AHEAD_BITS = 16       # a 256-beat AXI4 burst of 256-bit beats over 64-bit bursts: 1024 accesses

    def __init__(self, burst_bits):
        if not isinstance(burst_bits, int) or burst_bits < 64 or burst_bits % 32:
            raise ValueError(f"burst_bits must be an int >= 64 and a multiple of 32, not {burst_bits!r}")
        self.burst_bits = burst_bits
        super().__init__({
            "valid": Out(1),
            "we": Out(1),
            "addr": Out(32),
            "wdata": Out(burst_bits),
            "wmask": Out(burst_bits // 32),
            "ahead": Out(self.AHEAD_BITS),
            "incr": Out(1),
            "ready": In(1),
            "rdata": In(burst_bits),
            "err": In(1),
        })

    def __eq__(self, other):
        return type(other) is type(self) and other.burst_bits == self.burst_bits

    def __repr__(self):
        return f"BurstBusSignature({self.burst_bits})"


class BusArbiter(wiring.Component):
    """Round-robin arbiter: the grant moves only between requests, never during one."""

    def __init__(self, *, masters):
        if not isinstance(masters, int) or masters < 1:
            raise ValueError(f"masters must be a positive int, not {masters!r}")
        self.masters = masters
        super().__init__({
            **{f"m{i}": In(BusSignature()) for i in range(masters)},
            "bus": Out(BusSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.masters
        ports = [getattr(self, f"m{i}") for i in range(n)]
        grant = Signal(range(max(n, 2)))
        busy = Signal()     # a granted request is outstanding
        with m.If(~busy):
            # Pick the first requester after the last grant (round robin), starting the search at grant+1.
            for k in reversed(range(n)):
                for i in range(n):
                    with m.If((grant == i) & ports[(i + 1 + k) % n].valid):
                        m.d.sync += [grant.eq((i + 1 + k) % n), busy.eq(1)]
        with m.Elif(self.bus.ready):
            m.d.sync += busy.eq(0)
        for i, p in enumerate(ports):
            with m.If(busy & (grant == i)):
                m.d.comb += [
                    self.bus.valid.eq(p.valid), self.bus.we.eq(p.we), self.bus.addr.eq(p.addr),
                    self.bus.wdata.eq(p.wdata), p.ready.eq(self.bus.ready), p.rdata.eq(self.bus.rdata),
                    p.err.eq(self.bus.err),
                ]
        return m
