"""The array's command checks in gateware (bank_array.command_error: the array's verdict and the sequencer's)
against contract.check_command, field values at and around every limit and at the top of each 16-bit field,
where the checks' narrow compares (_at_least, _sum_exceeds) take a different branch than near the limits."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.bank_array import cmd_layout, command_error
from pimhil.contract import (AF_SEGMENTS, PRESETS, Command, CommandError, DeviceParams, ErrorCode, Flag, Op,
                             check_command, cmd_fields, pack_fields)

# Limits of 1 (a one-burst row and GB), and the formal proofs' smallest device.
SMALL = DeviceParams(banks=8, lanes=4, rows=2, bursts_per_row=1, gb_words=4, accs=2, scratch_words=64,
                     score_words=8, cmdq_words=16)
SMALLEST = DeviceParams(banks=4, lanes=4, rows=1, bursts_per_row=2, gb_words=8, accs=1, scratch_words=64,
                        score_words=4, cmdq_words=16)


def _around(*limits, bits=16):
    top = (1 << bits) - 1
    values = {0, 1, top >> 1, (top >> 1) + 1, top - 1, top}
    for limit in limits:
        w = limit.bit_length()
        values |= {v for v in (limit - 2, limit - 1, limit, limit + 1, (1 << w) - 1, 1 << w) if 0 <= v <= top}
    return sorted(values)


def _commands(p, n, seed):
    rng = random.Random(seed)
    ops = list(Op) + [0x3F, 0x7F, 0xFF]
    counts = _around(p.bursts_per_row, p.gb_bursts)
    for _ in range(n):
        yield Command(rng.choice(ops), flags=rng.choice([0, int(Flag.ALL), int(Flag.READ), rng.randrange(256)]),
                      bank=rng.choice(_around(p.banks, bits=8)), acc=rng.choice(_around(p.accs, bits=8)),
                      row=rng.choice(_around(p.rows)), col=rng.choice(_around(p.bursts_per_row)),
                      count=rng.choice(counts), gb=rng.choice(_around(p.gb_bursts)),
                      imm=rng.choice([0, AF_SEGMENTS - 1, AF_SEGMENTS, 0xFFFF, 0xFFFFFFFF]))


def _expected(cmd, p):
    try:
        check_command(cmd, p)
    except CommandError as e:
        return int(e.code)
    return int(ErrorCode.NONE)


def _every_op_and_flags():
    """Every opcode (and a few unassigned ones) with every flags byte, the other fields legal for the board
    preset: the flags check is one membership test per flag bit, which random commands reach only in part."""
    for op in list(Op) + [0x3F, 0x7F, 0xFF]:
        for flags in range(256):
            yield Command(op, flags=flags, bank=0, acc=0, row=0, col=0, count=1, gb=0, imm=0)


@pytest.mark.parametrize("params", [PRESETS["board"], PRESETS["sim"], SMALL, SMALLEST],
                         ids=["board", "sim", "small", "smallest"])
def test_command_error_matches_contract(params):
    _check(params, list(_commands(params, 600, seed=params.banks * 1000 + params.rows)), every_code=True)


def test_flags_check_matches_contract():
    _check(PRESETS["board"], list(_every_op_and_flags()), every_code=False)


def _check(params, cmds, every_code):
    m = Module()
    c = Signal(cmd_layout(params))
    err = command_error(m, c, params)
    mismatches = []

    async def bench(ctx):
        for cmd in cmds:
            fields = {"op": int(cmd.op), "flags": cmd.flags, "bank": cmd.bank, "acc": cmd.acc, "row": cmd.row,
                      "col": cmd.col, "count": cmd.count, "gb": cmd.gb, "imm": cmd.imm}
            ctx.set(c.as_value(), pack_fields(cmd_fields(params), fields))
            got, want = ctx.get(err), _expected(cmd, params)
            if got != want:
                mismatches.append((cmd, got, want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not mismatches, f"{len(mismatches)} of {len(cmds)} differ, first: {mismatches[0]}"
    if every_code:
        codes = {_expected(cmd, params) for cmd in cmds}
        assert codes >= {int(e) for e in ErrorCode}, f"codes not reached: {set(map(int, ErrorCode)) - codes}"
