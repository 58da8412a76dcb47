"""The whole device's links (rtl/pim_device_<preset>.v): the AXI4-Lite and AXI4 ports driven by cocotbext-axi
masters, the UART link by frames over the byte bypass and the SimByteBridge, and through the 8N1 PHY by
cocotbext-uart.

What is compared: data read back with the data written (AXI round trips, scratch over frames), each response's
sequence number and status with the one the request must get, the identity registers with the preset, the
link's error counters with the faults injected, and the UART efficiency with its 0.95 floor (recorded as the
`uart_efficiency` figures, tb/support/results.py). No golden model is involved: tb/device/test_tiles.py holds
the bit-exact comparisons.
"""

import os

import cocotb
import numpy as np
import pytest
from cocotb.triggers import ClockCycles, Timer, with_timeout
from cocotb.utils import get_sim_time

from pimhil.contract import (GB_BASE, MAGIC, SCRATCH_BASE, Frame, FrameCmd, FrameStatus, Reg, bank_address,
                             windows)
from pimhil.frame import decode_response, encode_raw_request, encode_request
from tb.support.device_harness import CLK_NS, DeviceHarness, preset_from_env
from tb.support.results import record
from tb.support.seed import rngs
from tb.device import PRESETS

UNMAPPED = 0x00800000       # outside every window: reads and writes answer SLVERR / BAD_ADDR


class LinkTB:
    """The harness, the test's random generators, and a byte feeder on the UART link (bypass by default)."""

    def __init__(self, dut, *, link: str = "bypass"):
        self.dut = dut
        self.h = DeviceHarness(dut, link=link)
        self.p = preset_from_env()
        self.rng_py, self.rng = rngs(dut._log)
        self.uart = self.h.bridge_feeder() if link == "bridge" else self.h.bypass_feeder()
        self.seq = 0

    async def reset(self):
        await self.h.reset()
        self.uart.clear()

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
    tb = LinkTB(dut)
    await tb.reset()
    h, p = tb.h, tb.p
    assert await h.axil_read(Reg.MAGIC) == (MAGIC, 0)
    assert (await h.axil_read(Reg.BANKS))[0] == p.banks and (await h.axil_read(Reg.LANES))[0] == p.lanes
    assert await h.axil_write(SCRATCH_BASE + 8, 0xCAFEF00D) == 0
    assert await h.axil_read(SCRATCH_BASE + 8) == (0xCAFEF00D, 0)
    assert (await h.axil_read(UNMAPPED))[1] == 2, "unmapped read must answer SLVERR"
    assert await h.axil_write(Reg.MAGIC, 1) == 2, "read-only register write must answer SLVERR"
    r = await h.axil.write(SCRATCH_BASE + 12, b"\x01\x02")   # narrow write: refused, nothing written
    assert int(r.resp) == 2
    assert (await h.axil_read(SCRATCH_BASE + 12))[0] == 0


@cocotb.test()
async def test_axi4_bursts(dut):
    """H2C/C2H-style bursts into the bank window, GB and scratch; read back through AXI4."""
    tb = LinkTB(dut)
    await tb.reset()
    h, p = tb.h, tb.p
    for addr, n in [(bank_address(p, 1, 2), p.row_words * 2), (GB_BASE, p.gb_words * 2), (SCRATCH_BASE, 1024)]:
        data = bytes(tb.rng.integers(0, 256, n, dtype=np.uint8))
        await h.axi.write(addr, data)
        back = await h.axi.read(addr, n)
        assert back.data == data, f"AXI4 round trip at {addr:#x}"
        assert int(back.resp) == 0
    r = await h.axi.read(UNMAPPED, 16)
    assert int(r.resp) == 2


@cocotb.test()
async def test_axi4_backpressure(dut):
    """AXI4 with the master stalling every channel at random (a DMA engine whose host side is busy: RREADY and
    BREADY low, WVALID gaps), with transfers that start and end off the beat grid (partial first and last
    beats): every word lands and reads back, nothing outside the range changes. A part-word strobe refuses its
    beat (SLVERR, nothing of it written: docs/control_hub.md)."""
    import itertools

    tb = LinkTB(dut)
    await tb.reset()
    h, r = tb.h, tb.rng_py

    def pauses():
        while True:
            yield r.random() < 0.4

    channels = (h.axi.write_if.aw_channel, h.axi.write_if.w_channel, h.axi.write_if.b_channel,
                h.axi.read_if.ar_channel, h.axi.read_if.r_channel)
    for ch in channels:
        ch.set_pause_generator(pauses())
    base = SCRATCH_BASE
    image = bytearray(tb.rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    await h.axi.write(base, bytes(image))
    for off, n in itertools.islice(((4 * r.randrange(0, 256), 4 * r.randrange(1, 176)) for _ in itertools.count()),
                                   12):
        data = bytes(tb.rng.integers(0, 256, n, dtype=np.uint8))
        await h.axi.write(base + off, data)
        image[off:off + n] = data
        back = await h.axi.read(base + off, n)
        bad = [i for i in range(n) if back.data[i] != data[i]]
        assert not bad and int(back.resp) == 0, \
            f"AXI4 round trip of {n} bytes at +{off:#x}: resp {int(back.resp)}, bytes {bad[:8]}... differ"
    assert (await h.axi.read(base, len(image))).data == bytes(image), "bytes outside a write changed"
    assert int((await h.axi.write(base + 64 + 1, b"\xa5" * 8)).resp) == 2, "a part-word write must be refused"
    # A burst that runs off the end of the GB window: the beats inside land, the burst answers SLVERR.
    end = GB_BASE + tb.p.gb_words * 2
    tail = bytes(tb.rng.integers(0, 256, 64, dtype=np.uint8))
    assert int((await h.axi.write(end - 32, tail)).resp) == 2, "a write past the GB window must answer SLVERR"
    assert int((await h.axi.read(end - 32, 64)).resp) == 2, "a read past the GB window must answer SLVERR"
    assert (await h.axi.read(end - 32, 32)).data == tail[:32], "the beats inside the GB window were not written"
    assert (await h.axi.read(base, len(image))).data == bytes(image), "a refused part-word write changed memory"
    for ch in channels:
        ch.clear_pause_generator()


@cocotb.test()
async def test_every_address_bit(dut):
    """Each of the 32 address bits set alone, on every port: a read everywhere, a write where no window is (so
    nothing changes), each answered (SLVERR / BAD_ADDR outside the windows) and the device still answering.
    Normal traffic never sets the high address bits, which coverage then shows as dead decode logic."""
    tb = LinkTB(dut)
    await tb.reset()
    h = tb.h
    mapped = [(w.base, w.base + w.size) for w in windows(tb.p)]
    for k in range(2, 32):
        a = 1 << k
        inside = any(lo <= a < hi for lo, hi in mapped)
        r = await h.axil.read(a, 4)
        r4 = await h.axi.read(a, 16)
        if not inside:
            assert int(r.resp) == 2 and int(r4.resp) == 2, f"read {a:#x} outside every window"
            assert int((await h.axil.write(a, b"\xff" * 4)).resp) == 2
            assert int((await h.axi.write(a, b"\xff" * 16)).resp) == 2
        _, frame = tb.clean_request(lambda seq, a=a: encode_request(seq, FrameCmd.READ, a, count=1))
        tb.uart.send(frame)
        resp = await tb.uart.recv_response()
        assert resp.seq == frame[1] and (inside or resp.status == FrameStatus.BAD_ADDR), f"UART read {a:#x}"
    # Bits 0 and 1 only reach the hub through a UART frame (both AXI slaves take whole words): misaligned
    # reads and writes are refused on the bus, inside a window or not.
    for a in (1, 2, 3, SCRATCH_BASE + 2, GB_BASE + 1):
        for cmd, kw in ((FrameCmd.READ, {"count": 1}), (FrameCmd.WRITE, {"words": [0xFFFFFFFF]})):
            _, frame = tb.clean_request(lambda seq, a=a, cmd=cmd, kw=kw: encode_request(seq, cmd, a, **kw))
            tb.uart.send(frame)
            resp = await tb.uart.recv_response()
            assert resp.seq == frame[1] and resp.status == FrameStatus.BAD_ADDR, f"UART {cmd.name} {a:#x}"
    assert await h.axil_read(Reg.MAGIC) == (MAGIC, 0)


@cocotb.test()
async def test_dma_feeder(dut):
    """Bulk transfers through the SimDmaFeeder (as the sim server serves PCIe DMA): ends off the beat grid
    (bank window and GB: on the burst grid), scratch at any word, read back exactly; a bulk write and read-back
    of bank rows over the burst path move at least half a burst per cycle (recorded as the `dma_feeder`
    figures)."""
    tb = LinkTB(dut)
    await tb.reset()
    h, p = tb.h, tb.p
    burst = p.burst_bits // 8       # bank and GB writes must cover whole bursts; scratch takes any word
    for addr, n in [(bank_address(p, 1, 2) + burst, p.row_words * 2 - 2 * burst),
                    (GB_BASE + burst, p.gb_words * 2 - burst), (SCRATCH_BASE + 12, 1000)]:
        data = bytes(tb.rng.integers(0, 256, n, dtype=np.uint8))
        assert await h.dma.write(addr, data) == 0, f"DMA write at {addr:#x}"
        back, resp = await h.dma.read(addr, n)
        assert resp == 0 and back == data, f"DMA round trip at {addr:#x}"
        axi_back = await h.axi.read(addr, n)         # the pins' master sees the same memory
        assert axi_back.data == data
    _, resp = await h.dma.read(UNMAPPED, 4 * h.dma.beat)
    assert resp == 2, "a DMA read of unmapped space must answer SLVERR"
    n = 8 * p.row_words * 2                          # eight rows of bank 0
    data = bytes(tb.rng.integers(0, 256, n, dtype=np.uint8))
    t0 = get_sim_time("ns")
    assert await h.dma.write(bank_address(p, 0, 0), data) == 0
    t1 = get_sim_time("ns")
    back, resp = await h.dma.read(bank_address(p, 0, 0), n)
    t2 = get_sim_time("ns")
    assert resp == 0 and back == data
    fig = {"bytes": n, "beat_bytes": h.dma.beat, "write_bytes_per_cycle": n * CLK_NS / (t1 - t0),
           "read_bytes_per_cycle": n * CLK_NS / (t2 - t1)}
    record("dma_feeder", fig)
    floor = h.dma.beat / 2 if p.axi_data_bits == p.burst_bits else h.dma.beat / (2 * p.axi_data_bits // p.burst_bits)
    assert min(fig["write_bytes_per_cycle"], fig["read_bytes_per_cycle"]) >= floor, fig


async def frames_in_flight(tb):
    """Several requests sent before any response is read; answered in order with their sequence numbers and
    statuses; the link's frame counters count them."""
    words = [tb.rng_py.getrandbits(32) for _ in range(Frame.MAX_WORDS)]
    reqs = [
        (encode_request(tb.next_seq(), FrameCmd.WRITE, SCRATCH_BASE, words=words), FrameStatus.OK, 0),
        (encode_request(tb.next_seq(), FrameCmd.READ, SCRATCH_BASE, count=Frame.MAX_WORDS), FrameStatus.OK, 256),
        (encode_request(tb.next_seq(), FrameCmd.READ, Reg.MAGIC, count=1), FrameStatus.OK, 1),
        (encode_raw_request(tb.next_seq(), 0x77, 1, 0), FrameStatus.BAD_CMD, 0),
        (encode_raw_request(tb.next_seq(), FrameCmd.READ, 0, 0), FrameStatus.BAD_LEN, 0),
        (encode_raw_request(tb.next_seq(), FrameCmd.READ, Frame.MAX_WORDS + 1, 0), FrameStatus.BAD_LEN, 0),
        (encode_request(tb.next_seq(), FrameCmd.READ, SCRATCH_BASE + 2, count=1), FrameStatus.BAD_ADDR, 0),
        (encode_request(tb.next_seq(), FrameCmd.READ, UNMAPPED, count=4), FrameStatus.BAD_ADDR, 0),
        (encode_request(tb.next_seq(), FrameCmd.WRITE, Reg.MAGIC, words=[1]), FrameStatus.BUS_ERROR, 0),
    ]
    for frame, _, _ in reqs:
        tb.uart.send(frame)
    for i, (frame, status, n) in enumerate(reqs):
        r = await tb.uart.recv_response()
        assert r.seq == frame[1], f"response {i}: seq {r.seq} for request {frame[1]}"
        assert r.status == status, f"response {i}: {r.status!r}, expected {status!r}"
        assert len(r.words) == n
        if i == 1:
            assert list(r.words) == words
        if i == 2:
            assert r.words[0] == MAGIC
    assert (await tb.h.axil_read(Reg.UART_BAD_FRAMES))[0] == 5
    assert (await tb.h.axil_read(Reg.UART_FRAMES_OK))[0] == 3


@cocotb.test()
async def test_uart_frames_in_flight(dut):
    """Pipelined frames over the byte bypass."""
    tb = LinkTB(dut)
    await tb.reset()
    await frames_in_flight(tb)


@cocotb.test()
async def test_uart_frames_through_bridge(dut):
    """The same pipelined frames through the SimByteBridge (the sim server's `uart` link), up to its width in
    bytes per handshake."""
    tb = LinkTB(dut, link="bridge")
    await tb.reset()
    await frames_in_flight(tb)


@cocotb.test()
async def test_uart_fuzz(dut):
    """Random bytes and corrupted frames (UART_FUZZ_BYTES, default 10^5 bytes of noise in all): afterwards
    valid frames are answered, counters match the injected faults and memory shows no trace of them.

    A bit flip in a corrupted frame's length can make the link wait for more payload and swallow the next
    request; the frame then ends by CRC or by the inter-byte timeout, and the host retries, as the driver does.
    Requests and corrupted frames hold no sync byte after their first, so whatever part of them is hunted
    through opens no frame of its own and each corrupted frame is counted exactly once.
    """
    tb = LinkTB(dut)
    await tb.reset()
    h = tb.h
    n_noise = int(os.environ.get("UART_FUZZ_BYTES", "100000"))
    target = SCRATCH_BASE + 4 * 64
    ref = [tb.rng_py.getrandbits(32) for _ in range(8)]
    tb.uart.send(encode_request(tb.next_seq(), FrameCmd.WRITE, target, words=ref))
    assert (await tb.uart.recv_response()).status == FrameStatus.OK
    corrupted = sent = retries = 0

    async def read_back():
        nonlocal retries
        for _attempt in range(4):
            seq, request = tb.clean_request(lambda s: encode_request(s, FrameCmd.READ, target, count=8))
            tb.uart.send(request)
            try:
                r = await tb.uart.recv_response(timeout_us=100)
            except cocotb.triggers.SimTimeoutError:
                retries += 1
                continue
            if r.seq == seq:
                return r
        raise AssertionError("link did not recover after 4 attempts")

    while sent < n_noise:
        noise = bytes(b if b != Frame.REQ_SYNC else 0 for b in tb.rng.integers(0, 256, 1000, dtype=np.uint8))
        tb.uart.send(noise)
        sent += len(noise)
        frame = bytearray(tb.clean_request(lambda s: encode_request(s, FrameCmd.WRITE, target, words=[0] * 8))[1])
        frame[tb.rng_py.randrange(1, len(frame))] ^= 1 << tb.rng_py.randrange(8)
        tb.uart.send(bytes(frame))
        corrupted += 1
        r = await read_back()
        assert r.status == FrameStatus.OK and list(r.words) == ref, f"after {corrupted} corrupted frames: {r}"
    dropped = (await h.axil_read(Reg.UART_DROPPED_BYTES))[0]
    crc_errors = (await h.axil_read(Reg.UART_CRC_ERRORS))[0]
    timeouts = (await h.axil_read(Reg.UART_TIMEOUTS))[0]
    assert crc_errors + timeouts == corrupted, f"{crc_errors} CRC errors + {timeouts} timeouts, {corrupted} injected"
    assert dropped >= sent, f"{dropped} bytes dropped while hunting, {sent} noise bytes sent"
    # Noise with sync bytes in it too: frames open on garbage and die by CRC or timeout; the link recovers.
    tb.uart.send(bytes(tb.rng.integers(0, 256, 2000, dtype=np.uint8)))
    r = await read_back()
    assert list(r.words) == ref
    dut._log.info("%d noise bytes, %d corrupted frames (%d CRC, %d timeouts), %d host retries; link in sync",
                  sent, corrupted, crc_errors, timeouts, retries)


@cocotb.test()
async def test_uart_timeout_resync(dut):
    """A truncated frame is abandoned after the inter-byte timeout; the next frame is served.

    On the byte bypass there is no byte time: the link's timeout is Frame.BYPASS_TIMEOUT_CYCLES idle cycles
    whatever UART_BAUD_DIV says (docs/uart_link.md)."""
    tb = LinkTB(dut)
    await tb.reset()
    frame = encode_request(tb.next_seq(), FrameCmd.READ, Reg.MAGIC, count=1)
    tb.uart.send(frame[:6])
    await ClockCycles(dut.clk, Frame.BYPASS_TIMEOUT_CYCLES + 50)
    tb.uart.send(encode_request(tb.next_seq(), FrameCmd.READ, Reg.MAGIC, count=1))
    r = await tb.uart.recv_response()
    assert r.status == FrameStatus.OK and r.words == (MAGIC,)
    assert (await tb.h.axil_read(Reg.UART_TIMEOUTS))[0] == 1


@cocotb.test()
async def test_uart_phy_in_the_loop(dut):
    """The 8N1 PHY against cocotbext-uart (a peer model): frames at clk/8 baud, and a framing error counted."""
    tb = LinkTB(dut)
    await tb.reset()
    h = tb.h
    div = 8
    await h.axil_write(Reg.UART_BAUD_DIV, div)
    h.select_link("phy")
    src, sink = h.phy_peers(div)
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
        await Timer(bit_ns, "ns")
    dut.uart_rx.value = 1
    await ClockCycles(dut.clk, 4 * div)
    assert (await h.axil_read(Reg.UART_FRAMING_ERRORS))[0] == 1
    h.select_link("bypass")


@cocotb.test()
async def test_uart_efficiency(dut):
    """Payload bytes over wire bytes for 256-word bursts, counted on the link's byte streams; recorded as the
    `uart_efficiency` figures {uart_write_efficiency, uart_read_efficiency}."""
    tb = LinkTB(dut)
    await tb.reset()
    n = Frame.MAX_WORDS
    words = [tb.rng_py.getrandbits(32) for _ in range(n)]
    result = {}
    for name, frame in (("write", encode_request(1, FrameCmd.WRITE, SCRATCH_BASE, words=words)),
                        ("read", encode_request(2, FrameCmd.READ, SCRATCH_BASE, count=n))):
        sent0 = tb.uart.sent
        tb.uart.send(frame)
        r = await tb.uart.recv_response()
        assert r.status == FrameStatus.OK
        wire = (tb.uart.sent - sent0) + r.nbytes
        result[f"uart_{name}_efficiency"] = 4 * n / wire
    assert list(r.words) == words
    dut._log.info("UART efficiency at %d-word bursts: %s", n, result)
    assert min(result.values()) >= 0.95
    record("uart_efficiency", result)


@pytest.mark.parametrize("preset_name", PRESETS)
def test_device_links(preset_name):
    run(preset_name)


def run(preset_name, *, testcase=None, extra_env=None, log_file=None) -> dict:
    """Run this module's cocotb tests (or `testcase`) on the `preset_name` device in build/tb/device_links_<preset>/;
    returns the figures they recorded (tb/support/results.py)."""
    from tb.support import runner

    top = f"pim_device_{preset_name}"
    return runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"], test_module="tb.device.test_links",
                      config=f"device_links_{preset_name}", extra_env={"PIM_PRESET": preset_name, **(extra_env or {})},
                      testcase=testcase, log_file=log_file, shared_model=True)
