"""One seed per test run, printed so that SEED=<n> reproduces it."""

import random

import cocotb
import numpy as np


def rngs(log) -> tuple[random.Random, np.random.Generator]:
    seed = int(cocotb.RANDOM_SEED)
    log.info("random seed %d (rerun with SEED=%d to reproduce)", seed, seed)
    return random.Random(seed), np.random.default_rng(seed)
