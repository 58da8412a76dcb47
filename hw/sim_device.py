"""The simulation assembly of the device: hw/device.py's Device plus the byte-level shortcuts that
testbenches and the sim server drive instead of the UART pins.

- `uart_bypass` high: the link reads and writes bytes on the `ub_in`/`ub_out` streams, skipping the PHY (one
  byte per cycle; the link then times out a partial frame in device cycles, not byte times).
- `uart_bypass` and `sb_select` high: the link talks to a SimByteBridge (`sb_*`) that the sim server loads
  and drains `sb_width` bytes per handshake, so Python is not woken for every byte.
- `uart_bypass` low: the pins and the PHY, exactly as on a board.
- `df_select` high: a SimDmaFeeder (`df_*`) drives the AXI4 port instead of its pins (which then see an idle
  slave), so that the sim server hands it whole blocks of a PCIe bulk transfer and the bursts run at full rate;
  low: the pins, as an XDMA core drives them on a board.
A board never builds this class (tests/test_gateware_params.py checks the hardware top has none of it).
"""

from amaranth.hdl import Mux
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from pimhil.contract import DeviceParams

from .device import Device
from .sim_byte_bridge import SimByteBridge
from .sim_dma_feeder import MAX_BEATS_BITS, SimDmaFeeder

__all__ = ["SimDevice"]


class SimDevice(Device):
    """Device with the simulation ports `uart_bypass`, `ub_in`, `ub_out`, `sb_select`, `sb_*`, `df_select` and
    `df_*`. df_chunk_bytes: bytes the DMA feeder takes or gives per handshake (whole AXI4 beats)."""

    def __init__(self, *, params, uart_default_div=None, uart_confirm_cycles=None, sb_width=64, df_chunk_bytes=1024):
        if not isinstance(sb_width, int) or not 1 <= sb_width <= 256:
            raise ValueError(f"sb_width must be an int in [1, 256], not {sb_width!r}")
        beat = params.axi_data_bits // 8 if isinstance(params, DeviceParams) else 32
        if not isinstance(df_chunk_bytes, int) or df_chunk_bytes % beat or not beat <= df_chunk_bytes <= 256 * beat:
            raise ValueError(f"df_chunk_bytes must be a multiple of the AXI4 beat ({beat} bytes) up to 256 beats, "
                             f"not {df_chunk_bytes!r}")
        self.sb_width = sb_width
        self.df_beats = df_chunk_bytes // beat
        super().__init__(params=params, uart_default_div=uart_default_div, uart_confirm_cycles=uart_confirm_cycles)

    def _members(self) -> dict:
        w = self.sb_width
        bits = self.df_beats * self.params.axi_data_bits
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
            "df_select": In(1),
            "df_cmd_addr": In(32), "df_cmd_beats": In(MAX_BEATS_BITS), "df_cmd_write": In(1), "df_cmd_start": In(1),
            "df_idle": Out(1), "df_err": Out(1),
            "df_in_data": In(bits), "df_in_load": In(1), "df_in_room": Out(1),
            "df_out_data": Out(bits), "df_out_beats": Out(range(self.df_beats + 1)), "df_out_take": In(1),
        }

    def _connect_axi(self, m, *, slave):
        m.submodules.sim_dma = df = SimDmaFeeder(data_width=self.params.axi_data_bits, chunk_beats=self.df_beats)
        for name in ("cmd_addr", "cmd_beats", "cmd_write", "cmd_start", "in_data", "in_load", "out_take"):
            m.d.comb += getattr(df, name).eq(getattr(self, f"df_{name}"))
        for name in ("idle", "err", "in_room", "out_data", "out_beats"):
            m.d.comb += getattr(self, f"df_{name}").eq(getattr(df, name))
        # The selected master drives the slave and sees its answers; the other sees a slave that never answers.
        for name, member in slave.axi.signature.members.items():
            if member.flow == In:          # driven by the master
                m.d.comb += getattr(slave.axi, name).eq(Mux(self.df_select, getattr(df.axi, name),
                                                            getattr(self.axi, name)))
            else:
                m.d.comb += [getattr(df.axi, name).eq(Mux(self.df_select, getattr(slave.axi, name), 0)),
                             getattr(self.axi, name).eq(Mux(self.df_select, 0, getattr(slave.axi, name)))]

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
