"""Whole-device testbenches, each run on both presets: `PRESETS` is their parametrisation. The board preset runs
in `make test`; the sim preset (16 banks x 16 lanes, a Verilator model several times larger) in `make soak` and
with `COVERAGE_SIM=1 make coverage` (marks `soak` and `sim_device`, pytest.ini), so that `make test` stays within
its ten minutes."""

import pytest

PRESETS = ["board", pytest.param("sim", marks=[pytest.mark.soak, pytest.mark.sim_device])]
