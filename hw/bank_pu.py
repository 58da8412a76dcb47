"""Bank processing unit: lane reduction feeding `accs` FP32 accumulators (docs/numerics.md §4)."""

import enum

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fp32 import FP32_ADD_CUTS, fp32_add, pipeline_stage
from .lane_reduce import LaneReduce
from .replica import UNMERGED, replicas

__all__ = ["BankPU", "PUOp"]


class PUOp(enum.IntEnum):
    NONE = 0
    MAC = 1    # acc[idx] = acc[idx] (or +0 with zero) + lane_sum(w, x)
    SET = 2    # acc[idx] = value (verbatim FP32 bits)


class BankPU(wiring.Component):
    """One bank's MAC unit.

    A token (`in_op`, `in_acc`, `in_zero`, `in_value`) with its burst (`w`, `x`) enters when `en` is high and
    its write (MAC: the accumulate adder's sum; SET: the value) lands LATENCY enabled cycles later, in order,
    so a SET behind a MAC never overtakes it. The accumulate adder is a pipeline of FP32_ADD_CUTS stages, so
    a MAC that reads its accumulator (one without `in_zero`) must enter at least ACC_GAP enabled cycles after
    any MAC or SET token into the same accumulator: the caller keeps that distance (BankArray stalls issue);
    closer tokens would read the accumulator before the earlier write landed.
    `rd_idx` addresses a read a cycle ahead: `rd_data` is the accumulator `rd_idx` named in the previous cycle,
    as it is before this cycle's write (no forwarding: the accumulate adder's output reaches no other logic in
    its cycle); `wr_*` writes one directly (used only while no token is in flight).
    """

    LATENCY = LaneReduce.LATENCY + FP32_ADD_CUTS
    ACC_GAP = FP32_ADD_CUTS + 1
    # The read index is registered here, once per byte of `rd_data`: one index register into all 32 bits'
    # accs-way multiplexers (128 LUTs on its low bit at accs = 8) made 18.01 ns on the ULX3S build, 8.80 ns of
    # it the index's own net.
    RD_INDEX_COPIES = 4

    def __init__(self, *, lanes, accs):
        if not isinstance(accs, int) or accs < 1:
            raise ValueError(f"accs must be a positive int, not {accs!r}")
        self.lanes = lanes
        self.accs = accs
        self._lr = LaneReduce(lanes=lanes)   # validates lanes
        super().__init__({
            "en": In(1),
            "in_op": In(2),
            "in_acc": In(range(accs)),
            "in_zero": In(1),
            "in_value": In(32),
            "w": In(16 * lanes),
            "x": In(16 * lanes),
            "rd_idx": In(range(accs)),
            "rd_data": Out(32),
            "wr_en": In(1),
            "wr_idx": In(range(accs)),
            "wr_data": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.lane_reduce = lr = self._lr
        m.d.comb += [lr.en.eq(self.en), lr.w.eq(self.w), lr.x.eq(self.x)]

        # Token delay line matching the lane-reduction latency; line[-1] is the token whose lane sum is out.
        # Every PU keeps its own (UNMERGED): the PUs' lines, loaded alike, and the array's stage registers beside
        # them were folded into one by Yosys, whose outputs then ran to every PU's accumulators (a 7.49 ns route
        # into them, the critical path of b00652b's 75 MHz build, 15.31 ns).
        line = [(self.in_op, self.in_acc, self.in_zero, self.in_value)]
        for s in range(LaneReduce.LATENCY):
            nop = Signal(2, name=f"op_{s}", attrs=UNMERGED)
            nidx = Signal(range(self.accs), name=f"acc_{s}", attrs=UNMERGED)
            nzero, nvalue = Signal(name=f"zero_{s}", attrs=UNMERGED), Signal(32, name=f"value_{s}", attrs=UNMERGED)
            with m.If(self.en):
                m.d.sync += [nop.eq(line[-1][0]), nidx.eq(line[-1][1]), nzero.eq(line[-1][2]),
                             nvalue.eq(line[-1][3])]
            line.append((nop, nidx, nzero, nvalue))

        acc = Array(Signal(32, name=f"acc{i}") for i in range(self.accs))
        we, widx, wdata = Signal(), Signal(range(self.accs)), Signal(32)
        # The addend is selected a cycle early: `cur` holds the accumulator (or +0 under `zero`) of the token
        # that enters the adder next cycle, with this cycle's write forwarded into it. The adder's first stage
        # then starts from a register, not from an accs-way selection. While `en` is low the token `cur` was
        # formed for stays next and no token writes, so `cur` holds, taking only a direct write into its
        # accumulator: `en` selects after the multiplexer, not before it (en -> selection -> multiplexer made
        # ~17.7 ns on the ULX3S build).
        _, next_idx, next_zero, _ = line[-2]
        _, held_idx, held_zero, _ = line[-1]
        cur = Signal(32, name="acc_cur")
        # The write as it is when `en` is high (the only case the forwarding serves), so that `en` reaches
        # neither the compare nor the multiplexers.
        we_en, widx_en, wdata_en = Signal(), Signal.like(widx), Signal.like(wdata)
        forwarded = Mux(we_en & (widx_en == next_idx), wdata_en, acc[next_idx])
        with m.If(self.en):
            m.d.sync += cur.eq(Mux(next_zero, 0, forwarded))
        with m.Elif(self.wr_en & (self.wr_idx == held_idx) & ~held_zero):
            m.d.sync += cur.eq(self.wr_data)
        stage = pipeline_stage(m, self.en, name="acc_add")
        total = fp32_add(m, cur, lr.result, name="acc_add", stage=stage)
        # The token rides beside the adder; SETs are delayed as much as MACs, so writes land in token order.
        op, idx, _, value = line[-1]
        token_stage = pipeline_stage(m, self.en, name="acc_token", attrs=UNMERGED)
        for _ in range(FP32_ADD_CUTS):
            op, idx, value = token_stage(op), token_stage(idx), token_stage(value)
        with m.If(op == PUOp.MAC):
            m.d.comb += [we_en.eq(1), widx_en.eq(idx), wdata_en.eq(total)]
        with m.Elif(op == PUOp.SET):
            m.d.comb += [we_en.eq(1), widx_en.eq(idx), wdata_en.eq(value)]
        with m.Elif(self.wr_en):
            m.d.comb += [we_en.eq(1), widx_en.eq(self.wr_idx), wdata_en.eq(self.wr_data)]
        with m.If(self.en):
            m.d.comb += [we.eq(we_en), widx.eq(widx_en), wdata.eq(wdata_en)]
        with m.Elif(self.wr_en):
            m.d.comb += [we.eq(1), widx.eq(self.wr_idx), wdata.eq(self.wr_data)]
        with m.If(we):
            m.d.sync += acc[widx].eq(wdata)
        rd_q = replicas(m, self.rd_idx, self.RD_INDEX_COPIES, name="rd_idx_q")
        part = 32 // self.RD_INDEX_COPIES
        m.d.comb += self.rd_data.eq(Cat(Array(a[k * part:(k + 1) * part] for a in acc)[q] for k, q in enumerate(rd_q)))
        return m
