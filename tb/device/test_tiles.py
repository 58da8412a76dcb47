"""The whole device's tiles (rtl/pim_device_<preset>.v): a GEMV tile and a decode-attention head loaded over
AXI4, run by one hub command each, read back from scratch.

What is compared: the tile outputs bit for bit with the golden model (`golden.gemv`,
`golden.attention.attention`); PERF_MAC with the ideal MAC cycle count; PERF_BUSY with the cycles in which the
testbench saw the `busy` output high. Each test records its figures (tb/support/results.py): `gemv_tile`
{m, k, cycles, ideal, utilization, raw_cycles_per_s} and `attention_tile` {tokens, dim, cycles, ideal,
utilization}, which ci/bench.py takes from runner.run's return value.
"""

import os
import time

import cocotb
import numpy as np
import pytest
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from pimhil.contract import (AF_SEGMENTS, CMDQ_BASE, CONTROL_ABORT, CONTROL_CLEAR_COUNTERS, CONTROL_CLEAR_ERROR,
                             GB_BASE, SCRATCH_BASE, Command, Flag, HubOp, Op, Reg, bank_address)
from pimhil.golden import bf16_to_bits, f32_to_bits, gemv
from pimhil.golden.attention import attention
from pimhil.golden.device import GoldenDevice
from pimhil.golden.elementwise import ewadd, ewmul
from pimhil.golden.fpbits import fp32_to_bf16
from tb.support.device_harness import CLK_NS, DeviceHarness, preset_from_env
from tb.support.results import record
from tb.support.seed import rngs
from tb.support.vectors import bf16_operands, fp32_operands
from tb.device import PRESETS


class TileTB:
    """The harness (AXI masters only: tiles need no UART feeder) and the test's random generators."""

    def __init__(self, dut):
        self.dut = dut
        self.h = DeviceHarness(dut)
        self.p = preset_from_env()
        self.rng_py, self.rng = rngs(dut._log)


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


async def push(tb, cmd, golden=None):
    """Push `cmd` into the command queue over AXI4-Lite (each word accepted), and into `golden` (a GoldenDevice
    the test compares with) word for word as well."""
    for w in cmd.queue_words(tb.p):
        assert await tb.h.axil_write(CMDQ_BASE, w) == 0
        if golden is not None:
            golden.write(CMDQ_BASE, w)


async def load_gemv(tb, w, x, *, flags=0) -> Command:
    """W (M x K, BF16 bits) into every bank from row 0 (bank b holds rows b, b+B, ...: one contiguous region), x
    into bank 0 right after; returns the GEMV_TILE command that multiplies them into scratch from word 0."""
    p = tb.p
    groups, chunks = w.shape[0] // p.banks, w.shape[1] // p.row_words
    for b in range(p.banks):
        await tb.h.axi.write(bank_address(p, b, 0), np.ascontiguousarray(w[b::p.banks]).tobytes())
    await tb.h.axi.write(bank_address(p, 0, groups * chunks), x.tobytes())
    return Command(HubOp.GEMV_TILE, flags=flags, row=0, col=groups, count=chunks, bank=0, gb=groups * chunks, imm=0)


async def run_tile(tb, cmd):
    """Clear the counters, push one tile command, wait for it; returns (PERF_BUSY, PERF_MAC, counted busy)."""
    h = tb.h
    # Bank writes over AXI are posted: the array may still be executing the last of them. Counting starts
    # once it is idle, or the counters' clear and the testbench's count start in different cycles of it.
    while int(tb.dut.busy.value):
        await RisingEdge(tb.dut.clk)
    assert await h.axil_write(Reg.CONTROL, CONTROL_CLEAR_COUNTERS) == 0
    counter = BusyCounter(tb.dut)
    counter.start()
    await push(tb, cmd)
    await h.wait_idle()
    counter.stop()
    busy = (await h.axil_read(Reg.PERF_BUSY))[0]
    mac = (await h.axil_read(Reg.PERF_MAC))[0]
    err = (await h.axil_read(Reg.ERROR_CODE))[0]
    assert err == 0, f"tile refused with error {err:#x}"
    return busy, mac, counter.count


async def read_scratch(tb, addr_word, n):
    r = await tb.h.axi.read(SCRATCH_BASE + 4 * addr_word, 4 * n)
    return np.frombuffer(r.data, dtype="<u4").astype(np.uint32)


async def raw_cycles_per_s(tb, cmd, *, runs=8):
    """Simulator speed on `cmd` with no Python woken until `busy` falls; best of `runs`, since one tile is only
    tens of milliseconds of wall time."""
    dut = tb.dut
    best = 0.0
    for _ in range(runs):
        await push(tb, cmd)
        if not int(dut.busy.value):
            await RisingEdge(dut.busy)
        t0, c0 = time.perf_counter(), get_sim_time("ns")
        await FallingEdge(dut.busy)
        best = max(best, (get_sim_time("ns") - c0) / CLK_NS / (time.perf_counter() - t0))
    return best


@cocotb.test()
async def test_gemv_tile(dut):
    """GEMV tile (TILE_M x TILE_K, default 512 x 1024 on sim) loaded by AXI4, bit-exact against golden.gemv;
    PERF_BUSY equals the busy cycles the testbench counted, PERF_MAC the ideal M*K/(B*L)."""
    tb = TileTB(dut)
    await tb.h.reset()
    p = tb.p
    m = int(os.environ.get("TILE_M", str(min(512, p.banks * p.accs))))
    k = int(os.environ.get("TILE_K", str(max(1024, p.row_words))))
    w = bf16_to_bits(tb.rng.standard_normal((m, k)) * 0.05)
    x = bf16_to_bits(tb.rng.standard_normal(k))
    cmd = await load_gemv(tb, w, x)
    busy, mac, counted = await run_tile(tb, cmd)
    y = await read_scratch(tb, 0, m)
    assert np.array_equal(y, gemv(w, x, lanes=p.lanes)), "GEMV tile differs from golden.gemv"
    ideal = m * k // (p.banks * p.lanes)
    assert mac == ideal, f"PERF_MAC {mac}, ideal {ideal}"
    assert busy == counted, f"PERF_BUSY {busy}, testbench counted {counted}"
    dut._log.info("GEMV tile %dx%d bit-exact: %d busy cycles, ideal %d, utilisation %.4f", m, k, busy, ideal,
                  ideal / busy)
    raw_cps = await raw_cycles_per_s(tb, cmd)
    dut._log.info("raw simulator speed on the tile: %.0f cycles/s", raw_cps)
    record("gemv_tile", {"m": m, "k": k, "cycles": busy, "ideal": ideal, "utilization": ideal / busy,
                         "raw_cycles_per_s": raw_cps})


async def load_attention(tb, q, k, v, *, kbase, vbase):
    p, axi = tb.p, tb.h.axi
    T, d = k.shape
    for b in range(p.banks):                 # keys b, b+B, ... are consecutive slots: one region per bank
        await axi.write(bank_address(p, b, kbase), np.ascontiguousarray(k[b::p.banks]).tobytes())
    ch = min(T, p.row_words)
    nch = T // ch
    vt = np.ascontiguousarray(v.T)
    for i in range(d):
        for c in range(nch):
            await axi.write(bank_address(p, i % p.banks, vbase + (i // p.banks) * nch + c),
                            np.ascontiguousarray(vt[i, c * ch:(c + 1) * ch]).tobytes())
    await axi.write(GB_BASE, q.tobytes())


@cocotb.test()
async def test_attention_tile(dut):
    """Decode attention, one head (ATTN_T tokens, default 512; ATTN_D = 128), bit-exact against
    golden.attention; PERF_BUSY equals the testbench's busy count."""
    tb = TileTB(dut)
    await tb.h.reset()
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
    record("attention_tile", {"tokens": T, "dim": d, "cycles": busy, "ideal": ideal, "utilization": ideal / busy})


def finite_corner_bf16(rng, shape):
    """Finite BF16 patterns with exponents 2^-30..2^30 and 2 % zeros, subnormals and the smallest normals."""
    n = int(np.prod(shape))
    bits = (rng.integers(0, 2, n) << 15) | ((127 + rng.integers(-30, 31, n)) << 7) | rng.integers(0, 128, n)
    small = np.array([0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x8080])
    bits = np.where(rng.random(n) < 0.02, small[rng.integers(0, len(small), n)], bits)
    return bits.astype(np.uint16).reshape(shape)


async def write_scratch(tb, addr_word, words):
    await tb.h.axi.write(SCRATCH_BASE + 4 * addr_word, np.asarray(words, dtype="<u4").tobytes())


@cocotb.test()
async def test_corner_operands(dut):
    """The tiles and the element-wise ops on operands from every class (zero, subnormal, normal over the whole
    exponent range, Inf, NaN, exact-cancellation partners), through the whole device, bit-exact against the
    golden model. The block testbenches reach these classes on their own tops; here the sequencer, the
    response router and the softmax datapath carry them as well."""
    tb = TileTB(dut)
    await tb.h.reset()
    p = tb.p
    # GEMV: two row groups by two chunks, FP32 and then BF16 results (Flag.BF16 rounds in the hub's read-out).
    m, k = 2 * p.banks, 2 * p.row_words
    for trial, flags in enumerate((0, Flag.BF16)):
        w = bf16_operands(tb.rng, (m, k), special_rate=0.01)
        x = bf16_operands(tb.rng, k, special_rate=0.01)
        await run_tile(tb, await load_gemv(tb, w, x, flags=flags))
        want = gemv(w, x, lanes=p.lanes)
        got = await read_scratch(tb, 0, m)
        if flags & Flag.BF16:
            want = fp32_to_bf16(want).astype(np.uint32)      # the high half of each word is 0
        assert np.array_equal(got, want), f"GEMV tile {trial} (flags {int(flags)}) differs from golden.gemv"
    # Element-wise: a and b in scratch, both ops, results compared word for word.
    n = 64
    a, b = fp32_operands(tb.rng, n, special_rate=0.1), fp32_operands(tb.rng, n, special_rate=0.1)
    await write_scratch(tb, 0, a)
    await write_scratch(tb, n, b)
    for i, (op, ref) in enumerate(((Op.EWMUL, ewmul), (Op.EWADD, ewadd))):
        await run_tile(tb, Command(op, row=0, col=n, gb=(2 + i) * n, count=n))
        got = await read_scratch(tb, (2 + i) * n, n)
        assert np.array_equal(got, ref(a, b)), f"{op.name} differs from golden"
    # Attention: finite corner operands (exponents 2^-30..2^30, zeros, subnormals: scores far apart, so most
    # exponentials underflow) under scales from every class (negative, zero, subnormal, the largest finite,
    # infinities, NaN: exp2's saturation, the reciprocal's domain edges, NaN propagation), then every class in
    # the operands themselves. Finite operands at the standard scale must give a finite head (the check of
    # the check: a NaN-only head would compare equal to a NaN-only golden).
    T = min(64, p.score_words)
    d = min(p.lanes * p.bursts_per_row, p.banks * p.accs, 32)
    vbase = -(-(T // p.banks) * (d // p.lanes) // p.bursts_per_row)
    std = int(f32_to_bits(np.float32(1 / np.sqrt(d))))
    trials = [(finite_corner_bf16, s) for s in (std, std | 0x80000000, 0x00000000, 0x00000001, 0x7F7FFFFF,
                                                  0x7F800000, 0xFF800000, 0x7FC00000)]
    trials.append((lambda rng, shape: bf16_operands(rng, shape, special_rate=0.002), std))
    finite = []
    for trial, (draw, scale) in enumerate(trials):
        q, kk, vv = draw(tb.rng, d), draw(tb.rng, (T, d)), draw(tb.rng, (T, d))
        await load_attention(tb, q, kk, vv, kbase=0, vbase=vbase)
        await run_tile(tb, Command(HubOp.ATTN_TILE, row=0, col=vbase, count=T, acc=d // p.lanes, gb=0, imm=scale))
        out = await read_scratch(tb, 0, d)
        assert np.array_equal(out, attention(q, kk, vv, scale, p)["out"]), \
            f"attention {trial} (scale {scale:#010x}) differs from golden"
        finite.append(int(np.count_nonzero((out & 0x7F800000) != 0x7F800000)))
    assert finite[0] == d, f"finite operands at scale 1/sqrt(d) gave {d - finite[0]} non-finite outputs"
    dut._log.info("corner operands: 2 GEMV tiles %dx%d, EWMUL and EWADD of %d, %d attention heads T=%d d=%d "
                  "bit-exact (finite outputs per head: %s)", m, k, n, len(trials), T, d, finite)


@cocotb.test()
async def test_activation_and_bias_over_axi(dut):
    """The array's own commands through the command queue: an AF table of corner FP32 slopes and intercepts, every
    accumulator biased (per bank, then all banks) to corner values, AF over them, read back as FP32 and as
    BF16 into scratch, mixed with array reads and GB/bank copies; scratch and the error registers equal the
    golden device's."""
    tb = TileTB(dut)
    await tb.h.reset()
    p, h, r = tb.p, tb.h, tb.rng_py
    gold = GoldenDevice(p)
    lut = fp32_operands(tb.rng, 2 * AF_SEGMENTS, special_rate=0.05)
    cmds = [Command(Op.WR_AFLUT, imm=i, data=(int(lut[2 * i]), int(lut[2 * i + 1]))) for i in range(AF_SEGMENTS)]
    for rnd in range(2):
        bias = fp32_operands(tb.rng, p.banks * p.accs, special_rate=0.1)
        cmds += [Command(Op.WR_BIAS, bank=b, acc=a, imm=int(bias[a * p.banks + b]))
                 for a in range(p.accs) for b in range(p.banks)]
        cmds.append(Command(Op.WR_BIAS, flags=Flag.ALL, acc=r.randrange(p.accs), imm=int(bias[0])))
        cmds += [Command(Op.AF, acc=a) for a in range(p.accs) if r.random() < 0.75]
        base = rnd * 2 * p.banks * p.accs
        cmds += [Command(Op.RD_MAC, flags=flags, acc=a, imm=base + (2 * a + i) * p.banks)
                 for a in range(p.accs) for i, flags in enumerate((0, Flag.BF16))]
    data = bf16_operands(tb.rng, (4, p.lanes))
    # Memories keep their contents across reset (earlier tests wrote the GB): both GB bursts copied are written.
    cmds += [Command(Op.WR_GB, gb=g, data=tuple(int(v) for v in data[g])) for g in range(2)]
    row, col = p.rows - 1, p.bursts_per_row - 2
    cmds += [Command(Op.COPY_GBBK, bank=p.banks - 1, row=row, col=col, gb=0, count=2),
             Command(Op.COPY_BKGB, bank=p.banks - 1, row=row, col=col, gb=2, count=2),
             Command(Op.RD_GB, gb=0, count=4, imm=4 * p.banks * p.accs),
             Command(Op.RD_SBK, bank=p.banks - 1, row=row, col=col, count=2, imm=4 * p.banks * p.accs + 2 * p.lanes),
             Command(Op.SYNC)]
    for cmd in cmds:
        await push(tb, cmd, gold)
    await h.wait_idle()
    regs = (Reg.ERROR_CODE, Reg.ERROR_COUNT)
    assert [(await h.axil_read(g))[0] for g in regs] == [gold.read(g) for g in regs] == [0, 0]
    n = 4 * p.banks * p.accs + 3 * p.lanes
    got = await read_scratch(tb, 0, n)
    want = gold.scratch[:n]
    diff = np.flatnonzero(got != want)
    assert diff.size == 0, f"scratch words {diff[:8].tolist()} differ: {got[diff[:4]]} != golden {want[diff[:4]]}"
    assert np.count_nonzero(got) > n // 2, "the read-backs are mostly zero: the commands did not run"
    dut._log.info("%d commands, %d scratch words bit-exact (%d non-zero)", len(cmds), n, np.count_nonzero(got))


@cocotb.test()
async def test_refusals_over_axi(dut):
    """Malformed hub and array commands pushed over AXI4-Lite (the PCIe path), each followed by the error
    registers compared with the golden device's and the error cleared; a command held in part is aborted; then a
    GEMV tile still runs bit-exact: the device refuses, counts and keeps serving."""
    tb = TileTB(dut)
    await tb.h.reset()
    p, h = tb.p, tb.h
    gold = GoldenDevice(p)
    regs = (Reg.ERROR_CODE, Reg.ERROR_OP, Reg.ERROR_COUNT, Reg.STATUS)
    bad = [
        Command(HubOp.GEMV_TILE, flags=Flag.ZERO, row=0, col=1, count=1, gb=1),         # flags a tile lacks
        Command(HubOp.ATTN_TILE, flags=Flag.BF16, count=p.banks, acc=1, imm=0x3F800000),
        Command(HubOp.GEMV_TILE, row=0, col=1, count=1, gb=1, imm=p.scratch_words - 1),  # y past scratch
        Command(HubOp.GEMV_TILE, row=p.rows - 1, col=2, count=1, gb=0),                  # rows past the bank
        Command(HubOp.ATTN_TILE, count=2 * p.score_words, acc=1, imm=0x3F800000),         # T past scores
        Command(Op.EWMUL, row=0, col=0, gb=p.scratch_words - 1, count=2),
        Command(Op.EWADD, row=p.scratch_words - 1, col=0, gb=0, count=4),
        Command(Op.MAC_ABK, flags=Flag.READ, acc=0, count=1, imm=p.scratch_words - 1),   # answer past scratch
        Command(Op.RD_SBK, bank=p.banks, count=1),
        Command(Op.WR_AFLUT, imm=AF_SEGMENTS, data=(0, 0)),
        Command(Op.MAC_SBK, flags=0x40, count=1),                                         # undefined flag
        Command(0x7E),
    ]
    for cmd in bad:
        await push(tb, cmd, gold)
        await h.wait_idle()
        got = [(await h.axil_read(r))[0] for r in regs]
        want = [gold.read(r) for r in regs]
        assert got == want, f"{cmd}: {dict(zip((r.name for r in regs), got))} != golden {want}"
        assert got[0] != 0, f"{cmd} was not refused"
        assert await h.axil_write(Reg.CONTROL, CONTROL_CLEAR_ERROR) == 0
        gold.write(Reg.CONTROL, CONTROL_CLEAR_ERROR)
    # A command held in part (its data words missing) is dropped by CONTROL_ABORT.
    words = Command(Op.WR_GB, gb=0, data=tuple(range(p.lanes))).queue_words(p)
    for w in words[:-1]:
        assert await h.axil_write(CMDQ_BASE, w) == 0
    assert await h.axil_write(Reg.CONTROL, CONTROL_ABORT) == 0
    assert (await h.axil_read(Reg.ERROR_COUNT))[0] == len(bad)
    m, k = p.banks, p.row_words
    w = bf16_to_bits(tb.rng.standard_normal((m, k)))
    x = bf16_to_bits(tb.rng.standard_normal(k))
    await run_tile(tb, await load_gemv(tb, w, x))
    assert np.array_equal(await read_scratch(tb, 0, m), gemv(w, x, lanes=p.lanes)), "GEMV after the refusals"


@pytest.mark.parametrize("preset_name", PRESETS)
def test_device_tiles(preset_name):
    run(preset_name)


def run(preset_name, *, testcase=None, extra_env=None, log_file=None) -> dict:
    """Run this module's cocotb tests (or `testcase`) on the `preset_name` device in build/tb/device_tiles_<preset>/;
    returns the figures they recorded (tb/support/results.py)."""
    from tb.support import runner

    top = f"pim_device_{preset_name}"
    return runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"], test_module="tb.device.test_tiles",
                      config=f"device_tiles_{preset_name}", extra_env={"PIM_PRESET": preset_name, **(extra_env or {})},
                      testcase=testcase, log_file=log_file, shared_model=True)
