"""The control hub (with its bank array) on its bus port, every read compared with golden.GoldenDevice."""

import os

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from pimhil.contract import (LINK_COUNTERS, AF_SEGMENTS, BANK_BASE, CMDQ_BASE, CONTROL_ABORT, CONTROL_CLEAR_COUNTERS,
                             CONTROL_CLEAR_ERROR, GB_BASE, SCRATCH_BASE, STATUS_BUSY, STATUS_DONE, STATUS_ERROR,
                             STATUS_PARTIAL, Command, ErrorCode, Flag, HubError, HubOp, Op, Reg, bank_address, preset)
from pimhil.golden.device import BusError as GoldenBusError
from pimhil.golden.device import GoldenDevice
from tb.support import funcov
from tb.support.bus import BusError, BusMaster
from tb.support.seed import rngs
from tb.support.vectors import bf16_operands, fp32_operands

# Registers that count time: the golden model does not model them.
TIMED = {Reg.PERF_CYCLES, Reg.PERF_BUSY, Reg.PERF_MAC, Reg.PERF_STALL, Reg.STATUS, Reg.CMDQ_LEVEL}


class TB:
    def __init__(self, dut):
        self.dut = dut
        self.p = preset(os.environ["PIM_PRESET"])
        self.rng_py, self.rng = rngs(dut._log)
        Clock(dut.clk, 10, unit="ns").start()
        for name, _ in LINK_COUNTERS:
            getattr(dut, f"uart_{name}").value = 0
        self.bus = funcov.watch_bus(BusMaster(dut, "bus", dut.clk), self)
        self.golden = GoldenDevice(self.p)

    async def reset(self):
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        # Bank memory and the GB keep their contents over reset (like DRAM): zero them through the queue, the GB
        # burst by burst, then each bank row copied from it in GB-sized pieces (a sixteenth of the commands of a
        # WR_ABK per burst, which made every test's reset ~9 s on the coverage model).
        p = self.p
        zero = (0,) * p.lanes
        for g in range(p.gb_bursts):
            await self.command(Command(Op.WR_GB, gb=g, data=zero))
        # A copy takes a cycle per burst, far longer than its push: the queue is let drain every half queue.
        piece = min(p.gb_bursts, p.bursts_per_row)
        copies = [Command(Op.COPY_GBBK, bank=bank, row=row, col=col, gb=0, count=min(piece, p.bursts_per_row - col))
                  for bank in range(p.banks) for row in range(p.rows) for col in range(0, p.bursts_per_row, piece)]
        per_drain = max(1, p.cmdq_words // 2 // len(copies[0].queue_words(p)))
        for i, cmd in enumerate(copies):
            await self.command(cmd)
            if i % per_drain == per_drain - 1:
                await self.idle()
        for i in range(p.scratch_words):
            await self.write(SCRATCH_BASE + 4 * i, 0)
        await self.idle()

    async def write(self, addr, value):
        """Write to both; a bus error must happen on both or neither."""
        try:
            self.golden.write(addr, value)
            g_err = None
        except GoldenBusError as e:
            g_err = e
        try:
            await self.bus.write(addr, value)
            r_err = None
        except BusError as e:
            r_err = e
        assert (g_err is None) == (r_err is None), f"write {addr:#x}: golden {g_err}, rtl {r_err}"

    async def read(self, addr):
        try:
            want = self.golden.read(addr)
        except GoldenBusError:
            want = "bus error"
        try:
            got = await self.bus.read(addr)
        except BusError:
            got = "bus error"
        assert got == want, f"read {addr:#x}: rtl {got!r}, golden {want!r}"
        return got

    async def command(self, cmd: Command):
        for w in cmd.queue_words(self.p):
            await self.write(CMDQ_BASE, w)

    async def idle(self, timeout=200000):
        for _ in range(timeout // 10):
            status = int(await self.bus.read(Reg.STATUS))
            if not status & STATUS_BUSY:
                assert status & STATUS_DONE, f"STATUS {status:#x}: idle but not done"
                return
            for _ in range(8):
                await RisingEdge(self.dut.clk)
        raise TimeoutError("hub did not go idle")

    async def compare_scratch(self, n=None):
        n = self.p.scratch_words if n is None else n
        for i in range(n):
            await self.read(SCRATCH_BASE + 4 * i)

    async def compare_regs(self):
        for r in Reg:
            if r not in TIMED and r != Reg.CONTROL:
                await self.read(int(r))


@cocotb.test()
async def test_identity_and_bus_errors(dut):
    tb = TB(dut)
    await tb.reset()
    await tb.compare_regs()
    for addr in (0x3, 0x100, Reg.CONTROL, 0x0FFC, CMDQ_BASE, GB_BASE + tb.p.gb_words * 2, 0x00800000,
                 BANK_BASE + tb.p.banks * (1 << 30)):
        await tb.read(addr & 0xFFFFFFFF)
    await tb.write(Reg.MAGIC, 1)                     # read-only
    await tb.write(Reg.UART_BAUD_DIV, 2)             # clamped to 4
    await tb.compare_regs()
    await tb.write(Reg.UART_BAUD_DIV, 0x10002)       # the low 16 bits, then clamped
    await tb.compare_regs()
    await tb.write(Reg.UART_BAUD_DIV, 0x1FFFF)
    await tb.compare_regs()


@cocotb.test()
async def test_windows(dut):
    """Bank and GB windows: full bursts commit, a partial burst is dropped (and counted), reads come back."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    wpb = p.lanes // 2
    for bank, row, col in [(0, 0, 0), (p.banks - 1, p.rows - 1, p.bursts_per_row - 1), (1, 3, 2)]:
        base = bank_address(p, bank, row, col)
        words = [tb.rng_py.getrandbits(32) for _ in range(wpb)]
        for i in reversed(range(wpb)):               # any order
            await tb.write(base + 4 * i, words[i])
        for i in range(wpb):
            await tb.read(base + 4 * i)
    for g in range(p.gb_bursts):
        for i in range(wpb):
            await tb.write(GB_BASE + g * 4 * wpb + 4 * i, tb.rng_py.getrandbits(32))
    await tb.write(GB_BASE, 0x12345678)              # partial burst...
    await tb.write(GB_BASE + 4 * wpb, 0x1)           # ...dropped when another burst starts
    for i in range(p.gb_words // 2):
        await tb.read(GB_BASE + 4 * i)
    await tb.compare_regs()


@cocotb.test()
async def test_queued_commands(dut):
    """Random loads, MACs with READ, RD_MAC/RD_SBK/RD_GB into scratch, executed from the queue."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    r = tb.rng_py
    for row in range(2):
        data = bf16_operands(tb.rng, (p.banks, p.bursts_per_row, p.lanes), special_rate=0.01)
        for b in range(p.banks):
            for c in range(p.bursts_per_row):
                await tb.command(Command(Op.WR_SBK, bank=b, row=row, col=c, data=tuple(int(v) for v in data[b, c])))
    gbdata = bf16_operands(tb.rng, (p.gb_bursts, p.lanes))
    for g in range(p.gb_bursts):
        await tb.command(Command(Op.WR_GB, gb=g, data=tuple(int(v) for v in gbdata[g])))
    for _ in range(60):
        k = r.random()
        acc = r.randrange(p.accs)
        dest = r.randrange(p.scratch_words - 4 * p.banks)
        if k < 0.5:
            n = r.randint(1, min(p.bursts_per_row, p.gb_bursts))
            await tb.command(Command(r.choice([Op.MAC_ABK, Op.MAC_SBK]), bank=r.randrange(p.banks),
                                     flags=r.choice([Flag.ZERO | Flag.READ, Flag.READ, 0, Flag.READ | Flag.BF16]),
                                     acc=acc, row=r.randrange(2), col=r.randrange(p.bursts_per_row - n + 1),
                                     count=n, gb=r.randrange(p.gb_bursts - n + 1), imm=dest))
        elif k < 0.7:
            await tb.command(Command(Op.RD_MAC, acc=acc, imm=dest, flags=r.choice([0, Flag.BF16])))
        elif k < 0.8:
            await tb.command(Command(Op.WR_BIAS, flags=Flag.ALL, acc=acc, imm=int(fp32_operands(tb.rng, 1)[0])))
        elif k < 0.9:
            await tb.command(Command(Op.RD_SBK, bank=r.randrange(p.banks), row=r.randrange(2), count=2, imm=dest))
        else:
            await tb.command(Command(Op.RD_GB, gb=0, count=2, imm=dest))
    await tb.command(Command(Op.SYNC))
    await tb.idle()
    await tb.compare_scratch()
    await tb.compare_regs()


@cocotb.test()
async def test_refusal_latches_and_recovers(dut):
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    await tb.command(Command(Op.WR_BIAS, flags=Flag.ALL, acc=0, imm=0x3F800000))
    await tb.command(Command(Op.MAC_ABK, acc=p.accs, count=1))                 # refused: BAD_ACC
    await tb.command(Command(Op.WR_BIAS, flags=Flag.ALL, acc=0, imm=0x40000000))  # drained, never runs
    await tb.idle()
    assert int(await tb.read(Reg.ERROR_CODE)) == ErrorCode.BAD_ACC
    assert int(await tb.read(Reg.ERROR_OP)) == Op.MAC_ABK
    assert int(await tb.bus.read(Reg.STATUS)) & STATUS_ERROR
    await tb.command(Command(Op.RD_MAC, acc=0, imm=0))                        # dropped while latched
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_ERROR)
    await tb.command(Command(Op.RD_MAC, acc=0, imm=0))
    await tb.command(Command(Op.RD_MAC, acc=0, imm=p.scratch_words - 1))      # refused: BAD_SCRATCH
    await tb.idle()
    await tb.compare_scratch(2 * p.banks)
    assert int(await tb.read(Reg.ERROR_CODE)) == HubError.BAD_SCRATCH
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_ERROR)
    await tb.command(Command(0x7E))                                           # unknown opcode
    await tb.idle()
    await tb.compare_regs()
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_ERROR | CONTROL_CLEAR_COUNTERS)
    await tb.compare_regs()


@cocotb.test()
async def test_elementwise(dut):
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    n = 64
    vals = fp32_operands(tb.rng, 2 * n)
    for i, v in enumerate(vals):
        await tb.write(SCRATCH_BASE + 4 * i, int(v))
    await tb.command(Command(Op.EWADD, row=0, col=n, gb=2 * n, count=n))
    await tb.command(Command(Op.EWMUL, row=0, col=n, gb=3 * n, count=n))
    await tb.command(Command(Op.EWADD, row=0, col=n, gb=1, count=n))        # overlapping destination
    await tb.command(Command(Op.EWMUL, row=0, col=0, gb=p.scratch_words - 1, count=2))   # refused
    await tb.idle()
    await tb.compare_scratch(4 * n + 8)
    await tb.compare_regs()


@cocotb.test()
async def test_perf_counters(dut):
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_COUNTERS)
    bursts = 0
    for g in range(5):
        n = 1 + g
        await tb.command(Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, acc=g, count=n, imm=g * p.banks))
        bursts += n
    await tb.idle()
    assert int(await tb.bus.read(Reg.PERF_MAC)) == bursts
    assert int(await tb.read(Reg.PERF_CMDS)) == 5


async def load_gemv(tb, w, x, *, row0, xbank, xrow):
    """Weights of row i in bank i % B, row row0 + (i // B) * chunks + c; x chunk c in xbank, row xrow + c."""
    p = tb.p
    chunks = w.shape[1] // p.row_words
    for i in range(w.shape[0]):
        b, g = i % p.banks, i // p.banks
        for c in range(chunks):
            seg = np.ascontiguousarray(w[i, c * p.row_words:(c + 1) * p.row_words]).view(np.uint32)
            base = bank_address(p, b, row0 + g * chunks + c)
            for j, v in enumerate(seg):
                await tb.write(base + 4 * j, int(v))
    for c in range(chunks):
        seg = np.ascontiguousarray(x[c * p.row_words:(c + 1) * p.row_words]).view(np.uint32)
        base = bank_address(p, xbank, xrow + c)
        for j, v in enumerate(seg):
            await tb.write(base + 4 * j, int(v))


@cocotb.test()
async def test_gemv_tile(dut):
    """GEMV tile with more row groups than accumulators (two passes) and three K chunks."""
    from pimhil.golden import bf16_to_bits, gemv
    from pimhil.contract import HubOp

    tb = TB(dut)
    await tb.reset()
    p = tb.p
    groups, chunks = p.accs + 2, 3
    m_rows, k = groups * p.banks, chunks * p.row_words
    w = bf16_to_bits(tb.rng.standard_normal((m_rows, k)) * 0.1)
    x = bf16_to_bits(tb.rng.standard_normal(k))
    row0, xbank, xrow = 2, 1, 2 + groups * chunks
    await load_gemv(tb, w, x, row0=row0, xbank=xbank, xrow=xrow)
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_COUNTERS)
    dest = 16
    await tb.command(Command(HubOp.GEMV_TILE, row=row0, col=groups, count=chunks, bank=xbank, gb=xrow, imm=dest))
    await tb.idle()
    await tb.compare_scratch(dest + m_rows + 4)
    got = np.array(tb.golden.scratch[dest:dest + m_rows], np.uint32)
    assert np.array_equal(got, gemv(w, x, lanes=p.lanes)), "tile result differs from golden.gemv"
    mac = int(await tb.bus.read(Reg.PERF_MAC))
    busy = int(await tb.bus.read(Reg.PERF_BUSY))
    assert mac == m_rows * k // (p.banks * p.lanes), "every MAC burst counted once, nothing else"
    dut._log.info("GEMV tile %dx%d: %d MAC cycles in %d busy cycles (%.3f)", m_rows, k, mac, busy, mac / busy)
    # Refusals: a tile that runs past the last row, and one whose output overflows scratch.
    await tb.command(Command(HubOp.GEMV_TILE, row=p.rows - 1, col=1, count=2, bank=0, gb=0, imm=0))
    await tb.idle()
    assert int(await tb.read(Reg.ERROR_CODE)) == HubError.BAD_TILE
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_ERROR)
    await tb.command(Command(HubOp.GEMV_TILE, row=0, col=1, count=1, bank=0, gb=1, imm=p.scratch_words - 1))
    await tb.idle()
    await tb.compare_regs()


async def write_bf16(tb, addr, values):
    words = np.ascontiguousarray(values, dtype=np.uint16).view(np.uint32)
    for j, v in enumerate(words):
        await tb.write(addr + 4 * j, int(v))


async def load_attention(tb, q, k, v, *, kbase, vbase):
    """Keys: key j in bank j % B, slot j // B at row kbase + slot // kpr, column (slot % kpr) * d/L.
    V-transpose: dim i in bank i % B, row vbase + (i // B) * nch + chunk. q: GB bursts from 0."""
    p = tb.p
    T, d = k.shape
    dl = d // p.lanes
    kpr = p.bursts_per_row // dl
    for j in range(T):
        slot = j // p.banks
        await write_bf16(tb, bank_address(p, j % p.banks, kbase + slot // kpr, (slot % kpr) * dl), k[j])
    ch = min(T, p.row_words)
    nch = T // ch
    for i in range(d):
        for c in range(nch):
            await write_bf16(tb, bank_address(p, i % p.banks, vbase + (i // p.banks) * nch + c),
                             v[c * ch:(c + 1) * ch, i])
    await write_bf16(tb, GB_BASE, q)


@cocotb.test()
async def test_attention_tile(dut):
    """Decode attention for one head with T larger than a row (two chunks through the GB)."""
    from pimhil.contract import HubOp
    from pimhil.golden import bf16_to_bits, f32_to_bits
    from pimhil.golden.attention import attention

    tb = TB(dut)
    await tb.reset()
    p = tb.p
    T, d = 2 * p.row_words, 8 * p.lanes
    q = bf16_to_bits(tb.rng.standard_normal(d))
    k = bf16_to_bits(tb.rng.standard_normal((T, d)))
    v = bf16_to_bits(tb.rng.standard_normal((T, d)))
    scale = int(f32_to_bits(np.float32(1 / np.sqrt(d))))
    kbase, vbase = 0, 32
    await load_attention(tb, q, k, v, kbase=kbase, vbase=vbase)
    await tb.write(Reg.CONTROL, CONTROL_CLEAR_COUNTERS)
    dest = 8
    await tb.command(Command(HubOp.ATTN_TILE, row=kbase, col=vbase, count=T, acc=d // p.lanes, gb=dest,
                             imm=scale))
    await tb.idle()
    await tb.compare_regs()
    await tb.compare_scratch(dest + d + 4)
    want = attention(q, k, v, scale, p)["out"]
    got = np.array(tb.golden.scratch[dest:dest + d], np.uint32)
    assert np.array_equal(got, want), "tile output differs from golden.attention"
    mac = int(await tb.bus.read(Reg.PERF_MAC))
    busy = int(await tb.bus.read(Reg.PERF_BUSY))
    ideal = 2 * T * d // (p.banks * p.lanes)
    assert mac == ideal
    dut._log.info("attention T=%d d=%d: %d busy cycles, MAC-only ideal %d (%.3f)", T, d, busy, ideal, ideal / busy)
    # A tile whose T exceeds the score memory is refused.
    await tb.command(Command(HubOp.ATTN_TILE, row=0, col=0, count=2 * p.score_words, acc=1, gb=0, imm=scale))
    await tb.idle()
    assert int(await tb.read(Reg.ERROR_CODE)) == HubError.BAD_TILE


def random_command(tb, rows: int) -> Command:
    """A command from the whole opcode space with fields biased to the edges: mostly legal, often refused."""
    p, r = tb.p, tb.rng_py
    op = r.choice([*Op, *HubOp, 0x7E])

    def edge(n):                       # a value in [0, n], n itself (one past the end) now and then
        return r.choice([0, n - 1, n, r.randrange(n)]) if r.random() < 0.3 else r.randrange(n)

    count = r.choice([0, 1, 2, r.randint(1, 4), edge(p.bursts_per_row)])
    fields = dict(flags=r.choice([0, 0, 0, r.randrange(16)]), bank=edge(p.banks), acc=edge(p.accs),
                  row=r.randrange(rows) if r.random() < 0.9 else p.rows, col=edge(p.bursts_per_row),
                  count=count, gb=edge(p.gb_bursts), imm=r.randrange(p.scratch_words - 4 * p.banks))
    if op in (Op.WR_SBK, Op.WR_ABK, Op.WR_GB):
        fields["data"] = tuple(int(v) for v in bf16_operands(tb.rng, (p.lanes,), special_rate=0.05))
    elif op == Op.WR_AFLUT:
        fields["data"] = tuple(int(v) for v in fp32_operands(tb.rng, 2))
        fields["imm"] = r.choice([0, AF_SEGMENTS - 1, AF_SEGMENTS, r.randrange(AF_SEGMENTS)])
    elif op in (Op.EWMUL, Op.EWADD):
        fields.update(row=r.randrange(64), col=r.randrange(64), gb=r.randrange(64), count=r.randint(0, 8))
    elif op == HubOp.GEMV_TILE:
        fields.update(row=0, col=r.randint(0, 2), count=r.randint(0, 2), gb=r.randrange(rows), bank=edge(p.banks))
        fields["flags"] &= int(Flag.BF16) if r.random() < 0.8 else 0xFF
    elif op == HubOp.ATTN_TILE:
        fields.update(row=0, col=r.randrange(rows), count=r.choice([p.banks, 2 * p.banks, p.banks + 1]),
                      acc=r.choice([1, 2, 3]), gb=r.randrange(64), imm=0x3F000000)
    return Command(op, **fields)


async def settle(tb):
    """Until the sequencer has caught up (idle, or waiting for the rest of a command), as the golden device
    always is; seen twice a few cycles apart, since a pushed word takes cycles to reach the sequencer."""
    seen = 0
    for _ in range(20000):
        st = int(await tb.bus.read(Reg.STATUS))
        quiet = not st & STATUS_BUSY or st & STATUS_PARTIAL
        seen = seen + 1 if quiet else 0
        if seen == 2:
            return
        for _ in range(4):
            await RisingEdge(tb.dut.clk)
    raise TimeoutError(f"hub never settled (STATUS {st:#x}); last commands: {getattr(tb, 'history', [])[-6:]}")


@cocotb.test()
async def test_differential_command_streams(dut):
    """Random legal and illegal command streams with partial pushes, aborts, error clears, window accesses
    at any point (mid-command, behind running commands) and a queue filled to the brim behind a long tile:
    after every step STATUS, CMDQ_LEVEL and the error registers equal the golden device's; every read on the
    way too; memory at the end."""
    tb = TB(dut)
    await tb.reset()
    p, r = tb.p, tb.rng_py
    rows = 4
    steps = int(os.environ.get("PIM_DIFF_STEPS", "400"))
    held = []                          # words of a command pushed only in part
    seen = {"partial_status": 0, "window_mid_command": 0, "refusals": 0, "queue_filled": 0}
    for _step in range(steps):
        k = r.random()
        if held and k < 0.35:
            n = len(held) if r.random() < 0.7 else r.randint(1, len(held))
            for w in held[:n]:
                await tb.write(CMDQ_BASE, w)
            held = held[n:]
        elif k < 0.55:
            cmd = random_command(tb, rows)
            tb.history = [*getattr(tb, "history", [])[-20:], cmd]
            words = cmd.queue_words(p)
            if not held and r.random() < 0.3:
                n = r.randint(1, len(words) - 1)
                words, held = words[:n], words[n:]
            for w in words:
                await tb.write(CMDQ_BASE, w)
        elif k < 0.75:                 # a whole burst through a window, then a word read back
            seen["window_mid_command"] += bool(held)
            gb = r.random() < 0.3
            burst = r.randrange(p.gb_bursts) if gb else r.randrange(rows * p.bursts_per_row)
            base = (GB_BASE + burst * p.lanes * 2 if gb else
                    bank_address(p, r.randrange(p.banks), burst // p.bursts_per_row, burst % p.bursts_per_row))
            for i in range(p.lanes // 2):
                await tb.write(base + 4 * i, r.getrandbits(32))
            await tb.read(base + 4 * r.randrange(p.lanes // 2))
        elif k < 0.8:
            await tb.read(bank_address(p, r.randrange(p.banks), r.randrange(rows), r.randrange(p.bursts_per_row)))
        elif k < 0.85:
            # CSR and scratch accesses are served at once, not in order with queued commands (only bank and
            # GB windows wait for the sequencer): let it catch up first, as the golden device always has.
            await settle(tb)
            await tb.write(SCRATCH_BASE + 4 * r.randrange(64), r.getrandbits(32))
        elif k < 0.9:
            await settle(tb)
            await tb.write(Reg.CONTROL, r.choice([CONTROL_CLEAR_ERROR, CONTROL_ABORT,
                                                  CONTROL_CLEAR_ERROR | CONTROL_ABORT]))
            if r.random() < 0.5:
                held = []
        elif k < 0.95 and not held:
            # The queue filled to the brim behind a long tile (whole commands only: overflow is a refusal the
            # golden device cannot time, tested on its own). A latched error would drain it instead.
            await settle(tb)
            await tb.write(Reg.CONTROL, CONTROL_CLEAR_ERROR | CONTROL_ABORT)
            await tb.command(Command(HubOp.GEMV_TILE, row=0, col=p.accs, count=2, bank=0, gb=0, imm=0))
            cmd = Command(Op.WR_SBK, bank=0, row=rows - 1, data=(0,) * p.lanes)
            n = p.cmdq_words // len(cmd.queue_words(p))
            for i in range(n):
                await tb.command(Command(Op.WR_SBK, bank=i % p.banks, row=rows - 1, col=i % p.bursts_per_row,
                                         data=tuple(int(v) for v in bf16_operands(tb.rng, (p.lanes,)))))
                if i == n // 2:
                    seen["queue_filled"] = max(seen["queue_filled"], int(await tb.bus.read(Reg.CMDQ_LEVEL)))
            await settle(tb)           # more words now would overflow the queue (a timed refusal)
        else:
            await settle(tb)
            await tb.read(Reg.ERROR_COUNT)
        if r.random() < 0.5:
            await settle(tb)
            for reg in (Reg.STATUS, Reg.CMDQ_LEVEL, Reg.ERROR_CODE, Reg.ERROR_OP, Reg.ERROR_COUNT, Reg.PERF_CMDS):
                await tb.read(reg)
            seen["partial_status"] += bool(tb.golden.read(Reg.STATUS) & STATUS_PARTIAL)
    for w in held:
        await tb.write(CMDQ_BASE, w)
    await settle(tb)
    seen["refusals"] = tb.golden.read(Reg.ERROR_COUNT)
    dut._log.info("differential run: %d steps, %s", steps, seen)
    # The stream must have reached the states it is about (the queue half full behind a running tile).
    assert all(seen.values()) and seen["queue_filled"] >= p.cmdq_words // 4, seen
    await tb.compare_regs()
    await tb.compare_scratch(256)
    for b in range(p.banks):
        for i in range(rows * p.row_words // 2):
            await tb.read(bank_address(p, b, 0) + 4 * i)
    for i in range(p.gb_words // 2):
        await tb.read(GB_BASE + 4 * i)


@cocotb.test()
async def test_queue_overflow(dut):
    """A word pushed into the full command queue is refused on the bus, dropped, and latched as QUEUE_OVERFLOW with
    op 0; the queue reads full. A timed refusal the golden device cannot follow, so checked here on its own."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    # A long tile keeps the sequencer busy while the queue fills with NOP words (a NOP's header is all zeros).
    await tb.command(Command(HubOp.GEMV_TILE, row=0, col=p.accs, count=2, bank=0, gb=0, imm=0))
    level = None
    for _ in range(p.cmdq_words + 8):
        try:
            await tb.bus.write(CMDQ_BASE, 0)
        except BusError:
            level = int(await tb.bus.read(Reg.CMDQ_LEVEL))
            break
    assert level == p.cmdq_words, f"refused a push with CMDQ_LEVEL {level}, expected the queue full"
    assert int(await tb.bus.read(Reg.ERROR_CODE)) == HubError.QUEUE_OVERFLOW
    assert int(await tb.bus.read(Reg.ERROR_OP)) == 0
    assert int(await tb.bus.read(Reg.STATUS)) & STATUS_ERROR
    await tb.bus.write(Reg.CONTROL, CONTROL_CLEAR_ERROR | CONTROL_ABORT)
    for _ in range(10000):
        if not int(await tb.bus.read(Reg.STATUS)) & STATUS_BUSY:
            break
        await ClockCycles(dut.clk, 50)
    assert int(await tb.bus.read(Reg.ERROR_CODE)) == 0 and int(await tb.bus.read(Reg.CMDQ_LEVEL)) == 0


@cocotb.test()
async def test_long_reads_from_the_queue(dut):
    """RD_SBK and RD_GB of many bursts from the queue: their beats stream from the first burst while the array
    takes the command with its last, so the router must expect them from the start (this hung the hub)."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    data = bf16_operands(tb.rng, (p.bursts_per_row, p.lanes))
    for col in range(p.bursts_per_row):
        await tb.command(Command(Op.WR_SBK, bank=p.banks - 1, row=1, col=col, data=tuple(int(v) for v in data[col])))
    await tb.command(Command(Op.RD_SBK, bank=p.banks - 1, row=1, count=p.bursts_per_row, imm=0))
    await tb.command(Command(Op.RD_GB, count=p.gb_bursts, imm=p.bursts_per_row * p.lanes // 2))
    await tb.idle()
    await tb.compare_scratch((p.bursts_per_row + p.gb_bursts) * p.lanes // 2)


@cocotb.test()
async def test_partial_command_never_wedges_the_bus(dut):
    """Two of a SYNC's four header words, then a bank read: answered (the window is served while the sequencer
    waits), the device keeps serving, and CONTROL.abort drops the half command."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    for w in Command(Op.SYNC).queue_words(p)[:2]:
        await tb.write(CMDQ_BASE, w)
    await settle(tb)
    assert int(await tb.read(Reg.STATUS)) & STATUS_PARTIAL
    await tb.read(bank_address(p, 0, 0))
    await tb.write(bank_address(p, 1, 0), 0x12345678)
    for i in range(1, p.lanes // 2):
        await tb.write(bank_address(p, 1, 0) + 4 * i, i)
    await tb.read(bank_address(p, 1, 0))
    await tb.write(Reg.CONTROL, CONTROL_ABORT)
    await tb.command(Command(Op.WR_GB, gb=0, data=tuple(range(p.lanes))))
    await settle(tb)
    await tb.read(Reg.STATUS)
    await tb.read(GB_BASE)


@pytest.mark.parametrize("preset_name", ["board"])
def test_control_hub(preset_name):
    from hw.control_hub import ControlHub
    from tb.support import runner

    config = f"control_hub_{preset_name}"
    src = runner.amaranth_verilog(lambda: ControlHub(params=preset(preset_name)), "control_hub",
                                  runner.BUILD / config)
    runner.run(toplevel="control_hub", sources=[src], test_module="tb.control_hub.test_control_hub",
               config=config, extra_env={"PIM_PRESET": preset_name})
