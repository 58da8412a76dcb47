"""hw/narrow_compare.py against Python's compares, exhaustively on narrow operands and every limit that fits."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.narrow_compare import at_least, in_set, sum_exceeds


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 5, 8, 13, 31, 32, 63])
def test_against_python(limit):
    m = Module()
    a, b = Signal(6), Signal(5)
    ge, over = Signal(), Signal()
    m.d.comb += [ge.eq(at_least(a, limit)), over.eq(sum_exceeds(a, b, limit))]
    wrong = []

    async def bench(ctx):
        for x in range(64):
            for y in range(32):
                ctx.set(a, x)
                ctx.set(b, y)
                if ctx.get(ge) != (x >= limit) or ctx.get(over) != (x + y > limit):
                    wrong.append((x, y, ctx.get(ge), ctx.get(over)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"limit {limit}: {len(wrong)} wrong, first (a, b, >=, +>) {wrong[0]}"


@pytest.mark.parametrize("limit", [-1, 2.0, True, None])
def test_limit_must_be_a_non_negative_int(limit):
    with pytest.raises(TypeError, match="limit must be a non-negative int"):
        at_least(Signal(8), limit)
    with pytest.raises(TypeError, match="limit must be a non-negative int"):
        sum_exceeds(Signal(8), Signal(8), limit)


@pytest.mark.parametrize("constants", [{0}, {3, 17, 63}, set(range(0, 64, 5)), set()])
def test_in_set_against_python(constants):
    m = Module()
    v, hit = Signal(6), Signal()
    m.d.comb += hit.eq(in_set(v, constants))
    wrong = []

    async def bench(ctx):
        for x in range(64):
            ctx.set(v, x)
            if ctx.get(hit) != (x in constants):
                wrong.append(x)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"{sorted(constants)}: wrong for {wrong}"
