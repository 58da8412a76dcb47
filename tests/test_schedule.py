"""pimhil.schedule.interleave_macs: the burst-by-burst MAC order gives the same results bit for bit, keeps
every accumulator's bursts in order, and rotates over accumulators."""

import numpy as np
import pytest

from pimhil.contract import Command, Flag, Op, preset
from pimhil.golden import GoldenArray
from pimhil.schedule import interleave_macs

P = preset("board")


def _loaded(seed):
    rng = np.random.default_rng(seed)
    g = GoldenArray(P)
    # Random BF16 patterns with modest exponents: sums that round at every step, nothing overflows.
    g.banks[:] = (rng.integers(0x3800, 0x4000, g.banks.shape) | (rng.integers(0, 2, g.banks.shape) << 15))
    g.gb[:] = rng.integers(0x3800, 0x4000, g.gb.shape)
    return g


def _same(a, b):
    """Both command lists answer the same beats and leave the same accumulators."""
    ga, gb = _loaded(1), _loaded(1)
    beats_a = [(r.op, r.err, r.data) for c in a for r in ga.execute(c)]
    beats_b = [(r.op, r.err, r.data) for c in b for r in gb.execute(c)]
    return beats_a == beats_b and np.array_equal(ga.accs, gb.accs)


def test_gemv_order_bit_exact():
    cmds = [Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, acc=a, row=a, count=P.bursts_per_row)
            for a in range(P.accs)]
    split = interleave_macs(cmds)
    assert len(split) == P.accs * P.bursts_per_row and all(c.count == 1 for c in split)
    # Consecutive bursts rotate over all accumulators.
    assert [c.acc for c in split[:2 * P.accs]] == list(range(P.accs)) * 2
    assert _same(split, cmds)


def test_chunks_and_flags():
    # Two chunks per accumulator (ZERO only on the first, READ only on the last), BF16 kept, GB offsets.
    cmds = []
    for chunk in range(2):
        flags = (Flag.ZERO if chunk == 0 else 0) | (Flag.READ | Flag.BF16 if chunk == 1 else 0)
        cmds += [Command(Op.MAC_ABK, flags=flags, acc=a, row=4 * a + chunk, col=3, count=5, gb=7) for a in range(3)]
    split = interleave_macs(cmds)
    assert _same(split, cmds)
    first = split[0]
    assert (first.col, first.gb, first.flags) == (3, 7, int(Flag.ZERO))
    reads = [c for c in split if c.flags & Flag.READ]
    assert len(reads) == 3 and all(c.flags & Flag.BF16 and c.col == 7 and c.gb == 11 for c in reads)


def test_run_breaks_at_repeated_accumulator_and_other_ops():
    # Slot i into accumulator i % 4: the fifth command starts a new run, so accumulator 0 is never mixed.
    cmds = [Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, acc=i % 4, row=i, count=3, imm=i) for i in range(6)]
    cmds.insert(3, Command(Op.WR_BIAS, acc=5, imm=0x3F800000))
    split = interleave_macs(cmds)
    assert _same(split, cmds)
    ops = [(c.op, c.acc) for c in split]
    bias = ops.index((Op.WR_BIAS, 5))
    assert bias == 9                          # three commands of three bursts, then the bias in place
    assert {a for _, a in ops[:bias]} == {0, 1, 2}


def test_single_bank_macs():
    # One accumulator index in different banks: a READ answers with that index of every bank, so the
    # commands stay whole; different indices rotate.
    same = [Command(Op.MAC_SBK, flags=Flag.ZERO | Flag.READ, bank=b, acc=0, row=b, count=4) for b in range(P.banks)]
    assert interleave_macs(same) == [c for c in interleave_macs(same) if c.count == 1]
    assert [c.bank for c in interleave_macs(same)[:4]] == [0] * 4
    assert _same(interleave_macs(same), same)
    rotating = [Command(Op.MAC_SBK, flags=Flag.ZERO | Flag.READ, bank=b, acc=b, row=b, count=4) for b in range(P.banks)]
    assert [c.bank for c in interleave_macs(rotating)[:P.banks]] == list(range(P.banks))
    assert _same(interleave_macs(rotating), rotating)


def test_count_zero_refused():
    with pytest.raises(ValueError, match="count 0"):
        interleave_macs([Command(Op.MAC_ABK, count=0)])
