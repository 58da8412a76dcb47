"""Where a testbench configuration runs. The board preset's configurations run in `make test`; the sim preset's
(16 banks x 16 lanes: its whole-device testbenches, and the blocks at its widths: 16 lanes, a 256-bit AXI port)
run in `make soak` and with `COVERAGE_SIM=1 make coverage` (marks `soak` and `sim_device`, pytest.ini): their
Verilator models are several times larger, and `make test` has ten minutes."""

import pytest

SIM_PRESET_MARKS = (pytest.mark.soak, pytest.mark.sim_device)


def sim_preset(*values):
    """A pytest.param of a configuration that exists for the sim preset."""
    return pytest.param(*values, marks=SIM_PRESET_MARKS)
