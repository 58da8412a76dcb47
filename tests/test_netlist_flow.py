"""The gate-level flow's own pieces: ci/netlist.py (the Yosys script, the wrapper top) and the cell models
generated from Yosys' blackboxes (ci/cell_models.py). Toy blackbox texts stand in for the wheel's files, which
`make test` does not install.

The gate-level simulation itself is tb/netlist/test_netlist.py (`make gate-sim`)."""

import re

import pytest

from ci import cell_models, netlist

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


def test_script_reads_the_board_netlist_and_synthesises_nothing():
    script = netlist.yosys_script("top").splitlines()
    assert script[0] == "read_json top.json" and "hierarchy -top top" in script
    assert not any(line.startswith(("synth", "abc", "techmap", "opt ", "memory")) for line in script)


def test_model_refuses_a_text_without_the_cell():
    with pytest.raises(ValueError, match="no MULT18X18D"):
        cell_models.mult18x18d_model("module other(); endmodule")


def test_model_needs_the_full_operand_and_product_buses():
    with pytest.raises(ValueError, match="A0..A17"):
        cell_models.mult18x18d_model(BLACKBOX)


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
    model = cell_models.mult18x18d_model(text)
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
    assert script[-1] == "write_verilog -noattr netlist.v"
    steps = [script.index(step) for step in ("opt_clean -purge", "splitnets", "write_verilog -noattr netlist.v")]
    assert steps == sorted(steps)


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


def test_wrapper_renames_the_pins_and_refuses_an_unnamed_one():
    text = NETLIST.replace(", \\odd ", "")
    wrapper = netlist.sim_wrapper(text, top="top", pins={"clk": "clk", "bus": "b", "q": "led_q"})
    assert "module top_netlist(clk, b, led_q);" in wrapper
    assert "  input [3:0] b;" in wrapper and "  output led_q;" in wrapper
    assert "top netlist(.clk(clk), .bus(b), .q(led_q));" in wrapper
    with pytest.raises(ValueError, match=r"without a testbench name: \['q'\]"):
        netlist.sim_wrapper(text, top="top", pins={"clk": "clk", "bus": "b"})


def _dp16kd_text():
    """A DP16KD blackbox in the ANSI header style of Yosys' cells_sim_ecp5.v, plus a module after it."""
    def group(kind, names):
        return f"  {kind} " + ", ".join(names)

    lines = []
    for s in "AB":
        lines += [group("input", [f"DI{s}{i}" for i in reversed(range(18))]),
                  group("input", [f"AD{s}{i}" for i in reversed(range(14))]),
                  group("input", [f"{c}{s}" for c in ("CE", "OCE", "CLK", "WE", "RST")]),
                  group("input", [f"CS{s}{i}" for i in reversed(range(3))]),
                  group("output", [f"DO{s}{i}" for i in reversed(range(18))])]
    params = [("DATA_WIDTH_A", "18"), ("DATA_WIDTH_B", "18"), ("REGMODE_A", '"NOREG"'), ("REGMODE_B", '"NOREG"'),
              ("RESETMODE", '"SYNC"'), ("CSDECODE_A", '"0b000"'), ("CSDECODE_B", '"0b000"'),
              ("WRITEMODE_A", '"NORMAL"'), ("WRITEMODE_B", '"NORMAL"'), ("CLKAMUX", '"CLKA"'),
              ("CLKBMUX", '"CLKB"'), ("INITVAL_00", "320'h0"), ("INITVAL_3F", "320'h0")]
    return ("(* blackbox *)\nmodule DP16KD(\n" + ",\n".join(lines) + "\n);\n"
            + "".join(f"\tparameter {n} = {v};\n" for n, v in params)
            + "endmodule\n\n(* keep *)\nmodule OTHER(input A, output Z);\nendmodule\n")


DP16KD = _dp16kd_text()


def test_blackbox_ports_read_both_header_styles():
    order, ins, outs, params = cell_models.blackbox_ports(DP16KD, "DP16KD")
    assert order[:2] == ["DIA17", "DIA16"] and order[-1] == "DOB0" and len(order) == 2 * (18 + 14 + 5 + 3 + 18)
    assert "CLKA" in ins and "DOB0" in outs and not ins & outs
    assert ("INITVAL_3F", "320'h0") in params and ("RESETMODE", '"SYNC"') in params
    order, ins, outs, _ = cell_models.blackbox_ports(BLACKBOX, "MULT18X18D")
    assert order == ["A1", "A0", "B1", "B0", "SIGNEDA", "SIGNEDB", "CLK0", "P1", "P0", "ROA0", "SIGNEDP"]
    assert outs == {"P1", "P0", "ROA0", "SIGNEDP"}


def test_dp16kd_model_is_port_exact_and_refuses_what_it_does_not_model():
    model = cell_models.dp16kd_model(DP16KD)
    header = re.search(r"module DP16KD\((.*?)\);", model, re.S).group(1)
    assert [p.strip() for p in header.split(",")] == cell_models.blackbox_ports(DP16KD, "DP16KD")[0]
    for refused in ("REGMODE_A", "CSDECODE_B", "CLKBMUX", "INITVAL_00", "INITVAL_3F", "different widths",
                    "not a DP16KD width"):
        assert refused in model and "$fatal" in model
    # x36: port B's read comes out on DOB:DOA; x18 byte enables on AD[1:0], x36 on AD[3:0].
    assert "W == 36 ? qb[17:0] : qa" in model and "W == 36 ? qb[35:18] : qb[17:0]" in model
    assert "{9{ad[3]}}, {9{ad[2]}}, {9{ad[1]}}, {9{ad[0]}}" in model
    with pytest.raises(ValueError, match="data, address or control"):
        cell_models.dp16kd_model(DP16KD.replace("DIA17, ", ""))


def test_without_module_drops_the_blackbox_and_keeps_the_rest():
    rest = cell_models.without_module(DP16KD, "DP16KD")
    assert "DP16KD" not in rest and "(* blackbox *)" not in rest and "module OTHER" in rest
    with pytest.raises(ValueError, match="no module DP16KD"):
        cell_models.without_module(rest, "DP16KD")


PLL = """
module EHXPLLL(CLKI, CLKFB, RST, CLKOP, CLKOS, LOCK, INTLOCK, REFCLK);
    parameter CLKI_DIV = 1;
    parameter FEEDBK_PATH = "CLKOP";
    parameter CLKOP_ENABLE = "ENABLED";
    input CLKI;
    input CLKFB;
    input RST;
    output CLKOP;
    output CLKOS;
    output LOCK;
    output INTLOCK;
    output REFCLK;
endmodule
"""


def test_pll_model_passes_the_clock_and_locks_after_a_few_cycles():
    model = cell_models.ehxplll_model(PLL)
    assert "module EHXPLLL(CLKI, CLKFB, RST, CLKOP, CLKOS, LOCK, INTLOCK, REFCLK);" in model
    assert "assign CLKOP = CLKI;" in model and "assign CLKOS = 1'b0;" in model
    assert f"locked <= count == {cell_models.LOCK_CYCLES - 1};" in model and "assign INTLOCK = locked;" in model
    assert 'FEEDBK_PATH != "CLKOP"' in model and "$fatal" in model
    with pytest.raises(ValueError, match="CLKI, CLKFB, CLKOP or LOCK"):
        cell_models.ehxplll_model(PLL.replace("    output LOCK;\n", "    input LOCK;\n"))


DCCA = """
(* blackbox *)
module DCCA(CLKI, CE, CLKO);
    input CLKI;
    input CE;
    output CLKO;
endmodule
"""


def test_dcca_model_passes_its_input_and_refuses_a_gated_clock():
    model = cell_models.dcca_model(DCCA)
    assert "module DCCA(CLKI, CE, CLKO);" in model and "assign CLKO = CLKI;" in model
    assert "CE !== 1'b1" in model and "$fatal" in model
    with pytest.raises(ValueError, match="CLKI, CE"):
        cell_models.dcca_model(DCCA.replace("    input CE;\n", "    output CE;\n"))
