"""tb/support/runner.py's failure path on a tiny Amaranth counter: a test that fails on purpose is rerun alone,
with the same seed and waveforms on, and the error names the waveform and the `SEED=` that reproduces it.

The cocotb module has a passing test and a failing one; only the failing one may be rerun.
"""

import os
import random
import re

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from tb.support.results import record


class _Counter:
    """An 8-bit counter with an enable (the smallest block that has something to trace)."""

    @staticmethod
    def component():
        from amaranth.hdl import Module, Signal
        from amaranth.lib import wiring
        from amaranth.lib.wiring import In, Out

        class Counter(wiring.Component):
            en: In(1)
            count: Out(8)

            def elaborate(self, platform):
                m = Module()
                value = Signal(8)
                with m.If(self.en):
                    m.d.sync += value.eq(value + 1)
                m.d.comb += self.count.eq(value)
                return m

        return Counter()


async def _start(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


@cocotb.test()
async def test_counts(dut):
    await _start(dut)
    dut.en.value = 1
    await ClockCycles(dut.clk, 5)
    dut.en.value = 0
    await ClockCycles(dut.clk, 1)
    assert int(dut.count.value) == 5


@cocotb.test()
async def test_fails_on_purpose(dut):
    """Draws a random number from the run's seed and records it, so that the caller can see the rerun drew
    the same; then expects a count the counter cannot reach."""
    await _start(dut)
    record(f"draw_{os.environ.get('WAVES', '0')}", {"seed": int(os.environ["COCOTB_RANDOM_SEED"]),
                                                     "draw": random.getrandbits(32)})
    dut.en.value = 1
    await ClockCycles(dut.clk, 3)
    assert int(dut.count.value) == 200, "fails on purpose: the runner's rerun-with-waves path is under test"


def test_failing_test_is_rerun_with_waves(capsys):
    import json

    import pytest

    from tb.support import runner

    config = "runner_selftest"
    src = runner.amaranth_verilog(_Counter.component, "selftest_counter", runner.BUILD / config)
    with pytest.raises(AssertionError) as err:
        runner.run(toplevel="selftest_counter", sources=[src], test_module="tb.runner_selftest.test_rerun_waves",
                   config=config)
    printed = capsys.readouterr().err
    msg = str(err.value)
    assert msg in printed, "the runner prints what it raises"
    seed = re.search(r"^SEED=(\d+) reproduces it", msg, re.M)
    assert seed, msg
    wave = re.search(r"waveform: (\S+)", msg)
    assert wave and "failed again" in msg, msg
    path = runner.ROOT / wave.group(1) if not wave.group(1).startswith("/") else wave.group(1)
    assert os.path.getsize(path) > 0
    assert "test_fails_on_purpose" in msg and "test_counts" not in msg.split("waves")[0].split("failed:")[1]
    first = json.loads((runner.BUILD / config / "figures.json").read_text())["draw_0"]
    again = json.loads((runner.BUILD / f"{config}-waves" / "figures.json").read_text())["draw_1"]
    assert first == again and first["seed"] == int(seed.group(1)), (first, again)
    rerun_xml = (runner.BUILD / f"{config}-waves" / "results.xml").read_text()
    assert "test_fails_on_purpose" in rerun_xml and "test_counts" not in rerun_xml, "only the failed test reruns"
