"""The bank array (rtl/pim_bank_array_<preset>.v) against the golden array model, command by command.

Every answer beat (`resp`) and every refusal (`refusal`) is compared with GoldenArray's responses, each port in
command order; memory contents are compared by reading them back.
"""

import os
import time

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from hw.bank_array import BankArray
from hw.bank_pu import BankPU
from pimhil.contract import (AF_SEGMENTS, ALLOWED_FLAGS, Command, ErrorCode, Flag, Op, cmd_fields, preset,
                             refusal_fields, resp_fields, unpack_fields)
from pimhil.golden import GoldenArray, bf16_to_bits, bits_to_f32, build_lut, gemv
from pimhil.golden.fpbits import bf16_bits_to_f32
from pimhil.golden.array import Response
from pimhil.schedule import interleave_macs
from tb.support import funcov
from tb.support.marks import sim_preset
from tb.support.results import record
from tb.support.seed import rngs
from tb.support.stream import PulseMonitor, StreamSink, StreamSource
from tb.support.vectors import bf16_class_rotation, bf16_operands, fp32_operands

CLK_NS = 10


class TB:
    def __init__(self, dut, *, backpressure=0.0):
        self.dut = dut
        self.p = preset(os.environ["PIM_PRESET"])
        # The DUT's port widths must be the contract's: catches a stale rtl/ or a wrong preset.
        assert len(dut.cmd__payload) == sum(w for _, w in cmd_fields(self.p)), "cmd port width != contract"
        assert len(dut.resp__payload) == sum(w for _, w in resp_fields(self.p)), "resp port width != contract"
        self.rng_py, self.rng = rngs(dut._log)
        Clock(dut.clk, CLK_NS, unit="ns").start()
        self.src = StreamSource(dut, "cmd", dut.clk)
        self.sink = StreamSink(dut, "resp", dut.clk, backpressure=backpressure, rng=self.rng_py)
        self.refusals = PulseMonitor(dut.refusal_valid, dut.refusal, dut.clk)
        self.golden = GoldenArray(self.p)
        self.expected: list[Response] = []

    async def reset(self):
        """Reset the logic, then scrub the memories: like DRAM, bank memory and the GB keep their contents
        through reset (and across cocotb tests), while the golden model starts from zeros."""
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.sink.items.clear()   # a beat of the previous test may have been sampled before its handshake
        self.refusals.items.clear()
        p, zero = self.p, (0,) * self.p.lanes
        for row in range(p.rows):
            for col in range(p.bursts_per_row):
                self.send(Command(Op.WR_ABK, row=row, col=col, data=zero))
        for g in range(p.gb_bursts):
            self.send(Command(Op.WR_GB, gb=g, data=zero))
        for a in range(p.accs):
            self.send(Command(Op.WR_BIAS, flags=Flag.ALL, acc=a, imm=0))
        await self.drain()

    def send(self, cmd: Command):
        self.src.send_nowait(cmd.port_word(self.p))
        funcov.command(cmd, self.p, queue=False)
        self.expected.extend(self.golden.execute(cmd))

    async def drain(self):
        """Receive every expected answer and refusal and compare them with the golden model's, each in order;
        returns how many there were."""
        layout = resp_fields(self.p)
        answers = [e for e in self.expected if e.err == 0]
        refusals = [e for e in self.expected if e.err != 0]
        for i, exp in enumerate(answers):
            got = unpack_fields(layout, await self.sink.recv())
            want = {"op": exp.op, "data": exp.data}
            if got != want:
                raise AssertionError(f"answer {i}/{len(answers)}: got op={got['op']:#x} data={got['data']:#x}, "
                                     f"expected op={exp.op:#x} data={exp.data:#x}")
        await self.src.wait_idle()
        # The last command is taken; its refusal, if any, leaves the pipeline RESP_STAGE cycles after issue.
        for _ in range(BankArray.IN_STAGE + BankArray.RESP_STAGE + 2):
            await RisingEdge(self.dut.clk)
        got = [unpack_fields(refusal_fields(), w) for w in self.refusals.items]
        want = [{"op": e.op, "err": e.err} for e in refusals]
        for g in got:
            funcov.error(g["err"])
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            raise AssertionError(f"refusals differ from refusal {first}: got {got[first:first + 3]} "
                                 f"(of {len(got)}), expected {want[first:first + 3]} (of {len(want)})")
        self.refusals.items.clear()
        self.expected.clear()
        return len(answers) + len(refusals)

    def fill_banks(self, rows):
        """Random BF16 (with specials) into the given rows of every bank; returns nothing, golden tracks it."""
        p = self.p
        for row in rows:
            data = bf16_operands(self.rng, (p.banks, p.bursts_per_row, p.lanes), special_rate=0.01)
            for b in range(p.banks):
                for c in range(p.bursts_per_row):
                    self.send(Command(Op.WR_SBK, bank=b, row=row, col=c, data=tuple(data[b, c])))

    def fill_gb(self):
        data = bf16_operands(self.rng, (self.p.gb_bursts, self.p.lanes), special_rate=0.01)
        for g in range(self.p.gb_bursts):
            self.send(Command(Op.WR_GB, gb=g, data=tuple(data[g])))

    def extreme_spread_burst(self):
        """A burst whose normal lanes span the whole exponent range (1 and 254, both signs): the lane alignment's
        widest shift, which random operands reach only by chance (the `max(1..254)` functional bin)."""
        ends = (0x0080, 0x7F7F, 0x8080, 0xFF7F)     # +2^-126, +max, -2^-126, -max
        return tuple(ends[i % len(ends)] for i in range(self.p.lanes))

    def read_back(self, rows):
        p = self.p
        for row in rows:
            for b in range(p.banks):
                self.send(Command(Op.RD_SBK, bank=b, row=row, col=0, count=p.bursts_per_row))
        self.send(Command(Op.RD_GB, gb=0, count=p.gb_bursts))

    def random_command(self):
        """A random valid compute command over the first rows (MACs, biases, read-outs)."""
        p, r = self.p, self.rng_py
        kind = r.random()
        acc = r.randrange(p.accs)
        if kind < 0.45:
            n = r.randint(1, min(p.bursts_per_row, p.gb_bursts))
            col = r.randrange(p.bursts_per_row - n + 1)
            gb = r.randrange(p.gb_bursts - n + 1)
            op = r.choice([Op.MAC_ABK, Op.MAC_SBK])
            # every combination of the op's allowed flags (BF16 without READ included: legal, and no-op)
            flags = r.choice([f for f in range(int(ALLOWED_FLAGS[op]) + 1) if not f & ~int(ALLOWED_FLAGS[op])])
            return Command(op, flags=flags, bank=r.randrange(p.banks), acc=acc, row=r.randrange(2), col=col,
                           count=n, gb=gb)
        if kind < 0.65:
            value = int(fp32_operands(self.rng, 1)[0])
            flags = r.choice([0, Flag.ALL])
            return Command(Op.WR_BIAS, flags=flags, bank=r.randrange(p.banks), acc=acc, imm=value)
        if kind < 0.85:
            return Command(Op.RD_MAC, flags=r.choice([0, Flag.BF16]), acc=acc)
        return Command(r.choice([Op.SYNC, Op.NOP]))


@cocotb.test()
async def test_memory_roundtrip(dut):
    """WR_SBK/WR_ABK/WR_GB then RD_SBK/RD_GB return exactly what was written, with sink back-pressure."""
    tb = TB(dut, backpressure=0.3)
    await tb.reset()
    p = tb.p
    tb.fill_banks([0, p.rows - 1])
    data = bf16_operands(tb.rng, (p.bursts_per_row, p.lanes))
    for c in range(p.bursts_per_row):
        tb.send(Command(Op.WR_ABK, row=1, col=c, data=tuple(data[c])))
    tb.fill_gb()
    # Every lane gets every operand class (the lane_class bins), not only where random specials happen to land.
    rotation = bf16_class_rotation(tb.rng, p.lanes, funcov.CLASSES)
    assert all({funcov.bf16_class(int(b)) for b in lane} == set(funcov.CLASSES) for lane in rotation.T)
    for g, burst in enumerate(rotation):
        tb.send(Command(Op.WR_GB, gb=g, data=tuple(int(b) for b in burst)))
    tb.send(Command(Op.WR_GB, gb=p.gb_bursts - 1, data=tb.extreme_spread_burst()))
    tb.read_back([0, 1, p.rows - 1])
    dut._log.info("%d responses match", await tb.drain())


@cocotb.test()
async def test_random_mac_stream(dut):
    """Random MAC_ABK/MAC_SBK/WR_BIAS/RD_MAC/SYNC mix on random data (specials included), back-pressured."""
    tb = TB(dut, backpressure=0.25)
    await tb.reset()
    tb.fill_banks([0, 1])
    tb.fill_gb()
    # MACs over a burst of the widest exponent spread, in a bank and in the GB, against the golden model.
    tb.send(Command(Op.WR_SBK, bank=0, row=0, col=0, data=tb.extreme_spread_burst()))
    tb.send(Command(Op.WR_GB, gb=0, data=tb.extreme_spread_burst()))
    for _ in range(int(os.environ.get("ARRAY_RANDOM_CMDS", "600"))):
        tb.send(tb.random_command())
    for a in range(tb.p.accs):
        tb.send(Command(Op.RD_MAC, acc=a))
    dut._log.info("%d responses match", await tb.drain())


@cocotb.test()
async def test_refused_commands(dut):
    """Every error code, each answered with its code and no side effect; valid commands keep working."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    tb.fill_banks([0])
    tb.fill_gb()
    bad = [
        Command(0x3F),                                                        # undefined opcode
        Command(Op.EWMUL),                                                    # hub op, not the array's
        Command(Op.WR_SBK, flags=Flag.ZERO, data=(1,) * p.lanes),             # flag not allowed
        Command(Op.WR_SBK, bank=p.banks, data=(1,) * p.lanes),
        Command(Op.RD_SBK, bank=255),
        Command(Op.MAC_ABK, count=0),
        Command(Op.WR_ABK, row=p.rows, data=(1,) * p.lanes),
        Command(Op.MAC_ABK, col=p.bursts_per_row - 1, count=2),
        Command(Op.COPY_GBBK, gb=p.gb_bursts - 1, count=2),
        Command(Op.MAC_ABK, acc=p.accs),
        Command(Op.WR_BIAS, acc=p.accs, flags=Flag.ALL, imm=0x3F800000),
        Command(Op.WR_AFLUT, imm=AF_SEGMENTS, data=(0x3F800000, 0)),
        Command(Op.RD_MAC, flags=Flag.READ, acc=0),
    ]
    codes = set()
    for cmd in bad:
        tb.send(cmd)
        codes.add(tb.expected[-1].err)
        tb.send(Command(Op.MAC_ABK, flags=Flag.READ, acc=1, count=2))     # still serving in between
    expected_codes = {int(c) for c in ErrorCode if c not in (ErrorCode.NONE,)}
    assert codes == expected_codes, f"directed cases cover {sorted(codes)}, codes are {sorted(expected_codes)}"
    # Random out-of-range fields: whatever the golden model says, the RTL must say the same.
    for _ in range(200):
        r = tb.rng_py
        op = r.choice(list(Op) + [0x20, 0x7F, 0xFF])
        tb.send(Command(op, flags=r.randrange(16), bank=r.randrange(p.banks + 2), acc=r.randrange(p.accs + 2),
                        row=r.choice([0, p.rows - 1, p.rows]), col=r.randrange(p.bursts_per_row + 1),
                        count=r.randrange(3), gb=r.choice([0, p.gb_bursts - 1, p.gb_bursts]),
                        imm=r.randrange(AF_SEGMENTS + 2), data=tuple(range(p.lanes))))
    tb.read_back([0, p.rows - 1])
    for a in range(p.accs):
        tb.send(Command(Op.RD_MAC, acc=a))
    dut._log.info("%d responses match", await tb.drain())


@cocotb.test()
async def test_answer_buffer_full(dut):
    """`resp` held off for long: the issue waits for answer room (`stall`), the pipeline keeps going, no answer is
    lost or repeated, and the MACs between the reads are not held while there is room."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    tb.fill_banks([0])
    tb.fill_gb()
    await tb.drain()
    tb.sink.backpressure = 1.0
    sent0 = tb.src.sent
    reads = 3 * BankArray.RESP_BUFFER
    for i in range(reads):
        tb.send(Command(Op.RD_GB, gb=i % p.gb_bursts))
        tb.send(Command(Op.MAC_ABK, flags=Flag.READ if i % 7 == 0 else 0, acc=i % p.accs, row=0,
                        col=i % p.bursts_per_row, gb=i % p.gb_bursts))
    held = 0
    for _ in range(4 * BankArray.RESP_BUFFER):
        await RisingEdge(dut.clk)
        await ReadOnly()
        held += int(dut.stall.value)
    assert int(dut.busy.value) and tb.src.sent - sent0 < 2 * reads, "the array took every command while resp was held"
    assert held > 0, "the issue never waited for answer room while resp was held"
    await RisingEdge(dut.clk)
    tb.sink.backpressure = 0.0
    dut._log.info("%d answers match; the issue waited %d cycles for room", await tb.drain(), held)


@cocotb.test()
async def test_copy_and_activation(dut):
    """COPY_BKGB/COPY_GBBK move bursts; WR_AFLUT + AF evaluate GELU and sigmoid on every accumulator."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    tb.fill_banks([0, 1])
    tb.fill_gb()
    tb.send(Command(Op.COPY_BKGB, bank=p.banks - 1, row=1, col=2, count=4, gb=1))
    tb.send(Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, acc=0, row=0, count=4, gb=1))  # reads the copy
    tb.send(Command(Op.COPY_GBBK, bank=0, row=2, col=0, count=p.gb_bursts if p.gb_bursts <= p.bursts_per_row
                    else p.bursts_per_row, gb=0))
    tb.read_back([2])
    for name in ("gelu", "sigmoid"):
        a, b = build_lut(name)
        for k in range(AF_SEGMENTS):
            tb.send(Command(Op.WR_AFLUT, imm=k, data=(int(a[k]), int(b[k]))))
        xs = np.concatenate([np.linspace(-9, 9, 3 * p.banks).astype(np.float32).view(np.uint32),
                             fp32_operands(tb.rng, 2 * p.banks)])
        for i in range(0, len(xs) - p.banks + 1, p.banks):
            for bank in range(p.banks):
                tb.send(Command(Op.WR_BIAS, bank=bank, acc=3, imm=int(xs[i + bank])))
            tb.send(Command(Op.AF, acc=3))
            tb.send(Command(Op.RD_MAC, acc=3))
            tb.send(Command(Op.MAC_ABK, flags=Flag.READ, acc=3, row=0, count=1))  # AF result feeds a MAC
    dut._log.info("%d responses match", await tb.drain())


@cocotb.test()
async def test_gemv(dut):
    """A GEMV of GEMV_M x GEMV_K (default 256 x 1024 on sim) bit-exact against golden.gemv; reports MAC
    utilisation: ideal M*K/(B*L) cycles over the cycles from the first MAC to the last result."""
    tb = TB(dut)
    await tb.reset()
    p = tb.p
    m = int(os.environ.get("GEMV_M", str(min(256, p.banks * p.accs, p.banks * p.rows))))
    k = int(os.environ.get("GEMV_K", str(p.row_words)))
    assert k == p.row_words and m % p.banks == 0 and m // p.banks <= min(p.accs, p.rows), "shape must fit"
    # LLM-like operands; the exotic values are the random-stream test's business.
    w = bf16_to_bits(tb.rng.standard_normal((m, k)) * 0.05)
    x = bf16_to_bits(tb.rng.standard_normal(k))
    groups = m // p.banks
    for g in range(groups):                              # row i lives in bank i % B, bank row i // B
        for b in range(p.banks):
            wrow = w[g * p.banks + b].reshape(p.bursts_per_row, p.lanes)
            for c in range(p.bursts_per_row):
                tb.send(Command(Op.WR_SBK, bank=b, row=g, col=c, data=tuple(wrow[c])))
    xg = x.reshape(-1, p.lanes)
    for c in range(len(xg)):
        tb.send(Command(Op.WR_GB, gb=c, data=tuple(xg[c])))
    await tb.drain()
    # Compute phase, measured: one MAC_ABK per row group, each answering with its B results, issued burst by
    # burst over the groups' accumulators as the hub's walker does. BENCH_REPEAT repeats it (identical
    # results, ZERO flag) so that the simulator speed is measured over many cycles.
    repeat = int(os.environ.get("BENCH_REPEAT", "1"))
    y = gemv(w, x, lanes=p.lanes)
    macs = interleave_macs([Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, acc=g, row=g, count=p.bursts_per_row)
                            for g in range(groups)])
    expect = [r.data for c in macs for r in tb.golden.execute(c)]       # every repetition answers the same
    assert len(expect) == groups
    words = [c.port_word(p) for c in macs]
    beats = []
    wall0 = time.perf_counter()
    t0 = get_sim_time("ns")
    first_cycles = None
    for _rep in range(repeat):       # only the simulation runs in this loop; checking comes after
        tr = get_sim_time("ns")
        for word in words:
            tb.src.send_nowait(word)
        for _group in range(groups):
            beats.append(await tb.sink.recv())
        if first_cycles is None:
            first_cycles = (get_sim_time("ns") - tr) / CLK_NS
        await tb.src.wait_idle()
    wall = time.perf_counter() - wall0
    total_cycles = (get_sim_time("ns") - t0) / CLK_NS
    got = []
    for i, word in enumerate(beats):
        beat = unpack_fields(resp_fields(p), word)
        assert beat["data"] == expect[i % groups], f"repetition {i // groups}, row group {i % groups} differs"
        if i < groups:
            got.extend((beat["data"] >> (32 * b)) & 0xFFFFFFFF for b in range(p.banks))
    assert np.array_equal(np.array(got, np.uint32), y), "GEMV result differs from golden.gemv"
    cycles = first_cycles
    ideal = m * k / (p.banks * p.lanes)
    util = ideal / cycles
    ref = (bf16_bits_to_f32(w).astype(np.float64) @ bf16_bits_to_f32(x).astype(np.float64))
    err = float(np.max(np.abs(bits_to_f32(np.array(got, np.uint32)).astype(np.float64) - ref)))
    dut._log.info("GEMV %dx%d bit-exact vs golden; max |err| vs float64 %.3g; %d cycles, ideal %d, "
                  "MAC utilisation %.4f; %.0f simulated cycles/s", m, k, err, cycles, ideal, util,
                  total_cycles / wall)
    record("array_gemv", {"m": m, "k": k, "bit_exact": True, "max_abs_err_vs_f64": err, "cycles": cycles,
                          "ideal_cycles": ideal, "mac_utilization": util, "repeat": repeat,
                          "total_cycles": total_cycles, "wall_s": wall, "cycles_per_s": total_cycles / wall})
    # Back-to-back MACs: the only overhead is filling the pipeline once (the input register, s0 to the response
    # stage, the answer register, the answer buffer, the clock edge), as long as there are at least ACC_GAP row
    # groups to rotate over. This bound is the utilisation check: a fixed floor (0.98 until the timing pass)
    # restated it for one pipeline depth; with the answer buffer the fill is 26 cycles on the board preset (25
    # measured).
    fill = BankArray.IN_STAGE + BankArray.RESP_STAGE + 2 + BankArray.BUFFER_LATENCY
    if groups >= BankPU.ACC_GAP:
        assert cycles - ideal <= fill, f"{cycles - ideal} overhead cycles beyond the pipeline fill ({fill})"


# The sim preset's 16-bank array runs the same checks as the board's for minutes: a soak-class run.
@pytest.mark.parametrize("preset_name", [sim_preset("sim"), "board"])
def test_bank_array(preset_name):
    run(preset_name)


def run(preset_name, *, testcase=None, extra_env=None, log_file=None):
    """Build rtl/pim_bank_array_<preset>.v and run this module's tests (all, or `testcase`); returns the figures
    they recorded (tb/support/results.py)."""
    from tb.support import runner

    top = f"pim_bank_array_{preset_name}"
    return runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"],
                      test_module="tb.bank_array.test_bank_array", config=f"bank_array_{preset_name}",
                      extra_env={"PIM_PRESET": preset_name, **(extra_env or {})}, testcase=testcase,
                      log_file=log_file)
