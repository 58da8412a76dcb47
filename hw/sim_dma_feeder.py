"""A simulation-only DMA engine: drives the device's AXI4 port with whole bursts at full rate from blocks the
testbench hands it, so that the sim server moves PCIe bulk data without waking Python on every beat (what an
XDMA core's H2C/C2H engines do on a board).

A transfer is `cmd_beats` beats of `data_width` bits from `cmd_addr` (aligned to a beat), written
(`cmd_write`) or read, started by a one-cycle `cmd_start` while `idle`. It goes out as INCR bursts of at
most 256 beats that never cross a 4 KiB boundary (the AXI rule), each one's response awaited before the next.
`idle` rises when the last response is in (or, for a read, once its last chunk has been taken); `err` then
says whether any response was not OKAY.

Data moves in chunks of `chunk_beats` beats (first beat in the low bits):
- write: while `in_room`, the testbench puts a chunk on `in_data` and raises `in_load` for one cycle (the last
  chunk of a transfer may be partly used); one chunk is sent while the next waits, so bursts stream;
- read: a chunk of `out_beats` beats (0: none yet) waits on `out_data` until the testbench raises `out_take` for
  one cycle; beats keep arriving meanwhile into the chunk behind it.
A load or a take shows in `in_room` / `out_beats` one cycle after it.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import AXI_DATA_BITS

from .axi4 import INCR, AXI4Signature

__all__ = ["SimDmaFeeder"]

MAX_BEATS_BITS = 24      # a transfer: up to 2**24 - 1 beats (512 MiB at 256 bits), far above SimPcie.MAX_BYTES


class SimDmaFeeder(wiring.Component):
    def __init__(self, *, data_width=256, chunk_beats=32):
        if data_width not in AXI_DATA_BITS:
            raise ValueError(f"data_width must be one of {AXI_DATA_BITS}, not {data_width!r}")
        if not isinstance(chunk_beats, int) or not 1 <= chunk_beats <= 256:
            raise ValueError(f"chunk_beats must be an int in [1, 256], not {chunk_beats!r}")
        self.data_width, self.chunk_beats = data_width, chunk_beats
        bits = data_width * chunk_beats
        super().__init__({
            "axi": Out(AXI4Signature(data_width=data_width)),
            "cmd_addr": In(32), "cmd_beats": In(MAX_BEATS_BITS), "cmd_write": In(1), "cmd_start": In(1),
            "idle": Out(1, init=1), "err": Out(1),
            "in_data": In(bits), "in_load": In(1), "in_room": Out(1),
            "out_data": Out(bits), "out_beats": Out(range(chunk_beats + 1)), "out_take": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        a = self.axi
        W, K = self.data_width, self.chunk_beats
        beat_bytes = W // 8
        page_beats = 4096 // beat_bytes

        addr = Signal(32)
        left = Signal(MAX_BEATS_BITS)      # beats of the transfer not yet in a burst
        n = Signal(9)                      # beats of the current burst
        k = Signal(9)                      # beats of it done
        # This burst: what is left, at most 256 beats, up to the next 4 KiB boundary.
        to_page = Signal(range(page_beats + 1))
        m.d.comb += to_page.eq(page_beats - addr[(beat_bytes - 1).bit_length():12])
        limit = Mux(to_page < 256, to_page, 256)
        burst_len = Signal(9)
        m.d.comb += burst_len.eq(Mux(left < limit, left, limit))

        # Write chunks: `cur` is being sent (cur_left beats), `nxt` waits behind it.
        cur, nxt = Signal(W * K), Signal(W * K)
        cur_left = Signal(range(K + 1))
        nxt_full = Signal()
        m.d.comb += self.in_room.eq(~nxt_full)
        with m.If(self.in_load & ~nxt_full):
            m.d.sync += [nxt.eq(self.in_data), nxt_full.eq(1)]
        # Read chunks: `obuf` collects (o_count beats), `out_data` waits for the testbench (out_beats).
        obuf = Signal(W * K)
        o_count = Signal(range(K + 1))
        with m.If(self.out_take):
            m.d.sync += self.out_beats.eq(0)

        m.d.comb += [a.awsize.eq(Const((beat_bytes - 1).bit_length(), 3)), a.arsize.eq((beat_bytes - 1).bit_length()),
                     a.awburst.eq(INCR), a.arburst.eq(INCR), a.awaddr.eq(addr), a.araddr.eq(addr),
                     a.awlen.eq(burst_len - 1), a.arlen.eq(burst_len - 1), a.wstrb.eq(-1),
                     a.wdata.eq(cur[:W]), a.wlast.eq(k + 1 == n)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.cmd_start & (self.cmd_beats != 0)):
                    m.d.sync += [addr.eq(self.cmd_addr), left.eq(self.cmd_beats), self.err.eq(0), self.idle.eq(0),
                                 o_count.eq(0)]
                    with m.If(self.cmd_write):
                        m.next = "AW"
                    with m.Else():
                        m.next = "AR"
            with m.State("AW"):
                m.d.comb += a.awvalid.eq(1)
                with m.If(a.awready):
                    m.d.sync += [n.eq(burst_len), k.eq(0), left.eq(left - burst_len),
                                 addr.eq(addr + burst_len * beat_bytes)]
                    m.next = "W"
            with m.State("W"):
                with m.If(cur_left == 0):
                    with m.If(nxt_full):
                        m.d.sync += [cur.eq(nxt), cur_left.eq(K), nxt_full.eq(0)]
                with m.Else():
                    m.d.comb += a.wvalid.eq(1)
                    with m.If(a.wready):
                        m.d.sync += k.eq(k + 1)
                        with m.If((cur_left == 1) & nxt_full):        # the next chunk follows without a gap
                            m.d.sync += [cur.eq(nxt), cur_left.eq(K), nxt_full.eq(0)]
                        with m.Else():
                            m.d.sync += [cur.eq(cur >> W), cur_left.eq(cur_left - 1)]
                        with m.If(k + 1 == n):
                            m.next = "B"
            with m.State("B"):
                m.d.comb += a.bready.eq(1)
                with m.If(a.bvalid):
                    m.d.sync += self.err.eq(self.err | (a.bresp != 0))
                    with m.If(left == 0):
                        # A last chunk sent in part is dropped with the transfer.
                        m.d.sync += [self.idle.eq(1), cur_left.eq(0), nxt_full.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "AW"
            with m.State("AR"):
                m.d.comb += a.arvalid.eq(1)
                with m.If(a.arready):
                    m.d.sync += [n.eq(burst_len), k.eq(0), left.eq(left - burst_len),
                                 addr.eq(addr + burst_len * beat_bytes)]
                    m.next = "R"
            with m.State("R"):
                # A full collecting chunk moves out once the testbench has taken the one before it.
                out_free = (self.out_beats == 0) | self.out_take
                with m.If((o_count == K) & out_free):
                    m.d.sync += [self.out_data.eq(obuf), self.out_beats.eq(K), o_count.eq(0)]
                with m.Elif(o_count != K):
                    m.d.comb += a.rready.eq(1)
                    with m.If(a.rvalid):
                        m.d.sync += [obuf.word_select(o_count, W).eq(a.rdata), o_count.eq(o_count + 1),
                                     k.eq(k + 1), self.err.eq(self.err | (a.rresp != 0))]
                        with m.If((k + 1 == n) & (left == 0)):
                            m.next = "R_LAST"
                        with m.Elif(k + 1 == n):
                            m.next = "AR"
            with m.State("R_LAST"):
                # The transfer's last chunk (possibly short) goes out, then the feeder is idle.
                out_free = (self.out_beats == 0) | self.out_take
                with m.If(o_count == 0):
                    m.d.sync += self.idle.eq(1)
                    m.next = "IDLE"
                with m.Elif(out_free):
                    m.d.sync += [self.out_data.eq(obuf), self.out_beats.eq(o_count), o_count.eq(0)]
        return m
