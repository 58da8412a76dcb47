"""The control hub: CSRs, command queue, sequencer, scratch memory and the bus windows onto the bank array.

The host fills the command queue (CMDQ window) with commands in the contract's encoding: four header words
(contract.Command.header_words) followed by payload_words(op) words. The sequencer pops and executes them
with no host action in between; commands that answer (RD_SBK, RD_GB, RD_MAC, MACs with Flag.READ) land in
the scratch memory at word address `imm`. A refused command latches its error code (STATUS.error,
ERROR_CODE, ERROR_OP), has no side effect, and the queue is drained until the host clears the error.

The bank and GB windows turn 32-bit bus accesses into burst commands: a burst is written when all of its
words have been written (in any order), and reads fetch a whole burst into a one-burst read cache.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from pimhil.contract import (ARRAY_OPS, DeviceParams, ErrorCode, Flag, HubError, HubOp, Op,
                             payload_words)

from .bank_array import BankArray, cmd_layout
from .bus import BusSignature
from .fp32 import fp32_add, fp32_mul
from .hub_csr import UART_COUNTER_PORTS, HubCSR
from .hub_responses import ResponseKind, ResponseRouter
from .hub_windows import HubWindows
from .softmax_datapath import SoftmaxDatapath

__all__ = ["ControlHub"]


def _in_set(value, ops):
    return Cat(*(value == int(o) for o in sorted(ops))).any()


class ControlHub(wiring.Component):
    """Ports: `bus` (slave), `uart_baud_div` (the BAUD_DIV register, reset value `uart_default_div`),
    the UART link's counters (inputs shown in the CSR window), `irq_error` (error latched), `busy` (what
    PERF_BUSY counts: the sequencer or the array at work)."""

    def __init__(self, *, params, uart_default_div=None):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        self.csr = HubCSR(params=params, uart_default_div=uart_default_div)
        self.uart_default_div = self.csr.uart_default_div
        self.array = BankArray(params=params)
        super().__init__({
            "bus": In(BusSignature()),
            "uart_baud_div": Out(16, init=self.uart_default_div),
            **{port: In(32) for port in UART_COUNTER_PORTS.values()},
            "irq_error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        B, L = p.banks, p.lanes
        m.submodules.array = array = self.array
        m.submodules.csr = csr = self.csr
        m.submodules.windows = win = HubWindows(params=p)
        m.submodules.responses = router = ResponseRouter(params=p)
        m.submodules.softmax = softmax = SoftmaxDatapath(params=p)
        sm = softmax.ctl
        # CONTROL.abort empties the queue in one cycle (words the sequencer has not taken are dropped).
        abort = csr.abort
        m.submodules.cmdq = cmdq = ResetInserter(abort)(fifo.SyncFIFOBuffered(width=32, depth=p.cmdq_words))
        m.submodules.scratch = scratch = memory.Memory(shape=32, depth=p.scratch_words, init=[])
        connect(m, win.scratch_rd, scratch.read_port())
        connect(m, win.scratch_wr, scratch.write_port())
        sc_a = scratch.read_port()          # EW operand a
        sc_b = scratch.read_port()          # EW operand b
        sc_wr = scratch.write_port()        # responses and EW results
        words_per_burst = L // 2

        # ---- CSR file: state it shows, events it counts ----------------------------------------------------
        err_latched = csr.error_latched
        seq_busy = Signal()
        cmd_done = Signal()
        # A command whose words the host has not all pushed yet waits for the host, not the device.
        seq_wait = Signal()
        m.d.comb += [
            csr.seq_busy.eq(seq_busy), csr.seq_wait.eq(seq_wait), csr.array_busy.eq(array.busy),
            csr.queue_level.eq(cmdq.r_level), csr.queue_nonempty.eq(cmdq.r_rdy),
            csr.array_mac.eq(array.mac_active), csr.array_stall.eq(array.stall), csr.cmd_done.eq(cmd_done),
            self.uart_baud_div.eq(csr.uart_baud_div), self.irq_error.eq(csr.error_latched),
            self.busy.eq(csr.working),
        ]
        m.d.comb += [getattr(csr, port).eq(getattr(self, port)) for port in UART_COUNTER_PORTS.values()]

        # ---- array command port: shared by the sequencer and the bus windows ---------------------------
        seq_cmd_valid = Signal()
        seq_cmd = Signal(cmd_layout(p))
        win_owns = win.owns                 # the windows hold the array (only while the sequencer is idle)
        with m.If(win_owns):
            m.d.comb += [array.cmd.valid.eq(win.array.valid), win.array.ready.eq(array.cmd.ready)]
            m.d.comb += [array.cmd.payload[f].eq(win.array.payload[f]) for f in win.array.payload.shape().members]
        with m.Else():
            m.d.comb += [array.cmd.valid.eq(seq_cmd_valid), array.cmd.payload.eq(seq_cmd)]
        cmd_fire = array.cmd.valid & array.cmd.ready

        # ---- response routing: descriptors in command order -------------------------------------------
        seq_push = Signal()
        rq_push_kind, rq_push_dest, rq_push_beats = Signal(ResponseKind), Signal(16), Signal(16)
        with m.If(win_owns):
            m.d.comb += [router.expect.valid.eq(win.read_issued), win.read_room.eq(router.expect.ready),
                         router.expect.payload.kind.eq(ResponseKind.WINDOW_CACHE), router.expect.payload.beats.eq(1)]
        with m.Else():
            m.d.comb += [router.expect.valid.eq(seq_push), router.expect.payload.kind.eq(rq_push_kind),
                         router.expect.payload.dest.eq(rq_push_dest), router.expect.payload.beats.eq(rq_push_beats)]
        rq_w_rdy = router.expect.ready
        connect(m, array.resp, router.resp)
        connect(m, router.cache, win.cache)
        connect(m, router.scores, softmax.scores)
        m.d.comb += [sc_wr.en.eq(router.scratch_wr.en), sc_wr.addr.eq(router.scratch_wr.addr),
                     sc_wr.data.eq(router.scratch_wr.data)]
        resp_idle = router.idle
        # Attention scores: one row of B FP32 scores per MAC_ABK answer.
        m.submodules.scores = scores = memory.Memory(shape=B * 32, depth=p.score_words // B, init=[])
        connect(m, softmax.score_wr, scores.write_port())
        connect(m, softmax.score_rd, scores.read_port())
        connect(m, softmax.e_wr, scores.write_port())

        # ---- sequencer ----------------------------------------------------------------------------------
        hdr = Array(Signal(32, name=f"hdr{i}") for i in range(4))
        payload = Array(Signal(32, name=f"pl{i}") for i in range(max(words_per_burst, 2)))
        n_words = Signal(range(max(words_per_burst, 2) + 5))
        h_op, h_flags, h_bank, h_acc = hdr[0][:8], hdr[0][8:16], hdr[0][16:24], hdr[0][24:32]
        h_row, h_col, h_count, h_gb, h_imm = hdr[1][:16], hdr[1][16:32], hdr[2][:16], hdr[2][16:32], hdr[3]
        n_payload = Signal(range(max(words_per_burst, 2) + 1))
        with m.Switch(h_op):
            for op in (Op.WR_SBK, Op.WR_ABK, Op.WR_GB, Op.WR_AFLUT):
                with m.Case(int(op)):
                    m.d.comb += n_payload.eq(payload_words(op, p))
        m.d.comb += [
            seq_cmd.op.eq(h_op), seq_cmd.flags.eq(h_flags), seq_cmd.bank.eq(h_bank), seq_cmd.acc.eq(h_acc),
            seq_cmd.row.eq(h_row), seq_cmd.col.eq(h_col), seq_cmd.count.eq(h_count), seq_cmd.gb.eq(h_gb),
            seq_cmd.imm.eq(h_imm), seq_cmd.data.eq(Cat(*payload)[:p.burst_bits]),
        ]
        responding = (_in_set(h_op, (Op.RD_SBK, Op.RD_GB, Op.RD_MAC))
                      | (_in_set(h_op, (Op.MAC_ABK, Op.MAC_SBK)) & h_flags[Flag.READ.bit_length() - 1]))
        resp_words = Signal(32)
        with m.If(_in_set(h_op, (Op.RD_SBK, Op.RD_GB))):
            m.d.comb += resp_words.eq(h_count * words_per_burst)
        with m.Else():
            m.d.comb += resp_words.eq(B)
        scratch_ok_resp = h_imm + resp_words <= p.scratch_words
        ew_ok = ((h_row + h_count <= p.scratch_words) & (h_col + h_count <= p.scratch_words)
                 & (h_gb + h_count <= p.scratch_words))

        ew_i = Signal(16)          # element being read
        ew_v = Signal()            # a read issued last cycle, its result is written this cycle
        ew_dst = Signal(16)
        ew_mul = Signal()
        sum_ = fp32_add(m, sc_a.data, sc_b.data, name="ew_add")
        prod = fp32_mul(m, sc_a.data, sc_b.data, name="ew_mul")
        m.d.comb += [sc_a.en.eq(1), sc_b.en.eq(1), sc_a.addr.eq(h_row + ew_i), sc_b.addr.eq(h_col + ew_i)]

        # GEMV tile: x chunk c lives in bank `bank`, row gb+c; weights of row group g, chunk c in every bank's
        # row `row + g*chunks + c`; groups run in passes of `accs`, each pass walking all chunks.
        C = p.bursts_per_row
        t_groups, t_chunks = h_col, h_count
        t_pass = Signal(16)        # first group of this pass
        t_c = Signal(16)           # chunk
        t_g = Signal(16)           # group (absolute)
        t_copy = Signal()          # next command is the chunk's COPY_BKGB
        t_last = Signal()          # every command of the tile has been issued
        pass_end = Signal(17)
        m.d.comb += pass_end.eq(Mux(t_pass + p.accs < t_groups, t_pass + p.accs, t_groups))
        tile_bad = ((t_groups == 0) | (t_chunks == 0) | (h_row + t_groups * t_chunks > p.rows)
                    | (h_bank >= B) | (h_gb + t_chunks > p.rows))
        tile_flags_bad = (h_flags & ~int(Flag.BF16)) != 0
        tile_scratch_bad = h_imm + t_groups * B > p.scratch_words
        assert p.row_words <= p.gb_words, "a GEMV chunk is one bank row and must fit the GB"

        # Attention tile (one head). Key j: bank j % B, slot q = j // B at row `row + q // kpr`, column
        # (q % kpr) * dl with kpr = C / dl keys per row; V-transpose dim i: bank i % B, row
        # `col + (i // B) * nch + chunk`. Chunks of ch = min(T, row_words) probabilities go through the GB.
        T, dl = h_count, h_acc
        log2 = {1 << i: i for i in range(17)}
        dl_log = Signal(5)
        with m.Switch(dl):
            for v, lg in log2.items():
                if v <= C:
                    with m.Case(v):
                        m.d.comb += dl_log.eq(lg)
        c_log = (C - 1).bit_length()
        rw_log = (p.row_words - 1).bit_length()
        l_log = (L - 1).bit_length()
        b_log = (B - 1).bit_length()
        dl_ok = Cat(*(dl == v for v in log2 if v <= min(C, p.gb_bursts))).any()
        d_words = Signal(16)
        m.d.comb += d_words.eq(dl << l_log)
        groups_v = Signal(16)                                   # d / B output groups
        m.d.comb += groups_v.eq(d_words >> b_log)
        big_t = T > p.row_words
        ch = Signal(17)
        nch = Signal(17)
        m.d.comb += [ch.eq(Mux(big_t, p.row_words, T)), nch.eq(Mux(big_t, T >> rw_log, 1))]
        key_rows = Signal(32)
        m.d.comb += key_rows.eq((((T >> b_log) << dl_log) + C - 1) >> c_log)
        attn_bad = ((T < B) | ((T & (B - 1)) != 0) | (T > p.score_words)
                    | (big_t & ((T & (p.row_words - 1)) != 0)) | ~dl_ok | ((d_words & (B - 1)) != 0)
                    | (groups_v > p.accs) | (h_row + key_rows > p.rows) | (h_col + groups_v * nch > p.rows))
        attn_scratch_bad = h_gb + d_words > p.scratch_words
        a_q = Signal(16)             # score MAC / row index
        a_v = Signal()               # exp pass: a row read last cycle is being processed
        a_c = Signal(17)             # chunk
        a_k = Signal(16)             # burst within the chunk
        a_g = Signal(16)             # V output group
        elem = Signal(32)
        m.d.comb += [elem.eq((a_c * ch) + (a_k << l_log)), sm.scale.eq(h_imm)]

        def refuse(code):
            """Statements that refuse the current command with `code` (first error latches)."""
            return [csr.error.valid.eq(1), csr.error.code.eq(code), csr.error.op.eq(h_op)]

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.sync += n_words.eq(0)
                with m.If(err_latched):
                    m.d.comb += cmdq.r_en.eq(1)       # drain what was queued behind the refused command
                with m.Elif(cmdq.r_rdy & ~win_owns):
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += seq_busy.eq(1)
                with m.If(abort):
                    m.next = "IDLE"                   # the partial command is dropped with the queue
                with m.Elif(n_words < 4):
                    m.d.comb += seq_wait.eq(~cmdq.r_rdy)
                    with m.If(cmdq.r_rdy):
                        m.d.comb += cmdq.r_en.eq(1)
                        m.d.sync += [hdr[n_words[:2]].eq(cmdq.r_data), n_words.eq(n_words + 1)]
                with m.Elif(n_words < 4 + n_payload):
                    m.d.comb += seq_wait.eq(~cmdq.r_rdy)
                    with m.If(cmdq.r_rdy):
                        m.d.comb += cmdq.r_en.eq(1)
                        m.d.sync += [payload[n_words - 4].eq(cmdq.r_data), n_words.eq(n_words + 1)]
                with m.Elif(~win_owns):
                    # A window access taken while this command was incomplete finishes first.
                    m.next = "EXEC"
            with m.State("EXEC"):
                m.d.comb += seq_busy.eq(1)
                with m.If(_in_set(h_op, ARRAY_OPS - {Op.SYNC})):
                    with m.If(responding & ~scratch_ok_resp):
                        m.d.comb += refuse(HubError.BAD_SCRATCH)
                        m.next = "IDLE"
                    with m.Elif(rq_w_rdy):
                        m.d.comb += seq_cmd_valid.eq(1)
                        with m.If(cmd_fire):
                            with m.If(array.cmd_err != 0):
                                m.d.comb += refuse(array.cmd_err)
                                m.next = "IDLE"
                            with m.Else():
                                with m.If(responding):
                                    m.d.comb += [
                                        seq_push.eq(1), rq_push_dest.eq(h_imm),
                                        rq_push_kind.eq(Mux(_in_set(h_op, (Op.RD_SBK, Op.RD_GB)),
                                                            ResponseKind.SCRATCH_BURSTS, ResponseKind.SCRATCH_BANKS)),
                                        rq_push_beats.eq(Mux(_in_set(h_op, (Op.RD_SBK, Op.RD_GB)), h_count, 1)),
                                    ]
                                m.d.comb += cmd_done.eq(1)
                                m.next = "IDLE"
                with m.Elif(h_op == HubOp.GEMV_TILE):
                    with m.If(tile_flags_bad):
                        m.d.comb += refuse(ErrorCode.BAD_FLAGS)
                        m.next = "IDLE"
                    with m.Elif(tile_bad):
                        m.d.comb += refuse(HubError.BAD_TILE)
                        m.next = "IDLE"
                    with m.Elif(tile_scratch_bad):
                        m.d.comb += refuse(HubError.BAD_SCRATCH)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [t_pass.eq(0), t_c.eq(0), t_g.eq(0), t_copy.eq(1), t_last.eq(0)]
                        m.next = "GEMV"
                with m.Elif(h_op == HubOp.ATTN_TILE):
                    with m.If(h_flags != 0):
                        m.d.comb += refuse(ErrorCode.BAD_FLAGS)
                        m.next = "IDLE"
                    with m.Elif(attn_bad):
                        m.d.comb += refuse(HubError.BAD_TILE)
                        m.next = "IDLE"
                    with m.Elif(attn_scratch_bad):
                        m.d.comb += refuse(HubError.BAD_SCRATCH)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += sm.clear_max.eq(1)
                        m.d.sync += a_q.eq(0)
                        m.next = "ATTN_S"
                with m.Elif((h_op == Op.SYNC) | (h_op == Op.EOC)):
                    with m.If(~array.busy & resp_idle):
                        m.d.comb += cmd_done.eq(1)
                        m.next = "IDLE"
                with m.Elif((h_op == Op.EWMUL) | (h_op == Op.EWADD)):
                    with m.If(array.busy | ~resp_idle):
                        pass                              # earlier read-outs may still be landing in scratch
                    with m.Elif(~ew_ok):
                        m.d.comb += refuse(HubError.BAD_SCRATCH)
                        m.next = "IDLE"
                    with m.Elif(h_flags != 0):
                        m.d.comb += refuse(ErrorCode.BAD_FLAGS)
                        m.next = "IDLE"
                    with m.Elif(h_count == 0):
                        m.d.comb += refuse(ErrorCode.BAD_COUNT)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [ew_i.eq(0), ew_v.eq(0), ew_dst.eq(h_gb), ew_mul.eq(h_op == Op.EWMUL)]
                        m.next = "EW"
                with m.Else():
                    m.d.comb += refuse(ErrorCode.BAD_OPCODE)
                    m.next = "IDLE"
            with m.State("GEMV"):
                m.d.comb += seq_busy.eq(1)
                read = t_c + 1 == t_chunks
                with m.If(t_last):
                    with m.If(~array.busy & resp_idle):
                        m.d.comb += cmd_done.eq(1)
                        m.next = "IDLE"
                with m.Elif(t_copy):
                    m.d.comb += [seq_cmd.op.eq(Op.COPY_BKGB), seq_cmd.flags.eq(0), seq_cmd.bank.eq(h_bank),
                                 seq_cmd.row.eq(h_gb + t_c), seq_cmd.col.eq(0), seq_cmd.count.eq(C),
                                 seq_cmd.gb.eq(0), seq_cmd.acc.eq(0), seq_cmd_valid.eq(1)]
                    with m.If(cmd_fire):
                        m.d.sync += [t_copy.eq(0), t_g.eq(t_pass)]
                with m.Else():
                    flags = (Mux(t_c == 0, int(Flag.ZERO), 0) | Mux(read, int(Flag.READ), 0)
                             | (h_flags & int(Flag.BF16)))
                    m.d.comb += [seq_cmd.op.eq(Op.MAC_ABK), seq_cmd.flags.eq(flags), seq_cmd.bank.eq(0),
                                 seq_cmd.row.eq(h_row + t_g * t_chunks + t_c), seq_cmd.col.eq(0),
                                 seq_cmd.count.eq(C), seq_cmd.gb.eq(0), seq_cmd.acc.eq(t_g - t_pass)]
                    m.d.comb += seq_cmd_valid.eq(~read | rq_w_rdy)
                    with m.If(cmd_fire):
                        with m.If(read):
                            m.d.comb += [seq_push.eq(1), rq_push_kind.eq(ResponseKind.SCRATCH_BANKS),
                                         rq_push_beats.eq(1), rq_push_dest.eq(h_imm + t_g * B)]
                        with m.If(t_g + 1 < pass_end):
                            m.d.sync += t_g.eq(t_g + 1)
                        with m.Elif(~read):
                            m.d.sync += [t_c.eq(t_c + 1), t_copy.eq(1)]
                        with m.Elif(pass_end < t_groups):
                            m.d.sync += [t_pass.eq(pass_end), t_c.eq(0), t_copy.eq(1)]
                        with m.Else():
                            m.d.sync += t_last.eq(1)
            with m.State("ATTN_S"):
                m.d.comb += seq_busy.eq(1)
                kpr_log = Signal(5)
                m.d.comb += kpr_log.eq(c_log - dl_log)
                m.d.comb += [seq_cmd.op.eq(Op.MAC_ABK), seq_cmd.flags.eq(int(Flag.ZERO | Flag.READ)),
                             seq_cmd.bank.eq(0), seq_cmd.row.eq(h_row + (a_q >> kpr_log)),
                             seq_cmd.col.eq((a_q & ((Const(1, 17) << kpr_log) - 1)) << dl_log),
                             seq_cmd.count.eq(dl),
                             seq_cmd.gb.eq(0), seq_cmd.acc.eq(a_q & (p.accs - 1)), seq_cmd_valid.eq(rq_w_rdy)]
                with m.If(cmd_fire):
                    m.d.comb += [seq_push.eq(1), rq_push_kind.eq(ResponseKind.SCORES), rq_push_beats.eq(1),
                                 rq_push_dest.eq(a_q)]
                    m.d.sync += a_q.eq(a_q + 1)
                    with m.If(a_q + 1 == (T >> b_log)):
                        m.next = "ATTN_MAX"
            with m.State("ATTN_MAX"):
                m.d.comb += seq_busy.eq(1)
                with m.If(~array.busy & resp_idle):
                    m.d.comb += sm.load_max.eq(1)
                    m.d.sync += [a_q.eq(0), a_v.eq(0)]
                    m.next = "ATTN_EXP"
            with m.State("ATTN_EXP"):
                # Row a_q is read this cycle; the row read last cycle is exponentiated, summed and written back.
                m.d.comb += seq_busy.eq(1)
                m.d.comb += [sm.row.eq(a_q), sm.exp.eq(a_v)]
                with m.If(a_q < (T >> b_log)):
                    m.d.sync += [a_q.eq(a_q + 1), a_v.eq(1)]
                with m.Else():
                    m.d.sync += a_v.eq(0)
                    with m.If(~a_v):
                        m.next = "ATTN_RECIP"
            with m.State("ATTN_RECIP"):
                m.d.comb += seq_busy.eq(1)
                m.d.comb += sm.load_recip.eq(1)
                m.d.sync += [a_c.eq(0), a_k.eq(0)]
                m.next = "ATTN_PREAD"
            with m.State("ATTN_PREAD"):
                m.d.comb += seq_busy.eq(1)
                m.d.comb += sm.row.eq(elem >> b_log)
                m.next = "ATTN_PWRITE"
            with m.State("ATTN_PWRITE"):
                m.d.comb += seq_busy.eq(1)
                m.d.comb += [sm.row.eq(elem >> b_log), sm.burst.eq(elem[l_log:b_log] if b_log > l_log else 0)]
                m.d.comb += [seq_cmd.op.eq(Op.WR_GB), seq_cmd.flags.eq(0), seq_cmd.gb.eq(a_k), seq_cmd.count.eq(1),
                             seq_cmd.row.eq(0), seq_cmd.col.eq(0), seq_cmd.bank.eq(0), seq_cmd.acc.eq(0),
                             seq_cmd.data.eq(sm.p_burst), seq_cmd_valid.eq(1)]
                with m.If(cmd_fire):
                    with m.If(a_k + 1 == (ch >> l_log)):
                        m.d.sync += [a_k.eq(0), a_g.eq(0)]
                        m.next = "ATTN_V"
                    with m.Else():
                        m.d.sync += a_k.eq(a_k + 1)
                        m.next = "ATTN_PREAD"
            with m.State("ATTN_V"):
                m.d.comb += seq_busy.eq(1)
                last_chunk = a_c + 1 == nch
                flags = Mux(a_c == 0, int(Flag.ZERO), 0) | Mux(last_chunk, int(Flag.READ), 0)
                m.d.comb += [seq_cmd.op.eq(Op.MAC_ABK), seq_cmd.flags.eq(flags), seq_cmd.bank.eq(0),
                             seq_cmd.row.eq(h_col + a_g * nch + a_c), seq_cmd.col.eq(0),
                             seq_cmd.count.eq(ch >> l_log), seq_cmd.gb.eq(0), seq_cmd.acc.eq(a_g),
                             seq_cmd_valid.eq(~last_chunk | rq_w_rdy)]
                with m.If(cmd_fire):
                    with m.If(last_chunk):
                        m.d.comb += [seq_push.eq(1), rq_push_kind.eq(ResponseKind.SCRATCH_BANKS), rq_push_beats.eq(1),
                                     rq_push_dest.eq(h_gb + (a_g << b_log))]
                    with m.If(a_g + 1 < groups_v):
                        m.d.sync += a_g.eq(a_g + 1)
                    with m.Elif(~last_chunk):
                        m.d.sync += [a_c.eq(a_c + 1), a_k.eq(0)]
                        m.next = "ATTN_PREAD"
                    with m.Else():
                        m.next = "ATTN_DONE"
            with m.State("ATTN_DONE"):
                m.d.comb += seq_busy.eq(1)
                with m.If(~array.busy & resp_idle):
                    m.d.comb += cmd_done.eq(1)
                    m.next = "IDLE"
            with m.State("EW"):
                # One element per cycle: operands read in cycle i arrive in cycle i+1 and are written then.
                m.d.comb += seq_busy.eq(1)
                with m.If(ew_v):
                    m.d.comb += [sc_wr.en.eq(1), sc_wr.addr.eq(ew_dst), sc_wr.data.eq(Mux(ew_mul, prod, sum_))]
                    m.d.sync += ew_dst.eq(ew_dst + 1)
                with m.If(ew_i < h_count):
                    m.d.sync += [ew_i.eq(ew_i + 1), ew_v.eq(1)]
                with m.Else():
                    m.d.sync += ew_v.eq(0)
                    with m.If(~ew_v):
                        m.d.comb += cmd_done.eq(1)
                        m.next = "IDLE"

        # ---- bus windows ---------------------------------------------------------------------------------
        connect(m, flipped(self.bus), win.bus)
        connect(m, win.csr, csr.access)
        m.d.comb += [
            cmdq.w_en.eq(win.cmdq.valid), cmdq.w_data.eq(win.cmdq.payload), win.cmdq.ready.eq(cmdq.w_rdy),
            # Served while the sequencer is idle or waits for the rest of a command (which only this bus can
            # push: waiting for it here would wedge the bus for good).
            win.may_take.eq((~seq_busy | seq_wait) & ~cmdq.r_rdy & resp_idle),
            # Any command may change memory; waiting for words does not.
            win.invalidate.eq(cmd_done | (seq_busy & ~seq_wait)),
            csr.queue_overflow.eq(win.queue_overflow), csr.bus_error.eq(win.bus_error),
            csr.bus_error_addr.eq(win.bus_error_addr),
        ]
        return m
