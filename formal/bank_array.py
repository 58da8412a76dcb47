"""hw/bank_array.py BankArray: a refused command changes no bank, GB, accumulator or AF LUT state.

Proved as a miter: two copies of the array, A and B, get the same command stream, except that every command
A refuses (cmd_err != 0) is a NOP for B (op NOP, flags 0, the other fields as they were). The assertion: in
every cycle, everything the array sends to its state holders that can change them or what they answer (the
bank and GB memories' read ports and, when enabled, write ports; each bank PU's token and, for a MAC or SET
token, its operands, its accumulator writes and read index; the AF unit's inputs; the answer buffer's writes
and reads, so every answer) is the same in A and B; only A announces refusals (`refusal_valid`). A refused
command is thus indistinguishable from a NOP, cycle for cycle, whatever ran before, during or after it; and a
NOP reaches no state holder (`nop_touches_nothing`).
(Against an empty cycle instead of a NOP the copies would not stay in step: a refused command, like a NOP,
occupies a pipeline slot, which delays a following AF until the pipeline is empty; that changes when, not
what, it writes.)

The state holders themselves are abstracted (the datapath): the memories, the PUs, the AF unit and the answer
buffer (a FIFO) are taken
out and their outputs are free values shared by the two copies. This is sound for the miter because each of
them is a deterministic function of its input history: up to the first cycle in which A's and B's inputs to
it differ (which the assertion catches) the real blocks would answer both copies alike.

Environment: the command stream is free (valid, payload) within the stream rules; the answer consumer applies
the same back-pressure to both copies; the AF unit answers each value it was given, later (it is a pipeline).
(Refusals leave on a port of their own, without back-pressure: a refusal held in a buffer with the answers
would occupy room a NOP does not, and the copies would part.) Smallest legal DeviceParams (4 banks of 4
lanes, 2 bursts, 1 accumulator).
"""

import re

from amaranth.asserts import AnySeq
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.hdl._dsl import resolve_statement
from amaranth.lib.fifo import FIFOInterface
from amaranth.lib.wiring import In, Out

from hw.bank_array import BankArray
from hw.bank_pu import PUOp
from pimhil.contract import COUNTED_OPS, RESPONDING_OPS, Flag, Op

from ._common import MutableHarness, Probe, ProbeError, Proof, Properties, SMALLEST

STATE_HOLDERS = ("bank0", "bank1", "bank2", "bank3", "gb", "pu0", "pu1", "pu2", "pu3", "af", "resp_buffer")


def _sync_registers(module) -> list:
    """The signals the module assigns in its sync domain, in order of first assignment (the same order in
    two elaborations of the same component)."""
    seen, out = set(), []
    for st in module._statements.get("sync", []):
        for sig in resolve_statement(st)._lhs_signals():
            if id(sig) not in seen:
                seen.add(id(sig))
                out.append(sig)
    return out


class Harness(MutableHarness):
    def elaborate(self, platform):
        m = Module()
        props = self.props = Properties(m)
        a_dut, b_dut = BankArray(params=SMALLEST), BankArray(params=SMALLEST)
        a, b = Probe(a_dut), Probe(b_dut)
        holders = {}
        for name in STATE_HOLDERS:
            holders[name] = (a.submodule(name), b.submodule(name))
            a.replace_submodule(name, Module())
            b.replace_submodule(name, Module())
        if self.mutation == "refused_gb_write":
            # A refused WR_GB still writes its burst.
            gb = holders["gb"][0]
            with a.module.If(a_dut.cmd.valid & (a_dut.cmd_err != 0) & (a_dut.cmd.payload.op == Op.WR_GB)):
                a.module.d.comb += [gb.wr_en.eq(1), gb.wr_addr.eq(a_dut.cmd.payload.gb),
                                    gb.wr_data.eq(a_dut.cmd.payload.data)]
        elif self.mutation == "refused_mac_token":
            # A refused MAC still reaches the PUs (its stage is valid, its error ignored).
            with a.module.If(a.field("s1", "valid") & (a.field("s1", "op") == Op.MAC_ABK)):
                a.module.d.comb += holders["pu0"][0].in_op.eq(1)
        m.submodules.a = a.module
        m.submodules.b = b.module

        # The state holders' outputs: free, one value for both copies.
        for name, (ha, hb) in holders.items():
            for port in _ports(ha, Out):
                shared = Signal(len(getattr(ha, port)), name=f"{name}_{port}")
                m.d.comb += [shared.eq(AnySeq(len(shared))), getattr(ha, port).eq(shared),
                             getattr(hb, port).eq(shared)]

        # The AF unit abstracted as a pipeline: every output answers an earlier input (left free, an output would
        # end an AF that never started).
        af_a = holders["af"][0]
        tokens = Signal(range(SMALLEST.banks + 2), name="af_tokens")
        m.d.sync += tokens.eq(tokens + af_a.in_valid - af_a.out_valid)
        props.assume("af_answers_inputs", ~af_a.out_valid | (tokens != 0),
                     "the AF unit answers each value it was given, later (hw/activation.py is a pipeline)")

        # The command stream: B sees A's commands except those A refuses.
        valid, payload, ready = Signal(name="cmd_valid"), Signal(len(a_dut.cmd.payload.as_value()), name="cmd"), \
            Signal(name="resp_ready")
        m.d.comb += [valid.eq(AnySeq(1)), payload.eq(AnySeq(len(payload))), ready.eq(AnySeq(1))]
        m.d.comb += [a_dut.cmd.valid.eq(valid), a_dut.cmd.payload.eq(payload), b_dut.cmd.payload.eq(payload),
                     b_dut.cmd.valid.eq(valid),
                     a_dut.resp.ready.eq(ready), b_dut.resp.ready.eq(ready)]
        # After the plain connection above: in Amaranth the last assignment wins.
        with m.If(a_dut.cmd_err != 0):
            m.d.comb += [b_dut.cmd.payload.op.eq(Op.NOP), b_dut.cmd.payload.flags.eq(0)]

        pending = Signal(name="cmd_pending")
        prev = Signal(len(payload), name="cmd_prev")
        m.d.sync += [pending.eq(valid & ~a_dut.cmd.ready), prev.eq(payload)]
        props.assume("stream_rules", ~pending | (valid & (payload == prev)),
                     "the command stream keeps valid and its payload until ready (amaranth.lib.stream rules)")

        # ---- the property: the state holders see the same inputs in A and B --------------------------------
        for name, (ha, hb) in holders.items():
            checks = []
            for port in _ports(ha, In):
                same = getattr(ha, port) == getattr(hb, port)
                # An input that only matters together with an enable is compared when it is enabled.
                gate = _GATES.get((name[:2] if name[:2] in ("ba", "pu") else name, port))
                if gate is not None:
                    same = same | ~(gate(ha) | gate(hb))
                checks.append(same)
            props.assert_(f"same_{name}_inputs", Cat(*checks).all(),
                          f"{name}: every input that can change it or its answers is the same with the refused "
                          "commands as with NOPs in their place")
        nop_s1 = b.field("s1", "valid") & (b.field("s1", "op") == Op.NOP)
        op_s2 = b.field("s2", "op")
        copy_s2 = b.field("s2", "valid") & ((op_s2 == Op.COPY_BKGB) | (op_s2 == Op.COPY_GBBK))
        nop_head = b.sig("head_valid") & (b.field("head", "op") == Op.NOP)
        writes = Cat(holders["gb"][1].wr_en, holders["af"][1].lut_wr_en,
                     *(holders[f"bank{i}"][1].wr_en for i in range(4)))
        props.assert_("nop_touches_nothing", (~nop_s1 | Cat(*(holders[f"pu{i}"][1].in_op == PUOp.NONE
                                                               for i in range(4))).all())
                      & (~nop_head | copy_s2 | (writes == 0)),
                      "a NOP sends no token to any PU (memory stage) and writes no memory or LUT entry (issue stage; "
                      "a COPY two stages ahead may write then)")
        props.assert_("helper_b_never_refused", ~b_dut.cmd.valid | (b_dut.cmd_err == 0),
                      "helper: the copy with NOPs for refused commands is never offered a refused command")

        af_run, af_done, k, bubble, bubble_2 = (a.sig(n) for n in ("af_run", "af_done", "k", "bubble", "bubble_2"))
        # A value is counted out (af_i) a cycle before the unit takes it (af_sel_valid, the registered read).
        sel_valid = a.sig("af_sel_valid")
        props.assert_("helper_af_tokens", (tokens + sel_valid == a.sig("af_i") - a.sig("af_o"))
                      & (a.sig("af_o") <= a.sig("af_i")) & (a.sig("af_i") <= SMALLEST.banks) & (~sel_valid | af_run),
                      "helper: the AF unit holds the values given and not answered, and the one on its way")
        head_valid, head_op = a.sig("head_valid"), a.field("head", "op")
        head_ok = a.field("head", "failed") == 0
        head_af = head_valid & (head_op == Op.AF) & head_ok
        props.assert_("helper_af_phase", (~(af_run | af_done) | ((k == 0) & ~bubble & ~bubble_2 & head_af))
                      & ~(af_run & af_done) & (~bubble | (k == 0)) & (bubble | ~bubble_2) & (af_run | (tokens == 0)),
                      "helper: an AF in progress holds the head of the stream and no other command is mid-way")
        def counted(reg):
            return Cat(*(a.field(reg, "op") == int(op) for op in sorted(COUNTED_OPS))).any()

        props.assert_("helper_mid_command", (k == 0) | (head_valid & head_ok & counted("head")
                                                         & (k <= a.field("head", "count_m1"))),
                      "helper: a command in the middle of its bursts is at the head of the input register, "
                      "accepted, and has bursts left")
        consistent = []
        for reg in ("head", "skid"):
            count, count_m1 = a.field(reg, "count"), a.field(reg, "count_m1")
            consistent.append(~a.sig(f"{reg}_valid") | (a.field(reg, "failed") != 0)
                              | Mux(counted(reg), (count != 0) & (count_m1 == count - 1), count_m1 == 0))
            consistent.append(~a.sig(f"{reg}_valid") | _decodings_hold(a, reg))
        props.assert_("helper_input_register", (~a.sig("skid_valid") | head_valid) & Cat(*consistent).all()
                      & (a.sig("first") == (k == 0)) & (a.sig("last") == (k == a.field("head", "count_m1"))),
                      "helper: the skid register holds a command only behind one at the head; an accepted "
                      "command's burst count less one is its count less one (one burst if not counted); the "
                      "verdict bit and the op's decodings kept beside a command are its own; first and last are "
                      "k == 0 and k == count_m1")
        for name, x in (("a", a), ("b", b)):
            ok1 = x.field("s1", "valid") & (x.field("s1", "err") == 0)
            op1, bank1, acc1 = x.field("s1", "op"), x.field("s1", "bank"), x.field("s1", "acc")
            writes1 = ok1 & ((op1 == Op.MAC_ABK) | (op1 == Op.MAC_SBK) | (op1 == Op.WR_BIAS))
            ok2 = x.field("s2", "valid") & (x.field("s2", "err") == 0)
            op2, bank2 = x.field("s2", "op"), x.field("s2", "bank")
            decoded = []
            for reg, ok_, op_, bank_ in (("_s1", ok1, op1, bank1), ("", ok2, op2, bank2)):
                decoded.append(x.sig(f"copy_to_gb{reg}") == (ok_ & (op_ == Op.COPY_BKGB)))
                decoded += [x.sig(f"copy_to_bank{reg}")[i] == (ok_ & (op_ == Op.COPY_GBBK) & (bank_ == i))
                            for i in range(SMALLEST.banks)]
            acc_bits = max((SMALLEST.accs - 1).bit_length(), 1)
            decoded += [x.sig("s1_hit")[i] == (writes1 & (acc1[:acc_bits] == i)) for i in range(SMALLEST.accs)]
            decoded.append(x.sig("hazard") == _hazard_of_head(x))
            props.assert_(f"helper_s1_decoded_{name}", Cat(*decoded).all(),
                          f"helper ({name.upper()}): the decodings of s1 and s2 registered as their bursts issued (the "
                          "COPYs' write selections, the accumulator s1 writes) are theirs, and the registered "
                          "hazard is the head burst's")
        # Helper invariants: the two copies' registers agree, but for the valid bit of a pipeline stage (or of
        # the response) that holds a refused command in A.
        regs_a, regs_b = _sync_registers(a.module), _sync_registers(b.module)
        if [r.name for r in regs_a] != [r.name for r in regs_b]:
            raise ProbeError("the two BankArray copies have different registers")
        helpers = []
        for ra, rb in zip(regs_a, regs_b):
            if re.match(r"^s\d+$", ra.name):
                # `last` too (a NOP is one burst, a refused command counts its `count`), and the read data that
                # rides along (chosen by op; read out only for an accepted read).
                helpers.append(_refused_as_nop(a, b, ra.name, ra, rb, {"last": 1}, ("data",)))
            elif ra.name in ("head", "skid"):
                # The input register: a refused command in A is a NOP in B, which differs in op, flags, its
                # checks' outcomes, its burst count less one (a NOP is one burst) and the op's decodings.
                helpers.append(_refused_as_nop(a, b, ra.name, ra, rb, {"count_m1": 0, **_NOP_DECODED},
                                               verdict="failed"))
            elif ra.name == "hazard":
                # The head burst's (helper_s1_decoded), and a refused MAC in A is a NOP in B.
                helpers.append(rb == _hazard_of_head(b))
            elif ra.name == "last":
                # k == count_m1 in each copy (helper_input_register for A), and their counts differ where A
                # holds a refused command.
                helpers.append(rb == (b.sig("k") == b.field("head", "count_m1")))
            elif ra.name == "refusal_valid":
                helpers.append(rb == 0)
            elif ra.name == "refusal":
                helpers.append(1)
            elif ra.name == "answer":
                helpers.append(~b.sig("answer_valid") | (ra == rb))
            else:
                helpers.append(ra == rb)
        for i, (ra, helper) in enumerate(zip(regs_a, helpers)):
            name = ra.name if re.match(r"^\w+$", ra.name) else f"reg{i}"
            props.assert_(f"helper_lockstep_{name}", helper,
                          f"helper: A's and B's {ra.name} agree (a stage holding a refused command in A holds a NOP "
                          "in B, which differs in op, flags, err, last and read data; only A announces refusals; the "
                          "answer register's payload matters only while it holds an answer)")

        props.cover("refused_between_macs", valid & (a_dut.cmd_err != 0) & a.field("s2", "valid")
                    & (a.field("s2", "op") == Op.MAC_ABK) & (a.field("s2", "err") == 0),
                    "a refused command issues right behind an accepted MAC_ABK")
        props.cover("refused_wr_gb", valid & a_dut.cmd.ready & (a_dut.cmd.payload.op == Op.WR_GB)
                    & (a_dut.cmd_err != 0), "a refused WR_GB is taken")
        props.cover("accepted_write", holders["gb"][0].wr_en & holders["gb"][1].wr_en, "an accepted GB write lands")
        props.cover("refusal_held_answers", a_dut.refusal_valid & a_dut.resp.valid & ~ready,
                    "A announces a refusal while the consumer holds off the answers")
        return m


def _refused_as_nop(a, b, name, ra, rb, nop_extra, also_differ=(), *, verdict="err"):
    """Lock-step rule for a register holding a command (a pipeline stage, the input register): A's and B's agree
    but for op, flags, the verdict (`verdict`: a stage's error code, the input register's failed checks), the
    fields of `nop_extra` and `also_differ`; where A holds a refused command B holds a NOP (op NOP, flags 0,
    verdict 0, `nop_extra`'s values), elsewhere those fields agree too."""
    nop = {"op": Op.NOP, "flags": 0, verdict: 0, **nop_extra}
    fa = {f: a.field(name, f) for f in (*nop, *also_differ)}
    fb = {f: b.field(name, f) for f in (*nop, *also_differ)}
    skip = {i for f in fa.values() for i in range(f.start, f.stop)}
    rest_a = Cat(*(ra[i] for i in range(len(ra)) if i not in skip))
    rest_b = Cat(*(rb[i] for i in range(len(rb)) if i not in skip))
    refused = Cat(*(fb[f] == v for f, v in nop.items())).all()
    accepted = Cat(*(fa[f] == fb[f] for f in fa)).all()
    return (rest_a == rest_b) & ((fa[verdict] != 0) & refused | (fa[verdict] == 0) & accepted)


# The op's decodings the input register keeps beside each command, as a NOP's are.
_NOP_DECODED = {"bad": 0, "mac": 0, "writes_acc": 0, "af": 0, "copy": 0, "answers": 0}


def _hazard_of_head(x):
    """The head burst's wait as the array once formed it combinationally: it reads its accumulator (a MAC but a
    ZERO command's first burst) and that accumulator is busy (acc_wait != 0, or written by the burst at s1)."""
    acc = x.field("head", "acc")[:max((SMALLEST.accs - 1).bit_length(), 1)]
    busy = Cat(*((x.sig(f"acc_wait{i}") != 0) | x.sig("s1_hit")[i] for i in range(SMALLEST.accs)))
    op = x.field("head", "op")
    reads = ((op == Op.MAC_ABK) | (op == Op.MAC_SBK)) & ~(x.field("head", "flags")[Flag.ZERO.bit_length() - 1]
                                                          & (x.sig("k") == 0))
    return reads & busy.bit_select(acc, 1)


def _decodings_hold(x, reg):
    """The verdict bit and op decodings `reg` (head or skid) keeps are those of its command."""
    op = x.field(reg, "op")
    return Cat(x.field(reg, "bad") == (x.field(reg, "failed") != 0),
               x.field(reg, "mac") == ((op == Op.MAC_ABK) | (op == Op.MAC_SBK)),
               x.field(reg, "writes_acc") == ((op == Op.MAC_ABK) | (op == Op.MAC_SBK) | (op == Op.WR_BIAS)),
               x.field(reg, "af") == (op == Op.AF),
               x.field(reg, "copy") == ((op == Op.COPY_BKGB) | (op == Op.COPY_GBBK)),
               x.field(reg, "answers") == Cat(*(op == int(o) for o in sorted(RESPONDING_OPS))).any()).all()


# amaranth.lib.fifo's FIFOs are not wiring components: their ports, by flow.
_FIFO_PORTS = {In: ("w_en", "w_data", "r_en"), Out: ("w_rdy", "w_level", "r_rdy", "r_data", "r_level")}


def _ports(holder, flow):
    """The names of a state holder's ports of one flow (In: what drives it, Out: what it answers)."""
    if isinstance(holder, FIFOInterface):
        return _FIFO_PORTS[flow]
    return [port for port, member in holder.signature.members.items() if member.flow == flow]


# Inputs of a state holder that matter only while an enable is high: (holder kind, port) -> enable.
_GATES = {
    ("ba", "wr_addr"): lambda h: h.wr_en, ("ba", "wr_data"): lambda h: h.wr_en,
    ("gb", "wr_addr"): lambda h: h.wr_en, ("gb", "wr_data"): lambda h: h.wr_en,
    ("ba", "rd_addr"): lambda h: h.rd_en, ("gb", "rd_addr"): lambda h: h.rd_en,
    ("pu", "in_acc"): lambda h: h.in_op != PUOp.NONE, ("pu", "in_zero"): lambda h: h.in_op != PUOp.NONE,
    ("pu", "in_value"): lambda h: h.in_op != PUOp.NONE, ("pu", "w"): lambda h: h.in_op != PUOp.NONE,
    ("pu", "x"): lambda h: h.in_op != PUOp.NONE,
    ("pu", "wr_idx"): lambda h: h.wr_en, ("pu", "wr_data"): lambda h: h.wr_en,
    ("af", "x"): lambda h: h.in_valid,
    ("af", "lut_idx"): lambda h: h.lut_wr_en, ("af", "lut_a"): lambda h: h.lut_wr_en,
    ("af", "lut_b"): lambda h: h.lut_wr_en,
    ("resp_buffer", "w_data"): lambda h: h.w_en,
}


PROOFS = [
    # covers: a refusal leaves from the response stage (RESP_STAGE), a few cycles after the command
    Proof(name="bank_array", block="hw/bank_array.py", build=Harness, mode="prove", depth=6,
          cover_depth=BankArray.RESP_STAGE + 4,
          assumes_why={"af_answers_inputs": "the AF unit is a pipeline: one output per earlier input",
                       "stream_rules": "the sequencer and the bus windows hold a command until the array takes it"},
          mutations={"refused_gb_write": "a refused WR_GB still writes the GB",
                     "refused_mac_token": "a refused MAC_ABK still sends bank 0's PU a MAC token"},
          mutation_expects={"refused_gb_write": "same_gb_inputs", "refused_mac_token": "same_pu0_inputs"}),
]
