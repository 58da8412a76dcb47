"""SimByteBridge: chunks loaded on the wide input leave one byte per cycle on `rx` under random back-pressure,
and bytes offered on `tx` collect on the wide output and are dropped only as the testbench takes them.
Width is read from the DUT."""

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from tb.support.seed import rngs


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.width = len(dut.in_data) // 8
        self.rng, _ = rngs(dut._log)
        Clock(dut.clk, 10, unit="ns").start()
        for s in (dut.in_load, dut.out_take, dut.rx__ready, dut.tx__valid):
            s.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)


@cocotb.test()
async def test_input_chunks_in_order_under_back_pressure(dut):
    tb = TB(dut)
    await tb.reset()
    data = bytes(tb.rng.randrange(256) for _ in range(20 * tb.width + 7))
    got = bytearray()
    pos = 0
    for _ in range(400 * len(data)):
        dut.rx__ready.value = int(tb.rng.random() < 0.7)
        await ReadOnly()
        if int(dut.rx__valid.value) and int(dut.rx__ready.value):
            got.append(int(dut.rx__payload.value))
        empty = int(dut.in_empty.value)
        await RisingEdge(dut.clk)
        loaded = int(dut.in_load.value)
        dut.in_load.value = 0
        # A load shows in `in_empty` one cycle later: never load in the cycle right after one.
        if empty and not loaded and pos < len(data) and tb.rng.random() < 0.5:
            chunk = data[pos:pos + tb.rng.randint(1, tb.width)]
            pos += len(chunk)
            dut.in_data.value = int.from_bytes(chunk, "little")
            dut.in_count.value = len(chunk)
            dut.in_load.value = 1
        if len(got) == len(data):
            break
    assert bytes(got) == data


@cocotb.test()
async def test_output_collects_and_takes_without_loss(dut):
    tb = TB(dut)
    await tb.reset()
    data = bytes(tb.rng.randrange(256) for _ in range(10 * tb.width))
    got = bytearray()
    pos = 0
    full_seen = False
    for _ in range(400 * len(data)):
        offer = pos < len(data) and tb.rng.random() < 0.8
        dut.tx__valid.value = int(offer)
        if offer:
            dut.tx__payload.value = data[pos]
        await ReadOnly()
        accepted = offer and int(dut.tx__ready.value)
        count = int(dut.out_count.value)
        full_seen |= count == tb.width
        buf = int(dut.out_data.value).to_bytes(tb.width, "little")
        await RisingEdge(dut.clk)
        pos += int(accepted)
        took_last = int(dut.out_take.value)
        take = 0
        # A take shows in `out_count` one cycle later: never take in the cycle right after one.
        if count and not took_last and tb.rng.random() < 0.5 / tb.width:
            take = tb.rng.randint(1, count)
            got += buf[:take]
        dut.out_take.value = take
        if len(got) == len(data):
            break
    assert bytes(got) == data
    assert full_seen, "the buffer never filled: back-pressure was not exercised"


@pytest.mark.parametrize("width", [4, 64])
def test_sim_byte_bridge(width):
    from hw.sim_byte_bridge import SimByteBridge
    from tb.support import runner

    config = f"sim_byte_bridge_w{width}"
    src = runner.amaranth_verilog(lambda: SimByteBridge(width=width), "sim_byte_bridge", runner.BUILD / config)
    runner.run(toplevel="sim_byte_bridge", sources=[src], test_module="tb.sim_byte_bridge.test_sim_byte_bridge",
               config=config)
