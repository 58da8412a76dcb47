"""Gateware constructors refuse bad parameters with an error that names the value."""

import gc
import re
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from hw.activation import ActivationUnit
from hw.bank_array import BankArray
from hw.bank_pu import BankPU
from hw.burst_memory import BurstMemory
from hw.device import Device
from hw.lane_reduce import LaneReduce
from hw.sim_byte_bridge import SimByteBridge
from hw.sim_device import SimDevice
from pimhil.contract import PRESETS


@pytest.mark.parametrize("make,err,needle", [
    (lambda: LaneReduce(lanes=3), ValueError, "lanes must be a power of two >= 2, not 3"),
    (lambda: LaneReduce(lanes="16"), ValueError, "'16'"),
    (lambda: BankPU(lanes=16, accs=0), ValueError, "accs must be a positive int, not 0"),
    (lambda: BankPU(lanes=12, accs=4), ValueError, "not 12"),
    (lambda: BurstMemory(lanes=16, depth=1), ValueError, "depth must be an int >= 2, not 1"),
    (lambda: BurstMemory(lanes=0, depth=8), ValueError, "lanes must be a positive int, not 0"),
    (lambda: BankArray(params={"banks": 16}), TypeError, "params must be a DeviceParams"),
    (lambda: SimDevice(params=PRESETS["board"], sb_width=0), ValueError, "sb_width must be an int in [1, 256], not 0"),
    (lambda: Device(params="board"), TypeError, "params must be a DeviceParams"),
    (lambda: SimByteBridge(width=0), ValueError, "width must be an int in [1, 256], not 0"),
])
def test_bad_parameters(make, err, needle):
    # A refused constructor leaves a half-built Elaboratable whose must-use check fires when it is collected;
    # it was never meant to be elaborated, so that warning is expected here and only here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(err, match=re.escape(needle)):
            make()
        gc.collect()


def test_parameters_are_keyword_only():
    # Refused constructors again: their half-built Elaboratables are collected here, not in a later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError):
            LaneReduce(16)
        with pytest.raises(TypeError):
            BankArray(PRESETS["sim"])
        gc.collect()


def test_good_parameters_elaborate():
    from amaranth.hdl import Fragment

    Fragment.get(BankArray(params=PRESETS["board"]), None)   # the sim preset is elaborated by make rtl
    Fragment.get(ActivationUnit(), None)


SIM_ONLY = re.compile(r"\b(sb_\w*|ub_in\w*|ub_out\w*|uart_bypass|sim_bridge\w*)")


def test_hardware_assembly_has_no_simulation_logic():
    """The hardware top (Device) has no simulation port and no simulation block anywhere in its Verilog; the
    simulation assembly (SimDevice) adds exactly those."""
    from amaranth.back import verilog

    hw_text = verilog.convert(Device(params=PRESETS["board"]), name="hw_top", emit_src=False)
    assert not SIM_ONLY.search(hw_text), SIM_ONLY.search(hw_text)
    sim = SimDevice(params=PRESETS["board"])
    extra = set(sim.signature.members) - set(Device(params=PRESETS["board"]).signature.members)
    assert extra and all(SIM_ONLY.fullmatch(name) or name == "sb_select" for name in extra), extra
