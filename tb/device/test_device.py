"""The whole device (rtl/pim_device_<preset>.v): AXI4-Lite and AXI4 ports driven by cocotbext-axi masters,
the UART link by frames (byte bypass) and through the PHY by cocotbext-uart; reads compared with GoldenDevice."""

import os
import struct
import time

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster

from pimhil.contract import (CMDQ_BASE, GB_BASE, MAGIC, SCRATCH_BASE, STATUS_BUSY, STATUS_DONE, Command, Frame,
                             FrameCmd, FrameStatus, Op, Reg, bank_address, preset)
from pimhil.frame import decode_response, encode_raw_request, encode_request, response_length
from pimhil.golden.device import BusError as GoldenBusError
from pimhil.golden.device import GoldenDevice
from tb.support.seed import rngs
from tb.support.stream import StreamSink, StreamSource

CLK_NS = 10


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.p = preset(os.environ["PIM_PRESET"])
        self.rng_py, self.rng = rngs(dut._log)
        Clock(dut.clk, CLK_NS, unit="ns").start()
        dut.uart_bypass.value = 1
        dut.sb_select.value = 0
        dut.uart_rx.value = 1
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        self.axi = AxiMaster(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst)
        self.ub_in = StreamSource(dut, "ub_in", dut.clk)
        self.ub_out = StreamSink(dut, "ub_out", dut.clk)
        self.golden = GoldenDevice(self.p)
        self.seq = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        self.ub_out.items.clear()

    # ---- AXI-Lite -------------------------------------------------------------------------------------
    async def rd(self, addr):
        r = await self.axil.read(addr, 4)
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def wr(self, addr, value):
        r = await self.axil.write(addr, int(value).to_bytes(4, "little"))
        return int(r.resp)

    async def idle(self, timeout_cycles=500000):
        for _ in range(timeout_cycles // 50):
            v, _ = await self.rd(Reg.STATUS)
            if not v & STATUS_BUSY:
                assert v & STATUS_DONE, f"STATUS {v:#x}: idle but not done"
                return
            await ClockCycles(self.dut.clk, 40)
        raise TimeoutError("device did not go idle")

    # ---- UART frames over the byte bypass ---------------------------------------------------------------
    def send_bytes(self, data: bytes):
        for b in data:
            self.ub_in.send_nowait(b)

    async def recv_response(self, timeout_us=2000):
        async def _recv():
            head = bytes([await self.ub_out.recv() for _ in range(Frame.RESP_HEADER)])
            rest = bytes([await self.ub_out.recv() for _ in range(response_length(head) - Frame.RESP_HEADER)])
            return decode_response(head + rest)
        return await with_timeout(_recv(), timeout_us, "us")

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def clean_request(self, encode):
        """encode(seq) with the next sequence number for which the frame holds no sync byte after its first:
        when a corrupted frame swallows part of it, the rest is then hunted through without opening a frame."""
        while True:
            seq = self.next_seq()
            frame = encode(seq)
            if Frame.REQ_SYNC not in frame[1:]:
                return seq, frame


@cocotb.test()
async def test_axil_registers_and_errors(dut):
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    assert await tb.rd(Reg.MAGIC) == (MAGIC, 0)
    assert (await tb.rd(Reg.BANKS))[0] == p.banks and (await tb.rd(Reg.LANES))[0] == p.lanes
    assert await tb.wr(SCRATCH_BASE + 8, 0xCAFEF00D) == 0
    assert await tb.rd(SCRATCH_BASE + 8) == (0xCAFEF00D, 0)
    assert (await tb.rd(0x00800000))[1] == 2, "unmapped read must answer SLVERR"
    assert await tb.wr(Reg.MAGIC, 1) == 2, "read-only register write must answer SLVERR"
    r = await tb.axil.write(SCRATCH_BASE + 12, b"\x01\x02", )   # narrow write: refused, nothing written
    assert int(r.resp) == 2
    assert (await tb.rd(SCRATCH_BASE + 12))[0] == 0


@cocotb.test()
async def test_axi4_bursts(dut):
    """H2C/C2H-style bursts into the bank window, GB and scratch; read back through AXI4 and AXI-Lite."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    for addr, n in [(bank_address(p, 1, 2), p.row_words * 2), (GB_BASE, p.gb_words * 2), (SCRATCH_BASE, 1024)]:
        data = bytes(tb.rng.integers(0, 256, n, dtype=np.uint8))
        await tb.axi.write(addr, data)
        back = await tb.axi.read(addr, n)
        assert back.data == data, f"AXI4 round trip at {addr:#x}"
        assert int(back.resp) == 0
    r = await tb.axi.read(0x00800000, 16)
    assert int(r.resp) == 2


@cocotb.test()
async def test_uart_frames_in_flight(dut):
    """Several requests sent before any response is read; answered in order with their sequence numbers."""
    tb = TB(dut)
    await tb.reset()
    words = [tb.rng_py.getrandbits(32) for _ in range(Frame.MAX_WORDS)]
    reqs = [
        (encode_request(tb.next_seq(), FrameCmd.WRITE, SCRATCH_BASE, words=words), FrameStatus.OK, 0),
        (encode_request(tb.next_seq(), FrameCmd.READ, SCRATCH_BASE, count=Frame.MAX_WORDS), FrameStatus.OK, 256),
        (encode_request(tb.next_seq(), FrameCmd.READ, Reg.MAGIC, count=1), FrameStatus.OK, 1),
        (encode_raw_request(tb.next_seq(), 0x77, 1, 0), FrameStatus.BAD_CMD, 0),
        (encode_raw_request(tb.next_seq(), FrameCmd.READ, 0, 0), FrameStatus.BAD_LEN, 0),
        (encode_raw_request(tb.next_seq(), FrameCmd.READ, Frame.MAX_WORDS + 1, 0), FrameStatus.BAD_LEN, 0),
        (encode_request(tb.next_seq(), FrameCmd.READ, SCRATCH_BASE + 2, count=1), FrameStatus.BAD_ADDR, 0),
        (encode_request(tb.next_seq(), FrameCmd.READ, 0x00800000, count=4), FrameStatus.BAD_ADDR, 0),
        (encode_request(tb.next_seq(), FrameCmd.WRITE, Reg.MAGIC, words=[1]), FrameStatus.BUS_ERROR, 0),
    ]
    for frame, _, _ in reqs:
        tb.send_bytes(frame)
    for i, (frame, status, n) in enumerate(reqs):
        r = await tb.recv_response()
        assert r.seq == frame[1], f"response {i}: seq {r.seq} for request {frame[1]}"
        assert r.status == status, f"response {i}: {r.status!r}, expected {status!r}"
        assert len(r.words) == n
        if i == 1:
            assert list(r.words) == words
        if i == 2:
            assert r.words[0] == MAGIC
    assert (await tb.rd(Reg.UART_BAD_FRAMES))[0] == 5
    assert (await tb.rd(Reg.UART_FRAMES_OK))[0] == 3


@cocotb.test()
async def test_uart_fuzz(dut):
    """Random bytes and corrupted frames (UART_FUZZ_BYTES, default 10^5 bytes of noise in all): afterwards
    valid frames are answered, counters match the injected faults and memory shows no trace of them.

    A bit flip in a corrupted frame's length can make the link wait for more payload and swallow the next
    request; the frame then ends by CRC or by the inter-byte timeout, and the host retries, as the driver does.
    Requests and corrupted frames hold no sync byte after their first, so whatever part of them is hunted
    through opens no frame of its own and each corrupted frame is counted exactly once.
    """
    tb = TB(dut)
    await tb.reset()
    await tb.wr(Reg.UART_BAUD_DIV, 4)                  # a short inter-byte timeout keeps the test quick
    n_noise = int(os.environ.get("UART_FUZZ_BYTES", "100000"))
    target = SCRATCH_BASE + 4 * 64
    ref = [tb.rng_py.getrandbits(32) for _ in range(8)]
    tb.send_bytes(encode_request(tb.next_seq(), FrameCmd.WRITE, target, words=ref))
    assert (await tb.recv_response()).status == FrameStatus.OK
    corrupted = sent = retries = 0

    async def read_back():
        nonlocal retries
        for _attempt in range(4):
            seq, request = tb.clean_request(lambda s: encode_request(s, FrameCmd.READ, target, count=8))
            tb.send_bytes(request)
            try:
                r = await tb.recv_response(timeout_us=100)
            except cocotb.triggers.SimTimeoutError:
                retries += 1
                continue
            if r.seq == seq:
                return r
        raise AssertionError("link did not recover after 4 attempts")

    while sent < n_noise:
        noise = bytes(b if b != Frame.REQ_SYNC else 0 for b in tb.rng.integers(0, 256, 1000, dtype=np.uint8))
        tb.send_bytes(noise)
        sent += len(noise)
        frame = bytearray(tb.clean_request(lambda s: encode_request(s, FrameCmd.WRITE, target, words=[0] * 8))[1])
        frame[tb.rng_py.randrange(1, len(frame))] ^= 1 << tb.rng_py.randrange(8)
        tb.send_bytes(bytes(frame))
        corrupted += 1
        r = await read_back()
        assert r.status == FrameStatus.OK and list(r.words) == ref, f"after {corrupted} corrupted frames: {r}"
    dropped = (await tb.rd(Reg.UART_DROPPED_BYTES))[0]
    crc_errors = (await tb.rd(Reg.UART_CRC_ERRORS))[0]
    timeouts = (await tb.rd(Reg.UART_TIMEOUTS))[0]
    assert crc_errors + timeouts == corrupted, f"{crc_errors} CRC errors + {timeouts} timeouts, {corrupted} injected"
    assert dropped >= sent, f"{dropped} bytes dropped while hunting, {sent} noise bytes sent"
    # Noise with sync bytes in it too: frames open on garbage and die by CRC or timeout; the link recovers.
    tb.send_bytes(bytes(tb.rng.integers(0, 256, 2000, dtype=np.uint8)))
    r = await read_back()
    assert list(r.words) == ref
    dut._log.info("%d noise bytes, %d corrupted frames (%d CRC, %d timeouts), %d host retries; link in sync",
                  sent, corrupted, crc_errors, timeouts, retries)


@cocotb.test()
async def test_uart_timeout_resync(dut):
    """A truncated frame is abandoned after the inter-byte timeout; the next frame is served."""
    tb = TB(dut)
    await tb.reset()
    await tb.wr(Reg.UART_BAUD_DIV, 4)
    frame = encode_request(tb.next_seq(), FrameCmd.READ, Reg.MAGIC, count=1)
    tb.send_bytes(frame[:6])
    await ClockCycles(dut.clk, Frame.TIMEOUT_BYTES * 10 * 4 + 50)
    tb.send_bytes(encode_request(tb.next_seq(), FrameCmd.READ, Reg.MAGIC, count=1))
    r = await tb.recv_response()
    assert r.status == FrameStatus.OK and r.words == (MAGIC,)
    assert (await tb.rd(Reg.UART_TIMEOUTS))[0] == 1


@cocotb.test()
async def test_uart_phy_in_the_loop(dut):
    """The 8N1 PHY against cocotbext-uart (a peer model): frames at clk/8 baud, and a framing error counted."""
    from cocotbext.uart import UartSink, UartSource

    tb = TB(dut)
    await tb.reset()
    div = 8
    await tb.wr(Reg.UART_BAUD_DIV, div)
    dut.uart_bypass.value = 0
    baud = 1e9 / (CLK_NS * div)
    src = UartSource(dut.uart_rx, baud=baud, bits=8, stop_bits=1)
    sink = UartSink(dut.uart_tx, baud=baud, bits=8, stop_bits=1)
    words = [tb.rng_py.getrandbits(32) for _ in range(16)]
    await src.write(encode_request(1, FrameCmd.WRITE, SCRATCH_BASE, words=words)
                    + encode_request(2, FrameCmd.READ, SCRATCH_BASE, count=16))
    got = b""
    for expect in (Frame.RESP_HEADER + 2, Frame.RESP_HEADER + 64 + 2):
        while len(got) < expect:
            got += await with_timeout(sink.read(), 200, "us")
        r = decode_response(got[:expect])
        got = got[expect:]
        assert r.status == FrameStatus.OK
    assert list(r.words) == words
    # A byte whose stop bit is low: drive the line by hand.
    await src.wait()
    bit_ns = CLK_NS * div
    for level in [0] + [1, 0, 1, 0, 1, 0, 1, 0] + [0]:          # start, data, low stop bit
        dut.uart_rx.value = level
        await cocotb.triggers.Timer(bit_ns, "ns")
    dut.uart_rx.value = 1
    await ClockCycles(dut.clk, 4 * div)
    assert (await tb.rd(Reg.UART_FRAMING_ERRORS))[0] == 1
    dut.uart_bypass.value = 1


@cocotb.test()
async def test_uart_efficiency(dut):
    """Payload bytes over wire bytes for 256-word bursts, counted on the link's byte streams."""
    tb = TB(dut)
    await tb.reset()
    n = Frame.MAX_WORDS
    words = [tb.rng_py.getrandbits(32) for _ in range(n)]
    result = {}
    for name, frame in (("write", encode_request(1, FrameCmd.WRITE, SCRATCH_BASE, words=words)),
                        ("read", encode_request(2, FrameCmd.READ, SCRATCH_BASE, count=n))):
        sent0, got0 = tb.ub_in.sent, len(tb.ub_out.items)
        tb.send_bytes(frame)
        r = await tb.recv_response()
        assert r.status == FrameStatus.OK
        wire = (tb.ub_in.sent - sent0) + r.nbytes
        result[f"uart_{name}_efficiency"] = 4 * n / wire
    assert list(r.words) == words
    dut._log.info("UART efficiency at %d-word bursts: %s", n, result)
    assert min(result.values()) >= 0.95
    bench_out("uart_efficiency", result)


class BusyCounter:
    """Counts the cycles in which the device's `busy` output is high (what PERF_BUSY must count)."""

    def __init__(self, dut):
        self.dut = dut
        self.count = 0
        self._task = None

    async def _run(self):
        while True:
            await ReadOnly()
            if int(self.dut.busy.value):
                self.count += 1
                await RisingEdge(self.dut.clk)
            else:
                await RisingEdge(self.dut.busy)

    def start(self):
        self.count = 0
        self._task = cocotb.start_soon(self._run())

    def stop(self):
        self._task.cancel()


async def push(tb, cmd):
    for w in cmd.queue_words(tb.p):
        assert await tb.wr(CMDQ_BASE, w) == 0


async def run_tile(tb, cmd, *, start_perf=True):
    """Clear the counters, push one tile command, wait for it; returns (PERF_BUSY, PERF_MAC, counted busy)."""
    from pimhil.contract import CONTROL_CLEAR_COUNTERS

    assert await tb.wr(Reg.CONTROL, CONTROL_CLEAR_COUNTERS) == 0
    counter = BusyCounter(tb.dut)
    counter.start()
    await push(tb, cmd)
    await tb.idle()
    counter.stop()
    busy = (await tb.rd(Reg.PERF_BUSY))[0]
    mac = (await tb.rd(Reg.PERF_MAC))[0]
    err = (await tb.rd(Reg.ERROR_CODE))[0]
    assert err == 0, f"tile refused with error {err:#x}"
    return busy, mac, counter.count


async def read_scratch(tb, addr_word, n):
    r = await tb.axi.read(SCRATCH_BASE + 4 * addr_word, 4 * n)
    return np.frombuffer(r.data, dtype="<u4").astype(np.uint32)


def bench_out(name, values):
    out = os.environ.get("DEVICE_BENCH_DIR")
    if out:
        import json
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(values, f)


@cocotb.test()
async def test_gemv_tile(dut):
    """GEMV tile (TILE_M x TILE_K, default 512 x 1024 on sim) loaded by AXI4, bit-exact against golden.gemv;
    PERF_BUSY equals the busy cycles the testbench counted, PERF_MAC the ideal M*K/(B*L)."""
    from pimhil.contract import HubOp
    from pimhil.golden import bf16_to_bits, gemv

    tb = TB(dut)
    await tb.reset()
    p = tb.p
    m = int(os.environ.get("TILE_M", str(min(512, p.banks * p.accs))))
    k = int(os.environ.get("TILE_K", str(max(1024, p.row_words))))
    groups, chunks = m // p.banks, k // p.row_words
    w = bf16_to_bits(tb.rng.standard_normal((m, k)) * 0.05)
    x = bf16_to_bits(tb.rng.standard_normal(k))
    row0, xbank, xrow = 0, 0, groups * chunks
    for b in range(p.banks):                 # bank b holds rows b, b+B, ...: one contiguous region
        await tb.axi.write(bank_address(p, b, row0), np.ascontiguousarray(w[b::p.banks]).tobytes())
    await tb.axi.write(bank_address(p, xbank, xrow), x.tobytes())
    busy, mac, counted = await run_tile(tb, Command(HubOp.GEMV_TILE, row=row0, col=groups, count=chunks,
                                                    bank=xbank, gb=xrow, imm=0))
    y = await read_scratch(tb, 0, m)
    assert np.array_equal(y, gemv(w, x, lanes=p.lanes)), "GEMV tile differs from golden.gemv"
    ideal = m * k // (p.banks * p.lanes)
    assert mac == ideal, f"PERF_MAC {mac}, ideal {ideal}"
    assert busy == counted, f"PERF_BUSY {busy}, testbench counted {counted}"
    dut._log.info("GEMV tile %dx%d bit-exact: %d busy cycles, ideal %d, utilisation %.4f", m, k, busy, ideal,
                  ideal / busy)
    # Raw simulator speed on this tile: run it again with no Python woken until `busy` falls; best of 8,
    # since one tile is only tens of milliseconds of wall time.
    cmd = Command(HubOp.GEMV_TILE, row=row0, col=groups, count=chunks, bank=xbank, gb=xrow, imm=0)
    raw_cps = 0.0
    for _ in range(8):
        await push(tb, cmd)
        if not int(dut.busy.value):
            await RisingEdge(dut.busy)
        t0, c0 = time.perf_counter(), get_sim_time("ns")
        await FallingEdge(dut.busy)
        raw_cps = max(raw_cps, (get_sim_time("ns") - c0) / CLK_NS / (time.perf_counter() - t0))
    dut._log.info("raw simulator speed on the tile: %.0f cycles/s", raw_cps)
    bench_out(f"gemv_tile_{m}x{k}", {"m": m, "k": k, "cycles": busy, "ideal": ideal, "utilization": ideal / busy,
                                     "raw_cycles_per_s": raw_cps})


async def load_attention(tb, q, k, v, *, kbase, vbase):
    p = tb.p
    T, d = k.shape
    for b in range(p.banks):                 # keys b, b+B, ... are consecutive slots: one region per bank
        await tb.axi.write(bank_address(p, b, kbase), np.ascontiguousarray(k[b::p.banks]).tobytes())
    ch = min(T, p.row_words)
    nch = T // ch
    vt = np.ascontiguousarray(v.T)
    for i in range(d):
        for c in range(nch):
            await tb.axi.write(bank_address(p, i % p.banks, vbase + (i // p.banks) * nch + c),
                               np.ascontiguousarray(vt[i, c * ch:(c + 1) * ch]).tobytes())
    await tb.axi.write(GB_BASE, q.tobytes())


@cocotb.test()
async def test_attention_tile(dut):
    """Decode attention, one head (ATTN_T tokens, default 512; ATTN_D = 128), bit-exact against
    golden.attention; PERF_BUSY equals the testbench's busy count."""
    from pimhil.contract import HubOp
    from pimhil.golden import bf16_to_bits, f32_to_bits
    from pimhil.golden.attention import attention

    tb = TB(dut)
    await tb.reset()
    p = tb.p
    T = int(os.environ.get("ATTN_T", str(min(512, p.score_words))))
    d = int(os.environ.get("ATTN_D", str(min(128, p.lanes * p.bursts_per_row, p.banks * p.accs))))
    q = bf16_to_bits(tb.rng.standard_normal(d))
    kk = bf16_to_bits(tb.rng.standard_normal((T, d)))
    vv = bf16_to_bits(tb.rng.standard_normal((T, d)))
    scale = int(f32_to_bits(np.float32(1 / np.sqrt(d))))
    kbase = 0
    vbase = -(-(T // p.banks) * (d // p.lanes) // p.bursts_per_row)
    await load_attention(tb, q, kk, vv, kbase=kbase, vbase=vbase)
    busy, mac, counted = await run_tile(tb, Command(HubOp.ATTN_TILE, row=kbase, col=vbase, count=T,
                                                    acc=d // p.lanes, gb=0, imm=scale))
    out = await read_scratch(tb, 0, d)
    assert np.array_equal(out, attention(q, kk, vv, scale, p)["out"]), "attention differs from golden"
    ideal = 2 * T * d // (p.banks * p.lanes)
    assert mac == ideal and busy == counted, f"PERF_MAC {mac} (ideal {ideal}), PERF_BUSY {busy} vs {counted}"
    dut._log.info("attention T=%d d=%d bit-exact: %d cycles, MAC ideal %d, utilisation %.4f", T, d, busy, ideal,
                  ideal / busy)
    bench_out(f"attention_T{T}_d{d}", {"tokens": T, "dim": d, "cycles": busy, "ideal": ideal,
                                        "utilization": ideal / busy})


@pytest.mark.parametrize("preset_name", ["board", pytest.param("sim", marks=pytest.mark.slow)])
def test_device(preset_name):
    run(preset_name)


def run(preset_name, *, testcase=None, extra_env=None, log_file=None):
    from tb.support import runner

    top = f"pim_device_{preset_name}"
    runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"], test_module="tb.device.test_device",
               config=f"device_{preset_name}", extra_env={"PIM_PRESET": preset_name, **(extra_env or {})},
               testcase=testcase, log_file=log_file, shared_model=True)
