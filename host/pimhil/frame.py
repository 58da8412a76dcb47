"""UART link frames (docs/uart_link.md): encoding requests, decoding responses, CRC-16/CCITT-FALSE.

Request:  A5 | seq | cmd | len (u16 LE, words) | addr (u32 LE, bytes) | payload (writes: len u32 LE) | crc (u16 BE)
Response: 5A | seq | status | len (u16 LE, words) | payload (reads: len u32 LE) | crc (u16 BE)
The CRC covers every byte after the sync byte.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from .contract import Frame, FrameCmd, FrameStatus


class FrameError(ValueError):
    """Bytes that do not form a valid frame (bad sync, CRC or length)."""


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(bytes(data), Frame.CRC_INIT)


def encode_request(seq: int, cmd: FrameCmd, addr: int, *, words=(), count: int | None = None) -> bytes:
    """A request frame. Writes carry `words`; reads give `count` (words to read)."""
    cmd = FrameCmd(cmd)
    n = len(words) if cmd != FrameCmd.READ else count
    if n is None or not 1 <= n <= Frame.MAX_WORDS:
        raise FrameError(f"length {n} outside 1..{Frame.MAX_WORDS} words")
    if cmd == FrameCmd.READ and words:
        raise FrameError("a READ carries no payload")
    body = struct.pack("<BBHI", seq & 0xFF, int(cmd), n, addr & 0xFFFFFFFF)
    if cmd != FrameCmd.READ:
        body += struct.pack(f"<{n}I", *(int(w) & 0xFFFFFFFF for w in words))
    return bytes([Frame.REQ_SYNC]) + body + struct.pack(">H", crc16(body))


def encode_raw_request(seq: int, cmd: int, n: int, addr: int, payload: bytes = b"") -> bytes:
    """A request with arbitrary (possibly invalid) fields and a correct CRC, for testing refusals."""
    body = struct.pack("<BBHI", seq & 0xFF, cmd & 0xFF, n & 0xFFFF, addr & 0xFFFFFFFF) + payload
    return bytes([Frame.REQ_SYNC]) + body + struct.pack(">H", crc16(body))


@dataclass(frozen=True)
class Response:
    seq: int
    status: FrameStatus
    words: tuple

    @property
    def nbytes(self) -> int:
        return Frame.RESP_HEADER + 4 * len(self.words) + Frame.CRC_BYTES


def encode_response(seq: int, status: int, words=()) -> bytes:
    body = struct.pack("<BBH", seq & 0xFF, status, len(words)) + struct.pack(f"<{len(words)}I", *words)
    return bytes([Frame.RESP_SYNC]) + body + struct.pack(">H", crc16(body))


def response_length(header: bytes) -> int:
    """Total bytes of a response, given at least its first RESP_HEADER bytes."""
    if header[0] != Frame.RESP_SYNC:
        raise FrameError(f"response sync {header[0]:#04x}, expected {Frame.RESP_SYNC:#04x}")
    n = struct.unpack_from("<H", header, 3)[0]
    if n > Frame.MAX_WORDS:
        raise FrameError(f"response length {n} above {Frame.MAX_WORDS}")
    return Frame.RESP_HEADER + 4 * n + Frame.CRC_BYTES


def decode_response(frame: bytes) -> Response:
    total = response_length(frame)
    if len(frame) != total:
        raise FrameError(f"response of {len(frame)} bytes, expected {total}")
    body, crc = frame[1:-2], struct.unpack(">H", frame[-2:])[0]
    if crc16(body) != crc:
        raise FrameError(f"response CRC {crc:#06x}, computed {crc16(body):#06x}")
    seq, status, n = struct.unpack_from("<BBH", body)
    try:
        st = FrameStatus(status)
    except ValueError:
        raise FrameError(f"unknown response status {status:#04x}") from None
    return Response(seq, st, struct.unpack_from(f"<{n}I", body, 4))
