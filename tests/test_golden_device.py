"""GoldenDevice (the register-level golden model): bus errors, queue, refusals, windows, tiles."""

import numpy as np
import pytest

from pimhil.contract import (CMDQ_BASE, CONTROL_ABORT, CONTROL_CLEAR_ERROR, GB_BASE, MAGIC, PRESETS, SCRATCH_BASE,
                             STATUS_BUSY, STATUS_DONE, STATUS_ERROR, STATUS_PARTIAL, STATUS_QUEUE_EMPTY, Command,
                             ErrorCode, Flag, HubError, HubOp, Op, Reg, bank_address)
from pimhil.golden import bf16_to_bits, f32_to_bits, gemv
from pimhil.golden.attention import attention
from pimhil.golden.device import BusError, GoldenDevice

P = PRESETS["board"]


def push(dev, cmd):
    for w in cmd.queue_words(P):
        dev.write(CMDQ_BASE, w)


def test_identity_and_bus_errors():
    d = GoldenDevice(P)
    assert d.read(Reg.MAGIC) == MAGIC and d.read(Reg.BANKS) == P.banks
    for bad in (0x2, 0x100, CMDQ_BASE, 0x00800000):
        with pytest.raises(BusError):
            d.read(bad)
    with pytest.raises(BusError):
        d.write(Reg.MAGIC, 0)
    assert d.read(Reg.BUS_ERRORS) == 5 and d.read(Reg.BUS_ERROR_ADDR) == Reg.MAGIC


def test_commands_wait_for_all_their_words():
    d = GoldenDevice(P)
    words = Command(Op.WR_GB, gb=1, data=tuple(range(P.lanes))).queue_words(P)
    for w in words[:-1]:
        d.write(CMDQ_BASE, w)
    # The sequencer holds the words it has taken; the queue itself is empty.
    assert d.read(Reg.CMDQ_LEVEL) == 0
    assert d.read(Reg.STATUS) == STATUS_BUSY | STATUS_QUEUE_EMPTY | STATUS_PARTIAL
    d.write(CMDQ_BASE, words[-1])
    assert d.read(GB_BASE + 2 * P.lanes) == 0x00010000 and d.read(Reg.STATUS) == STATUS_DONE | STATUS_QUEUE_EMPTY


def test_window_served_and_abort_drops_a_partial_command():
    d = GoldenDevice(P)
    words = Command(Op.WR_GB, gb=0, data=(7,) * P.lanes).queue_words(P)
    for w in words[:2]:
        d.write(CMDQ_BASE, w)
    for i in range(P.lanes // 2):                          # window access while the command is incomplete
        d.write(GB_BASE + 4 * i, 0x00050004)
    assert d.read(GB_BASE) == 0x00050004
    d.write(Reg.CONTROL, CONTROL_ABORT)
    assert d.read(Reg.STATUS) == STATUS_DONE | STATUS_QUEUE_EMPTY
    for w in words:                                        # a whole command after the abort runs as sent
        d.write(CMDQ_BASE, w)
    assert d.read(GB_BASE) == 0x00070007


def test_refusal_latches_drains_and_recovers():
    d = GoldenDevice(P)
    push(d, Command(Op.RD_MAC, acc=P.accs, imm=0))
    push(d, Command(Op.WR_BIAS, flags=Flag.ALL, acc=0, imm=0x3F800000))     # dropped while latched
    assert d.read(Reg.STATUS) & STATUS_ERROR and d.read(Reg.ERROR_CODE) == ErrorCode.BAD_ACC
    d.write(Reg.CONTROL, CONTROL_CLEAR_ERROR)
    push(d, Command(Op.RD_MAC, acc=0, imm=0))
    assert d.read(SCRATCH_BASE) == 0                                        # the bias never happened
    push(d, Command(HubOp.GEMV_TILE, col=0, count=1))
    assert d.read(Reg.ERROR_CODE) == HubError.BAD_TILE and d.read(Reg.ERROR_COUNT) == 2


def test_partial_burst_is_dropped():
    d = GoldenDevice(P)
    d.write(bank_address(P, 0, 0), 0x11111111)
    d.write(bank_address(P, 0, 1), 0x22222222)             # another burst: the first, partial, is dropped
    assert d.read(bank_address(P, 0, 0)) == 0 and d.read(Reg.BUS_ERRORS) == 1


def test_tiles_match_the_math_functions():
    rng = np.random.default_rng(0)
    d = GoldenDevice(P)
    m, k = 2 * P.banks, 2 * P.row_words
    w, x = bf16_to_bits(rng.standard_normal((m, k))), bf16_to_bits(rng.standard_normal(k))
    for i in range(m):
        for c in range(2):
            d.array.banks[i % P.banks, (10 + (i // P.banks) * 2 + c) * P.bursts_per_row:][:P.bursts_per_row] = \
                w[i, c * P.row_words:(c + 1) * P.row_words].reshape(-1, P.lanes)
    d.array.banks[0, 20 * P.bursts_per_row:22 * P.bursts_per_row] = x.reshape(-1, P.lanes)
    push(d, Command(HubOp.GEMV_TILE, row=10, col=2, count=2, bank=0, gb=20, imm=0))
    assert np.array_equal(d.scratch[:m], gemv(w, x, lanes=P.lanes))
    T, dim = 64, 4 * P.lanes
    q, kk, vv = (bf16_to_bits(rng.standard_normal(s)) for s in (dim, (T, dim), (T, dim)))
    dl, kpr = dim // P.lanes, P.bursts_per_row // (dim // P.lanes)
    for j in range(T):
        s = j // P.banks
        base = (s // kpr) * P.bursts_per_row + (s % kpr) * dl
        d.array.banks[j % P.banks, base:base + dl] = kk[j].reshape(-1, P.lanes)
    for i in range(dim):
        base = (30 + i // P.banks) * P.bursts_per_row
        d.array.banks[i % P.banks, base:base + T // P.lanes] = vv[:, i].reshape(-1, P.lanes)
    d.array.gb[:dl] = q.reshape(-1, P.lanes)
    scale = int(f32_to_bits(np.float32(0.5)))
    push(d, Command(HubOp.ATTN_TILE, row=0, col=30, count=T, acc=dl, gb=100, imm=scale))
    assert d.read(Reg.ERROR_CODE) == 0
    assert np.array_equal(d.scratch[100:100 + dim], attention(q, kk, vv, scale, P)["out"])
