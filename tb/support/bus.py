"""Master model for the device's internal bus (hw/bus.py): one request at a time."""

from __future__ import annotations

from cocotb.triggers import ReadOnly, RisingEdge


class BusError(Exception):
    def __init__(self, addr):
        super().__init__(f"bus error at {addr:#010x}")
        self.addr = addr


class BusMaster:
    def __init__(self, dut, prefix: str, clk, *, timeout_cycles: int = 100000):
        self.clk = clk
        self.s = {n: getattr(dut, f"{prefix}__{n}") for n in ("valid", "we", "addr", "wdata", "ready", "rdata",
                                                              "err")}
        self.timeout = timeout_cycles
        self.s["valid"].value = 0

    async def _access(self, addr, we, data=0):
        s = self.s
        await RisingEdge(self.clk)
        s["valid"].value, s["we"].value, s["addr"].value, s["wdata"].value = 1, int(we), addr, data
        for _ in range(self.timeout):
            await ReadOnly()
            if int(s["ready"].value):
                rdata, err = int(s["rdata"].value), int(s["err"].value)
                await RisingEdge(self.clk)
                s["valid"].value = 0
                if err:
                    raise BusError(addr)
                return rdata
            await RisingEdge(self.clk)
        raise TimeoutError(f"no bus answer for {addr:#010x} in {self.timeout} cycles")

    async def read(self, addr: int) -> int:
        return await self._access(addr, False)

    async def write(self, addr: int, data: int) -> None:
        await self._access(addr, True, data)

    async def write_words(self, addr: int, words, *, fixed=False) -> None:
        for i, w in enumerate(words):
            await self.write(addr if fixed else addr + 4 * i, int(w))

    async def read_words(self, addr: int, n: int) -> list[int]:
        return [await self.read(addr + 4 * i) for i in range(n)]
