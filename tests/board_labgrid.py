"""labgrid plumbing for the board test (tests/test_board.py): the same driver suite through labgrid's serial and
power drivers. labgrid is optional; without it the test skips with the reason."""

from __future__ import annotations

import pytest

from pimhil.transport.uart import UartTransport


def labgrid_target(env_path: str, name: str = "main"):
    """The labgrid Target `name` of the environment file; skips the test if labgrid is not installed."""
    try:
        from labgrid import Environment
    except ImportError:
        pytest.skip(f"labgrid is not installed (pip install labgrid) for the environment {env_path}")
    return Environment(env_path).get_target(name)


def transport_from_labgrid(target, *, power_cycle: bool = True, timeout: float = 2.0) -> UartTransport:
    """A UartTransport on the pyserial port of `target`'s SerialDriver (a local tty, or RFC 2217 to ser2net),
    after a power cycle through its PowerProtocol driver when it has one and `power_cycle` is set.
    Raises what labgrid raises for a target it cannot activate."""
    if power_cycle:
        try:
            power = target.get_driver("PowerProtocol")
        except (LookupError, NameError, AttributeError):
            power = None                        # no power driver: the board keeps running
        if power is not None:
            power.cycle()
    ser = target.get_driver("SerialDriver").serial
    t = UartTransport(f"labgrid:{getattr(ser, 'port', '?')}", serial=ser, timeout=timeout)
    t.baudrate = int(getattr(ser, "baudrate", t.baudrate))
    return t
