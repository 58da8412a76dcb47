"""ULX3S with an LFE5U-85F: the device on the FT231X USB UART, clocked by an EHXPLLL from the 25 MHz oscillator.

Pins (amaranth-boards `ULX3S_85F_Platform`): `uart` (FT231X: FPGA rx M1, tx L4), `clk25` (G2), reset on the
F1 button (`button_fire` 0, R1), LEDs 0..7 (B2 .. H3): 0 busy, 1 error, 2 UART link inside a frame, 7
heartbeat (about 1 Hz: proves the PLL runs and the bitstream is ours). No PCIe: the AXI ports are tied off.

The device clock is the preset's `clk_hz`, which the device also reports in its CLK_HZ register and derives
its reset baud divisor from: a board clock that differed would put the UART at the wrong rate.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from .common import PCIE_PORTS, SIM_ONLY_PORTS, check_top_params, hardware_device, pin, tie_off

__all__ = ["LEDS", "NAME", "POR_CYCLES", "PRESET", "REF_HZ", "PLLConfig", "ULX3STop", "ecp5_pll", "platform"]

NAME = "ulx3s-85f"
PRESET = "board"
REF_HZ = 25_000_000
# Device clock cycles that reset is held after the PLL locks and after the button is let go (the FT231X and the
# host need nothing from us earlier; 2**16 cycles is ~0.87 ms at 75 MHz).
POR_CYCLES = 1 << 16
# What each LED shows (led number -> meaning); the gate-level testbench names the pins after it.
LEDS = {0: "busy", 1: "error", 2: "link", 7: "heartbeat"}

# ECP5 EHXPLLL limits (Lattice TN1263 / FPGA-DS-02012: VCO 400..800 MHz, PFD 3.125..400 MHz, CLKOP
# 3.125..400 MHz); the divider ranges are those of the primitive's parameters.
VCO_HZ = (400e6, 800e6)
PFD_HZ = (3.125e6, 400e6)
OUT_HZ = (3.125e6, 400e6)
CLKI_DIVS = range(1, 129)
CLKFB_DIVS = range(1, 81)
CLKOP_DIVS = range(1, 129)


@dataclass(frozen=True)
class PLLConfig:
    """EHXPLLL dividers with CLKOP fed back: f_out = f_in / clki_div * clkfb_div, f_vco = f_out * clkop_div."""

    ref_hz: int
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def out_hz(self) -> float:
        return self.ref_hz / self.clki_div * self.clkfb_div

    @property
    def vco_hz(self) -> float:
        return self.out_hz * self.clkop_div

    @property
    def pfd_hz(self) -> float:
        return self.ref_hz / self.clki_div

    @property
    def clkop_cphase(self) -> int:
        # What Trellis' ecppll writes for a 0-degree CLKOP; with CLKOP as the feedback the loop aligns the
        # output to the input whatever the coarse phase, so this only has to be a legal value.
        return (self.clkop_div - 1) // 2


def ecp5_pll(*, ref_hz: int, out_hz: int, tolerance: float = 0.0) -> PLLConfig:
    """The EHXPLLL dividers that make `out_hz` from `ref_hz` with the VCO inside 400..800 MHz.

    Among exact (or within `tolerance`, relative) solutions, the one with the VCO nearest 600 MHz wins (the
    middle of the range, where the loop has most margin). Raises ValueError when no divider set is close
    enough, so a preset clock the PLL cannot make is refused at build time, not discovered on the bench.
    """
    for name, v in (("ref_hz", ref_hz), ("out_hz", out_hz)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int (Hz), not {v!r}")
    if not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 0.1:
        raise ValueError(f"tolerance must be a relative error in [0, 0.1), not {tolerance!r}")
    if not OUT_HZ[0] <= out_hz <= OUT_HZ[1]:
        raise ValueError(f"out_hz={out_hz} is outside the EHXPLLL output range {OUT_HZ}")
    best = None
    for clki_div in CLKI_DIVS:
        pfd = ref_hz / clki_div
        if not PFD_HZ[0] <= pfd <= PFD_HZ[1]:
            continue
        for clkfb_div in CLKFB_DIVS:
            fout = pfd * clkfb_div
            err = abs(fout - out_hz) / out_hz
            if err > tolerance + 1e-12:
                continue
            for clkop_div in CLKOP_DIVS:
                vco = fout * clkop_div
                if not VCO_HZ[0] <= vco <= VCO_HZ[1]:
                    continue
                key = (err, abs(vco - 600e6), clki_div)
                if best is None or key < best[0]:
                    best = (key, PLLConfig(ref_hz, clki_div, clkfb_div, clkop_div))
    if best is None:
        raise ValueError(f"no EHXPLLL divider set makes {out_hz} Hz from {ref_hz} Hz "
                         f"within {tolerance:.3%} with the VCO in 400..800 MHz")
    return best[1]


def _mhz(hz: float) -> str:
    return f"{hz / 1e6:.6g}"


class ULX3STop(Elaboratable):
    """The board top: PLL, power-on/button reset, device, UART pins, LEDs.

    por_cycles: device clock cycles that reset is held after the PLL locks and after the button is let go
    (POR_CYCLES by default).
    """

    def __init__(self, *, params, por_cycles=POR_CYCLES):
        check_top_params(params=params, por_cycles=por_cycles)
        self.params = params
        self.por_cycles = por_cycles
        self.pll = ecp5_pll(ref_hz=REF_HZ, out_hz=params.clk_hz)
        self.device = hardware_device(params=params)

    def elaborate(self, platform):
        m = Module()
        pll = self.pll
        clk25 = pin(m, platform, "clk25", "i")

        # The device domain is reset synchronously from the `por` domain (same clock, never reset itself),
        # so reset is released on a clock edge wherever the button and the PLL lock come from.
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        m.domains.sync = cd_sync = ClockDomain("sync")
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=_mhz(pll.ref_hz), a_FREQUENCY_PIN_CLKOP=_mhz(pll.out_hz),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div,
            p_CLKOP_CPHASE=pll.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=pll.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=clk25, o_CLKOP=cd_por.clk, i_CLKFB=cd_por.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        m.d.comb += cd_sync.clk.eq(cd_por.clk)
        platform.add_clock_constraint(cd_por.clk, pll.out_hz)

        button = pin(m, platform, "button_fire", "i")
        locked_s, button_s = Signal(), Signal()
        m.submodules.lock_sync = FFSynchronizer(locked, locked_s, o_domain="por")
        m.submodules.button_sync = FFSynchronizer(button, button_s, o_domain="por")
        por = Signal(range(self.por_cycles + 1))
        with m.If(~locked_s | button_s):
            m.d.por += por.eq(0)
        with m.Elif(por != self.por_cycles):
            m.d.por += por.eq(por + 1)
        # The reset reaches every flip-flop of the device that has one (18,502 in a 30 MHz build): through
        # fabric routing that net was the critical path at 40 MHz (21 of its 23 ns were routing). From a
        # register through a DCCA it rides a global clock line instead, as nextpnr routes a clock (CE tied
        # high: never gated).
        rst_q, rst_g = Signal(init=1), Signal()
        m.d.por += rst_q.eq(por != self.por_cycles)
        m.submodules.rst_dcc = Instance("DCCA", i_CLKI=rst_q, i_CE=1, o_CLKO=rst_g)
        m.d.comb += cd_sync.rst.eq(rst_g)

        m.submodules.device = dev = self.device
        tie_off(m, dev, SIM_ONLY_PORTS + PCIE_PORTS)
        # The FT231X's RTS/DTR lines are not used: no hardware flow control (the link needs none).
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx = io.Buffer("o", uart.tx)
        m.d.comb += [dev.uart_rx.eq(rx.i), tx.o.eq(dev.uart_tx)]

        heartbeat = Signal(range(self.params.clk_hz))
        blink = Signal()
        with m.If(heartbeat == self.params.clk_hz // 2 - 1):
            m.d.sync += [heartbeat.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += heartbeat.eq(heartbeat + 1)
        shown = {"busy": dev.busy, "error": dev.irq_error, "link": dev.link_active, "heartbeat": blink}
        for i, meaning in LEDS.items():
            value = shown[meaning]
            m.d.comb += pin(m, platform, "led", "o", number=i).eq(value)
        return m


def platform():
    """The amaranth-boards platform (imported here so the registry itself needs no amaranth-boards)."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    return ULX3S_85F_Platform()
