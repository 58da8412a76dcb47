"""The device behind a Xilinx XDMA core on the Artix-7 M.2 boards (NiteFury II, LiteFury).

Datapath (the host's `xdma` transport expects exactly this: BAR = device address map, DMA offset = device
address):

    PCIe Gen2 x4 -- xdma_0 --+-- m_axil (AXI4-Lite, 32 bit, axi_aclk 125 MHz) -- axil_cdc --+
                             |                                                            +-- device
                             +-- m_axi (AXI4, 128 bit, IDs, axi_aclk) ------- axi_cdc ----+  (device clk)

- xdma_0 (PG195 v4.1): AXI memory-mapped, one H2C and one C2H channel, AXI4-Lite master on its own BAR
  (32 MiB: the board preset's map ends at 0x0102_0000), 128-bit AXI at 125 MHz (Gen2 x4 on 7-series:
  128 bit @ 125 MHz or 64 bit @ 250 MHz; the slower clock is the easier one to close on an Artix-7 -2).
- The device's AXI4 slave is as wide as XDMA's m_axi (the board preset's axi_data_bits, 128), so the DMA
  port needs no width converter: only an AXI clock converter into the device clock, which carries XDMA's
  4-bit IDs to the device (the slave answers with the burst's ID).
- The device runs at the preset's `clk_hz` (it reports it in CLK_HZ and derives its UART divisor from it),
  made by an MMCM from the board's 200 MHz oscillator: axi_aclk is not that clock.
- Interrupts are not used by the host driver (it polls STATUS): usr_irq_req is tied low.

The IP is created by Tcl in the platform's `script_after_read` hook (`ip_tcl`); `stubs()` gives port-exact
Verilog stubs of the four IP instances and of the unisim primitives the top uses, for the lint run here.
"""

from dataclasses import dataclass

from amaranth.build import Attrs, Clock, DiffPairs, PinsN, Resource, Subsignal
from amaranth.hdl import ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer
from pimhil.contract import DeviceParams, windows

from .common import SIM_ONLY_PORTS, check_top_params, hardware_device, pin, tie_off

__all__ = [
    "LINT_TOP",
    "PRESET",
    "REF_HZ",
    "XDMA_CONFIG",
    "FuryTop",
    "MMCMConfig",
    "bar_bytes",
    "fury_platform",
    "ip_tcl",
    "mmcm",
    "stubs",
    "vivado_overrides",
]

PRESET = "board"
REF_HZ = 200_000_000
PCIE_LANES = 4
AXI_DATA_BITS = 128          # XDMA's m_axi, and the device's AXI4 slave (the board preset's axi_data_bits)
XDMA_ID_BITS = 4
LINT_TOP = "top"

# 7-series MMCME2 limits for speed grade -1 (the -2 parts on these boards allow more; staying within -1
# keeps one calculation valid for both): VCO 600..1200 MHz, PFD 10..450 MHz.
MMCM_VCO_HZ = (600e6, 1200e6)
MMCM_PFD_HZ = (10e6, 450e6)


@dataclass(frozen=True)
class MMCMConfig:
    """MMCME2_BASE with integer dividers: f_vco = f_in * mult / divclk, f_out = f_vco / out_div."""

    ref_hz: int
    divclk: int
    mult: int
    out_div: int

    @property
    def vco_hz(self) -> float:
        return self.ref_hz * self.mult / self.divclk

    @property
    def out_hz(self) -> float:
        return self.vco_hz / self.out_div


def mmcm(*, ref_hz: int, out_hz: int) -> MMCMConfig:
    """Exact MMCME2 dividers for out_hz, VCO nearest 1 GHz (mid-range); ValueError when there are none."""
    for name, v in (("ref_hz", ref_hz), ("out_hz", out_hz)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int (Hz), not {v!r}")
    best = None
    for divclk in range(1, 107):
        if not MMCM_PFD_HZ[0] <= ref_hz / divclk <= MMCM_PFD_HZ[1]:
            continue
        for mult in range(2, 65):
            vco = ref_hz * mult / divclk
            if not MMCM_VCO_HZ[0] <= vco <= MMCM_VCO_HZ[1]:
                continue
            out_div = round(vco / out_hz)
            if 1 <= out_div <= 128 and vco == out_hz * out_div:
                key = (abs(vco - 1e9), divclk)
                if best is None or key < best[0]:
                    best = (key, MMCMConfig(ref_hz, divclk, mult, out_div))
    if best is None:
        raise ValueError(f"no MMCME2 integer divider set makes {out_hz} Hz from {ref_hz} Hz")
    return best[1]


def bar_bytes(params: DeviceParams) -> int:
    """The AXI4-Lite BAR: the smallest power of two (>= 1 MiB) that covers the device's address map."""
    end = max(w.base + w.size for w in windows(params))
    size = 1 << 20
    while size < end:
        size <<= 1
    return size


# The XDMA configuration (PG195 property names, as set by public create_ip scripts for 7-series parts).
XDMA_CONFIG = {
    "mode_selection": "Advanced",
    "pl_link_cap_max_link_width": f"X{PCIE_LANES}",
    "pl_link_cap_max_link_speed": "5.0_GT/s",
    "ref_clk_freq": "100_MHz",
    "axi_data_width": f"{AXI_DATA_BITS}_bit",
    "axisten_freq": "125",
    "xdma_axi_intf_mm": "AXI_Memory_Mapped",
    "xdma_rnum_chnl": "1",
    "xdma_wnum_chnl": "1",
    "xdma_num_usr_irq": "1",
    "axilite_master_en": "true",
    "axilite_master_scale": "Megabytes",
    "pciebar2axibar_axil_master": "0x00000000",
    "cfg_mgmt_if": "false",
    "pf0_device_id": "7024",      # Xilinx's XDMA driver binds 10ee:7024 (7-series Gen2 x4)
}


def _props(d: dict) -> str:
    return " \\\n  ".join(f"CONFIG.{k} {{{v}}}" for k, v in d.items())


def ip_tcl(params: DeviceParams) -> str:
    """Vivado Tcl that creates and generates the three IP instances (run after read_xdc, before synthesis).

    The IP is synthesised with the top (no out-of-context checkpoints), so one `synth_design` builds all.
    """
    xdma = dict(XDMA_CONFIG, axilite_master_size=str(bar_bytes(params) >> 20))
    ips = [
        ("xdma", "4.1", "xdma_0", xdma),
        ("axi_clock_converter", None, "axil_cdc",
         {"PROTOCOL": "AXI4LITE", "ADDR_WIDTH": "32", "DATA_WIDTH": "32", "ACLK_ASYNC": "1"}),
        ("axi_clock_converter", None, "axi_cdc",
         {"PROTOCOL": "AXI4", "ADDR_WIDTH": "32", "DATA_WIDTH": str(AXI_DATA_BITS),
          "ID_WIDTH": str(XDMA_ID_BITS), "ACLK_ASYNC": "1"}),
    ]
    out = ["# XDMA and AXI converters for the PIM device (generated by hw/boards/xdma.py)"]
    for ip, version, name, props in ips:
        ver = f" -version {version}" if version else ""
        out += [f"create_ip -name {ip} -vendor xilinx.com -library ip{ver} -module_name {name}",
                f"set_property -dict [list \\\n  {_props(props)} \\\n] [get_ips {name}]",
                f"set_property generate_synth_checkpoint false [get_files {name}.xci]",
                f"generate_target all [get_ips {name}]"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Platform: amaranth-boards' NiteFury/LiteFury with the PCIe resource as the XDMA core needs it
# ---------------------------------------------------------------------------------------------------------
def _pcie_resource():
    # amaranth-boards declares PERST# (J1) as an output and the reference clock with an SSTL I/O standard;
    # PERST# is driven by the host, and GT pins (refclk, lanes) take no I/O standard or buffer of ours.
    return Resource(
        "pcie", 0,
        Subsignal("clkreq", PinsN("G1", dir="o"), Attrs(IOSTANDARD="LVCMOS33")),
        Subsignal("perst", PinsN("J1", dir="i"), Attrs(IOSTANDARD="LVCMOS33", PULLUP="TRUE")),
        Subsignal("clk", DiffPairs(p="F6", n="E6", dir="i"), Clock(100e6)),
        Subsignal("rx", DiffPairs(p="B10 B8 D11 D9", n="A10 A8 C11 C9", dir="i")),
        Subsignal("tx", DiffPairs(p="B6 B4 D5 D7", n="A6 A4 C5 C7", dir="o")),
    )


PCIE_XDC = """\
# Generated by hw/boards/xdma.py. PERST# is asynchronous to every clock; the XDMA core synchronises it.
set_false_path -from [get_ports pcie_0__perst__io]
"""


def fury_platform(base):
    """`base` (an amaranth-boards NiteFury/LiteFury platform class) with the corrected PCIe resource."""
    class FuryPlatform(base):
        resources = [r for r in base.resources if r.name != "pcie"] + [_pcie_resource()]

    FuryPlatform.__name__ = FuryPlatform.__qualname__ = f"PIM{base.__name__}"
    return FuryPlatform


# ---------------------------------------------------------------------------------------------------------
# The top
# ---------------------------------------------------------------------------------------------------------
_AXIL_CH = ("awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp", "bvalid",
            "bready", "araddr", "arprot", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready")
# The AXI4 signals of the clock converter (IDs in _AXI_IDS); lock/cache/prot/region/qos have no counterpart
# in the device's slave and are dropped (outputs) or driven with their AXI defaults (inputs).
_AXI_CH = ("awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot", "awregion", "awqos",
           "awvalid", "awready", "wdata", "wstrb", "wlast", "wvalid", "wready", "bresp", "bvalid", "bready",
           "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot", "arregion", "arqos",
           "arvalid", "arready", "rdata", "rresp", "rlast", "rvalid", "rready")
# Direction seen from the master side of a channel signal: the names a master drives.
_SLAVE_DRIVES = {"awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rlast", "rvalid", "bid",
                 "rid"}
_WIDTHS = {"awaddr": 32, "araddr": 32, "awprot": 3, "arprot": 3, "wdata": 32, "rdata": 32, "wstrb": 4,
           "bresp": 2, "rresp": 2, "awlen": 8, "arlen": 8, "awsize": 3, "arsize": 3, "awburst": 2,
           "arburst": 2, "awlock": 1, "arlock": 1, "awcache": 4, "arcache": 4, "awregion": 4, "arregion": 4,
           "awqos": 4, "arqos": 4, "awid": XDMA_ID_BITS, "arid": XDMA_ID_BITS, "bid": XDMA_ID_BITS,
           "rid": XDMA_ID_BITS}


_AXI_IDS = ("awid", "arid", "bid", "rid")


def _with_ids(names):
    """AXI4 channel names with the IDs where the IP's port lists have them (before AxADDR, BRESP, RDATA)."""
    out = []
    for n in names:
        if n in ("awaddr", "araddr", "bresp", "rdata"):
            out.append({"awaddr": "awid", "araddr": "arid", "bresp": "bid", "rdata": "rid"}[n])
        out.append(n)
    return out


def _width(name, data_bits=32):
    if name in ("wdata", "rdata"):
        return data_bits
    if name == "wstrb":
        return data_bits // 8
    return _WIDTHS.get(name, 1)


class FuryTop(Elaboratable):
    """Board top for an Artix-7 M.2 board: MMCM, reset, XDMA + clock converters, device, LEDs.

    LEDs: 0 busy, 1 error, 2 PCIe link up, 3 heartbeat (about 1 Hz).
    """

    def __init__(self, *, params, por_cycles=1 << 16):
        check_top_params(params=params, por_cycles=por_cycles)
        if params.axi_data_bits != AXI_DATA_BITS:
            raise ValueError(f"params.axi_data_bits must be {AXI_DATA_BITS} (XDMA's m_axi as configured here), "
                             f"not {params.axi_data_bits}")
        self.params = params
        self.por_cycles = por_cycles
        self.mmcm = mmcm(ref_hz=REF_HZ, out_hz=params.clk_hz)
        self.device = hardware_device(params=params)

    def elaborate(self, platform):
        m = Module()
        cfg = self.mmcm

        # Device clock: MMCM from the 200 MHz oscillator, reset until it locks plus por_cycles.
        clk200 = pin(m, platform, "clk200", "i")
        m.domains.por = cd_por = ClockDomain("por", reset_less=True)
        m.domains.sync = cd_sync = ClockDomain("sync")
        mmcm_out, mmcm_fb, locked = Signal(name="mmcm_out"), Signal(name="mmcm_fb"), Signal(name="mmcm_locked")
        unused = {f"o_CLKOUT{i}": Signal(name=f"mmcm_clkout{i}") for i in range(1, 7)}
        unused.update({f"o_CLKOUT{i}B": Signal(name=f"mmcm_clkout{i}b") for i in range(4)})
        m.submodules.mmcm = Instance(
            "MMCME2_BASE",
            p_BANDWIDTH="OPTIMIZED", p_CLKIN1_PERIOD=1e9 / cfg.ref_hz, p_DIVCLK_DIVIDE=cfg.divclk,
            p_CLKFBOUT_MULT_F=float(cfg.mult), p_CLKOUT0_DIVIDE_F=float(cfg.out_div), p_STARTUP_WAIT="FALSE",
            i_CLKIN1=clk200, i_CLKFBIN=mmcm_fb, o_CLKFBOUT=mmcm_fb, o_CLKFBOUTB=Signal(name="mmcm_fbb"),
            o_CLKOUT0=mmcm_out, o_LOCKED=locked, i_PWRDWN=0, i_RST=0, **unused,
        )
        m.submodules.bufg = Instance("BUFG", i_I=mmcm_out, o_O=cd_por.clk)
        m.d.comb += cd_sync.clk.eq(cd_por.clk)
        # No create_clock on the MMCM output: Vivado derives it from the 200 MHz input's constraint.
        locked_s = Signal()
        m.submodules.lock_sync = FFSynchronizer(locked, locked_s, o_domain="por")
        por = Signal(range(self.por_cycles + 1))
        with m.If(~locked_s):
            m.d.por += por.eq(0)
        with m.Elif(por != self.por_cycles):
            m.d.por += por.eq(por + 1)
        m.d.comb += cd_sync.rst.eq(por != self.por_cycles)

        # PCIe pins: the GT pins go straight to the core (no buffers of ours).
        pcie = platform.request("pcie", 0, dir="-")
        m.submodules.clkreq_buf = clkreq = io.Buffer("o", pcie.clkreq)
        m.submodules.perst_buf = perst = io.Buffer("i", pcie.perst)
        m.d.comb += clkreq.o.eq(1)       # ask the host for the reference clock, always
        refclk = Signal(name="pcie_refclk")
        m.submodules.refclk_buf = Instance("IBUFDS_GTE2", i_I=pcie.clk.p, i_IB=pcie.clk.n, i_CEB=0,
                                           o_O=refclk, o_ODIV2=Signal(name="refclk_div2"))

        axi_aclk, axi_aresetn = Signal(name="axi_aclk"), Signal(name="axi_aresetn")
        link_up = Signal(name="pcie_link_up")
        xdma_ports = {"i_sys_clk": refclk, "i_sys_rst_n": ~perst.i, "o_user_lnk_up": link_up,
                      "o_pci_exp_txp": pcie.tx.p, "o_pci_exp_txn": pcie.tx.n,
                      "i_pci_exp_rxp": pcie.rx.p, "i_pci_exp_rxn": pcie.rx.n,
                      "o_axi_aclk": axi_aclk, "o_axi_aresetn": axi_aresetn,
                      "i_usr_irq_req": Const(0, 1), "o_usr_irq_ack": Signal(name="usr_irq_ack"),
                      "o_msi_enable": Signal(name="msi_enable"),
                      "o_msi_vector_width": Signal(3, name="msi_vector_width")}

        # XDMA m_axil -> axil_cdc -> device.axil
        axil = {n: Signal(_width(n), name=f"xdma_axil_{n}") for n in _AXIL_CH}
        for n, s in axil.items():
            xdma_ports[f"{'i' if n in _SLAVE_DRIVES else 'o'}_m_axil_{n}"] = s
        # XDMA m_axi (128 bit, IDs) -> axi_cdc
        wide = {n: Signal(_width(n, AXI_DATA_BITS), name=f"xdma_axi_{n}")
                for n in _AXI_CH + _AXI_IDS if n not in ("awregion", "arregion", "awqos", "arqos")}
        for n, s in wide.items():
            if n == "awaddr" or n == "araddr":
                continue
            xdma_ports[f"{'i' if n in _SLAVE_DRIVES else 'o'}_m_axi_{n}"] = s
        # XDMA addresses are 64 bits; the device map is 32 bits wide (the high half is zero for card addresses).
        for n in ("awaddr", "araddr"):
            full = Signal(64, name=f"xdma_axi_{n}64")
            xdma_ports[f"o_m_axi_{n}"] = full
            m.d.comb += wide[n].eq(full[:32])
        m.submodules.xdma_0 = Instance("xdma_0", **xdma_ports)

        dev_rstn = ~cd_sync.rst
        m.submodules.device = dev = self.device
        tie_off(m, dev, SIM_ONLY_PORTS)

        cdc_l = {"i_s_axi_aclk": axi_aclk, "i_s_axi_aresetn": axi_aresetn,
                 "i_m_axi_aclk": cd_sync.clk, "i_m_axi_aresetn": dev_rstn}
        for n in _AXIL_CH:
            slave_out = n in _SLAVE_DRIVES
            cdc_l[f"{'o' if slave_out else 'i'}_s_axi_{n}"] = axil[n]
            cdc_l[f"{'i' if slave_out else 'o'}_m_axi_{n}"] = getattr(dev.axil, n)
        m.submodules.axil_cdc = Instance("axil_cdc", **cdc_l)

        # axi_cdc (axi_aclk -> device clock, 128 bit with IDs) -> device.axi
        cdc = {"i_s_axi_aclk": axi_aclk, "i_s_axi_aresetn": axi_aresetn,
               "i_m_axi_aclk": cd_sync.clk, "i_m_axi_aresetn": dev_rstn}
        dev_side = {n: Signal(_width(n, AXI_DATA_BITS), name=f"dev_axi_{n}") for n in _AXI_CH + _AXI_IDS}
        for n in _AXI_CH + _AXI_IDS:
            slave_out = n in _SLAVE_DRIVES
            if n in ("awregion", "arregion", "awqos", "arqos"):
                cdc[f"i_s_axi_{n}"] = Const(0, 4)      # XDMA has no region/QoS outputs: AXI defaults
            else:
                cdc[f"{'o' if slave_out else 'i'}_s_axi_{n}"] = wide[n]
            cdc[f"{'i' if slave_out else 'o'}_m_axi_{n}"] = dev_side[n]
        m.submodules.axi_cdc = Instance("axi_cdc", **cdc)
        device_names = set(dev.axi.signature.members)
        for n in _AXI_CH + _AXI_IDS:
            if n not in device_names:
                if n in _SLAVE_DRIVES:
                    m.d.comb += dev_side[n].eq(0)
                continue
            if n in _SLAVE_DRIVES:
                m.d.comb += dev_side[n].eq(getattr(dev.axi, n))
            else:
                m.d.comb += getattr(dev.axi, n).eq(dev_side[n])

        heartbeat = Signal(range(self.params.clk_hz))
        blink = Signal()
        with m.If(heartbeat == self.params.clk_hz // 2 - 1):
            m.d.sync += [heartbeat.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += heartbeat.eq(heartbeat + 1)
        for i, value in enumerate((dev.busy, dev.irq_error, link_up, blink)):
            m.d.comb += pin(m, platform, "led", "o", number=i).eq(value)
        return m


def vivado_overrides(params: DeviceParams) -> dict:
    """Keyword overrides for the Xilinx platform's build templates."""
    return {"script_after_read": ip_tcl(params)}


# ---------------------------------------------------------------------------------------------------------
# Port-exact stubs for the lint (never synthesised: Vivado uses the generated IP and its own unisims)
# ---------------------------------------------------------------------------------------------------------
def _axi_ports(prefix: str, names, *, master: bool, data_bits: int = 32, vector_lock: bool = True) -> list:
    """Verilog port declarations of an AXI interface; master=True: the stub drives what a master drives.
    vector_lock: AxLOCK declared `[0:0]` (the AXI infrastructure IP) rather than scalar (XDMA)."""
    out = []
    for n in names:
        w = _width(n, data_bits)
        driven_by_stub = (n not in _SLAVE_DRIVES) if master else (n in _SLAVE_DRIVES)
        rng = f"[{w - 1}:0] " if w > 1 or (vector_lock and n in ("awlock", "arlock")) else ""
        out.append(f"{'output' if driven_by_stub else 'input '} wire {rng}{prefix}{n}")
    return out


def _stub(name: str, ports: list, note: str) -> str:
    """A module whose outputs are constant zero and whose inputs are unused (port list only)."""
    decls = ",\n    ".join(ports)
    outs = [p.split()[-1] for p in ports if p.startswith("output")]
    body = "".join(f"  assign {o} = '0;\n" for o in outs)
    # A stub has no logic, so its inputs and parameters are unused by construction: waived here, in the
    # stub, not for the design under lint.
    return (f"// {note}\n/* verilator lint_off UNUSEDSIGNAL */\n/* verilator lint_off UNUSEDPARAM */\n"
            f"module {name} (\n    {decls}\n);\n{body}endmodule\n"
            "/* verilator lint_on UNUSEDPARAM */\n/* verilator lint_on UNUSEDSIGNAL */\n")


def _xdma_stub() -> str:
    msb = PCIE_LANES - 1
    ports = ["input  wire sys_clk", "input  wire sys_rst_n", "output wire user_lnk_up",
             f"output wire [{msb}:0] pci_exp_txp", f"output wire [{msb}:0] pci_exp_txn",
             f"input  wire [{msb}:0] pci_exp_rxp", f"input  wire [{msb}:0] pci_exp_rxn",
             "output wire axi_aclk", "output wire axi_aresetn",
             "input  wire [0:0] usr_irq_req", "output wire [0:0] usr_irq_ack",
             "output wire msi_enable", "output wire [2:0] msi_vector_width"]
    mm = [n for n in ("awid", "awaddr", "awlen", "awsize", "awburst", "awprot", "awvalid", "awready", "awlock",
                      "awcache", "wdata", "wstrb", "wlast", "wvalid", "wready", "bid", "bresp", "bvalid",
                      "bready", "arid", "araddr", "arlen", "arsize", "arburst", "arprot", "arvalid", "arready",
                      "arlock", "arcache", "rid", "rdata", "rresp", "rlast", "rvalid", "rready")]
    for p in _axi_ports("m_axi_", mm, master=True, data_bits=AXI_DATA_BITS, vector_lock=False):
        if p.endswith(("m_axi_awaddr", "m_axi_araddr")):
            p = p.replace("[31:0]", "[63:0]")
        ports.append(p)
    ports += _axi_ports("m_axil_", _AXIL_CH, master=True)
    return _stub("xdma_0", ports, "XDMA 4.1 (PG195), 7-series, AXI-MM 128 bit, AXI4-Lite master, x4, 1 user IRQ, "
                 "no cfg_mgmt, no bypass: the port list of Vivado's xdma_0_stub.v for that configuration")


def _cdc_stub(name: str, names, data_bits: int, note: str) -> str:
    """An AXI clock converter: the same channels on both sides."""
    ports = ["input  wire s_axi_aclk", "input  wire s_axi_aresetn"]
    ports += _axi_ports("s_axi_", names, master=False, data_bits=data_bits)
    ports += ["input  wire m_axi_aclk", "input  wire m_axi_aresetn"]
    ports += _axi_ports("m_axi_", names, master=True, data_bits=data_bits)
    return _stub(name, ports, note)


_PRIMITIVES = {
    "IBUF": ["output wire O", "input  wire I"],
    "OBUFT": ["output wire O", "input  wire I", "input  wire T"],
    "IBUFDS": ["output wire O", "input  wire I", "input  wire IB"],
    "BUFG": ["output wire O", "input  wire I"],
    "IBUFDS_GTE2": ["output wire O", "output wire ODIV2", "input  wire CEB", "input  wire I", "input  wire IB"],
    "MMCME2_BASE": ["output wire CLKFBOUT", "output wire CLKFBOUTB", *[f"output wire CLKOUT{i}" for i in range(7)],
                    *[f"output wire CLKOUT{i}B" for i in range(4)], "output wire LOCKED",
                    "input  wire CLKFBIN", "input  wire CLKIN1", "input  wire PWRDWN", "input  wire RST"],
}
_MMCM_PARAMS = ("BANDWIDTH", "CLKIN1_PERIOD", "DIVCLK_DIVIDE", "CLKFBOUT_MULT_F", "CLKOUT0_DIVIDE_F",
                "STARTUP_WAIT")


def _primitive_stub(name: str, ports: list) -> str:
    text = _stub(name, ports, f"unisim {name} (7 Series Libraries Guide, UG953): ports only")
    if name == "MMCME2_BASE":
        params = "".join(f"  parameter {p} = 0;\n" for p in _MMCM_PARAMS)
        text = text.replace(");\n", ");\n" + params, 1)
    return text


def stubs() -> dict:
    """file name -> Verilog text of every stub the lint of the top needs."""
    files = {"xdma_0.v": _xdma_stub(),
             "axil_cdc.v": _cdc_stub("axil_cdc", _AXIL_CH, 32, "AXI Clock Converter 2.1 (PG059/PG347), "
                                     "AXI4-Lite, 32-bit address and data, asynchronous clocks"),
             "axi_cdc.v": _cdc_stub("axi_cdc", _with_ids(_AXI_CH), AXI_DATA_BITS,
                                    f"AXI Clock Converter 2.1 (PG059/PG347), AXI4, 32-bit address, "
                                    f"{AXI_DATA_BITS}-bit data, ID width {XDMA_ID_BITS}, asynchronous clocks")}
    for name, ports in _PRIMITIVES.items():
        files[f"{name}.v"] = _primitive_stub(name, ports)
    header = "// GENERATED by hw/boards/xdma.py (make board): lint stub, never synthesised.\n"
    return {k: header + v for k, v in files.items()}

