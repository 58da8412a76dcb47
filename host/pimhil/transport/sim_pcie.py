"""The simulation's PCIe path: an XdmaTransport whose endpoint is the sim server's AXI masters over TCP.

The same routing as on the board (registers through the BAR, data windows by DMA) reaches the simulated
device's AXI4-Lite and AXI4 ports; the wire format is SimPcie below.
"""

from __future__ import annotations

import socket
import struct
import time

from ..contract import FrameStatus
from ..errors import DeviceError, DeviceGone, LinkError, LinkTimeout
from .xdma import XdmaTransport

# The sim server's PCIe request protocol: how this transport reaches the server's AXI masters over TCP
# (tb/sim_server implements the other end). Not part of the device contract: no board speaks it.
class SimPcie:
    """Request: struct REQ = magic u16, op u8, chan u8, addr u32, nbytes u32 (little-endian), then nbytes of
    data for writes. Response: struct RESP = magic u16, status u8, pad u8, nbytes u32, then data for reads.
    chan USER is the AXI4-Lite port (XDMA's BAR; nbytes must be 4), DMA the AXI4 port (H2C/C2H)."""

    REQ = "<HBBII"
    RESP = "<HBBI"
    REQ_MAGIC = 0x5043      # "CP"
    RESP_MAGIC = 0x5350     # "PS"
    OP_READ, OP_WRITE = 1, 2
    CHAN_USER, CHAN_DMA = 0, 1
    OK, SLVERR, BAD_REQUEST = 0, 1, 2
    MAX_BYTES = 1 << 20     # one request moves at most this much


class SimPcieEndpoint:
    """A connection to the sim server's PCIe port. timeout: seconds per request (the simulated device
    runs far slower than a card, so large DMA requests get proportionally longer: `per_mib_s`)."""

    has_dma = True

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, per_mib_s: float = 120.0):
        self.where = f"{host}:{port}"
        self.timeout, self.per_mib_s = timeout, per_mib_s
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise DeviceGone(f"cannot connect to the sim server at {self.where}: {e}") from e
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"sim server {self.where}: no answer within the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                continue
            except OSError as e:
                raise DeviceGone(f"sim server {self.where}: connection lost: {e}") from e
            if not chunk:
                raise DeviceGone(f"sim server {self.where} closed the connection")
            buf += chunk
        return bytes(buf)

    def _request(self, op: int, chan: int, addr: int, nbytes: int, data: bytes = b"") -> bytes:
        if self.sock is None:
            raise DeviceGone(f"sim server {self.where}: endpoint is closed")
        deadline = time.monotonic() + self.timeout + self.per_mib_s * nbytes / (1 << 20)
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(struct.pack(SimPcie.REQ, SimPcie.REQ_MAGIC, op, chan, addr, nbytes) + data)
        except OSError as e:
            raise DeviceGone(f"sim server {self.where}: connection lost: {e}") from e
        head = self._recv_exact(struct.calcsize(SimPcie.RESP), deadline)
        magic, status, _, n = struct.unpack(SimPcie.RESP, head)
        if magic != SimPcie.RESP_MAGIC:
            raise LinkError(f"sim server {self.where}: bad response magic {magic:#06x}")
        payload = self._recv_exact(n, deadline) if n else b""
        if status == SimPcie.SLVERR:
            raise DeviceError(f"{'read' if op == SimPcie.OP_READ else 'write'} of {nbytes} bytes at {addr:#x}: "
                              f"the device answered SLVERR", code=FrameStatus.BUS_ERROR, addr=addr)
        if status != SimPcie.OK:
            raise LinkError(f"sim server {self.where}: request refused (status {status})")
        if op == SimPcie.OP_READ and n != nbytes:
            raise LinkError(f"sim server {self.where}: read of {nbytes} bytes answered with {n}")
        return payload

    def user_read(self, addr: int) -> int:
        return struct.unpack("<I", self._request(SimPcie.OP_READ, SimPcie.CHAN_USER, addr, 4))[0]

    def user_write(self, addr: int, value: int) -> None:
        self._request(SimPcie.OP_WRITE, SimPcie.CHAN_USER, addr, 4, struct.pack("<I", value & 0xFFFFFFFF))

    def dma_read(self, addr: int, nbytes: int) -> bytes:
        return b"".join(self._request(SimPcie.OP_READ, SimPcie.CHAN_DMA, addr + off,
                                      min(SimPcie.MAX_BYTES, nbytes - off))
                        for off in range(0, nbytes, SimPcie.MAX_BYTES))

    def dma_write(self, addr: int, data: bytes) -> None:
        for off in range(0, len(data), SimPcie.MAX_BYTES):
            piece = data[off:off + SimPcie.MAX_BYTES]
            self._request(SimPcie.OP_WRITE, SimPcie.CHAN_DMA, addr + off, len(piece), piece)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def SimPcieTransport(where: str, **kw) -> XdmaTransport:
    """An XdmaTransport to a sim server's PCIe port; where is `PORT` or `HOST:PORT` (host 127.0.0.1)."""
    host, _, port = where.rpartition(":")
    t = XdmaTransport(SimPcieEndpoint(host or "127.0.0.1", int(port), **kw))
    t.name = "sim-pcie"
    return t
