"""A pyserial-like port with the device's UART link behind it (frames parsed as docs/uart_link.md says,
executed on GoldenDevice), and faults to inject: garbage, dropped and corrupted bytes, silence."""

from __future__ import annotations

import struct
import time

from pimhil.contract import Frame, FrameCmd, FrameStatus, windows
from pimhil.frame import crc16, encode_response
from pimhil.golden.device import BusError, GoldenDevice


class FakeUartDevice:
    """Feed it bytes with write(); responses appear for read(). `timeout` is honoured by sleeping when
    nothing is buffered, as a real port would block."""

    def __init__(self, params, *, device: GoldenDevice | None = None):
        self.params = params
        self.dev = device or GoldenDevice(params)
        self.timeout = 0.05
        self.rx = bytearray()        # bytes the device has received and not yet parsed
        self.tx = bytearray()        # bytes waiting for the host
        self.dead = False            # swallow everything, answer nothing
        self.drop_next_request_bytes = 0     # drop this many bytes from the next write()
        self.garbage_before_next = b""       # emitted before the next response
        self.corrupt_next_response = False   # flip a payload bit of the next response
        self.frames = {"ok": 0, "crc": 0, "bad": 0}
        self.closed = False
        self._win = windows(params)

    # ---- pyserial surface -------------------------------------------------------------------------------
    def write(self, data):
        if self.closed:
            raise OSError("port closed")
        data = bytes(data)
        if self.drop_next_request_bytes:
            k = self.drop_next_request_bytes
            data = data[:5] + data[5 + k:]          # lose bytes in the middle of the header/payload
            self.drop_next_request_bytes = 0
        if not self.dead:
            self.rx += data
            self._parse()
        return len(data)

    def read(self, n):
        if self.closed:
            raise OSError("port closed")
        if not self.tx:
            time.sleep(self.timeout or 0)
            return b""
        out, self.tx = bytes(self.tx[:n]), self.tx[n:]
        return out

    def close(self):
        self.closed = True

    # ---- the link -----------------------------------------------------------------------------------------
    def _parse(self):
        while True:
            i = self.rx.find(bytes([Frame.REQ_SYNC]))
            if i < 0:
                self.rx.clear()
                return
            del self.rx[:i]
            if len(self.rx) < Frame.REQ_HEADER:
                return
            seq, cmd, n, addr = struct.unpack_from("<BBHI", self.rx, 1)
            bad_len = not 1 <= n <= Frame.MAX_WORDS
            plen = 4 * n if cmd in (FrameCmd.WRITE, FrameCmd.WRITE_FIXED) and not bad_len else 0
            total = Frame.REQ_HEADER + plen + Frame.CRC_BYTES
            if len(self.rx) < total:
                return
            body = bytes(self.rx[1:total - 2])
            crc = struct.unpack(">H", self.rx[total - 2:total])[0]
            del self.rx[:total]
            if crc16(body) != crc:
                self.frames["crc"] += 1      # silent drop, back to hunting
                continue
            if bad_len:
                self.frames["bad"] += 1
                self._respond(seq, FrameStatus.BAD_LEN)
                continue
            self._execute(seq, cmd, n, addr, body[8:])

    def _respond(self, seq, status, words=()):
        frame = bytearray(encode_response(seq, int(status), list(words)))
        if self.garbage_before_next:
            self.tx += self.garbage_before_next
            self.garbage_before_next = b""
        if self.corrupt_next_response:
            frame[-3] ^= 0x10
            self.corrupt_next_response = False
        self.tx += frame

    def _execute(self, seq, cmd, n, addr, payload):
        try:
            cmd = FrameCmd(cmd)
        except ValueError:
            self.frames["bad"] += 1
            return self._respond(seq, FrameStatus.BAD_CMD)
        span = 4 if cmd == FrameCmd.WRITE_FIXED else 4 * n
        if addr & 3 or not any(w.base <= addr and addr + span <= w.base + w.size for w in self._win):
            self.frames["bad"] += 1
            return self._respond(seq, FrameStatus.BAD_ADDR)
        self.frames["ok"] += 1
        try:
            if cmd == FrameCmd.READ:
                return self._respond(seq, FrameStatus.OK, [self.dev.read(addr + 4 * i) for i in range(n)])
            words = struct.unpack(f"<{n}I", payload)
            for i, w in enumerate(words):
                self.dev.write(addr if cmd == FrameCmd.WRITE_FIXED else addr + 4 * i, w)
            return self._respond(seq, FrameStatus.OK)
        except BusError:
            return self._respond(seq, FrameStatus.BUS_ERROR)
