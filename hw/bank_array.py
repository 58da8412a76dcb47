"""The bank array: B bank memories and PUs, the global buffer, the AF unit and the local command port.

Every command enters through `cmd` (a stream in the layout of contract.cmd_fields) and is checked exactly as
contract.check_command checks it; a refused command leaves no trace but its code, on `cmd_err` while it is
offered and on `refusal` as it leaves the pipeline (answers and refusals are separate ports). Multi-burst
commands issue one burst per cycle and the next command follows in the very next cycle, so MACs stream at
one column burst per cycle across command boundaries, as long as consecutive bursts go to different
accumulators: the accumulate adder is pipelined, so a MAC burst that reads an accumulator waits until every
MAC or WR_BIAS burst into that accumulator is BankPU.ACC_GAP stages ahead (the hub's walkers rotate over
accumulators burst by burst; a command stream that does not is slower, never wrong).

Commands enter through an input register (a skid pair, so one command per cycle still goes through) that
carries, beside each command, the outcome of each of its checks (command_checks), its burst count less one and
its first bank address, all formed on the way in: the issue logic then decides from registers, and no adder or
comparison of the command's fields stands between `cmd` and the decision to take the next command (on the ULX3S
build that chain and the enable it drives were the critical path at 40.6 MHz). The head burst's bank and GB
addresses are registers too, one copy of the bank address beside each bank's block RAMs.

The pipeline never stalls. Its answers go into a buffer (a FIFO of RESP_BUFFER entries) in front of `resp`,
and a burst that answers issues only while the buffer has room for every answer on its way (a count of answers
issued and not yet taken, kept as `room`, a register): back-pressure on `resp` holds the issue, never the
stages. A pipeline that froze on `~resp.valid | resp.ready` fanned that one signal out to every stage register,
PU, lane reduction and block RAM enable of every bank (8.47 ns of route on the ULX3S 60 MHz build).

Pipeline:
  s0  issue (the head of the input register): memory addresses, writes of WR_* ops, LUT writes
  s1  memory data: PU tokens enter
  s2  COPY writes land (each memory's read data registered beside it at s1, chosen at s2)
  s2..  the PU's lane reduction, then its accumulate adder; the last of them (LATENCY) writes accumulators
  LATENCY + 1  accumulators are read into a register, after the write of the token ahead has landed
  RESP_STAGE  responses form from that register (the accumulator multiplexer, the BF16 rounding and the
              response multiplexer in one cycle made a ~20.2 ns path on the ULX3S build)
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import (ACC_OPS, AF_SEGMENTS, ALLOWED_FLAGS, ARRAY_OPS, COUNTED_OPS, GB_OPS,
                             RESPONDING_OPS, ROW_OPS, SINGLE_BANK_OPS, DeviceParams, ErrorCode, Flag, Op,
                             cmd_fields, refusal_fields, resp_fields)

from .activation import ActivationUnit
from .bank_pu import BankPU, PUOp
from .burst_memory import BurstMemory
from .fp32 import fp32_to_bf16
from .narrow_compare import at_least, in_set, sum_exceeds
from .replica import UNMERGED, replicas

__all__ = ["BankArray", "cmd_layout", "command_checks", "command_error", "first_error", "refusal_layout",
           "resp_layout"]


def cmd_layout(params):
    return data.StructLayout({name: width for name, width in cmd_fields(params)})


def resp_layout(params):
    return data.StructLayout({name: width for name, width in resp_fields(params)})


def refusal_layout():
    return data.StructLayout({name: width for name, width in refusal_fields()})


MAC_OPS = frozenset({Op.MAC_ABK, Op.MAC_SBK})


def command_checks(m, c, params):
    """contract.check_command's checks on `c` (a command in cmd_layout), in its order: a list of (ErrorCode,
    1-bit Value), each high when its check fails, independent of the others (the first that fails is the
    verdict: first_error)."""
    p = params
    op = c.op
    # A flag bit is refused unless the op is one that allows it: one membership test per flag (no table of
    # allowed flags indexed by the op: its multiplexer tree, then the verdict's OR, into the input register made
    # 15.3 ns, estimated, on the 75 MHz build).
    known = 0
    for f in ALLOWED_FLAGS.values():
        known |= int(f)
    flag_refused = [c.flags[b] & ~in_set(op, {o for o, f in ALLOWED_FLAGS.items() if int(f) >> b & 1})
                    for b in range(known.bit_length()) if known >> b & 1]
    if len(c.flags) > known.bit_length():
        flag_refused.append(c.flags[known.bit_length():].any())
    flag_refused += [c.flags[b] for b in range(min(known.bit_length(), len(c.flags))) if not known >> b & 1]
    all_banks = (op == Op.WR_BIAS) & c.flags[Flag.ALL.bit_length() - 1]
    counted = in_set(op, COUNTED_OPS)
    count = Mux(counted, c.count, 1)
    row_op = in_set(op, ROW_OPS)
    return [
        (ErrorCode.BAD_OPCODE, ~in_set(op, ARRAY_OPS)),
        (ErrorCode.BAD_FLAGS, Cat(*flag_refused).any()),
        (ErrorCode.BAD_BANK, (in_set(op, SINGLE_BANK_OPS) | ((op == Op.WR_BIAS) & ~all_banks))
         & at_least(c.bank, p.banks)),
        (ErrorCode.BAD_COUNT, counted & (c.count == 0)),
        (ErrorCode.BAD_ROW, row_op & at_least(c.row, p.rows)),
        (ErrorCode.BAD_COL, row_op & sum_exceeds(c.col, count, p.bursts_per_row)),
        (ErrorCode.BAD_GB, in_set(op, GB_OPS) & sum_exceeds(c.gb, count, p.gb_bursts)),
        (ErrorCode.BAD_ACC, in_set(op, ACC_OPS) & at_least(c.acc, p.accs)),
        (ErrorCode.BAD_LUT, (op == Op.WR_AFLUT) & at_least(c.imm, AF_SEGMENTS)),
    ]


def first_error(m, codes, failed):
    """The code of the first check that failed (`failed`, one bit per entry of `codes`), 0 if none did."""
    err = Signal(8)
    for i, code in enumerate(codes):
        with (m.If if i == 0 else m.Elif)(failed[i]):
            m.d.comb += err.eq(code)
    return err


def command_error(m, c, params):
    """The error code `c` (a command in cmd_layout) is refused with, 0 if it is accepted: contract.check_command's
    checks in its order. A function so that the sequencer, which reaches the array through the hub's command slice,
    forms the array's verdict on the command it fetched (hw/sequencer.py)."""
    checks = command_checks(m, c, params)
    return first_error(m, [code for code, _ in checks], Cat(*(failed for _, failed in checks)))


class BankArray(wiring.Component):
    """Ports: `cmd` (stream in), `resp` (stream out: the answers, in command order), `refusal` (a command
    leaves the pipeline refused: its op and code, in the one cycle `refusal_valid` is high; in command order, no
    back-pressure),
    `busy` (work in flight), `mac_active` (a MAC burst issues this cycle), `stall` (the head command waits for
    room in the answer buffer: response back-pressure), `cmd_err` (the error code the command offered on `cmd`
    will be refused with, 0 if accepted: lets a driver stop at a refusal without waiting for it to leave)."""

    def __init__(self, *, params):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(params))),
            "resp": Out(stream.Signature(resp_layout(params))),
            "refusal_valid": Out(1),
            "refusal": Out(refusal_layout()),
            "busy": Out(1),
            "mac_active": Out(1),
            "stall": Out(1),
            "cmd_err": Out(8),
        })

    IN_STAGE = 1                   # cmd -> s0: the input register
    LATENCY = 1 + BankPU.LATENCY   # s0 -> the stage that writes accumulators
    RESP_STAGE = LATENCY + 2
    # Answers the buffer holds: enough that answers issued back to back (the windows' reads) stream while
    # `resp` takes them at once: issue to buffer (RESP_STAGE + 1), through its output register, and the count's
    # register (`room`) keeps one entry spare.
    RESP_BUFFER = 1 << (RESP_STAGE + 8).bit_length()
    BUFFER_LATENCY = 2             # the answer register to `resp.valid`: the buffer's memory and output register

    def elaborate(self, platform):
        m = Module()
        p = self.params
        B, L, C = p.banks, p.lanes, p.bursts_per_row
        addr_bits = (p.bank_bursts - 1).bit_length()
        gb_bits = max((p.gb_bursts - 1).bit_length(), 1)

        banks = [BurstMemory(lanes=L, depth=p.bank_bursts) for _ in range(B)]
        pus = [BankPU(lanes=L, accs=p.accs) for _ in range(B)]
        for i in range(B):
            m.submodules[f"bank{i}"] = banks[i]
            m.submodules[f"pu{i}"] = pus[i]
        m.submodules.gb = gb = BurstMemory(lanes=L, depth=p.gb_bursts)
        m.submodules.af = af = ActivationUnit()

        # ---- the input register: each command with its checks' outcomes, its burst count less one and its
        # first bank address --------------------------------------------------------------------------------
        # The checks are kept one bit each and the verdict's code is formed at issue: the priority encoding of
        # the code behind the checks' comparisons was the ULX3S build's critical path (18.36 ns at 45 MHz).
        fields = {name: width for name, width in cmd_fields(p)}
        cmd_in = self.cmd
        checks = command_checks(m, cmd_in.payload, p)
        codes = [code for code, _ in checks]
        # Also kept: the verdict as one bit (`bad`) and the op's decodings the issue logic tests.
        head_layout = data.StructLayout({**fields, "failed": len(checks), "bad": 1, "count_m1": 16,
                                         "base": max(addr_bits, 1), "mac": 1, "writes_acc": 1, "af": 1,
                                         "copy": 1, "answers": 1})
        entry = Signal(head_layout)
        in_failed = Signal(len(checks), name="in_failed")
        m.d.comb += in_failed.eq(Cat(*(failed for _, failed in checks)))
        m.d.comb += [entry[f].eq(cmd_in.payload[f]) for f in fields]
        m.d.comb += [
            entry.failed.eq(in_failed), entry.bad.eq(in_failed.any()),
            entry.mac.eq(in_set(cmd_in.payload.op, MAC_OPS)),
            entry.writes_acc.eq(in_set(cmd_in.payload.op, MAC_OPS | {Op.WR_BIAS})),
            entry.af.eq(cmd_in.payload.op == Op.AF),
            entry.copy.eq(in_set(cmd_in.payload.op, {Op.COPY_BKGB, Op.COPY_GBBK})),
            entry.answers.eq(in_set(cmd_in.payload.op, RESPONDING_OPS)),
            self.cmd_err.eq(first_error(m, codes, in_failed)),
            entry.count_m1.eq(Mux(in_set(cmd_in.payload.op, COUNTED_OPS), cmd_in.payload.count - 1, 0)),
            entry.base.eq((cmd_in.payload.row << (C - 1).bit_length()) + cmd_in.payload.col),
        ]
        head, skid = Signal(head_layout, name="head"), Signal(head_layout, name="skid")
        head_valid, skid_valid = Signal(name="head_valid"), Signal(name="skid_valid")
        take = Signal()                # the head command is done with: the next one may take its place
        m.d.comb += cmd_in.ready.eq(~skid_valid)
        with m.If(~head_valid | take):
            with m.If(skid_valid):
                m.d.sync += [head.eq(skid), head_valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [head.eq(entry), head_valid.eq(cmd_in.valid)]
        with m.Elif(~skid_valid):
            # Loaded whatever is offered, valid or not, so that the enable does not wait for `valid`.
            m.d.sync += [skid.eq(entry), skid_valid.eq(cmd_in.valid)]

        # ---- s0: issue the head command -------------------------------------------------------------------
        c = head
        op = c.op
        err = first_error(m, codes, c.failed)
        ok = ~c.bad

        # ---- issue state ----------------------------------------------------------------------------------
        k = Signal(16)                 # burst within the head command
        # Two idle cycles after a COPY, whose write lands two stages late: one flag for each, so that the issue
        # decision tests one register (a 2-bit count's test put 15.8 ns, estimated, from the head into `hazard`).
        bubble, bubble_2 = Signal(name="bubble"), Signal(name="bubble_2")
        af_run, af_done = Signal(name="af_run"), Signal(name="af_done")
        af_acc = Signal(8)
        af_i = Signal(range(B + 1))
        af_o = Signal(range(B + 1))

        stage_layout = data.StructLayout({
            "valid": 1, "op": 8, "err": 8, "flags": 8, "bank": 8, "acc": 8, "imm": 32,
            "addr": max(addr_bits, 1), "gbaddr": gb_bits, "first": 1, "last": 1, "data": p.burst_bits,
        })
        s = [Signal(stage_layout, name=f"s{i}") for i in range(self.RESP_STAGE + 1)]
        pipe_empty = ~Cat(*(st.valid for st in s[1:])).any()

        issue = Signal()
        step = Signal()                # the head's next burst follows the one issued now
        # k == 0 and k == count_m1, kept as registers beside k (compares of k in the issue decision made it
        # nine logic levels deep on the ULX3S build); both start true, as k == 0 == count_m1 of an empty head.
        first = Signal(init=1, name="first")
        last = Signal(init=1, name="last")
        # BankPU's rule: a MAC burst that reads its accumulator (all but a ZERO command's first) waits while a
        # MAC or WR_BIAS burst into the same accumulator is fewer than ACC_GAP stages ahead.
        # Bursts in flight are kept per accumulator, not compared against every stage as the head reaches issue
        # (the stages' compares, the enable they drive and the input register's load made ~18 ns on the ULX3S
        # build). `s1_hit[a]`: the burst at s1 writes accumulator a, registered as it issues. `acc_wait[a]`
        # counts the cycles until the last such burst into accumulator a beyond s1 is ACC_GAP stages on (it
        # sits at stage ACC_GAP - acc_wait[a]). Accumulator a is busy while (acc_wait[a] != 0) | s1_hit[a].
        # `hazard` is the head burst's wait, reads_acc & busy[head.acc], itself a register: formed a cycle ahead
        # for the burst that will be at the head, the one after this one or the first of the command coming
        # in, with the burst issuing now counted in (the selection and compares of a combinational hazard put
        # nine logic levels between the head and the issue decision's loads, 18.6 ns estimated).
        assert BankPU.ACC_GAP >= 3
        acc_bits = max((p.accs - 1).bit_length(), 1)
        acc_wait = [Signal(range(BankPU.ACC_GAP - 1), name=f"acc_wait{a}") for a in range(p.accs)]
        s1_hit = Signal(p.accs, name="s1_hit")
        s0_writes = issue & ok & c.writes_acc
        # An accepted command's accumulator is below accs: its low bits are all of it.
        m.d.sync += s1_hit.eq(Cat(*(s0_writes & (c.acc[:acc_bits] == a) for a in range(p.accs))))
        waits_next = Signal(p.accs, name="waits_next")   # acc_wait[a] != 0 in the next cycle
        for a in range(p.accs):
            nxt = Signal.like(acc_wait[a], name=f"acc_wait{a}_next")
            with m.If(s1_hit[a]):
                m.d.comb += nxt.eq(BankPU.ACC_GAP - 2)
            with m.Elif(acc_wait[a] != 0):
                m.d.comb += nxt.eq(acc_wait[a] - 1)
            with m.Else():
                m.d.comb += nxt.eq(acc_wait[a])
            m.d.sync += acc_wait[a].eq(nxt)
            m.d.comb += waits_next[a].eq(nxt != 0)
        hazard = Signal(name="hazard")

        # The answers issued and not yet taken from `resp` (on their way or in the buffer), and `room`: one more
        # may issue. `room` is a register, formed without this cycle's issue (as if a burst that answers issued
        # now): one buffer entry is spare, and the issue decision reads a flip-flop.
        in_flight = Signal(range(self.RESP_BUFFER + 1), name="answers_in_flight")
        room = Signal(init=1, name="room")
        answers = Signal(name="answers")       # the head burst answers
        m.d.comb += answers.eq(c.answers | (c.mac & c.flags[Flag.READ.bit_length() - 1] & last))
        taken = self.resp.valid & self.resp.ready
        m.d.sync += [in_flight.eq(in_flight + (issue & ok & answers) - taken),
                     room.eq(in_flight - taken < self.RESP_BUFFER - 1)]

        is_af = c.af
        with m.If(af_done):
            m.d.comb += take.eq(1)
            m.d.sync += af_done.eq(0)
        with m.Elif(af_run | ~room):
            # Held for room whether the head answers or not: the decision then reads one register.
            pass
        with m.Elif(bubble):
            m.d.sync += [bubble.eq(bubble_2), bubble_2.eq(0)]
        with m.Elif(head_valid & ok & is_af):
            with m.If(pipe_empty):
                m.d.sync += [af_run.eq(1), af_acc.eq(c.acc), af_i.eq(0), af_o.eq(0)]
        with m.Elif(head_valid & ok & hazard):
            pass
        with m.Elif(head_valid):
            m.d.comb += issue.eq(1)
            with m.If(~ok | last):
                m.d.comb += take.eq(1)
                m.d.sync += k.eq(0)
                with m.If(ok & c.copy):
                    m.d.sync += [bubble.eq(1), bubble_2.eq(1)]
            with m.Else():
                m.d.comb += step.eq(1)
                m.d.sync += k.eq(k + 1)

        # The head burst's memory addresses are registers (base + k, kept as k is): the adder into every bank's
        # block RAMs made 16.57 ns, 11.86 of it one route. Each bank has its own copy beside its block RAMs.
        load = ~head_valid | take
        bank_addr = Signal(max(addr_bits, 1), name="bank_addr")
        def incoming(field):           # the field of the command the head takes if it loads
            return Mux(skid_valid, skid[field], entry[field])
        bank_addr_next = Mux(load, incoming("base"), bank_addr + step)
        m.d.sync += bank_addr.eq(bank_addr_next)
        bank_addr_at = replicas(m, bank_addr_next, B, name="bank_addr")
        m.d.sync += [first.eq(load | (first & ~step)),
                     last.eq(Mux(load, incoming("count_m1") == 0, Mux(step, k + 1 == c.count_m1, last)))]

        def busy_next(acc, issuing):   # accumulator `acc` (an index of acc_bits) busy in the next cycle
            if not issuing:
                return waits_next.bit_select(acc, 1)
            s0_hit = ok & c.writes_acc & (c.acc[:acc_bits] == acc) & (acc < p.accs)   # as s1_hit will record it
            return waits_next.bit_select(acc, 1) | s0_hit
        zero = Flag.ZERO.bit_length() - 1
        in_acc, head_acc = incoming("acc")[:acc_bits], c.acc[:acc_bits]
        in_mac = incoming("mac") & ~incoming("flags")[zero]
        # Formed for each outcome of this cycle's issue and chosen by it last: `issue` and `load` come out of the
        # issue decision's priority chain, and through the accumulator compares behind it they made 15.9 ns,
        # estimated, on the 75 MHz build. The head that stays and issues is stepping (so its ZERO burst is out).
        m.d.sync += hazard.eq(Mux(load,
                                  Mux(issue, in_mac & busy_next(in_acc, True), in_mac & busy_next(in_acc, False)),
                                  Mux(issue, c.mac & busy_next(head_acc, True),
                                      c.mac & ~(c.flags[zero] & first) & busy_next(head_acc, False))))
        gb_addr = Signal(gb_bits, name="gb_addr")
        m.d.sync += gb_addr.eq(Mux(load, incoming("gb"), gb_addr + step))
        m.d.comb += [
            s[0].valid.eq(issue), s[0].op.eq(op), s[0].err.eq(err), s[0].flags.eq(c.flags),
            s[0].bank.eq(c.bank), s[0].acc.eq(c.acc), s[0].imm.eq(c.imm), s[0].addr.eq(bank_addr),
            s[0].gbaddr.eq(gb_addr), s[0].first.eq(first), s[0].last.eq(last),
        ]
        wr0 = issue & ok
        for i in range(B):
            m.d.comb += [banks[i].rd_addr.eq(bank_addr_at[i]), banks[i].rd_en.eq(1)]
        m.d.comb += [gb.rd_addr.eq(gb_addr), gb.rd_en.eq(1)]
        m.d.comb += [
            af.lut_wr_en.eq(wr0 & (op == Op.WR_AFLUT)), af.lut_idx.eq(c.imm),
            af.lut_a.eq(c.data[:32]), af.lut_b.eq(c.data[32:64]),
        ]

        m.d.sync += [s[i + 1].eq(s[i]) for i in range(self.RESP_STAGE)]

        # ---- s1: memory data, PU tokens; s2: COPY writes ---------------------------------------------------
        s1, s2 = s[1], s[2]
        ok1 = s1.valid & (s1.err == 0)
        # A COPY's data is registered before it is written: a block RAM's output comes late in the cycle, and
        # from one bank's memory through the bank selection into the GB's write data it was the 65 MHz build's
        # critical path (15.37 ns, seed 1: 5.83 ns clock to output, a 6.24 ns route). Each memory's read data
        # is registered beside it and chosen at s2 (`s2_data`): registered after the choice, bank 3's block RAM
        # still reached the selection across the device (6.51 ns, a029335 mapped without area recovery).
        rd_q = [Signal.like(b.rd_data, name=f"bank_rd_q{i}") for i, b in enumerate(banks)]
        gb_q = Signal.like(gb.rd_data, name="gb_rd_q")
        m.d.sync += [q.eq(b.rd_data) for q, b in zip(rd_q, banks)] + [gb_q.eq(gb.rd_data)]
        s2_data = Signal(p.burst_bits)
        m.d.comb += s2_data.eq(Mux((s2.op == Op.RD_GB) | (s2.op == Op.COPY_GBBK), gb_q,
                                   Array(rd_q)[s2.bank[:max((B - 1).bit_length(), 1)]]))
        # The write selections are decoded as they issue and registered with s1, then s2, so that the stages'
        # fields do not decode in front of the memories' address multiplexers.
        copy_to_bank_s1, copy_to_bank = Signal(B, name="copy_to_bank_s1"), Signal(B, name="copy_to_bank")
        copy_to_gb_s1, copy_to_gb = Signal(name="copy_to_gb_s1"), Signal(name="copy_to_gb")
        m.d.sync += [
            copy_to_bank_s1.eq(Cat(*(issue & ok & (op == Op.COPY_GBBK) & (c.bank == i) for i in range(B)))),
            copy_to_gb_s1.eq(issue & ok & (op == Op.COPY_BKGB)),
            copy_to_bank.eq(copy_to_bank_s1), copy_to_gb.eq(copy_to_gb_s1),
        ]
        for i in range(B):
            to_this = (op == Op.WR_ABK) | ((op == Op.WR_SBK) & (c.bank == i))
            with m.If(copy_to_bank[i]):
                m.d.comb += [banks[i].wr_en.eq(1), banks[i].wr_addr.eq(s2.addr), banks[i].wr_data.eq(s2_data)]
            with m.Else():
                m.d.comb += [banks[i].wr_en.eq(wr0 & to_this), banks[i].wr_addr.eq(bank_addr_at[i]),
                             banks[i].wr_data.eq(c.data)]
        with m.If(copy_to_gb):
            m.d.comb += [gb.wr_en.eq(1), gb.wr_addr.eq(s2.gbaddr), gb.wr_data.eq(s2_data)]
        with m.Else():
            m.d.comb += [gb.wr_en.eq(wr0 & (op == Op.WR_GB)), gb.wr_addr.eq(gb_addr), gb.wr_data.eq(c.data)]

        # The accumulator read index goes to the PUs a cycle ahead (each registers it beside its multiplexers):
        # s[-2]'s accumulator as it will be (s[-3]'s), or the AF walk's. The selection
        # in front of every PU's accumulator multiplexers made the 60 MHz build's critical path (16.74 ns, one
        # hop of 7.5 ns). The index follows the AF walk's start a cycle late, so the walk's reads wait a cycle
        # (`af_primed`); after the walk the pipeline is empty, so the cycle it still reads the walk's accumulator
        # reads for no burst.
        rd_idx = Mux(af_run, af_acc, s[-3].acc)
        s1_all = s1.flags[Flag.ALL.bit_length() - 1]
        s1_zero = s1.flags[Flag.ZERO.bit_length() - 1] & s1.first
        for i, pu in enumerate(pus):
            mac = ok1 & ((s1.op == Op.MAC_ABK) | ((s1.op == Op.MAC_SBK) & (s1.bank == i)))
            set_ = ok1 & (s1.op == Op.WR_BIAS) & (s1_all | (s1.bank == i))
            m.d.comb += [
                pu.en.eq(1), pu.w.eq(banks[i].rd_data), pu.x.eq(gb.rd_data),
                pu.in_op.eq(Mux(mac, PUOp.MAC, Mux(set_, PUOp.SET, PUOp.NONE))),
                pu.in_acc.eq(s1.acc), pu.in_zero.eq(s1_zero), pu.in_value.eq(s1.imm),
                pu.rd_idx.eq(rd_idx),
            ]
        acc_q = [Signal(32, name=f"acc_q{i}") for i in range(B)]
        m.d.sync += [q.eq(pu.rd_data) for q, pu in zip(acc_q, pus)]
        # Read data rides along to the response stage so that responses leave in command order.
        m.d.sync += s[3].data.eq(s2_data)

        # ---- AF: drain, then stream every bank's accumulator through the unit and write it back ------------
        # Each PU's read is registered beside it, and the unit takes the registered value a cycle later: the
        # run flag through the read index and the accumulators' multiplexers, then across the device to the
        # unit's input register, was the ULX3S build's critical path (17.90 ns, 15.47 of it routing).
        af_rd = [Signal(32, name=f"af_rd{i}") for i in range(B)]
        af_sel_valid, af_sel = Signal(name="af_sel_valid"), Signal.like(af_i, name="af_sel")
        m.d.sync += [q.eq(pu.rd_data) for q, pu in zip(af_rd, pus)]
        af_primed = Signal(name="af_primed")
        m.d.sync += af_primed.eq(af_run)
        m.d.sync += [af_sel_valid.eq(af_run & af_primed & (af_i < B)), af_sel.eq(af_i)]
        m.d.comb += [af.in_valid.eq(af_sel_valid), af.x.eq(Array(af_rd)[af_sel])]
        with m.If(af_run & af_primed & (af_i < B)):
            m.d.sync += af_i.eq(af_i + 1)
        # Each result is written a cycle after it leaves the unit, from registers of each PU's own (UNMERGED):
        # from the walk's counter through the PU selection into the accumulators' enables was the critical path
        # of 0b1d76a's 75 MHz build (15.78 ns, 14.31 of it routing). The last write lands in the cycle `af_done`
        # is up, before any later command can issue.
        for i, pu in enumerate(pus):
            wr_en, wr_idx = Signal(name=f"af_wr_en{i}", attrs=UNMERGED), Signal.like(af_acc, name=f"af_wr_idx{i}")
            wr_data = Signal(32, name=f"af_wr_data{i}", attrs=UNMERGED)
            wr_idx.attrs.update(UNMERGED)
            m.d.sync += [wr_en.eq(af.out_valid & (af_o == i)), wr_idx.eq(af_acc), wr_data.eq(af.y)]
            m.d.comb += [pu.wr_en.eq(wr_en), pu.wr_idx.eq(wr_idx), pu.wr_data.eq(wr_data)]
        with m.If(af.out_valid):
            m.d.sync += af_o.eq(af_o + 1)
            with m.If(af_o == B - 1):
                m.d.sync += [af_run.eq(0), af_done.eq(1)]

        # ---- RESP_STAGE: answers into the buffer, refusals out ---------------------------------------------
        sl = s[-1]
        is_mac = (sl.op == Op.MAC_ABK) | (sl.op == Op.MAC_SBK)
        read_after = is_mac & sl.flags[Flag.READ.bit_length() - 1] & sl.last
        refused = sl.valid & (sl.err != 0)
        responds = sl.valid & (sl.err == 0) & (in_set(sl.op, RESPONDING_OPS) | read_after)
        results = []
        for q in acc_q:
            bf = fp32_to_bf16(m, q, name=f"bf16_{len(results)}")
            results.append(Mux(sl.flags[Flag.BF16.bit_length() - 1], Cat(bf, Const(0, 16)), q))
        rdata = Signal(p.resp_data_bits)
        with m.If((sl.op == Op.RD_MAC) | read_after):
            m.d.comb += rdata.eq(Cat(*results))
        with m.Elif((sl.op == Op.RD_SBK) | (sl.op == Op.RD_GB)):
            m.d.comb += rdata.eq(sl.data)
        # The answer is registered before the buffer, so that the rounding and the multiplexer above do not run
        # into the buffer's write port.
        answer = Signal(resp_layout(p), name="answer")
        answer_valid = Signal(name="answer_valid")
        m.d.sync += [answer_valid.eq(responds), answer.op.eq(sl.op), answer.data.eq(rdata),
                     self.refusal_valid.eq(refused), self.refusal.op.eq(sl.op),
                     self.refusal.err.eq(sl.err)]
        m.submodules.resp_buffer = buffer = fifo.SyncFIFOBuffered(width=len(answer.as_value()),
                                                                  depth=self.RESP_BUFFER)
        # `room` keeps the buffer from filling: w_rdy is always high when an answer arrives.
        m.d.comb += [
            buffer.w_en.eq(answer_valid), buffer.w_data.eq(answer),
            self.resp.valid.eq(buffer.r_rdy), self.resp.payload.eq(buffer.r_data), buffer.r_en.eq(self.resp.ready),
        ]

        m.d.comb += [
            self.busy.eq(self.cmd.valid | head_valid | skid_valid | ~pipe_empty | af_run | af_done
                         | (in_flight != 0)),
            self.mac_active.eq(issue & ok & c.mac),
            self.stall.eq(head_valid & ~room & ~af_run & ~af_done),
        ]
        return m
