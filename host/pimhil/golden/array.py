"""Command-level model of the bank array: the state the gateware holds and what each command does to it.

Testbenches send the same Command list to the RTL and to this model and compare every response and, at the
end, the whole memory state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..contract import (AF_SEGMENTS, Command, CommandError, DeviceParams, ErrorCode, Flag, Op,
                        check_command)
from .activation import af_eval
from .fpbits import fp32_to_bf16
from .mac import accumulate, lane_sum


@dataclass(frozen=True)
class Response:
    op: int
    err: int
    data: int = 0


def pack_burst(words) -> int:
    return sum(int(v) << (16 * i) for i, v in enumerate(words))


def unpack_burst(word: int, lanes: int) -> np.ndarray:
    return np.array([(word >> (16 * i)) & 0xFFFF for i in range(lanes)], dtype=np.uint16)


def pack_results(values) -> int:
    return sum(int(v) << (32 * i) for i, v in enumerate(values))


class GoldenArray:
    """Bit-exact model of hw/bank_array.py."""

    def __init__(self, params: DeviceParams):
        self.p = params
        p = params
        self.banks = np.zeros((p.banks, p.bank_bursts, p.lanes), np.uint16)
        self.gb = np.zeros((p.gb_bursts, p.lanes), np.uint16)
        self.accs = np.zeros((p.banks, p.accs), np.uint32)
        self.lut_a = np.zeros(AF_SEGMENTS, np.uint32)
        self.lut_b = np.zeros(AF_SEGMENTS, np.uint32)

    def execute(self, cmd: Command) -> list[Response]:
        """Run one command; returns its response beats (errors are answered, never raised)."""
        try:
            check_command(cmd, self.p)
        except CommandError as e:
            return [Response(int(cmd.op), int(e.code))]
        p, op = self.p, Op(cmd.op)
        addr = cmd.row * p.bursts_per_row + cmd.col
        n = cmd.count
        if op == Op.WR_SBK:
            self.banks[cmd.bank, addr] = self._burst(cmd)
        elif op == Op.WR_ABK:
            self.banks[:, addr] = self._burst(cmd)
        elif op == Op.WR_GB:
            self.gb[cmd.gb] = self._burst(cmd)
        elif op == Op.RD_SBK:
            return [Response(op, 0, pack_burst(self.banks[cmd.bank, addr + k])) for k in range(n)]
        elif op == Op.RD_GB:
            return [Response(op, 0, pack_burst(self.gb[cmd.gb + k])) for k in range(n)]
        elif op == Op.WR_BIAS:
            if cmd.flags & Flag.ALL:
                self.accs[:, cmd.acc] = cmd.imm
            else:
                self.accs[cmd.bank, cmd.acc] = cmd.imm
        elif op in (Op.MAC_SBK, Op.MAC_ABK):
            banks = [cmd.bank] if op == Op.MAC_SBK else list(range(p.banks))
            w = self.banks[banks, addr:addr + n]                  # (nb, n, L)
            x = self.gb[cmd.gb:cmd.gb + n]                        # (n, L)
            start = np.zeros(len(banks), np.uint32) if cmd.flags & Flag.ZERO else self.accs[banks, cmd.acc]
            self.accs[banks, cmd.acc] = accumulate(start, lane_sum(w, x[None]))
            if cmd.flags & Flag.READ:
                return [Response(op, 0, self._results(cmd))]
        elif op == Op.RD_MAC:
            return [Response(op, 0, self._results(cmd))]
        elif op == Op.AF:
            self.accs[:, cmd.acc] = af_eval(self.accs[:, cmd.acc], self.lut_a, self.lut_b)
        elif op == Op.COPY_BKGB:
            self.gb[cmd.gb:cmd.gb + n] = self.banks[cmd.bank, addr:addr + n]
        elif op == Op.COPY_GBBK:
            self.banks[cmd.bank, addr:addr + n] = self.gb[cmd.gb:cmd.gb + n]
        elif op == Op.WR_AFLUT:
            self.lut_a[cmd.imm] = cmd.data[0] if len(cmd.data) > 0 else 0
            self.lut_b[cmd.imm] = cmd.data[1] if len(cmd.data) > 1 else 0
        elif op == Op.SYNC:
            return [Response(op, 0)]
        elif op == Op.NOP:
            pass
        else:  # pragma: no cover - check_command admits only the ops above
            raise AssertionError(f"unhandled op {op!r}")
        return []

    def run(self, cmds) -> list[Response]:
        out = []
        for c in cmds:
            out.extend(self.execute(c))
        return out

    def _results(self, cmd: Command) -> int:
        v = self.accs[:, cmd.acc]
        if cmd.flags & Flag.BF16:
            v = fp32_to_bf16(v).astype(np.uint32)
        return pack_results(v)

    def _burst(self, cmd: Command) -> np.ndarray:
        data = list(cmd.data) + [0] * (self.p.lanes - len(cmd.data))
        if len(data) != self.p.lanes:
            raise CommandError(ErrorCode.BAD_COUNT, f"burst of {len(cmd.data)} words, lanes={self.p.lanes}")
        return np.array(data, dtype=np.uint16)
