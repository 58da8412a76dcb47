"""The control hub's sequencer: executes one fetched command at a time (docs/control_hub.md, "Commands").

Array commands go to the bank array (with a response descriptor when they answer); SYNC and EOC wait for the
array and the responses to settle; EWMUL/EWADD run element by element on scratch; GEMV_TILE and ATTN_TILE
walk their tiles, issuing array commands back to back (the attention tile drives the softmax datapath too).
A refused command raises its error and has no side effect.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import (ALLOWED_FLAGS, ARRAY_OPS, COUNTED_OPS, RESPONDING_OPS, DeviceParams, ErrorCode, Flag,
                             HubError, HubOp, Op)

from .bank_array import cmd_layout, command_checks, first_error
from .counted_index import counter_setter
from .fp32 import FP32_ADD_CUTS, FP32_MUL_CUTS, fp32_add, fp32_mul, pipeline_stage
from .hub_csr import ErrorEventSignature
from .hub_responses import ResponseKind, response_descriptor
from .narrow_compare import in_set, sum_exceeds
from .softmax_datapath import SoftmaxControlSignature, SoftmaxDatapath

__all__ = ["Sequencer", "EW_STEP"]

# Cycles per EWMUL/EWADD element: the operand read, the operands' register, the operator pipeline (the longer
# operator's cuts; the other's result is delayed to match), the cycle whose result is written.
EW_STEP = max(FP32_ADD_CUTS, FP32_MUL_CUTS) + 3

# Array ops the sequencer issues (SYNC is the sequencer's own wait); which of them answer, and which answer
# one burst per counted burst rather than one FP32 word per bank.
_ISSUED_OPS = ARRAY_OPS - {Op.SYNC}
_ANSWERING_OPS = RESPONDING_OPS - {Op.SYNC}
_READ_FLAG_OPS = frozenset(op for op, flags in ALLOWED_FLAGS.items() if flags & Flag.READ)
_BURST_ANSWER_OPS = _ANSWERING_OPS & COUNTED_OPS


class Sequencer(wiring.Component):
    """Ports:

    - `cmd` (in, the array's command layout): the fetched command, held from `start` until it ends.
    - `start` (in): `cmd` is complete, execute it (the sequencer is idle).
    - `done` (out): the command completes this cycle; `error` (Out ErrorEventSignature): it is refused this
      cycle. Either ends it; the next may start in the following cycle.
    - `idle` (out): no command runs (it is high again the cycle after `done` or `error`, and only then rises: a
      register's decode, for the control hub to see a command's end a cycle later without `done`'s logic).
    - `array` (out stream): commands to the bank array; `array_busy` (the array's `busy`); `expect` (out
      stream): the response descriptor of an answering command, in the cycle it is accepted; `resp_idle` (in):
      the response router has nothing in flight.
    - `ew_a`, `ew_b`, `ew_wr`: scratch ports for EWMUL/EWADD (operands a and b read, results written).
    - `softmax` (Out SoftmaxControlSignature): the attention tile's steps.
    """

    def __init__(self, *, params):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        port = {"addr_width": (params.scratch_words - 1).bit_length(), "shape": 32}
        super().__init__({
            "cmd": In(cmd_layout(params)),
            "start": In(1),
            "done": Out(1),
            "idle": Out(1),
            "error": Out(ErrorEventSignature()),
            "array": Out(stream.Signature(cmd_layout(params))),
            "array_busy": In(1),
            "expect": Out(stream.Signature(response_descriptor())),
            "resp_idle": In(1),
            "ew_a": In(memory.ReadPort.Signature(**port)),
            "ew_b": In(memory.ReadPort.Signature(**port)),
            "ew_wr": In(memory.WritePort.Signature(**port)),
            "softmax": Out(SoftmaxControlSignature(params)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.cmd
        m.d.comb += self.array.payload.eq(c)          # the walkers override the fields they set
        m.d.comb += self.softmax.scale.eq(c.imm)
        # The opcode of a refusal is the fetched command's, whichever check refused it: driven in every cycle
        # (`error.valid` says when it counts), so the hub's error register does not wait for the refusal's
        # conditions (seq_state into it made 16.7 ns, estimated, on the 60 MHz build).
        m.d.comb += self.error.op.eq(c.op)
        fire = self.array.valid & self.array.ready
        # What `fire` is inside each walker state, from that state's own `valid`: the walker registers' enables
        # then do not wait for `valid`'s selection over every state (the state decoding, that selection and the
        # enables of every walker register made ~18.4 ns, estimated, on the ULX3S build).
        fire_room = self.expect.ready & self.array.ready    # the MAC walkers' `valid` is the descriptors' room
        fire_now = self.array.ready                         # COPY_BKGB and WR_GB: `valid` is 1
        # Every earlier command has finished and its answers have landed. Registered (the array's busy is an OR
        # of every pipeline stage's valid bit; through `settled` into the softmax controls it made ~20.4 ns on the
        # ULX3S build): a command taken in the cycle before does not show in the registered value yet, so that
        # cycle never counts as settled. Other work starts only after a fetch, which takes cycles.
        settled_q, fired_q = Signal(name="settled_q"), Signal(name="fired_q")
        m.d.sync += [settled_q.eq(~self.array_busy & self.resp_idle), fired_q.eq(fire)]
        settled = settled_q & ~fired_q
        gemv, attn, ew = self._gemv_geometry(m), self._attn_geometry(m), self._elementwise(m)
        # The array's verdict on an array command (bank_array.command_error, which the array applies behind the
        # hub's command slice), registered from the fetched command like the tiles' checks: such a command is
        # offered as fetched, so from EXEC's first cycle on this is the verdict on what is offered, and the
        # descriptor push does not wait for the checks of whatever the payload multiplexer offers (the ULX3S
        # build's critical path ran from the walkers' fields through them into the response queue).
        issue = self._issue_decoded(m)
        first = Signal(name="exec_first")                 # EXEC's first two cycles
        first_1 = Signal(name="exec_first_1")             # EXEC's first cycle
        third = Signal(name="exec_third")                 # EXEC's third cycle
        m.d.sync += [first_1.eq(self.start), first.eq(self.start | first_1), third.eq(first & ~first_1)]
        issue.first = first_1
        # Which kind of command EXEC runs, registered from the fetched command as the checks are (the opcode's
        # decoding in front of the issue, `done` and the CSR's events made ~20.3 ns on the ULX3S build).
        kind = pipeline_stage(m, name="op_decoded")
        is_issued, is_gemv, is_attn = (kind(in_set(c.op, _ISSUED_OPS)), kind(c.op == HubOp.GEMV_TILE),
                                       kind(c.op == HubOp.ATTN_TILE))
        is_sync, is_ew = kind((c.op == Op.SYNC) | (c.op == Op.EOC)), kind((c.op == Op.EWMUL) | (c.op == Op.EWADD))

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "EXEC"
            with m.State("EXEC"):
                with m.If(is_issued):
                    self._issue(m, fire_now, issue)
                with m.Elif(is_gemv):
                    with m.If(first):
                        pass                              # _gemv_geometry's second decode stage
                    with m.Elif((c.flags & ~int(Flag.BF16)) != 0):
                        self._refuse(m, ErrorCode.BAD_FLAGS)
                    with m.Elif(gemv.bad):
                        self._refuse(m, HubError.BAD_TILE)
                    with m.Elif(gemv.scratch_bad):
                        self._refuse(m, HubError.BAD_SCRATCH)
                    with m.Else():
                        m.d.sync += [gemv.pass_.eq(0), gemv.copy_row.eq(c.gb), gemv.g.eq(0),
                                     gemv.copy.eq(1), gemv.last.eq(0),
                                     gemv.row.eq(c.row), gemv.row0.eq(c.row), gemv.pass_end.eq(gemv.first_end),
                                     gemv.more_passes.eq(gemv.first_end < gemv.groups)]
                        gemv.set_c(m, step=False)
                        m.next = "GEMV"
                with m.Elif(is_attn):
                    with m.If(first | third):
                        pass                              # _attn_geometry's second to fourth decode stages
                    with m.Elif(c.flags != 0):
                        self._refuse(m, ErrorCode.BAD_FLAGS)
                    with m.Elif(attn.bad):
                        self._refuse(m, HubError.BAD_TILE)
                    with m.Elif(attn.scratch_bad):
                        self._refuse(m, HubError.BAD_SCRATCH)
                    with m.Else():
                        m.d.comb += self.softmax.clear_max.eq(1)
                        rows = attn.T >> attn.b_log
                        attn.q_start(m)
                        m.d.sync += [attn.q0.eq(0),
                                     attn.q_end.eq(Mux(self.params.accs < rows, self.params.accs, rows))]
                        attn.set_k(m, step=False)
                        m.next = "ATTN_S"
                with m.Elif(is_sync):
                    with m.If(settled):
                        self._finish(m)
                with m.Elif(is_ew):
                    with m.If(~settled):
                        pass                              # earlier read-outs may still be landing in scratch
                    with m.Elif(~ew.ok):
                        self._refuse(m, HubError.BAD_SCRATCH)
                    with m.Elif(c.flags != 0):
                        self._refuse(m, ErrorCode.BAD_FLAGS)
                    with m.Elif(ew.no_count):
                        self._refuse(m, ErrorCode.BAD_COUNT)
                    with m.Else():
                        m.d.sync += [ew.t.eq(0), ew.dst.eq(c.gb), ew.mul.eq(c.op == Op.EWMUL)]
                        ew.set_i(m, step=False)
                        m.next = "EW"
                with m.Else():
                    self._refuse(m, ErrorCode.BAD_OPCODE)
            self._gemv_states(m, fire_now, fire_room, settled, gemv)
            self._attn_states(m, fire_now, fire_room, settled, attn)
            self._ew_state(m, ew)
        m.d.comb += self.idle.eq(fsm.ongoing("IDLE"))
        return m

    # ---- ending a command ----------------------------------------------------------------------------------
    def _finish(self, m):
        m.d.comb += self.done.eq(1)
        m.next = "IDLE"

    def _refuse(self, m, code):
        """Refuse the command with `code` (the first error latches)."""
        m.d.comb += [self.error.valid.eq(1), self.error.code.eq(code)]
        m.next = "IDLE"

    def _push(self, m, kind, dest, beats=1):
        m.d.comb += [self.expect.valid.eq(1), self.expect.payload.kind.eq(kind), self.expect.payload.dest.eq(dest),
                     self.expect.payload.beats.eq(beats)]

    # ---- array commands -------------------------------------------------------------------------------------
    def _issue_decoded(self, m):
        """What EXEC of an array op needs to know of the fetched command, registered (outside the FSM, so the
        registers follow the command in every state; valid from EXEC's first cycle on, see elaborate): `bad`,
        the array refuses it; `err`, the code it refuses it with (bank_array.command_error, 0 if it accepts it),
        valid from EXEC's second cycle on; `answers`, it answers; `per_burst`, one answer per burst;
        `scratch_bad`, its answer would not fit scratch from `imm` on."""
        p, c = self.params, self.cmd
        decoded = pipeline_stage(m, name="issue_decoded")
        answers = in_set(c.op, _ANSWERING_OPS) | (in_set(c.op, _READ_FLAG_OPS) & ((c.flags & Flag.READ) != 0))
        per_burst = in_set(c.op, _BURST_ANSWER_OPS)
        words = Signal(32)
        m.d.comb += words.eq(Mux(per_burst, c.count * (p.lanes // 2), p.banks))
        # The checks' outcomes are registered one bit each and the code of the first that failed a stage later:
        # the checks and the code's priority encoding in one cycle made the 60 MHz build's critical path
        # (17.31 ns, 13.94 of it routing over twelve hops).
        checks = command_checks(m, c, p)
        failed = decoded(Cat(*(check for _, check in checks)))
        err = decoded(first_error(m, [code for code, _ in checks], failed))
        return SimpleNamespace(bad=failed.any(), err=err, answers=decoded(answers),
                               per_burst=decoded(per_burst),
                               scratch_bad=decoded(sum_exceeds(c.imm, words, p.scratch_words)))

    def _issue(self, m, fire_now, d):
        """EXEC of an array op: issue it as fetched; an answering one sends its answer to scratch at `imm`.
        fire_now: the array takes what is offered, in the branch that offers it (as the walkers' fire_now: the
        state's exit then does not wait for `valid`'s selection over every state, which made the 60 MHz build's
        worst estimate, 17.1 ns, seq_state into itself); d: _issue_decoded's registers."""
        c = self.cmd
        bad, err, answers, per_burst, scratch_bad = d.bad, d.err, d.answers, d.per_burst, d.scratch_bad
        # The answer's descriptor goes to the router when the command is first offered, not when the array takes
        # it: a counted read streams beats from its first burst but is taken with its last, and beats with no
        # descriptor would freeze the array before it got there (RD_SBK/RD_GB of more than a few bursts hung).
        expected = Signal(name="answer_expected")
        with m.If(answers & scratch_bad):
            self._refuse(m, HubError.BAD_SCRATCH)
        with m.Elif(bad & d.first):
            pass                    # a refused command is offered once its code (a stage behind) is there
        with m.Elif(self.expect.ready | expected):
            m.d.comb += self.array.valid.eq(1)
            with m.If(answers & ~expected & ~bad):
                self._push(m, Mux(per_burst, ResponseKind.SCRATCH_BURSTS, ResponseKind.SCRATCH_BANKS),
                           c.imm, beats=Mux(per_burst, c.count, 1))
                m.d.sync += expected.eq(1)
            with m.If(fire_now):
                m.d.sync += expected.eq(0)
                with m.If(bad):
                    self._refuse(m, err)
                with m.Else():
                    self._finish(m)

    # ---- GEMV tile -------------------------------------------------------------------------------------------
    def _gemv_geometry(self, m):
        """x chunk c lives in bank `bank`, row gb+c; weights of row group g, chunk c in every bank's row
        `row + g*chunks + c`; groups run in passes of `accs`, each pass walking all chunks."""
        p, c = self.params, self.cmd
        assert p.row_words <= p.gb_words, "a GEMV chunk is one bank row and must fit the GB"
        groups, chunks = c.col, c.count
        g = SimpleNamespace(groups=groups, chunks=chunks,
                            pass_=Signal(16, name="t_pass"),     # first group of this pass
                            c=Signal(16, name="t_c"),            # chunk
                            k=Signal(16, name="t_k"),            # column burst within the chunk
                            g=Signal(16, name="t_g"),            # group (absolute)
                            copy=Signal(name="t_copy"),          # next command is the chunk's COPY_BKGB
                            # Weight rows as running sums (row + g*chunks + c without a multiplier on the
                            # array's command path): `row` of group g, `row0` of the pass's first group.
                            row=Signal(16, name="t_row"), row0=Signal(16, name="t_row0"),
                            last=Signal(name="t_last"),          # every command of the tile has been issued
                            # The COPY's bank row gb + c and the MACs' accumulator g - pass_, kept as registers
                            # beside c and g (their adders, shared by Yosys across the walkers' states, stood
                            # between the state and the command slice: 14.9 ns, estimated, at 75 MHz).
                            copy_row=Signal(16, name="t_copy_row"), acc=Signal(8, name="t_acc"),
                            # The pass's end, min(pass_ + accs, groups), a register set with pass_ (formed
                            # where used, the add and compare before the walker's compares made the ULX3S
                            # build's critical path at 60 MHz, 22.0 ns).
                            pass_end=Signal(17, name="pass_end"))
        # The walker's end tests as registers set with what they test (hw/counted_index.py): `g + 1 < pass_end`
        # and its neighbours' compares in front of every walker register's enable made the critical path of
        # the 75 MHz build with seed 3 (13.82 ns, t_g through a carry chain into t_c's enable).
        g.k_last = Signal(name="t_k_last")              # k + 1 == bursts_per_row
        g.c_last = Signal(name="t_c_last")              # c + 1 == chunks
        g.set_k = counter_setter(g.k, [(g.k_last, lambda n: n == p.bursts_per_row)])
        g.set_c = counter_setter(g.c, [(g.c_last, lambda n: n == chunks)])
        g.g_more = Signal(name="t_g_more")              # g + 1 < pass_end
        g.more_passes = Signal(name="t_more_passes")    # pass_end < groups
        g.zero = Signal(name="t_zero")                  # c == 0 and k == 0: the tile's first burst in this group
        g.first_end = Mux(p.accs < groups, p.accs, groups)
        g.next_end = Mux(g.pass_end + p.accs < groups, g.pass_end + p.accs, groups)
        # Registered from the fetched command (complete when `start` rises, held until the command ends), so
        # from EXEC's first cycle on they hold the executing command's values and their multipliers and
        # comparators stay off the walkers' paths (the ULX3S build's critical path ran through them).
        # Two stages (EXEC waits for them as for the attention tile's): the multiply, then the add and compare.
        # In one cycle, from the fetched command across the device to a DSP block and on, they made the
        # ULX3S build's critical path (19.2 ns).
        decoded = pipeline_stage(m, name="gemv_decoded")
        weight_rows = decoded(groups * chunks)
        g.bad = decoded(decoded((groups == 0) | (chunks == 0) | (c.bank >= p.banks) | (c.gb + chunks > p.rows))
                        | (decoded(c.row) + weight_rows > p.rows))
        g.scratch_bad = decoded(sum_exceeds(c.imm, groups * p.banks, p.scratch_words))
        return g

    def _gemv_states(self, m, fire_now, fire_room, settled, g):
        # Per chunk: the COPY_BKGB, then one-burst MACs column by column, each column over the pass's groups,
        # so that consecutive bursts go to different accumulators (pimhil.schedule.interleave_macs's order).
        p, c, cmd = self.params, self.cmd, self.array.payload
        with m.State("GEMV"):
            read = g.c_last & g.k_last
            with m.If(g.last):
                with m.If(settled):
                    self._finish(m)
            with m.Elif(g.copy):
                m.d.comb += [cmd.op.eq(Op.COPY_BKGB), cmd.flags.eq(0), cmd.bank.eq(c.bank), cmd.row.eq(g.copy_row),
                             cmd.col.eq(0), cmd.count.eq(p.bursts_per_row), cmd.gb.eq(0), cmd.acc.eq(0),
                             self.array.valid.eq(1)]
                with m.If(fire_now):
                    m.d.sync += [g.copy.eq(0), g.g.eq(g.pass_), g.acc.eq(0), g.row.eq(g.row0),
                                 g.g_more.eq(g.pass_ + 1 < g.pass_end), g.zero.eq(g.c == 0)]
                    g.set_k(m, step=False)
            with m.Else():
                flags = (Mux(g.zero, int(Flag.ZERO), 0) | Mux(read, int(Flag.READ), 0)
                         | (c.flags & int(Flag.BF16)))
                # Every walker MAC waits for room in the response descriptors, not only the reading one whose
                # descriptor is pushed as it is taken: `valid` then does not depend on the walker's compares, and
                # neither does `fire`, which enables every walker register (on the ULX3S build that path ran from
                # `a_k` through `k + 1 == dl` into all of them). The descriptors drain by themselves as the
                # reads already issued answer, so the wait ends (same in ATTN_S and ATTN_V).
                m.d.comb += [cmd.op.eq(Op.MAC_ABK), cmd.flags.eq(flags), cmd.bank.eq(0),
                             cmd.row.eq(g.row), cmd.col.eq(g.k), cmd.count.eq(1),
                             cmd.gb.eq(g.k), cmd.acc.eq(g.acc), self.array.valid.eq(self.expect.ready)]
                with m.If(fire_room):
                    with m.If(read):
                        self._push(m, ResponseKind.SCRATCH_BANKS, c.imm + g.g * p.banks)
                    with m.If(g.g_more):
                        m.d.sync += [g.g.eq(g.g + 1), g.acc.eq(g.acc + 1), g.row.eq(g.row + g.chunks),
                                     g.g_more.eq(g.g + 2 < g.pass_end)]
                    with m.Elif(~g.k_last):
                        m.d.sync += [g.g.eq(g.pass_), g.acc.eq(0), g.row.eq(g.row0),
                                     g.g_more.eq(g.pass_ + 1 < g.pass_end), g.zero.eq(0)]
                        g.set_k(m, step=True)
                    with m.Elif(~g.c_last):
                        g.set_c(m, step=True)
                        m.d.sync += [g.copy_row.eq(g.copy_row + 1), g.copy.eq(1),
                                     g.row0.eq(g.row0 + 1)]
                    with m.Elif(g.more_passes):
                        # The last group's last chunk is row + (pass_end - 1) * chunks + chunks - 1.
                        g.set_c(m, step=False)
                        m.d.sync += [g.pass_.eq(g.pass_end), g.copy_row.eq(c.gb), g.copy.eq(1),
                                     g.more_passes.eq(g.next_end < g.groups),
                                     g.row0.eq(g.row + 1),
                                     g.pass_end.eq(g.next_end)]
                    with m.Else():
                        m.d.sync += g.last.eq(1)

    # ---- attention tile --------------------------------------------------------------------------------------
    def _attn_geometry(self, m):
        """One head. Key j: bank j % B, slot q = j // B at row `row + q // kpr`, column (q % kpr) * dl with
        kpr = C / dl keys per row; V-transpose dim i: bank i % B, row `col + (i // B) * nch + chunk`. Chunks of
        ch = min(T, row_words) probabilities go through the GB."""
        p, c = self.params, self.cmd
        B, C = p.banks, p.bursts_per_row
        T, dl = c.count, c.acc
        a = SimpleNamespace(T=T, dl=dl, c_log=(C - 1).bit_length(), l_log=(p.lanes - 1).bit_length(),
                            b_log=(B - 1).bit_length())
        log2 = {1 << i: i for i in range(17)}
        dl_log = Signal(5, name="dl_log_c")
        with m.Switch(dl):
            for v, lg in log2.items():
                if v <= C:
                    with m.Case(v):
                        m.d.comb += dl_log.eq(lg)
        kpr_log = Signal(5, name="kpr_log_c")
        d_words = Signal(16, name="d_words_c")
        groups = Signal(16, name="groups_c")                    # d / B output groups
        ch, nch = Signal(17, name="ch_c"), Signal(17, name="nch_c")
        big_t = T > p.row_words
        rw_log = (p.row_words - 1).bit_length()
        m.d.comb += [kpr_log.eq(a.c_log - dl_log), d_words.eq(dl << a.l_log), groups.eq(d_words >> a.b_log),
                     ch.eq(Mux(big_t, p.row_words, T)), nch.eq(Mux(big_t, T >> rw_log, 1))]
        dl_ok = Cat(*(dl == v for v in log2 if v <= min(C, p.gb_bursts))).any()
        decoded = pipeline_stage(m, name="attn_decoded")       # as in _gemv_geometry
        # Four decode stages (EXEC waits three cycles for them): the geometry; the key rows (a shift by the
        # registered dl_log: from dl's decoding, the shifter and the adder made 16.4 ns, estimated, on the 60 MHz
        # build) and the V rows' end; the key rows' end and the V rows' compare; the key rows' compare (in one
        # cycle, T -> nch -> multiplier -> compare was the ULX3S build's worst path: ~21.9 ns estimated, and
        # 19.05 ns in a 60 MHz build with the compares cut off).
        bad1 = decoded((T < B) | ((T & (B - 1)) != 0) | (T > p.score_words)
                       | (big_t & ((T & (p.row_words - 1)) != 0)) | ~dl_ok | ((d_words & (B - 1)) != 0)
                       | (groups > p.accs))
        a.dl_log, a.kpr_log, a.d_words, a.groups = decoded(dl_log), decoded(kpr_log), decoded(d_words), decoded(groups)
        a.ch, a.nch = decoded(ch), decoded(nch)
        # The key slot's mask within a row, a stage behind kpr_log (ATTN_S starts after the third): from kpr_log
        # in ATTN_S, the mask, the shifts and the column's adder made the 60 MHz build's critical path (15.0 ns).
        a.kpr_mask = decoded((Const(1, 17) << a.kpr_log) - 1)
        # dl_log is at most c_log (0 for a dl the switch does not take), so the shift needs only that many bits.
        key_rows = decoded((((T >> a.b_log) << a.dl_log[:a.c_log.bit_length()]) + C - 1) >> a.c_log)
        v_end, bad2 = decoded(c.col + a.groups * a.nch), decoded(bad1)
        key_end, bad3 = decoded(c.row + key_rows), decoded(bad2 | (v_end > p.rows))
        a.bad = decoded(bad3 | (key_end > p.rows))
        a.scratch_bad = decoded(sum_exceeds(c.gb, d_words, p.scratch_words))
        a.q = Signal(16, name="a_q")       # score MAC / row index
        a.q0 = Signal(16, name="a_q0")     # first key slot of the score MACs' current group
        a.q_end = Signal(17, name="a_q_end")   # its end, min(q0 + accs, rows), set with q0 (as GEMV's pass_end)
        a.v = Signal(name="a_v")           # exp pass: a row read last cycle is being processed
        a.w = Signal(8, name="a_w")        # cycles to wait (exp pass row gap, p pipeline)
        a.c = Signal(17, name="a_c")       # chunk
        a.k = Signal(16, name="a_k")       # burst within the chunk
        a.g = Signal(16, name="a_g")       # V output group
        # Running sums instead of products on the command and score-memory paths: c * ch (the chunk's first
        # token), and the V-transpose row col + g * nch + c of group g (vrow) and of group 0 (vrow0).
        a.c_ch = Signal(32, name="a_c_ch")
        a.vrow, a.vrow0 = Signal(16, name="a_vrow"), Signal(16, name="a_vrow0")
        a.elem = Signal(32, name="elem")   # first token of burst a_k of chunk a_c
        m.d.comb += a.elem.eq(a.c_ch + (a.k << a.l_log))
        # The walkers' end tests are registers, set with the counter they test (every assignment of a_k, a_g and
        # a_c goes through set_k, set_g and set_c), against limits that hold still while the command runs: the
        # adders and compares of the counters in front of the walkers' enables made the 60 MHz build's critical
        # path (16.43 ns, a_k through `k + 1 < ch / L` into a_vrow0's enable).
        a.k_last_s = Signal(name="a_k_last_s")   # a_k + 1 == dl: a key's last score burst
        a.k_last_v = Signal(name="a_k_last_v")   # a_k + 1 == ch / L: a chunk's last burst
        a.g_last = Signal(name="a_g_last")       # a_g + 1 >= groups: the last output group
        a.c_last = Signal(name="a_c_last")       # a_c + 1 == nch: the last chunk
        bursts = a.ch >> a.l_log
        a.set_k = counter_setter(a.k, [(a.k_last_s, lambda n: n == a.dl), (a.k_last_v, lambda n: n == bursts)])
        a.set_g = counter_setter(a.g, [(a.g_last, lambda n: n >= a.groups)])
        a.set_c = counter_setter(a.c, [(a.c_last, lambda n: n == a.nch)])
        # Key slot q's row, row + q / kpr, and column, (q % kpr) * dl, are registers kept with q: the shifters and
        # the row's adder between the walker's registers and the command slice made 14.3-14.9 ns, estimated, at
        # 75 MHz, and formed from q's next value in front of these registers, 15.9 ns. q only ever starts at 0,
        # steps by one, or goes back to the group's first slot q0 (whose row and column are kept too): a step
        # moves one column of dl bursts on, or to the next row after a row's last slot.
        a.slot_row, a.slot_col = Signal(16, name="a_slot_row"), Signal(16, name="a_slot_col")
        a.slot_row0, a.slot_col0 = Signal(16, name="a_slot_row0"), Signal(16, name="a_slot_col0")

        def q_start(m):
            m.d.sync += [a.q.eq(0), a.slot_row.eq(c.row), a.slot_col.eq(0), a.slot_row0.eq(c.row),
                         a.slot_col0.eq(0)]

        def q_step(m, *, new_group=False):
            row_end = (a.q & a.kpr_mask) == a.kpr_mask[:16]
            row, col = Mux(row_end, a.slot_row + 1, a.slot_row), Mux(row_end, 0, a.slot_col + a.dl)
            m.d.sync += [a.q.eq(a.q + 1), a.slot_row.eq(row), a.slot_col.eq(col)]
            if new_group:
                m.d.sync += [a.q0.eq(a.q + 1), a.slot_row0.eq(row), a.slot_col0.eq(col)]

        def q_restart(m):
            m.d.sync += [a.q.eq(a.q0), a.slot_row.eq(a.slot_row0), a.slot_col.eq(a.slot_col0)]
        a.q_start, a.q_step, a.q_restart = q_start, q_step, q_restart
        return a

    def _attn_states(self, m, fire_now, fire_room, settled, a):
        p, c, cmd, sm = self.params, self.cmd, self.array.payload, self.softmax
        rows = a.T >> a.b_log
        with m.State("ATTN_S"):
            # B scores per MAC_ABK, each into one row of the score memory. The key slots' MACs go burst by burst
            # over groups of up to `accs` consecutive slots (slot q into accumulator q % accs), so that
            # consecutive bursts go to different accumulators.
            q_end = a.q_end
            read = a.k_last_s
            # A slot's column is a multiple of dl and the burst a_k is below dl, so the two are ORed, not added.
            flags = Mux(a.k == 0, int(Flag.ZERO), 0) | Mux(read, int(Flag.READ), 0)
            m.d.comb += [cmd.op.eq(Op.MAC_ABK), cmd.flags.eq(flags), cmd.bank.eq(0),
                         cmd.row.eq(a.slot_row), cmd.col.eq(a.slot_col | a.k),
                         cmd.count.eq(1),
                         cmd.gb.eq(a.k), cmd.acc.eq(a.q & (p.accs - 1)),
                         self.array.valid.eq(self.expect.ready)]
            with m.If(fire_room):
                with m.If(read):
                    self._push(m, ResponseKind.SCORES, a.q)
                with m.If(a.q + 1 < q_end):
                    a.q_step(m)
                with m.Elif(~read):
                    a.q_restart(m)
                    a.set_k(m, step=True)
                with m.Elif(q_end < rows):
                    # q is the group's last slot, q_end - 1: the next group starts at q + 1.
                    a.q_step(m, new_group=True)
                    m.d.sync += a.q_end.eq(Mux(q_end + p.accs < rows, q_end + p.accs, rows))
                    a.set_k(m, step=False)
                with m.Else():
                    m.next = "ATTN_MAX"
        with m.State("ATTN_MAX"):
            with m.If(settled & ~sm.busy):
                m.d.comb += sm.load_max.eq(1)
                m.d.sync += [a.q.eq(0), a.v.eq(0), a.w.eq(0)]
                m.next = "ATTN_EXP"
        with m.State("ATTN_EXP"):
            # Row a_q is read in a cycle with a_w = 0, and goes through the exp pass in the next (a_v); rows are
            # ROW_GAP cycles apart, the lane sums' adder being a pipeline.
            m.d.comb += [sm.row.eq(a.q), sm.exp.eq(a.v)]
            with m.If((a.w == 0) & (a.q < rows)):
                m.d.sync += [a.q.eq(a.q + 1), a.v.eq(1), a.w.eq(SoftmaxDatapath.ROW_GAP - 1)]
            with m.Else():
                m.d.sync += a.v.eq(0)
                with m.If(a.w != 0):
                    m.d.sync += a.w.eq(a.w - 1)
                with m.Elif(~a.v):
                    m.next = "ATTN_RECIP"
        with m.State("ATTN_RECIP"):
            # The exp pass's last results reach the lane sums, then S and 1/S follow through their stages.
            with m.If(~sm.busy):
                m.d.comb += sm.load_recip.eq(1)
                m.d.sync += [a.c_ch.eq(0), a.vrow0.eq(c.col)]
                a.set_c(m, step=False)
                a.set_k(m, step=False)
                m.next = "ATTN_PREAD"
        with m.State("ATTN_PREAD"):
            m.d.comb += sm.row.eq(a.elem >> a.b_log)
            m.next = "ATTN_PMUL"
        with m.State("ATTN_PMUL"):
            # The row's scores come out of the memory and p = e * r goes through its pipeline.
            m.d.comb += sm.row.eq(a.elem >> a.b_log)
            with m.If(a.w == SoftmaxDatapath.P_LATENCY - 2):
                m.d.sync += a.w.eq(0)
                m.next = "ATTN_PWRITE"
            with m.Else():
                m.d.sync += a.w.eq(a.w + 1)
        with m.State("ATTN_PWRITE"):
            m.d.comb += [sm.row.eq(a.elem >> a.b_log), sm.burst.eq(a.elem[a.l_log:a.b_log] if a.b_log > a.l_log else 0)]
            m.d.comb += [cmd.op.eq(Op.WR_GB), cmd.flags.eq(0), cmd.gb.eq(a.k), cmd.count.eq(1), cmd.row.eq(0),
                         cmd.col.eq(0), cmd.bank.eq(0), cmd.acc.eq(0), cmd.data.eq(sm.p_burst), self.array.valid.eq(1)]
            with m.If(fire_now):
                with m.If(a.k_last_v):
                    m.d.sync += a.vrow.eq(a.vrow0)
                    a.set_k(m, step=False)
                    a.set_g(m, step=False)
                    m.next = "ATTN_V"
                with m.Else():
                    a.set_k(m, step=True)
                    m.next = "ATTN_PREAD"
        with m.State("ATTN_V"):
            # The chunk's V-transpose MACs, burst by burst over the output groups' accumulators.
            last_chunk = a.c_last
            read = last_chunk & a.k_last_v
            flags = Mux((a.c == 0) & (a.k == 0), int(Flag.ZERO), 0) | Mux(read, int(Flag.READ), 0)
            m.d.comb += [cmd.op.eq(Op.MAC_ABK), cmd.flags.eq(flags), cmd.bank.eq(0),
                         cmd.row.eq(a.vrow), cmd.col.eq(a.k), cmd.count.eq(1),
                         cmd.gb.eq(a.k), cmd.acc.eq(a.g), self.array.valid.eq(self.expect.ready)]
            with m.If(fire_room):
                with m.If(read):
                    self._push(m, ResponseKind.SCRATCH_BANKS, c.gb + (a.g << a.b_log))
                with m.If(~a.g_last):
                    m.d.sync += a.vrow.eq(a.vrow + a.nch)
                    a.set_g(m, step=True)
                with m.Elif(~a.k_last_v):
                    m.d.sync += a.vrow.eq(a.vrow0)
                    a.set_k(m, step=True)
                    a.set_g(m, step=False)
                with m.Elif(~last_chunk):
                    m.d.sync += [a.c_ch.eq(a.c_ch + a.ch), a.vrow0.eq(a.vrow0 + 1)]
                    a.set_c(m, step=True)
                    a.set_k(m, step=False)
                    m.next = "ATTN_PREAD"
                with m.Else():
                    m.next = "ATTN_DONE"
        with m.State("ATTN_DONE"):
            with m.If(settled):
                self._finish(m)

    # ---- element-wise ops -----------------------------------------------------------------------------------
    def _elementwise(self, m):
        p, c = self.params, self.cmd
        e = SimpleNamespace(i=Signal(16, name="ew_i"),       # element being computed
                            t=Signal(range(EW_STEP), name="ew_t"),   # cycle within the element
                            dst=Signal(16, name="ew_dst"), mul=Signal(name="ew_mul"))
        # Registered from the fetched command, like the tiles' checks (_gemv_geometry); so is `count == 0`: the
        # fetched command's compare in front of the state register made the 65 MHz build's critical path (14.10
        # ns, seed 2, a 4.92 ns route into the compare's carry chain).
        decoded = pipeline_stage(m, name="ew_decoded")
        e.ok = decoded(~sum_exceeds(c.row, c.count, p.scratch_words) & ~sum_exceeds(c.col, c.count, p.scratch_words)
                       & ~sum_exceeds(c.gb, c.count, p.scratch_words))
        e.no_count = decoded(c.count == 0)
        # i + 1 == count, a register set with i (hw/counted_index.py): the compare stays off the state's path.
        e.last = Signal(name="ew_last")
        e.set_i = counter_setter(e.i, [(e.last, lambda n: n == c.count)])
        # Both operators run freely on the operands read for element i (stable for the element's EW_STEP
        # cycles); the shorter operator's result is delayed to leave with the other's.
        stage = pipeline_stage(m, name="ew")
        # The operands are registered as they leave the block RAM: its clock-to-output delay and the operators'
        # first cut (unpacking, compares, exponent differences) did not fit one cycle on the ULX3S build.
        a, b = stage(self.ew_a.data), stage(self.ew_b.data)
        e.sum = fp32_add(m, a, b, name="ew_add", stage=stage)
        e.prod = fp32_mul(m, a, b, name="ew_mul", stage=stage)
        for _ in range(FP32_ADD_CUTS - FP32_MUL_CUTS):
            e.prod = stage(e.prod)
        for _ in range(FP32_MUL_CUTS - FP32_ADD_CUTS):
            e.sum = stage(e.sum)
        m.d.comb += [self.ew_a.en.eq(1), self.ew_b.en.eq(1), self.ew_a.addr.eq(c.row + e.i),
                     self.ew_b.addr.eq(c.col + e.i)]
        return e

    def _ew_state(self, m, e):
        with m.State("EW"):
            # One element every EW_STEP cycles: operands read in cycle 0 arrive in cycle 1 (and in the operand
            # register in cycle 2), the result leaves the operator pipeline in cycle EW_STEP - 1 and is written
            # then; the next element's operands are read after that write (docs/control_hub.md: each element's
            # result is written before the next element's operands are read).
            with m.If(e.t == EW_STEP - 1):
                m.d.comb += [self.ew_wr.en.eq(1), self.ew_wr.addr.eq(e.dst),
                             self.ew_wr.data.eq(Mux(e.mul, e.prod, e.sum))]
                m.d.sync += [e.dst.eq(e.dst + 1), e.t.eq(0)]
                e.set_i(m, step=True)
                with m.If(e.last):
                    self._finish(m)
            with m.Else():
                m.d.sync += e.t.eq(e.t + 1)
