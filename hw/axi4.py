"""AXI4 memory-mapped slave with bursts, as wide as the XDMA core whose H2C/C2H DMA engines drive it.

`data_width` 64, 128 or 256 bits (contract.DeviceParams.axi_data_bits); beats must be full width (AxSIZE =
log2(data_width / 8)); INCR and FIXED bursts up to 256 beats, one burst at a time. A beat covers the aligned
block of data_width / 8 bytes that holds its address: write strobes select whole 32-bit words (a word with
some but not all of its strobes set refuses the beat: SLVERR, nothing of it written); a read beat returns
the words from its address to the end of the block (words below the address of an unaligned first beat read
as 0 and are not accessed).

Where a beat goes:
- inside `wide_ranges` (the bank and GB windows): the beat's whole array bursts, one access per burst, on the
  `wide` port (hw/bus.py BurstBusSignature), telling the windows how many more of the transfer follow so
  that they keep the array and read ahead: one beat per cycle when the windows keep up;
- elsewhere (CSR, command queue, scratch): word by word on the 32-bit `bus`, like every other master.
An error in any access makes the write response SLVERR; a failed read access returns 0 in its words and
SLVERR for the beat. WRAP bursts and narrow transfers are refused with SLVERR without any access. Read beats
leave through a two-beat output (RDATA and one beat behind it), so a beat can be fetched every cycle while
the master takes them.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import AXI_DATA_BITS

from .bus import BurstBusSignature, BusSignature

__all__ = ["AXI4Signature", "AXI4Slave", "FIXED", "INCR"]

FIXED, INCR = 0b00, 0b01


class AXI4Signature(wiring.Signature):
    """Seen from the master; the slave uses it flipped (In)."""

    def __init__(self, *, data_width=256, addr_width=32, id_width=4):
        super().__init__({
            "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(8), "awsize": Out(3),
            "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1), "wvalid": Out(1),
            "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(8), "arsize": Out(3),
            "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
            "rready": Out(1),
        })


class AXI4Slave(wiring.Component):
    """Ports: `axi` (the AXI4 slave), `bus` (32-bit bus master) and, with `wide_ranges`, `wide` (burst bus
    master of `burst_bits`, which must divide data_width). wide_ranges: (base, size) byte ranges, aligned to
    data_width / 8, served over `wide`."""

    def __init__(self, *, data_width=256, addr_width=32, id_width=4, burst_bits=None, wide_ranges=()):
        if data_width not in AXI_DATA_BITS:
            raise ValueError(f"data_width must be one of {AXI_DATA_BITS}, not {data_width!r}")
        if not isinstance(id_width, int) or not 1 <= id_width <= 16:
            raise ValueError(f"id_width must be an int in [1, 16], not {id_width!r}")
        if not isinstance(addr_width, int) or not 12 <= addr_width <= 32:
            raise ValueError(f"addr_width must be an int in [12, 32], not {addr_width!r}")
        wide_ranges = tuple(wide_ranges)
        if wide_ranges:
            if not isinstance(burst_bits, int) or burst_bits < 64 or data_width % burst_bits:
                raise ValueError(f"burst_bits must divide data_width={data_width} (and be >= 64), "
                                 f"not {burst_bits!r}")
            for base, size in wide_ranges:
                if base % (data_width // 8) or size % (data_width // 8) or size <= 0:
                    raise ValueError(f"wide range ({base:#x}, {size:#x}) is not aligned to {data_width // 8} bytes")
        self.data_width, self.burst_bits, self.wide_ranges = data_width, burst_bits, wide_ranges
        members = {"axi": In(AXI4Signature(data_width=data_width, addr_width=addr_width, id_width=id_width)),
                   "bus": Out(BusSignature())}
        if wide_ranges:
            members["wide"] = Out(BurstBusSignature(burst_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        s, bus = self.axi, self.bus
        W = self.data_width
        beat_bytes, words = W // 8, W // 32
        lsb = (beat_bytes - 1).bit_length()
        units = W // self.burst_bits if self.wide_ranges else 1       # array bursts per beat
        unit_bytes = beat_bytes // units

        addr = Signal(32)          # the beat's address (the burst's for the first beat, then aligned)
        left = Signal(9)           # beats still to fetch or accept
        burst = Signal(2)
        ok = Signal()              # the burst is of a kind we serve
        err = Signal()             # an access of this write burst (or read beat) failed
        sub = Signal(range(max(words, units)))   # word (bus path) or array burst (wide path) within the beat
        block = Cat(Const(0, lsb), addr[lsb:])
        first_word = addr[2:lsb]
        nxt = Mux(burst == INCR, block + beat_bytes, addr)

        # Which path this beat takes, and for the wide path how many accesses of the transfer follow this one:
        # those left in the burst, but never past the end of the range (beats beyond it go word by word).
        wide = Signal()
        ahead = Signal(BurstBusSignature.AHEAD_BITS)
        unit_addr = Signal(32)
        m.d.comb += unit_addr.eq(block + sub * unit_bytes)
        if self.wide_ranges:
            left_units = Signal(BurstBusSignature.AHEAD_BITS)
            m.d.comb += left_units.eq((left - 1) * units + (units - 1 - sub))
            for base, size in self.wide_ranges:
                inside = (block >= base) & (block < base + size)
                to_end = Signal(BurstBusSignature.AHEAD_BITS, name=f"to_end_{base:x}")
                m.d.comb += to_end.eq((base + size - unit_addr - unit_bytes) // unit_bytes)
                with m.If(inside):
                    m.d.comb += [wide.eq(1),
                                 ahead.eq(Mux((burst == INCR) & (to_end < left_units), to_end, left_units))]

        def start(ch, resp_id, state):
            """Accept the address of a burst on channel `ch` ("aw" or "ar") and go to `state`."""
            a = {f: getattr(s, f"{ch}{f}") for f in ("ready", "addr", "len", "burst", "size", "id")}
            m.d.comb += a["ready"].eq(1)
            m.d.sync += [addr.eq(a["addr"]), left.eq(a["len"] + 1), burst.eq(a["burst"]), resp_id.eq(a["id"]),
                         ok.eq((a["size"] == lsb) & ((a["burst"] == INCR) | (a["burst"] == FIXED))), err.eq(0),
                         sub.eq(0)]
            m.next = state

        # ---- write beats ---------------------------------------------------------------------------------
        nibbles = [s.wstrb[4 * i:4 * i + 4] for i in range(words)]
        word_on = Cat(*(n == 0xF for n in nibbles))
        strobe_bad = Cat(*((n != 0) & (n != 0xF) for n in nibbles)).any()
        w_units = Array(s.wdata.word_select(i, W // units) for i in range(units))
        w_masks = Array(word_on.word_select(i, words // units) for i in range(units))
        w_words = Array(s.wdata.word_select(i, 32) for i in range(words))
        beat_done, beat_err = Signal(name="beat_done"), Signal(name="beat_err")

        # ---- read beats: assembled in rbuf, then into RDATA or, while RDATA waits, the beat behind it ------
        rbuf = Signal(W)
        rerr = Signal()
        p_full, p_data = Signal(name="p_full"), Signal(W, name="p_data")
        p_err, p_last = Signal(name="p_err"), Signal(name="p_last")
        r_free = ~s.rvalid | s.rready
        r_done, r_data, r_err = Signal(name="r_done"), Signal(W, name="r_data"), Signal(name="r_err")

        with m.FSM():
            with m.State("IDLE"):
                with m.If(s.awvalid):
                    start("aw", s.bid, "W_BEAT")
                with m.Elif(s.arvalid):
                    start("ar", s.rid, "R_BEAT")
            with m.State("W_BEAT"):
                with m.If(s.wvalid):
                    with m.If(~ok | (strobe_bad & ~wide)):
                        m.d.comb += [beat_done.eq(1), beat_err.eq(1)]
                    with m.Elif(wide):
                        # A refused beat still walks its bursts (with nothing to write), so that the windows
                        # see every access they were told would follow.
                        wb = self.wide
                        m.d.comb += [wb.valid.eq(1), wb.we.eq(1), wb.addr.eq(unit_addr), wb.wdata.eq(w_units[sub]),
                                     wb.wmask.eq(Mux(strobe_bad, 0, w_masks[sub])), wb.ahead.eq(ahead),
                                     wb.incr.eq(burst == INCR)]
                        with m.If(wb.ready):
                            m.d.comb += beat_err.eq(err | wb.err | strobe_bad)
                            with m.If(sub == units - 1):
                                m.d.comb += beat_done.eq(1)
                            with m.Else():
                                m.d.sync += [sub.eq(sub + 1), err.eq(err | wb.err)]
                    with m.Else():
                        on = word_on.bit_select(sub, 1)
                        with m.If(on):
                            m.d.comb += [bus.valid.eq(1), bus.we.eq(1), bus.addr.eq(block + (sub << 2)),
                                         bus.wdata.eq(w_words[sub])]
                        with m.If(~on | bus.ready):
                            failed = on & bus.err
                            m.d.comb += beat_err.eq(err | failed)
                            with m.If(sub == words - 1):
                                m.d.comb += beat_done.eq(1)
                            with m.Else():
                                m.d.sync += [sub.eq(sub + 1), err.eq(err | failed)]
                with m.If(beat_done):
                    m.d.comb += s.wready.eq(1)
                    m.d.sync += [err.eq(beat_err), left.eq(left - 1), addr.eq(nxt), sub.eq(0)]
                    with m.If(s.wlast | (left == 1)):
                        m.d.sync += [s.bvalid.eq(1), s.bresp.eq(beat_err << 1)]
                        m.next = "B"
            with m.State("B"):
                with m.If(s.bready):
                    m.d.sync += s.bvalid.eq(0)
                    m.next = "IDLE"
            with m.State("R_BEAT"):
                with m.If((left != 0) & ~p_full):
                    with m.If(~ok):
                        m.d.comb += [r_done.eq(1), r_data.eq(0), r_err.eq(1)]
                    with m.Elif(wide):
                        wb = self.wide
                        m.d.comb += [wb.valid.eq(1), wb.we.eq(0), wb.addr.eq(unit_addr), wb.ahead.eq(ahead),
                                     wb.incr.eq(burst == INCR)]
                        piece = Mux(wb.err, 0, wb.rdata)
                        with m.If(wb.ready):
                            with m.If(sub == units - 1):
                                assembled = Signal(W)
                                m.d.comb += [assembled.eq(rbuf), assembled.word_select(sub, W // units).eq(piece),
                                             r_done.eq(1), r_data.eq(assembled), r_err.eq(rerr | wb.err)]
                            with m.Else():
                                m.d.sync += [rbuf.word_select(sub, W // units).eq(piece), rerr.eq(rerr | wb.err),
                                             sub.eq(sub + 1)]
                    with m.Else():
                        wanted = sub >= first_word
                        with m.If(wanted):
                            m.d.comb += [bus.valid.eq(1), bus.we.eq(0), bus.addr.eq(block + (sub << 2))]
                        word = Mux(wanted & ~bus.err, bus.rdata, 0)
                        with m.If(~wanted | bus.ready):
                            got_err = wanted & bus.err
                            with m.If(sub == words - 1):
                                assembled = Signal(W)
                                m.d.comb += [assembled.eq(rbuf), assembled.word_select(sub, 32).eq(word),
                                             r_done.eq(1), r_data.eq(assembled), r_err.eq(rerr | got_err)]
                            with m.Else():
                                m.d.sync += [rbuf.word_select(sub, 32).eq(word), rerr.eq(rerr | got_err),
                                             sub.eq(sub + 1)]
                # RDATA and the beat behind it.
                with m.If(r_done):
                    m.d.sync += [left.eq(left - 1), addr.eq(nxt), sub.eq(0), rbuf.eq(0), rerr.eq(0)]
                    with m.If(r_free):
                        m.d.sync += [s.rvalid.eq(1), s.rdata.eq(r_data), s.rresp.eq(r_err << 1),
                                     s.rlast.eq(left == 1)]
                    with m.Else():
                        m.d.sync += [p_full.eq(1), p_data.eq(r_data), p_err.eq(r_err), p_last.eq(left == 1)]
                with m.Elif(p_full & r_free):
                    m.d.sync += [s.rvalid.eq(1), s.rdata.eq(p_data), s.rresp.eq(p_err << 1), s.rlast.eq(p_last),
                                 p_full.eq(0)]
                with m.Elif(s.rvalid & s.rready):
                    m.d.sync += s.rvalid.eq(0)
                with m.If((left == 0) & ~p_full & r_free):
                    m.next = "IDLE"
        return m
