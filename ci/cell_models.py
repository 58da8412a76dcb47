"""Simulation models of the ECP5 cells Yosys ships as blackboxes only, for the gate-level simulation (ci/netlist.py).

Each model is generated from the blackbox declaration in the YoWASP wheel's own files (its port list and
parameters, in their order), so it is port-exact for the Yosys the netlist came from, and models only the
configurations Yosys' ECP5 mapping instantiates; any other configuration is a `$fatal` at time 0, so a netlist the
model would simulate wrongly does not simulate at all.

- MULT18X18D (cells_bb_ecp5.v): the combinational multiplier of Yosys' DSP mapping (every REG_* "NONE").
- DP16KD (blackbox in cells_sim_ecp5.v): block RAM as brams_map_16kd.v instantiates it: the same width on both
  ports (x1, x2, x4, x9, x18 true dual port; x36 pseudo dual port, A writes, B reads), no output register, chip
  select decode 0b000, clock polarity as is, all INITVAL zero (Yosys' "rdinit zero"; this design has no ROM in
  block RAM). x18 takes byte enables on AD[1:0], x36 on port A's AD[3:0]. Read-during-write on a port follows its
  WRITEMODE (NORMAL: the output keeps its value; WRITETHROUGH: new data; READBEFOREWRITE: old data); a read on
  one port of a word the other port writes in the same cycle returns the old word. RST clears the output latch,
  at the clock edge (RESETMODE SYNC) or at once (ASYNC).
- TRELLIS_IO (common_sim.vh, included by cells_sim_ecp5.v): its pad B is an inout, which Verilator refuses to
  connect to a top-level input. TRELLIS_IO_IN and TRELLIS_IO_OUT are the same cell with B an input (O = B) or
  an output (B = I); ci/netlist.py renames each TRELLIS_IO cell after its DIR (nothing else changes). An output
  pad that is ever tristated (T high, which the board tops never do) stops the simulation; BIDIR is refused.
- LUT4 (common_sim.vh): Yosys' model selects INIT's bit through three levels of intermediate vectors; Verilator
  keeps each of them as a member variable of the model, four stores and loads per LUT and cycle for some 47,000
  LUT4 (those inside CCU2C included), which made the netlist simulate at ~1,700 cycles/s. `lut4_lookup` gives the
  same cell (ports, INIT) as one lookup, `Z = INIT[{D, C, B, A}]`: ~11,000 cycles/s on the ULX3S netlist.
  tb/netlist/test_cell_models.py proves it equal to the wheel's own LUT4 model for every INIT and input (Yosys'
  SAT solver on a miter of the two), so what simulates is still Yosys' cell, evaluated faster.
- EHXPLLL (cells_bb_ecp5.v): frequency synthesis is not simulated. CLKOP is CLKI (the testbench drives the
  device clock on the oscillator pin) and LOCK rises LOCK_CYCLES input cycles after time 0, so the board top's
  reset logic runs as on the board; CLKOP fed back (FEEDBK_PATH "CLKOP") is the only supported loop.
"""

from __future__ import annotations

import re

__all__ = ["DP16KD_WIDTHS", "LOCK_CYCLES", "LUT4_LOOKUP", "blackbox_ports", "dp16kd_model", "ehxplll_model",
           "lut4_lookup", "mult18x18d_model", "trellis_io_models", "without_module"]

LOCK_CYCLES = 16
DP16KD_WIDTHS = (1, 2, 4, 9, 18, 36)


def _module(text: str, name: str) -> re.Match:
    found = re.search(rf"^module {name}\s*\((.*?)\);(.*?)^endmodule", text, re.S | re.M)
    if found is None:
        raise ValueError(f"no {name} blackbox in the given text")
    return found


def blackbox_ports(text: str, name: str) -> tuple[list[str], set[str], set[str], list[tuple[str, str]]]:
    """(ports in header order, inputs, outputs, [(parameter, default)]) of module `name` in Verilog `text`;
    takes both header styles Yosys' files use (`module M(A, B); input A;` and `module M(input A, B, ...)`);
    an inout counts as both. Raises ValueError when the module is missing or a header port has no direction."""
    found = _module(text, name)
    header = re.sub(r"\(\*.*?\*\)", "", found.group(1))
    body = found.group(2)
    inputs, outputs, order = set(), set(), []
    for kind, names in re.findall(r"\b(input|output|inout)\b([^;()]*?)(?=\binput\b|\boutput\b|\binout\b|;|$)",
                                  header + ";" + body, re.S):
        for n in re.findall(r"[A-Za-z_]\w*", re.sub(r"\[[^\]]*\]|\b(wire|reg)\b", "", names)):
            if kind != "output":
                inputs.add(n)
            if kind != "input":
                outputs.add(n)
    for n in re.findall(r"[A-Za-z_]\w*", re.sub(r"\b(input|output|inout|wire|reg)\b|\[[^\]]*\]", "", header)):
        if n not in order:
            order.append(n)
    missing = [n for n in order if n not in inputs and n not in outputs]
    if missing:
        raise ValueError(f"{name}: ports without a direction: {missing[:5]}")
    params = re.findall(r"^\s*parameter\s+(?:\[[^\]]*\]\s*)?(\w+)\s*=\s*(.+?);", body, re.M)
    return order, inputs, outputs, params


def without_module(text: str, name: str) -> str:
    """`text` with module `name` (and the attribute line right before it) removed: Yosys' cells_sim_ecp5.v
    declares DP16KD as an empty blackbox, which Verilator would take as a RAM that reads zero."""
    out, n = re.subn(rf"(\(\*[^)]*\*\)\s*)?^module {name}\s*\(.*?^endmodule\s*", "", text, count=1,
                     flags=re.S | re.M)
    if not n:
        raise ValueError(f"no module {name} in the given text")
    return out


LUT4_LOOKUP = "\n".join([
    "// LUT4 as one lookup (ci/cell_models.py lut4_lookup): Yosys' LUT4 model, proven equal to it for every INIT",
    "// and input by tb/netlist/test_cell_models.py.",
    "module LUT4(input A, B, C, D, output Z);",
    "    parameter [15:0] INIT = 16'h0000;",
    "    assign Z = INIT[{D, C, B, A}];",
    "endmodule",
    "",
])


def lut4_lookup(common_text: str) -> str:
    """Yosys' common_sim.vh text with its LUT4 model replaced by LUT4_LOOKUP (same ports and parameter). Raises
    ValueError when the text's LUT4 has other ports or parameters than the lookup assumes (a Yosys whose cell
    changed: the proof in tb/netlist/test_cell_models.py would then be about another cell)."""
    order, inputs, outputs, params = blackbox_ports(common_text, "LUT4")
    if order != ["A", "B", "C", "D", "Z"] or outputs != {"Z"} or [p for p, _ in params] != ["INIT"]:
        raise ValueError(f"Yosys' LUT4 is not the cell LUT4_LOOKUP models: ports {order}, parameters {params}")
    found = _module(common_text, "LUT4")
    return common_text[:found.start()] + LUT4_LOOKUP.rstrip("\n") + common_text[found.end():]


def _bus(prefix: str, width: int) -> str:
    return "{" + ", ".join(f"{prefix}{i}" for i in reversed(range(width))) + "}"


def _header(name: str, order, inputs, outputs, params, what: str, source: str = "") -> list[str]:
    """The generated model's comment, module line, parameters and port directions; `source` names what it was
    generated from (default: Yosys' blackbox of `name`)."""
    source = source or f"Yosys' {name} blackbox"
    return [
        f"// Generated by ci/cell_models.py from {source}; do not edit.",
        f"// {what}",
        f"module {name}({', '.join(order)});",
        *(f"  parameter {n} = {v};" for n, v in params),
        *(f"  input {n};" for n in order if n in inputs),
        *(f"  output {n};" for n in order if n in outputs),
    ]


def mult18x18d_model(blackbox_text: str) -> str:
    """Verilog of a MULT18X18D model with the blackbox's ports and parameters (cells_bb_ecp5.v text):
    P = A x B, each operand signed when its SIGNEDx pin is high; only the combinational configuration Yosys'
    DSP mapping uses is modelled, anything else is a $fatal at time 0. Raises ValueError on a text without
    the cell or without its full operand and product buses."""
    order, inputs, outputs, params = blackbox_ports(blackbox_text, "MULT18X18D")
    if not {f"A{i}" for i in range(18)} <= inputs or not {f"P{i}" for i in range(36)} <= outputs:
        raise ValueError("the MULT18X18D blackbox lacks the A0..A17 inputs or P0..P35 outputs")
    reg_params = [n for n, _ in params if n.startswith("REG_") and n.endswith("_CLK")]
    return "\n".join([
        *_header("MULT18X18D", order, inputs, outputs, params,
                 "The combinational multiplier Yosys' DSP mapping instantiates; other configurations are refused."),
        f"  wire signed [18:0] a = {{SIGNEDA & A17, {_bus('A', 18)[1:]};",
        f"  wire signed [18:0] b = {{SIGNEDB & B17, {_bus('B', 18)[1:]};",
        "  wire signed [37:0] p = a * b;",
        f"  assign {_bus('P', 36)} = p[35:0];",
        "  assign SIGNEDP = SIGNEDA | SIGNEDB;",
        *(f"  assign {n} = 1'b0;" for n in order
          if n in outputs and not re.fullmatch(r"P\d+", n) and n != "SIGNEDP"),
        "  initial begin",
        *(f"    if ({n} != \"NONE\") $fatal(1, \"MULT18X18D model: {n} = %s is not modelled\", {n});"
          for n in reg_params),
        "    if (MULT_BYPASS != \"DISABLED\") $fatal(1, \"MULT18X18D model: MULT_BYPASS is not modelled\");",
        "  end",
        "endmodule",
        "",
    ])


def dp16kd_model(blackbox_text: str) -> str:
    """Verilog of a DP16KD model with the blackbox's ports and parameters (the blackbox in Yosys'
    cells_sim_ecp5.v), for the configurations in this module's docstring. Raises ValueError on a text without
    the cell or without its data, address and control pins."""
    order, inputs, outputs, params = blackbox_ports(blackbox_text, "DP16KD")
    need_in = {f"{p}{s}{i}" for p, n in (("DI", 18), ("AD", 14)) for s in "AB" for i in range(n)} | {
        f"{c}{s}" for c in ("CE", "OCE", "CLK", "WE", "RST") for s in "AB"} | {f"CS{s}{i}" for s in "AB"
                                                                                for i in range(3)}
    need_out = {f"DO{s}{i}" for s in "AB" for i in range(18)}
    if not need_in <= inputs or not need_out <= outputs:
        raise ValueError("the DP16KD blackbox lacks data, address or control pins")
    names = dict(params)
    for p in ("DATA_WIDTH_A", "DATA_WIDTH_B", "REGMODE_A", "REGMODE_B", "RESETMODE", "CSDECODE_A", "CSDECODE_B",
              "WRITEMODE_A", "WRITEMODE_B", "CLKAMUX", "CLKBMUX"):
        if p not in names:
            raise ValueError(f"the DP16KD blackbox has no parameter {p}")
    inits = [n for n, _ in params if n.startswith("INITVAL_")]
    widths = " && ".join(f"DATA_WIDTH_A != {w}" for w in DP16KD_WIDTHS)
    lines = _header("DP16KD", order, inputs, outputs, params,
                    "Block RAM as Yosys' brams_map_16kd.v uses it (ci/cell_models.py); other configurations "
                    "are refused.")
    lines += [
        f"  wire [17:0] dia = {_bus('DIA', 18)};",
        f"  wire [17:0] dib = {_bus('DIB', 18)};",
        f"  wire [13:0] ada = {_bus('ADA', 14)};",
        f"  wire [13:0] adb = {_bus('ADB', 14)};",
        "  wire sela = {CSA2, CSA1, CSA0} == 3'b000;",
        "  wire selb = {CSB2, CSB1, CSB0} == 3'b000;",
        "  localparam integer W = DATA_WIDTH_A;",
        # The word address: x1 AD[13:0], x2 AD[13:1], x4 AD[13:2], x9 AD[13:3], x18 AD[13:4],
        # x36 AD[13:5].
        "  localparam integer SHIFT = W == 1 ? 0 : W == 2 ? 1 : W == 4 ? 2 : W == 9 ? 3 : W == 18 ? 4 : 5;",
        "  localparam integer WORDS = 1 << (14 - SHIFT);",
        "  reg [35:0] mem [0:WORDS-1];",
        "  reg [17:0] qa = 18'd0;      // port A's read (x1..x18)",
        "  reg [35:0] qb = 36'd0;      // port B's read (x36: the whole word, on DOB:DOA)",
        f"  assign {_bus('DOA', 18)} = W == 36 ? qb[17:0] : qa;",
        f"  assign {_bus('DOB', 18)} = W == 36 ? qb[35:18] : qb[17:0];",
        "  wire [35:0] wmask = W == 36 ? 36'hFFFFFFFFF : W == 18 ? 36'h3FFFF : (36'd1 << W) - 36'd1;",
        # Byte enables (9-bit bytes) on the low address bits: x18 AD[1:0], x36 port A AD[3:0]; narrower widths
        # have one byte, written whenever WE is high.
        "  function automatic [35:0] bytes_of(input [13:0] ad);",
        "    bytes_of = W == 36 ? {{9{ad[3]}}, {9{ad[2]}}, {9{ad[1]}}, {9{ad[0]}}}",
        "             : W == 18 ? {18'd0, {9{ad[1]}}, {9{ad[0]}}} : wmask;",
        "  endfunction",
        "  wire [13:0] wa = ada >> SHIFT;",
        "  wire [13:0] wb = adb >> SHIFT;",
        "  wire [35:0] data_a = W == 36 ? {dib, dia} : {18'd0, dia} & wmask;",
        "  wire [35:0] data_b = {18'd0, dib} & wmask;",
        "  wire we_a = CEA && sela && WEA;",
        "  wire we_b = W != 36 && CEB && selb && WEB;",
        "  wire [35:0] be_a = bytes_of(ada);",
        "  wire [35:0] be_b = bytes_of(adb);",
        "  wire [35:0] new_a = (mem[wa] & ~be_a) | (data_a & be_a);",
        "  wire [35:0] new_b = (mem[wb] & ~be_b) | (data_b & be_b);",
        "  integer i;",
        "  initial begin",
        "    for (i = 0; i < WORDS; i = i + 1) mem[i] = 36'd0;",
        f"    if ({widths}) $fatal(1, \"DP16KD model: DATA_WIDTH_A = %0d is not a DP16KD width\", DATA_WIDTH_A);",
        "    if (DATA_WIDTH_B != DATA_WIDTH_A)",
        "      $fatal(1, \"DP16KD model: ports of different widths (%0d, %0d) are not modelled\", DATA_WIDTH_A,"
        " DATA_WIDTH_B);",
        *(f"    if ({p} != \"{v}\") $fatal(1, \"DP16KD model: {p} = %s is not modelled\", {p});"
          for p, v in (("REGMODE_A", "NOREG"), ("REGMODE_B", "NOREG"), ("CSDECODE_A", "0b000"),
                       ("CSDECODE_B", "0b000"), ("CLKAMUX", "CLKA"), ("CLKBMUX", "CLKB"))),
        "    if (RESETMODE != \"SYNC\" && RESETMODE != \"ASYNC\") $fatal(1, \"DP16KD model: RESETMODE = %s\","
        " RESETMODE);",
        *(f"    if ({n} != 320'd0) $fatal(1, \"DP16KD model: a non-zero {n} is not modelled\");" for n in inits),
        "  end",
        # Writes land after every read of the same edge (non-blocking), so a read of the word the other port
        # writes in that cycle returns the old word.
        "  always @(posedge CLKA) if (we_a) mem[wa] <= new_a;",
        "  always @(posedge CLKB) if (we_b) mem[wb] <= new_b;",
    ]
    reads = {
        # x36: port A only writes; its DOA pins carry the low half of port B's read.
        "A": "if (W != 36 && CEA && sela) begin if (!we_a || WRITEMODE_A == \"READBEFOREWRITE\") qa <= mem[wa][17:0];"
             " else if (WRITEMODE_A == \"WRITETHROUGH\") qa <= new_a[17:0]; end",
        "B": "if (CEB && selb) begin if (W == 36 || !we_b || WRITEMODE_B == \"READBEFOREWRITE\") qb <= mem[wb];"
             " else if (WRITEMODE_B == \"WRITETHROUGH\") qb <= new_b; end",
    }
    for port, q in (("A", "qa"), ("B", "qb")):
        lines += [
            f"  generate if (RESETMODE == \"ASYNC\") begin : g_async_{port.lower()}",
            f"    always @(posedge CLK{port} or posedge RST{port}) if (RST{port}) {q} <= 0; else {reads[port]}",
            f"  end else begin : g_sync_{port.lower()}",
            f"    always @(posedge CLK{port}) if (RST{port}) {q} <= 0; else {reads[port]}",
            "  end endgenerate",
        ]
    lines += ["endmodule", ""]
    return "\n".join(lines)


# EHXPLLL outputs other than CLKOP and LOCK that are not constant zero in the model.
_PLL_OUTPUTS = {"INTLOCK": "locked", "REFCLK": "CLKI"}
ZERO = "1'b0"


def ehxplll_model(blackbox_text: str) -> str:
    """Verilog of an EHXPLLL model with the blackbox's ports and parameters (cells_bb_ecp5.v text): CLKOP =
    CLKI, LOCK high from the LOCK_CYCLES-th CLKI edge; see the module docstring. Raises ValueError on a text
    without the cell or its clock pins."""
    order, inputs, outputs, params = blackbox_ports(blackbox_text, "EHXPLLL")
    if not {"CLKI", "CLKFB"} <= inputs or not {"CLKOP", "LOCK"} <= outputs:
        raise ValueError("the EHXPLLL blackbox lacks CLKI, CLKFB, CLKOP or LOCK")
    return "\n".join([
        *_header("EHXPLLL", order, inputs, outputs, params,
                 "CLKOP is CLKI and LOCK rises after a few cycles: no frequency synthesis (ci/cell_models.py)."),
        f"  reg [{max(LOCK_CYCLES.bit_length(), 1) - 1}:0] count = 0;",
        "  reg locked = 1'b0;",
        f"  always @(posedge CLKI) if (!locked) begin count <= count + 1'b1; locked <= count == {LOCK_CYCLES - 1};"
        " end",
        "  assign CLKOP = CLKI;",
        "  assign LOCK = locked;",
        *(f"  assign {n} = {_PLL_OUTPUTS.get(n, ZERO)};" for n in order
          if n in outputs and n not in ("CLKOP", "LOCK")),
        "  initial begin",
        "    if (FEEDBK_PATH != \"CLKOP\")",
        "      $fatal(1, \"EHXPLLL model: FEEDBK_PATH = %s is not modelled\", FEEDBK_PATH);",
        "    if (CLKOP_ENABLE != \"ENABLED\") $fatal(1, \"EHXPLLL model: CLKOP is disabled\");",
        "  end",
        "endmodule",
        "",
    ])


def dcca_model(blackbox_text: str) -> str:
    """Verilog of a DCCA model with the blackbox's ports (cells_bb_ecp5.v text): CLKO = CLKI while CE is high.
    The cell's glitch-free gating (CLKO stops low after CE falls) matters only for a clock that is stopped; the
    board tops use a DCCA to put a high-fanout net (the device reset) on the global network, with CE tied high,
    and the model refuses a CE that is ever low. Raises ValueError on a text without the cell or its pins."""
    order, inputs, outputs, params = blackbox_ports(blackbox_text, "DCCA")
    if set(order) != {"CLKI", "CE", "CLKO"} or inputs != {"CLKI", "CE"} or outputs != {"CLKO"}:
        raise ValueError("the DCCA blackbox does not have the pins CLKI, CE (inputs) and CLKO (output)")
    return "\n".join([
        *_header("DCCA", order, inputs, outputs, params,
                 "CLKO follows CLKI; CE must stay high (no clock gating modelled, ci/cell_models.py)."),
        "  assign CLKO = CLKI;",
        "  always @(CE) if (CE !== 1'b1) $fatal(1, \"DCCA model: CE low (clock gating is not modelled)\");",
        "endmodule",
        "",
    ])


def trellis_io_models(model_text: str) -> str:
    """Verilog of TRELLIS_IO_IN and TRELLIS_IO_OUT, TRELLIS_IO with the ports and parameters of Yosys' model
    (common_sim.vh text) and B's direction fixed: ci/netlist.py renames each TRELLIS_IO cell by its DIR. Raises
    ValueError on a text without the cell or its B, I, T, O pins."""
    order, inputs, outputs, params = blackbox_ports(model_text, "TRELLIS_IO")
    if set(order) != {"B", "I", "T", "O"} or "B" not in outputs or "O" not in outputs:
        raise ValueError("the TRELLIS_IO model does not have the pins B (inout), I, T, O")
    lines = []
    for kind, body in (
            ("IN", ["  assign O = B;"]),
            ("OUT", ["  assign B = I;", "  assign O = 1'b0;",
                     "  always @(T) if (T) $fatal(1, \"TRELLIS_IO_OUT model: a tristated pad is not modelled\");"])):
        # B, an inout in Yosys' model, as an input pad (IN) or an output pad (OUT).
        ins, outs = (inputs, outputs - {"B"}) if kind == "IN" else (inputs - {"B"}, outputs)
        lines += [
            *_header(f"TRELLIS_IO_{kind}", order, ins, outs, params,
                     f"TRELLIS_IO with B an {kind.lower()}put pad (no 'z' on a top-level input); no tristate.",
                     source="Yosys' TRELLIS_IO model"),
            f"  initial if (DIR != \"{kind}PUT\") $fatal(1, \"TRELLIS_IO_{kind} model: DIR = %s\", DIR);",
            *body,
            "endmodule",
        ]
    return "\n".join(lines) + "\n"
