"""The UART link's rate: first contact at the reset rate, then the fastest rate both ends support, verified, with
a fallback that always leaves the device reachable (docs/uart_link.md, "Changing the rate").

    t = UartTransport("/dev/ttyUSB0")             # opens at contract.UART_RESET_BAUD
    dev = open_device(t)                          # identifies; a line break first if nothing answers
    res = raise_rate(dev)                         # 3 Mbaud if the device clock and the line allow it
    print(res.message)
    ...
    restore_reset_rate(dev)                       # leave the device where the next session expects it

The device side: a new UART_BAUD_DIV takes effect once its answer has been sent at the old rate; a divisor
the UART link wrote must be confirmed by a good frame within UART_CONFIRM_MS or the device goes back to the
reset divisor; a line break (UART_BREAK_BITS bit times low) restores the reset divisor at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .contract import (CSR_BASE, MAGIC, SCRATCH_BASE, UART_BREAK_BITS, UART_CONFIRM_MS, UART_MIN_DIV,
                       UART_RESET_BAUD, Reg, uart_reset_div)
from .device import Device
from .errors import DeviceMismatch, LinkError, LinkTimeout, PimError

# FT231X (ULX3S) and FT2232H top out at 3 Mbaud; the lower rates are the fallbacks an adapter is likely to do.
AUTO_RATES = (3_000_000, 1_000_000, 460_800)
# Largest |device rate - host rate| / host rate offered: 8N1 samples the stop bit 9.5 bits after the start
# edge, so both ends' errors together must stay well under half a bit over 10 bits.
RATE_TOLERANCE = 0.025
VERIFY_WORDS = 64           # scratch words written and read back at a new rate (scratch 0.. is overwritten)
BREAK_S = 0.05              # break length: far above UART_BREAK_BITS bit times at any divisor a host uses


class RateError(PimError):
    """The link cannot be brought to a working rate (the device no longer answers at any rate tried)."""


def divisor_for(clk_hz: int, baud: int) -> int | None:
    """The UART_BAUD_DIV (device clock cycles per bit) for `baud` bit/s on a `clk_hz` device, or None if no
    divisor in [UART_MIN_DIV, 65535] comes within RATE_TOLERANCE of it."""
    if baud <= 0:
        return None
    div = round(clk_hz / baud)
    if not UART_MIN_DIV <= div <= 0xFFFF:
        return None
    return div if abs(clk_hz / div - baud) / baud <= RATE_TOLERANCE else None


def max_baud(clk_hz: int) -> int:
    """The fastest rate a `clk_hz` device makes (divisor UART_MIN_DIV), bit/s."""
    return clk_hz // UART_MIN_DIV


@dataclass
class RateResult:
    """baud: the host rate in use (bit/s); div: the device's divisor; device_baud: clk_hz / div;
    attempts: (baud, outcome) per rate tried; message: one line for a person."""

    baud: int
    div: int
    device_baud: float
    attempts: list = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict:
        return {"baud": self.baud, "div": self.div, "device_baud": round(self.device_baud),
                "attempts": [list(a) for a in self.attempts], "message": self.message}


def open_device(transport, **device_kw) -> Device:
    """Device(transport, **device_kw), at the transport's rate. If the device does not answer and the port has
    a line, a line break brings the device back to its reset rate (a previous session may have left it
    faster) and the host port goes to UART_RESET_BAUD for a second try. Raises what Device raises."""
    try:
        return Device(transport, **device_kw)
    except (LinkTimeout, LinkError) as first:
        if not getattr(transport, "has_line", False):
            raise
        transport.set_line_rate(UART_RESET_BAUD)
        transport.send_break(BREAK_S)
        transport.resync(flush=False)
        try:
            return Device(transport, **device_kw)
        except (LinkTimeout, LinkError) as e:
            raise type(e)(f"{e} (also after a line break at {UART_RESET_BAUD} baud; first try: {first})") from e


def raise_rate(dev: Device, rates=AUTO_RATES, *, verify_words: int = VERIFY_WORDS, seed: int = 0,
               only_faster: bool = True) -> RateResult:
    """Bring the UART link to the first of `rates` (bit/s, fastest first) that the device's clock makes within
    RATE_TOLERANCE, that is faster than the current rate and that passes verification: MAGIC, UART_BAUD_DIV and
    `verify_words` random scratch words read back at the new rate. A rate that fails is undone (host back to
    UART_RESET_BAUD, a line break, then the device's probation as a last resort) and the next one is tried.
    only_faster=False also takes a rate at or below the current one. Transports without a line keep their
    rate. Raises RateError if the device answers at no rate any more."""
    t, p = dev.t, dev.params
    current = int(getattr(t, "baudrate", 0) or 0)
    cur_div = dev.read_reg(Reg.UART_BAUD_DIV)
    res = RateResult(current, cur_div, p.clk_hz / cur_div)
    if not getattr(t, "has_line", False):
        res.message = f"UART: {t.name} has no line rate; nothing to change"
        return res
    notes = []
    for baud in rates:
        div = divisor_for(p.clk_hz, baud)
        if div is None:
            res.attempts.append((baud, "not made by the device clock"))
            notes.append(f"{baud} baud: a {p.clk_hz} Hz device has no divisor within {RATE_TOLERANCE:.1%}")
            continue
        if only_faster and baud <= current:
            res.attempts.append((baud, "not faster"))
            continue
        try:
            _switch(dev, baud, div, verify_words, seed)
        except (LinkTimeout, LinkError, DeviceMismatch) as e:
            res.attempts.append((baud, f"failed: {type(e).__name__}"))
            notes.append(f"{baud} baud failed verification ({type(e).__name__}: {e}); back at "
                         f"{UART_RESET_BAUD} baud")
            _fall_back(dev)
            current, res.baud, res.div = UART_RESET_BAUD, UART_RESET_BAUD, uart_reset_div(p)
            res.device_baud = p.clk_hz / res.div
            continue
        res.attempts.append((baud, "ok"))
        res.baud, res.div, res.device_baud = baud, div, p.clk_hz / div
        break
    err = (res.device_baud - res.baud) / res.baud if res.baud else 0.0
    res.message = "; ".join([f"UART: {res.baud} baud (device divisor {res.div}: {res.device_baud:.0f} baud, "
                             f"{err:+.2%})"] + notes)
    return res


def set_rate(dev: Device, baud: int, **kw) -> RateResult:
    """Exactly `baud` bit/s (pimctl --baud N): as raise_rate with one rate, but also when it is slower than
    the current one. Raises ValueError if the device clock cannot make it, RateError if nothing answers."""
    if divisor_for(dev.params.clk_hz, baud) is None:
        raise ValueError(f"--baud {baud}: a {dev.params.clk_hz} Hz device makes no rate within "
                         f"{RATE_TOLERANCE:.1%} of it (divisor clk_hz/baud in {UART_MIN_DIV}..65535; at most "
                         f"{max_baud(dev.params.clk_hz)} baud)")
    return raise_rate(dev, (baud,), only_faster=False, **kw)


def restore_reset_rate(dev: Device) -> None:
    """Put device and host back at the reset rate (the device answers at its old rate, then switches).
    Raises the driver's link errors."""
    t = dev.t
    if not getattr(t, "has_line", False):
        return
    div = uart_reset_div(dev.params)
    if dev.read_reg(Reg.UART_BAUD_DIV) == div and t.baudrate == UART_RESET_BAUD:
        return
    dev.write_reg(Reg.UART_BAUD_DIV, div)
    t.set_line_rate(UART_RESET_BAUD)
    if dev.read_reg(Reg.MAGIC) != MAGIC:
        raise DeviceMismatch("MAGIC wrong after returning to the reset rate")


def _switch(dev: Device, baud: int, div: int, verify_words: int, seed: int) -> None:
    """Write the divisor (answered at the old rate), follow at the host, verify. Raises on any failure."""
    t = dev.t
    dev.write_reg(Reg.UART_BAUD_DIV, div)
    t.set_line_rate(baud)
    # The first good frame at the new rate ends the device's probation.
    magic = t.read_word(CSR_BASE + Reg.MAGIC)
    if magic != MAGIC:
        raise DeviceMismatch(f"MAGIC reads {magic:#010x} at {baud} baud")
    got = dev.read_reg(Reg.UART_BAUD_DIV)
    if got != div:
        raise DeviceMismatch(f"UART_BAUD_DIV reads {got}, {div} was written")
    n = min(verify_words, dev.params.scratch_words)
    words = np.random.default_rng(seed).integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    dev.write_words(SCRATCH_BASE, words)
    back = dev.read_words(SCRATCH_BASE, n)
    bad = int(np.count_nonzero(back != words))
    if bad:
        raise LinkError(f"{bad} of {n} scratch words differ after a round trip at {baud} baud")


def _fall_back(dev: Device) -> None:
    """After a failed switch: host at the reset rate, a line break, then wait out the device's probation.
    Raises RateError if the device does not answer at the reset rate within the probation and a margin."""
    t = dev.t
    t.discard_output()
    t.set_line_rate(UART_RESET_BAUD)
    try:
        t.send_break(BREAK_S)
        flush = False           # the break ended whatever frame the device was receiving
    except LinkError:
        flush = True            # no break on this port: the device's probation alone brings it back
    t.resync(flush=flush)
    # The probation ends UART_CONFIRM_MS after the switch on the device's clock (a simulated device's clock is
    # slower than the wall clock: the transport's own deadline covers that).
    deadline = time.monotonic() + 2 * UART_CONFIRM_MS / 1000 + t.timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if t.read_word(CSR_BASE + Reg.MAGIC) == MAGIC:
                return
        except (LinkTimeout, LinkError) as e:
            last = e
            t.discard_output()      # the failed request's own flush: useless at a rate nobody hears
            t.resync(flush=flush)
    raise RateError(f"the device does not answer at {UART_RESET_BAUD} baud after a failed rate change, a "
                    f"line break and {UART_CONFIRM_MS} ms of probation ({UART_BREAK_BITS}-bit break; last: "
                    f"{last}); press its reset button or power-cycle it")
