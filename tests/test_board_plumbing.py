"""`make board-test` plumbing: skipped with the reason when no target is given, the very driver suite when one
is (the golden target stands in for a board), and the labgrid hook with a fake labgrid target whose serial
port is a fake line (tests/fakes/uart_line.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pimhil import uart_rate
from pimhil.contract import preset
from tests import driver_suite
from tests.board_labgrid import labgrid_target, transport_from_labgrid
from tests.fakes.uart_line import FakeLinePort

ROOT = Path(__file__).resolve().parents[1]


def run_board_test(**env):
    e = {k: v for k, v in os.environ.items() if k not in ("PIM_BOARD_TARGET", "PIM_LG_ENV")}
    e.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-n", "0", "-p", "no:cacheprovider",
                           "tests/test_board.py"], cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)


def test_without_a_target_every_check_is_skipped_with_the_reason():
    r = run_board_test()
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(driver_suite.CHECKS)} skipped" in r.stdout
    assert "no board target: make board-test TARGET=uart:/dev/ttyUSB0" in r.stdout


def test_a_target_runs_the_driver_suite():
    r = run_board_test(PIM_BOARD_TARGET="golden:board")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(driver_suite.CHECKS)} passed" in r.stdout


def test_a_failing_target_fails_the_run():
    r = run_board_test(PIM_BOARD_TARGET="uart:/dev/no-such-tty")
    assert r.returncode == 1 and "DeviceGone" in r.stdout


def test_make_board_test_without_target_skips():
    r = subprocess.run(["make", "-s", "board-test"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k not in ("TARGET", "LG_ENV")})
    assert r.returncode == 0 and "no board target" in r.stdout, r.stdout + r.stderr


class FakeDriver:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.cycles = 0

    def cycle(self):
        self.cycles += 1


class FakeLabgridTarget:
    """What transport_from_labgrid uses of a labgrid Target: get_driver(name)."""

    def __init__(self, port, power=True):
        self.drivers = {"SerialDriver": FakeDriver(serial=port)}
        if power:
            self.drivers["PowerProtocol"] = FakeDriver()

    def get_driver(self, name):
        try:
            return self.drivers[name]
        except KeyError:
            raise LookupError(f"no driver matching {name}") from None


@pytest.mark.parametrize("power", [True, False])
def test_labgrid_hook_with_a_fake_target(power):
    port = FakeLinePort(preset("board"))
    target = FakeLabgridTarget(port, power=power)
    with transport_from_labgrid(target, timeout=0.3) as t:
        dev = uart_rate.open_device(t)
        assert uart_rate.raise_rate(dev).baud == 3_000_000
        assert port.div == uart_rate.divisor_for(preset("board").clk_hz, 3_000_000)
        driver_suite.check_memory_round_trip(dev, __import__("numpy").random.default_rng(1))
    if power:
        assert target.drivers["PowerProtocol"].cycles == 1


def test_labgrid_not_installed_skips_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "labgrid", None)
    with pytest.raises(pytest.skip.Exception, match="labgrid is not installed"):
        labgrid_target("labgrid/ulx3s.yaml")
