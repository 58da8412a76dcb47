"""The host's end of the simulated 8N1 line for the sim server's `uart-phy` link: a USB-UART adapter whose rate
and break the client sets over RFC 2217 (pyserial's `rfc2217://`), as it would set a real port's.

The client's rate B (bit/s) is mapped onto simulated time through the device's nominal clock: one bit lasts
clk_hz / B device cycles, so a divisor the driver computes from CLK_HZ meets the rate it sets here exactly
as on a board. `max_baud` models an adapter or cable that cannot carry fast rates: above it the line runs
12 % slow, which garbles every byte in both directions (the device's and the host's framing both fail).
"""

from __future__ import annotations

from collections import deque

import cocotb
from cocotb.triggers import Event, FallingEdge, Timer

SLOW_FACTOR = 1.12          # how far off a rate above max_baud runs
# A break lasts at least this many byte times of the host's rate: the client's break on and off may reach the
# server in one read, and wall time does not map onto simulated time anyway.
BREAK_MIN_BYTES = 4


class HostLine:
    """Transmitter on the device's uart_rx, receiver on its uart_tx, at `baud` bit/s of the host. write()
    queues bytes, read() takes what arrived; `brk` holds the line low."""

    def __init__(self, dut, *, clk_hz: int, clk_ns: float, baud: int, max_baud: float = 0):
        self.dut = dut
        self.clk_hz, self.clk_ns, self.max_baud = clk_hz, clk_ns, max_baud
        self.txq: deque[int] = deque()
        self.rx = bytearray()
        self.framing_errors = 0
        self.sending = False
        self.brk = False
        self._break_req = False     # a break was asked for and has not been put on the line yet
        self._wake = Event()
        self.set_baud(baud)
        dut.uart_rx.value = 1
        cocotb.start_soon(self._transmit())
        cocotb.start_soon(self._receive())

    def set_baud(self, baud: int) -> None:
        eff = baud / SLOW_FACTOR if self.max_baud and baud > self.max_baud else baud
        self.baud = baud
        self.bit_ps = max(1, round(self.clk_hz / eff * self.clk_ns * 1000))

    def set_break(self, on: bool) -> None:
        self.brk = on
        self._break_req = self._break_req or on
        self._wake.set()

    def write(self, data: bytes) -> None:
        self.txq.extend(data)
        self._wake.set()

    def read(self) -> bytes:
        out = bytes(self.rx)
        self.rx.clear()
        return out

    def clear(self) -> None:
        self.txq.clear()
        self.rx.clear()

    @property
    def idle(self) -> bool:
        return not (self.txq or self.sending or self.brk or self._break_req)

    @property
    def byte_ps(self) -> int:
        return 10 * self.bit_ps

    async def _transmit(self):
        pin = self.dut.uart_rx
        while True:
            if self._break_req:
                pin.value = 0
                await Timer(BREAK_MIN_BYTES * self.byte_ps, "ps")
                while self.brk:
                    self._wake.clear()
                    await self._wake.wait()
                self._break_req = False
                continue
            if not self.txq:
                pin.value = 1
                self.sending = False
                self._wake.clear()
                await self._wake.wait()
                continue
            self.sending = True
            b = self.txq.popleft()
            for bit in (0, *((b >> i) & 1 for i in range(8)), 1):
                pin.value = bit
                await Timer(self.bit_ps, "ps")

    async def _receive(self):
        pin = self.dut.uart_tx
        while True:
            await FallingEdge(pin)
            t = self.bit_ps
            await Timer(t // 2, "ps")
            if int(pin.value):
                continue            # a glitch, not a start bit
            b = 0
            for i in range(8):
                await Timer(t, "ps")
                b |= int(pin.value) << i
            await Timer(t, "ps")
            if not int(pin.value):
                self.framing_errors += 1    # a real adapter flags and drops it
                continue
            self.rx.append(b)


class RFC2217Port:
    """What pyserial's rfc2217.PortManager drives: the settings of the adapter (rate, break, purge), sent on
    to the HostLine; `write` is the PortManager's way back to the client."""

    def __init__(self, line: HostLine, send):
        self.line = line
        self._send = send
        self.bytesize, self.parity, self.stopbits = 8, "N", 1
        self.xonxoff = self.rtscts = False
        self.dtr = self.rts = True
        self.cts = self.dsr = self.ri = self.cd = False
        self.name = "sim-uart-phy"
        self.rate_changes = 0

    @property
    def baudrate(self) -> int:
        return self.line.baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        if value <= 0:
            raise ValueError(f"baud rate {value}")
        if value != self.line.baud:
            self.rate_changes += 1
        self.line.set_baud(int(value))

    @property
    def break_condition(self) -> bool:
        return self.line.brk

    @break_condition.setter
    def break_condition(self, on: bool) -> None:
        self.line.set_break(bool(on))

    def reset_input_buffer(self) -> None:
        self.line.rx.clear()

    def reset_output_buffer(self) -> None:
        self.line.txq.clear()

    def write(self, data: bytes) -> None:
        self._send(data)
