"""pimctl: JSON output, saved files, exit statuses (ok, mismatch, usage, driver error)."""

import json

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
    for key in ("bit_exact", "max_abs_err_vs_f64", "cycles", "mac_utilization", "wall_s"):
        assert key in res
    assert 0 < res["max_abs_err_vs_f64"] < 1e-3
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
