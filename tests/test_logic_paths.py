"""ci/logic_paths.py: estimated arrival times on small hand-made ECP5 netlists (Yosys JSON form)."""

import json

import pytest

from ci import logic_paths as lp


def _cell(kind, **ports):
    """ports: name -> (direction, [bits])."""
    return {"type": kind, "port_directions": {p: d for p, (d, _) in ports.items()},
            "connections": {p: bits for p, (_, bits) in ports.items()}}


def _ff(name_bits_q, d_bits, ce_bits=None):
    ports = {"CLK": ("input", [1]), "DI": ("input", d_bits), "Q": ("output", name_bits_q)}
    if ce_bits is not None:
        ports["CE"] = ("input", ce_bits)
    return _cell("TRELLIS_FF", **ports)


def _lut(a, z):
    return _cell("LUT4", A=("input", [a]), B=("input", ["0"]), C=("input", ["0"]), D=("input", ["0"]),
                 Z=("output", [z]))


def _netlist(cells):
    return {"modules": {"top": {"cells": cells, "netnames": {}}}}


def test_two_luts_between_registers():
    # q (bit 10) -> lut a (11) -> lut b (12) -> d of r; every net has one sink.
    cells = {"dev.src_TRELLIS_FF_Q": _ff([10], ["0"]), "dev.x_LUT4_Z": _lut(10, 11), "dev.y_LUT4_Z": _lut(11, 12),
             "dev.dst_TRELLIS_FF_Q": _ff([13], [12])}
    ends = lp.estimate(_netlist(cells))
    by_cell = {e.cell: e for e in ends}
    want = lp.CLK_TO_Q_NS + 3 * lp.route_ns(1) + 2 * lp.LUT4_NS
    assert by_cell["dev.dst_TRELLIS_FF_Q"].arrival_ns == pytest.approx(want, abs=0.01)
    assert by_cell["dev.dst_TRELLIS_FF_Q"].path == ["dev.src_TRELLIS_FF_Q", "dev.x_LUT4_Z", "dev.y_LUT4_Z"]
    # The source register's own input is tied to a constant: no arrival, so it is no endpoint.
    assert "dev.src_TRELLIS_FF_Q" not in by_cell


def test_longest_input_wins_and_fanout_costs_route():
    # q0 -> lut -> lut -> d;  q1 -> same last lut input B. q1's net also feeds three more registers.
    last = _cell("LUT4", A=("input", [21]), B=("input", [30]), C=("input", ["0"]), D=("input", ["0"]),
                 Z=("output", [22]))
    cells = {"a_TRELLIS_FF_Q": _ff([20], ["0"]), "mid_LUT4_Z": _lut(20, 21), "last_LUT4_Z": last,
             "b_TRELLIS_FF_Q": _ff([30], ["0"]), "d_TRELLIS_FF_Q": _ff([40], [22]),
             **{f"e{i}_TRELLIS_FF_Q": _ff([50 + i], [30]) for i in range(3)}}
    ends = {e.cell: e for e in lp.estimate(_netlist(cells))}
    via_a = lp.CLK_TO_Q_NS + 2 * lp.route_ns(1) + 2 * lp.LUT4_NS + lp.route_ns(1)
    via_b = lp.CLK_TO_Q_NS + lp.route_ns(4) + lp.LUT4_NS + lp.route_ns(1)
    assert ends["d_TRELLIS_FF_Q"].arrival_ns == pytest.approx(max(via_a, via_b), abs=0.01)
    assert ends["e0_TRELLIS_FF_Q"].arrival_ns == pytest.approx(lp.CLK_TO_Q_NS + lp.route_ns(4), abs=0.01)


def test_carry_chain_costs_per_cell_and_no_route_inside():
    # q -> CCU2C #0 (A0) -> COUT -> CIN #1 -> COUT -> CIN #2 -> S0 -> d (bit 1 is every register's clock).
    def ccu(a0, cin, s0, cout):
        return _cell("CCU2C", A0=("input", [a0] if a0 else ["0"]), CIN=("input", [cin] if cin else ["0"]),
                     S0=("output", [s0]), COUT=("output", [cout]))
    cells = {"q_TRELLIS_FF_Q": _ff([201], ["0"]), "c0": ccu(201, None, 100, 202), "c1": ccu(None, 202, 101, 203),
             "c2": ccu(None, 203, 204, 102), "d_TRELLIS_FF_Q": _ff([205], [204])}
    ends = {e.cell: e for e in lp.estimate(_netlist(cells))}
    want = (lp.CLK_TO_Q_NS + lp.route_ns(1) + lp.CARRY_IN_NS + lp.CARRY_CHAIN_NS + lp.CARRY_OUT_NS
            + lp.route_ns(1))
    assert ends["d_TRELLIS_FF_Q"].arrival_ns == pytest.approx(want, abs=0.01)


def test_grouping_by_register_scope():
    cells = {"dev.hub.a_TRELLIS_FF_Q": _ff([10], ["0"]), "dev.hub.a_TRELLIS_FF_Q_1": _ff([11], ["0"]),
             "l0_LUT4_Z": _lut(10, 12), "l1_LUT4_Z": _lut(11, 13),
             "dev.hub.b_TRELLIS_FF_Q": _ff([14], [12]), "dev.hub.b_TRELLIS_FF_Q_1": _ff([15], [13], ce_bits=[10])}
    ends = lp.estimate(_netlist(cells))
    groups = lp.group(ends, over_ns=1.0)
    assert [(s, t, n) for s, t, n, _ in groups] == [("dev.hub.a", "dev.hub.b", 3)]   # two DI, one CE
    assert lp.group(ends, over_ns=100.0) == []


def test_cli_reads_a_netlist_and_refuses_a_missing_one(tmp_path, capsys):
    cells = {"dev.src_TRELLIS_FF_Q": _ff([10], ["0"]), "dev.x_LUT4_Z": _lut(10, 11),
             "dev.dst_TRELLIS_FF_Q": _ff([13], [11])}
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_netlist(cells)))
    assert lp.main([str(path), "--over", "1", "--detail"]) == 0
    out = capsys.readouterr().out
    assert "dev.src  ->  dev.dst" in out and "LUT4" in out
    assert lp.main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_reconvergent_paths_are_not_taken_for_loops():
    # q -> lut b -> lut x; lut a reads b and x (b reaches a both directly and through x) -> d. While a's inputs
    # wait to be evaluated, x's input b is waiting too: that is not a combinational loop.
    a = _cell("LUT4", A=("input", [11]), B=("input", [12]), C=("input", ["0"]), D=("input", ["0"]),
              Z=("output", [13]))
    cells = {"q_TRELLIS_FF_Q": _ff([10], ["0"]), "b_LUT4_Z": _lut(10, 11), "x_LUT4_Z": _lut(11, 12),
             "a_LUT4_Z": a, "d_TRELLIS_FF_Q": _ff([14], [13])}
    ends = {e.cell: e for e in lp.estimate(_netlist(cells))}
    want = lp.CLK_TO_Q_NS + lp.route_ns(1) + lp.LUT4_NS + lp.route_ns(2) + lp.LUT4_NS + lp.route_ns(1) \
        + lp.LUT4_NS + lp.route_ns(1)
    assert ends["d_TRELLIS_FF_Q"].arrival_ns == pytest.approx(want, abs=0.01)
    assert ends["d_TRELLIS_FF_Q"].path == ["q_TRELLIS_FF_Q", "b_LUT4_Z", "x_LUT4_Z", "a_LUT4_Z"]


def test_a_combinational_loop_is_cut_not_followed():
    # two LUTs feeding each other, and a register reading one of them: the estimate ends.
    cells = {"l0_LUT4_Z": _lut(21, 20), "l1_LUT4_Z": _lut(20, 21), "d_TRELLIS_FF_Q": _ff([22], [20])}
    ends = {e.cell: e for e in lp.estimate(_netlist(cells))}
    assert ends["d_TRELLIS_FF_Q"].arrival_ns < 10


def test_nets_of_a_dsp_cost_a_long_route():
    # q -> MULT18X18D (A0 -> P0) -> d: both nets touch the DSP, so both cost at least HARD_ROUTE_NS.
    mult = _cell("MULT18X18D", A0=("input", [10]), B0=("input", ["0"]), P0=("output", [11]))
    cells = {"q_TRELLIS_FF_Q": _ff([10], ["0"]), "m": mult, "d_TRELLIS_FF_Q": _ff([12], [11])}
    ends = {e.cell: e for e in lp.estimate(_netlist(cells))}
    want = lp.CLK_TO_Q_NS + 2 * lp.HARD_ROUTE_NS + lp.MULT_NS
    assert lp.HARD_ROUTE_NS > lp.route_ns(1)
    assert ends["d_TRELLIS_FF_Q"].arrival_ns == pytest.approx(want, abs=0.01)


def test_cli_stops_quietly_when_its_reader_does(tmp_path):
    # `python -m ci.logic_paths top.json | head -1` is how the estimate is read; the reader closing the pipe
    # early is no error (it was a BrokenPipeError traceback per run).
    import subprocess
    import sys
    from pathlib import Path

    cells = {}
    for i in range(400):
        cells[f"dev.s{i}_TRELLIS_FF_Q"] = _ff([10 + 3 * i], ["0"])
        cells[f"dev.x{i}_LUT4_Z"] = _lut(10 + 3 * i, 11 + 3 * i)
        cells[f"dev.d{i}_TRELLIS_FF_Q"] = _ff([12 + 3 * i], [11 + 3 * i])
    path = tmp_path / "top.json"
    path.write_text(json.dumps(_netlist(cells)))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "ci.logic_paths", str(path), "--over", "0", "--top", "400",
                             "--detail"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert b"endpoints" in first and "BrokenPipeError" not in err and "Traceback" not in err
