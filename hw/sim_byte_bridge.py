"""A simulation-only link feeder: moves up to `width` UART-link bytes per handshake between a testbench and
the link's byte streams, so the sim server wakes Python once per `width` cycles instead of every cycle.

Input: when `in_empty`, the testbench puts bytes (first byte in bits 7:0) on `in_data`, their number on
`in_count` and raises `in_load` for one cycle; the bytes then leave on `rx` at up to one per cycle.
Output: bytes from `tx` collect in `out_data` (oldest in bits 7:0), `out_count` of them; the testbench
reads them and puts their number on `out_take` for one cycle, which drops them (bytes arriving in that
cycle are kept). `tx` is held off while the buffer is full, so nothing is lost.
A load or a take shows in `in_empty` / `out_count` one cycle after it: the testbench waits a cycle before
the next one.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SimByteBridge"]


class SimByteBridge(wiring.Component):
    def __init__(self, *, width=64):
        if not isinstance(width, int) or not 1 <= width <= 256:
            raise ValueError(f"width must be an int in [1, 256], not {width!r}")
        self.width = width
        super().__init__({
            "in_data": In(8 * width), "in_count": In(range(width + 1)), "in_load": In(1), "in_empty": Out(1),
            "out_data": Out(8 * width), "out_count": Out(range(width + 1)), "out_take": In(range(width + 1)),
            "rx": Out(stream.Signature(8)), "tx": In(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        buf = Signal(8 * w)
        left = Signal(range(w + 1))
        m.d.comb += [self.in_empty.eq(left == 0), self.rx.valid.eq(left != 0), self.rx.payload.eq(buf[:8])]
        with m.If(left == 0):
            with m.If(self.in_load):
                m.d.sync += [buf.eq(self.in_data), left.eq(self.in_count)]
        with m.Elif(self.rx.ready):
            m.d.sync += [buf.eq(buf >> 8), left.eq(left - 1)]

        obuf = Signal(8 * w)
        count = Signal(range(w + 1))
        take = Signal(range(w + 1))
        kept = Signal(range(w + 1))
        m.d.comb += [self.out_data.eq(obuf), self.out_count.eq(count), self.tx.ready.eq(count < w),
                     take.eq(self.out_take), kept.eq(count - take)]
        shifted = obuf >> (take << 3)
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += [obuf.eq(shifted | (self.tx.payload << (kept << 3))), count.eq(kept + 1)]
        with m.Else():
            m.d.sync += [obuf.eq(shifted), count.eq(kept)]
        return m
