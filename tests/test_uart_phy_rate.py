"""The UART rate switch with the 8N1 PHY in the loop (sim server `uart-phy`, RFC 2217: the driver sets its own
simulated line rate and sends real breaks): first contact at the reset rate (115200 baud, divisor 651 on the
board preset's 75 MHz), then 3 Mbaud (divisor 25) and bit-exact GEMV and attention over it; a line that
cannot carry 3 Mbaud falls back (break, reset rate) to 1 Mbaud; a divisor nobody confirms goes back by itself."""

import time

import numpy as np
import pytest

from pimhil import uart_rate
from pimhil.contract import CSR_BASE, MAGIC, UART_RESET_BAUD, Reg, preset, uart_reset_div
from pimhil.errors import LinkError, LinkTimeout
from pimhil.transport import open_target
from tests import driver_suite

pytestmark = pytest.mark.slow

# The board preset's divisors, written out: reset (115200 baud), 3 Mbaud, 1 Mbaud at its 75 MHz.
RESET_DIV, DIV_3M, DIV_1M = 651, 25, 75
assert preset("board").clk_hz == 75_000_000, "the divisors above are the board preset's at 75 MHz"


def test_3_mbaud_gemv_and_attention_bit_exact():
    with open_target("sim-phy:board", timeout=60.0, baud_div=0) as t:
        assert t.baudrate == UART_RESET_BAUD
        dev = uart_rate.open_device(t, timeout=120.0)
        assert dev.read_reg(Reg.UART_BAUD_DIV) == uart_reset_div(dev.params) == RESET_DIV
        res = uart_rate.raise_rate(dev)
        assert (res.baud, res.div, res.attempts) == (3_000_000, DIV_3M, [(3_000_000, "ok")]), res
        rng = np.random.default_rng(3)
        driver_suite.check_gemv_padded(dev, rng)
        driver_suite.check_attention(dev, rng)
        assert dev.read_reg(Reg.UART_BAUD_DIV) == DIV_3M
        assert dev.read_reg(Reg.UART_BAUD_REVERTS) == 0
        assert dev.read_reg(Reg.UART_FRAMING_ERRORS) == 0 and dev.read_reg(Reg.UART_CRC_ERRORS) == 0
        uart_rate.restore_reset_rate(dev)
        assert dev.read_reg(Reg.UART_BAUD_DIV) == RESET_DIV


@pytest.mark.soak
def test_a_line_that_cannot_carry_3_mbaud_falls_back():
    with open_target("sim-phy:board", timeout=20.0, baud_div=0, line_max_baud=1_500_000) as t:
        dev = uart_rate.open_device(t, timeout=120.0)
        res = uart_rate.raise_rate(dev)
        assert res.attempts[0][0] == 3_000_000 and res.attempts[0][1].startswith("failed"), res
        assert res.attempts[1] == (1_000_000, "ok") and (res.baud, res.div) == (1_000_000, DIV_1M)
        assert "3000000 baud failed verification" in res.message and "back at 115200 baud" in res.message
        assert dev.read_reg(Reg.UART_BAUD_REVERTS) == 1          # the break took the device back
        words = np.arange(200, dtype=np.uint32) * 0x01010101
        dev.write_words(0x10000, words)
        assert np.array_equal(dev.read_scratch(0, 200), words)


@pytest.mark.soak
def test_an_unconfirmed_divisor_goes_back_by_itself():
    """No break: the host writes a divisor, stays at the reset rate, and waits; the device's probation ends
    with the reset divisor and the host is answered again."""
    with open_target("sim-phy:board", timeout=20.0, baud_div=0) as t:
        dev = uart_rate.open_device(t)
        dev.write_reg(Reg.UART_BAUD_DIV, DIV_3M)      # answered at 115200; the device then runs at 3 Mbaud
        t.retries = 0
        t0 = time.monotonic()
        answered = False
        while not answered and time.monotonic() - t0 < 600:
            try:
                answered = t.read_word(CSR_BASE + Reg.MAGIC) == MAGIC
            except (LinkTimeout, LinkError):    # the device is still on probation at another rate
                # The failed request's flush is still queued at 115200 baud: drop it, or the simulated line
                # spends millions of cycles on zeros before the next probe.
                t.discard_output()
                t.resync(flush=False)
        assert answered, "the device never came back to the reset rate"
        assert dev.read_reg(Reg.UART_BAUD_REVERTS) == 1 and dev.read_reg(Reg.UART_BAUD_DIV) == RESET_DIV
