"""The driver suite (tests/driver_suite.py) in-process: the Device API runs in a thread through
`cocotb.task.bridge`, and each of its accesses resumes the simulation (`cocotb.task.resume`) to drive the device's
AXI4-Lite (registers) and AXI4 (data windows) ports with the device harness's cocotbext-axi masters
(tb/support/device_harness.py)."""

import cocotb
import pytest
from cocotb.task import bridge

from pimhil.contract import FrameStatus
from pimhil.device import Device
from pimhil.errors import DeviceError
from pimhil.transport.cocotb_bridge import BridgeTransport
from tb.support.device_harness import DeviceHarness
from tb.support.seed import rngs
from tests import driver_suite


class TB:
    """The device harness (UART link idle on the byte bypass) and the bus functions the bridge resumes."""

    def __init__(self, dut):
        self.dut = dut
        self.h = DeviceHarness(dut, link="bypass")
        self.axil, self.axi = self.h.axil, self.h.axi

    async def reset(self):
        await self.h.reset()

    # SLVERR becomes the same DeviceError the PCIe path raises.
    async def user_read(self, addr):
        r = await self.axil.read(addr, 4)
        self._check(r.resp, addr)
        return int.from_bytes(r.data, "little")

    async def user_write(self, addr, value):
        self._check((await self.axil.write(addr, int(value).to_bytes(4, "little"))).resp, addr)

    async def dma_read(self, addr, nbytes):
        r = await self.axi.read(addr, nbytes)
        self._check(r.resp, addr)
        return bytes(r.data)

    async def dma_write(self, addr, data):
        self._check((await self.axi.write(addr, data)).resp, addr)

    @staticmethod
    def _check(resp, addr):
        if int(resp):
            raise DeviceError(f"SLVERR at {addr:#x}", code=FrameStatus.BUS_ERROR, addr=addr)


@cocotb.test()
async def test_driver_suite_through_bridge(dut):
    """Every check of the driver suite, the driver in a thread, the simulation resumed per access."""
    tb = TB(dut)
    await tb.reset()
    _, rng = rngs(dut._log)
    transport = BridgeTransport(user_read=tb.user_read, user_write=tb.user_write, dma_read=tb.dma_read,
                                dma_write=tb.dma_write)

    def run_suite():
        dev = Device(transport, timeout=60.0, poll_s=0)
        for check in driver_suite.CHECKS:
            dut._log.info("%s", check.__name__)
            check(dev, rng)
        return transport.stats

    stats = await bridge(run_suite)()
    dut._log.info("bridge transport: %s", stats)


@pytest.mark.slow
def test_driver_bridge():
    from tb.support import runner

    top = "pim_device_board"
    runner.run(toplevel=top, sources=[runner.ROOT / "rtl" / f"{top}.v"], test_module="tb.driver.test_driver",
               config="driver_bridge_board", extra_env={"PIM_PRESET": "board"}, shared_model=True)
