"""The control hub's bus slave: the windows of contract.windows behind one 32-bit bus port, and the bank and GB
windows again behind a burst-wide port for the AXI4 (DMA) slave.

CSR, CMDQ and scratch accesses are answered in the cycle after the request appears, its address decoded into
registers first (a CSR access or a scratch read one cycle later still). The bank and GB windows take the
array: writes are staged per burst and committed as WR_SBK / WR_GB when every word of the burst has been
written, in any order (starting another burst drops a partial one and counts a bus error); reads fetch a whole
burst into a one-burst read cache, invalidated by any window write and by `invalidate`.

The burst port (`wide`, hw/bus.py BurstBusSignature) moves a whole burst per access under the same rules: a
burst with every word written goes to the array in the access's cycle, fewer words merge into the same staged
burst. It keeps the array while the transfer says more accesses follow (`ahead`), and reads up to
READ_AHEAD bursts ahead of a transfer of consecutive bursts, so that one burst per cycle moves each way. The
two ports take the array in turn; while the burst port holds it, CSR, CMDQ and scratch accesses on the 32-bit
port are still served.
"""

from amaranth.hdl import Array, Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import CSR_BYTES, DeviceParams, Op, bank_stride, cmd_fields, windows

from .bank_array import BankArray
from .bus import BurstBusSignature, BusSignature
from .fp32 import pipeline_stage
from .hub_csr import CSRAccessSignature

__all__ = ["HubWindows", "burst_access_layout", "READ_AHEAD"]

# Bursts in flight or waiting on the burst port: at least the round trip from the hub's command slice through
# the array's input register and pipeline to its answer register and buffer, the router and the burst port
# (4 cycles beyond IN_STAGE + RESP_STAGE + BUFFER_LATENCY), so reads stream.
READ_AHEAD = BankArray.IN_STAGE + BankArray.RESP_STAGE + BankArray.BUFFER_LATENCY + 5


def burst_access_layout(params):
    """The array command fields a one-burst window access sets; flags, acc and imm stay 0."""
    return data.StructLayout({name: width for name, width in cmd_fields(params)
                              if name in ("op", "count", "bank", "row", "col", "gb", "data")})


class HubWindows(wiring.Component):
    """Ports:

    - `bus` (In BusSignature): the hub's bus.
    - `wide` (In BurstBusSignature(burst_bits)): whole bursts of the bank and GB windows (the AXI4 slave).
    - `csr` (Out CSRAccessSignature): register accesses, to the CSR file.
    - `cmdq` (out stream of 32-bit words): pushes onto the command queue; a push the queue does not take
      (`ready` low) is dropped and raises `queue_overflow` (the bus access ends with an error).
    - `scratch_rd`, `scratch_wr`: the scratch memory ports of the scratch window; `scratch_busy` (in): the
      hub's own scratch write has the write port this cycle, so a bus write to scratch waits.
    - `array` (out stream of `burst_access_layout`): burst commands to the array. A read command is offered
      only while `read_room` is high (room for what the response router must expect), and in the cycle it is
      accepted `read_issued` is high; its burst comes back on `cache` (in stream, always ready).
    - `may_take` (in): the array may be taken for a bank/GB access now; `owns` (out): the windows hold the
      array, from the cycle after they took it until the access is done.
    - `invalidate` (in): drop the cached burst (a command may have changed memory).
    - `bus_error`, `bus_error_addr` (out): an access refused this cycle, and its address.
    """

    def __init__(self, *, params):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        self.windows = {w.name: w for w in windows(params)}
        super().__init__({
            "bus": In(BusSignature()),
            "wide": In(BurstBusSignature(params.burst_bits)),
            "csr": Out(CSRAccessSignature((CSR_BYTES - 1).bit_length())),
            "cmdq": Out(stream.Signature(32)),
            "queue_overflow": Out(1),
            "scratch_rd": In(memory.ReadPort.Signature(addr_width=(params.scratch_words - 1).bit_length(), shape=32)),
            "scratch_wr": In(memory.WritePort.Signature(addr_width=(params.scratch_words - 1).bit_length(), shape=32)),
            "scratch_busy": In(1),
            "array": Out(stream.Signature(burst_access_layout(params))),
            "read_room": In(1),
            "read_issued": Out(1),
            "cache": In(stream.Signature(params.burst_bits, always_ready=True)),
            "may_take": In(1),
            "owns": Out(1),
            "invalidate": In(1),
            "bus_error": Out(1),
            "bus_error_addr": Out(32),
        })

    def _decode(self, m, addr, name):
        """Where a bank/GB window address points: (in_gb, window access possible, bank, burst)."""
        p = self.params
        gb, bank = self.windows["gb"], self.windows["bank"]
        stride, burst_bytes = bank_stride(p), p.burst_bits // 8
        in_gb = (addr >= gb.base) & (addr < gb.base + gb.size)
        in_bank = (addr >= bank.base) & (addr < bank.base + bank.size)
        boff = addr - bank.base
        w_bank, w_burst = Signal(8, name=f"{name}_bank"), Signal(32, name=f"{name}_burst")
        m.d.comb += [w_bank.eq(boff // stride),
                     w_burst.eq(Mux(in_gb, (addr - gb.base) // burst_bytes, (boff % stride) // burst_bytes))]
        usable = in_gb | (in_bank & ((boff % stride) < p.bank_bursts * burst_bytes))
        return in_gb, usable, w_bank, w_burst

    def elaborate(self, platform):
        m = Module()
        p = self.params
        bus, a, cmd = self.bus, self.bus.addr, self.array.payload
        words_per_burst = p.lanes // 2
        full_mask = (1 << words_per_burst) - 1

        def inside(name):
            w = self.windows[name]
            return (a < w.base + w.size) if w.base == 0 else ((a >= w.base) & (a < w.base + w.size))

        # The address is decoded into registers, and a request is served from the cycle after it appeared
        # (`decoded`): the decoding (32-bit compares and subtractions) and what the request does (the CSR read
        # multiplexer, the queue push, the array hand-over) are then in different cycles. On the ULX3S build they
        # were one path of ~25 ns from the bus slice's address into the command queue and the fetch. The master
        # holds its request until `ready`, so the registers hold this request's decoding while it is served.
        dec = pipeline_stage(m, name="bus_dec")
        # What the request does is resolved before the register too (one flag each, at most one set; `we` is
        # held with the request): the window priority after the register, then the queue's `ready` into the
        # bus slice's answer registers, made ~17.5 ns (estimated) on the ULX3S build.
        csr_, cmdq_, sc_ = (inside(n) for n in ("csr", "cmdq", "scratch"))
        mis_ = a[:2] != 0
        gb_, win_, w_bank, w_burst = self._decode(m, a, "bus")
        in_gb, w_bank, w_burst = dec(gb_), dec(w_bank), dec(w_burst)
        to_csr = dec(~mis_ & csr_)
        to_push = dec(~mis_ & ~csr_ & cmdq_ & bus.we)
        to_sc = dec(~mis_ & ~csr_ & ~cmdq_ & sc_)
        to_win = dec(~mis_ & ~csr_ & ~cmdq_ & ~sc_ & win_)
        w_word = dec((a // 4) % words_per_burst)
        sc_addr = dec(((a - self.windows["scratch"].base) // 4)[:len(self.scratch_rd.addr)])
        decoded = Signal()
        m.d.sync += decoded.eq(bus.valid & ~bus.ready)
        m.d.comb += [self.csr.addr.eq(dec((a - self.windows["csr"].base)[:len(self.csr.addr)])),
                     self.csr.wdata.eq(bus.wdata), self.cmdq.payload.eq(bus.wdata)]

        # One staged burst for writes (either port), one cached burst for 32-bit reads.
        stg_valid, stg_gb, stg_bank, stg_burst = Signal(), Signal(), Signal(8), Signal(32)
        stg_mask = Signal(words_per_burst)
        stg_data = Array(Signal(32, name=f"stg{i}") for i in range(words_per_burst))
        cache_valid, cache_gb, cache_bank, cache_burst = Signal(), Signal(), Signal(8), Signal(32)
        cache_data = Signal(p.burst_bits)
        # Whether the request's burst is the staged or the cached one: the keys' compares are registered, free-running
        # (the compares, the answer and the bus slice's registers made the ULX3S build's critical path, 17.88 ns).
        # That holds in WIN: the request's decoding was registered a cycle before IDLE takes it, nothing changes the
        # keys while this port owns the array but its own WIN (which leaves WIN as it does) and the reads' fire (a
        # WIN_READ of several cycles follows), and the burst port changes them only while it owns the array, which
        # it gives up a cycle before this port can take it. `valid` comes in live (`invalidate`, the burst port).
        stage_key, cache_key = Signal(name="stage_key_q"), Signal(name="cache_key_q")
        m.d.sync += [stage_key.eq((stg_gb == in_gb) & (in_gb | (stg_bank == w_bank)) & (stg_burst == w_burst)),
                     cache_key.eq((cache_gb == in_gb) & (in_gb | (cache_bank == w_bank)) & (cache_burst == w_burst))]
        same_stage = stg_valid & stage_key
        cache_hit = cache_valid & cache_key

        def burst_command(op, bank, burst, is_gb):
            return [cmd.op.eq(op), cmd.count.eq(1), cmd.bank.eq(Mux(is_gb, 0, bank)),
                    cmd.row.eq(burst // p.bursts_per_row), cmd.col.eq(burst % p.bursts_per_row), cmd.gb.eq(burst)]

        # Who holds the array: the 32-bit port's FSM (b_owns) or the burst port (e_owns), in turn when both
        # want it (turn: the burst port goes first).
        b_owns, e_owns, turn = Signal(), Signal(), Signal()
        b_wants, e_wants = Signal(), Signal()
        m.d.comb += self.owns.eq(b_owns | e_owns)
        b_err, e_err = Signal(), Signal()
        m.d.comb += [self.bus_error.eq(b_err | e_err), self.bus_error_addr.eq(Mux(b_err, a, self.wide.addr))]

        fire = self.array.valid & self.array.ready
        csr_ok, csr_rdata = Signal(), Signal(32)
        with m.FSM(name="bus"):
            with m.State("IDLE"):
                with m.If(bus.valid & decoded):
                    with m.If(to_csr):
                        # Answered from registers in the next cycle: the CSR's address checks and read
                        # multiplexer then end there, not in the bus slice's answer registers through this
                        # port's answer (the ULX3S build's ~22 ns path).
                        m.d.sync += [csr_ok.eq(Mux(bus.we, self.csr.writable, self.csr.readable)),
                                     csr_rdata.eq(self.csr.rdata)]
                        m.next = "CSR"
                    with m.Elif(to_push):
                        m.d.comb += [self.cmdq.valid.eq(1), bus.ready.eq(1),
                                     self.queue_overflow.eq(~self.cmdq.ready), bus.err.eq(~self.cmdq.ready)]
                    with m.Elif(to_sc):
                        m.d.comb += [self.scratch_rd.addr.eq(sc_addr), self.scratch_rd.en.eq(1)]
                        with m.If(bus.we):
                            m.d.comb += [self.scratch_wr.en.eq(~self.scratch_busy), self.scratch_wr.addr.eq(sc_addr),
                                         self.scratch_wr.data.eq(bus.wdata), bus.ready.eq(~self.scratch_busy)]
                        with m.Else():
                            m.next = "SC_READ"
                    with m.Elif(to_win):
                        m.d.comb += b_wants.eq(1)
                        with m.If(self.may_take & ~e_owns & ~(e_wants & turn)):
                            m.d.sync += [b_owns.eq(1), turn.eq(1)]
                            m.next = "WIN"
                    with m.Else():
                        m.next = "ERR"
            with m.State("CSR"):
                with m.If(~csr_ok):
                    m.d.comb += [bus.ready.eq(1), bus.err.eq(1), b_err.eq(1)]
                with m.Elif(bus.we):
                    m.d.comb += [self.csr.write.eq(1), bus.ready.eq(1)]
                with m.Else():
                    m.d.comb += [bus.ready.eq(1), bus.rdata.eq(csr_rdata)]
                m.next = "IDLE"
            with m.State("SC_READ"):
                m.d.comb += [bus.ready.eq(1), bus.rdata.eq(self.scratch_rd.data)]
                m.next = "IDLE"
            with m.State("ERR"):
                m.d.comb += [bus.ready.eq(1), bus.err.eq(1), b_err.eq(1)]
                m.next = "IDLE"
            with m.State("WIN"):
                with m.If(bus.we):
                    m.d.comb += b_err.eq(stg_valid & ~same_stage)      # a partial burst is dropped
                    mask = Mux(same_stage, stg_mask, 0) | (1 << w_word)
                    m.d.sync += [stg_valid.eq(1), stg_gb.eq(in_gb), stg_bank.eq(w_bank), stg_burst.eq(w_burst),
                                 stg_mask.eq(mask), stg_data[w_word].eq(bus.wdata), cache_valid.eq(0)]
                    with m.If(mask == full_mask):
                        m.next = "WIN_WRITE"
                    with m.Else():
                        m.d.comb += bus.ready.eq(1)
                        m.d.sync += b_owns.eq(0)
                        m.next = "IDLE"
                with m.Elif(cache_hit):
                    m.d.comb += [bus.ready.eq(1), bus.rdata.eq(Array(cache_data[32 * i:32 * i + 32]
                                                                     for i in range(words_per_burst))[w_word])]
                    m.d.sync += b_owns.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += burst_command(Mux(in_gb, Op.RD_GB, Op.RD_SBK), w_bank, w_burst, in_gb)
                    m.d.comb += self.array.valid.eq(self.read_room)
                    with m.If(fire):
                        m.d.comb += self.read_issued.eq(1)
                        m.d.sync += [cache_gb.eq(in_gb), cache_bank.eq(w_bank), cache_burst.eq(w_burst)]
                        m.next = "WIN_READ"
            with m.State("WIN_WRITE"):
                m.d.comb += burst_command(Mux(stg_gb, Op.WR_GB, Op.WR_SBK), stg_bank, stg_burst, stg_gb)
                m.d.comb += [cmd.data.eq(Cat(*stg_data)), self.array.valid.eq(1)]
                with m.If(fire):
                    m.d.sync += [stg_valid.eq(0), stg_mask.eq(0), b_owns.eq(0)]
                    m.d.comb += bus.ready.eq(1)
                    m.next = "IDLE"
            with m.State("WIN_READ"):
                with m.If(self.cache.valid):
                    m.d.sync += [cache_data.eq(self.cache.payload), cache_valid.eq(1)]
                    m.next = "WIN"                   # now a cache hit
        with m.If(self.invalidate):
            m.d.sync += cache_valid.eq(0)

        # ---- the burst port ------------------------------------------------------------------------------
        wb = self.wide
        burst_bytes = p.burst_bits // 8
        e_gb, e_ok, e_bank, e_burst = self._decode(m, wb.addr, "wide")
        e_ok = e_ok & (wb.addr[:(burst_bytes - 1).bit_length()] == 0)
        # Reads ahead: bursts from pf_addr on (pf_left of them) are issued while there is room for their
        # answers in `ahead_q`; head_addr is the address of the burst at the head of the queue.
        flush = Signal()
        m.submodules.ahead_q = ahead_q = ResetInserter(flush)(fifo.SyncFIFOBuffered(width=p.burst_bits,
                                                                                     depth=READ_AHEAD))
        pf_addr, head_addr = Signal(32), Signal(32)
        pf_left = Signal(BurstBusSignature.AHEAD_BITS + 1)
        in_flight = Signal(range(READ_AHEAD + 1))
        pf_gb, pf_ok, pf_bank, pf_burst = self._decode(m, pf_addr, "ahead")
        issue = Signal()
        m.d.comb += [ahead_q.w_en.eq(e_owns & self.cache.valid), ahead_q.w_data.eq(self.cache.payload)]
        m.d.sync += in_flight.eq(in_flight + issue - (e_owns & self.cache.valid))

        e_same = stg_valid & (stg_gb == e_gb) & (e_gb | (stg_bank == e_bank)) & (stg_burst == e_burst)
        e_mask = Mux(e_same, stg_mask, 0) | wb.wmask
        e_data = Cat(*(Mux(wb.wmask[i], wb.wdata[32 * i:32 * i + 32], stg_data[i]) for i in range(words_per_burst)))
        e_drop = stg_valid & ~e_same & (wb.wmask != 0)       # a partial burst of the 32-bit port is dropped
        with m.FSM(name="wide"):
            with m.State("IDLE"):
                with m.If(wb.valid & ~e_ok):
                    m.d.comb += [wb.ready.eq(1), wb.err.eq(1), e_err.eq(1)]
                with m.Elif(wb.valid):
                    m.d.comb += e_wants.eq(1)
                    with m.If(self.may_take & ~b_owns & ~(b_wants & ~turn)):
                        m.d.sync += [e_owns.eq(1), turn.eq(0)]
                        m.next = "SERVE"
            with m.State("SERVE"):
                answered = Signal()
                with m.If(wb.valid & ~e_ok):
                    m.d.comb += [wb.ready.eq(1), wb.err.eq(1), e_err.eq(1), answered.eq(1)]
                with m.Elif(wb.valid & wb.we):
                    with m.If(wb.wmask == 0):
                        m.d.comb += [wb.ready.eq(1), answered.eq(1)]
                    with m.Elif(e_mask == full_mask):
                        m.d.comb += burst_command(Mux(e_gb, Op.WR_GB, Op.WR_SBK), e_bank, e_burst, e_gb)
                        m.d.comb += [cmd.data.eq(e_data), self.array.valid.eq(1)]
                        with m.If(fire):
                            m.d.comb += [wb.ready.eq(1), answered.eq(1), e_err.eq(e_drop)]
                            m.d.sync += [stg_valid.eq(0), stg_mask.eq(0), cache_valid.eq(0)]
                    with m.Else():
                        m.d.comb += [wb.ready.eq(1), answered.eq(1), e_err.eq(e_drop)]
                        m.d.sync += [stg_valid.eq(1), stg_gb.eq(e_gb), stg_bank.eq(e_bank), stg_burst.eq(e_burst),
                                     stg_mask.eq(e_mask), cache_valid.eq(0)]
                        m.d.sync += [stg_data[i].eq(e_data[32 * i:32 * i + 32]) for i in range(words_per_burst)]
                with m.Elif(wb.valid):
                    with m.If(ahead_q.r_rdy & (head_addr == wb.addr)):
                        m.d.comb += [wb.ready.eq(1), wb.rdata.eq(ahead_q.r_data), ahead_q.r_en.eq(1),
                                     answered.eq(1)]
                        m.d.sync += head_addr.eq(head_addr + burst_bytes)
                    with m.Elif(~ahead_q.r_rdy & (in_flight == 0) & (pf_left == 0)):
                        m.d.sync += [pf_addr.eq(wb.addr), head_addr.eq(wb.addr),
                                     pf_left.eq(1 + Mux(wb.incr, wb.ahead, 0))]
                    with m.Elif(head_addr != wb.addr):
                        # Not the burst read ahead (FIXED bursts repeat one address): drop what was read.
                        m.d.sync += pf_left.eq(0)
                        with m.If(in_flight == 0):
                            m.d.comb += flush.eq(1)
                # Read ahead while the answers have room; never past the end of a window.
                with m.If(~(wb.valid & wb.we) & (pf_left != 0)):
                    with m.If(~pf_ok):
                        m.d.sync += pf_left.eq(0)
                    with m.Elif(ahead_q.r_level + in_flight < READ_AHEAD):
                        m.d.comb += burst_command(Mux(pf_gb, Op.RD_GB, Op.RD_SBK), pf_bank, pf_burst, pf_gb)
                        m.d.comb += self.array.valid.eq(self.read_room)
                        with m.If(fire):
                            m.d.comb += [issue.eq(1), self.read_issued.eq(1)]
                            m.d.sync += [pf_addr.eq(pf_addr + burst_bytes), pf_left.eq(pf_left - 1)]
                with m.If(answered & (wb.ahead == 0)):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # The transfer is over: reads still in flight land, then everything read ahead is dropped.
                m.d.sync += pf_left.eq(0)
                with m.If(in_flight == 0):
                    m.d.comb += flush.eq(1)
                    m.d.sync += e_owns.eq(0)
                    m.next = "IDLE"
        return m
