"""The driver suite (tests/driver_suite.py) on every target: the golden model, and the simulated device
(board preset) through a sim server over the UART link and over the PCIe path. The in-process cocotb bridge
runs the same checks in tb/driver/."""

import os
import zlib

import numpy as np
import pytest

from pimhil.device import Device
from pimhil.transport import open_target
from tests import driver_suite

TARGETS = ["golden:board", pytest.param("sim:board", marks=pytest.mark.slow),
           pytest.param("sim-pcie:board", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=TARGETS)
def device(request):
    # One sim server per target for the whole module: a server serves one client and exits when it leaves.
    with open_target(request.param, timeout=60.0) as t:
        yield Device(t, timeout=120.0)


@pytest.mark.parametrize("check", driver_suite.CHECKS, ids=lambda c: c.__name__[len("check_"):])
def test_driver(device, check, request):
    seed = int(os.environ.get("SEED", zlib.crc32(request.node.name.encode())))
    print(f"seed {seed} (SEED={seed} reproduces)")
    check(device, np.random.default_rng(seed))


@pytest.mark.parametrize("target", ["golden:sim", pytest.param("sim:board", marks=pytest.mark.slow)])
def test_ten_thousand_commands_in_one_program(target):
    """A program 100x longer than the queue: submit feeds it whole commands at a time as room frees up."""
    with open_target(target, timeout=60.0) as t:
        driver_suite.long_program(Device(t, timeout=300.0), np.random.default_rng(10_000), 10_000, rows=4)
