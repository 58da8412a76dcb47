"""The driver test-suite: checks of the Device API that every target must pass, written once.

tests/test_driver.py runs them on the golden model and on sim servers (UART and PCIe); tb/driver runs them
in-process through the cocotb bridge. Each check takes a Device and a numpy Generator and asserts.
"""

from __future__ import annotations

import numpy as np
import pytest

from pimhil.contract import (BANK_BASE, ErrorCode, FrameStatus, HubError, HubOp, Command, Op, Reg, bank_stride,
                             preset)
from pimhil.device import Device
from pimhil.errors import DeviceError, DeviceMismatch
from pimhil.layout import gemv_plan
from pimhil.reference import attention_reference, gemv_reference
from pimhil.transport.golden import GoldenTransport


def check_identity(dev: Device, rng):
    p = dev.params
    assert dev.read_reg("MAGIC") == 0x50494D31
    assert dev.identify(expect=p) == p
    other = preset("sim" if p == preset("board") else "board")
    with pytest.raises(DeviceMismatch):
        dev.identify(expect=other)


def check_registers_by_name(dev: Device, rng):
    regs = dev.regs()
    assert regs["BANKS"] == dev.params.banks and regs["LANES"] == dev.params.lanes
    assert dev.read_reg("lanes") == dev.params.lanes
    with pytest.raises(KeyError, match="NOT_A_REG"):
        dev.read_reg("NOT_A_REG")


def check_memory_round_trip(dev: Device, rng, *, words: int | None = None):
    """words: instead of three rows of the first and last bank, the whole GB and 100 scratch words, that many
    words in every bank, the GB and the scratch memory (a slow target, e.g. the gate-level simulation)."""
    p = dev.params
    for bank in (0, p.banks - 1) if words is None else range(p.banks):
        bits = rng.integers(0, 1 << 16, 3 * p.row_words if words is None else words, dtype=np.uint16)
        dev.write_bank(bank, 1, bits)
        assert np.array_equal(dev.read_bank(bank, 1, bits.size), bits)
    gb = rng.integers(0, 1 << 16, p.gb_words if words is None else words, dtype=np.uint16)
    dev.write_gb(gb)
    assert np.array_equal(dev.read_gb(gb.size), gb)
    scratch = rng.integers(0, 1 << 32, 100 if words is None else words, dtype=np.uint64).astype(np.uint32)
    dev.write_words(0x10000 + 4 * 7, scratch)
    assert np.array_equal(dev.read_scratch(7, scratch.size), scratch)


def check_gemv_padded(dev: Device, rng, *, m: int | None = None, k: int | None = None):
    """m, k: another padded shape than (3 banks + 5, a row + 7), e.g. a smaller one for a slow target."""
    p = dev.params
    m, k = m or 3 * p.banks + 5, k or p.row_words + 7    # both dimensions padded
    w, x = rng.standard_normal((m, k)) * 0.1, rng.standard_normal(k)
    r = dev.gemv(w, x)
    assert r.out.shape == (m,) and r.tiles == 1
    assert np.array_equal(r.bits, gemv_reference(w, x, p))
    if r.cycles is not None:
        assert r.mac_cycles == gemv_plan(p, m, k).m_pad * gemv_plan(p, m, k).k_pad // (p.banks * p.lanes)
        assert 0 < r.utilization <= 1


def check_gemv_tiled(dev: Device, rng):
    p = dev.params
    chunks = p.rows // 3                                     # x takes `chunks` rows: only 2 groups per tile fit
    m, k = 3 * p.banks, chunks * p.row_words
    plan = gemv_plan(p, m, k)
    assert len(plan.tiles) >= 2
    w, x = rng.standard_normal((m, k)) * 0.05, rng.standard_normal(k)
    r = dev.gemv(w, x)
    assert r.tiles == len(plan.tiles)
    assert np.array_equal(r.bits, gemv_reference(w, x, p))


def check_attention(dev: Device, rng):
    p = dev.params
    t, d = 4 * p.banks, max(p.lanes, p.banks)
    q, k, v = rng.standard_normal(d), rng.standard_normal((t, d)), rng.standard_normal((t, d))
    r = dev.attention(q, k, v)
    assert np.array_equal(r.bits, attention_reference(q, k, v, p))
    with pytest.raises(ValueError, match="tokens"):
        dev.attention(q, k[:p.banks + 1], v[:p.banks + 1])


def check_refusals_then_queue_serves(dev: Device, rng):
    p = dev.params
    with pytest.raises(DeviceError) as e:
        dev.run([Command(HubOp.GEMV_TILE, row=0, col=0, count=1)])
    assert e.value.code == HubError.BAD_TILE and e.value.op == HubOp.GEMV_TILE
    with pytest.raises(DeviceError) as e:
        dev.run([Command(Op.MAC_ABK, row=p.rows, count=1)])
    assert e.value.code == ErrorCode.BAD_ROW
    assert dev.read_reg("ERROR_COUNT") >= 1
    w, x = rng.standard_normal((p.banks, p.row_words)), rng.standard_normal(p.row_words)
    assert np.array_equal(dev.gemv(w, x).bits, gemv_reference(w, x, p))


def check_bus_error(dev: Device, rng):
    p = dev.params
    beyond = BANK_BASE + p.banks * bank_stride(p)
    with pytest.raises(DeviceError) as e:
        dev.read_words(beyond, 2)
    assert e.value.code in (FrameStatus.BAD_ADDR, FrameStatus.BUS_ERROR)
    assert dev.read_reg(Reg.MAGIC) == 0x50494D31


def long_program(dev: Device, rng, n: int, rows: int = 2):
    """Run n random WR_SBK commands (more words than the queue holds) in one Device.run and compare the bank
    rows they wrote with the golden device's after the same program."""
    p = dev.params
    cmds = [Command(Op.WR_SBK, bank=int(rng.integers(p.banks)), row=int(rng.integers(rows)),
                    col=int(rng.integers(p.bursts_per_row)),
                    data=tuple(int(v) for v in rng.integers(0, 1 << 16, p.lanes)))
            for _ in range(n)]
    golden = Device(GoldenTransport(p))
    for d in (dev, golden):
        for b in range(p.banks):
            d.write_bank(b, 0, np.zeros(rows * p.row_words, np.uint16))
        d.run(cmds)
    for b in range(p.banks):
        assert np.array_equal(dev.read_bank(b, 0, rows * p.row_words), golden.read_bank(b, 0, rows * p.row_words))


def check_program_longer_than_the_queue(dev: Device, rng):
    p = dev.params
    words = len(Command(Op.WR_SBK).queue_words(p))
    long_program(dev, rng, p.cmdq_words // words + 1)         # the first program whose words overflow the queue
    long_program(dev, rng, 300)


CHECKS = [check_identity, check_registers_by_name, check_memory_round_trip, check_gemv_padded, check_gemv_tiled,
          check_attention, check_refusals_then_queue_serves, check_bus_error, check_program_longer_than_the_queue]
