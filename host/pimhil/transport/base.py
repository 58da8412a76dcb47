"""The transport interface: 32-bit words at byte addresses of the device's bus."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Transport(ABC):
    """read/write of 32-bit words at word-aligned byte addresses; close(); a context manager; `stats`.

    Implementations raise the driver's named exceptions (pimhil.errors) and never return made-up data.
    """

    name = "transport"

    def __init__(self):
        self.stats: dict[str, int] = {"reads": 0, "writes": 0, "words_read": 0, "words_written": 0}

    @abstractmethod
    def read(self, addr: int, n: int) -> list[int]:
        """n words from addr, addr+4, ... Raises LinkTimeout, LinkError, DeviceGone, DeviceError."""

    @abstractmethod
    def write(self, addr: int, words) -> None:
        """Words to addr, addr+4, ... Raises LinkTimeout, LinkError, DeviceGone, DeviceError."""

    def write_fixed(self, addr: int, words) -> None:
        """Every word to the same address (command-queue pushes). Not retried by any transport."""
        for w in words:
            self.write(addr, [w])

    def read_word(self, addr: int) -> int:
        return self.read(addr, 1)[0]

    def close(self) -> None:  # noqa: B027 - a transport with nothing to release need not override it
        """Release the link; idempotent."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _count(self, kind: str, n: int) -> None:
        self.stats[f"{kind}s"] += 1
        self.stats[f"words_{'read' if kind == 'read' else 'written'}"] += n


def check_aligned(addr: int) -> None:
    if addr & 3:
        raise ValueError(f"address {addr:#x} is not 32-bit aligned")
