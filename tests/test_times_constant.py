"""hw/uart_link.times_constant: a product by a constant in shifts and adders, equal to the product."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.uart_link import times_constant
from pimhil.contract import UART_BREAK_BITS, Frame


@pytest.mark.parametrize("k", [1, 2, 3, 7, UART_BREAK_BITS, Frame.TIMEOUT_BYTES * 10, 0xFFFF])
def test_times_constant_is_the_product(k):
    x, y = Signal(16), Signal(33)
    m = Module()
    m.d.comb += y.eq(times_constant(x, k))
    rng = random.Random(k)
    values = [0, 1, 0x8000, 0xFFFF] + [rng.randrange(1 << 16) for _ in range(200)]
    wrong = []

    async def bench(ctx):
        for v in values:
            ctx.set(x, v)
            if ctx.get(y) != v * k:
                wrong.append((v, ctx.get(y)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"{k} x value: {wrong[:4]}"


@pytest.mark.parametrize("k", [0, -3, 2.0, True])
def test_times_constant_refuses_what_is_not_a_positive_int(k):
    with pytest.raises(ValueError, match=f"k must be a positive integer, not {k!r}"):
        times_constant(Signal(8), k)
