"""pimhil.uart_rate against a fake line (tests/fakes/uart_line.py): the rate is raised and verified, a rate the
line cannot carry falls back (break, reset rate) to the next one, a device left fast by an earlier session is
recovered with a break, and rates the device clock cannot make are refused. The real PHY in the loop:
tests/test_uart_phy_rate.py."""

import pytest

from pimhil import uart_rate
from pimhil.contract import UART_RESET_BAUD, preset
from pimhil.transport.uart import UartTransport
from tests.fakes.uart_line import FakeLinePort

P = preset("board")


def transport(port):
    t = UartTransport("fake-line", serial=port, timeout=0.3, retries=1)
    t.baudrate = port.baudrate
    return t


def test_divisors():
    assert uart_rate.divisor_for(50_000_000, 3_000_000) == 17            # 2941176 baud, -2.0 %
    assert uart_rate.divisor_for(100_000_000, 3_000_000) == 33
    assert uart_rate.divisor_for(50_000_000, 20_000_000) is None         # below UART_MIN_DIV
    assert uart_rate.divisor_for(50_000_000, 2_700_000) is None          # 18.5: 2.7 % off either way
    assert uart_rate.divisor_for(50_000_000, 0) is None


def test_raises_to_3_mbaud_and_back():
    port = FakeLinePort(P)
    t = transport(port)
    dev = uart_rate.open_device(t)
    res = uart_rate.raise_rate(dev)
    div = uart_rate.divisor_for(P.clk_hz, 3_000_000)
    assert (res.baud, res.div) == (3_000_000, div) and port.div == div and port.baudrate == 3_000_000
    assert res.attempts == [(3_000_000, "ok")] and "3000000 baud" in res.message
    assert port.probation_until is None          # confirmed by the verification frames
    uart_rate.restore_reset_rate(dev)
    assert port.div == port.reset_div and port.baudrate == UART_RESET_BAUD and port.breaks == 0


def test_a_rate_the_line_cannot_carry_falls_back_to_the_next():
    port = FakeLinePort(P, max_baud=1_500_000)
    dev = uart_rate.open_device(transport(port))
    res = uart_rate.raise_rate(dev)
    assert res.attempts[0][0] == 3_000_000 and res.attempts[0][1].startswith("failed")
    assert res.attempts[1] == (1_000_000, "ok") and res.baud == 1_000_000
    assert port.div == uart_rate.divisor_for(P.clk_hz, 1_000_000)
    assert "3000000 baud failed verification" in res.message and f"back at {UART_RESET_BAUD}" in res.message
    assert port.breaks == 1 and port.reverts == 1
    assert dev.read_reg("MAGIC") == 0x50494D31


def test_no_rate_works_leaves_the_reset_rate():
    port = FakeLinePort(P, max_baud=200_000)
    dev = uart_rate.open_device(transport(port))
    res = uart_rate.raise_rate(dev)
    assert [a[1].split(":")[0] for a in res.attempts] == ["failed"] * 3
    assert res.baud == UART_RESET_BAUD and port.div == port.reset_div
    assert dev.read_reg("UART_BAUD_DIV") == port.reset_div


def test_a_device_left_fast_is_recovered_with_a_break():
    port = FakeLinePort(P, device_div=uart_rate.divisor_for(P.clk_hz, 3_000_000))   # a session ended at 3 Mbaud
    dev = uart_rate.open_device(transport(port))
    assert port.breaks == 1 and dev.params == P


def test_exact_rate_and_refusals():
    port = FakeLinePort(P)
    dev = uart_rate.open_device(transport(port))
    res = uart_rate.set_rate(dev, 460_800)
    assert res.baud == 460_800 and port.div == uart_rate.divisor_for(P.clk_hz, 460_800)
    res = uart_rate.set_rate(dev, UART_RESET_BAUD)        # slower than the current rate: still done
    assert res.baud == UART_RESET_BAUD and port.div == port.reset_div
    with pytest.raises(ValueError, match=f"at most {uart_rate.max_baud(P.clk_hz)} baud"):
        uart_rate.set_rate(dev, 4 * uart_rate.max_baud(P.clk_hz))


def test_a_transport_without_a_line_keeps_its_rate():
    from pimhil.device import Device
    from pimhil.transport.golden import GoldenTransport

    res = uart_rate.raise_rate(Device(GoldenTransport(P)))
    assert res.attempts == [] and "no line rate" in res.message
