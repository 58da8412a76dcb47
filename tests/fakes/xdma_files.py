"""Stand-ins for the XDMA driver's character devices, enforcing its rules, with GoldenDevice behind them.

`/dev/xdma0_user` takes only aligned 4-byte pread/pwrite inside the BAR (anything else: EINVAL, as the
driver's user-BAR file refuses); `_h2c_0`/`_c2h_0` take word-aligned offsets and sizes; a card that left
the bus reads all ones on the BAR and fails DMA with ENODEV.
"""

from __future__ import annotations

import errno
import struct

from pimhil.golden.device import BusError, GoldenDevice

BAR_SIZE = 1 << 26


class FakeXdmaFS:
    def __init__(self, params, *, prefix="/dev/xdma0", dma=True, device=None):
        self.dev = device or GoldenDevice(params)
        self.prefix = prefix
        self.dma = dma
        self.gone = False
        self.fds = {}
        self.calls = {"user_read": 0, "user_write": 0, "h2c": 0, "c2h": 0}

    def exists(self, path):
        return path == f"{self.prefix}_user" or (self.dma and path in (f"{self.prefix}_h2c_0", f"{self.prefix}_c2h_0"))

    def open(self, path, flags):
        if not self.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        fd = 100 + len(self.fds)
        self.fds[fd] = path[len(self.prefix) + 1:]
        return fd

    def close(self, fd):
        self.fds.pop(fd)

    def _check(self, kind, n, off):
        if kind == "user" and (n != 4 or off % 4 or not 0 <= off < BAR_SIZE):
            raise OSError(errno.EINVAL, f"user BAR access of {n} bytes at {off:#x}")
        if kind != "user" and (n % 4 or off % 4 or n == 0):
            raise OSError(errno.EINVAL, f"DMA of {n} bytes at {off:#x}")

    def pread(self, fd, n, off):
        kind = self.fds[fd]
        self._check(kind, n, off)
        if kind == "h2c_0":
            raise OSError(errno.EBADF, "h2c is write-only")
        if self.gone:
            if kind == "user":
                return b"\xff" * n
            raise OSError(errno.ENODEV, "no device")
        self.calls["user_read" if kind == "user" else "c2h"] += 1
        try:
            return b"".join(struct.pack("<I", self.dev.read(off + 4 * i)) for i in range(n // 4))
        except BusError:
            if kind == "user":
                return b"\xff" * n          # an AXI-Lite SLVERR reaches the CPU as all ones
            raise OSError(errno.EIO, "DMA engine reported an error") from None

    def pwrite(self, fd, data, off):
        kind = self.fds[fd]
        self._check(kind, len(data), off)
        if kind == "c2h_0":
            raise OSError(errno.EBADF, "c2h is read-only")
        if self.gone:
            if kind == "user":
                return len(data)            # posted writes vanish silently
            raise OSError(errno.ENODEV, "no device")
        self.calls["user_write" if kind == "user" else "h2c"] += 1
        try:
            for i, (w,) in enumerate(struct.iter_unpack("<I", data)):
                self.dev.write(off + 4 * i, w)
        except BusError:
            if kind != "user":
                raise OSError(errno.EIO, "DMA engine reported an error") from None
        return len(data)

    def files(self, **kw):
        """Keyword arguments for XdmaFiles."""
        return dict(opener=self.open, pread=self.pread, pwrite=self.pwrite, close=self.close,
                    exists=self.exists, **kw)
