"""hw/counted_index.py: the registered end tests always equal their tests on the counter plus one, through steps,
restarts and restarts with a limit loaded in the same cycle."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.counted_index import counter_setter


def test_flags_follow_the_counter():
    m = Module()
    idx, limit, new_limit = Signal(6), Signal(6), Signal(6)
    last, over = Signal(), Signal()
    step, restart, load = Signal(), Signal(), Signal()
    set_idx = counter_setter(idx, [(last, lambda n: n == limit), (over, lambda n: n >= limit)])
    with m.If(load):
        # The limit changes with the restart: the flags come from the new limit, through `first`.
        m.d.sync += limit.eq(new_limit)
        set_idx(m, step=False, first=[new_limit == 1, new_limit <= 1])
    with m.Elif(restart):
        set_idx(m, step=False)
    with m.Elif(step):
        set_idx(m, step=True)
    wrong = []
    rng = random.Random(7)

    async def bench(ctx):
        ctx.set(new_limit, 5)
        ctx.set(load, 1)
        await ctx.tick()
        for cycle in range(3000):
            ctx.set(load, rng.random() < 0.02)
            ctx.set(new_limit, rng.randrange(64))
            ctx.set(restart, rng.random() < 0.05)
            ctx.set(step, ctx.get(idx) < 62 and rng.random() < 0.8)
            await ctx.tick()
            i, n = ctx.get(idx), ctx.get(limit)
            if (ctx.get(last), ctx.get(over)) != (i + 1 == n, i + 1 >= n):
                wrong.append((cycle, i, n, ctx.get(last), ctx.get(over)))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"{len(wrong)} cycles wrong, first (cycle, idx, limit, last, over) {wrong[0]}"


def test_first_gives_one_value_per_end_and_only_on_a_restart():
    idx, last = Signal(4), Signal()
    set_idx = counter_setter(idx, [(last, lambda n: n == 3)])
    # Refused before the module is touched, so none is needed.
    with pytest.raises(ValueError, match="first gives the 1 end values of a restart"):
        set_idx(None, step=False, first=[1, 0])
    with pytest.raises(ValueError, match="first gives the 1 end values of a restart"):
        set_idx(None, step=True, first=[1])
