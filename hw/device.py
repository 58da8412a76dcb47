"""The whole PIM device as a board carries it: control hub (with the bank array) behind a UART link and the
XDMA-style AXI ports.

UART: `uart_rx`/`uart_tx` pins through the 8N1 PHY, with a 2 KiB receive FIFO that absorbs a whole frame
(the line has no flow control). PCIe: `axil` (AXI4-Lite, an XDMA BAR) and `axi` (AXI4 with bursts, XDMA's
H2C/C2H engines, as wide as the preset's axi_data_bits). The three masters share the hub's 32-bit bus through
a round-robin arbiter and a register slice (hw/bus_slice.py); the AXI4 slave's bank and GB window beats take
the hub's burst port instead.

This is the hardware assembly: nothing in it exists only for simulation. hw/sim_device.py's SimDevice adds
the byte-level shortcuts that testbenches and the sim server use, in place of `_connect_link`.
"""

from amaranth.hdl import Module
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out, connect

from pimhil.contract import CSR_BASE, DeviceParams, Reg, windows

from .axi4 import AXI4Signature, AXI4Slave
from .axi_lite import AXILiteSignature, AXILiteSlave
from .bus import BusArbiter
from .bus_slice import BusRegisterSlice
from .control_hub import ControlHub
from .stream_slice import StreamRegisterSlice
from .uart_link import COUNTERS, UARTLink
from .uart_phy import UARTPhy

__all__ = ["Device"]

RX_FIFO_BYTES = 2048        # a whole maximum frame (1035 bytes) while the previous one executes


class Device(wiring.Component):
    """Ports: `uart_rx`/`uart_tx` (8N1 pins), `axil` and `axi` (slaves for an XDMA core), `irq_error` (an
    error is latched), `busy` (the hub is working: what PERF_BUSY counts), `link_active` (the UART link is
    inside a frame).

    uart_default_div: UART_BAUD_DIV after reset (default contract.uart_reset_div); uart_confirm_cycles: the
    probation window of a divisor the UART link wrote (default contract.uart_confirm_cycles)."""

    def __init__(self, *, params, uart_default_div=None, uart_confirm_cycles=None):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        self.uart_confirm_cycles = uart_confirm_cycles
        self.hub = ControlHub(params=params, uart_default_div=uart_default_div)
        super().__init__(self._members())

    def _members(self) -> dict:
        return {
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "axil": In(AXILiteSignature()),
            "axi": In(AXI4Signature(data_width=self.params.axi_data_bits)),
            "irq_error": Out(1),
            "busy": Out(1),
            "link_active": Out(1),
        }

    def elaborate(self, platform):
        m = Module()
        m.submodules.hub = hub = self.hub
        m.submodules.phy = phy = UARTPhy()
        m.submodules.link = link = UARTLink(params=self.params, reset_div=hub.uart_default_div,
                                             confirm_cycles=self.uart_confirm_cycles)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=RX_FIFO_BYTES)
        m.submodules.axil_slave = axil = AXILiteSlave()
        m.submodules.axi_slave = axi = self._axi4_slave()
        m.submodules.arbiter = arb = BusArbiter(masters=3)
        m.submodules.bus_slice = bus_slice = BusRegisterSlice()

        # The link owns the divisor in use; the register is its request, and every write to it (from any
        # master) is seen on the arbiter's bus, in the cycle its master is answered (the register took the value
        # a cycle before, behind the slice; the link's own write is recognised in that same cycle).
        hb = arb.bus
        m.d.comb += [link.div_request.eq(hub.uart_baud_div), phy.div.eq(link.div),
                     link.div_written.eq(hb.valid & hb.we & hb.ready & ~hb.err
                                         & (hb.addr == CSR_BASE + Reg.UART_BAUD_DIV)),
                     link.phy_idle.eq(phy.idle), link.rx_level.eq(phy.rx_level), phy.rx.eq(self.uart_rx),
                     self.uart_tx.eq(phy.tx), link.framing_error.eq(phy.rx_framing_error),
                     link.overrun.eq(phy.rx_overrun | (rx_fifo.w_en & ~rx_fifo.w_rdy)),
                     self.irq_error.eq(hub.irq_error), self.busy.eq(hub.busy), self.link_active.eq(link.active)]
        for name in COUNTERS:
            m.d.comb += getattr(hub, f"uart_{name}").eq(getattr(link, name))
        # The PHY always fills the FIFO; what the link reads is the assembly's choice.
        m.d.comb += [rx_fifo.w_en.eq(phy.rx_data.valid), rx_fifo.w_data.eq(phy.rx_data.payload),
                     phy.rx_data.ready.eq(1)]
        self._connect_link(m, link=link, phy=phy, rx_fifo=rx_fifo)
        wiring.connect(m, wiring.flipped(self.axil), axil.axil)
        self._connect_axi(m, slave=axi)
        connect(m, link.bus, arb.m0)
        connect(m, axil.bus, arb.m1)
        connect(m, axi.bus, arb.m2)
        if axi.wide_ranges:
            connect(m, axi.wide, hub.wide)
        connect(m, arb.bus, bus_slice.up)
        connect(m, bus_slice.down, hub.bus)
        return m

    def _axi4_slave(self) -> AXI4Slave:
        """The DMA port at the preset's width; the bank and GB windows go over the hub's burst port when a
        beat holds whole bursts (otherwise word by word, like the registers and scratch)."""
        p = self.params
        if p.axi_data_bits < p.burst_bits:
            return AXI4Slave(data_width=p.axi_data_bits)
        ranges = [(w.base, w.size) for w in windows(p) if w.name in ("gb", "bank")]
        return AXI4Slave(data_width=p.axi_data_bits, burst_bits=p.burst_bits, wide_ranges=ranges)

    def _connect_axi(self, m, *, slave):
        """The AXI4 port's pins drive the slave."""
        wiring.connect(m, wiring.flipped(self.axi), slave.axi)

    def _connect_link(self, m, *, link, phy, rx_fifo):
        """The link reads the receive FIFO, through a register slice, and answers through the PHY."""
        # The FIFO's data leave its block RAM late (the DP16KD's output register: 5.8 ns clock to output on the
        # ECP5), and the link's receiver decides on them at once (16.1 ns estimated from the block RAM into its
        # idle counter). The slice adds a cycle of latency to each byte and takes one per cycle; bytes come no
        # faster than one per ten bit times.
        m.submodules.rx_slice = rx_slice = StreamRegisterSlice(layout=data.StructLayout({"byte": 8}))
        m.d.comb += [rx_slice.i.valid.eq(rx_fifo.r_rdy), rx_slice.i.payload.byte.eq(rx_fifo.r_data),
                     rx_fifo.r_en.eq(rx_slice.i.ready),
                     link.rx.valid.eq(rx_slice.o.valid), link.rx.payload.eq(rx_slice.o.payload.byte),
                     rx_slice.o.ready.eq(link.rx.ready),
                     phy.tx_data.valid.eq(link.tx.valid), phy.tx_data.payload.eq(link.tx.payload),
                     link.tx.ready.eq(phy.tx_data.ready), link.bypass.eq(0)]
