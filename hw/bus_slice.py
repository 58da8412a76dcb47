"""A register slice on the device's 32-bit bus (hw/bus.py BusSignature): the request and the answer each cross
a register, so no path runs from a master's request logic into a slave's decoding in one cycle.

On the ULX3S build the longest path ran from the UART link's executing request (its word index and address
adder) through the arbiter into the hub windows' decoding and the bank array's command checks (docs/bringup.md).
The slice costs two cycles per access, which none of the bus masters notices: the UART link moves a word in
tens of bit times, and the AXI ports' bulk data takes the burst port, not this bus.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bus import BusSignature

__all__ = ["BusRegisterSlice"]


class BusRegisterSlice(wiring.Component):
    """`up` (the master's side) and `down` (the slave's side). A request on `up` is copied into registers and
    presented on `down` from the next cycle on; the slave's answer (`ready` with `rdata` and `err`) is copied
    into registers and given to the master one cycle after the slave answered. One access at a time, as the
    bus allows: the master holds its request until `ready`, so the slice takes the next one only after the
    cycle that answered it."""

    def __init__(self):
        super().__init__({"up": In(BusSignature()), "down": Out(BusSignature())})

    def elaborate(self, platform):
        m = Module()
        up, down = self.up, self.down
        answered = Signal()           # up.ready: the cycle in which the master sees its answer
        rdata, err = Signal(32), Signal()
        m.d.comb += [up.ready.eq(answered), up.rdata.eq(rdata), up.err.eq(err)]
        with m.If(answered):
            # The master still holds the request it is being answered for: not a new one.
            m.d.sync += answered.eq(0)
        with m.Elif(down.valid):
            # The answer registers take the slave's every cycle until it answers, so that their 33 enables do
            # not wait for `ready` (the sequencer's state through the scratch port's `busy` into them made 15.2 ns,
            # estimated, on the 75 MHz build); the last value they take is the one given with `ready`.
            m.d.sync += [rdata.eq(down.rdata), err.eq(down.err)]
            with m.If(down.ready):
                m.d.sync += [down.valid.eq(0), answered.eq(1)]
        with m.Elif(up.valid):
            m.d.sync += [down.valid.eq(1), down.we.eq(up.we), down.addr.eq(up.addr), down.wdata.eq(up.wdata)]
        return m
