"""The host package stands alone on a bench PC: numpy, ml_dtypes and pyserial, nothing from the dev tools."""

import subprocess
import sys
from pathlib import Path

HOST = Path(__file__).resolve().parents[1] / "host"
MODULES = ["pimhil.cli", "pimhil.device", "pimhil.layout", "pimhil.reference", "pimhil.sim_launch",
           "pimhil.transport.uart", "pimhil.transport.xdma", "pimhil.transport.sysfs", "pimhil.transport.sim_pcie",
           "pimhil.transport.golden", "pimhil.transport.cocotb_bridge"]


def test_driver_imports_no_development_tools():
    code = ("import sys; " + "; ".join(f"import {m}" for m in MODULES) +
            "; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('amaranth', 'cocotb', 'cocotbext', 'cocotb_tools', 'pyverilog', 'pytest', 'tb', 'hw')); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(HOST)}, cwd="/").stdout.strip()
    assert out == "[]", f"the host package pulled in {out}"


def test_declared_dependencies_are_the_bench_set():
    text = (HOST / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert sorted(d.strip().strip('"').split(">")[0] for d in deps.split(",")) == ["ml_dtypes", "numpy", "pyserial"]
    assert 'pimctl = "pimhil.cli:main"' in text


def test_pimctl_entry_runs_on_the_golden_model():
    out = subprocess.run([sys.executable, "-m", "pimhil.cli", "--target", "golden:board", "gemv", "--m", "8",
                          "--k", "64", "--json"], capture_output=True, text=True, env={"PYTHONPATH": str(HOST)},
                         cwd="/")
    assert out.returncode == 0, out.stderr
    assert '"bit_exact": true' in out.stdout
