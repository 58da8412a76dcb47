"""pimctl refuses bad input before any work: exit 2, one line on stderr, a JSON error object under --json;
Ctrl-C exits 130 with one line and closes the target (stopping a sim server it started)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pimhil import cli
from pimhil.device import Device

SMOKE = str(Path(__file__).resolve().parents[1] / "campaigns" / "smoke.toml")
# (argv, checked before the target is opened, text the one-line message must contain)
BAD = [
    (["regs", "--write", "CONTROL=0x1ffffffff"], True, "32 bits"),
    (["regs", "--write", "CONTROL=-1"], True, "32 bits"),
    (["regs", "--write", "CONTROL=abc"], True, "not an integer"),
    (["regs", "--write", "CONTROL"], True, "NAME=VALUE"),
    (["regs", "--write", "=5"], True, "NAME=VALUE"),
    (["regs", "NOSUCHREG"], True, "no register named 'NOSUCHREG'"),
    (["regs", "--write", "NOPE=5"], True, "no register named 'NOPE'"),
    (["--timeout", "-1", "probe"], True, "--timeout"),
    (["--timeout", "0", "probe"], True, "--timeout"),
    (["--timeout", "nan", "probe"], True, "--timeout"),
    (["probe", "--timeout", "inf"], True, "--timeout"),
    (["--timeout", "1e300", "probe"], True, "at most"),
    (["--run-timeout", "0", "gemv"], True, "--run-timeout"),
    (["bench", "--repeat", "0"], True, "--repeat"),
    (["bench", "--m", "-3"], True, "--m"),
    (["gemv", "--w-scale", "nan"], True, "--w-scale"),
    (["gemv", "--w-scale", "inf"], True, "--w-scale"),
    (["gemv", "--w-scale", "-inf"], True, "--w-scale"),
    (["gemv", "--m", "0"], True, "--m"),
    (["gemv", "--k", "-1"], True, "--k"),
    (["gemv", "--m", "1.5"], True, "--m"),
    (["gemv", "--seed", "-1"], True, "--seed"),
    (["gemv", "--save", "{tmp}/no/such/dir/out.npz"], True, "cannot write"),
    (["gemv", "--save", "{tmp}"], True, "is a directory"),
    (["attention", "--save", "{tmp}/no/such/dir/out.npz"], True, "cannot write"),
    (["attention", "--tokens", "0"], True, "--tokens"),
    (["attention", "--dim", "x"], True, "--dim"),
    (["memtest", "--words", "0"], True, "--words"),
    (["memtest", "--seed", "-2"], True, "--seed"),
    (["linktest", "--rounds", "0"], True, "--rounds"),
    (["linktest", "--words", "-1"], True, "--words"),
    (["nosuchcmd"], True, "invalid choice"),
    ([], True, "required"),
    (["gemv", "--bogus"], True, "unrecognized"),
    (["--expect", "moon", "probe"], True, "--expect"),
    (["--target", "carrier-pigeon", "probe"], True, "unknown target"),
    (["--target", "golden:nopreset", "probe"], True, "unknown preset"),
    (["--target", "sim:nopreset", "probe"], True, "unknown preset"),    # no sim server is started
    (["--target", "pcie-sock:abc", "probe"], True, "port"),
    (["--target", "uart:", "probe"], True, "needs its argument"),
    (["--target", "xdma:", "probe"], True, "needs its argument"),
    (["--baud", "fast", "--target", "uart:/dev/null", "probe"], True, "--baud"),
    (["--baud", "0", "--target", "uart:/dev/null", "probe"], True, "--baud"),
    (["--baud", "-115200", "--target", "uart:/dev/null", "probe"], True, "--baud"),
    (["--baud", "3e6", "--target", "uart:/dev/null", "probe"], True, "--baud"),
    (["--baud", "3000000", "probe"], True, "only uart: and sim-phy"),                 # golden: no line
    (["--baud", "auto", "--target", "sim", "probe"], True, "only uart: and sim-phy"),  # no sim server started
    # Shapes against the identified device (golden, sim preset), before any data is made or loaded.
    (["gemv", "--m", "100000", "--k", "100000"], False, "K <= 32768"),
    (["gemv", "--m", "16", "--k", "40000"], False, "K <= 32768"),
    (["gemv", "--m", "300000", "--k", "1000"], False, "M <= 268435"),
    (["gemv", "--m", "100000", "--k", "100000", "--save", "{tmp}/out.npz"], False, "K <= 32768"),
    (["bench", "--k", "100000"], False, "K <= 32768"),
    (["attention", "--tokens", "6", "--dim", "16"], False, "tokens 6"),
    (["attention", "--tokens", "4096", "--dim", "2048"], False, "power of two"),
    (["attention", "--tokens", "24", "--dim", "16"], False, "multiple of banks"),
    (["attention", "--group", "0"], True, "--group"),
    (["attention", "--tokens", "16", "--dim", "5"], False, "multiple of lanes"),
    (["attention", "--tokens", "16", "--dim", "48"], False, "power of two"),
    (["bench", "--tokens", "100", "--dim", "16"], False, "tokens 100"),
    # campaign: spec, database, scale-out options and projection parameters, before any case runs
    (["campaign", "run", "{tmp}/nope.toml", "--db", "{tmp}/x.db"], True, "nope.toml"),
    (["campaign", "run", SMOKE, "--db", "{tmp}/no/dir/x.db"], True, "does not exist"),
    (["campaign", "run", SMOKE, "--db", "{tmp}/x.db", "--workers", "0"], True, "--workers"),
    (["campaign", "run", SMOKE, "--db", "{tmp}/x.db", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], True,
     "exclude"),
    (["campaign", "run", SMOKE, "--db", "{tmp}/x.db", "--scheduler", "127.0.0.1:8786"], True, "tcp://"),
    (["campaign", "run", SMOKE, "--db", "{tmp}/x.db", "--target", "carrier-pigeon"], True, "unknown target"),
    (["campaign", "run", SMOKE, "--db", "{tmp}/x.db", "--target", "sim", "--target", "golden"], True, "boards"),
    (["campaign", "run", SMOKE], True, "--db"),
    (["campaign", "status", "--db", "{tmp}/missing.db"], True, "no results database"),
    (["campaign", "report", "--db", "{tmp}/missing.db", "--out", "{tmp}/r"], True, "no results database"),
    (["campaign", "report", "--db", "{tmp}/missing.db", "--out", "{tmp}/r", "--aim-channels", "0"], True,
     "--aim-channels"),
    (["campaign", "report", "--db", "{tmp}/missing.db", "--out", "{tmp}/r", "--gpu-bw-tbs", "-1"], True,
     "--gpu-bw-tbs"),
    (["campaign"], True, "required"),
]


def _not_called(*args, **kw):
    raise AssertionError("pimctl started work on refused input")


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("argv,pure,needle", BAD, ids=[" ".join(b[0]) or "(none)" for b in BAD])
def test_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path, argv, pure, needle, as_json):
    if pure:
        monkeypatch.setattr(cli, "open_target", _not_called)
    monkeypatch.setattr(Device, "write_words", _not_called)
    monkeypatch.setattr(Device, "write_reg", _not_called)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + (["--json"] if as_json else [])
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status == cli.EXIT_USAGE
    assert "Traceback" not in out + err
    assert len(err.splitlines()) == 1 and err.startswith("pimctl: ") and needle in err, err
    if as_json:
        obj = json.loads(out)
        assert set(obj) == {"target", "command", "error", "message"} and obj["error"] == "UsageError"
        assert obj["message"] in err and len(out.splitlines()) == 1
    else:
        assert out == ""
    assert not (tmp_path / "out.npz").exists()      # the --save check leaves no file behind


def test_bad_input_in_a_fresh_process_has_no_traceback():
    host = Path(__file__).resolve().parents[1] / "host"
    p = subprocess.run([sys.executable, "-m", "pimhil.cli", "regs", "--write", "CONTROL=0x1ffffffff", "--json"],
                       capture_output=True, text=True, timeout=60, check=False,
                       env={**os.environ, "PYTHONPATH": str(host)})
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "32 bits" in p.stderr
    assert json.loads(p.stdout)["error"] == "UsageError"


def _interrupt(*args, **kw):
    raise KeyboardInterrupt


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch, as_json):
    monkeypatch.setattr(Device, "gemv", _interrupt)
    status = cli.main(["--target", "golden:board", "gemv", "--m", "8", "--k", "16"] + (["--json"] if as_json else []))
    out, err = capsys.readouterr()
    assert status == cli.EXIT_INTERRUPTED == 130
    assert err == "pimctl: interrupted\n" and "Traceback" not in out
    if as_json:
        assert json.loads(out)["error"] == "Interrupted"
    else:
        assert out == ""


def test_ctrl_c_while_parsing_or_opening_exits_130(capsys, monkeypatch):
    monkeypatch.setattr(cli, "open_target", _interrupt)
    assert cli.main(["probe"]) == 130
    assert capsys.readouterr().err == "pimctl: interrupted\n"


def test_ctrl_c_stops_the_sim_server_open_target_started(capsys, monkeypatch):
    """The path a sim target takes: open_target wraps the transport's close to stop its server, and pimctl's
    `with` runs it on KeyboardInterrupt. The server is a stand-in listening socket (no simulator)."""
    import pimhil.sim_launch

    listener = socket.create_server(("127.0.0.1", 0))
    stopped = []

    class FakeServer:
        def __init__(self, link, preset, **kw):
            self.host, self.port = listener.getsockname()

        def stop(self, timeout=10.0):
            stopped.append(timeout)

    monkeypatch.setattr(pimhil.sim_launch, "SimServer", FakeServer)
    monkeypatch.setattr(Device, "identify", _interrupt)
    try:
        status = cli.main(["--target", "sim:board", "probe"])
    finally:
        listener.close()
    assert status == 130 and stopped, "the sim server was not stopped"
    assert capsys.readouterr().err == "pimctl: interrupted\n"
