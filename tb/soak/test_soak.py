"""The soak (`make soak`, ci/soak.py): the plan of tb/soak/model.py through the device top (board preset) over
the SimByteBridge, answers checked as they arrive, the memory image compared at the end.

Python wakes once per bridge width of cycles (not per byte): it loads up to `width` request bytes and takes
every answer byte in one handshake, so the simulation runs at the model's speed. A GAP in the plan waits until
the bridge has handed over every byte before it, then keeps the line idle for the link's inter-byte timeout.
A run stops early when answers are owed and none has come for SOAK_HANG_CYCLES cycles (a hang).
The figures are recorded as `soak` (tb/support/results.py); the test fails unless the run is clean.
"""

import os
import time

import cocotb
import pytest
from cocotb.triggers import ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from pimhil.contract import Frame
from tb.soak.model import GAP, Checker, Plan, golden_image
from tb.support.device_harness import CLK_NS, DeviceHarness, preset_from_env
from tb.support.results import record


def _cycles() -> int:
    return int(get_sim_time("ns")) // CLK_NS


@cocotb.test()
async def test_soak(dut):
    from tb.control_hub.test_control_hub import random_command

    # The run's seed (cocotb derives each test's own seed from it and the test's name).
    seed = int(os.environ["COCOTB_RANDOM_SEED"])
    dut._log.info("soak seed: SEED=%d reproduces this run", seed)
    p = preset_from_env()
    frames = int(os.environ.get("SOAK_FRAMES", "20000"))
    streams = int(os.environ.get("SOAK_STREAMS", "2000"))
    hang_cycles = int(os.environ.get("SOAK_HANG_CYCLES", "100000"))
    inject = os.environ.get("SOAK_INJECT", "")
    checker = Checker(drop_answer=1000 if inject == "drop_answer" else None)
    plan = Plan(p, seed, frames=frames, streams=streams, checker=checker, random_command=random_command,
                gap_rate=float(os.environ.get("SOAK_GAP_RATE", "0.003")))
    h = DeviceHarness(dut, link="bridge", masters=False)
    await h.reset()
    port = h.bridge_port
    width = port.width
    # Mid-cycle, SOAK_WAKE_CYCLES after the handshake: a load waits for the bridge to be empty, so waking
    # well before a full load has drained keeps the link fed; each wake costs Python time, not cycles.
    wake_ns = int(os.environ.get("SOAK_WAKE_CYCLES", "32")) * CLK_NS - CLK_NS // 2
    items = plan.items()
    buf = bytearray()
    gap_next = done = False
    bytes_in = bytes_out = 0
    wall0, cyc0 = time.perf_counter(), _cycles()
    progress = cyc0
    hung = False
    await RisingEdge(dut.clk)
    while True:
        while not (gap_next or done) and len(buf) < 8 * width:
            try:
                item = next(items)
            except StopIteration:
                done = True
                break
            if item is GAP:
                gap_next = True
            else:
                buf += item
        await Timer(wake_ns, "ns")
        await ReadOnly()
        out, empty = port.sample()
        await RisingEdge(dut.clk)
        chunk = b""
        if empty and buf:
            chunk = bytes(buf[:width])
            del buf[:width]
        port.drive(take=len(out), chunk=chunk)
        await RisingEdge(dut.clk)
        port.release()
        now = _cycles()
        if out or chunk:
            progress = now
            bytes_in += len(chunk)
            bytes_out += len(out)
            if out:
                checker.consume(out)
        if empty and not buf and not chunk:
            if gap_next:
                # Every byte before the gap is in the link: stay idle past its inter-byte timeout.
                await Timer((Frame.BYPASS_TIMEOUT_CYCLES + 32) * CLK_NS, "ns")
                gap_next = False
                progress = _cycles()
                continue
            if done and not checker.expected:
                break
        if checker.desync or (now - progress > hang_cycles and (checker.expected or buf)):
            hung = not checker.desync
            dut._log.error("no progress for %d cycles with %d answers owed: stopping", now - progress,
                           len(checker.expected))
            break
    checker.finish()
    if not hung and not checker.desync:
        if inject == "image":
            plan.golden.scratch[7] ^= 1
        checker.compare_image(golden_image(plan.golden))
    wall = time.perf_counter() - wall0
    cycles = _cycles() - cyc0
    fig = {"seed": seed, **plan.summary(), "answers": checker.answers, "hangs": checker.hangs,
           "silent_corruptions": checker.silent_corruptions, "mismatches": checker.mismatches,
           "image_words": len(checker.device_image), "image_words_differing": checker.image_words_differing,
           "stopped_early": hung or checker.desync, "bytes_in": bytes_in, "bytes_out": bytes_out,
           "cycles": cycles, "wall_s": round(wall, 1), "cycles_per_s": round(cycles / wall),
           "notes": checker.notes, "inject": inject}
    record("soak", fig)
    dut._log.info("soak: %d frames, %d streams, %d answers, %d cycles in %.0f s; hangs %d, silent corruptions %d, "
                  "mismatches %d", fig["frames"], fig["streams"], fig["answers"], cycles, wall, fig["hangs"],
                  fig["silent_corruptions"], fig["mismatches"])
    for note in checker.notes:
        dut._log.error("%s", note)
    assert checker.clean and not hung, f"soak failed (SEED={seed}): {checker.notes[:3]}"
    assert fig["link_frames"] >= frames and fig["streams"] >= streams
    assert fig["image_words"] == len(golden_image(plan.golden)), "the image reads did not cover the memory"


def run(*, config="soak", extra_env=None, log_file=None) -> dict:
    """Run the soak on the board device in build/tb/<config>/ (SOAK_* knobs in extra_env or the shell);
    returns the recorded figures ({"soak": {...}}). No rerun with waveforms on failure: a trace of minutes
    of simulation helps nobody; the soak names the seed and the answer that went wrong instead."""
    from tb.support import runner

    top = "pim_device_board"
    return runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"], test_module="tb.soak.test_soak",
                      config=config, extra_env={"PIM_PRESET": "board", **(extra_env or {})}, log_file=log_file,
                      shared_model=True, rerun_waves=False)


def test_soak_small():
    """A short soak in `make test`: the harness, the plan and the device agree before CI spends minutes."""
    fig = run(config="soak_small", extra_env={"SOAK_FRAMES": "2000", "SOAK_STREAMS": "200"})["soak"]
    assert fig["hangs"] == fig["silent_corruptions"] == fig["mismatches"] == 0


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.parametrize("fault", ["drop_answer"])
def test_soak_catches_injected_fault(fault):
    """The same short soak through the device with an answer dropped must fail, and say why (every fault kind
    is injected without a simulator in tests/test_soak_checker.py; SOAK_INJECT=image works here too)."""
    from tb.support import results

    with pytest.raises(AssertionError):
        run(config=f"soak_inject_{fault}", extra_env={"SOAK_FRAMES": "1000", "SOAK_STREAMS": "100",
                                                      "SOAK_INJECT": fault})
    fig = results.load(results_path(f"soak_inject_{fault}"))["soak"]
    assert (fig["hangs"] if fault == "drop_answer" else fig["mismatches"]) >= 1, fig


def results_path(config):
    from tb.support import runner
    from tb.support.results import FILE_NAME

    return runner.BUILD / config / FILE_NAME
