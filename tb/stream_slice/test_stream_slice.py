"""StreamRegisterSlice: a random source and a random sink; every transfer comes out once and in order, and with
the sink always ready the slice passes one transfer per cycle."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from tb.support.seed import rngs

WIDTH = 24
N = 3000


async def _run(dut, rng, p_valid, p_ready) -> int:
    """N random items through the slice, the source offering with probability p_valid each cycle (and holding an
    offer until taken), the sink ready with p_ready. Returns the cycles taken; fails on loss, repeat or reorder."""
    items = [rng.getrandbits(WIDTH) for _ in range(N)]
    got, k, cycles = [], 0, 0
    dut.i__valid.value, dut.o__ready.value = 0, 0
    while len(got) < N:
        # Mid-cycle the inputs set after the last edge and the slice's registers are settled: the handshakes
        # seen here are the ones the next edge completes.
        await FallingEdge(dut.clk)
        await ReadOnly()
        offered = bool(int(dut.i__valid.value))
        if offered and int(dut.i__ready.value):
            k += 1
            offered = False
        if int(dut.o__valid.value) and int(dut.o__ready.value):
            got.append(int(dut.o__payload.value))
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < 50 * N, f"stuck: {len(got)} of {N} out after {cycles} cycles"
        if k < N and (offered or rng.random() < p_valid):
            dut.i__valid.value, dut.i__payload.value = 1, items[k]
        else:
            dut.i__valid.value = 0
        dut.o__ready.value = int(rng.random() < p_ready)
    assert got == items, "first difference at " + str(next(i for i, (a, b) in enumerate(zip(got, items)) if a != b))
    return cycles


async def _reset(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value, dut.o__ready.value = 0, 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


@cocotb.test()
async def test_random_source_and_sink(dut):
    rng, _ = rngs(dut._log)
    await _reset(dut)
    for p_valid, p_ready in ((0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 0.7)):
        await _run(dut, rng, p_valid, p_ready)


@cocotb.test()
async def test_one_transfer_per_cycle(dut):
    rng, _ = rngs(dut._log)
    await _reset(dut)
    cycles = await _run(dut, rng, 1.0, 1.0)
    assert cycles <= N + 3, f"{N} transfers took {cycles} cycles"


def test_stream_slice():
    from amaranth.lib import data

    from hw.stream_slice import StreamRegisterSlice
    from tb.support import runner

    config = "stream_slice"
    src = runner.amaranth_verilog(lambda: StreamRegisterSlice(layout=data.StructLayout({"x": WIDTH})),
                                  "stream_slice", runner.BUILD / config)
    runner.run(toplevel="stream_slice", sources=[src], test_module="tb.stream_slice.test_stream_slice",
               config=config)
