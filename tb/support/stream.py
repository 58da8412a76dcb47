"""valid/ready stream models for cocotb (Amaranth lib.stream ports appear as <name>__valid/ready/payload).

The source wakes Python only at ready edges while a long command is in progress, and the sink only at valid
edges while idle, so long MAC streams run at Verilator speed instead of one Python wake per cycle.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, ReadOnly, RisingEdge


class StreamSource:
    """Drives `<prefix>__valid` and `<prefix>__payload`; items are integers in the payload's bit layout."""

    def __init__(self, dut, prefix: str, clk):
        self.clk = clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.width = len(self.payload)
        self.queue: deque[int] = deque()
        self.sent = 0
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, word: int) -> None:
        if not 0 <= word < (1 << self.width):
            raise ValueError(f"payload {word:#x} does not fit the port's {self.width} bits")
        self.queue.append(word)
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def _run(self):
        while True:
            if not self.queue:
                self.valid.value = 0
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                await RisingEdge(self.clk)          # drive only right after a clock edge
            self.payload.value = self.queue[0]
            self.valid.value = 1
            await ReadOnly()
            while not int(self.ready.value):
                await RisingEdge(self.ready)
                await ReadOnly()
            await RisingEdge(self.clk)              # the transfer happens at this edge
            self.queue.popleft()
            self.sent += 1


class StreamSink:
    """Drives `<prefix>__ready` (always high, or random back-pressure) and collects payload integers."""

    def __init__(self, dut, prefix: str, clk, *, backpressure: float = 0.0, rng: random.Random | None = None):
        self.clk = clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.items: deque[int] = deque()
        self.backpressure = backpressure
        self.rng = rng or random.Random(0)
        self._got = Event()
        self.ready.value = 1
        self._task = cocotb.start_soon(self._run())

    async def recv(self) -> int:
        while not self.items:
            self._got.clear()
            await self._got.wait()
        return self.items.popleft()

    async def _run(self):
        while True:
            ready = self.rng.random() >= self.backpressure if self.backpressure else True
            self.ready.value = int(ready)
            await ReadOnly()
            if int(self.valid.value) and ready:
                self.items.append(int(self.payload.value))
                self._got.set()
            elif not int(self.valid.value) and not self.backpressure:
                await RisingEdge(self.valid)
                continue
            await RisingEdge(self.clk)


class PulseMonitor:
    """Collects `payload` in every cycle `valid` is high: a port without back-pressure (items are integers in the
    payload's bit layout). Wakes at valid's rising edges while it is low, so idle stretches cost nothing."""

    def __init__(self, valid, payload, clk):
        self.clk, self.valid, self.payload = clk, valid, payload
        self.items: deque[int] = deque()
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await ReadOnly()
            if not int(self.valid.value):
                await RisingEdge(self.valid)
                await ReadOnly()
            self.items.append(int(self.payload.value))
            await RisingEdge(self.clk)
