"""Generated Verilog (rtl/, made by `make rtl`): ports against the contract, reproducibility, no simulation logic
in the hardware top. Verilator's -Wall lint of every top is `make lint` (which `make test` runs first)."""

import json
import re

import pytest

from hw.generate import generate, tops
from hw.ports import parse_ports
from pimhil.contract import PRESETS, cmd_fields, refusal_fields, resp_fields
from tb.support.marks import sim_preset
from tb.support.runner import ROOT

RTL = ROOT / "rtl"
TOPS = {preset: (top, params, factory) for top, preset, params, factory in tops() if "bank_array" in top}


def by_preset(values):
    """Parameters from (value, preset) pairs: the sim preset's carry its marks (tb/support/marks.sim_preset;
    `make test` generates the board preset's tops only)."""
    return [sim_preset(v) if preset == "sim" else v for v, preset in values]


def expected_ports(params):
    """The top's ports as the contract implies them (not as the generator wrote them)."""
    return {
        ("clk", "input", 1), ("rst", "input", 1),
        ("cmd__payload", "input", sum(w for _, w in cmd_fields(params))),
        ("cmd__valid", "input", 1), ("cmd__ready", "output", 1),
        ("resp__payload", "output", sum(w for _, w in resp_fields(params))),
        ("resp__valid", "output", 1), ("resp__ready", "input", 1),
        ("refusal", "output", sum(w for _, w in refusal_fields())), ("refusal_valid", "output", 1),
        ("busy", "output", 1), ("mac_active", "output", 1), ("stall", "output", 1), ("cmd_err", "output", 8),
    }


@pytest.mark.parametrize("preset", by_preset((p, p) for p in sorted(PRESETS)))
def test_ports_match_contract_and_manifest(preset):
    top, params, _ = TOPS[preset]
    text = (RTL / f"{top}.v").read_text()
    assert text.startswith("// GENERATED FILE - DO NOT EDIT.")
    parsed = {(p["name"], p["direction"], p["width"]) for p in parse_ports(text, top)}
    assert parsed == expected_ports(params)
    manifest = json.loads((RTL / f"{top}.json").read_text())
    assert {(p["name"], p["direction"], p["width"]) for p in manifest["ports"]} == parsed
    assert manifest["params"] == params.as_dict()


@pytest.mark.parametrize("top", by_preset((t, p) for t, p, *_ in tops() if t.startswith("pim_device_")))
def test_device_ports_match_manifest(top):
    text = (RTL / f"{top}.v").read_text()
    parsed = {(p["name"], p["direction"], p["width"]) for p in parse_ports(text, top)}
    manifest = json.loads((RTL / f"{top}.json").read_text())
    assert {(p["name"], p["direction"], p["width"]) for p in manifest["ports"]} == parsed
    names = {p[0] for p in parsed}
    # The XDMA-facing ports carry the names cocotbext-axi and the Vivado block design expect.
    for sig in ("axil__awaddr", "axil__rdata", "axi__awlen", "axi__wlast", "axi__rlast", "uart_rx", "uart_tx"):
        assert sig in names


# The board preset's tops only. Whether generation is deterministic is a property of hw/generate.py and of
# Amaranth's backend, which are the same code for both presets; the sim preset's two tops took 158 s of
# `make soak-tests` to generate again (2026-12-04) and checked nothing the board's three do not. (Stale files
# cannot reach a test: `make` regenerates rtl/ whenever hw/ or the contract changes.)
@pytest.mark.parametrize("top", [t for t, p, *_ in tops() if p == "board"])
def test_generation_is_reproducible(top):
    _, preset, params, factory = next(t for t in tops() if t[0] == top)
    verilog, manifest = generate(top, preset, params, factory)
    assert verilog == (RTL / f"{top}.v").read_text(), f"rtl/{top}.v is stale or generation is not deterministic"
    assert manifest == (RTL / f"{top}.json").read_text()


SIM_ONLY = re.compile(r"\b(sb_\w*|ub_in\w*|ub_out\w*|uart_bypass|sim_bridge\w*|df_\w*|sim_dma\w*)")


def test_hardware_top_has_no_simulation_logic():
    """The hardware assembly's top (Device) has no simulation port, signal or block anywhere in its Verilog;
    the simulation assembly's top (SimDevice) of the same preset has exactly those ports more."""
    hw_text = (RTL / "pim_device_board_hw.v").read_text()
    assert not SIM_ONLY.search(hw_text), SIM_ONLY.search(hw_text)

    def ports(top):
        return {p["name"] for p in json.loads((RTL / f"{top}.json").read_text())["ports"]}

    extra = ports("pim_device_board") - ports("pim_device_board_hw")
    assert extra and all(SIM_ONLY.match(name) for name in extra), extra
    assert not ports("pim_device_board_hw") - ports("pim_device_board")


def test_strip_only_zero_initialisers():
    from hw.generate import strip_zero_memory_init

    zero = "  initial begin\n    mem[0] = 16'h0000;\n    mem[1] = 16'h0;\n  end\n"
    nonzero = "  initial begin\n    mem[0] = 16'h0000;\n    mem[1] = 16'h0001;\n  end\n"
    assert strip_zero_memory_init("a\n" + zero + "b\n") == "a\nb\n"
    assert strip_zero_memory_init(nonzero) == nonzero
