"""Board tops for `make board BOARD=<name>`: one module per board, named for the board.

`BOARDS` maps each board name to its module and flow. The registry imports nothing vendor-specific, so
listing boards needs neither amaranth-boards nor any toolchain; `board_module(name)` imports the module.

- `ecp5` boards are built here end to end (Yosys, nextpnr-ecp5, ecppack from PyPI's YoWASP wheels).
- `vivado` boards get a complete Vivado build tree and a lint of the top against port-exact IP stubs;
  the bitstream is built where Vivado exists.
"""

import importlib
from dataclasses import dataclass

__all__ = ["BOARDS", "Board", "board_module", "names"]


@dataclass(frozen=True)
class Board:
    name: str
    module: str        # under hw.boards
    flow: str          # "ecp5" or "vivado"
    fpga: str
    description: str


BOARDS = {b.name: b for b in (
    Board("ulx3s-85f", "ulx3s_85f", "ecp5", "LFE5U-85F-6BG381",
          "Radiona ULX3S: device on the FT231X USB UART, EHXPLLL from 25 MHz"),
    Board("nitefury", "nitefury", "vivado", "XC7A200T-2FBG484",
          "RHS Research NiteFury II (M.2 PCIe x4): device behind an XDMA core"),
    Board("litefury", "litefury", "vivado", "XC7A100T-2FGG484",
          "RHS Research LiteFury (M.2 PCIe x4): device behind an XDMA core"),
)}


def names():
    return sorted(BOARDS)


def board_module(name):
    """The module of board `name` (ValueError naming the known boards otherwise)."""
    try:
        board = BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {names()}") from None
    return importlib.import_module(f"{__name__}.{board.module}")
