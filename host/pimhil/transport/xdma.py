"""PCIe transport through Xilinx's XDMA driver: what the board's AXI ports look like from the host.

The XDMA core maps its AXI4-Lite master to a BAR (`/dev/xdmaN_user`: 32-bit pread/pwrite at offset = device
address) and drives the device's AXI4 slave from its DMA engines (`/dev/xdmaN_h2c_0` writes,
`/dev/xdmaN_c2h_0` reads, offset = card address). Registers and the command queue go through the BAR; the
data windows (scratch, GB, bank memory) go by DMA when the engines exist, else through the BAR too.

The routing lives in `XdmaTransport`; how bytes reach the card is an endpoint: `XdmaFiles` (the driver's
character devices), or the simulation's stand-in (`sim_pcie.SimPcieEndpoint`).
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import struct

from ..contract import CMDQ_BASE, CMDQ_BYTES, CSR_BASE, FrameStatus, Reg
from ..errors import DeviceError, DeviceGone, LinkError, LinkTimeout
from .base import Transport, check_aligned

ALL_ONES = 0xFFFFFFFF
# DMA requests are cut into pieces of this many bytes so a deadline covers a bounded transfer.
DMA_CHUNK = 1 << 20


class XdmaFiles:
    """The XDMA driver's character devices. `prefix` is `/dev/xdma0` (or the `_user` device itself).

    opener: (path, flags) -> fd, pread: (fd, n, off) -> bytes, pwrite: (fd, data, off) -> int, close: (fd);
    the os module's functions by default (tests pass a fake that enforces the driver's rules).
    timeout: seconds a DMA transfer may take before LinkTimeout (the call is run in a helper thread, since a
    read stuck in the kernel cannot be interrupted; BAR accesses cannot hang, PCIe completes them with all
    ones when the card does not answer).
    """

    def __init__(self, prefix: str, *, timeout: float = 10.0, opener=os.open, pread=os.pread, pwrite=os.pwrite,
                 close=os.close, exists=os.path.exists):
        if prefix.endswith("_user"):
            prefix = prefix[:-len("_user")]
        self.prefix, self.timeout = prefix, timeout
        self._pread, self._pwrite, self._close = pread, pwrite, close
        try:
            self.user = opener(f"{prefix}_user", os.O_RDWR | getattr(os, "O_SYNC", 0))
        except OSError as e:
            raise DeviceGone(f"cannot open {prefix}_user: {e}") from e
        self.h2c = self.c2h = None
        if exists(f"{prefix}_h2c_0") and exists(f"{prefix}_c2h_0"):
            try:
                self.h2c = opener(f"{prefix}_h2c_0", os.O_WRONLY)
                self.c2h = opener(f"{prefix}_c2h_0", os.O_RDONLY)
            except OSError as e:
                self.close()
                raise DeviceGone(f"cannot open the DMA channels of {prefix}: {e}") from e
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="xdma-dma")

    @property
    def has_dma(self) -> bool:
        return self.h2c is not None

    def _os_error(self, e: OSError, what: str):
        if e.errno in (errno.ENODEV, errno.ENXIO, errno.EBADF):
            return DeviceGone(f"{self.prefix}: device gone during {what}: {e}")
        if e.errno == errno.EIO:
            return DeviceError(f"{self.prefix}: {what} failed (the card answered with an error): {e}",
                               code=FrameStatus.BUS_ERROR)
        return LinkError(f"{self.prefix}: {what} failed: {e}")

    def user_read(self, addr: int) -> int:
        try:
            data = self._pread(self.user, 4, addr)
        except OSError as e:
            raise self._os_error(e, f"BAR read at {addr:#x}") from e
        if len(data) != 4:
            raise LinkError(f"{self.prefix}_user: short read ({len(data)} bytes) at {addr:#x}")
        return struct.unpack("<I", data)[0]

    def user_write(self, addr: int, value: int) -> None:
        try:
            n = self._pwrite(self.user, struct.pack("<I", value & ALL_ONES), addr)
        except OSError as e:
            raise self._os_error(e, f"BAR write at {addr:#x}") from e
        if n != 4:
            raise LinkError(f"{self.prefix}_user: short write ({n} bytes) at {addr:#x}")

    def _deadline(self, fn, *args):
        fut = self._pool.submit(fn, *args)
        try:
            return fut.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            raise LinkTimeout(f"{self.prefix}: DMA transfer did not finish within {self.timeout} s") from None
        except OSError as e:
            raise self._os_error(e, "DMA transfer") from e

    def dma_read(self, addr: int, nbytes: int) -> bytes:
        data = self._deadline(self._pread, self.c2h, nbytes, addr)
        if len(data) != nbytes:
            raise LinkError(f"{self.prefix}_c2h_0: short read ({len(data)} of {nbytes} bytes) at {addr:#x}")
        return data

    def dma_write(self, addr: int, data: bytes) -> None:
        n = self._deadline(self._pwrite, self.h2c, data, addr)
        if n != len(data):
            raise LinkError(f"{self.prefix}_h2c_0: short write ({n} of {len(data)} bytes) at {addr:#x}")

    def close(self) -> None:
        for name in ("user", "h2c", "c2h"):
            fd = getattr(self, name, None)
            if fd is not None:
                setattr(self, name, None)
                try:
                    self._close(fd)
                except OSError:
                    pass    # the device node may already be gone; nothing else to release
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


class XdmaTransport(Transport):
    """Registers and the command queue through the BAR, data windows by DMA. An all-ones BAR read is
    checked against the MAGIC register: if that reads all ones too, the card has left the bus (DeviceGone).

    endpoint: an XdmaFiles, a sim_pcie.SimPcieEndpoint, or anything with the same five methods.
    Raises DeviceGone, DeviceError, LinkError, LinkTimeout.
    """

    name = "xdma"

    def __init__(self, endpoint):
        super().__init__()
        self.ep = endpoint
        self.stats.update({"bar_reads": 0, "bar_writes": 0, "dma_bytes": 0})

    @staticmethod
    def _is_register(addr: int) -> bool:
        return CSR_BASE <= addr < CMDQ_BASE + CMDQ_BYTES

    def _card_gone(self) -> bool:
        """Asked only after an all-ones value: a card still on the bus never reads all ones at MAGIC."""
        return self.ep.user_read(CSR_BASE + Reg.MAGIC) == ALL_ONES

    def _bar_read(self, addr):
        v = self.ep.user_read(addr)
        self.stats["bar_reads"] += 1
        if v == ALL_ONES and self._card_gone():
            raise DeviceGone(f"read of {addr:#x} returned all ones and so does MAGIC: the card has left the bus")
        return v

    def read(self, addr, n):
        check_aligned(addr)
        if self._is_register(addr) or not self.ep.has_dma:
            out = [self._bar_read(addr + 4 * i) for i in range(n)]
        else:
            data = b"".join(self.ep.dma_read(addr + off, min(DMA_CHUNK, 4 * n - off))
                            for off in range(0, 4 * n, DMA_CHUNK))
            self.stats["dma_bytes"] += len(data)
            out = list(struct.unpack(f"<{n}I", data))
            if n and all(w == ALL_ONES for w in out) and self._card_gone():
                raise DeviceGone(f"DMA read at {addr:#x} returned all ones and so does MAGIC")
        self._count("read", n)
        return out

    def write(self, addr, words):
        check_aligned(addr)
        words = [int(w) & ALL_ONES for w in words]
        if self._is_register(addr) or not self.ep.has_dma:
            for i, w in enumerate(words):
                self.ep.user_write(addr + 4 * i, w)
            self.stats["bar_writes"] += len(words)
        else:
            data = struct.pack(f"<{len(words)}I", *words)
            for off in range(0, len(data), DMA_CHUNK):
                self.ep.dma_write(addr + off, data[off:off + DMA_CHUNK])
            self.stats["dma_bytes"] += len(data)
        self._count("write", len(words))

    def write_fixed(self, addr, words):
        check_aligned(addr)
        n = 0
        for w in words:
            self.ep.user_write(addr, int(w) & ALL_ONES)
            n += 1
        self.stats["bar_writes"] += n
        self._count("write", n)

    def close(self):
        self.ep.close()
