"""Slave model for the internal bus (hw/bus.py): a word memory with random answer latency and an error range."""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge


class BusSlaveModel:
    def __init__(self, dut, prefix: str, clk, *, rng: random.Random, error_from: int = 1 << 20,
                 read_only: frozenset = frozenset()):
        self.s = {n: getattr(dut, f"{prefix}__{n}") for n in ("valid", "we", "addr", "wdata", "ready", "rdata",
                                                              "err")}
        self.clk = clk
        self.rng = rng
        self.mem: dict[int, int] = {}
        self.error_from = error_from
        self.read_only = read_only
        self.accesses = 0
        self.s["ready"].value = 0
        cocotb.start_soon(self._run())

    def failing(self, addr, we):
        return addr >= self.error_from or (we and addr in self.read_only)

    async def _run(self):
        s = self.s
        while True:
            await RisingEdge(self.clk)
            s["ready"].value, s["err"].value = 0, 0
            await ReadOnly()
            if not int(s["valid"].value):
                continue
            addr, we, wdata = int(s["addr"].value), int(s["we"].value), int(s["wdata"].value)
            for _ in range(self.rng.choice([0, 0, 1, 3])):      # answer latency
                await RisingEdge(self.clk)
            await RisingEdge(self.clk)
            self.accesses += 1
            err = self.failing(addr, we)
            if we and not err:
                self.mem[addr] = wdata
            s["ready"].value, s["err"].value = 1, int(err)
            s["rdata"].value = 0 if (we or err) else self.mem.get(addr, 0)
