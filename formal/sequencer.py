"""hw/sequencer.py Sequencer: a command it refuses has no side effect, for every command (the array's ops,
EWMUL/EWADD, SYNC/EOC, GEMV_TILE, ATTN_TILE, unknown opcodes) and every state of the array around it.

"Side effect" is everything through which the sequencer changes device state: an array command the array
accepts (`cmd_err` 0: only those touch banks, GB, accumulators or the AF LUT, proved in formal/bank_array.py),
a response descriptor (answers landing in scratch or the score memory), a scratch write of EWMUL/EWADD, and
the softmax datapath's state strobes (clear_max, load_max, exp, load_recip). The property: between `start` and
the cycle `error` fires, none of these happened.

Environment (the array, the response router, scratch and the softmax datapath are free inputs, i.e. the
datapath is abstracted away): `cmd` is held from `start` until the command ends and `start` comes only while
no command runs (what the fetch in hw/control_hub.py does). The array's verdict on an offered command is
bank_array.command_error of the payload, formed here as the array forms it; the sequencer forms its own from
the fetched command, and the properties check the two agree wherever it matters.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Cat, Module, Signal

from hw.bank_array import command_error
from hw.sequencer import EW_STEP, Sequencer
from pimhil.contract import ARRAY_OPS, ErrorCode, HubError, HubOp, Op

from ._common import MutableHarness, Probe, Proof, Properties, SMALLEST, past


class Harness(MutableHarness):
    def elaborate(self, platform):
        m = Module()
        props = self.props = Properties(m)
        dut = Sequencer(params=SMALLEST)
        probe = Probe(dut)
        in_exec, in_idle = probe.in_state("seq", "EXEC"), probe.in_state("seq", "IDLE")
        expected = probe.sig("answer_expected")
        if self.mutation == "push_then_refuse":
            # Push the answer's descriptor before the array's verdict is known (the refusal then leaves it queued).
            with probe.module.If(in_exec & (dut.cmd.op == Op.RD_SBK)):
                probe.module.d.comb += dut.expect.valid.eq(1)
        elif self.mutation == "clear_max_early":
            # In the cycle the checks decide (after EXEC's three-cycle decode wait), whatever they decide: a
            # cycle earlier, a trace could break only the helper (in EXEC with a side effect) and not refuse.
            with probe.module.If(in_exec & (dut.cmd.op == HubOp.ATTN_TILE) & ~probe.sig("exec_first")
                                 & ~probe.sig("exec_third")):
                probe.module.d.comb += dut.softmax.clear_max.eq(1)
        m.submodules.dut = probe.module

        free = [dut.cmd.as_value(), dut.start, dut.array.ready, dut.array_busy, dut.expect.ready,
                dut.resp_idle, dut.ew_a.data, dut.ew_b.data, dut.softmax.p_burst]
        for sig in free:
            m.d.comb += sig.eq(AnySeq(len(sig)))

        running = Signal(name="running")             # from the cycle after `start` until done/error
        with m.If(dut.start):
            m.d.sync += running.eq(1)
        with m.If(dut.done | dut.error.valid):
            m.d.sync += running.eq(0)
        props.assume("start_when_idle", ~dut.start | ~running, "a command starts only when none is running")
        cmd_prev = past(m, dut.cmd.as_value(), name="cmd_prev")
        props.assume("cmd_held", ~running | (dut.cmd.as_value() == cmd_prev),
                     "the fetched command is held until it ends")
        # What the array (hw/bank_array.py) refuses the offered command with, 0 if it accepts it.
        array_err = command_error(m, dut.array.payload, SMALLEST)

        sm = dut.softmax
        events = {
            "array_accepts": dut.array.valid & dut.array.ready & (array_err == 0),
            "descriptor": dut.expect.valid & dut.expect.ready,
            "scratch_write": dut.ew_wr.en,
            "softmax_state": sm.clear_max | sm.load_max | sm.exp | sm.load_recip,
        }
        event = Cat(*events.values()).any()
        dirty = Signal(name="dirty")                 # a side effect since the command started
        with m.If(event):
            m.d.sync += dirty.eq(1)
        with m.If(dut.start):
            m.d.sync += dirty.eq(0)

        props.assert_("refused_has_no_side_effect", ~dut.error.valid | (running & ~dirty & ~event),
                      "a refused command (error.valid) has had no side effect since its start: no array command "
                      "accepted with cmd_err 0, no response descriptor, no scratch write, no softmax state change")
        props.assert_("ends_only_running", ~(dut.done | dut.error.valid) | running,
                      "done and error fire only for a running command")
        props.assert_("done_xor_error", ~(dut.done & dut.error.valid), "a command ends one way")
        ended = past(m, dut.done | dut.error.valid, name="ended_prev")
        was_busy = past(m, ~dut.idle, name="busy_prev")
        props.assert_("idle_after_end", ended == (dut.idle & was_busy),
                      "idle rises exactly in the cycle after done or error (the control hub takes that as the end)")
        props.assert_("helper_running", (running == ~in_idle) & probe.fsm_legal("seq"),
                      "helper: the sequencer is idle exactly when no command runs")
        props.assert_("helper_exec_clean", ~in_exec | ~dirty | (expected & (array_err == 0)),
                      "helper: in EXEC, the only side effect possible so far is an answering array command's "
                      "descriptor, and then the array accepts that command")
        issued = Cat(*(dut.cmd.op == int(op) for op in sorted(ARRAY_OPS - {Op.SYNC}))).any()
        props.assert_("helper_expected", ~expected | (in_exec & issued & ~dut.error.valid & (array_err == 0)),
                      "helper: a descriptor pushed for the command in EXEC means the command is not refused")

        for name, test in {
            "refused_gemv": dut.error.valid & (dut.error.code == HubError.BAD_TILE) & (dut.cmd.op == HubOp.GEMV_TILE),
            "refused_by_array": dut.error.valid & (dut.cmd.op == Op.RD_SBK) & (dut.error.code == ErrorCode.BAD_ROW),
            "refused_ew": dut.error.valid & (dut.cmd.op == Op.EWADD) & (dut.error.code == ErrorCode.BAD_COUNT),
            "refused_attn": dut.error.valid & (dut.cmd.op == HubOp.ATTN_TILE),
            "bad_opcode": dut.error.valid & (dut.error.code == ErrorCode.BAD_OPCODE),
            "read_done": dut.done & (dut.cmd.op == Op.RD_SBK) & (dirty | event),
            "ew_done": dut.done & (dut.cmd.op == Op.EWMUL) & (dirty | event),
        }.items():
            props.cover(name, test, f"cover: {name.replace('_', ' ')}")
        return m


PROOFS = [
    # depth 6: an ATTN_TILE is refused in its fourth EXEC cycle (three decode stages behind the first): start,
    # the wait and the refusal fit the base case
    # covers: an EWMUL/EWADD element takes EW_STEP cycles, so ew_done needs that and the start around it
    Proof(name="sequencer", block="hw/sequencer.py", build=Harness, mode="prove", depth=6, cover_depth=EW_STEP + 4,
          assumes_why={
              "start_when_idle": "the command fetch (hw/control_hub.py) starts a command only when the last ended",
              "cmd_held": "the fetch holds the header and payload registers until the command ends",
          },
          mutations={"push_then_refuse": "RD_SBK pushes its descriptor before the array's verdict",
                     "clear_max_early": "ATTN_TILE clears the softmax maxima as its checks decide, either way"},
          mutation_expects={"push_then_refuse": "refused_has_no_side_effect",
                            "clear_max_early": "refused_has_no_side_effect"}),
]
