"""The whole PIM device: control hub (with the bank array) behind a UART link and the XDMA-style AXI ports.

UART: `uart_rx`/`uart_tx` pins through the 8N1 PHY (a 2 KiB receive FIFO absorbs a whole frame, since the
line has no flow control), or, with `uart_bypass` high, the link's byte streams `ub_in`/`ub_out` directly,
or (with `sb_select` too) a SimByteBridge that moves 64 bytes per handshake (what the sim server uses;
`sb_width=0` leaves it out for FPGA builds). PCIe: `axil` (AXI4-Lite, an XDMA BAR) and `axi` (AXI4 with
bursts, XDMA's H2C/C2H engines). The three masters share the hub's bus through a round-robin arbiter.
"""

from amaranth.hdl import Module
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from pimhil.contract import DeviceParams

from .axi4 import AXI4Signature, AXI4Slave
from .axi_lite import AXILiteSignature, AXILiteSlave
from .bus import BusArbiter
from .control_hub import ControlHub
from .uart_link import COUNTERS, UARTLink
from .sim_byte_bridge import SimByteBridge
from .uart_phy import UARTPhy

__all__ = ["Device"]


class Device(wiring.Component):
    def __init__(self, *, params, uart_default_div=None, sb_width=64):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        if not isinstance(sb_width, int) or not 0 <= sb_width <= 256:
            raise ValueError(f"sb_width must be an int in [0, 256] (0: no SimByteBridge), not {sb_width!r}")
        self.sb_width = sb_width
        # Simulation only: with `uart_bypass` and `sb_select` high, the link talks to a SimByteBridge (sb_*)
        # that a testbench loads and drains `sb_width` bytes at a time. sb_width=0 leaves it out (FPGA builds).
        sb_ports = {
            "sb_select": In(1),
            "sb_in_data": In(8 * sb_width), "sb_in_count": In(range(sb_width + 1)), "sb_in_load": In(1),
            "sb_in_empty": Out(1),
            "sb_out_data": Out(8 * sb_width), "sb_out_count": Out(range(sb_width + 1)),
            "sb_out_take": In(range(sb_width + 1)),
        } if sb_width else {}
        self.params = params
        self.hub = ControlHub(params=params, uart_default_div=uart_default_div)
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "uart_bypass": In(1),
            "ub_in": In(stream.Signature(8)),
            "ub_out": Out(stream.Signature(8)),
            **sb_ports,
            "axil": In(AXILiteSignature()),
            "axi": In(AXI4Signature()),
            "irq_error": Out(1),
            "busy": Out(1),
            "link_active": Out(1),      # the UART link is inside a frame (lets the sim server sleep safely)
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.hub = hub = self.hub
        m.submodules.phy = phy = UARTPhy()
        m.submodules.link = link = UARTLink(params=self.params)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=2048)
        m.submodules.axil_slave = axil = AXILiteSlave()
        m.submodules.axi_slave = axi = AXI4Slave()
        m.submodules.arbiter = arb = BusArbiter(masters=3)
        if self.sb_width:
            m.submodules.sim_bridge = sb = SimByteBridge(width=self.sb_width)
            m.d.comb += [sb.in_data.eq(self.sb_in_data), sb.in_count.eq(self.sb_in_count),
                         self.sb_in_empty.eq(sb.in_empty), self.sb_out_data.eq(sb.out_data),
                         self.sb_out_count.eq(sb.out_count), sb.out_take.eq(self.sb_out_take)]
            bridged = self.uart_bypass & self.sb_select
        else:
            bridged = 0

        m.d.comb += [phy.div.eq(hub.uart_baud_div), link.div.eq(hub.uart_baud_div), link.bypass.eq(self.uart_bypass),
                     phy.rx.eq(self.uart_rx),
                     self.uart_tx.eq(phy.tx), link.framing_error.eq(phy.rx_framing_error),
                     link.overrun.eq(phy.rx_overrun | (rx_fifo.w_en & ~rx_fifo.w_rdy)),
                     self.irq_error.eq(hub.irq_error), self.busy.eq(hub.busy), self.link_active.eq(link.active)]
        for name in COUNTERS:
            m.d.comb += getattr(hub, f"uart_{name}").eq(getattr(link, name))
        # PHY -> FIFO always runs; the link reads the FIFO or the bypass stream.
        m.d.comb += [rx_fifo.w_en.eq(phy.rx_data.valid), rx_fifo.w_data.eq(phy.rx_data.payload),
                     phy.rx_data.ready.eq(1)]
        with m.If(bridged):
            if self.sb_width:
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
            m.d.comb += [link.rx.valid.eq(rx_fifo.r_rdy), link.rx.payload.eq(rx_fifo.r_data),
                         rx_fifo.r_en.eq(link.rx.ready),
                         phy.tx_data.valid.eq(link.tx.valid), phy.tx_data.payload.eq(link.tx.payload),
                         link.tx.ready.eq(phy.tx_data.ready)]
        wiring.connect(m, wiring.flipped(self.axil), axil.axil)
        wiring.connect(m, wiring.flipped(self.axi), axi.axi)
        connect(m, link.bus, arb.m0)
        connect(m, axil.bus, arb.m1)
        connect(m, axi.bus, arb.m2)
        connect(m, arb.bus, hub.bus)
        return m
