"""RHS Research NiteFury II (XC7A200T-2FBG484, M.2 2280, PCIe Gen2 x4): the device behind an XDMA core.

Everything but the FPGA is shared with the LiteFury (`hw/boards/xdma.py`): 200 MHz oscillator -> MMCM ->
device clock, PCIe x4 on the M.2 edge (refclk F6/E6, PERST# J1, CLKREQ# G1), LEDs G3 H3 G4 H4.
"""

from .xdma import PRESET, FuryTop, fury_platform, vivado_overrides

__all__ = ["NAME", "PRESET", "FuryTop", "platform", "vivado_overrides"]

NAME = "nitefury"


def platform():
    """amaranth-boards' NiteFury II platform with the PCIe resource the XDMA core needs."""
    from amaranth_boards.nitefury import NitefuryIIPlatform

    return fury_platform(NitefuryIIPlatform)()
