"""The framed UART link: request frames in, bus accesses, response frames out (docs/uart_link.md).

Byte streams on both sides, so the same link runs behind the 8N1 PHY or, in simulation, directly on bytes.
A frame is executed only after its CRC has been checked, so a corrupted frame never touches the device;
frames are handled strictly in order and the input stream waits (ready low) while one executes or its
response is sent, which a FIFO in front of the link absorbs when a PHY (with no flow control) feeds it.

The link also owns the divisor in use (`div`, to the PHY): UART_BAUD_DIV is only a request, applied between
frames, put on probation when the link itself wrote it, and taken back to the reset divisor on a line break
(docs/uart_link.md, "Changing the rate").
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import (CSR_BASE, LINK_COUNTERS, UART_BREAK_BITS, UART_MIN_DIV, DeviceParams, Frame, FrameCmd,
                             FrameStatus, Reg, uart_confirm_cycles, uart_reset_div, windows)

from .bus import BusSignature

__all__ = ["UARTLink", "COUNTERS"]

COUNTERS = tuple(name for name, _ in LINK_COUNTERS)


def crc16_byte(m, crc, byte, *, name):
    """CRC-16/CCITT-FALSE (poly 0x1021) of one more byte, as combinational logic. Each bit step is its own
    signal: written as one expression, every step would copy the previous one three times."""
    c = Signal(16, name=f"{name}_in")
    m.d.comb += c.eq(crc ^ Cat(Const(0, 8), byte))
    for i in range(8):
        nxt = Signal(16, name=f"{name}_s{i}")
        m.d.comb += nxt.eq(Mux(c[15], (c << 1)[:16] ^ 0x1021, (c << 1)[:16]))
        c = nxt
    return c


class UARTLink(wiring.Component):
    """Ports: `rx`/`tx` byte streams, `bus` (master), the counters of LINK_COUNTERS, and the rate control:
    `div_request` (the UART_BAUD_DIV register), `div_written` (a bus write to UART_BAUD_DIV by any master this
    cycle), `phy_idle` and `rx_level` (from the PHY), `div` (out: the divisor in use).

    reset_div: the divisor after reset (contract.uart_reset_div); confirm_cycles: the probation window
    (contract.uart_confirm_cycles; a testbench may shorten it).
    """

    def __init__(self, *, params, reset_div=None, confirm_cycles=None):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        self.reset_div = uart_reset_div(params) if reset_div is None else reset_div
        self.confirm_cycles = uart_confirm_cycles(params) if confirm_cycles is None else confirm_cycles
        if not isinstance(self.reset_div, int) or not UART_MIN_DIV <= self.reset_div < (1 << 16):
            raise ValueError(f"reset_div must be an int in [{UART_MIN_DIV}, 65535], not {self.reset_div!r}")
        if not isinstance(self.confirm_cycles, int) or self.confirm_cycles < 1:
            raise ValueError(f"confirm_cycles must be a positive int, not {self.confirm_cycles!r}")
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(BusSignature()),
            "div_request": In(16, init=self.reset_div),
            "div_written": In(1),
            "phy_idle": In(1, init=1),
            "rx_level": In(1, init=1),
            "div": Out(16, init=self.reset_div),
            # High while the link is fed byte streams without the PHY (simulation): there is no byte time,
            # so a partial frame times out after Frame.BYPASS_TIMEOUT_CYCLES idle cycles instead.
            "bypass": In(1),
            "framing_error": In(1),
            "overrun": In(1),
            # High while a frame is being received, executed or answered (not hunting for sync).
            "active": Out(1),
            **{name: Out(32) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        n_max = Frame.MAX_WORDS
        m.submodules.buf = buf = memory.Memory(shape=32, depth=n_max, init=[])
        bw = buf.write_port()
        br = buf.read_port()
        m.d.comb += br.en.eq(1)

        with m.If(self.framing_error):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
        with m.If(self.overrun):
            m.d.sync += self.overruns.eq(self.overruns + 1)

        crc = Signal(16)
        seq, cmd = Signal(8), Signal(8)
        length = Signal(16)
        addr = Signal(32)
        status = Signal(8)
        count = Signal(12)              # bytes within the current field
        idx = Signal(range(n_max + 1))  # words
        word = Signal(32)
        rx_crc = Signal(16)
        idle = Signal(32)               # cycles since the last byte inside a frame
        rx = self.rx
        byte = rx.payload
        got = rx.valid & rx.ready

        # Whole range [addr, addr + 4*len) inside one window (one word for WRITE_FIXED).
        span = Signal(33)
        m.d.comb += span.eq(addr + Mux(cmd == FrameCmd.WRITE_FIXED, 4, length * 4))
        in_window = Cat(*(((addr >= w.base) if w.base else Const(1, 1)) & (span <= w.base + w.size)
                          for w in windows(self.params))).any()
        cmd_ok = (cmd == FrameCmd.READ) | (cmd == FrameCmd.WRITE) | (cmd == FrameCmd.WRITE_FIXED)
        len_ok = (length != 0) & (length <= n_max)
        is_write = (cmd == FrameCmd.WRITE) | (cmd == FrameCmd.WRITE_FIXED)
        timeout = Mux(self.bypass, Frame.BYPASS_TIMEOUT_CYCLES, Frame.TIMEOUT_BYTES * 10 * self.div)

        div_addr = CSR_BASE + Reg.UART_BAUD_DIV
        own_write = Signal()            # this cycle the link writes UART_BAUD_DIV for a frame
        pending = Signal()              # a written divisor waits to be applied
        by_link = Signal()              # ...and the UART link wrote it
        between = Signal()
        probation = Signal(range(self.confirm_cycles + 1))   # cycles left for a good frame; 0: none owed
        revert = Signal()               # back to the reset divisor as soon as the link is between frames
        low_max = UART_BREAK_BITS * 0xFFFF
        low = Signal(range(low_max + 1))   # cycles RX has been low

        tx = self.tx
        resp_len = Signal(16)
        crc_rx = crc16_byte(m, crc, byte, name="crc_rx")
        crc_tx = crc16_byte(m, crc, tx.payload, name="crc_tx")

        with m.FSM(name="link") as fsm:
            with m.State("HUNT"):
                m.d.comb += rx.ready.eq(1)
                with m.If(revert & between & ~pending):
                    m.next = "REVERT"
                with m.If(got):
                    with m.If(byte == Frame.REQ_SYNC):
                        m.d.sync += [crc.eq(Frame.CRC_INIT), count.eq(0), idle.eq(0)]
                        m.next = "HEADER"
                    with m.Else():
                        m.d.sync += self.dropped_bytes.eq(self.dropped_bytes + 1)
            for state in ("HEADER", "PAYLOAD", "CRC"):
                with m.State(state):
                    m.d.comb += rx.ready.eq(1)
                    with m.If(got):
                        m.d.sync += idle.eq(0)
                    with m.Elif(idle >= timeout):
                        m.d.sync += self.timeouts.eq(self.timeouts + 1)
                        m.next = "HUNT"
                    with m.Else():
                        m.d.sync += idle.eq(idle + 1)
                    if state == "HEADER":
                        with m.If(got):
                            m.d.sync += [crc.eq(crc_rx), count.eq(count + 1)]
                            with m.Switch(count):
                                with m.Case(0):
                                    m.d.sync += seq.eq(byte)
                                with m.Case(1):
                                    m.d.sync += cmd.eq(byte)
                                with m.Case(2):
                                    m.d.sync += length[:8].eq(byte)
                                with m.Case(3):
                                    m.d.sync += length[8:].eq(byte)
                                for i in range(4):
                                    with m.Case(4 + i):
                                        m.d.sync += addr[8 * i:8 * i + 8].eq(byte)
                            with m.If(count == 7):
                                m.d.sync += [count.eq(0), idx.eq(0)]
                                # Only a well-formed write has a payload; anything else goes straight to its CRC.
                                with m.If(is_write & len_ok):
                                    m.next = "PAYLOAD"
                                with m.Else():
                                    m.next = "CRC"
                    elif state == "PAYLOAD":
                        with m.If(got):
                            nxt = Cat(word[8:], byte)
                            m.d.sync += [crc.eq(crc_rx), word.eq(nxt), count.eq(count + 1)]
                            with m.If(count[:2] == 3):
                                m.d.comb += [bw.en.eq(1), bw.addr.eq(idx), bw.data.eq(nxt)]
                                m.d.sync += idx.eq(idx + 1)
                                with m.If(idx + 1 == length):
                                    m.d.sync += count.eq(0)
                                    m.next = "CRC"
                    else:
                        with m.If(got):
                            m.d.sync += [rx_crc.eq(Cat(byte, rx_crc[:8])), count.eq(count + 1)]
                            with m.If(count == 1):
                                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(rx_crc == crc):
                    m.d.sync += probation.eq(0)       # a good frame at the new rate: it stays
                with m.If(rx_crc != crc):
                    m.d.sync += self.crc_errors.eq(self.crc_errors + 1)
                    m.next = "HUNT"
                with m.Elif(~cmd_ok):
                    m.d.sync += [status.eq(FrameStatus.BAD_CMD), self.bad_frames.eq(self.bad_frames + 1)]
                    m.next = "RESPOND"
                with m.Elif(~len_ok):
                    m.d.sync += [status.eq(FrameStatus.BAD_LEN), self.bad_frames.eq(self.bad_frames + 1)]
                    m.next = "RESPOND"
                with m.Elif((addr[:2] != 0) | ~in_window):
                    m.d.sync += [status.eq(FrameStatus.BAD_ADDR), self.bad_frames.eq(self.bad_frames + 1)]
                    m.next = "RESPOND"
                with m.Else():
                    m.d.sync += [status.eq(FrameStatus.OK), idx.eq(0)]
                    m.next = "EXEC_ADDR"
            with m.State("EXEC_ADDR"):
                m.d.comb += br.addr.eq(idx)
                with m.If(idx == length):
                    m.next = "RESPOND"
                with m.Else():
                    m.next = "EXEC_BUS"
            with m.State("EXEC_BUS"):
                bus = self.bus
                m.d.comb += [br.addr.eq(idx), bus.valid.eq(1), bus.we.eq(is_write), bus.wdata.eq(br.data),
                             bus.addr.eq(Mux(cmd == FrameCmd.WRITE_FIXED, addr, addr + (idx << 2)))]
                m.d.comb += own_write.eq(is_write & bus.ready & ~bus.err & (bus.addr == div_addr))
                with m.If(bus.ready):
                    with m.If(~is_write):
                        m.d.comb += [bw.en.eq(1), bw.addr.eq(idx), bw.data.eq(bus.rdata)]
                    with m.If(bus.err):
                        m.d.sync += status.eq(FrameStatus.BUS_ERROR)
                        m.next = "RESPOND"
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
                        m.next = "EXEC_ADDR"
            with m.State("RESPOND"):
                ok_read = (status == FrameStatus.OK) & (cmd == FrameCmd.READ)
                m.d.sync += [resp_len.eq(Mux(ok_read, length, 0)), count.eq(0), crc.eq(Frame.CRC_INIT),
                             idx.eq(0)]
                with m.If(status == FrameStatus.OK):
                    m.d.sync += self.frames_ok.eq(self.frames_ok + 1)
                m.next = "TX_HEADER"
            with m.State("TX_HEADER"):
                hdr = Signal(8)
                with m.Switch(count):
                    with m.Case(0):
                        m.d.comb += hdr.eq(Frame.RESP_SYNC)
                    with m.Case(1):
                        m.d.comb += hdr.eq(seq)
                    with m.Case(2):
                        m.d.comb += hdr.eq(status)
                    with m.Case(3):
                        m.d.comb += hdr.eq(resp_len[:8])
                    with m.Case(4):
                        m.d.comb += hdr.eq(resp_len[8:])
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(hdr), br.addr.eq(0)]
                with m.If(tx.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count != 0):
                        m.d.sync += crc.eq(crc_tx)
                    with m.If(count == Frame.RESP_HEADER - 1):
                        m.d.sync += count.eq(0)
                        m.next = "TX_PAYLOAD"
            with m.State("TX_PAYLOAD"):
                # br.data holds word idx (addressed since the previous cycle).
                m.d.comb += br.addr.eq(idx)
                with m.If(idx == resp_len):
                    m.next = "TX_CRC"
                with m.Else():
                    b = br.data.word_select(count[:2], 8)
                    m.d.comb += [tx.valid.eq(1), tx.payload.eq(b)]
                    with m.If(tx.ready):
                        m.d.sync += [crc.eq(crc_tx), count.eq(count + 1)]
                        with m.If(count[:2] == 3):
                            m.d.sync += idx.eq(idx + 1)
                            m.next = "TX_WAIT"
            with m.State("TX_WAIT"):
                m.d.comb += br.addr.eq(idx)           # let the next word arrive
                m.next = "TX_PAYLOAD"
            with m.State("TX_CRC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(Mux(count[0], crc[:8], crc[8:]))]
                with m.If(tx.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count[0]):
                        m.next = "HUNT"
            with m.State("REVERT"):
                # The register goes back too, so that it never shows a rate the link does not use.
                bus = self.bus
                m.d.comb += [bus.valid.eq(1), bus.we.eq(1), bus.addr.eq(div_addr), bus.wdata.eq(self.reset_div)]
                with m.If(bus.ready):
                    m.d.sync += [revert.eq(0), probation.eq(0), self.div.eq(self.reset_div),
                                 self.baud_reverts.eq(self.baud_reverts + 1)]
                    m.next = "HUNT"
        m.d.comb += self.active.eq(~fsm.ongoing("HUNT"))

        # ---- rate control ----
        # A written divisor waits until the link is between frames (its answer sent, nothing received
        # unread) and the PHY idle, so that no byte is cut in two and the host hears the answer at its old rate.
        m.d.comb += between.eq(fsm.ongoing("HUNT") & ~rx.valid & self.phy_idle)
        with m.If(self.div_written):
            m.d.sync += [pending.eq(1), by_link.eq(own_write)]
        with m.Elif(pending & between):
            # div_request took the written value at the edge that set `pending`.
            m.d.sync += [pending.eq(0), self.div.eq(self.div_request),
                         probation.eq(Mux(by_link & (self.div_request != self.reset_div), self.confirm_cycles, 0))]
        with m.Elif(probation != 0):
            m.d.sync += probation.eq(probation - 1)
            with m.If(probation == 1):
                m.d.sync += revert.eq(1)
        # Line break: RX low for UART_BREAK_BITS bit times of the slower rate, longer than any byte at either.
        slow = Mux(self.div > self.reset_div, self.div, self.reset_div)
        with m.If(self.rx_level):
            m.d.sync += low.eq(0)
        with m.Elif(low != low_max):
            m.d.sync += low.eq(low + 1)
        with m.If(~self.rx_level & (low == slow * UART_BREAK_BITS)
                  & ((self.div != self.reset_div) | (self.div_request != self.reset_div))):
            m.d.sync += revert.eq(1)
        return m
