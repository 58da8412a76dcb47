"""One seed per test run, printed so that SEED=<n> reproduces it."""

import os
import random

import cocotb
import numpy as np


def rngs(log) -> tuple[random.Random, np.random.Generator]:
    """Generators seeded with this test's seed. cocotb derives it from the run's seed (COCOTB_RANDOM_SEED, which
    tb/support/runner.py sets from SEED or picks) and the test's name, so SEED takes the run's seed."""
    seed = int(cocotb.RANDOM_SEED)
    run_seed = os.environ.get("COCOTB_RANDOM_SEED", "?")
    log.info("random seed %d (test seed of run seed %s: rerun with SEED=%s to reproduce)", seed, run_seed, run_seed)
    return random.Random(seed), np.random.default_rng(seed)
