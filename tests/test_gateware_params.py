"""Gateware constructors refuse bad parameters with an error that names the value."""

import gc
import re
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable

from hw.activation import ActivationUnit
from hw.axi4 import AXI4Slave
from hw.bank_array import BankArray, cmd_layout
from hw.bank_pu import BankPU
from hw.burst_memory import BurstMemory
from hw.control_hub import ControlHub
from hw.device import Device
from hw.hub_csr import HubCSR
from hw.hub_responses import ResponseRouter
from hw.hub_windows import HubWindows
from hw.lane_reduce import LaneReduce
from hw.sequencer import Sequencer
from hw.sim_byte_bridge import SimByteBridge
from hw.sim_device import SimDevice
from hw.sim_dma_feeder import SimDmaFeeder
from hw.softmax_datapath import SoftmaxDatapath
from hw.stream_slice import StreamRegisterSlice
from pimhil.contract import IDENTITY_REGS, PRESETS, Reg

# The control hub's rooms, each built from the device parameters alone.
HUB_ROOMS = (HubCSR, HubWindows, ResponseRouter, Sequencer, SoftmaxDatapath)


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
    (lambda: AXI4Slave(data_width=32), ValueError, "data_width must be one of (64, 128, 256), not 32"),
    (lambda: AXI4Slave(data_width=128, burst_bits=256, wide_ranges=[(0, 0x100)]), ValueError,
     "burst_bits must divide data_width=128 (and be >= 64), not 256"),
    (lambda: AXI4Slave(data_width=256, burst_bits=64, wide_ranges=[(0x10, 0x100)]), ValueError,
     "wide range (0x10, 0x100) is not aligned to 32 bytes"),
    (lambda: SimDmaFeeder(data_width=512), ValueError, "data_width must be one of (64, 128, 256), not 512"),
    (lambda: SimDmaFeeder(chunk_beats=0), ValueError, "chunk_beats must be an int in [1, 256], not 0"),
    (lambda: SimDevice(params=PRESETS["board"], df_chunk_bytes=100), ValueError,
     "df_chunk_bytes must be a multiple of the AXI4 beat (16 bytes) up to 256 beats, not 100"),
    (lambda: ControlHub(params=PRESETS["board"], uart_default_div=3), ValueError,
     "uart_default_div must be an int in [4, 65535], not 3"),
    (lambda: HubCSR(params=PRESETS["board"], uart_default_div=1 << 16), ValueError,
     "uart_default_div must be an int in [4, 65535], not 65536"),
    (lambda: ResponseRouter(params=PRESETS["board"], depth=0), ValueError, "depth must be a positive int, not 0"),
    (lambda: StreamRegisterSlice(layout=32), TypeError, "layout must be an amaranth.lib.data.Layout, not 32"),
    *[(lambda room=room: room(params="board"), TypeError, "params must be a DeviceParams, not 'board'")
      for room in HUB_ROOMS],
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
        with pytest.raises(TypeError):
            StreamRegisterSlice(cmd_layout(PRESETS["board"]))
        for room in HUB_ROOMS:
            with pytest.raises(TypeError):
                room(PRESETS["board"])
        gc.collect()


def test_good_parameters_elaborate():
    from amaranth.hdl import Fragment

    Fragment.get(BankArray(params=PRESETS["board"]), None)   # the sim preset is elaborated by make rtl
    Fragment.get(ActivationUnit(), None)
    for room in HUB_ROOMS:     # the CSR file checks its register table against contract.Reg as it elaborates
        Fragment.get(room(params=PRESETS["board"]), None)


def test_csr_identity_registers_come_from_the_contract():
    p = PRESETS["board"]
    ident = HubCSR(params=p).identity()
    assert set(ident) == {Reg.MAGIC, Reg.VERSION} | {reg for reg, _ in IDENTITY_REGS}
    assert ident[Reg.BANKS] == p.banks and ident[Reg.CLK_HZ] == p.clk_hz

