"""In-process simulation transport: the driver runs in a thread inside a cocotb test.

The test starts the driver with `await cocotb.task.bridge(fn)(...)`; every access the driver makes resumes the
simulation through `cocotb.task.resume`, runs the testbench's async bus functions (AXI masters, usually), and
returns their result to the driver's thread. The routing is XDMA's (registers through the BAR function, data
windows through the DMA ones), so the driver sees the same device as over PCIe. cocotb is imported only when
a BridgeEndpoint is made, so the host package still installs without it.
"""

from __future__ import annotations

from .xdma import XdmaTransport


class BridgeEndpoint:
    """user_read(addr) -> int, user_write(addr, value), dma_read(addr, nbytes) -> bytes,
    dma_write(addr, data): coroutine functions of the testbench, called from the driver's thread."""

    has_dma = True

    def __init__(self, *, user_read, user_write, dma_read, dma_write):
        from cocotb.task import resume

        self.user_read = resume(user_read)
        self.user_write = resume(user_write)
        self.dma_read = resume(dma_read)
        self.dma_write = resume(dma_write)

    def close(self) -> None:
        """The simulation belongs to the test; nothing to release."""


def BridgeTransport(**coroutines) -> XdmaTransport:
    t = XdmaTransport(BridgeEndpoint(**coroutines))
    t.name = "bridge"
    return t
