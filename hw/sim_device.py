"""The simulation assembly of the device: hw/device.py's Device plus the byte-level shortcuts that
testbenches and the sim server drive instead of the UART pins.

- `uart_bypass` high: the link reads and writes bytes on the `ub_in`/`ub_out` streams, skipping the PHY (one
  byte per cycle; the link then times out a partial frame in device cycles, not byte times).
- `uart_bypass` and `sb_select` high: the link talks to a SimByteBridge (`sb_*`) that the sim server loads
  and drains `sb_width` bytes per handshake, so Python is not woken for every byte.
- `uart_bypass` low: the pins and the PHY, exactly as on a board.
A board never builds this class (tests/test_gateware_params.py checks the hardware top has none of it).
"""

from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from .device import Device
from .sim_byte_bridge import SimByteBridge

__all__ = ["SimDevice"]


class SimDevice(Device):
    """Device with the simulation ports `uart_bypass`, `ub_in`, `ub_out`, `sb_select` and `sb_*`."""

    def __init__(self, *, params, uart_default_div=None, uart_confirm_cycles=None, sb_width=64):
        if not isinstance(sb_width, int) or not 1 <= sb_width <= 256:
            raise ValueError(f"sb_width must be an int in [1, 256], not {sb_width!r}")
        self.sb_width = sb_width
        super().__init__(params=params, uart_default_div=uart_default_div, uart_confirm_cycles=uart_confirm_cycles)

    def _members(self) -> dict:
        w = self.sb_width
        return {
            **super()._members(),
            "uart_bypass": In(1),
            "ub_in": In(stream.Signature(8)),
            "ub_out": Out(stream.Signature(8)),
            "sb_select": In(1),
            "sb_in_data": In(8 * w), "sb_in_count": In(range(w + 1)), "sb_in_load": In(1),
            "sb_in_empty": Out(1),
            "sb_out_data": Out(8 * w), "sb_out_count": Out(range(w + 1)),
            "sb_out_take": In(range(w + 1)),
        }

    def _connect_link(self, m, *, link, phy, rx_fifo):
        m.submodules.sim_bridge = sb = SimByteBridge(width=self.sb_width)
        m.d.comb += [sb.in_data.eq(self.sb_in_data), sb.in_count.eq(self.sb_in_count),
                     self.sb_in_empty.eq(sb.in_empty), self.sb_out_data.eq(sb.out_data),
                     self.sb_out_count.eq(sb.out_count), sb.out_take.eq(self.sb_out_take),
                     link.bypass.eq(self.uart_bypass)]
        with m.If(self.uart_bypass & self.sb_select):
            m.d.comb += [link.rx.valid.eq(sb.rx.valid), link.rx.payload.eq(sb.rx.payload),
                         sb.rx.ready.eq(link.rx.ready), sb.in_load.eq(self.sb_in_load),
                         sb.tx.valid.eq(link.tx.valid), sb.tx.payload.eq(link.tx.payload),
                         link.tx.ready.eq(sb.tx.ready)]
        with m.Elif(self.uart_bypass):
            m.d.comb += [link.rx.valid.eq(self.ub_in.valid), link.rx.payload.eq(self.ub_in.payload),
                         self.ub_in.ready.eq(link.rx.ready),
                         self.ub_out.valid.eq(link.tx.valid), self.ub_out.payload.eq(link.tx.payload),
                         link.tx.ready.eq(self.ub_out.ready)]
        with m.Else():
            super()._connect_link(m, link=link, phy=phy, rx_fifo=rx_fifo)
