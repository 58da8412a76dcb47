"""A FakeUartDevice behind a line with a rate: the host port's `baudrate` and the device's divisor must agree
(within 2.5 %) or bytes are lost both ways, and the device's rate control follows docs/uart_link.md
("Changing the rate"): a new divisor applies after its answer, one the link wrote is on probation (in wall
time here) until a good frame, and a break restores the reset divisor. `max_baud` models an adapter that
garbles rates above it."""

from __future__ import annotations

import time

from pimhil.contract import UART_CONFIRM_MS, UART_RESET_BAUD, Reg, uart_reset_div

from .uart_device import FakeUartDevice


class FakeLinePort(FakeUartDevice):
    def __init__(self, params, *, max_baud: float = 0, device_div: int | None = None):
        super().__init__(params)
        self.baudrate = UART_RESET_BAUD
        self.max_baud = max_baud
        self.reset_div = uart_reset_div(params)
        self.div = self.reset_div if device_div is None else device_div
        self.dev.baud_div = self.div
        self.probation_until = None
        self.pending = None             # a written divisor waiting for its answer to leave
        self.breaks = 0
        self.reverts = 0

    def _line_ok(self) -> bool:
        if self.max_baud and self.baudrate > self.max_baud:
            return False
        dev_baud = self.params.clk_hz / self.div
        return abs(dev_baud - self.baudrate) / self.baudrate <= 0.025

    def _expire(self):
        if self.probation_until is not None and time.monotonic() > self.probation_until:
            self._revert()

    def _revert(self):
        self.div = self.dev.baud_div = self.reset_div
        self.pending = None
        self.probation_until = None
        self.reverts += 1

    def _apply(self):
        if self.pending is not None and not self.tx:
            self.div, self.pending = self.pending, None
            if self.div != self.reset_div:
                self.probation_until = time.monotonic() + UART_CONFIRM_MS / 1000

    def write(self, data):
        self._apply()
        self._expire()
        if not self._line_ok():
            return len(data)            # garbage at the device: no frame survives
        before = self.frames["ok"] + self.frames["bad"]
        n = super().write(data)
        if self.frames["ok"] + self.frames["bad"] != before:
            self.probation_until = None         # a good frame confirms the rate
        if self.dev.baud_div != self.div:       # the link wrote UART_BAUD_DIV: applies after the answer
            self.pending = self.dev.baud_div
        return n

    def read(self, n):
        self._expire()
        out = super().read(n) if self._line_ok() else b""
        self._apply()
        return out

    def send_break(self, duration=0.25):
        self.breaks += 1
        if self.div != self.reset_div:
            self._revert()

    def reg(self, r: Reg) -> int:
        return self.dev.read(r)
