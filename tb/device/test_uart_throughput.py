"""UART link speed on the byte bypass (rtl/pim_device_<preset>.v, `uart_bypass` high, `ub_in`/`ub_out`): payload
bytes per device cycle for a bulk write and its read-back, a byte offered every cycle and every answer byte
taken at once, so the link alone sets the pace. Recorded as the `uart_bypass` figures (ci/bench.py's
`uart_bypass_bytes_per_cycle`).

Self-contained on purpose (the clock, reset and the stream models of tb/support/stream.py only, and the
figures written where the runner says): `make bench BASELINE=<rev>` runs this same file against an older
revision's device, whose harness and results helpers may differ or be missing.
"""

import json
import os
import random
from pathlib import Path

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotb.utils import get_sim_time

from pimhil.contract import Frame, FrameCmd, FrameStatus, bank_address, preset
from pimhil.frame import decode_response, encode_request, response_length
from tb.support.stream import StreamSink, StreamSource
from tb.device import PRESETS

CLK_NS = 10
BULK_FRAMES = 16            # 256-word frames each way (16 KiB), so that filling the link's stages is a small share
RESULTS_ENV = "PIM_TB_RESULTS"


async def _response(sink) -> tuple:
    head = bytes([await sink.recv() for _ in range(Frame.RESP_HEADER)])
    rest = bytes([await sink.recv() for _ in range(response_length(head) - Frame.RESP_HEADER)])
    return decode_response(head + rest)


@cocotb.test()
async def test_uart_bypass_throughput(dut):
    """BULK_FRAMES 256-word WRITE frames into bank 0 sent back to back, then as many READs of the same words;
    each direction timed from the cycle its first request byte is offered to the cycle its last answer byte is
    taken. Figures: uart_bypass_write_bytes_per_cycle, uart_bypass_read_bytes_per_cycle and their minimum
    uart_bypass_bytes_per_cycle."""
    p = preset(os.environ["PIM_PRESET"])
    Clock(dut.clk, CLK_NS, unit="ns").start()
    dut.uart_rx.value = 1               # idle line: the PHY, unused here, sees no start bit or break
    dut.uart_bypass.value = 1
    dut.sb_select.value = 0
    src, sink = StreamSource(dut, "ub_in", dut.clk), StreamSink(dut, "ub_out", dut.clk)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    n = Frame.MAX_WORDS
    base = bank_address(p, 0, 0)
    rng = random.Random(int(os.environ.get("COCOTB_RANDOM_SEED", "1")))
    words = [rng.getrandbits(32) for _ in range(BULK_FRAMES * n)]
    figures, back, seq = {}, [], 0
    for name in ("write", "read"):
        frames = []
        for i in range(BULK_FRAMES):
            seq += 1
            addr = base + 4 * n * i
            frames.append(encode_request(seq, FrameCmd.WRITE, addr, words=words[i * n:(i + 1) * n])
                          if name == "write" else encode_request(seq, FrameCmd.READ, addr, count=n))
        await ClockCycles(dut.clk, 1)
        t0 = get_sim_time("ns")
        for frame in frames:
            for b in frame:
                src.send_nowait(b)
        for frame in frames:
            r = await with_timeout(_response(sink), 20000, "us")
            assert (r.seq, r.status) == (frame[1], FrameStatus.OK), f"{name}: {r}"
            back += r.words
        cycles = (get_sim_time("ns") - t0) / CLK_NS
        figures[f"uart_bypass_{name}_bytes_per_cycle"] = 4 * n * BULK_FRAMES / cycles
    assert back == words, "bulk read-back differs from the bulk write"
    figures["uart_bypass_bytes_per_cycle"] = min(figures.values())
    figures.update(frames=BULK_FRAMES, words=n)
    dut._log.info("UART byte bypass, %d frames of %d words each way: %s", BULK_FRAMES, n, figures)
    path = os.environ.get(RESULTS_ENV)
    if path:
        out = Path(path)
        data = json.loads(out.read_text()) if out.exists() else {}
        data["uart_bypass"] = figures
        out.write_text(json.dumps(data, indent=2))


@pytest.mark.parametrize("preset_name", PRESETS)
def test_device_uart_throughput(preset_name):
    run(preset_name)


def run(preset_name, *, log_file=None) -> dict:
    """Run the test on the `preset_name` device in build/tb/device_uart_throughput_<preset>/ (the shared model of
    that top); returns {"uart_bypass": figures}."""
    from tb.support import runner

    top = f"pim_device_{preset_name}"
    config = f"device_uart_throughput_{preset_name}"
    figures = runner.BUILD / config / "figures.json"
    figures.parent.mkdir(parents=True, exist_ok=True)
    figures.unlink(missing_ok=True)
    runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"], test_module="tb.device.test_uart_throughput",
               config=config, extra_env={"PIM_PRESET": preset_name, RESULTS_ENV: str(figures)}, log_file=log_file,
               shared_model=True)
    return json.loads(figures.read_text())
