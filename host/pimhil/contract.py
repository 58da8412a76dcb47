"""The device contract: the one place where parameters, opcodes, field layouts and numeric constants live.

Gateware (hw/), testbenches (tb/) and the host driver all import this module, so it depends on the
standard library only. Nothing declared here may be typed again elsewhere: derive it from here.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, fields

__all__ = [
    "CONTRACT_VERSION", "MAGIC", "AXI_DATA_BITS", "DeviceParams", "PRESETS", "preset",
    "Op", "Flag", "ErrorCode", "ARRAY_OPS", "COUNTED_OPS", "SINGLE_BANK_OPS",
    "Command", "CommandError", "ParamError",
    "cmd_fields", "resp_fields", "refusal_fields", "pack_fields", "unpack_fields",
    "BF16_EXP_BIAS", "BF16_MANT_BITS", "FP32_EXP_BIAS", "FP32_MANT_BITS", "LANE_GUARD_BITS",
    "FP32_QNAN", "BF16_QNAN", "AF_SEGMENTS", "AF_DOMAIN_LOG2",
    "HubOp", "HUB_FIELDS", "Reg", "HubError", "Window", "windows", "bank_stride", "bank_address",
    "payload_words", "CMD_HEADER", "IDENTITY_REGS", "LINK_COUNTERS", "CSR_BYTES", "CMDQ_BYTES", "PAYLOAD_OPS",
    "Frame", "FrameCmd", "FrameStatus", "CSR_BASE", "CMDQ_BASE", "SCRATCH_BASE", "GB_BASE",
    "BANK_BASE", "STATUS_BUSY", "STATUS_ERROR", "STATUS_QUEUE_EMPTY", "STATUS_DONE", "STATUS_PARTIAL",
    "WRITABLE_REGS", "WRITE_ONLY_REGS", "UART_RESET_BAUD", "UART_MIN_DIV", "UART_CONFIRM_MS", "UART_BREAK_BITS",
    "uart_reset_div", "uart_confirm_cycles",
    "CONTROL_CLEAR_ERROR", "CONTROL_CLEAR_COUNTERS", "CONTROL_ABORT", "check_command",
    "EXP2_SEGMENTS", "EXP2_FRAC_BITS", "EXP2_TABLE",
    "RECIP_SEGMENTS", "RECIP_TABLE", "RECIP_NEWTON_STEPS", "LOG2E_F32",
    "gemv_tile_problem", "attn_tile_problem",
]

CONTRACT_VERSION = 1
MAGIC = 0x50494D31  # "PIM1" in ASCII, read back by the host to recognise the device


class ParamError(ValueError):
    """A device parameter set that cannot be built."""


class CommandError(ValueError):
    """A command that the device would refuse; carries the device's error code."""

    def __init__(self, code: "ErrorCode", message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code


# ---------------------------------------------------------------------------------------------------------
# Numeric format (docs/numerics.md is the prose version; these are the constants both sides use)
# ---------------------------------------------------------------------------------------------------------
BF16_EXP_BIAS = 127
BF16_MANT_BITS = 7
FP32_EXP_BIAS = 127
FP32_MANT_BITS = 23
# Guard bits kept below a full product significand when lanes are aligned to the largest exponent.
LANE_GUARD_BITS = 8
FP32_QNAN = 0x7FC00000
BF16_QNAN = 0x7FC0
# Activation LUT: AF_SEGMENTS linear segments uniformly covering [-2**AF_DOMAIN_LOG2, 2**AF_DOMAIN_LOG2).
AF_SEGMENTS = 64
AF_DOMAIN_LOG2 = 3

# Command field widths (bits). The first four 32-bit words of a host command are exactly these fields.
CMD_HEADER = (
    ("op", 8), ("flags", 8), ("bank", 8), ("acc", 8),
    ("row", 16), ("col", 16),
    ("count", 16), ("gb", 16),
    ("imm", 32),
)
CMD_HEADER_WORDS = 4


def _is_pow2(v: int) -> bool:
    return v > 0 and (v & (v - 1)) == 0


# XDMA's AXI memory-mapped widths (PG195) the device's AXI4 port can take: 64, 128 or 256 bits.
AXI_DATA_BITS = (64, 128, 256)


@dataclass(frozen=True)
class DeviceParams:
    """Shape of one PIM channel.

    banks: banks B, each with its own processing unit.
    lanes: BF16 lanes L per bank; one column burst is L BF16 words.
    rows: rows per bank.
    bursts_per_row: column bursts per row (a row holds bursts_per_row * lanes BF16 words).
    gb_words: global-buffer size in BF16 words (a multiple of lanes).
    accs: FP32 accumulators per bank.
    scratch_words: control-hub scratch memory, 32-bit words (tile outputs, read-backs, EW operands).
    score_words: attention score buffer, FP32 words: the most tokens one ATTN_TILE handles.
    cmdq_words: command-queue depth in 32-bit words.
    clk_hz: the device clock the identity registers report, Hz.
    axi_data_bits: data width of the AXI4 (DMA) port, bits: as wide as the XDMA core that drives it.
    """

    banks: int
    lanes: int
    rows: int
    bursts_per_row: int
    gb_words: int
    accs: int
    scratch_words: int = 4096
    score_words: int = 2048
    cmdq_words: int = 1024
    clk_hz: int = 100_000_000
    axi_data_bits: int = 256

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ParamError(f"{f.name} must be an int, not {v!r}")
        checks = [
            ("banks", self.banks, 1, 1 << 8),   # bank field is 8 bits
            ("lanes", self.lanes, 4, 64),     # >= 4: WR_AFLUT carries 64 bits of data in one burst
            ("rows", self.rows, 1, 1 << 16),    # row field is 16 bits
            ("bursts_per_row", self.bursts_per_row, 1, 1 << 16),
            ("gb_words", self.gb_words, self.lanes, self.lanes << 16),
            ("accs", self.accs, 1, 1 << 8),     # acc field is 8 bits
            ("scratch_words", self.scratch_words, 64, 1 << 16),   # addressed by 16-bit fields
            ("score_words", self.score_words, self.banks, 1 << 16),
            ("cmdq_words", self.cmdq_words, 16, 1 << 16),
        ]
        for name, v, lo, hi in checks:
            if not lo <= v <= hi:
                raise ParamError(f"{name}={v} is out of range [{lo}, {hi}]")
            if not _is_pow2(v):
                raise ParamError(f"{name}={v} must be a power of two")
        if not 1_000_000 <= self.clk_hz <= 1_000_000_000:
            raise ParamError(f"clk_hz={self.clk_hz} is out of range [1 MHz, 1 GHz]")
        if self.axi_data_bits not in AXI_DATA_BITS:
            raise ParamError(f"axi_data_bits={self.axi_data_bits} is not one of {AXI_DATA_BITS}")
        if self.gb_words % self.lanes:
            raise ParamError(f"gb_words={self.gb_words} is not a multiple of lanes={self.lanes}")
        if self.banks < self.lanes:
            # The hub turns rows of B attention probabilities into GB bursts of L words.
            raise ParamError(f"banks={self.banks} must be at least lanes={self.lanes}")

    # Derived sizes ------------------------------------------------------------------------------------
    @property
    def row_words(self) -> int:
        return self.bursts_per_row * self.lanes

    @property
    def gb_bursts(self) -> int:
        return self.gb_words // self.lanes

    @property
    def bank_bursts(self) -> int:
        return self.rows * self.bursts_per_row

    @property
    def burst_bits(self) -> int:
        return self.lanes * 16

    @property
    def resp_data_bits(self) -> int:
        """A response beat carries one burst or one FP32 result per bank, whichever is wider."""
        return max(self.burst_bits, self.banks * 32)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PRESETS = {
    # One full AiM channel: 16 banks x 16 lanes, 1024-word GB, 64 rows of 1024 words per bank (128 KiB/bank).
    # 256-bit AXI4 (XDMA's widest): one beat is one 16-lane burst.
    "sim": DeviceParams(banks=16, lanes=16, rows=64, bursts_per_row=64, gb_words=1024, accs=32,
                        axi_data_bits=256),
    # Reduced so that the datapath fits an ECP5-85F with room for the hub and links (49 % of its LUTs).
    # 75 MHz: below the ULX3S build's fmax (79.41 MHz built for 75 with nextpnr seed 2, docs/bringup.md), exact
    # from the 25 MHz oscillator (EHXPLLL 25 / 1 x 3 / 8, VCO 600 MHz) and the 200 MHz one (MMCM 200 / 8 x 39 /
    # 13, VCO 975 MHz); 3 Mbaud is divisor 25 exactly.
    "board": DeviceParams(banks=4, lanes=4, rows=64, bursts_per_row=64, gb_words=256, accs=8,
                          scratch_words=1024, score_words=512, cmdq_words=256, clk_hz=75_000_000,
                          axi_data_bits=128),     # the width hw/boards/xdma.py configures XDMA with
}


def preset(name: str) -> DeviceParams:
    try:
        return PRESETS[name]
    except KeyError:
        raise ParamError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


# ---------------------------------------------------------------------------------------------------------
# Command set
# ---------------------------------------------------------------------------------------------------------
class Op(enum.IntEnum):
    NOP = 0x00
    WR_SBK = 0x01     # write one burst to one bank: bank, row, col, data
    RD_SBK = 0x02     # read count bursts of one bank: bank, row, col, count
    WR_ABK = 0x03     # write one burst to the same place in all banks
    WR_GB = 0x04      # write one burst of the global buffer: gb, data
    RD_GB = 0x05      # read count bursts of the global buffer: gb, count
    WR_BIAS = 0x06    # set accumulator acc of bank (or all banks with Flag.ALL) to FP32 imm
    MAC_SBK = 0x07    # one bank: acc += row[col:col+count] . GB[gb:gb+count] (burst units)
    MAC_ABK = 0x08    # all banks at once, same addresses
    RD_MAC = 0x09     # read accumulator acc of every bank (FP32, or BF16 with Flag.BF16)
    AF = 0x0A         # acc = f(acc) in every bank through the activation LUT
    EWMUL = 0x0B      # element-wise multiply (control hub function unit)
    EWADD = 0x0C      # element-wise add (control hub function unit)
    COPY_BKGB = 0x0D  # copy count bursts from bank row to the GB
    COPY_GBBK = 0x0E  # copy count bursts from the GB to a bank row
    WR_AFLUT = 0x0F   # write AF segment imm: data holds slope a (FP32, bits 31:0) and intercept b (63:32)
    SYNC = 0x10       # answers once every earlier command has completed
    EOC = 0x11        # end of a command list (control hub)


class Flag(enum.IntFlag):
    ALL = 0x01    # WR_BIAS: every bank
    ZERO = 0x02   # MAC_*: start the accumulator from +0 instead of its current value
    BF16 = 0x04   # RD_MAC, MAC_* with READ: results rounded to BF16 (RNE) in the low half of each 32-bit slot
    READ = 0x08   # MAC_*: after the last burst, answer with every bank's accumulator `acc` as RD_MAC does,
                  # so a GEMV row group needs no separate RD_MAC issue slot


class ErrorCode(enum.IntEnum):
    NONE = 0x00
    BAD_OPCODE = 0x01
    BAD_BANK = 0x02
    BAD_ROW = 0x03
    BAD_COL = 0x04
    BAD_GB = 0x05
    BAD_ACC = 0x06
    BAD_COUNT = 0x07
    BAD_LUT = 0x08
    BAD_FLAGS = 0x09


# Ops the bank array executes itself; EWMUL, EWADD and EOC belong to the control hub.
ARRAY_OPS = frozenset({
    Op.NOP, Op.WR_SBK, Op.RD_SBK, Op.WR_ABK, Op.WR_GB, Op.RD_GB, Op.WR_BIAS, Op.MAC_SBK, Op.MAC_ABK,
    Op.RD_MAC, Op.AF, Op.COPY_BKGB, Op.COPY_GBBK, Op.WR_AFLUT, Op.SYNC,
})
# Ops that walk `count` bursts; all other burst ops touch exactly one burst.
COUNTED_OPS = frozenset({Op.RD_SBK, Op.RD_GB, Op.MAC_SBK, Op.MAC_ABK, Op.COPY_BKGB, Op.COPY_GBBK})
# Ops whose `bank` field must name an existing bank.
SINGLE_BANK_OPS = frozenset({Op.WR_SBK, Op.RD_SBK, Op.MAC_SBK, Op.COPY_BKGB, Op.COPY_GBBK})
# Ops that address a bank row/column, and ops that address the GB.
ROW_OPS = frozenset({Op.WR_SBK, Op.RD_SBK, Op.WR_ABK, Op.MAC_SBK, Op.MAC_ABK, Op.COPY_BKGB, Op.COPY_GBBK})
GB_OPS = frozenset({Op.WR_GB, Op.RD_GB, Op.MAC_SBK, Op.MAC_ABK, Op.COPY_BKGB, Op.COPY_GBBK})
ACC_OPS = frozenset({Op.WR_BIAS, Op.MAC_SBK, Op.MAC_ABK, Op.RD_MAC, Op.AF})
# Which flags each op accepts; any other flag bit is refused.
ALLOWED_FLAGS = {Op.WR_BIAS: Flag.ALL, Op.MAC_SBK: Flag.ZERO | Flag.READ | Flag.BF16,
                 Op.MAC_ABK: Flag.ZERO | Flag.READ | Flag.BF16, Op.RD_MAC: Flag.BF16}
# Ops that always answer on the response stream: RD_SBK/RD_GB one beat per burst, the others one beat
# (MAC_* answer too when they carry Flag.READ).
RESPONDING_OPS = frozenset({Op.RD_SBK, Op.RD_GB, Op.RD_MAC, Op.SYNC})


# ---------------------------------------------------------------------------------------------------------
# Field layouts of the array command port and response port (LSB first)
# ---------------------------------------------------------------------------------------------------------
def cmd_fields(params: DeviceParams) -> tuple[tuple[str, int], ...]:
    """Fields of one command on the array's local port, least significant first."""
    return CMD_HEADER + (("data", params.burst_bits),)


def resp_fields(params: DeviceParams) -> tuple[tuple[str, int], ...]:
    """Fields of one answer beat of the bank array (`resp`), least significant first."""
    return (("op", 8), ("data", params.resp_data_bits))


def refusal_fields() -> tuple[tuple[str, int], ...]:
    """Fields of one refusal of the bank array (`refusal`: a refused command leaving its pipeline), least
    significant first: the command's op and its ErrorCode."""
    return (("op", 8), ("err", 8))


def pack_fields(layout, values: dict) -> int:
    """Pack a dict of field values into one integer; refuses values that do not fit their field."""
    word, pos = 0, 0
    names = {n for n, _ in layout}
    unknown = set(values) - names
    if unknown:
        raise KeyError(f"unknown fields {sorted(unknown)}")
    for name, width in layout:
        v = int(values.get(name, 0))
        if not 0 <= v < (1 << width):
            raise ValueError(f"field {name}={v} does not fit in {width} bits")
        word |= v << pos
        pos += width
    return word


def unpack_fields(layout, word: int) -> dict:
    out, pos = {}, 0
    for name, width in layout:
        out[name] = (word >> pos) & ((1 << width) - 1)
        pos += width
    return out


@dataclass(frozen=True)
class Command:
    """One device command. `data` is a burst as a list of L BF16 bit patterns (write ops) or, for
    WR_AFLUT, two FP32 bit patterns (slope, intercept)."""

    op: Op
    flags: int = 0
    bank: int = 0
    acc: int = 0
    row: int = 0
    col: int = 0
    count: int = 1
    gb: int = 0
    imm: int = 0
    data: tuple = ()

    def data_int(self, params: DeviceParams) -> int:
        """The data field as the integer placed on the command port."""
        if self.op == Op.WR_AFLUT:
            a, b = (tuple(self.data) + (0, 0))[:2]
            return (a & 0xFFFFFFFF) | ((b & 0xFFFFFFFF) << 32)
        word = 0
        for i, v in enumerate(self.data):
            if i >= params.lanes:
                raise ValueError(f"burst has {len(self.data)} words, more than lanes={params.lanes}")
            word |= (int(v) & 0xFFFF) << (16 * i)
        return word

    def port_word(self, params: DeviceParams) -> int:
        """The command as one integer in the layout of cmd_fields(params)."""
        v = {"op": int(self.op), "flags": int(self.flags), "bank": self.bank, "acc": self.acc,
             "row": self.row, "col": self.col, "count": self.count, "gb": self.gb,
             "imm": self.imm & 0xFFFFFFFF, "data": self.data_int(params)}
        return pack_fields(cmd_fields(params), v)

    def header_words(self) -> list[int]:
        """The four 32-bit header words of the host encoding (LSB field first in each word)."""
        v = {"op": int(self.op), "flags": int(self.flags), "bank": self.bank, "acc": self.acc,
             "row": self.row, "col": self.col, "count": self.count, "gb": self.gb,
             "imm": self.imm & 0xFFFFFFFF}
        word = pack_fields(CMD_HEADER, v)
        return [(word >> (32 * i)) & 0xFFFFFFFF for i in range(CMD_HEADER_WORDS)]

    def queue_words(self, params: "DeviceParams") -> list[int]:
        """The command as pushed onto the hub's command queue: header words, then payload_words(op) words."""
        n = payload_words(int(self.op), params)
        data = self.data_int(params) if n else 0
        return self.header_words() + [(data >> (32 * i)) & 0xFFFFFFFF for i in range(n)]


def check_command(cmd: Command, params: DeviceParams) -> None:
    """Raise CommandError with the device's error code if the array would refuse `cmd`.

    The order of the checks is the order the hardware applies them, so both report the same code.
    """
    try:
        op = Op(cmd.op)
    except ValueError:
        raise CommandError(ErrorCode.BAD_OPCODE, f"opcode 0x{int(cmd.op):02x} is not defined") from None
    if op not in ARRAY_OPS:
        raise CommandError(ErrorCode.BAD_OPCODE, f"{op.name} is not executed by the bank array")
    if int(cmd.flags) & ~int(ALLOWED_FLAGS.get(op, 0)):
        raise CommandError(ErrorCode.BAD_FLAGS, f"flags 0x{int(cmd.flags):02x} not allowed for {op.name}")
    all_banks = op == Op.WR_BIAS and int(cmd.flags) & Flag.ALL
    if (op in SINGLE_BANK_OPS or (op == Op.WR_BIAS and not all_banks)) and cmd.bank >= params.banks:
        raise CommandError(ErrorCode.BAD_BANK, f"bank {cmd.bank} >= banks={params.banks}")
    count = cmd.count if op in COUNTED_OPS else 1
    if op in COUNTED_OPS and count == 0:
        raise CommandError(ErrorCode.BAD_COUNT, f"{op.name} needs count >= 1")
    if op in ROW_OPS:
        if cmd.row >= params.rows:
            raise CommandError(ErrorCode.BAD_ROW, f"row {cmd.row} >= rows={params.rows}")
        if cmd.col + count > params.bursts_per_row:
            raise CommandError(ErrorCode.BAD_COL,
                               f"col {cmd.col} + count {count} > bursts_per_row={params.bursts_per_row}")
    if op in GB_OPS and cmd.gb + count > params.gb_bursts:
        raise CommandError(ErrorCode.BAD_GB, f"gb {cmd.gb} + count {count} > gb_bursts={params.gb_bursts}")
    if op in ACC_OPS and cmd.acc >= params.accs:
        raise CommandError(ErrorCode.BAD_ACC, f"acc {cmd.acc} >= accs={params.accs}")
    if op == Op.WR_AFLUT and not 0 <= cmd.imm < AF_SEGMENTS:
        raise CommandError(ErrorCode.BAD_LUT, f"LUT segment {cmd.imm} >= {AF_SEGMENTS}")


# ---------------------------------------------------------------------------------------------------------
# Control hub: tile commands, register map, data windows
# ---------------------------------------------------------------------------------------------------------
class HubOp(enum.IntEnum):
    """Commands the control hub executes itself (beside the array's Op set and EWMUL/EWADD/EOC)."""

    GEMV_TILE = 0x20
    ATTN_TILE = 0x21


# What each header field means for the hub-level commands (docs/control_hub.md has the full story).
HUB_FIELDS = {
    Op.EWMUL: {"row": "scratch word address of operand a", "col": "scratch address of operand b",
               "gb": "scratch address of the result", "count": "elements"},
    Op.EWADD: {"row": "scratch word address of operand a", "col": "scratch address of operand b",
               "gb": "scratch address of the result", "count": "elements"},
    HubOp.GEMV_TILE: {"row": "first weight row (every bank)", "col": "row groups (M / banks)",
                      "count": "K chunks (K / row_words)", "bank": "bank holding x",
                      "acc": "unused (0)", "gb": "first row of x in that bank", "imm": "scratch address of y",
                      "flags": "Flag.BF16: y as BF16 in the low half of each word"},
    HubOp.ATTN_TILE: {"row": "first key-cache row", "col": "first V-transpose row", "count": "tokens T",
                      "acc": "head dimension d / lanes", "gb": "scratch address of the output (d words)",
                      "imm": "score scale as FP32 bits (1/sqrt(d) for standard attention)"},
}


class Reg(enum.IntEnum):
    """CSR byte addresses (32-bit registers) in the CSR window at CSR_BASE."""

    MAGIC = 0x000
    VERSION = 0x004
    BANKS = 0x008
    LANES = 0x00C
    ROWS = 0x010
    BURSTS_PER_ROW = 0x014
    GB_WORDS = 0x018
    ACCS = 0x01C
    SCRATCH_WORDS = 0x020
    SCORE_WORDS = 0x024
    CMDQ_WORDS = 0x028
    CLK_HZ = 0x02C
    AXI_DATA_BITS = 0x030
    STATUS = 0x040          # bit 0 busy, 1 error latched, 2 queue empty, 3 done (idle, queue empty), 4 partial
    CONTROL = 0x044         # write 1s: bit 0 clear error, bit 1 clear performance counters, bit 2 abort
    ERROR_CODE = 0x048      # first error since the last clear (ErrorCode / HubError)
    ERROR_OP = 0x04C        # opcode of the command that raised it
    ERROR_COUNT = 0x050     # refused commands, ever (cleared with the performance counters)
    CMDQ_LEVEL = 0x054      # words waiting in the command queue
    PERF_CYCLES = 0x060     # free-running cycle counter
    PERF_BUSY = 0x064       # cycles with the sequencer or the array busy
    PERF_MAC = 0x068        # cycles in which a MAC burst issued
    PERF_STALL = 0x06C      # cycles the array held its issue for answer room (back-pressure)
    PERF_CMDS = 0x070       # commands completed
    UART_BAUD_DIV = 0x080   # clock cycles per UART bit
    UART_FRAMES_OK = 0x084
    UART_CRC_ERRORS = 0x088
    UART_FRAMING_ERRORS = 0x08C   # stop bit not high
    UART_TIMEOUTS = 0x090         # frame abandoned after the inter-byte timeout
    UART_OVERRUNS = 0x094         # byte arrived while the receiver could not take it
    UART_BAD_FRAMES = 0x098       # CRC good but command, length or address refused
    UART_DROPPED_BYTES = 0x09C    # bytes discarded while hunting for a sync byte
    BUS_ERRORS = 0x0A0            # accesses to unmapped or read-only addresses
    BUS_ERROR_ADDR = 0x0A4
    UART_BAUD_REVERTS = 0x0A8     # UART_BAUD_DIV went back to the reset divisor (probation ran out, line break)


# CSRs the host may write (every other CSR write is a bus error); CONTROL is write-only (reads are bus errors).
WRITABLE_REGS = frozenset({Reg.CONTROL, Reg.UART_BAUD_DIV})
WRITE_ONLY_REGS = frozenset({Reg.CONTROL})
# UART_BAUD_DIV after reset is the divisor nearest clk_hz / UART_RESET_BAUD (uart_reset_div). A write keeps the
# low 16 bits and raises them to at least UART_MIN_DIV (the PHY samples mid-bit: it needs a few cycles per bit).
UART_RESET_BAUD = 115200
UART_MIN_DIV = 4
# Changing the rate must never leave the device unreachable (docs/uart_link.md, "Changing the rate"): a new
# divisor takes effect only once the link is between frames (the answer to the write still goes at the old
# rate); when the UART link itself wrote a divisor other than the reset one, the new rate is on probation and
# goes back to the reset divisor unless a frame with a good CRC arrives within UART_CONFIRM_MS; and the line
# held low for UART_BREAK_BITS bit times (of the slower of the current and the reset rate) restores the reset
# divisor at any time. A host reaches the device at the reset rate after either.
UART_CONFIRM_MS = 250
UART_BREAK_BITS = 20


def uart_reset_div(params) -> int:
    """UART_BAUD_DIV after reset for `params` (a DeviceParams): clock cycles per bit at UART_RESET_BAUD, the
    nearest whole number (the divisor the host asks for at that rate: pimhil.uart_rate.divisor_for)."""
    return (params.clk_hz + UART_RESET_BAUD // 2) // UART_RESET_BAUD


def uart_confirm_cycles(params) -> int:
    """Device clock cycles a divisor the UART link wrote stays on probation (UART_CONFIRM_MS)."""
    return params.clk_hz * UART_CONFIRM_MS // 1000

# Identity registers: constants that report the DeviceParams field named beside each (MAGIC and VERSION
# before them report MAGIC and CONTRACT_VERSION).
IDENTITY_REGS = ((Reg.BANKS, "banks"), (Reg.LANES, "lanes"), (Reg.ROWS, "rows"),
                 (Reg.BURSTS_PER_ROW, "bursts_per_row"), (Reg.GB_WORDS, "gb_words"), (Reg.ACCS, "accs"),
                 (Reg.SCRATCH_WORDS, "scratch_words"), (Reg.SCORE_WORDS, "score_words"),
                 (Reg.CMDQ_WORDS, "cmdq_words"), (Reg.CLK_HZ, "clk_hz"),
                 (Reg.AXI_DATA_BITS, "axi_data_bits"))
# The UART link's counters: the name of the link's counter output and the CSR that shows it.
LINK_COUNTERS = (("frames_ok", Reg.UART_FRAMES_OK), ("crc_errors", Reg.UART_CRC_ERRORS),
                 ("framing_errors", Reg.UART_FRAMING_ERRORS), ("timeouts", Reg.UART_TIMEOUTS),
                 ("overruns", Reg.UART_OVERRUNS), ("bad_frames", Reg.UART_BAD_FRAMES),
                 ("dropped_bytes", Reg.UART_DROPPED_BYTES), ("baud_reverts", Reg.UART_BAUD_REVERTS))

STATUS_BUSY, STATUS_ERROR, STATUS_QUEUE_EMPTY, STATUS_DONE = 0x1, 0x2, 0x4, 0x8
# The sequencer holds the first words of a command and waits for the host to push the rest (STATUS.busy is
# also set; bank and GB window accesses are still served: docs/control_hub.md, "Partial commands").
STATUS_PARTIAL = 0x10
# CONTROL_ABORT drops a partially received command and every word still waiting in the queue; a command
# that is already executing runs to completion.
CONTROL_CLEAR_ERROR, CONTROL_CLEAR_COUNTERS, CONTROL_ABORT = 0x1, 0x2, 0x4


class HubError(enum.IntEnum):
    """Errors the hub raises itself (array refusals keep their ErrorCode values below 0x40)."""

    BAD_TILE = 0x40        # tile parameters do not fit the device (sizes, rows, scratch range)
    BAD_SCRATCH = 0x41     # scratch range outside the scratch memory
    QUEUE_OVERFLOW = 0x42  # a word was pushed into a full command queue (it is dropped)


@dataclass(frozen=True)
class Window:
    name: str
    base: int       # byte address
    size: int       # bytes


CSR_BASE = 0x0000_0000
CMDQ_BASE = 0x0000_1000      # any write in this window pushes one word onto the command queue
SCRATCH_BASE = 0x0001_0000
GB_BASE = 0x0002_0000
BANK_BASE = 0x0100_0000


def _pow2_ceil(v: int) -> int:
    return 1 << (v - 1).bit_length()


def bank_stride(params: DeviceParams) -> int:
    """Bytes between the windows of consecutive banks (a power of two at least one bank's size)."""
    return _pow2_ceil(params.bank_bursts * params.burst_bits // 8)


CSR_BYTES = 0x1000           # the CSR window (registers at the offsets of Reg; the rest are holes)
CMDQ_BYTES = 0x1000          # the command-queue window (every address pushes)


def windows(params: DeviceParams) -> tuple[Window, ...]:
    return (
        Window("csr", CSR_BASE, CSR_BYTES),
        Window("cmdq", CMDQ_BASE, CMDQ_BYTES),
        Window("scratch", SCRATCH_BASE, params.scratch_words * 4),
        Window("gb", GB_BASE, params.gb_words * 2),
        Window("bank", BANK_BASE, params.banks * bank_stride(params)),
    )


def bank_address(params: DeviceParams, bank: int, row: int, col: int = 0) -> int:
    """Byte address of burst (row, col) of `bank` in the bank window."""
    if not (0 <= bank < params.banks and 0 <= row < params.rows and 0 <= col < params.bursts_per_row):
        raise ValueError(f"bank {bank}, row {row}, col {col} is outside the device")
    return BANK_BASE + bank * bank_stride(params) + (row * params.bursts_per_row + col) * params.burst_bits // 8


# Ops whose command carries data words after its header: one burst, or WR_AFLUT's slope and intercept.
PAYLOAD_OPS = frozenset({Op.WR_SBK, Op.WR_ABK, Op.WR_GB, Op.WR_AFLUT})


def payload_words(op: int, params: DeviceParams) -> int:
    """32-bit words that follow a command's 4 header words in the command queue."""
    if op == Op.WR_AFLUT:
        return 2
    if op in PAYLOAD_OPS:
        return params.burst_bits // 32
    return 0


# ---------------------------------------------------------------------------------------------------------
# UART frame format (docs/uart_link.md has a byte-level example)
# ---------------------------------------------------------------------------------------------------------
class Frame:
    REQ_SYNC = 0xA5
    RESP_SYNC = 0x5A
    MAX_WORDS = 256          # payload words one frame may carry
    # request: sync, seq, cmd, len (u16 LE, words), addr (u32 LE, bytes), payload, crc (u16 BE). Only a WRITE or
    # WRITE_FIXED with 1 <= len <= MAX_WORDS has a payload; in every other request the CRC follows addr.
    REQ_HEADER = 9
    # response: sync, seq (the request's), status, len (u16 LE, words), payload, crc (u16 BE). Only an OK READ
    # has a payload (len = the request's len); every other response has len 0.
    RESP_HEADER = 5
    CRC_BYTES = 2
    CRC_INIT = 0xFFFF        # CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF (binascii.crc_hqx(data, 0xFFFF))
    TIMEOUT_BYTES = 16       # receiver drops a partial frame after this many idle byte times (PHY in use)
    # With the PHY bypassed (simulation byte streams) there is no byte time: a partial frame is dropped after
    # this many idle device cycles, a fraction of a second of simulated wall time.
    BYPASS_TIMEOUT_CYCLES = 8192


class FrameCmd(enum.IntEnum):
    READ = 0x01             # read len words from addr, addr+4, ...
    WRITE = 0x02            # write len words to addr, addr+4, ...
    WRITE_FIXED = 0x03      # write len words all to addr (command-queue pushes, FIFO-style registers)


class FrameStatus(enum.IntEnum):
    """Answers to CRC-good requests (a CRC mismatch or an inter-byte timeout gets no answer). The link checks
    cmd, len, addr in this order; the BAD_* statuses mean nothing was accessed."""

    OK = 0x00
    BAD_CMD = 0x01          # cmd is not a FrameCmd
    BAD_LEN = 0x02          # len is 0 or above Frame.MAX_WORDS (no payload was read: the CRC followed addr)
    # addr unaligned, or [addr, addr + 4*len) ([addr, addr + 4) for WRITE_FIXED) not inside one window. The
    # link knows only window bounds: holes and read-only registers inside the CSR window are BUS_ERROR.
    BAD_ADDR = 0x03
    # The bus refused a word (CSR hole, read-only register, CMDQ read or overflow): the words before it were
    # accessed, it and later ones were not, and a READ returns no payload.
    BUS_ERROR = 0x04


# ---------------------------------------------------------------------------------------------------------
# Function-unit constants (docs/numerics.md §8); integer tables so both sides use identical values
# ---------------------------------------------------------------------------------------------------------
EXP2_SEGMENTS = 64
EXP2_FRAC_BITS = 24          # t is cut to a fixed-point number with this many fraction bits (floor)
# 2**(i/64) as 24-bit significands (2**23 = 1.0), i = 0..64; round() of a float64 value is exact enough.
EXP2_TABLE = tuple(round(2.0 ** (i / EXP2_SEGMENTS) * (1 << 23)) for i in range(EXP2_SEGMENTS + 1))
RECIP_SEGMENTS = 64
# FP32 bit patterns of 1 / (1 + (i + 0.5)/64): Newton seeds for a significand in segment i.
RECIP_TABLE = tuple(struct.unpack("<I", struct.pack("<f", 1.0 / (1.0 + (i + 0.5) / RECIP_SEGMENTS)))[0]
                    for i in range(RECIP_SEGMENTS))
RECIP_NEWTON_STEPS = 2
LOG2E_F32 = 0x3FB8AA3B        # log2(e) rounded to FP32


def gemv_tile_problem(params: DeviceParams, *, row: int, groups: int, chunks: int, bank: int, gb: int,
                      imm: int) -> tuple[int, str] | None:
    """Why the hub would refuse GEMV_TILE with these fields: (HubError code, reason), or None if it runs.
    The golden device and the host driver both ask this; the gateware implements the same conditions."""
    p = params
    if groups == 0 or chunks == 0:
        return HubError.BAD_TILE, "row groups and K chunks must be at least 1"
    if row + groups * chunks > p.rows:
        return HubError.BAD_TILE, f"weights need rows {row}..{row + groups * chunks - 1}, the banks have {p.rows}"
    if bank >= p.banks:
        return HubError.BAD_TILE, f"x bank {bank} >= banks={p.banks}"
    if gb + chunks > p.rows:
        return HubError.BAD_TILE, f"x needs rows {gb}..{gb + chunks - 1}, the banks have {p.rows}"
    if imm + groups * p.banks > p.scratch_words:
        return HubError.BAD_SCRATCH, f"y needs scratch words {imm}..{imm + groups * p.banks - 1}"
    return None


def attn_tile_problem(params: DeviceParams, *, tokens: int, dl: int, row: int, col: int,
                      gb: int) -> tuple[int, str] | None:
    """Why the hub would refuse ATTN_TILE (T = tokens, d = dl * lanes): (HubError code, reason) or None."""
    p = params
    B, L, C, T = p.banks, p.lanes, p.bursts_per_row, tokens
    d = dl * L
    if T < B or T % B or T > p.score_words:
        return HubError.BAD_TILE, f"tokens {T} must be a multiple of banks={B} in [{B}, score_words={p.score_words}]"
    if T > p.row_words and T % p.row_words:
        return HubError.BAD_TILE, f"tokens {T} above row_words={p.row_words} must be a multiple of it"
    if not (dl > 0 and dl & (dl - 1) == 0) or dl > min(C, p.gb_bursts):
        return HubError.BAD_TILE, (f"d/lanes = {dl} must be a power of two <= min(bursts_per_row, gb_bursts) = "
                                   f"{min(C, p.gb_bursts)}")
    if d % B or d // B > p.accs:
        return HubError.BAD_TILE, f"d = {d} must be a multiple of banks={B} and at most banks*accs={B * p.accs}"
    nch = T // p.row_words if T > p.row_words else 1
    if row + -(-(T // B) * dl // C) > p.rows:
        return HubError.BAD_TILE, f"keys from row {row} do not fit the {p.rows} rows"
    if col + (d // B) * nch > p.rows:
        return HubError.BAD_TILE, f"V-transpose from row {col} does not fit the {p.rows} rows"
    if gb + d > p.scratch_words:
        return HubError.BAD_SCRATCH, f"output needs scratch words {gb}..{gb + d - 1}"
    return None
