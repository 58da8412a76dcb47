"""Functional coverage: which device behaviours the testbenches and the driver suite actually exercised.

The bins come from the contract (host/pimhil/contract.py), never retyped: every opcode with every combination of
its allowed flags, every error code, the operand class of each lane of a written burst, the first and last value
of every address field, the command queue empty and full, every UART frame command and status, every link
counter seen non-zero. `bins()` lists them; ci/coverage.py reports hits per bin and the holes.

Sampling happens at monitor points of the shared harnesses (one-line hooks): commands on the bank array's port
(tb/bank_array), bus accesses of the control hub testbench, the AXI masters and the UART link's byte streams of
tb/support/device_harness.py (device testbenches, the driver testbench and the sim server behind the driver
suite). A byte-stream monitor parses request and answer frames, pairs them by sequence number and turns the
accesses they made into the same bus-level samples as an AXI access: CMDQ pushes become commands, CSR reads
become register samples.

Off unless PIM_COVERAGE=1 (`make coverage`): every hook returns at once. On, each process writes its counts at
exit to build/coverage/functional/<pid>.json.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import struct
from collections import Counter
from pathlib import Path

from pimhil.contract import (ALLOWED_FLAGS, CMD_HEADER, CMD_HEADER_WORDS, CMDQ_BASE, CMDQ_BYTES, COUNTED_OPS,
                             CSR_BASE, GB_OPS, LANE_GUARD_BITS, LINK_COUNTERS, PRESETS, ROW_OPS, SINGLE_BANK_OPS,
                             ACC_OPS, ARRAY_OPS, Command, CommandError, ErrorCode, Flag, Frame, FrameCmd,
                             FrameStatus, HubError, HubOp, Op, Reg, check_command, payload_words, preset,
                             unpack_fields, windows)
import pimhil.contract as contract

ENABLED = os.environ.get("PIM_COVERAGE") == "1"
OUT_DIR = Path(__file__).resolve().parents[2] / "build" / "coverage" / "functional"

CLASSES = ("zero", "subnormal", "normal", "inf", "nan")
# Address fields, the ops that use each, and its first and last legal value in a preset (for col, the last burst
# the command touches; for count, a whole row).
FIELDS = {
    "bank": (SINGLE_BANK_OPS | {Op.WR_BIAS}, 0, lambda p: p.banks - 1),
    "row": (ROW_OPS, 0, lambda p: p.rows - 1),
    "col": (ROW_OPS, 0, lambda p: p.bursts_per_row - 1),
    "gb": (GB_OPS, 0, lambda p: p.gb_bursts - 1),
    "acc": (ACC_OPS, 0, lambda p: p.accs - 1),
    "count": (COUNTED_OPS, 1, lambda p: p.bursts_per_row),
}
BURST_OPS = (Op.WR_SBK, Op.WR_ABK, Op.WR_GB)
STATUS_BITS = {n[len("STATUS_"):].lower(): getattr(contract, n) for n in dir(contract) if n.startswith("STATUS_")}


def _flag_subsets(allowed: int) -> list[int]:
    bits = [int(f) for f in Flag if int(f) & allowed]
    return sorted({sum(c) for r in range(len(bits) + 1) for c in itertools.combinations(bits, r)})


def _flag_name(op, flags: int) -> str:
    names = [f.name for f in Flag if int(f) & flags]
    return op.name + ("|" + "|".join(names) if names else "")


def bins() -> dict[str, list[str]]:
    """Every bin, by group, in a stable order (derived from the contract)."""
    lanes = max(p.lanes for p in PRESETS.values())
    return {
        "op_flags": [_flag_name(op, f) for op in list(Op) + list(HubOp)
                     for f in _flag_subsets(int(ALLOWED_FLAGS.get(op, 0)))],
        "error": [e.name for e in ErrorCode if e != ErrorCode.NONE] + [e.name for e in HubError],
        "lane_class": [f"lane{i}:{c}" for i in range(lanes) for c in CLASSES],
        "exponent_spread": ["equal", f"beyond_guard({LANE_GUARD_BITS}+8)", "max(1..254)"],
        "address": [f"{name}:{end}" for name in FIELDS for end in ("first", "last")],
        "queue": ["empty", "full"],
        "frame_cmd": [c.name for c in FrameCmd],
        "frame_status": [s.name for s in FrameStatus],
        "link_counter": [name for name, _ in LINK_COUNTERS],
        "status_bit": sorted(STATUS_BITS),
    }


class _Collector:
    def __init__(self):
        self.hits: dict[str, Counter] = {}
        self._armed = False

    def hit(self, group: str, name: str) -> None:
        self.hits.setdefault(group, Counter())[name] += 1
        if not self._armed:
            self._armed = True
            atexit.register(self.write)

    def write(self) -> None:
        if not self.hits:
            return
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        path = OUT_DIR / f"{os.getpid()}.json"
        path.write_text(json.dumps({g: dict(c) for g, c in self.hits.items()}, indent=1, sort_keys=True))


COLLECTOR = _Collector()


def _params():
    return preset(os.environ.get("PIM_PRESET", "board"))


def bf16_class(bits: int) -> str:
    exp, man = (bits >> 7) & 0xFF, bits & 0x7F
    if exp == 0xFF:
        return "nan" if man else "inf"
    if exp == 0:
        return "subnormal" if man else "zero"
    return "normal"


# ---- samples ---------------------------------------------------------------------------------------------
def command(cmd: Command, params=None, *, queue: bool = True) -> None:
    """A command the device was given: through the hub's command queue (queue), else on the bank array's own
    port, which executes ARRAY_OPS only. Legal commands hit their op x flags bin, their address extremes and their
    operand classes; a refused one is sampled where the device reports its error code (`error`)."""
    if not ENABLED:
        return
    p = params or _params()
    try:
        op = Op(cmd.op)
    except ValueError:
        try:
            op = HubOp(cmd.op)
        except ValueError:
            return
    if op in ARRAY_OPS or not queue:
        try:
            check_command(cmd, p)
        except CommandError:
            return                          # its error code is sampled where the device reports it
    elif int(cmd.flags) & ~int(ALLOWED_FLAGS.get(op, 0)):
        return
    COLLECTOR.hit("op_flags", _flag_name(op, int(cmd.flags)))
    for name, (ops, first, last) in FIELDS.items():
        if op in ops and not (name == "bank" and op == Op.WR_BIAS and cmd.flags & Flag.ALL):
            v = getattr(cmd, name)
            end = cmd.col + (cmd.count if op in COUNTED_OPS else 1) - 1 if name == "col" else v
            if v == first:
                COLLECTOR.hit("address", f"{name}:first")
            if end == last(p):
                COLLECTOR.hit("address", f"{name}:last")
    if op in BURST_OPS and cmd.data:
        exps = []
        for i, b in enumerate(cmd.data):
            c = bf16_class(int(b))
            COLLECTOR.hit("lane_class", f"lane{i}:{c}")
            if c == "normal":
                exps.append((int(b) >> 7) & 0xFF)
        if len(exps) > 1:
            spread = max(exps) - min(exps)
            if spread == 0:
                COLLECTOR.hit("exponent_spread", "equal")
            if spread > LANE_GUARD_BITS + 8:
                COLLECTOR.hit("exponent_spread", f"beyond_guard({LANE_GUARD_BITS}+8)")
            if spread == 253:
                COLLECTOR.hit("exponent_spread", "max(1..254)")


def error(code: int) -> None:
    """An error code the device reported (a response beat's err field, ERROR_CODE read back)."""
    if not ENABLED or not code:
        return
    for enum in (ErrorCode, HubError):
        if code in enum._value2member_map_:
            COLLECTOR.hit("error", enum(code).name)


def register(addr: int, value: int, params=None) -> None:
    """A CSR read that succeeded: error codes, the queue level, link counters and STATUS bits."""
    if not ENABLED:
        return
    p = params or _params()
    off = addr - CSR_BASE
    if off == Reg.ERROR_CODE:
        error(value)
    elif off == Reg.CMDQ_LEVEL:
        if value == 0:
            COLLECTOR.hit("queue", "empty")
        if value >= p.cmdq_words:
            COLLECTOR.hit("queue", "full")
    elif off == Reg.STATUS:
        for name, mask in STATUS_BITS.items():
            if value & mask:
                COLLECTOR.hit("status_bit", name)
        if value & contract.STATUS_QUEUE_EMPTY:
            COLLECTOR.hit("queue", "empty")
    for name, reg in LINK_COUNTERS:
        if off == reg and value:
            COLLECTOR.hit("link_counter", name)


class _Commands:
    """Reassembles commands from the 32-bit words pushed onto the command queue."""

    def __init__(self):
        self.words: list[int] = []

    def push(self, word: int, p) -> None:
        self.words.append(word & 0xFFFFFFFF)
        if len(self.words) < CMD_HEADER_WORDS:
            return
        header = sum(w << (32 * i) for i, w in enumerate(self.words[:CMD_HEADER_WORDS]))
        f = unpack_fields(CMD_HEADER, header)
        n = payload_words(f["op"], p)
        if len(self.words) < CMD_HEADER_WORDS + n:
            return
        data = sum(w << (32 * i) for i, w in enumerate(self.words[CMD_HEADER_WORDS:]))
        self.words.clear()
        lanes = [(data >> (16 * i)) & 0xFFFF for i in range(p.lanes)] if f["op"] in BURST_OPS else []
        command(Command(op=f["op"], flags=f["flags"], bank=f["bank"], acc=f["acc"], row=f["row"], col=f["col"],
                        count=f["count"], gb=f["gb"], imm=f["imm"], data=tuple(lanes)), p)


_QUEUES: dict[object, _Commands] = {}      # per device (its harness, feeder or testbench object)


def bus(owner, addr: int, words, *, write: bool, fixed: bool = False) -> None:
    """Words a bus master wrote or read successfully at addr (fixed: every word at addr). `owner` keys the
    command-queue reassembly (one per device)."""
    if not ENABLED:
        return
    p = _params()
    data_windows = [w for w in windows(p) if w.name in ("gb", "bank")]
    for i, w in enumerate(words):
        a = addr if fixed else addr + 4 * i
        if write and any(d.base <= a < d.base + d.size for d in data_windows):
            # two BF16 elements per word; element e of a burst sits in lane e % lanes
            for j in range(2):
                lane = ((a // 2) + j) % p.lanes
                COLLECTOR.hit("lane_class", f"lane{lane}:{bf16_class((int(w) >> (16 * j)) & 0xFFFF)}")
        if write and CMDQ_BASE <= a < CMDQ_BASE + CMDQ_BYTES:
            if owner not in _QUEUES:
                _QUEUES[owner] = _Commands()
            _QUEUES[owner].push(int(w), p)
        elif not write and CSR_BASE <= a < CSR_BASE + 0x1000:
            register(a, int(w), p)


def watch_axi(master, owner):
    """Wrap a cocotbext-axi master's read and write so that successful accesses are sampled."""
    if not ENABLED:
        return master
    read, write = master.read, master.write

    async def _read(addr, length, *args, **kw):
        r = await read(addr, length, *args, **kw)
        if int(r.resp) == 0:
            bus(owner, addr, struct.unpack(f"<{len(r.data) // 4}I", bytes(r.data)[:len(r.data) // 4 * 4]),
                write=False)
        return r

    async def _write(addr, data, *args, **kw):
        r = await write(addr, data, *args, **kw)
        if int(r.resp) == 0:
            bus(owner, addr, struct.unpack(f"<{len(data) // 4}I", bytes(data)[:len(data) // 4 * 4]), write=True)
        return r

    master.read, master.write = _read, _write
    return master


def watch_bus(master, owner):
    """Wrap a tb.support.bus.BusMaster (the control hub's internal bus) the same way."""
    if not ENABLED:
        return master
    read, write = master.read, master.write

    async def _read(addr, *args, **kw):
        v = await read(addr, *args, **kw)
        bus(owner, addr, [int(v)], write=False)
        return v

    async def _write(addr, value, *args, **kw):
        r = await write(addr, value, *args, **kw)
        bus(owner, addr, [int(value)], write=True)
        return r

    master.read, master.write = _read, _write
    return master


class _LinkMonitor:
    """Request and answer frames parsed from the two byte streams of one UART link, paired by sequence number."""

    def __init__(self, owner):
        self.owner = owner
        self.req = bytearray()
        self.resp = bytearray()
        self.pending: dict[int, tuple[int, int, int, tuple]] = {}

    def host(self, data) -> None:
        from pimhil.frame import crc16

        self.req += bytes(data)
        while True:
            i = self.req.find(Frame.REQ_SYNC)
            if i < 0:
                self.req.clear()
                return
            del self.req[:i]
            if len(self.req) < Frame.REQ_HEADER + Frame.CRC_BYTES:
                return
            seq, cmd, n, addr = struct.unpack_from("<BBHI", self.req, 1)
            has_payload = cmd in (FrameCmd.WRITE, FrameCmd.WRITE_FIXED) and 1 <= n <= Frame.MAX_WORDS
            total = Frame.REQ_HEADER + (4 * n if has_payload else 0) + Frame.CRC_BYTES
            if len(self.req) < total:
                return
            body = bytes(self.req[1:total - 2])
            if crc16(body) != struct.unpack_from(">H", self.req, total - 2)[0]:
                del self.req[:1]               # not a frame the link would accept: hunt on, as the link does
                continue
            words = struct.unpack_from(f"<{n}I", body, 8) if has_payload else ()
            self.pending[seq] = (cmd, n, addr, words)
            del self.req[:total]

    def device(self, data) -> None:
        from pimhil.frame import FrameError, decode_response, response_length

        self.resp += bytes(data)
        while True:
            i = self.resp.find(Frame.RESP_SYNC)
            if i < 0:
                self.resp.clear()
                return
            del self.resp[:i]
            if len(self.resp) < Frame.RESP_HEADER:
                return
            try:
                total = response_length(bytes(self.resp[:Frame.RESP_HEADER]))
                if len(self.resp) < total:
                    return
                r = decode_response(bytes(self.resp[:total]))
            except FrameError:
                del self.resp[:1]
                continue
            del self.resp[:total]
            COLLECTOR.hit("frame_status", r.status.name)
            req = self.pending.pop(r.seq, None)
            if req is None:
                continue
            cmd, n, addr, words = req
            if cmd in FrameCmd._value2member_map_:
                COLLECTOR.hit("frame_cmd", FrameCmd(cmd).name)
            if r.status != FrameStatus.OK:
                continue
            if cmd == FrameCmd.READ:
                bus(self.owner, addr, r.words, write=False)
            else:
                bus(self.owner, addr, words, write=True, fixed=cmd == FrameCmd.WRITE_FIXED)


_LINKS: dict[object, _LinkMonitor] = {}


def _link(owner) -> _LinkMonitor:
    if owner not in _LINKS:
        _LINKS[owner] = _LinkMonitor(owner)
    return _LINKS[owner]


def host_bytes(owner, data) -> None:
    """Bytes the host side handed to the device's UART link (owner: the feeder or port object)."""
    if ENABLED and data:
        _link(owner).host(data)


def device_bytes(owner, data) -> None:
    """Bytes the device's UART link answered with."""
    if ENABLED and data:
        _link(owner).device(data)
