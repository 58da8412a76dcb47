"""The gate-level flow's own pieces (ci/netlist.py): the Yosys script and the generated MULT18X18D model.

The gate-level simulation itself is tb/netlist/test_netlist.py (`make gate-sim`)."""

import re

import pytest

from ci import netlist

BLACKBOX = """
(* blackbox *)
module MULT18X18D(A1, A0, B1, B0, SIGNEDA, SIGNEDB, CLK0, P1, P0, ROA0, SIGNEDP);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter MULT_BYPASS = "DISABLED";
    input A1;
    input A0;
    input B1;
    input B0;
    input SIGNEDA;
    input SIGNEDB;
    input CLK0;
    output P1;
    output P0;
    output ROA0;
    output SIGNEDP;
endmodule
"""


def test_script_skips_memory_mapping_and_keeps_the_board_flow():
    script = netlist.yosys_script("top")
    assert "-run begin:map_ram" in script and "-run map_gates:map_luts" in script
    # map_ram (block/LUT RAM primitives) and map_ffram are the only steps left out.
    assert "map_ram:" not in script and "map_ffram" not in script
    assert "abc9_fast.abc" in script and "-nodsp" not in script and script.rstrip().endswith("netlist.v")


def test_model_refuses_a_text_without_the_cell():
    with pytest.raises(ValueError, match="no MULT18X18D"):
        netlist.mult18x18d_model("module other(); endmodule")


def test_model_needs_the_full_operand_and_product_buses():
    with pytest.raises(ValueError, match="A0..A17"):
        netlist.mult18x18d_model(BLACKBOX)


def _full_blackbox():
    """The toy cell with 18-bit operands and a 36-bit product, as the real one has."""
    ins = [f"A{i}" for i in range(18)] + [f"B{i}" for i in range(18)] + ["SIGNEDA", "SIGNEDB", "CLK0"]
    outs = [f"P{i}" for i in range(36)] + ["ROA0", "SIGNEDP"]
    return ("(* blackbox *)\nmodule MULT18X18D(" + ", ".join(ins + outs) + ");\n"
            '    parameter REG_INPUTA_CLK = "NONE";\n    parameter MULT_BYPASS = "DISABLED";\n'
            + "".join(f"    input {n};\n" for n in ins) + "".join(f"    output {n};\n" for n in outs)
            + "endmodule\n"), ins, outs


def test_model_is_port_exact_and_refuses_registered_configurations():
    text, ins, outs = _full_blackbox()
    model = netlist.mult18x18d_model(text)
    header = re.search(r"module MULT18X18D\((.*?)\);", model, re.S).group(1)
    assert [p.strip() for p in header.split(",")] == ins + outs
    assert set(re.findall(r"input (\w+);", model)) == set(ins)
    assert set(re.findall(r"output (\w+);", model)) == set(outs)
    assert 'parameter REG_INPUTA_CLK = "NONE";' in model
    assert 'if (REG_INPUTA_CLK != "NONE") $fatal' in model and "MULT_BYPASS" in model
    # Each operand is sign-extended only when its SIGNEDx pin says so; every output is driven.
    assert "{SIGNEDA & A17, A17," in model and "{SIGNEDB & B17, B17," in model
    assert "assign ROA0 = 1'b0;" in model and "assign SIGNEDP = SIGNEDA | SIGNEDB;" in model


def test_script_leaves_only_cell_nets_split_into_bits_for_the_simulator():
    script = netlist.yosys_script("top").splitlines()
    tail = script[script.index("synth_ecp5 -top top -run map_cells:edif"):]
    assert tail[-1:] == ["write_verilog -noattr netlist.v"]
    assert "opt_clean -purge" in tail and "splitnets" in tail


NETLIST = """
module top(clk, bus, q, \\odd );
  input clk;
  wire clk;
  input [3:0] bus;
  wire [3:0] bus;
  output q;
  wire q;
  wire _0_;
  LUT4 #(.INIT(16'h8000)) _1_ (.A(bus[0]), .B(bus[1]), .C(bus[2]), .D(bus[3]), .Z(_0_));
endmodule
"""


def test_wrapper_has_the_netlist_ports_and_instantiates_it():
    text = NETLIST.replace(", \\odd ", "")
    wrapper = netlist.sim_wrapper(text, top="top")
    assert "module top_netlist(clk, bus, q);" in wrapper
    assert "  input clk;" in wrapper and "  input [3:0] bus;" in wrapper and "  output q;" in wrapper
    assert "top netlist(.clk(clk), .bus(bus), .q(q));" in wrapper
    assert "wire _0_" not in wrapper and "LUT4" not in wrapper


def test_wrapper_refuses_a_missing_module_or_an_undeclared_port():
    with pytest.raises(ValueError, match="no module other"):
        netlist.sim_wrapper(NETLIST, top="other")
    with pytest.raises(ValueError, match="not all declared"):
        netlist.sim_wrapper(NETLIST, top="top")
