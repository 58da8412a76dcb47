"""The golden model as a target: the whole device answered in-process by golden.GoldenDevice."""

from __future__ import annotations

from ..contract import DeviceParams, preset
from ..errors import DeviceError
from ..golden.device import BusError, GoldenDevice
from .base import Transport, check_aligned


class GoldenTransport(Transport):
    name = "golden"

    def __init__(self, params: str | DeviceParams = "sim"):
        super().__init__()
        self.params = preset(params) if isinstance(params, str) else params
        self.device = GoldenDevice(self.params)

    def read(self, addr, n):
        check_aligned(addr)
        try:
            block = self.device.read_block(addr, n)
            out = block.tolist() if block is not None else [self.device.read(addr + 4 * i) for i in range(n)]
        except BusError as e:
            raise DeviceError(f"bus error reading {e.addr:#x}", code=4, addr=e.addr) from None
        self._count("read", n)
        return out

    def write(self, addr, words):
        check_aligned(addr)
        words = list(words)
        try:
            if not self.device.write_block(addr, words):
                for i, w in enumerate(words):
                    self.device.write(addr + 4 * i, int(w))
        except BusError as e:
            raise DeviceError(f"bus error writing {e.addr:#x}", code=4, addr=e.addr) from None
        self._count("write", len(words))

    def write_array(self, addr, words) -> None:
        """write() for a uint32 numpy array: one array store where the device model allows (same effect)."""
        check_aligned(addr)
        try:
            if not self.device.write_block(addr, words):
                for i, w in enumerate(words.tolist()):
                    self.device.write(addr + 4 * i, w)
        except BusError as e:
            raise DeviceError(f"bus error writing {e.addr:#x}", code=4, addr=e.addr) from None
        self._count("write", len(words))

    def write_fixed(self, addr, words):
        check_aligned(addr)
        words = list(words)
        try:
            for w in words:
                self.device.write(addr, int(w))
        except BusError as e:
            raise DeviceError(f"bus error writing {e.addr:#x}", code=4, addr=e.addr) from None
        self._count("write", len(words))
