"""The driver suite CI runs against the simulation (tests/driver_suite.py), against a board:

    make board-test TARGET=uart:/dev/ttyUSB0        # ULX3S: first contact at 115200 baud, then the fastest rate
    make board-test TARGET=xdma:/dev/xdma0          # NiteFury / LiteFury with the XDMA driver
    make board-test LG_ENV=labgrid/ulx3s.yaml       # through labgrid's serial and power drivers

Without a target every check is skipped with the reason. Any pimctl target works (golden:board and sim-phy:board
prove the plumbing here: tests/test_board_plumbing.py)."""

import os
import zlib

import numpy as np
import pytest

from pimhil import uart_rate
from pimhil.transport import open_target
from tests import driver_suite

TARGET = os.environ.get("PIM_BOARD_TARGET", "")
LG_ENV = os.environ.get("PIM_LG_ENV", "")
NO_TARGET = ("no board target: make board-test TARGET=uart:/dev/ttyUSB0 (or xdma:/dev/xdma0, or "
             "LG_ENV=labgrid/ulx3s.yaml)")


@pytest.fixture(scope="module")
def board():
    """(Device, uart rate result or None) for the board under test; one connection for the whole suite."""
    if LG_ENV:
        from tests.board_labgrid import labgrid_target, transport_from_labgrid

        t = transport_from_labgrid(labgrid_target(LG_ENV))
    elif TARGET:
        t = open_target(TARGET, timeout=float(os.environ.get("PIM_BOARD_TIMEOUT", "10")))
    else:
        pytest.skip(NO_TARGET)
    with t:
        dev = uart_rate.open_device(t, timeout=120.0)
        rate = None
        if getattr(t, "has_line", False):
            rate = uart_rate.raise_rate(dev)
            print(rate.message)
        yield dev, rate
        if rate is not None:
            uart_rate.restore_reset_rate(dev)


@pytest.mark.parametrize("check", driver_suite.CHECKS, ids=lambda c: c.__name__[len("check_"):])
def test_board(board, check, request):
    seed = int(os.environ.get("SEED", zlib.crc32(request.node.name.encode())))
    print(f"seed {seed} (SEED={seed} reproduces)")
    check(board[0], np.random.default_rng(seed))
