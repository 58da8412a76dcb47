"""hw/fp32.leading_zeros, the count every round_pack starts with, against the count's definition."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.fp32 import leading_zeros


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 26, 28, 33, 48])
def test_leading_zeros_counts_like_its_definition(width):
    m = Module()
    value = Signal(width)
    lz = leading_zeros(m, value, name="lz")
    rng = random.Random(width)
    # Every value of the narrow widths; each single bit, each bit with all below it set, and random values of the
    # wide ones (the widths round_pack uses: 26, 28, 33 and 48).
    values = set(range(min(1 << width, 512)))
    values |= {1 << i for i in range(width)} | {(2 << i) - 1 for i in range(width)}
    values |= {rng.getrandbits(width) for _ in range(300)}
    failures = []

    async def bench(ctx):
        for x in sorted(values):
            ctx.set(value, x)
            expected = width - 1 if x == 0 else width - x.bit_length()
            if ctx.get(lz) != expected:
                failures.append((x, ctx.get(lz), expected))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not failures, f"width {width}: (value, got, expected) {failures[:5]}"
