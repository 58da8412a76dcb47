"""BankPU: lane sums accumulate into the right accumulator, in order, across random stalls (`en` low);
SET tokens, direct writes and the (unforwarded) read all behave as the golden model says. Tokens keep the
PU's rule (a MAC that reads its accumulator enters ACC_GAP enabled cycles after any token into it), as
BankArray's issue stage does; the model applies each write when it lands, LATENCY enabled cycles in."""

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hw.bank_pu import BankPU
from hw.lane_reduce import LaneReduce
from pimhil.golden.fpbits import fp32_add
from pimhil.golden.mac import lane_sum
from pimhil.contract import PRESETS
from tb.support.seed import rngs
from tb.support.marks import sim_preset
from tb.support.vectors import bf16_operands, fp32_operands, pack_rows

NONE, MAC, SET = 0, 1, 2   # hw.bank_pu.PUOp


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.lanes = len(dut.w) // 16
        self.accs = 1 << len(dut.in_acc)     # widths from the DUT (accs is a power of two in presets)
        self.py_rng, self.rng = rngs(dut._log)
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self):
        d = self.dut
        for s in (d.en, d.in_op, d.in_acc, d.in_zero, d.in_value, d.w, d.x, d.rd_idx, d.wr_en, d.wr_idx,
                  d.wr_data):
            s.value = 0
        d.rst.value = 1
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0


@cocotb.test()
async def test_accumulate_with_stalls(dut):
    tb = TB(dut)
    await tb.reset()
    n = 20000
    r = tb.py_rng
    w = bf16_operands(tb.rng, (n, tb.lanes))
    x = bf16_operands(tb.rng, (n, tb.lanes))
    ls = lane_sum(w, x)
    ws, xs = pack_rows(w, 16), pack_rows(x, 16)
    values = fp32_operands(tb.rng, n)
    acc = np.zeros(tb.accs, np.uint32)
    pipe = [None] * BankPU.LATENCY          # tokens in the PU's stages, newest first
    mism = 0
    prev_rd = 0                           # the read index register's reset value
    for i in range(n):
        await RisingEdge(dut.clk)
        en = r.random() < 0.8
        # Dense and sparse stretches: direct writes need an adder with no token in it, which a dense stream
        # never leaves.
        op = r.choice([MAC, MAC, MAC, SET, NONE] if (i // 128) % 2 == 0 else [MAC, NONE, NONE, NONE, NONE, NONE])
        zero = r.random() < 0.2
        # Accumulators a reading MAC may not use yet: tokens fewer than ACC_GAP enabled cycles ahead.
        recent = {t[1] for t in pipe[:BankPU.ACC_GAP - 1] if t is not None and t[0] != NONE}
        free = [a for a in range(tb.accs) if a not in recent]
        if op == MAC and not zero and not free:
            zero = True
        idx = r.choice(free) if op == MAC and not zero else r.randrange(tb.accs)
        tok = (op, idx, zero, int(values[i]), int(ls[i]))
        # A direct write may not hit an accumulator between a token's read and its write. The PU reads a
        # token's accumulator a cycle before the token enters the adder (`acc_cur`): in an enabled cycle the
        # token whose lane sum is out next has read it already; in a stalled cycle that token still takes the
        # cycle's write. `adder` always includes the last stage, so no token lands in a cycle with a direct write.
        adder = pipe[LaneReduce.LATENCY - (1 if en else 0):]
        quiet = all(t is None or t[0] == NONE for t in adder)
        direct = quiet and r.random() < (0.1 if en else 0.4)
        rd = r.randrange(tb.accs)
        # A stalled cycle's direct write goes half the time into the accumulator of the MAC next into the adder,
        # which the PU has already read ahead (BankPU's `acc_cur`).
        held = pipe[LaneReduce.LATENCY - 1]
        if not en and held is not None and held[0] == MAC and not held[2] and r.random() < 0.5:
            rd = held[1]
        dut.en.value = int(en)
        dut.in_op.value, dut.in_acc.value, dut.in_zero.value, dut.in_value.value = tok[0], tok[1], int(tok[2]), tok[3]
        dut.w.value, dut.x.value = ws[i], xs[i]
        dut.wr_en.value = int(direct)
        dut.wr_idx.value, dut.wr_data.value = rd, int(values[n - 1 - i])
        dut.rd_idx.value = rd
        # Model this cycle: the oldest token takes effect if enabled; otherwise a direct write may.
        write = None
        if en and pipe[-1] is not None and pipe[-1][0] != NONE:
            t = pipe[-1]
            if t[0] == MAC:
                write = (t[1], int(fp32_add(0 if t[2] else acc[t[1]], t[4])))
            else:
                write = (t[1], t[3])
        elif direct:
            write = (rd, int(values[n - 1 - i]))
        await ReadOnly()
        # The read index is taken a cycle ahead; the value is the one before this cycle's write: no forwarding.
        read, prev_rd = prev_rd, rd
        expect_rd = int(acc[read])
        got = int(dut.rd_data.value)
        if got != expect_rd:
            mism += 1
            if mism < 5:
                dut._log.error("cycle %d: rd_data[%d] = %08x, expected %08x", i, read, got, expect_rd)
        if write:
            acc[write[0]] = write[1]
        if en:
            pipe = [tok] + pipe[:-1]
    assert mism == 0, f"{mism} accumulator reads differ from the model"


@pytest.mark.parametrize("lanes,accs", [sim_preset(PRESETS["sim"].lanes, 8), (PRESETS["board"].lanes, 8)])
def test_bank_pu(lanes, accs):
    from tb.support import runner

    config = f"bank_pu_l{lanes}_a{accs}"
    src = runner.amaranth_verilog(lambda: BankPU(lanes=lanes, accs=accs), "bank_pu", runner.BUILD / config)
    runner.run(toplevel="bank_pu", sources=[src], test_module="tb.bank_pu.test_bank_pu", config=config)
