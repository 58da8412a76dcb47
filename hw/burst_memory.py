"""Burst-wide memory: one bank's array of rows, or the global buffer (GB).

Both are `depth` words of one column burst (`lanes` BF16 words) with a synchronous read port and a write
port; a bank holds rows * bursts_per_row bursts, the GB gb_words / lanes bursts.
"""

from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BurstMemory"]


class BurstMemory(wiring.Component):
    """`rd_data` shows the burst at `rd_addr` one cycle after a cycle with `rd_en` high (it holds otherwise);
    a write with `wr_en` lands at the end of its cycle, so a read in the next cycle sees it."""

    def __init__(self, *, lanes, depth):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive int, not {lanes!r}")
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an int >= 2, not {depth!r}")
        self.lanes = lanes
        self.depth = depth
        super().__init__({
            "rd_addr": In(range(depth)),
            "rd_en": In(1),
            "rd_data": Out(16 * lanes),
            "wr_addr": In(range(depth)),
            "wr_en": In(1),
            "wr_data": In(16 * lanes),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=16 * self.lanes, depth=self.depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()
        m.d.comb += [
            rd.addr.eq(self.rd_addr), rd.en.eq(self.rd_en), self.rd_data.eq(rd.data),
            wr.addr.eq(self.wr_addr), wr.en.eq(self.wr_en), wr.data.eq(self.wr_data),
        ]
        return m
