"""PCIe register access without the XDMA driver: an mmap of the BAR's sysfs resource file.

`/sys/bus/pci/devices/0000:01:00.0/resource0` (root, and the device enabled) maps the BAR that XDMA's
AXI4-Lite master sits behind. Every access is one aligned 32-bit load or store through a memoryview cast to
'I', never a byte-wise copy, since the AXI4-Lite slave only takes whole words. Used as an endpoint of
XdmaTransport with no DMA engines, so data windows go through the BAR one word at a time.
"""

from __future__ import annotations

import mmap
import os

from ..errors import DeviceGone
from .xdma import XdmaTransport


class SysfsBar:
    """An mmap'ed BAR. size: bytes to map (the whole resource file by default)."""

    has_dma = False

    def __init__(self, path: str, *, size: int | None = None):
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_SYNC", 0))
        except OSError as e:
            raise DeviceGone(f"cannot open {path}: {e}") from e
        try:
            size = size or os.fstat(fd).st_size
            self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as e:
            raise DeviceGone(f"cannot map {path}: {e}") from e
        finally:
            os.close(fd)
        if size % 4:
            self._mm.close()
            raise DeviceGone(f"{path} is {size} bytes, not a BAR of whole 32-bit words")
        self._words = memoryview(self._mm).cast("I")
        self.size = size

    def _index(self, addr: int) -> int:
        if addr & 3 or not 0 <= addr < self.size:
            raise ValueError(f"BAR offset {addr:#x} is unaligned or outside the {self.size}-byte BAR")
        return addr >> 2

    def user_read(self, addr: int) -> int:
        return int(self._words[self._index(addr)])

    def user_write(self, addr: int, value: int) -> None:
        self._words[self._index(addr)] = value & 0xFFFFFFFF

    def dma_read(self, addr, nbytes):
        raise NotImplementedError("a sysfs BAR has no DMA engine")

    def dma_write(self, addr, data):
        raise NotImplementedError("a sysfs BAR has no DMA engine")

    def close(self) -> None:
        if self._mm is not None:
            self._words.release()
            self._mm.close()
            self._mm = None


def SysfsTransport(path: str, **kw) -> XdmaTransport:
    """An XdmaTransport over the mmap'ed BAR at `path` (keywords go to SysfsBar)."""
    t = XdmaTransport(SysfsBar(path, **kw))
    t.name = "sysfs"
    return t
