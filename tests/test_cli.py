"""pimctl: JSON output, saved files, exit statuses (ok, mismatch, usage, driver error), error figures with
NaN and Inf outputs. Bad input and Ctrl-C: test_cli_bad_input.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pimhil import cli


def run(capsys, *args):
    status = cli.main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_gemv_json_has_the_promised_fields(capsys, tmp_path):
    save = tmp_path / "run.npz"
    status, out, _ = run(capsys, "--target", "golden:board", "gemv", "--m", "20", "--k", "70", "--seed", "3",
                         "--json", "--save", str(save))
    res = json.loads(out)
    assert status == 0 and res["bit_exact"] is True
    for key in ("bit_exact", "max_abs_err_vs_f64", "nonfinite", "cycles", "mac_utilization", "wall_s"):
        assert key in res
    assert 0 < res["max_abs_err_vs_f64"] < 1e-3
    assert res["nonfinite"] == {"nan": 0, "inf": 0, "class_mismatches": 0}
    z = np.load(save)
    assert z["w"].shape == (20, 70) and np.array_equal(z["y_bits"], z["y_golden_bits"])


def test_attention_human_output(capsys):
    status, out, _ = run(capsys, "--target", "golden:board", "attention", "--tokens", "16", "--dim", "4")
    assert status == 0 and "BIT-EXACT" in out


def test_mismatch_exits_1(capsys, monkeypatch):
    def wrong(w, x, p):
        return np.zeros(np.shape(w)[0], np.uint32) + 1
    monkeypatch.setattr(cli, "gemv_reference", wrong)
    status, out, _ = run(capsys, "--target", "golden:board", "gemv", "--m", "8", "--k", "16", "--json")
    assert status == cli.EXIT_MISMATCH and json.loads(out)["bit_exact"] is False


def test_unknown_target_is_a_usage_error(capsys):
    status, _, err = run(capsys, "--target", "carrier-pigeon", "probe")
    assert status == cli.EXIT_USAGE and "unknown target" in err


def test_shape_the_device_cannot_hold_is_a_usage_error(capsys):
    status, _, err = run(capsys, "--target", "golden:board", "attention", "--tokens", "6", "--dim", "4")
    assert status == cli.EXIT_USAGE and "tokens 6" in err


def test_link_timeout_exits_3_with_a_json_error(capsys):
    status, out, err = run(capsys, "--target", "uart:loop://", "--timeout", "0.2", "probe", "--json")
    assert status == cli.EXIT_ERROR
    assert json.loads(out)["error"] == "LinkTimeout" and "LinkTimeout" in err


@pytest.mark.parametrize("cmd", [["memtest", "--words", "256"], ["linktest", "--words", "64", "--rounds", "2"],
                                 ["regs", "MAGIC", "STATUS"], ["probe"]])
def test_other_subcommands_succeed(capsys, cmd):
    status, out, _ = run(capsys, "--target", "golden:board", *cmd, "--json")
    assert status == 0, out
    res = json.loads(out)
    assert res.get("ok", True) is True


def test_memtest_catches_a_bad_memory(capsys, monkeypatch):
    from pimhil.transport.golden import GoldenTransport

    read = GoldenTransport.read

    def flaky(self, addr, n):
        out = read(self, addr, n)
        return [w ^ 1 if i == 3 and n >= 32 else w for i, w in enumerate(out)]   # data, not registers
    monkeypatch.setattr(GoldenTransport, "read", flaky)
    status, out, _ = run(capsys, "--target", "golden:board", "memtest", "--words", "64", "--json")
    assert status == cli.EXIT_MISMATCH and json.loads(out)["ok"] is False


class _WithSpecials:
    """numpy's generator, except that the first matrix drawn (W) gets +Inf at [0, 0] and +Inf, -Inf in row 1:
    output 0 is +Inf and output 1 is NaN, on the device and in float64 alike."""

    def __init__(self, seed):
        self.g = np.random.default_rng(seed)

    def standard_normal(self, shape):
        a = self.g.standard_normal(shape)
        if np.ndim(a) == 2:
            a[0, 0] = a[1, 0] = np.inf
            a[1, 1] = -np.inf
        return a


def _strict(text):
    def refuse(name):
        raise AssertionError(f"{name} in pimctl's JSON")
    return json.loads(text, parse_constant=refuse)


def test_error_figures_survive_inf_and_nan_outputs(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_rng", _WithSpecials)
    status, out, err = run(capsys, "--target", "golden:board", "gemv", "--m", "8", "--k", "16", "--json")
    res = _strict(out)
    assert status == 0 and res["bit_exact"] is True and err == ""
    assert res["nonfinite"] == {"nan": 1, "inf": 1, "class_mismatches": 0}
    assert 0 < res["max_abs_err_vs_f64"] < 1e-3         # over the six finite outputs
    status, out, _ = run(capsys, "--target", "golden:board", "gemv", "--m", "8", "--k", "16")
    assert "max |error| vs float64 : nan" not in out
    assert "non-finite outputs     : 1 NaN, 1 Inf, 0 of another class than float64's" in out


def test_bench_summary_with_specials_is_strict_json(capsys, monkeypatch):
    monkeypatch.setattr(cli, "_rng", _WithSpecials)
    status, out, _ = run(capsys, "--target", "golden:board", "bench", "--m", "8", "--k", "16", "--tokens", "16",
                         "--dim", "8", "--json")
    res = _strict(out)
    # Attention gets Inf keys too: every output is NaN, on the device and in float64, so no error figure.
    assert status == 0 and res["all_bit_exact"] is True
    assert [r["nonfinite"]["nan"] for r in res["runs"]] == [1, 8]
    assert res["runs"][1]["max_abs_err_vs_f64"] is None


def test_error_stats_by_class():
    from pimhil.reference import error_stats
    inf, nan = np.inf, np.nan
    out = np.array([1.0, inf, nan, inf, -inf, 2.5, 7.0], np.float32)
    f64 = np.array([1.5, inf, nan, 3e38 * 2, inf, 2.0, nan])
    assert error_stats(out, f64) == {"max_abs_err_vs_f64": 0.5,
                                     "nonfinite": {"nan": 1, "inf": 3, "class_mismatches": 3}}
    assert error_stats([nan], [nan]) == {"max_abs_err_vs_f64": None,
                                         "nonfinite": {"nan": 1, "inf": 0, "class_mismatches": 0}}


def test_a_reader_that_left_is_no_traceback():
    r, w = os.pipe()
    os.close(r)     # every write to w now fails with EPIPE, as with `pimctl regs | head -1`
    try:
        p = subprocess.run([sys.executable, "-m", "pimhil.cli", "--target", "golden:board", "regs"], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "host")})
    finally:
        os.close(w)
    assert p.returncode == 0 and p.stderr == ""
