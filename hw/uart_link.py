"""The framed UART link: request frames in, bus accesses, response frames out (docs/uart_link.md).

Byte streams on both sides, so the same link runs behind the 8N1 PHY or, in simulation, directly on bytes.
A frame reaches the bus only after its CRC has been checked, so a corrupted frame never touches the device.
Three stages run side by side so that neither byte stream waits on the bus: the receiver takes a frame
(a write's words into one half of a two-half buffer), the executor accesses the bus for the frame before it
(a write's words from the other half; a read's words into one half of a second two-half buffer), and the
transmitter answers the frame before that (a read's words from that buffer's other half). Frames move from
stage to stage strictly in order, one per stage; the receiver holds a checked frame (ready low) until the
executor is free, and the executor holds a finished one until the transmitter is free. A frame for the CSR
window runs with the link otherwise quiet: after every earlier answer has gone, and with the receiver taking
no bytes until it is done.

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
from .counted_index import counter_setter
from .fp32 import tree_reduce

__all__ = ["UARTLink", "COUNTERS", "times_constant"]

COUNTERS = tuple(name for name, _ in LINK_COUNTERS)


def times_constant(value, k):
    """value * k for a constant k > 0 as a sum of shifted copies of `value` (one per set bit of k), in adders.

    Yosys maps a product by a constant to a MULT18X18D, and the DSP column the placer picks may be across the
    device from both the divisor and the register the product goes to: a029335's successor built at 75 MHz with
    seed 2 failed on the divisor's route to that multiplier (6.88 ns) and back (10.10 ns of routing in 14.55)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    terms = [value << i for i in range(k.bit_length()) if (k >> i) & 1]
    return tree_reduce(terms, lambda a, b: a + b)


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
        half = n_max.bit_length() - 1           # word address bits within one half (n_max is a power of two)
        assert 1 << half == n_max
        # Two memories, one per direction, each of two halves: one write port and one read port each, so
        # every stage has the port it needs without sharing (one block RAM each on the ECP5).
        m.submodules.wbuf = wbuf = memory.Memory(shape=32, depth=2 * n_max, init=[])   # request words
        m.submodules.rbuf = rbuf = memory.Memory(shape=32, depth=2 * n_max, init=[])   # read answers
        ww, wr = wbuf.write_port(), wbuf.read_port()
        rw, rr = rbuf.write_port(), rbuf.read_port()
        m.d.comb += [wr.en.eq(1), rr.en.eq(1)]

        with m.If(self.framing_error):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
        with m.If(self.overrun):
            m.d.sync += self.overruns.eq(self.overruns + 1)

        # ---- receiver state ----
        crc = Signal(16)
        seq, cmd = Signal(8), Signal(8)
        length = Signal(16)
        addr = Signal(32)
        count = Signal(12)              # bytes within the current field
        idx = Signal(range(n_max + 1))  # words
        # Each word index has its end test in a register set with the index (hw/counted_index.py): the index's
        # increment and its compare with the length in front of the state register made the ULX3S build's
        # critical path (16.15 ns at 60 MHz).
        idx_last = Signal(name="rx_idx_last")
        set_idx = counter_setter(idx, [(idx_last, lambda n: n == length)])
        word = Signal(32)
        rx_crc = Signal(16)
        idle = Signal(32)               # cycles since the last byte inside a frame
        rx_half = Signal()              # the request buffer half the receiver fills
        rx = self.rx
        byte = rx.payload
        got = rx.valid & rx.ready

        # Whole range [addr, addr + 4*len) inside one window (one word for WRITE_FIXED). The range's end is a
        # register: the opcode's decoding, the 32-bit adder and the windows' compares in one cycle made the 60 MHz
        # build's critical path (14.86 ns, 10.12 of it routing); see the check registers below for why a stage
        # more is never late.
        span = Signal(33, name="span")
        m.d.sync += span.eq(addr + Mux(cmd == FrameCmd.WRITE_FIXED, 4, length * 4))
        in_window = Cat(*(((addr >= w.base) if w.base else Const(1, 1)) & (span <= w.base + w.size)
                          for w in windows(self.params))).any()
        cmd_ok = (cmd == FrameCmd.READ) | (cmd == FrameCmd.WRITE) | (cmd == FrameCmd.WRITE_FIXED)
        len_ok = (length != 0) & (length <= n_max)
        is_write = (cmd == FrameCmd.WRITE) | (cmd == FrameCmd.WRITE_FIXED)
        # Registered, as is the line-break threshold below: products of the divisor, which changes only between
        # frames, so one cycle late is never late (with the compares they made ~21 ns on the ULX3S build).
        timeout = Signal(32, name="timeout_cycles", init=Frame.TIMEOUT_BYTES * 10 * self.reset_div)
        m.d.sync += timeout.eq(Mux(self.bypass, Frame.BYPASS_TIMEOUT_CYCLES,
                                   times_constant(self.div, Frame.TIMEOUT_BYTES * 10)))
        csr_win = next(w for w in windows(self.params) if w.name == "csr")
        in_csr = ((addr >= csr_win.base) if csr_win.base else Const(1, 1)) & (addr < csr_win.base + csr_win.size)
        # The status the header checks give a frame whose CRC matched, and what the executor takes of the
        # header beside it, in registers: the window compares on `addr + 4 * length` and the status's priority
        # into the executor's registers made 16.4 ns (estimated) on the ULX3S build. The header's registers
        # hold still from its last byte on, and the frame reaches the check no sooner than two bytes (its CRC)
        # later, so the registers there hold the checks of the frame's own header: the header's last byte is
        # taken in cycle t and `addr` holds it from t + 1, `span` from t + 2, the check registers from t + 3;
        # the CRC's bytes are taken in t + 1 and t + 2 at the soonest, so CHECK reads the registers from t + 3.
        status_now = Signal(8, name="check_status_now")
        with m.If(~cmd_ok):
            m.d.comb += status_now.eq(FrameStatus.BAD_CMD)
        with m.Elif(~len_ok):
            m.d.comb += status_now.eq(FrameStatus.BAD_LEN)
        with m.Elif((addr[:2] != 0) | ~in_window):
            m.d.comb += status_now.eq(FrameStatus.BAD_ADDR)
        with m.Else():
            m.d.comb += status_now.eq(FrameStatus.OK)
        check_status, checked_len, checked_last = Signal(8), Signal.like(length, name="checked_len"), Signal()
        checked_csr = Signal()
        m.d.sync += [check_status.eq(status_now), checked_len.eq(Mux(len_ok, length, 0)),
                     checked_last.eq(len_ok & (length == 1)), checked_csr.eq(in_csr)]

        # ---- executor state: the frame whose bus accesses run ----
        ex_seq, ex_status = Signal(8), Signal(8)
        ex_len = Signal(range(n_max + 1))
        # The bus address of word ex_idx, kept running (+4 per accepted word; WRITE_FIXED's stays): formed as
        # ex_addr + 4 * ex_idx it made the ULX3S build's critical path (15.29 ns at 60 MHz, the adder behind the
        # index's register).
        ex_addr = Signal(32)
        ex_write, ex_fixed, ex_read = Signal(), Signal(), Signal()
        ex_idx = Signal(range(n_max + 1))
        ex_last = Signal()              # ex_idx + 1 == ex_len
        set_ex_idx = counter_setter(ex_idx, [(ex_last, lambda n: n == ex_len)])
        ex_half = Signal()              # the request buffer half the executor reads
        ex_rhalf = Signal()             # the answer buffer half the executor fills
        ex_idle = Signal()
        ex_csr = Signal()               # the executor's frame accesses the CSR window
        # A frame for the CSR window runs with the link otherwise quiet, as every frame did before the stages
        # overlapped: it starts once every earlier frame has been answered, and the receiver takes no bytes
        # until it is done. The CSR window shows (and clears) the receiver's own counters, which a frame then
        # reads as of its place in the byte stream; status registers are read no sooner after the frame before
        # than the one-frame-at-a-time link read them (control and status traffic; bulk data never waits).
        hold = Signal()

        # ---- transmitter state: the frame being answered ----
        tcrc = Signal(16)
        t_seq, t_status = Signal(8), Signal(8)
        t_len = Signal(range(n_max + 1))
        t_half = Signal()               # the answer buffer half the transmitter reads
        tcount = Signal(3)              # bytes within the current field
        tidx = Signal(range(n_max + 1))
        t_last = Signal()               # tidx + 1 == t_len
        set_tidx = counter_setter(tidx, [(t_last, lambda n: n == t_len)])
        tx_idle = Signal()

        div_addr = CSR_BASE + Reg.UART_BAUD_DIV
        own_write = Signal()            # this cycle the link writes UART_BAUD_DIV for a frame
        pending = Signal()              # a written divisor waits to be applied
        by_link = Signal()              # ...and the UART link wrote it
        between = Signal()
        confirm = Signal()              # a frame whose CRC matched is at the check: the rate in use is good
        probation = Signal(range(self.confirm_cycles + 1))   # cycles left for a good frame; 0: none owed
        revert = Signal()               # back to the reset divisor as soon as the link is between frames
        low_max = UART_BREAK_BITS * 0xFFFF
        low = Signal(range(low_max + 1))   # cycles RX has been low

        tx = self.tx
        bus = self.bus
        crc_rx = crc16_byte(m, crc, byte, name="crc_rx")
        # The answer's CRC takes each byte a cycle after it went, from a register: the answer buffer's block RAM
        # through the byte selection and the CRC in one cycle made 18.0 ns (estimated) on the ULX3S build. The
        # CRC bytes wait while the last update is pending (a cycle; the PHY takes a byte time per byte anyway).
        crc_byte, crc_pending = Signal(8, name="tx_crc_byte"), Signal(name="tx_crc_pending")
        crc_tx = crc16_byte(m, tcrc, crc_byte, name="crc_tx")
        m.d.sync += crc_pending.eq(0)
        with m.If(crc_pending):
            m.d.sync += tcrc.eq(crc_tx)
        hand_ex = Signal()              # this cycle the receiver hands its checked frame to the executor
        hand_tx = Signal()              # this cycle the executor hands its finished frame to the transmitter

        with m.FSM(name="rx") as rx_fsm:
            with m.State("HUNT"):
                m.d.comb += rx.ready.eq(~hold)
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
                    m.d.comb += rx.ready.eq(~hold)
                    with m.If(got):
                        m.d.sync += idle.eq(0)
                    with m.Elif(hold):
                        pass                        # not waiting for a byte: the link takes none
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
                                m.d.sync += count.eq(0)
                                set_idx(m, step=False)
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
                                # Staged in the receiver's half: nothing reaches the bus before the CRC check.
                                m.d.comb += [ww.en.eq(1), ww.addr.eq(Cat(idx[:half], rx_half)), ww.data.eq(nxt)]
                                set_idx(m, step=True)
                                with m.If(idx_last):
                                    m.d.sync += count.eq(0)
                                    m.next = "CRC"
                    else:
                        with m.If(got):
                            m.d.sync += [rx_crc.eq(Cat(byte, rx_crc[:8])), count.eq(count + 1)]
                            with m.If(count == 1):
                                m.next = "CHECK"
            with m.State("CHECK"):
                # A matching frame waits here (taking no bytes) until the executor is free.
                with m.If(rx_crc != crc):
                    m.d.sync += self.crc_errors.eq(self.crc_errors + 1)
                    m.next = "HUNT"
                with m.Else():
                    m.d.comb += confirm.eq(1)
                    with m.If(ex_idle):
                        m.d.comb += hand_ex.eq(1)
                        m.d.sync += rx_half.eq(~rx_half)
                        m.next = "HUNT"
            with m.State("REVERT"):
                # The register goes back too, so that it never shows a rate the link does not use. Entered only
                # between frames, so the executor does not hold the bus.
                m.d.comb += [bus.valid.eq(1), bus.we.eq(1), bus.addr.eq(div_addr), bus.wdata.eq(self.reset_div)]
                with m.If(bus.ready):
                    m.d.sync += [revert.eq(0), probation.eq(0), self.div.eq(self.reset_div),
                                 self.baud_reverts.eq(self.baud_reverts + 1)]
                    m.next = "HUNT"

        with m.FSM(name="exec") as ex_fsm:
            with m.State("IDLE"):
                with m.If(hand_ex):
                    m.d.sync += [ex_seq.eq(seq), ex_status.eq(check_status), ex_len.eq(checked_len),
                                 ex_addr.eq(addr), ex_write.eq(is_write), ex_fixed.eq(cmd == FrameCmd.WRITE_FIXED),
                                 ex_read.eq(cmd == FrameCmd.READ), ex_half.eq(rx_half), ex_csr.eq(checked_csr)]
                    set_ex_idx(m, step=False, first=[checked_last])     # ex_len is loaded in this cycle
                    m.next = "START"
            with m.State("START"):
                m.d.comb += wr.addr.eq(Cat(Const(0, half), ex_half))     # word 0 ready for the first access
                with m.If(ex_csr & ~tx_idle):
                    pass                            # a CSR access waits until every earlier frame is answered
                with m.Elif(ex_status == FrameStatus.OK):
                    m.next = "BUS"
                with m.Else():
                    m.d.sync += self.bad_frames.eq(self.bad_frames + 1)
                    m.next = "DONE"
            with m.State("BUS"):
                # wr.data holds word ex_idx (addressed since the previous cycle); the next one is addressed
                # as soon as this one is accepted, so a word can go every cycle the bus allows.
                m.d.comb += [bus.valid.eq(1), bus.we.eq(ex_write), bus.wdata.eq(wr.data),
                             bus.addr.eq(ex_addr),
                             wr.addr.eq(Cat(Mux(bus.ready, ex_idx + 1, ex_idx)[:half], ex_half))]
                m.d.comb += own_write.eq(ex_write & bus.ready & ~bus.err & (bus.addr == div_addr))
                with m.If(bus.ready):
                    with m.If(~ex_write):
                        m.d.comb += [rw.en.eq(1), rw.addr.eq(Cat(ex_idx[:half], ex_rhalf)), rw.data.eq(bus.rdata)]
                    with m.If(bus.err):
                        m.d.sync += ex_status.eq(FrameStatus.BUS_ERROR)
                        m.next = "DONE"
                    with m.Else():
                        set_ex_idx(m, step=True)
                        with m.If(~ex_fixed):
                            m.d.sync += ex_addr.eq(ex_addr + 4)
                        with m.If(ex_last):
                            m.d.sync += self.frames_ok.eq(self.frames_ok + 1)
                            m.next = "DONE"
            with m.State("DONE"):
                with m.If(tx_idle):
                    m.d.comb += hand_tx.eq(1)
                    m.d.sync += ex_rhalf.eq(~ex_rhalf)
                    m.next = "IDLE"

        with m.FSM(name="tx") as tx_fsm:
            with m.State("IDLE"):
                m.d.comb += rr.addr.eq(Cat(Const(0, half), ex_rhalf))
                with m.If(hand_tx):
                    ok_read = (ex_status == FrameStatus.OK) & ex_read
                    m.d.sync += [t_seq.eq(ex_seq), t_status.eq(ex_status), t_len.eq(Mux(ok_read, ex_len, 0)),
                                 t_half.eq(ex_rhalf), tcount.eq(0), tcrc.eq(Frame.CRC_INIT)]
                    set_tidx(m, step=False, first=[ok_read & (ex_len == 1)])    # t_len is loaded in this cycle
                    m.next = "HEADER"
            with m.State("HEADER"):
                hdr = Signal(8)
                with m.Switch(tcount):
                    with m.Case(0):
                        m.d.comb += hdr.eq(Frame.RESP_SYNC)
                    with m.Case(1):
                        m.d.comb += hdr.eq(t_seq)
                    with m.Case(2):
                        m.d.comb += hdr.eq(t_status)
                    with m.Case(3):
                        m.d.comb += hdr.eq(t_len[:8])
                    with m.Case(4):
                        m.d.comb += hdr.eq(t_len[8:])
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(hdr), rr.addr.eq(Cat(Const(0, half), t_half))]
                with m.If(tx.ready):
                    m.d.sync += tcount.eq(tcount + 1)
                    with m.If(tcount != 0):
                        m.d.sync += [crc_byte.eq(hdr), crc_pending.eq(1)]
                    with m.If(tcount == Frame.RESP_HEADER - 1):
                        m.d.sync += tcount.eq(0)
                        with m.If(t_len == 0):
                            m.next = "CRC"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                # rr.data holds word tidx (addressed since the previous cycle); the next word is addressed in
                # the cycle its predecessor's last byte goes, so the bytes leave back to back.
                last_byte = tx.ready & (tcount[:2] == 3)
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(rr.data.word_select(tcount[:2], 8)),
                             rr.addr.eq(Cat(Mux(last_byte, tidx + 1, tidx)[:half], t_half))]
                with m.If(tx.ready):
                    m.d.sync += [crc_byte.eq(tx.payload), crc_pending.eq(1), tcount.eq(tcount + 1)]
                    with m.If(tcount[:2] == 3):
                        m.d.sync += tcount.eq(0)
                        set_tidx(m, step=True)
                        with m.If(t_last):
                            m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [tx.valid.eq(~crc_pending), tx.payload.eq(Mux(tcount[0], tcrc[:8], tcrc[8:]))]
                with m.If(tx.ready & ~crc_pending):
                    m.d.sync += tcount.eq(tcount + 1)
                    with m.If(tcount[0]):
                        m.next = "IDLE"
        m.d.comb += [ex_idle.eq(ex_fsm.ongoing("IDLE")), tx_idle.eq(tx_fsm.ongoing("IDLE"))]
        # `hold` is ex_csr & ~ex_idle, kept as a register: the executor leaves IDLE only at hand_ex, which loads
        # ex_csr, and returns only at hand_tx. The executor's state decoding in front of the receiver's state
        # made 15.1 ns, estimated, at 75 MHz.
        with m.If(hand_ex):
            m.d.sync += hold.eq(checked_csr)
        with m.Elif(hand_tx):
            m.d.sync += hold.eq(0)
        hunting = rx_fsm.ongoing("HUNT")
        m.d.comb += self.active.eq(~(hunting & ex_idle & tx_idle))

        # ---- rate control ----
        # A written divisor waits until the link is between frames (its answer sent, nothing received
        # unread) and the PHY idle, so that no byte is cut in two and the host hears the answer at its old rate.
        m.d.comb += between.eq(hunting & ex_idle & tx_idle & ~rx.valid & self.phy_idle)
        # A write to UART_BAUD_DIV (and whether it was the link's own) is taken a cycle after the bus answered
        # it: from the executor's state through the arbiter's bus and the address compare into the rate
        # control's priority made 16.0 ns (estimated) on the 75 MHz build. The register holds the value, and
        # the rate changes only once the link is between frames, which it cannot be before the write's answer
        # has gone; another master's write takes effect a cycle later, as no master can tell.
        written, own = Signal(name="div_written_q"), Signal(name="own_write_q")
        m.d.sync += [written.eq(self.div_written), own.eq(own_write)]
        with m.If(written):
            m.d.sync += [pending.eq(1), by_link.eq(own)]
        with m.Elif(pending & between):
            # div_request took the written value at the edge that set `pending`.
            m.d.sync += [pending.eq(0), self.div.eq(self.div_request),
                         probation.eq(Mux(by_link & (self.div_request != self.reset_div), self.confirm_cycles, 0))]
        with m.Elif(confirm):
            m.d.sync += probation.eq(0)           # a good frame at the new rate: it stays
        with m.Elif(probation != 0):
            m.d.sync += probation.eq(probation - 1)
            with m.If(probation == 1):
                m.d.sync += revert.eq(1)
        # Line break: RX low for UART_BREAK_BITS bit times of the slower rate, longer than any byte at either.
        # The slower divisor is registered before the multiply (shifts and adds, times_constant): compare,
        # selection and multiply in one cycle made ~16.6 ns (estimated) on the ULX3S build. The threshold
        # follows a divisor change two cycles later, which no break can notice (it lasts thousands of cycles).
        slow_div = Signal.like(self.div, name="break_div", init=self.reset_div)
        break_at = Signal(range(low_max + 1), name="break_cycles", init=self.reset_div * UART_BREAK_BITS)
        m.d.sync += [slow_div.eq(Mux(self.div > self.reset_div, self.div, self.reset_div)),
                     break_at.eq(times_constant(slow_div, UART_BREAK_BITS))]
        with m.If(self.rx_level):
            m.d.sync += low.eq(0)
        with m.Elif(low != low_max):
            m.d.sync += low.eq(low + 1)
        with m.If(~self.rx_level & (low == break_at)
                  & ((self.div != self.reset_div) | (self.div_request != self.reset_div))):
            m.d.sync += revert.eq(1)
        return m
