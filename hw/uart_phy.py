"""8N1 UART PHY: `div` clock cycles per bit, LSB first, one stop bit.

RX samples the middle of each bit after a two-flop synchroniser; a low stop bit is a framing error (the byte
is dropped, `rx_framing_error` pulses) and a byte finished while the previous one was not taken is an overrun
(`rx_overrun` pulses, the new byte is dropped). Neither ever blocks the receiver.

`div` may change at any time, but only a change while `idle` is high (neither a byte being received nor one
being sent) keeps every bit whole; the link applies a new divisor only then (hw/uart_link.py). `rx_level` is
the synchronised RX line, for the link's line-break detection.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTPhy"]


class UARTPhy(wiring.Component):
    def __init__(self):
        super().__init__({
            "div": In(16),
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "rx_data": Out(stream.Signature(8)),
            "tx_data": In(stream.Signature(8)),
            "rx_framing_error": Out(1),
            "rx_overrun": Out(1),
            "idle": Out(1),
            "rx_level": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        # ---- receiver ----
        sync1 = Signal(init=1)
        rx = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), rx.eq(sync1)]
        m.d.comb += self.rx_level.eq(rx)
        rcount = Signal(16)
        rbit = Signal(4)
        rshift = Signal(8)
        with m.If(self.rx_data.ready):
            m.d.sync += self.rx_data.valid.eq(0)
        with m.FSM(name="rx") as rx_fsm:
            with m.State("IDLE"):
                with m.If(~rx):
                    # To the middle of the start bit: the synchroniser and this state already took 3 cycles
                    # (at the fastest divisor, 4, the sample lands 3/4 into each bit).
                    m.d.sync += rcount.eq(Mux(self.div >= 8, (self.div >> 1) - 3, 0))
                    m.next = "START"
            with m.State("START"):
                with m.If(rcount == 0):
                    with m.If(rx):
                        m.next = "IDLE"                        # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [rcount.eq(self.div - 1), rbit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += rcount.eq(rcount - 1)
            with m.State("DATA"):
                with m.If(rcount == 0):
                    m.d.sync += [rshift.eq(Cat(rshift[1:], rx)), rcount.eq(self.div - 1), rbit.eq(rbit + 1)]
                    with m.If(rbit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += rcount.eq(rcount - 1)
            with m.State("STOP"):
                with m.If(rcount == 0):
                    with m.If(~rx):
                        m.d.comb += self.rx_framing_error.eq(1)
                        m.next = "BREAK"
                    with m.Else():
                        with m.If(self.rx_data.valid & ~self.rx_data.ready):
                            m.d.comb += self.rx_overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.rx_data.payload.eq(rshift), self.rx_data.valid.eq(1)]
                        m.next = "IDLE"
                with m.Else():
                    m.d.sync += rcount.eq(rcount - 1)
            with m.State("BREAK"):
                with m.If(rx):                                 # wait for the line to idle again
                    m.next = "IDLE"

        # ---- transmitter ----
        tcount = Signal(16)
        tbit = Signal(4)
        tshift = Signal(10)
        with m.FSM(name="tx") as tx_fsm:
            with m.State("IDLE"):
                m.d.comb += self.tx_data.ready.eq(1)
                m.d.sync += self.tx.eq(1)
                with m.If(self.tx_data.valid):
                    m.d.sync += [tshift.eq(Cat(Const(0, 1), self.tx_data.payload, Const(1, 1))),
                                 tbit.eq(0), tcount.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                with m.If(tcount == 0):
                    with m.If(tbit == 10):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.tx.eq(tshift[0]), tshift.eq(tshift >> 1), tbit.eq(tbit + 1),
                                     tcount.eq(self.div - 1)]
                with m.Else():
                    m.d.sync += tcount.eq(tcount - 1)
        # A start bit already in the synchroniser counts as receiving: a divisor switched now would cut it.
        m.d.comb += self.idle.eq(rx_fsm.ongoing("IDLE") & tx_fsm.ongoing("IDLE") & rx & sync1)
        return m
