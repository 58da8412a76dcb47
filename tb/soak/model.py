"""The soak's plan and checker, in plain Python (no simulator): tb/soak/test_soak.py feeds the plan's bytes
to the device and hands what comes back to the checker; tests/test_soak_checker.py drives both against a
software device to show that the checker catches a dropped answer, a wrong word and a mutated image.

Plan: a seeded stream of request bytes with GAP markers (an idle line longer than the link's inter-byte
timeout). Items: valid requests (reads and writes to every window), requests the link refuses (BAD_CMD,
BAD_LEN, BAD_ADDR, BUS_ERROR), corrupted requests (bit flips anywhere, the sync byte included), truncated
requests (the next bytes complete them, or a GAP times them out), noise (with and without sync bytes),
link-counter reads, and hub command streams (legal and illegal commands pushed into CMDQ in whole and in part,
aborts, error clears, window bursts mid-command, then a bank read, which waits for the sequencer, and the
error registers). `LinkModel` is the link's receiver as docs/uart_link.md states it, so the plan knows which
bytes form frames whose CRC matches: exactly those execute, on `GoldenDevice`, and each one's answer is
expected. An item whose garbage would, by chance, form a frame with a matching CRC is drawn again (the
frame's effect would be arbitrary, a write to UART_BAUD_DIV included).

Checker: answers must come back byte for byte as expected, in order. An answer that never comes is a hang
(`hangs`); one with the expected sequence number and an OK status but other words is a silent corruption
(`silent_corruptions`); anything else that differs is a mismatch (`mismatches`). At the end the device's
memory image, assembled from its answers to the image reads, must equal the golden device's arrays.
"""

from __future__ import annotations

import random
import struct
from collections import Counter, deque
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from pimhil.contract import (CMDQ_BASE, CONTROL_ABORT, CONTROL_CLEAR_ERROR, CSR_BASE, GB_BASE, LINK_COUNTERS,
                             SCRATCH_BASE, Frame, FrameCmd, FrameStatus, Reg, bank_address, windows)
from pimhil.frame import FrameError, crc16, decode_response, encode_raw_request, encode_request, encode_response
from pimhil.frame import response_length
from pimhil.golden.device import BusError, GoldenDevice

GAP = None                      # in the plan's output: keep the line idle past the inter-byte timeout
WRITES = (FrameCmd.WRITE, FrameCmd.WRITE_FIXED)
# The link counters and the bus error registers after them, one READ: UART_FRAMES_OK .. UART_BAUD_REVERTS.
COUNTER_FIRST = min(int(r) for _, r in LINK_COUNTERS)
COUNTER_WORDS = (max(int(r) for _, r in LINK_COUNTERS) - COUNTER_FIRST) // 4 + 1
# Registers whose value depends on time (the golden device does not model them).
TIMED = {Reg.PERF_CYCLES, Reg.PERF_BUSY, Reg.PERF_MAC, Reg.PERF_STALL}


class LinkModel:
    """The link's receiver at frame granularity: hunting drops every byte but the sync byte; a frame's length
    follows from its header (payload only for a well-formed write); a frame whose CRC matches executes, any
    other is counted and dropped; an idle line times out an open frame. `pending` holds an open frame's bytes
    from its sync byte on (empty: hunting); `start` is the stream position of pending[0]."""

    def __init__(self):
        self.pending = bytearray()
        self.start = 0
        self.crc_errors = self.timeouts = self.dropped_bytes = 0

    def snapshot(self):
        return bytes(self.pending), self.start, self.crc_errors, self.timeouts, self.dropped_bytes

    def restore(self, snap):
        pending, self.start, self.crc_errors, self.timeouts, self.dropped_bytes = snap
        self.pending = bytearray(pending)

    @property
    def position(self) -> int:
        """Stream position of the next byte."""
        return self.start + len(self.pending)

    @staticmethod
    def frame_length(header: bytes) -> int:
        _, cmd, n, _ = struct.unpack_from("<BBHI", header, 1)
        payload = 4 * n if cmd in WRITES and 1 <= n <= Frame.MAX_WORDS else 0
        return Frame.REQ_HEADER + payload + Frame.CRC_BYTES

    def missing(self) -> int:
        """Bytes the open frame still needs as far as its header is known (0: hunting)."""
        if not self.pending:
            return 0
        if len(self.pending) < Frame.REQ_HEADER:
            return Frame.REQ_HEADER - len(self.pending)
        return self.frame_length(self.pending) - len(self.pending)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Take `data`; return the frames whose CRC matched, as (stream position, bytes), in order."""
        buf = self.pending + data
        base = self.start
        good = []
        i = 0
        while i < len(buf):
            if buf[i] != Frame.REQ_SYNC:             # hunting
                j = buf.find(Frame.REQ_SYNC, i)
                j = len(buf) if j < 0 else j
                self.dropped_bytes += j - i
                i = j
                continue
            if len(buf) - i < Frame.REQ_HEADER:
                break
            total = self.frame_length(buf[i:i + Frame.REQ_HEADER])
            if len(buf) - i < total:
                break
            frame = bytes(buf[i:i + total])
            if crc16(frame[1:-2]) == struct.unpack(">H", frame[-2:])[0]:
                good.append((base + i, frame))
            else:
                self.crc_errors += 1
            i += total
        self.pending = buf[i:]
        self.start = base + i
        return good

    def gap(self) -> None:
        if self.pending:
            self.timeouts += 1
            self.start += len(self.pending)
            self.pending = bytearray()


@dataclass
class Expected:
    data: bytes                 # the whole answer
    kind: str
    image: int | None = None    # first byte address, for an image read


class Checker:
    """Compares the device's answer bytes with the expected answers; see the module docstring."""

    def __init__(self, *, drop_answer: int | None = None):
        self.expected: deque[Expected] = deque()
        self.buf = bytearray()
        self.answers = 0
        self.hangs = self.silent_corruptions = self.mismatches = 0
        self.image_words_differing = 0
        self.desync = False
        self.device_image: dict[int, int] = {}
        self.notes: list[str] = []
        self.drop_answer = drop_answer       # fault injection: pretend answer number N never came

    def expect(self, e: Expected) -> None:
        self.expected.append(e)

    @property
    def clean(self) -> bool:
        return not (self.hangs or self.silent_corruptions or self.mismatches or self.desync)

    def _note(self, text):
        if len(self.notes) < 20:
            self.notes.append(text)

    def consume(self, data: bytes) -> None:
        self.buf += data
        while not self.desync and len(self.buf) >= Frame.RESP_HEADER:
            try:
                total = response_length(bytes(self.buf[:Frame.RESP_HEADER]))
            except FrameError as e:
                self.mismatches += 1
                self.desync = True
                self._note(f"answer {self.answers}: {e}; the answer stream is out of step")
                return
            if len(self.buf) < total:
                return
            got = bytes(self.buf[:total])
            del self.buf[:total]
            self.answers += 1
            if self.answers - 1 == self.drop_answer:
                continue
            self._match(got)

    def _match(self, got: bytes) -> None:
        if not self.expected:
            self.mismatches += 1
            self._note(f"answer {self.answers - 1} {got.hex()}: no request was owed one")
            return
        exp = self.expected.popleft()
        if got == exp.data:
            self._store(exp, got)
            return
        for k, later in enumerate(list(self.expected)[:8]):
            if later.data == got:          # the answers before it never came
                self.hangs += k + 1
                self._note(f"answer to a {exp.kind} request ({exp.data[1]:#04x}) and {k} more never came")
                for _ in range(k + 1):
                    self.expected.popleft()
                self._store(later, got)
                return
        try:
            r, w = decode_response(got), decode_response(exp.data)
        except FrameError as e:
            self.mismatches += 1
            self._note(f"{exp.kind}: answer {got.hex()} does not decode ({e})")
            return
        if (r.seq, r.status, len(r.words)) == (w.seq, w.status, len(w.words)) and r.status == FrameStatus.OK:
            self.silent_corruptions += 1
            self._note(f"answer {self.answers - 1}, {exp.kind} seq {r.seq:#04x}: OK with words {r.words[:8]}, "
                       f"expected {w.words[:8]}")
            self._store(exp, got)
        else:
            self.mismatches += 1
            self._note(f"answer {self.answers - 1}, {exp.kind}: {r}, expected {w}")

    def _store(self, exp: Expected, got: bytes) -> None:
        if exp.image is not None:
            for i, v in enumerate(decode_response(got).words):
                self.device_image[exp.image + 4 * i] = v

    def finish(self) -> None:
        """No more answers will come: every one still owed is a hang."""
        if self.expected:
            self._note(f"{len(self.expected)} answers never came, the first to a {self.expected[0].kind} request")
        self.hangs += len(self.expected)
        self.expected.clear()

    def compare_image(self, golden_image: dict[int, int]) -> None:
        """The device's image (from its answers) against the golden device's arrays, word by word."""
        differ = [a for a, v in golden_image.items() if self.device_image.get(a) != v]
        self.image_words_differing = len(differ)
        if differ:
            self.mismatches += len(differ)
            a = differ[0]
            self._note(f"memory image: {len(differ)} words differ, first at {a:#010x}: device "
                       f"{self.device_image.get(a)}, golden {golden_image[a]:#010x}")


def golden_image(golden: GoldenDevice) -> dict[int, int]:
    """Every scratch, GB and bank word of the golden device, by byte address, read from its arrays (not through
    its bus), so that the comparison does not share the path the answers were predicted with."""
    p = golden.p
    img = {SCRATCH_BASE + 4 * i: int(v) for i, v in enumerate(golden.scratch)}
    gb = np.ascontiguousarray(golden.array.gb).view(np.uint32).reshape(-1)
    img.update({GB_BASE + 4 * i: int(v) for i, v in enumerate(gb)})
    for b in range(p.banks):
        words = np.ascontiguousarray(golden.array.banks[b]).view(np.uint32).reshape(-1)
        base = bank_address(p, b, 0)
        img.update({base + 4 * i: int(v) for i, v in enumerate(words)})
    return img


# Relative weights of the link items (a hub command stream is drawn on its own schedule).
KINDS = {
    "write": 22, "read": 18, "bad_cmd": 2, "bad_len": 2, "bad_addr": 3, "bus_error": 3,
    "corrupted": 18, "truncated": 10, "noise": 10, "noise_sync": 4, "counters": 0.3,
}


class Plan:
    """The soak's request stream for one seed: random initial memory, `frames` link items (every frame but
    those of the streams, the initial writes and the image reads) interleaved with `streams` hub command
    streams, then the final counter check and the image reads. `items()` yields bytes and GAP markers; every answer the
    device owes is put in `checker` as it is planned. gap_rate: the share of truncated items followed by a
    GAP (each costs the link's timeout in device cycles)."""

    def __init__(self, params, seed: int, *, frames: int, streams: int, checker: Checker, gap_rate=0.003,
                 random_command=None, golden: GoldenDevice | None = None):
        self.p = params
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.frames_target, self.streams_target = frames, streams
        self.checker = checker
        self.gap_rate = gap_rate
        self.random_command = random_command
        self.golden = golden or GoldenDevice(params)
        self.link = LinkModel()
        self.frames_ok = self.bad_frames = 0
        self.seq = 0
        self.kinds: Counter[str] = Counter()
        self.frames = self.link_frames = self.streams = self.gaps = self.redrawn = self.swallowed = 0
        self.held: list[int] = []         # words of a command pushed only in part
        self.burst_words = params.lanes // 2
        self.burst_bytes = params.burst_bits // 8
        self._win = windows(params)
        self._kind_names = list(KINDS)
        self._kind_weights = list(KINDS.values())
        self._cmd_tb = SimpleNamespace(p=params, rng_py=self.rng, rng=self.np_rng)

    # ---- requests --------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def _words(self, n):
        return [self.rng.getrandbits(32) for _ in range(n)]

    def _valid_write(self):
        r, p = self.rng, self.p
        k = r.random()
        if k < 0.4:
            n = r.randint(1, 4)
            return encode_request(self.next_seq(), FrameCmd.WRITE, SCRATCH_BASE + 4 * r.randrange(p.scratch_words - n),
                                  words=self._words(n))
        bursts = r.randint(1, 2)
        if k < 0.6:
            g = r.randrange(p.gb_bursts - bursts + 1)
            addr = GB_BASE + g * self.burst_bytes
        else:
            addr = bank_address(p, r.randrange(p.banks), 0) + r.randrange(p.bank_bursts - bursts + 1) * self.burst_bytes
        return encode_request(self.next_seq(), FrameCmd.WRITE, addr, words=self._words(bursts * self.burst_words))

    def _valid_read(self):
        r, p = self.rng, self.p
        k = r.random()
        n = r.randint(1, 4)
        if k < 0.35:
            addr = SCRATCH_BASE + 4 * r.randrange(p.scratch_words - n)
        elif k < 0.5:
            addr = GB_BASE + 4 * r.randrange(p.gb_words // 2 - n)
        elif k < 0.85:
            addr = bank_address(p, r.randrange(p.banks), 0) + 4 * r.randrange(p.bank_bursts * self.burst_words - n)
        else:
            addr, n = r.choice([(CSR_BASE + Reg.MAGIC, r.randint(1, 12)), (CSR_BASE + Reg.STATUS, 1),
                                (CSR_BASE + Reg.ERROR_CODE, 4), (CSR_BASE + Reg.UART_BAUD_DIV, 1)])
        return encode_request(self.next_seq(), FrameCmd.READ, addr, count=n)

    def _refused(self, kind):
        r, p = self.rng, self.p
        if kind == "bad_cmd":
            cmd = r.choice([0, 4, 0x7F, 0xFF])
            return encode_raw_request(self.next_seq(), cmd, r.randint(1, 4), SCRATCH_BASE)
        if kind == "bad_len":
            cmd = r.choice(list(FrameCmd))
            return encode_raw_request(self.next_seq(), cmd, r.choice([0, Frame.MAX_WORDS + 1, 0xFFFF]), SCRATCH_BASE)
        if kind == "bad_addr":       # unaligned, outside every window, or running past a window's end
            top = max(w.base + w.size for w in self._win)
            addr, n = r.choice([(SCRATCH_BASE + r.choice([1, 2, 3]), 1), (top + 4 * r.randrange(1024), 2),
                                (SCRATCH_BASE + 4 * p.scratch_words - 4, 2), (GB_BASE + 2 * p.gb_words - 4, 3)])
            if r.random() < 0.5:
                return encode_request(self.next_seq(), FrameCmd.READ, addr, count=n)
            return encode_request(self.next_seq(), FrameCmd.WRITE, addr, words=self._words(n))
        # bus_error: a read-only register written, CONTROL or a CSR hole read, a CMDQ read
        hole = CSR_BASE + 4 * r.randrange(0x30 // 4, 0x40 // 4)
        return r.choice([
            encode_request(self.next_seq(), FrameCmd.WRITE, CSR_BASE + Reg.MAGIC, words=self._words(1)),
            encode_request(self.next_seq(), FrameCmd.READ, CSR_BASE + Reg.CONTROL, count=1),
            encode_request(self.next_seq(), FrameCmd.READ, hole, count=1),
            encode_request(self.next_seq(), FrameCmd.READ, CMDQ_BASE, count=2),
        ])

    # ---- execution (what the device does with a frame whose CRC matched) ---------------------------------
    def _counter_value(self, reg):
        name = {r: n for n, r in LINK_COUNTERS}.get(reg)
        if name == "frames_ok":
            return self.frames_ok
        if name == "bad_frames":
            return self.bad_frames
        if name in ("crc_errors", "timeouts", "dropped_bytes"):
            return getattr(self.link, name)
        if name is not None:
            return 0                        # framing errors, overruns, baud reverts: the bypass has none
        return None

    def _read(self, addr):
        if CSR_BASE <= addr < CSR_BASE + 0x100:
            v = self._counter_value(addr - CSR_BASE)
            if v is not None:
                return v & 0xFFFFFFFF
        return self.golden.read(addr)

    def _execute(self, frame: bytes, kind: str, image=None) -> None:
        seq, cmd, n, addr = struct.unpack_from("<BBHI", frame, 1)
        words = ()
        if cmd not in FrameCmd.__members__.values():
            status = FrameStatus.BAD_CMD
        elif not 1 <= n <= Frame.MAX_WORDS:
            status = FrameStatus.BAD_LEN
        else:
            span = 4 if cmd == FrameCmd.WRITE_FIXED else 4 * n
            inside = any(w.base <= addr and addr + span <= w.base + w.size for w in self._win)
            status = FrameStatus.OK if inside and not addr & 3 else FrameStatus.BAD_ADDR
        if status == FrameStatus.OK:
            try:
                if cmd == FrameCmd.READ:
                    words = tuple(self._read(addr + 4 * i) for i in range(n))
                else:
                    payload = struct.unpack_from(f"<{n}I", frame, Frame.REQ_HEADER)
                    for i, w in enumerate(payload):
                        self.golden.write(addr if cmd == FrameCmd.WRITE_FIXED else addr + 4 * i, w)
            except BusError:
                status, words = FrameStatus.BUS_ERROR, ()
        if status == FrameStatus.OK:
            self.frames_ok += 1
        elif status != FrameStatus.BUS_ERROR:
            self.bad_frames += 1
        self.checker.expect(Expected(encode_response(seq, int(status), list(words)), kind, image))

    def _commit(self, data: bytes, intended: list[tuple[int, bytes, str]], *, whole: bool = False) -> bool:
        """Feed `data` to the link model; if every frame that would execute is one of `intended` (offset in
        data, frame, kind), and with `whole` every one of them does (none is swallowed by an open frame
        before it), execute them and keep the data; otherwise undo and refuse it."""
        snap = self.link.snapshot()
        base = self.link.position
        good = self.link.feed(data)
        want = {base + off: (frame, kind) for off, frame, kind in intended}
        if (any(want.get(pos, (None,))[0] != frame for pos, frame in good)
                or (whole and len(good) != len(intended))):
            self.link.restore(snap)
            self.redrawn += 1
            return False
        for pos, frame in good:
            self._execute(frame, want[pos][1])
        self.swallowed += len(intended) - len(good)
        return True

    # ---- items -----------------------------------------------------------------------------------------
    def _link_item(self):
        r = self.rng
        kind = r.choices(self._kind_names, self._kind_weights)[0]
        gap = False
        if kind == "write":
            frame = self._valid_write()
            return kind, frame, [(0, frame, kind)], gap
        if kind == "read":
            frame = self._valid_read()
            if struct.unpack_from("<I", frame, 5)[0] != CSR_BASE + Reg.STATUS:
                return kind, frame, [(0, frame, kind)], gap
            # STATUS shows the array busy while posted window writes still pass through its pipeline (up to
            # BankArray.RESP_STAGE cycles after the write frame), which the golden device, executing each
            # frame at once, never is. A one-word bank read goes first: its answer leaves the array after every
            # earlier write, so STATUS then reads what the golden device says. Both must execute (an item of several
            # frames commits only whole): a frame left open by a truncated item would swallow the bank read.
            settle = encode_request(self.next_seq(), FrameCmd.READ, bank_address(self.p, 0, 0), count=1)
            frame = encode_request(self.next_seq(), FrameCmd.READ, CSR_BASE + Reg.STATUS, count=1)
            return kind, settle + frame, [(0, settle, kind), (len(settle), frame, kind)], gap
        if kind in ("bad_cmd", "bad_len", "bad_addr", "bus_error"):
            frame = self._refused(kind)
            return kind, frame, [(0, frame, kind)], gap
        if kind == "counters":
            frame = encode_request(self.next_seq(), FrameCmd.READ, CSR_BASE + COUNTER_FIRST, count=COUNTER_WORDS)
            return kind, frame, [(0, frame, kind)], gap
        if kind == "corrupted":
            frame = bytearray(self._valid_write() if r.random() < 0.5 else self._valid_read())
            for _ in range(r.choice([1, 1, 1, 2, 3])):
                frame[r.randrange(len(frame))] ^= 1 << r.randrange(8)
            return kind, bytes(frame), [], gap
        if kind == "truncated":
            frame = self._valid_write() if r.random() < 0.5 else self._valid_read()
            gap = r.random() < self.gap_rate
            return ("truncated_timeout" if gap else kind), frame[:r.randrange(1, len(frame))], [], gap
        n = r.randint(1, 24)
        noise = bytes(self.np_rng.integers(0, 256, n, dtype=np.uint8))
        if kind == "noise":
            noise = noise.replace(bytes([Frame.REQ_SYNC]), b"\x00")
        return kind, noise, [], gap

    def _flush(self):
        """Bytes without a sync byte that complete the open frame, so that the link hunts again."""
        while self.link.pending:
            n = self.link.missing()
            filler = bytes(self.np_rng.integers(0, 256, n, dtype=np.uint8)).replace(bytes([Frame.REQ_SYNC]), b"\x01")
            if self._commit(filler, []):
                self.kinds["filler_bytes"] += n
                yield filler

    def _stream(self):
        """One hub command stream as consecutive frames (the link is hunting, so each executes)."""
        r, p = self.rng, self.p
        frames = []

        def add(frame, kind, **kw):
            frames.append((frame, kind, kw))

        if r.random() < 0.15:
            value = r.choice([CONTROL_CLEAR_ERROR, CONTROL_ABORT, CONTROL_CLEAR_ERROR | CONTROL_ABORT])
            add(encode_request(self.next_seq(), FrameCmd.WRITE, CSR_BASE + Reg.CONTROL, words=[value]), "control")
            if value & CONTROL_ABORT:
                self.held = []
        words = []
        if self.held:
            k = len(self.held) if r.random() < 0.7 else r.randint(1, len(self.held))
            words, self.held = self.held[:k], self.held[k:]
        if not self.held:
            for _ in range(r.randint(1, 3)):
                cmd_words = list(self.random_command(self._cmd_tb, 4).queue_words(p))
                if r.random() < 0.15:
                    k = r.randint(1, len(cmd_words) - 1)
                    cmd_words, self.held = cmd_words[:k], cmd_words[k:]
                    words += cmd_words
                    break
                words += cmd_words
        if words:
            add(encode_request(self.next_seq(), FrameCmd.WRITE_FIXED, CMDQ_BASE, words=words), "cmdq_push")
        if r.random() < 0.2:                 # a whole burst through a window, mid-command or not
            gb = r.random() < 0.3
            addr = (GB_BASE + r.randrange(p.gb_bursts) * self.burst_bytes if gb else
                    bank_address(p, r.randrange(p.banks), r.randrange(4), r.randrange(p.bursts_per_row)))
            add(encode_request(self.next_seq(), FrameCmd.WRITE, addr, words=self._words(self.burst_words)),
                "stream_window")
        # A bank read waits until the sequencer is idle or waits for words: then the registers are settled.
        addr = bank_address(p, r.randrange(p.banks), r.randrange(4), r.randrange(p.bursts_per_row))
        add(encode_request(self.next_seq(), FrameCmd.READ, addr, count=self.burst_words), "stream_sync")
        add(encode_request(self.next_seq(), FrameCmd.READ, CSR_BASE + Reg.ERROR_CODE, count=4), "stream_errors")
        add(encode_request(self.next_seq(), FrameCmd.READ, CSR_BASE + Reg.STATUS, count=1), "stream_status")
        if r.random() < 0.25:
            add(encode_request(self.next_seq(), FrameCmd.READ, CSR_BASE + Reg.PERF_CMDS, count=1), "stream_cmds")
            n = 8
            add(encode_request(self.next_seq(), FrameCmd.READ, SCRATCH_BASE + 4 * r.randrange(p.scratch_words - n),
                               count=n), "stream_scratch")
        data = b"".join(f for f, _, _ in frames)
        offs, o = [], 0
        for f, kind, _ in frames:
            offs.append((o, f, kind))
            o += len(f)
        if not self._commit(data, offs):
            raise AssertionError("a command stream from a hunting link did not execute as planned")
        for _, kind, _ in frames:
            self.kinds[kind] += 1
        self.frames += len(frames)
        self.streams += 1
        return data

    def _reads(self, base, nwords, kind, *, image):
        """READ frames of up to MAX_WORDS over [base, base + 4 nwords), expected as the image (or not)."""
        for a in range(base, base + 4 * nwords, 4 * Frame.MAX_WORDS):
            n = min(Frame.MAX_WORDS, (base + 4 * nwords - a) // 4)
            frame = encode_request(self.next_seq(), FrameCmd.READ, a, count=n)
            assert self.link.feed(frame) == [(self.link.position - len(frame), frame)]
            seq, _, _, _ = struct.unpack_from("<BBHI", frame, 1)
            words = [self._read(a + 4 * i) for i in range(n)]
            self.frames_ok += 1
            self.checker.expect(Expected(encode_response(seq, FrameStatus.OK, words), kind, a if image else None))
            self.kinds[kind] += 1
            self.frames += 1
            yield frame

    def _writes(self, base, nwords, kind):
        for a in range(base, base + 4 * nwords, 4 * Frame.MAX_WORDS):
            n = min(Frame.MAX_WORDS, (base + 4 * nwords - a) // 4)
            frame = encode_request(self.next_seq(), FrameCmd.WRITE, a, words=self._words(n))
            if not self._commit(frame, [(0, frame, kind)]):
                raise AssertionError("an initial write from a hunting link did not execute")
            self.kinds[kind] += 1
            self.frames += 1
            yield frame

    def regions(self):
        """(base, words) of scratch, the GB and every bank: the memory image."""
        p = self.p
        yield SCRATCH_BASE, p.scratch_words
        yield GB_BASE, p.gb_words // 2
        for b in range(p.banks):
            yield bank_address(p, b, 0), p.bank_bursts * self.burst_words

    def items(self):
        """The whole stream: random initial memory, the items, a flush, the counters, the image reads."""
        for base, n in self.regions():
            yield from self._writes(base, n, "init")
        total = self.frames_target + self.streams_target
        while self.link_frames < self.frames_target or self.streams < self.streams_target:
            left_streams = self.streams_target - self.streams
            if left_streams > 0 and self.rng.random() < left_streams / max(1, total - self.link_frames - self.streams):
                yield from self._flush()
                yield self._stream()
                continue
            kind, data, intended, gap = self._link_item()
            if not self._commit(data, intended, whole=len(intended) > 1):
                continue
            self.kinds[kind] += 1
            self.frames += 1
            self.link_frames += 1
            yield data
            if gap:
                self.link.gap()
                self.gaps += 1
                yield GAP
        yield from self._flush()
        yield from self._reads(CSR_BASE + COUNTER_FIRST, COUNTER_WORDS, "counters", image=False)
        for base, n in self.regions():
            yield from self._reads(base, n, "image", image=True)

    def summary(self) -> dict:
        return {"frames": self.frames, "link_frames": self.link_frames, "streams": self.streams, "gaps": self.gaps,
                "redrawn": self.redrawn,
                "swallowed_requests": self.swallowed, "kinds": dict(sorted(self.kinds.items())),
                "expected_counters": {"frames_ok": self.frames_ok, "bad_frames": self.bad_frames,
                                      "crc_errors": self.link.crc_errors, "timeouts": self.link.timeouts,
                                      "dropped_bytes": self.link.dropped_bytes}}
