"""UART transport: the framed link of docs/uart_link.md over any pyserial URL.

`/dev/ttyUSB0`, `socket://127.0.0.1:PORT` (the sim server), `rfc2217://host:port`, `loop://` all work: pyserial
opens them with `serial.serial_for_url`. Several requests are kept in flight (`window`), every response is
awaited with a deadline, and a request whose response is lost, late or corrupted is retried if it is
idempotent (reads, and writes outside the command-queue window). Command-queue pushes are never retried:
a lost push raises, because the device may or may not have queued the words.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass

from ..contract import CMDQ_BASE, CMDQ_BYTES, UART_RESET_BAUD, Frame, FrameCmd, FrameStatus
from ..errors import DeviceError, DeviceGone, LinkError, LinkTimeout
from ..frame import crc16, encode_request
from .base import Transport, check_aligned

# Zero bytes sent to finish whatever partial frame the device receiver may hold after a fault: the longest
# frame is REQ_HEADER + 4 * MAX_WORDS + CRC_BYTES bytes, and zeros never contain the sync byte, so afterwards
# the receiver is hunting for sync again (the flushed frame fails its CRC and is dropped, and counted).
FLUSH_BYTES = Frame.REQ_HEADER + 4 * Frame.MAX_WORDS + Frame.CRC_BYTES + 8
# Read poll: the longest a read waits past its deadline. Fixed, because on rfc2217:// ports every change of
# the timeout renegotiates the port settings with the server.
POLL_S = 0.05
# URL schemes without a line (and so without a rate or a break): the byte stream goes straight to a socket.
NO_LINE_SCHEMES = ("socket://", "loop://")


@dataclass
class _Req:
    seq: int
    cmd: FrameCmd
    addr: int
    words: tuple
    count: int
    retryable: bool
    frame: bytes


class UartTransport(Transport):
    """The framed UART link.

    url: any pyserial URL (rfc2217:// carries rate changes and breaks to the far end, e.g. ser2net or the sim
    server's uart-phy link). baudrate: line rate in bit/s (ignored by socket:// and loop://).
    timeout: seconds to wait for each response, on top of the frame's own time on the wire.
    retries: extra attempts for an idempotent request after a timeout or a corrupted response.
    window: requests sent before the first response is read (the device answers in order).
    serial: an already open pyserial-like object instead of `url` (tests, recorded streams).

    Raises LinkTimeout (no answer in time), LinkError (corrupted answers that retries did not cure),
    DeviceGone (the port or socket closed) and DeviceError (the device answered with an error status).
    """

    name = "uart"

    def __init__(self, url: str = "", *, baudrate: int = UART_RESET_BAUD, timeout: float = 2.0, retries: int = 2,
                 window: int = 4, serial=None):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window!r}")
        if retries < 0:
            raise ValueError(f"retries must be at least 0, not {retries!r}")
        if serial is None:
            import serial as pyserial

            # pyserial's RFC 2217 client has no write timeout; its socket's own timeout bounds a write there.
            wt = None if url.startswith("rfc2217://") else timeout
            try:
                serial = pyserial.serial_for_url(url, baudrate=baudrate, timeout=POLL_S, write_timeout=wt)
            except (pyserial.SerialException, ValueError, OSError) as e:
                raise DeviceGone(f"cannot open {url!r}: {e}") from e
        self.url = url
        self.ser = serial
        self.baudrate = baudrate
        # Bit/s the deadlines assume, if not the line rate: a simulated line is far slower than its rate says.
        self.wire_baud: int | None = None
        self.timeout = timeout
        self.retries = retries
        self.window = window
        self._seq = 0
        self._closed = False
        self.stats.update({"frames": 0, "retries": 0, "timeouts": 0, "crc_errors": 0, "garbage_bytes": 0,
                           "stale_responses": 0, "bytes_tx": 0, "bytes_rx": 0, "resyncs": 0})

    # ---- interface -------------------------------------------------------------------------------------
    def read(self, addr, n):
        check_aligned(addr)
        reqs = [self._req(FrameCmd.READ, addr + 4 * i, count=min(Frame.MAX_WORDS, n - i))
                for i in range(0, n, Frame.MAX_WORDS)]
        out = []
        for words in self._run(reqs):
            out.extend(words)
        self._count("read", n)
        return out

    def write(self, addr, words):
        check_aligned(addr)
        words = [int(w) & 0xFFFFFFFF for w in words]
        in_cmdq = CMDQ_BASE <= addr < CMDQ_BASE + CMDQ_BYTES
        reqs = [self._req(FrameCmd.WRITE, addr + 4 * i, words=tuple(words[i:i + Frame.MAX_WORDS]),
                          retryable=not in_cmdq) for i in range(0, len(words), Frame.MAX_WORDS)]
        self._run(reqs)
        self._count("write", len(words))

    def write_fixed(self, addr, words):
        check_aligned(addr)
        words = [int(w) & 0xFFFFFFFF for w in words]
        reqs = [self._req(FrameCmd.WRITE_FIXED, addr, words=tuple(words[i:i + Frame.MAX_WORDS]), retryable=False)
                for i in range(0, len(words), Frame.MAX_WORDS)]
        self._run(reqs)
        self._count("write", len(words))

    # ---- the line ----------------------------------------------------------------------------------------
    @property
    def has_line(self) -> bool:
        """True if the port has a line rate and can send a break (a serial port, rfc2217://); False for
        socket:// and loop://, and for an injected port without a baudrate."""
        if any(self.url.startswith(s) for s in NO_LINE_SCHEMES):
            return False
        return hasattr(self.ser, "baudrate")

    def set_line_rate(self, baud: int) -> None:
        """Set the host port's rate, bit/s; the device's divisor is the caller's business (pimhil.uart_rate).
        Raises LinkError if the port refuses the rate, DeviceGone if it has gone."""
        import serial as pyserial

        try:
            self.ser.baudrate = int(baud)
        except ValueError as e:
            raise LinkError(f"{self.url}: the port refuses {baud} baud: {e}") from e
        except (pyserial.SerialException, OSError) as e:
            raise self._link_exc(e, f"setting {baud} baud") from e
        self.baudrate = int(baud)

    def send_break(self, seconds: float) -> None:
        """Hold the line low for `seconds` (the device returns to its reset rate, docs/uart_link.md).
        Raises LinkError on a port without a line, DeviceGone if it has gone."""
        if not self.has_line:
            raise LinkError(f"{self.url}: no line to send a break on")
        try:
            self.ser.send_break(seconds)
        except OSError as e:    # pyserial's SerialException is an OSError
            raise self._link_exc(e, "sending a break") from e

    def discard_output(self) -> None:
        """Drop bytes the port has not sent yet (after a failed rate change they would go out at the next
        rate as garbage). Raises DeviceGone if the port has gone."""
        try:
            self.ser.reset_output_buffer()
        except AttributeError:
            pass    # an injected port without an output buffer has nothing queued
        except OSError as e:    # pyserial's SerialException is an OSError
            raise self._link_exc(e, "discarding output") from e

    def resync(self, *, flush: bool = True) -> None:
        """Discard whatever either direction holds of a frame (see docs/uart_link.md, "Resynchronising").
        flush=False only drains the input: after a line break the device's receiver is hunting already, and
        a longest frame of zeros costs 90 ms at 115200 baud (far longer on a simulated line).
        Raises DeviceGone if the port has gone."""
        self._resync(flush=flush)

    def close(self):
        if not self._closed:
            self._closed = True
            try:
                self.ser.close()
            except OSError:
                pass    # closing a port that already vanished: nothing is left to release

    # ---- frames ----------------------------------------------------------------------------------------
    def _req(self, cmd, addr, *, words=(), count=None, retryable=True) -> _Req:
        self._seq = (self._seq + 1) & 0xFF
        frame = encode_request(self._seq, cmd, addr, words=words, count=count)
        return _Req(self._seq, cmd, addr, words, count or len(words), retryable, frame)

    def _wire_s(self, nbytes: int) -> float:
        return 10.0 * nbytes / (self.wire_baud or self.baudrate)

    def _send(self, req: _Req) -> None:
        try:
            self.ser.write(req.frame)
        except OSError as e:   # pyserial's SerialException and SerialTimeoutException are OSErrors
            raise self._link_exc(e, "sending") from e
        self.stats["frames"] += 1
        self.stats["bytes_tx"] += len(req.frame)

    def _link_exc(self, e, what):
        import serial as pyserial

        if isinstance(e, pyserial.SerialTimeoutException):
            return LinkTimeout(f"{self.url}: {what} timed out")
        return DeviceGone(f"{self.url}: link lost while {what}: {e}")

    def _run(self, reqs: list[_Req]) -> list[tuple]:
        """Send reqs (window in flight), return their payloads in order; retries idempotent ones."""
        if self._closed:
            raise DeviceGone(f"{self.url}: transport is closed")
        results: list = [None] * len(reqs)
        attempts = [0] * len(reqs)
        pending: deque[int] = deque()
        nxt = 0
        while nxt < len(reqs) or pending:
            while nxt < len(reqs) and len(pending) < self.window:
                self._send(reqs[nxt])
                pending.append(nxt)
                nxt += 1
            i = pending[0]
            req = reqs[i]
            try:
                status, words = self._receive(req)
            except (LinkTimeout, LinkError) as e:
                if isinstance(e, DeviceGone):
                    raise
                # Everything in flight is in doubt: resync, then resend from the failed request on.
                self._resync()
                unsafe = [j for j in pending if not reqs[j].retryable]
                if unsafe or attempts[i] >= self.retries:
                    raise type(e)(f"{e} (after {attempts[i]} retries"
                                  f"{'; a command-queue push was in flight and is not retried' if unsafe else ''})"
                                  ) from e
                attempts[i] += 1
                self.stats["retries"] += 1
                for j in pending:
                    old = reqs[j]
                    reqs[j] = self._req(old.cmd, old.addr, words=old.words,
                                        count=old.count if old.cmd == FrameCmd.READ else None,
                                        retryable=old.retryable)
                pending.clear()
                nxt = i
                continue
            pending.popleft()
            if status != FrameStatus.OK:
                self._drain_pending(reqs, pending)
                raise DeviceError(f"{self.url}: {req.cmd.name} at {req.addr:#x} refused: {status.name}",
                                  code=int(status), addr=req.addr)
            results[i] = words
        return results

    def _drain_pending(self, reqs, pending):
        """After an error status, collect the answers still in flight so the next call starts clean."""
        while pending:
            try:
                self._receive(reqs[pending.popleft()])
            except (LinkTimeout, LinkError):
                self._resync()
                pending.clear()

    def _read_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"{self.url}: no complete response within the deadline "
                                  f"({len(buf)} of {n} bytes)")
            try:
                self._set_timeout(POLL_S)
                chunk = self.ser.read(n - len(buf))
            except OSError as e:  # pyserial's SerialException is an OSError
                raise self._link_exc(e, "receiving") from e
            buf += chunk
        self.stats["bytes_rx"] += n
        return bytes(buf)

    def _set_timeout(self, seconds: float) -> None:
        if self.ser.timeout != seconds:
            self.ser.timeout = seconds

    def _receive(self, req: _Req):
        """The response to req: hunts for sync, checks CRC and sequence; stale responses are skipped."""
        resp_bytes = Frame.RESP_HEADER + Frame.CRC_BYTES + (4 * req.count if req.cmd == FrameCmd.READ else 0)
        deadline = time.monotonic() + self.timeout + 2 * self._wire_s(len(req.frame) + resp_bytes)
        while True:
            b = self._read_exact(1, deadline)
            if b[0] != Frame.RESP_SYNC:
                self.stats["garbage_bytes"] += 1
                continue
            head = b + self._read_exact(Frame.RESP_HEADER - 1, deadline)
            n = struct.unpack_from("<H", head, 3)[0]
            if n > Frame.MAX_WORDS:
                self.stats["garbage_bytes"] += len(head)
                raise LinkError(f"{self.url}: response length {n} words is impossible")
            rest = self._read_exact(4 * n + Frame.CRC_BYTES, deadline)
            body = head[1:] + rest[:-2]
            if crc16(body) != struct.unpack(">H", rest[-2:])[0]:
                self.stats["crc_errors"] += 1
                raise LinkError(f"{self.url}: response CRC error (seq {head[1]})")
            seq, status = head[1], head[2]
            if seq != req.seq:
                # A late answer to an attempt already given up on: skip it. Anything else is out of order.
                if (req.seq - seq) & 0xFF < 128:
                    self.stats["stale_responses"] += 1
                    continue
                raise LinkError(f"{self.url}: response seq {seq}, expected {req.seq}")
            try:
                st = FrameStatus(status)
            except ValueError:
                raise LinkError(f"{self.url}: unknown response status {status:#x}") from None
            if st == FrameStatus.OK and req.cmd == FrameCmd.READ and n != req.count:
                raise LinkError(f"{self.url}: read of {req.count} words answered with {n}")
            return st, struct.unpack(f"<{n}I", rest[:-2])

    def _resync(self, *, flush: bool = True) -> None:
        """Bring both directions back to frame boundaries: complete any partial request at the device with
        zeros, then discard whatever arrives until the line has been quiet for a moment."""
        self.stats["resyncs"] += 1
        try:
            if flush:
                self.ser.write(bytes(FLUSH_BYTES))
                self.stats["bytes_tx"] += FLUSH_BYTES
            quiet_s = max(POLL_S, 4 * self._wire_s(32))
            self._set_timeout(quiet_s)
            limit = time.monotonic() + self.timeout
            while time.monotonic() < limit:
                junk = self.ser.read(4096)
                if not junk:
                    break
                self.stats["garbage_bytes"] += len(junk)
        except OSError as e:  # pyserial's SerialException is an OSError
            raise self._link_exc(e, "resynchronising") from e
