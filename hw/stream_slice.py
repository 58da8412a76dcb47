"""A register slice on a stream (amaranth.lib.stream): payload, valid and ready each come from a register, so
no combinational path crosses the slice in either direction, and a transfer per cycle still goes through.

Two entries (the output register and a skid register): `ready` towards the source is "the skid register is
empty", a register, so the source learns one cycle late that the sink stopped and the one transfer it made in
that cycle waits in the skid register.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamRegisterSlice"]


class StreamRegisterSlice(wiring.Component):
    """`i` (from the source) and `o` (to the sink), both streams of `layout`. Order is kept, nothing is
    dropped or repeated; `occupied` is high while the slice holds a transfer the sink has not taken."""

    def __init__(self, *, layout):
        if not isinstance(layout, data.Layout):
            raise TypeError(f"layout must be an amaranth.lib.data.Layout, not {layout!r}")
        self.layout = layout
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "occupied": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        skid_valid = Signal()
        skid = Signal(self.layout)
        m.d.comb += [i.ready.eq(~skid_valid), self.occupied.eq(o.valid)]
        with m.If(~o.valid | o.ready):
            # The output register is free this cycle: it takes the skid entry first, else the source's.
            with m.If(skid_valid):
                m.d.sync += [o.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [o.valid.eq(i.valid), o.payload.eq(i.payload)]
        with m.Elif(~skid_valid):
            # The skid register loads whatever the source offers, valid or not: its enable then does not wait
            # for the source's `valid` (on the ULX3S build that came through the sequencer's walkers, and the
            # enable fans out to every payload bit); `skid_valid` says whether it holds a transfer.
            m.d.sync += [skid.eq(i.payload), skid_valid.eq(i.valid)]
        return m
