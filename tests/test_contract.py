"""The contract module: parameter validation, field packing, command checks."""

import subprocess
import sys

import pytest

from pimhil.contract import (PRESETS, Command, CommandError, DeviceParams, ErrorCode, Flag, Op, ParamError,
                             check_command, cmd_fields, pack_fields, preset, unpack_fields)

SIM = PRESETS["sim"]


def test_contract_imports_nothing_but_stdlib():
    code = ("import sys; import pimhil.contract; "
            "bad = [m for m in ('numpy', 'amaranth', 'cocotb', 'ml_dtypes', 'serial') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_sim_preset_is_one_aim_channel_with_room_for_a_2k_key_cache():
    assert (SIM.banks, SIM.lanes, SIM.gb_words) == (16, 16, 1024)
    assert SIM.banks * SIM.rows * SIM.row_words >= 2048 * 128


@pytest.mark.parametrize("field,value,needle", [
    ("banks", 3, "banks=3"), ("banks", 0, "banks=0"), ("lanes", 2, "lanes=2"), ("rows", 1 << 17, "rows=131072"),
    ("gb_words", 8, "gb_words=8"), ("accs", 6, "accs=6"), ("accs", 512, "accs=512"),
    ("bursts_per_row", 1.5, "bursts_per_row"), ("axi_data_bits", 32, "axi_data_bits=32 is not one of"),
])
def test_bad_params_name_the_value(field, value, needle):
    kw = SIM.as_dict()
    kw[field] = value
    with pytest.raises(ParamError, match=needle.replace("(", r"\(")):
        DeviceParams(**kw)


def test_presets_declare_their_dma_width():
    # One beat of the sim preset's AXI4 port is one burst; the board preset's is XDMA's 128 bits.
    assert SIM.axi_data_bits == SIM.burst_bits == 256
    assert preset("board").axi_data_bits == 128


def test_unknown_preset():
    with pytest.raises(ParamError, match="nope"):
        preset("nope")


def test_pack_roundtrip_and_overflow():
    layout = cmd_fields(SIM)
    v = {"op": 8, "flags": 3, "bank": 15, "acc": 31, "row": 63, "col": 7, "count": 64, "gb": 1, "imm": 0xDEADBEEF,
         "data": (1 << 255) | 5}
    assert unpack_fields(layout, pack_fields(layout, v)) == v
    with pytest.raises(ValueError, match="row=65536"):
        pack_fields(layout, {"row": 1 << 16})
    with pytest.raises(KeyError, match="bogus"):
        pack_fields(layout, {"bogus": 1})


def test_header_words_match_port_layout():
    c = Command(Op.MAC_ABK, flags=Flag.ZERO, bank=2, acc=5, row=9, col=3, count=17, gb=4, imm=0x12345678)
    words = c.header_words()
    port = c.port_word(SIM)
    assert port & ((1 << 128) - 1) == sum(w << (32 * i) for i, w in enumerate(words))
    assert words[0] == 0x05020208


@pytest.mark.parametrize("cmd,code", [
    (Command(0x77), ErrorCode.BAD_OPCODE),
    (Command(Op.EOC), ErrorCode.BAD_OPCODE),
    (Command(Op.RD_MAC, flags=Flag.ZERO), ErrorCode.BAD_FLAGS),
    (Command(Op.MAC_SBK, bank=16), ErrorCode.BAD_BANK),
    (Command(Op.WR_BIAS, bank=16), ErrorCode.BAD_BANK),
    (Command(Op.RD_GB, count=0), ErrorCode.BAD_COUNT),
    (Command(Op.MAC_ABK, row=64), ErrorCode.BAD_ROW),
    (Command(Op.MAC_ABK, col=60, count=5), ErrorCode.BAD_COL),
    (Command(Op.RD_GB, gb=60, count=5), ErrorCode.BAD_GB),
    (Command(Op.AF, acc=32), ErrorCode.BAD_ACC),
    (Command(Op.WR_AFLUT, imm=64), ErrorCode.BAD_LUT),
])
def test_check_command_codes(cmd, code):
    with pytest.raises(CommandError) as e:
        check_command(cmd, SIM)
    assert e.value.code == code
    assert code.name in str(e.value)


def test_valid_commands_pass():
    for c in [Command(Op.WR_BIAS, flags=Flag.ALL, bank=200), Command(Op.MAC_ABK, col=0, count=64, gb=0),
              Command(Op.MAC_SBK, flags=Flag.ZERO | Flag.READ | Flag.BF16, bank=15, acc=31, count=1),
              Command(Op.WR_AFLUT, imm=63), Command(Op.SYNC)]:
        check_command(c, SIM)
