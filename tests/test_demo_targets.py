"""ci/demo.py builds a model for each simulated target's preset and none for a board target."""

import importlib

import pytest


@pytest.mark.parametrize("uart_target, presets", [
    (None, ["board", "sim"]),                    # default: UART on the board preset, PCIe on the full channel
    ("sim", ["sim"]),
    ("sim:board", ["board", "sim"]),
    ("uart:/dev/ttyUSB0", ["sim"]),              # a real board: only the PCIe leg's model
    ("golden:board", ["sim"]),                   # in-process golden model: no sim server
    ("sim-phy:board", ["board", "sim"]),
])
def test_models_follow_the_targets(monkeypatch, uart_target, presets):
    if uart_target is None:
        monkeypatch.delenv("DEMO_UART_TARGET", raising=False)
    else:
        monkeypatch.setenv("DEMO_UART_TARGET", uart_target)
    demo = importlib.reload(importlib.import_module("ci.demo"))
    try:
        assert demo.presets() == presets
        assert {target for link, target, _ in demo.RUNS if link == "uart"} == {uart_target or "sim:board"}
    finally:
        monkeypatch.delenv("DEMO_UART_TARGET", raising=False)
        importlib.reload(demo)
