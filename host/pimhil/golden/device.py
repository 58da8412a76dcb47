"""Register-level model of the whole device: CSRs, command queue, sequencer, scratch and bus windows.

It answers 32-bit reads and writes at bus addresses exactly as the control hub does (hw/control_hub.py),
except for what depends on time: commands execute as soon as their last word is pushed, the performance
counters stay 0 and the queue never overflows. What it shows is the hub's state once the sequencer has
caught up: the queue is empty (CMDQ_LEVEL 0), and STATUS shows busy and partial only while the sequencer holds
the first words of a command and waits for the rest. Testbenches compare every read with it;
the host driver uses it as the `golden` target.
"""

from __future__ import annotations

import numpy as np

from ..contract import (CMD_HEADER, CMD_HEADER_WORDS, IDENTITY_REGS, LINK_COUNTERS, ARRAY_OPS, BANK_BASE,
                        CONTRACT_VERSION, CONTROL_ABORT, CONTROL_CLEAR_COUNTERS, CONTROL_CLEAR_ERROR, CSR_BASE,
                        GB_BASE, MAGIC, SCRATCH_BASE, STATUS_BUSY, STATUS_DONE, STATUS_ERROR, STATUS_PARTIAL,
                        STATUS_QUEUE_EMPTY, PAYLOAD_OPS, UART_MIN_DIV, Command, CommandError,
                        DeviceParams, ErrorCode, Flag, HubError, HubOp, Op, Reg, attn_tile_problem, bank_stride,
                        check_command, gemv_tile_problem, payload_words, uart_reset_div, unpack_fields, windows)
from .array import GoldenArray
from .elementwise import ewadd, ewmul
from .fpbits import fp32_to_bf16
from .mac import gemv
from .softmax import softmax


class BusError(Exception):
    """The device answered a bus access with an error (unaligned, unmapped or read-only address)."""

    def __init__(self, addr: int):
        super().__init__(f"bus error at {addr:#010x}")
        self.addr = addr


class GoldenDevice:
    """whole_tiles: run a GEMV tile as one vectorised gemv over its rows (same bits and end state as the hub's
    command sequence, numerics.md §4: only the per-row order of bursts matters); False runs the commands."""

    def __init__(self, params: DeviceParams, *, uart_default_div: int | None = None, whole_tiles: bool = True):
        self.p = params
        self.whole_tiles = whole_tiles
        self.array = GoldenArray(params)
        self.scratch = np.zeros(params.scratch_words, np.uint32)
        self.partial: list[int] = []   # words of a command the sequencer holds while it waits for the rest
        self.err_latched = False
        self.err_code = 0
        self.err_op = 0
        self.err_count = 0
        self.cmds_done = 0
        self.bus_errors = 0
        self.bus_err_addr = 0
        self.baud_div = uart_reset_div(params) if uart_default_div is None else uart_default_div
        self._stage = None      # (is_gb, bank, burst, {word: value})
        self._win = {w.name: w for w in windows(params)}

    # ---- bus -------------------------------------------------------------------------------------------
    def read(self, addr: int) -> int:
        return self._access(addr, None)

    def write(self, addr: int, value: int) -> None:
        self._access(addr, int(value) & 0xFFFFFFFF)

    def _bus_error(self, addr):
        self.bus_errors += 1
        self.bus_err_addr = addr
        raise BusError(addr)

    def _in(self, name, addr):
        w = self._win[name]
        return w.base <= addr < w.base + w.size

    def _access(self, addr, value):
        if addr & 3:
            self._bus_error(addr)
        if self._in("csr", addr):
            return self._csr(addr - CSR_BASE, value)
        if self._in("cmdq", addr):
            if value is None:
                self._bus_error(addr)
            self._push(value)
            return None
        if self._in("scratch", addr):
            i = (addr - SCRATCH_BASE) // 4
            if value is None:
                return int(self.scratch[i])
            self.scratch[i] = value
            return None
        if self._in("gb", addr) or (self._in("bank", addr) and self._bank_ok(addr)):
            return self._window(addr, value)
        self._bus_error(addr)

    def _csr(self, off, value):
        regs = {
            Reg.MAGIC: MAGIC, Reg.VERSION: CONTRACT_VERSION,
            **{reg: getattr(self.p, name) for reg, name in IDENTITY_REGS},
            # The golden device has no UART link: its counters stay 0.
            **{reg: 0 for _, reg in LINK_COUNTERS},
            Reg.STATUS: (STATUS_ERROR if self.err_latched else 0) | STATUS_QUEUE_EMPTY
            | (STATUS_BUSY | STATUS_PARTIAL if self.partial else STATUS_DONE),
            Reg.ERROR_CODE: self.err_code, Reg.ERROR_OP: self.err_op, Reg.ERROR_COUNT: self.err_count,
            Reg.CMDQ_LEVEL: 0, Reg.PERF_CYCLES: 0, Reg.PERF_BUSY: 0, Reg.PERF_MAC: 0,
            Reg.PERF_STALL: 0, Reg.PERF_CMDS: self.cmds_done, Reg.UART_BAUD_DIV: self.baud_div,
            Reg.BUS_ERRORS: self.bus_errors, Reg.BUS_ERROR_ADDR: self.bus_err_addr,
        }
        if value is None:
            if off not in set(int(r) for r in regs):
                self._bus_error(CSR_BASE + off)
            return int(regs[Reg(off)])
        if off == Reg.CONTROL:
            if value & CONTROL_CLEAR_ERROR:
                self.err_latched, self.err_code, self.err_op = False, 0, 0
            if value & CONTROL_CLEAR_COUNTERS:
                self.err_count = 0
                self.cmds_done = 0
            if value & CONTROL_ABORT:
                self.partial = []
            return None
        if off == Reg.UART_BAUD_DIV:
            self.baud_div = max(UART_MIN_DIV, value & 0xFFFF)
            return None
        self._bus_error(CSR_BASE + off)

    # ---- bulk access (the golden target's fast path) ------------------------------------------------------
    def write_block(self, addr: int, words) -> bool:
        """Write consecutive words as `write` would one by one, when that can be done as one array store:
        scratch, or whole bursts of one memory (GB or one bank) with no partial burst staged. Returns False,
        having done nothing, otherwise (the caller then writes word by word)."""
        words = np.asarray(words, dtype=np.uint32)
        n = len(words)
        if n == 0 or addr & 3 or self._stage is not None:
            return False
        if self._in("scratch", addr) and self._in("scratch", addr + 4 * n - 4):
            i = (addr - SCRATCH_BASE) // 4
            self.scratch[i:i + n] = words
            return True
        span = self._span(addr, n)
        if span is None or span[2] % (self.p.lanes // 2) or n % (self.p.lanes // 2):
            return False
        mem, first, _ = span
        mem.reshape(-1)[2 * first:2 * first + 2 * n] = words.view(np.uint16)
        return True

    def read_block(self, addr: int, n: int):
        """Consecutive words as `read` would return them one by one, as a uint32 array, when they lie in one
        memory (scratch, GB or one bank); None otherwise."""
        if n <= 0 or addr & 3:
            return None
        if self._in("scratch", addr) and self._in("scratch", addr + 4 * n - 4):
            i = (addr - SCRATCH_BASE) // 4
            return self.scratch[i:i + n].copy()
        span = self._span(addr, n)
        if span is None:
            return None
        mem, first, _ = span
        return np.ascontiguousarray(mem.reshape(-1)[2 * first:2 * first + 2 * n]).view(np.uint32).copy()

    def _span(self, addr, n):
        """(memory as (bursts, lanes) uint16, first word index in it, same) when n words from addr lie inside
        the GB or inside one bank's valid region; else None."""
        last = addr + 4 * n - 4
        if self._in("gb", addr) and self._in("gb", last):
            return self.array.gb, (addr - GB_BASE) // 4, (addr - GB_BASE) // 4
        if self._in("bank", addr) and self._in("bank", last) and self._bank_ok(addr) and self._bank_ok(last):
            stride = bank_stride(self.p)
            bank = (addr - BANK_BASE) // stride
            if (last - BANK_BASE) // stride != bank:
                return None
            first = (addr - BANK_BASE - bank * stride) // 4
            return self.array.banks[bank], first, first
        return None

    # ---- windows ---------------------------------------------------------------------------------------
    def _bank_ok(self, addr):
        return (addr - BANK_BASE) % bank_stride(self.p) < self.p.bank_bursts * self.p.burst_bits // 8

    def _locate(self, addr):
        p = self.p
        bb = p.burst_bits // 8
        if self._in("gb", addr):
            return True, 0, (addr - GB_BASE) // bb, (addr // 4) % (p.lanes // 2)
        off = addr - BANK_BASE
        return False, off // bank_stride(p), (off % bank_stride(p)) // bb, (addr // 4) % (p.lanes // 2)

    def _window(self, addr, value):
        is_gb, bank, burst, word = self._locate(addr)
        mem = self.array.gb[burst] if is_gb else self.array.banks[bank, burst]
        if value is None:
            return int(mem[2 * word]) | (int(mem[2 * word + 1]) << 16)
        key = (is_gb, bank, burst)
        if self._stage is not None and self._stage[0] != key:
            self.bus_errors += 1            # a partial burst is dropped
            self.bus_err_addr = addr
            self._stage = None
        if self._stage is None:
            self._stage = (key, {})
        self._stage[1][word] = value
        if len(self._stage[1]) == self.p.lanes // 2:
            words = [self._stage[1][i] for i in range(self.p.lanes // 2)]
            burst_words = [h for w in words for h in (w & 0xFFFF, w >> 16)]
            mem[:] = burst_words
            self._stage = None
        return None

    # ---- command queue and sequencer ---------------------------------------------------------------------
    def _push(self, word):
        if self.err_latched:
            return                       # the sequencer drains the queue until the error is cleared
        self.partial.append(word)
        op = self.partial[0] & 0xFF
        if len(self.partial) < 4 or len(self.partial) < 4 + payload_words(op, self.p):
            return
        words, self.partial = self.partial, []
        self._execute(words)

    def _raise(self, code, op):
        self.err_count += 1
        if not self.err_latched:
            self.err_latched, self.err_code, self.err_op = True, int(code), int(op)

    def _execute(self, words):
        p = self.p
        h = unpack_fields(CMD_HEADER, sum(w << (32 * i) for i, w in enumerate(words[:CMD_HEADER_WORDS])))
        op = h["op"]
        if op in (int(o) for o in ARRAY_OPS) and op != Op.SYNC:
            data = ()
            if op == Op.WR_AFLUT:
                data = (words[4], words[5])
            elif op in PAYLOAD_OPS:
                data = tuple(v for w in words[4:] for v in (w & 0xFFFF, w >> 16))
            cmd = Command(Op(op), data=data, **{k: h[k] for k in ("flags", "bank", "acc", "row", "col", "count",
                                                                   "gb", "imm")})
            reads = op in (Op.RD_SBK, Op.RD_GB)
            responding = reads or op == Op.RD_MAC or (op in (Op.MAC_ABK, Op.MAC_SBK) and h["flags"] & Flag.READ)
            n = h["count"] * p.lanes // 2 if reads else p.banks
            if responding and h["imm"] + n > p.scratch_words:
                return self._raise(HubError.BAD_SCRATCH, op)
            try:
                check_command(cmd, p)
            except CommandError as e:
                return self._raise(e.code, op)
            out = self.array.execute(cmd)
            if responding:
                dest = h["imm"]
                for r in out:
                    if reads:
                        vals = [(r.data >> (32 * i)) & 0xFFFFFFFF for i in range(p.lanes // 2)]
                    else:
                        vals = [(r.data >> (32 * i)) & 0xFFFFFFFF for i in range(p.banks)]
                    self.scratch[dest:dest + len(vals)] = vals
                    dest += len(vals)
        elif op in (Op.SYNC, Op.EOC):
            pass
        elif op == HubOp.GEMV_TILE:
            return self._gemv_tile(h)
        elif op == HubOp.ATTN_TILE:
            return self._attn_tile(h)
        elif op in (Op.EWMUL, Op.EWADD):
            n = h["count"]
            if max(h["row"], h["col"], h["gb"]) + n > p.scratch_words:
                return self._raise(HubError.BAD_SCRATCH, op)
            if h["flags"]:
                return self._raise(ErrorCode.BAD_FLAGS, op)
            if n == 0:
                return self._raise(ErrorCode.BAD_COUNT, op)
            # Element by element, each result written before the next element's operands are read:
            # overlapping ranges see exactly that order.
            fn = ewmul if op == Op.EWMUL else ewadd
            for i in range(n):
                ai, bi = self.scratch[h["row"] + i], self.scratch[h["col"] + i]
                self.scratch[h["gb"] + i] = fn(np.uint32(ai), np.uint32(bi))
        else:
            return self._raise(ErrorCode.BAD_OPCODE, op)
        self.cmds_done += 1

    def _attn_tile(self, h):
        """The hub's attention tile: score MACs, function-unit softmax, p through the GB, V-transpose MACs."""
        p = self.p
        B, L, C = p.banks, p.lanes, p.bursts_per_row
        T, dl = h["count"], h["acc"]
        d = dl * L
        if h["flags"]:
            return self._raise(ErrorCode.BAD_FLAGS, HubOp.ATTN_TILE)
        ch = min(T, p.row_words)
        nch = T // p.row_words if T > p.row_words else 1
        problem = attn_tile_problem(p, tokens=T, dl=dl, row=h["row"], col=h["col"], gb=h["gb"])
        if problem:
            return self._raise(problem[0], HubOp.ATTN_TILE)
        kpr = C // dl
        scores = []
        for q in range(T // B):
            out = self.array.execute(Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, row=h["row"] + q // kpr,
                                             col=(q % kpr) * dl, count=dl, acc=q % p.accs))
            scores.extend((out[0].data >> (32 * b)) & 0xFFFFFFFF for b in range(B))
        p32, *_ = softmax(np.array(scores, np.uint32), h["imm"], lanes=B)
        pb = fp32_to_bf16(p32)
        for c in range(nch):
            for k in range(ch // L):
                self.array.execute(Command(Op.WR_GB, gb=k, data=tuple(int(v) for v in
                                                                      pb[c * ch + k * L:c * ch + (k + 1) * L])))
            for g in range(d // B):
                flags = (Flag.ZERO if c == 0 else 0) | (Flag.READ if c == nch - 1 else 0)
                out = self.array.execute(Command(Op.MAC_ABK, flags=flags, row=h["col"] + g * nch + c,
                                                 count=ch // L, acc=g))
                if out:
                    dest = h["gb"] + g * B
                    self.scratch[dest:dest + B] = [(out[0].data >> (32 * b)) & 0xFFFFFFFF for b in range(B)]
        self.cmds_done += 1

    def _gemv_tile(self, h):
        """The command sequence the hub expands a GEMV tile into (docs/control_hub.md)."""
        p = self.p
        groups, chunks = h["col"], h["count"]
        if h["flags"] & ~int(Flag.BF16):
            return self._raise(ErrorCode.BAD_FLAGS, HubOp.GEMV_TILE)
        problem = gemv_tile_problem(p, row=h["row"], groups=groups, chunks=chunks, bank=h["bank"], gb=h["gb"],
                                    imm=h["imm"])
        if problem:
            return self._raise(problem[0], HubOp.GEMV_TILE)
        if self.whole_tiles:
            return self._gemv_tile_whole(h)
        C = p.bursts_per_row
        for start in range(0, groups, p.accs):
            for c in range(chunks):
                self.array.execute(Command(Op.COPY_BKGB, bank=h["bank"], row=h["gb"] + c, count=C))
                for g in range(start, min(groups, start + p.accs)):
                    flags = (Flag.ZERO if c == 0 else 0) | (Flag.READ if c == chunks - 1 else 0)
                    flags |= h["flags"] & Flag.BF16
                    out = self.array.execute(Command(Op.MAC_ABK, flags=flags, row=h["row"] + g * chunks + c,
                                                     count=C, acc=g - start))
                    if out:
                        dest = h["imm"] + g * p.banks
                        self.scratch[dest:dest + p.banks] = [(out[0].data >> (32 * b)) & 0xFFFFFFFF
                                                             for b in range(p.banks)]
        self.cmds_done += 1

    def _gemv_tile_whole(self, h):
        """The GEMV tile's results and end state computed at once: scratch, accumulators and GB as the command
        sequence leaves them."""
        p = self.p
        B, C, L = p.banks, p.bursts_per_row, p.lanes
        groups, chunks, row0 = h["col"], h["count"], h["row"]
        banks = self.array.banks.reshape(B, p.rows, C, L)
        rows = row0 + np.arange(groups)[:, None] * chunks + np.arange(chunks)[None, :]    # (groups, chunks)
        w = banks[:, rows].transpose(1, 0, 2, 3, 4).reshape(groups * B, chunks * C * L)
        x_rows = banks[h["bank"], h["gb"]:h["gb"] + chunks]
        y = gemv(w, x_rows.reshape(-1), lanes=L)
        out = fp32_to_bf16(y).astype(np.uint32) if h["flags"] & Flag.BF16 else y
        self.scratch[h["imm"]:h["imm"] + groups * B] = out
        for start in range(0, groups, p.accs):
            n = min(groups, start + p.accs) - start
            self.array.accs[:, :n] = y[start * B:(start + n) * B].reshape(n, B).T
        self.array.gb[:C] = x_rows[-1]
        self.cmds_done += 1
