"""An 8N1 serial line on the device's `uart_rx`/`uart_tx` pins, and a pyserial-like port on it for the host driver.

`SerialLine` is the far end of a USB-serial adapter in simulated time: bytes written by the host go out on
`uart_rx` at the host's rate, bytes on `uart_tx` are sampled at the host's rate, and the rate is whatever the
host port is set to, so a host rate the device's divisor does not match garbles bytes both ways, as on a
bench. Bit times are clk_hz / baud cycles, kept fractional so that a 2 % rate error is a 2 % error here too.

`SimSerialPort` is what `pimhil.transport.uart.UartTransport(serial=...)` talks to from the driver's thread
(`cocotb.task.bridge`): each read resumes the simulation until bytes arrive or the read's share of simulated
time has passed.
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge

__all__ = ["RATE_CHANGE_S", "SerialLine", "SimSerialPort"]

RATE_CHANGE_S = 100e-6      # simulated seconds between a host rate change and the first byte at the new rate


class SerialLine:
    """dut: the device top (ports clk, uart_rx, uart_tx). clk_hz: the device clock the cycle count stands for."""

    def __init__(self, dut, *, clk_hz: int, baud: int):
        self.dut = dut
        self.clk_hz = clk_hz
        self.baud = baud
        self.tx_queue: deque[int] = deque()
        self.rx_bytes: deque[int] = deque()
        self.framing_errors = 0
        self.received = 0
        self._hold_until = 0                # no byte goes out before this cycle (a rate change in progress)
        self.cycle = 0
        self._tx_break_cycles = 0
        dut.uart_rx.value = 1
        cocotb.start_soon(self._count())
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._sample())

    def bit_cycles(self) -> float:
        return self.clk_hz / self.baud

    async def _count(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def _wait_until(self, cycle: float):
        n = int(round(cycle)) - self.cycle
        if n > 0:
            await ClockCycles(self.dut.clk, n)

    async def _drive(self):
        dut = self.dut
        while True:
            if self._tx_break_cycles:
                dut.uart_rx.value = 0
                await ClockCycles(dut.clk, self._tx_break_cycles)
                self._tx_break_cycles = 0
                dut.uart_rx.value = 1
                await ClockCycles(dut.clk, int(2 * self.bit_cycles()) + 1)
                continue
            if not self.tx_queue or self.cycle < self._hold_until:
                await RisingEdge(dut.clk)
                continue
            byte = self.tx_queue.popleft()
            t0, bit = float(self.cycle), self.bit_cycles()
            for i, level in enumerate([0] + [(byte >> k) & 1 for k in range(8)] + [1]):
                dut.uart_rx.value = level
                await self._wait_until(t0 + (i + 1) * bit)

    async def _sample(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.uart_tx)
            t0, bit = float(self.cycle), self.bit_cycles()
            await self._wait_until(t0 + 0.5 * bit)
            if int(dut.uart_tx.value):
                continue                                   # a glitch, not a start bit
            value = 0
            for k in range(8):
                await self._wait_until(t0 + (1.5 + k) * bit)
                value |= int(dut.uart_tx.value) << k
            await self._wait_until(t0 + 9.5 * bit)
            if int(dut.uart_tx.value):
                self.rx_bytes.append(value)
                self.received += 1
            else:
                self.framing_errors += 1                   # what a real adapter drops
                if not int(dut.uart_tx.value):
                    await First(RisingEdge(dut.uart_tx), ClockCycles(dut.clk, int(20 * bit)))

    def send_break(self, seconds: float) -> None:
        self._tx_break_cycles = max(1, int(seconds * self.clk_hz))

    def set_baud(self, baud: int) -> None:
        """A new host rate, in effect RATE_CHANGE_S of simulated time later: an adapter changes its rate by a
        USB control transfer (a millisecond or so), so the device's answer at the old rate has long ended when
        the first byte at the new rate leaves. Without it the host's next frame would start while the device
        still sends that answer's stop bit and has not yet switched."""
        self.baud = int(baud)
        self._hold_until = self.cycle + int(RATE_CHANGE_S * self.clk_hz)


class SimSerialPort:
    """The pyserial subset UartTransport uses, on a SerialLine, called from the driver's thread.

    Simulated time only passes inside calls: `read` runs the simulation for up to `timeout` seconds of
    simulated time scaled by `time_scale` (simulated seconds per wall second the driver believes in), or until
    `size` bytes are there.
    """

    def __init__(self, line: SerialLine, *, timeout: float = 0.05, time_scale: float = 1.0):
        from cocotb.task import resume

        self.line = line
        self.timeout = timeout
        self.time_scale = time_scale
        self.is_open = True
        self._run = resume(self._advance)
        self._break = resume(self._do_break)

    # pyserial's attributes and calls
    @property
    def baudrate(self) -> int:
        return self.line.baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self.line.set_baud(int(value))

    def write(self, data: bytes) -> int:
        self.line.tx_queue.extend(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        budget = self.timeout if self.timeout is not None else 1.0
        self._run(size, max(1, int(budget * self.time_scale * self.line.clk_hz)))
        out = bytearray()
        while self.line.rx_bytes and len(out) < size:
            out.append(self.line.rx_bytes.popleft())
        return bytes(out)

    def send_break(self, duration: float = 0.25) -> None:
        self._break(duration * self.time_scale)

    def reset_input_buffer(self) -> None:
        self.line.rx_bytes.clear()

    @property
    def in_waiting(self) -> int:
        return len(self.line.rx_bytes)

    def close(self) -> None:
        self.is_open = False

    # the simulation side
    async def _advance(self, size: int, max_cycles: int):
        clk, step, done = self.line.dut.clk, 64, 0
        while done < max_cycles and len(self.line.rx_bytes) < size:
            await ClockCycles(clk, step)
            done += step

    async def _do_break(self, seconds: float):
        self.line.send_break(seconds)
        await ClockCycles(self.line.dut.clk, self.line._tx_break_cycles + int(3 * self.line.bit_cycles()) + 1)
