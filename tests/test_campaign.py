"""`pimctl campaign`: specs, runs into SQLite (resume after kill -9, failures recorded), status, report,
projection and the Dask scale-out, on the golden target with small shapes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from pimhil import cli
from pimhil.campaign import SpecError, load_spec, parse_spec
from pimhil.projection import Silicon, project

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "campaigns"

TINY = """
name = "tiny"
distributions = ["normal", "edge"]
seeds = [1, 2]

[model]
name = "tiny-model"
layers = 2
kv_heads = 2

[[gemv]]
name = "g"
m = 40
k = 100

[[attention]]
name = "a"
tokens = 32
dim = 16
group = 2
"""


def _spec(tmp_path, text=TINY, name="spec.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _main(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def _rows(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT key, status, result, finished FROM cases ORDER BY key").fetchall()


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_parse(path):
    spec = load_spec(str(path))
    assert spec.cases and len({c.key for c in spec.cases}) == len(spec.cases)


def test_llama_specs_have_the_real_per_layer_shapes():
    for name, h, f, layers in (("llama3-8b-decode", 4096, 14336, 32), ("llama3-70b-decode", 8192, 28672, 80)):
        raw = load_spec(str(SPECS / f"{name}.toml")).raw
        shapes = {g["name"]: (g["m"], g["k"]) for g in raw["gemv"]}
        assert shapes == {"q_proj": (h, h), "k_proj": (1024, h), "v_proj": (1024, h), "o_proj": (h, h),
                          "gate_proj": (f, h), "up_proj": (f, h), "down_proj": (h, f)}
        (att,) = raw["attention"]
        assert (att["tokens"], att["dim"], att["batch"]) == (2048, 128, 8)
        assert att["group"] == raw["model"]["query_heads"] // raw["model"]["kv_heads"]
        assert raw["model"]["layers"] == layers


@pytest.mark.parametrize("text,needle", [
    ("name = 1\n[[gemv]]\nname='g'\nm=1\nk=1\n", "`name`"),
    ("name = 'x'\n", "no cases"),
    ("name = 'x'\ndistributions = ['cauchy']\n[[gemv]]\nname='g'\nm=1\nk=1\n", "distributions"),
    ("name = 'x'\n[[gemv]]\nname='g'\nm=0\nk=1\n", "m must be"),
    ("name = 'x'\n[[attention]]\nname='a'\ntokens=16\ndim=16\ngroup=0\n", "group must be"),
    ("name = 'x'\n[[gemv]]\nname='g'\nm=1\nk=1\n[[gemv]]\nname='g'\nm=2\nk=1\n", "unique"),
    ("name = 'x'\nseeds = [-1]\n[[gemv]]\nname='g'\nm=1\nk=1\n", "seeds"),
    ("name = 'x'\n[[gemv]]\nname='g'\nm=1\nk=1\n[targets.sim]\nmode='fast'\n", "mode"),
    ("name = 'x\n", "not valid TOML"),
])
def test_bad_specs_are_one_line_usage_errors(capsys, tmp_path, text, needle):
    with pytest.raises(SpecError, match=needle):
        load_spec(_spec(tmp_path, text))
    status, out, err = _main(capsys, "campaign", "run", _spec(tmp_path, text), "--db", str(tmp_path / "x.db"))
    assert status == 2 and len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "x.db").exists()


def test_run_status_rerun_and_report(capsys, tmp_path):
    spec, db, out_dir = _spec(tmp_path), str(tmp_path / "r.db"), tmp_path / "rep"
    status, out, err = _main(capsys, "campaign", "run", spec, "--db", db, "--json")
    res = json.loads(out)
    assert status == 0 and res["done"] == 8 and res["failed"] == res["mismatch"] == 0
    rows = _rows(db)
    assert len(rows) == 8 and all(st == "done" for _, st, _, _ in rows)
    for key, _, result, _ in rows:
        r = json.loads(result)
        assert r["bit_exact"] and r["mismatches"] == 0
        assert r["rel_rms_err_f64"] is not None and r["max_abs_err_gpu"] is not None
        if key.startswith("gemv:") and ":normal:" in key:
            # FP32 accumulation's error on BF16 inputs: inside numerics.md §4's bound, and not zero
            assert 0 < r["max_err_bound_units"] <= 1 and 1e-9 < r["rel_rms_err_f64"] < 1e-5
    # the same command again: nothing is run twice, nothing lost
    status, out, _ = _main(capsys, "campaign", "run", spec, "--db", db, "--json")
    assert status == 0 and json.loads(out)["skipped"] == 8 and json.loads(out)["done"] == 0
    assert _rows(db) == rows
    status, out, _ = _main(capsys, "campaign", "status", "--db", db, "--json")
    assert json.loads(out)["status"] == [{"campaign": "tiny", "target": "golden", "total": 8, "done": 8,
                                          "mismatch": 0, "failed": 0, "remaining": 0}]
    status, out, _ = _main(capsys, "campaign", "report", "--db", db, "--out", str(out_dir), "--json")
    rep = json.loads(out)
    assert status == 0 and rep["verdicts"] == {"pass": 8}
    index = (out_dir / "index.html").read_text()
    for png, _ in rep["plots"]:
        assert (out_dir / png).stat().st_size > 1000 and f"src='{png}'" in index
    assert {"error_by_shape.png", "pim_vs_gpu.png"} <= {p for p, _ in rep["plots"]}
    assert "Assumptions" in index and "tiny-model" in index
    suite = ET.parse(out_dir / "junit.xml").getroot()
    assert len(suite.findall(".//testcase")) == 8 and not suite.findall(".//failure")
    assert len((out_dir / "cases.csv").read_text().splitlines()) == 9


def test_a_failing_case_is_recorded_and_the_run_goes_on(capsys, tmp_path, monkeypatch):
    from pimhil import campaign
    spec = _spec(tmp_path, TINY.replace("tokens = 32", "tokens = 24"))
    real = campaign.run_case

    def flaky(device, case, mode):
        if case.key == "gemv:g:edge:s2:r0":
            from pimhil.errors import DeviceTimeout
            raise DeviceTimeout("commands not complete after 1 s")
        return real(device, case, mode)
    monkeypatch.setattr(campaign, "run_case", flaky)
    db = str(tmp_path / "f.db")
    status, out, _ = _main(capsys, "campaign", "run", spec, "--db", db, "--json")
    res = json.loads(out)
    assert status == 1 and res["done"] == 3 and res["failed"] == 5
    rows = {k: (st, json.loads(r) if r else None) for k, st, r, _ in _rows(db)}
    assert rows["gemv:g:edge:s2:r0"][0] == "failed"
    with sqlite3.connect(db) as c:
        errors = dict(c.execute("SELECT key, error FROM cases WHERE status='failed'").fetchall())
    assert "DeviceTimeout" in errors["gemv:g:edge:s2:r0"]
    assert all("does not fit" in e for k, e in errors.items() if k.startswith("attention"))


def test_kill_9_mid_run_then_rerun_finishes_every_case_exactly_once(tmp_path):
    """A real pimctl process is SIGKILLed after some cases are in the database; the same command again
    finishes the rest, and the cases done before the kill are neither lost nor run again."""
    text = TINY.replace("seeds = [1, 2]", "seeds = [1, 2, 3, 4, 5, 6]").replace("m = 40\nk = 100", "m = 256\nk = 3000")
    spec, db = _spec(tmp_path, text), str(tmp_path / "k.db")
    cmd = [sys.executable, "-m", "pimhil.cli", "campaign", "run", spec, "--db", db, "--json"]
    # numpy golden path: a fresh clone's first numba compile must not eat the time before the kill
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'host'}", "PIMHIL_GOLDEN_IMPL": "numpy"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        before = []
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(db):
                try:
                    before = _rows(db)
                except sqlite3.OperationalError:
                    before = []
                if len(before) >= 3:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: make the spec longer"
    total = len(parse_spec(__import__("tomllib").loads(text)).cases)
    killed = _rows(db)
    assert 3 <= len(killed) < total
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert res["skipped"] == len(killed) and res["done"] == total - len(killed)
    after = _rows(db)
    assert len(after) == total == len({k for k, *_ in after})
    assert set(killed) <= set(after)           # the rows finished before the kill are untouched
    assert all(st == "done" for _, st, _, _ in after)


def test_projection_arithmetic_and_assumptions():
    raw = parse_spec(__import__("tomllib").loads(TINY)).raw
    s = Silicon(aim_channels=4, aim_banks=2, aim_lanes=8, aim_clock_ghz=0.5, aim_ext_gbs=10.0, gpu_bw_tbs=1.0,
                gpu_tflops=100.0)
    p = project(raw, {"g": 0.5}, s, batches=(1, 8))
    # GEMV 40 x 100 at utilisation 0.5: 5 rows per bank (40 rows, 4*2 banks) of 13 bursts (100 / 8 lanes)
    # at 0.5 GHz; x to the GB, results back
    g = 5 * 13 / 0.5 / 0.5e9 + (2 * 100 + 4 * 40 / 4) / 10e9
    # attention: 2 T d MACs per query head, kv_heads=2 x group 2 heads, on min(4, 2) channels, util 0.5 (mean)
    a = 2 * 32 * 16 * 4 / (2 * 2 * 8 * 0.5e9 * 0.5)
    assert p["rows"][0]["aim_layer_s"] == pytest.approx(g + a)
    assert p["rows"][0]["aim_tokens_s"] == pytest.approx(1 / ((g + a) * 2))
    gpu1 = 2 * 40 * 100 / 1e12 + 2 * 2 * 32 * 16 * 2 / 1e12
    assert p["rows"][0]["gpu_layer_s"] == pytest.approx(gpu1)
    assert p["rows"][1]["batch"] == 8 and p["rows"][1]["gpu_tokens_s"] > p["rows"][0]["gpu_tokens_s"]
    text = " ".join(p["assumptions"])
    assert "4 channels x 2 banks x 8 BF16 lanes at 0.5 GHz" in text and "1.0 TB/s" in text and "g 0.500" in text
    assert f"take {2 * 40 * 100 * 2 / 1e9:.1f} GB" in text and "Capacity is not modelled" in text


def test_report_without_matplotlib_names_the_extra(capsys, tmp_path, monkeypatch):
    spec, db = _spec(tmp_path, TINY.replace("seeds = [1, 2]", "seeds = [1]")), str(tmp_path / "m.db")
    assert _main(capsys, "campaign", "run", spec, "--db", db)[0] == 0
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = _main(capsys, "campaign", "report", "--db", db, "--out", str(tmp_path / "r"))
    assert status == 2 and len(err.splitlines()) == 1 and "campaign` extra" in err


def test_dask_local_cluster_gives_the_serial_results(capsys, tmp_path):
    pytest.importorskip("distributed")
    spec = _spec(tmp_path)
    serial, par = str(tmp_path / "s.db"), str(tmp_path / "p.db")
    assert _main(capsys, "campaign", "run", spec, "--db", serial)[0] == 0
    status, out, _ = _main(capsys, "campaign", "run", spec, "--db", par, "--workers", "2", "--json")
    assert status == 0 and json.loads(out)["done"] == 8

    def strip(rows):
        return [(k, st, {f: v for f, v in json.loads(r).items() if f != "wall_s"}) for k, st, r, _ in rows]
    assert strip(_rows(par)) == strip(_rows(serial))


def test_base_install_runs_campaigns_without_the_extras(tmp_path):
    """Without numba, matplotlib and dask (blocked), `campaign run` and `status` work (numpy golden path), and
    --workers stops with one line naming the extra; importing the CLI pulls in none of them."""
    spec, db = _spec(tmp_path, TINY.replace("seeds = [1, 2]", "seeds = [1]")), str(tmp_path / "b.db")
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in ('numba', 'matplotlib', 'dask', 'distributed')]; "
            "from pimhil import cli; "
            "assert not any(m in sys.modules and sys.modules[m] for m in ('numba', 'matplotlib', 'distributed')); "
            "sys.exit(cli.main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
    run = subprocess.run([sys.executable, "-c", code, "campaign", "run", spec, "--db", db, "--json"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and json.loads(run.stdout)["done"] == 4, run.stderr
    w = subprocess.run([sys.executable, "-c", code, "campaign", "run", spec, "--db", db, "--workers", "2"], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert w.returncode == 2 and len(w.stderr.splitlines()) == 1 and "campaign` extra" in w.stderr, w.stderr


def test_a_sample_of_rows_is_those_rows_of_the_whole_matrix():
    from pimhil.campaign import _sample_rows, make_matrix
    for dist in ("normal", "uniform", "llm", "edge"):
        whole = make_matrix([1, 0, 42], 100, 24, dist)
        rows = _sample_rows(100, 40, 16)
        assert 0 < len(rows) < 100
        assert np.array_equal(make_matrix([1, 0, 42], 100, 24, dist, rows), whole[rows])
    assert not np.array_equal(make_matrix([2, 0, 42], 100, 24, "normal"), whole if dist == "normal" else
                              make_matrix([1, 0, 42], 100, 24, "normal"))
