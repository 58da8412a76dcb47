"""The generated sections of docs/control_hub.md and docs/uart_link.md, computed from the contract.

Usage: python -m ci.doc_tables            rewrite every section in place
       python -m ci.doc_tables --check    exit 1 if a section differs from what the contract gives now

A section is the text between `<!-- generated:NAME begin -->` and `<!-- generated:NAME end -->`; only that
text is rewritten, the prose around it is hand-written. tests/test_doc_tables.py runs the check, so a
contract change that is not regenerated into the docs fails the tests.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

from pimhil import contract as c
from pimhil.contract import (ARRAY_OPS, CSR_BASE, HUB_FIELDS, MAGIC, PRESETS, SCRATCH_BASE, Command, ErrorCode, Flag,
                             Frame, FrameCmd, FrameStatus, HubError, HubOp, Op, Reg, WRITABLE_REGS,
                             WRITE_ONLY_REGS, bank_stride, payload_words, windows)
from pimhil.frame import encode_raw_request, encode_request, encode_response

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- generated:([\w-]+) begin -->\n.*?<!-- generated:\1 end -->", re.DOTALL)

# ---------------------------------------------------------------------------------------------------------
# The prose of the register and bit tables (the facts: addresses, access, reset values, come from the
# contract). Each table is checked against the contract's names, so a register or bit added there without a
# meaning here stops the generator.
# ---------------------------------------------------------------------------------------------------------
# R: read-only, a write is a bus error. RW: read and write. W1: write-only, each 1 bit starts its action and
# 0 bits do nothing; a read is a bus error.
_ACCESS = {r: "W1" if r in WRITE_ONLY_REGS else "RW" for r in WRITABLE_REGS}
# Registers whose meaning is not a DeviceParams field (those come from the DeviceParams docstring).
_REG_DOC = {
    Reg.MAGIC: "\"PIM1\" in ASCII: identifies the device (`MAGIC`)",
    Reg.VERSION: "contract version (`CONTRACT_VERSION`)",
    Reg.STATUS: "state bits, table below",
    Reg.CONTROL: "actions, table below",
    Reg.ERROR_CODE: "first error since the last CONTROL.clear_error: `ErrorCode` or `HubError`; 0 none",
    Reg.ERROR_OP: "opcode of the command that raised ERROR_CODE (0 for QUEUE_OVERFLOW)",
    Reg.ERROR_COUNT: "errors raised (refusals and queue overflows), first or not; cleared by clear_counters",
    Reg.CMDQ_LEVEL: "words waiting in the command queue (not those the sequencer already holds)",
    Reg.PERF_CYCLES: "free-running cycle counter (clear_counters leaves it)",
    Reg.PERF_BUSY: "cycles with the sequencer working or the array busy (not waiting for command words)",
    Reg.PERF_MAC: "cycles in which a MAC burst issued",
    Reg.PERF_STALL: "cycles the array held its issue for want of answer room (response back-pressure)",
    Reg.PERF_CMDS: "commands completed (refused ones not counted)",
    Reg.UART_BAUD_DIV: "clock cycles per UART bit (16 bits); a written value below 4 sets 4; takes effect once "
                       "its answer is sent (docs/uart_link.md, \"Changing the rate\")",
    Reg.UART_FRAMES_OK: "UART frames answered OK",
    Reg.UART_CRC_ERRORS: "UART frames dropped for a bad CRC (not answered)",
    Reg.UART_FRAMING_ERRORS: "UART bytes dropped for a low stop bit",
    Reg.UART_TIMEOUTS: "UART frames abandoned after the inter-byte timeout (not answered)",
    Reg.UART_OVERRUNS: "UART bytes lost because the receive FIFO was full",
    Reg.UART_BAD_FRAMES: "UART frames answered BAD_CMD, BAD_LEN or BAD_ADDR",
    Reg.UART_DROPPED_BYTES: "UART bytes discarded while hunting for a sync byte",
    Reg.BUS_ERRORS: "refused bus accesses (holes, read-only registers, CMDQ reads, dropped partial bursts)",
    Reg.BUS_ERROR_ADDR: "address of the latest refused bus access",
    Reg.UART_BAUD_REVERTS: "times UART_BAUD_DIV went back to the reset divisor (rate probation ran out, line break)",
}
_STATUS_DOC = {
    "STATUS_BUSY": "the queue holds words, the sequencer holds or executes a command, or the array is busy",
    "STATUS_ERROR": "an error is latched (ERROR_CODE, ERROR_OP); pushed commands are dropped until "
                    "CONTROL.clear_error",
    "STATUS_QUEUE_EMPTY": "the command queue holds no words",
    "STATUS_DONE": "nothing left to do: not busy",
    "STATUS_PARTIAL": "the sequencer holds part of a command and waits for the host to push the rest "
                      "(busy is set too)",
}
_CONTROL_DOC = {
    "CONTROL_CLEAR_ERROR": "clear STATUS.error, ERROR_CODE and ERROR_OP; commands run again",
    "CONTROL_CLEAR_COUNTERS": "zero PERF_BUSY, PERF_MAC, PERF_STALL, PERF_CMDS and ERROR_COUNT (not PERF_CYCLES, "
                              "BUS_ERRORS or the UART counters)",
    "CONTROL_ABORT": "drop a partially received command and every word waiting in the queue; a command "
                     "already executing runs to completion",
}


# ---------------------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------------------
def _hex(v: int, digits: int = 8) -> str:
    """0x0001_0000: the address style of the docs."""
    s = f"{v:0{digits}X}"
    groups = [s[max(0, i - 4):i] for i in range(len(s), 0, -4)][::-1]
    return "0x" + "_".join(groups)


def _size(n: int) -> str:
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _bit_name(const: str) -> str:
    return const.split("_", 1)[1].lower()


def _bit_constants(prefix: str, doc: dict) -> list[tuple[str, int, str]]:
    """(constant name, mask, meaning) for every contract constant named prefix_*, in bit order."""
    names = [n for n in c.__all__ if n.startswith(prefix)]
    if set(names) != set(doc):
        raise SystemExit(f"ci/doc_tables.py: {prefix}* meanings out of step with the contract: "
                         f"missing {sorted(set(names) - set(doc))}, stale {sorted(set(doc) - set(names))}")
    consts = sorted((getattr(c, n), n) for n in names)
    for mask, n in consts:
        if mask & (mask - 1) or not mask:
            raise SystemExit(f"{n} = {mask:#x} is not a single bit")
    return [(n, mask, doc[n]) for mask, n in consts]


def _param_doc() -> dict[str, str]:
    """DeviceParams field meanings from its docstring (`name: meaning`, continuation lines indented)."""
    out: dict[str, str] = {}
    last = None
    for line in inspect.getdoc(c.DeviceParams).splitlines()[1:]:
        m = re.match(r"(\w+): (.*)", line)
        if m:
            last = m[1]
            out[last] = m[2]
        elif last and line.strip():
            out[last] += " " + line.strip()
    return out


# ---------------------------------------------------------------------------------------------------------
# docs/control_hub.md
# ---------------------------------------------------------------------------------------------------------
def windows_md() -> str:
    names = list(PRESETS)
    per = {n: {w.name: w for w in windows(p)} for n, p in PRESETS.items()}
    first = per[names[0]]
    rows = []
    for name, w in first.items():
        if any(per[n][name].base != w.base for n in names):
            raise SystemExit(f"window {name} has a different base per preset: the table assumes one")
        rows.append([name, _hex(w.base)] + [f"{_hex(per[n][name].size, 1)} ({_size(per[n][name].size)})"
                                           for n in names])
    table = _table(["window", "base"] + [f"size, {n}" for n in names], rows)

    def burst(p):
        return f"{p.lanes} BF16 = {p.lanes // 2} words = {p.burst_bits // 8} B"

    derived = [
        ("burst (lanes BF16, two per 32-bit word)", burst),
        ("bank_stride (bytes from bank b to b+1)", lambda p: _hex(bank_stride(p), 1)),
        ("bursts per bank (rows × bursts_per_row)", lambda p: p.bank_bursts),
        ("bytes used per bank", lambda p: _hex(p.bank_bursts * p.burst_bits // 8, 1)),
        ("GB bursts", lambda p: p.gb_bursts),
    ]
    table2 = _table(["", *names], [[label] + [f(PRESETS[n]) for n in names] for label, f in derived])
    return table + "\n\n" + table2


def regs_md() -> str:
    params = _param_doc()
    names = list(PRESETS)
    missing = [r.name for r in Reg if r.name.lower() not in params and r not in _REG_DOC]
    stale = [r.name for r in _REG_DOC if r.name.lower() in params]
    if missing or stale:
        raise SystemExit(f"ci/doc_tables.py: register meanings out of step with Reg: missing {missing}, "
                         f"duplicated {stale}")
    status_reset = c.STATUS_QUEUE_EMPTY | c.STATUS_DONE

    def reset(r, p):
        if _ACCESS.get(r) == "W1":
            return "—"
        if r.name.lower() in params:
            return getattr(p, r.name.lower())
        special = {Reg.MAGIC: f"0x{MAGIC:08X}", Reg.VERSION: c.CONTRACT_VERSION, Reg.STATUS: f"{status_reset:#04x}",
                   Reg.UART_BAUD_DIV: c.uart_reset_div(p)}
        return special.get(r, 0)

    rows = []
    for r in Reg:
        meaning = params.get(r.name.lower(), _REG_DOC.get(r))
        rows.append([f"0x{CSR_BASE + r:03X}", r.name, _ACCESS.get(r, "R")]
                    + [reset(r, PRESETS[n]) for n in names] + [meaning])
    return _table(["address", "name", "access"] + [f"reset, {n}" for n in names] + ["meaning"], rows)


def _bits_md(prefix: str, doc: dict) -> str:
    rows = [[mask.bit_length() - 1, f"{mask:#04x}", _bit_name(n), f"`{n}`", text]
            for n, mask, text in _bit_constants(prefix, doc)]
    return _table(["bit", "mask", "name", "constant", "meaning"], rows)


def status_md() -> str:
    return _bits_md("STATUS_", _STATUS_DOC)


def control_md() -> str:
    return _bits_md("CONTROL_", _CONTROL_DOC)


def cmd_layout_md() -> str:
    rows, pos = [], 0
    for name, width in c.CMD_HEADER:
        word, lo = divmod(pos, 32)
        if lo + width > 32:
            raise SystemExit(f"header field {name} straddles a word: the table assumes it does not")
        rows.append([word, f"{lo + width - 1}:{lo}", name, width])
        pos += width
    if pos != 32 * c.CMD_HEADER_WORDS:
        raise SystemExit(f"CMD_HEADER is {pos} bits, not CMD_HEADER_WORDS = {c.CMD_HEADER_WORDS} words")
    header = _table(["word", "bits", "field", "width"], rows)

    names = list(PRESETS)
    ops = list(Op) + list(HubOp)
    op_rows = []
    for op in ops:
        n = [payload_words(op, PRESETS[p]) for p in names]
        op_rows.append([f"0x{int(op):02X}", op.name, "array" if op in ARRAY_OPS else "hub"]
                       + [f"{k} ({c.CMD_HEADER_WORDS + k})" for k in n])
    ops_t = _table(["op", "name", "executed by"] + [f"payload words (total), {p}" for p in names], op_rows)

    flag_rows = [[f"{int(f):#04x}", f.name, ", ".join(op.name for op, a in c.ALLOWED_FLAGS.items() if a & f)]
                 for f in Flag]
    flags_t = _table(["flag", "name", "array ops that accept it"], flag_rows)

    hub_rows = [[op.name, "; ".join(f"`{field}` {text}" for field, text in fields_.items())]
                for op, fields_ in HUB_FIELDS.items()]
    hub_t = _table(["hub op", "fields (`HUB_FIELDS`)"], hub_rows)

    err_rows = ([[f"0x{int(e):02X}", e.name, "`ErrorCode`"] for e in ErrorCode if e]
                + [[f"0x{int(e):02X}", e.name, "`HubError`"] for e in HubError])
    err_t = _table(["code", "name", "enum"], err_rows)
    return "\n\n".join([
        "Header words (`CMD_HEADER`, LSB first):", header,
        "Opcodes (`Op`, `HubOp`) and the words that follow the header (`payload_words`):", ops_t,
        "Flags (`Flag`, `ALLOWED_FLAGS`):", flags_t,
        "Header fields of the hub's own commands:", hub_t,
        "Error codes (ERROR_CODE):", err_t])


def cmd_example_md() -> str:
    examples = [
        ("board", Command(Op.WR_GB, gb=3, data=(0x3F80, 0x4000, 0x4040, 0x4080)),
         "WR_GB burst 3 = BF16 1.0, 2.0, 3.0, 4.0"),
        ("sim", Command(Op.MAC_ABK, flags=Flag.ZERO | Flag.READ, acc=2, row=5, col=0, count=4, gb=0, imm=0x100),
         "MAC_ABK ZERO|READ, acc 2, row 5, col 0, count 4, gb 0, answer to scratch 0x100"),
    ]
    out = []
    for preset_name, cmd, what in examples:
        words = " ".join(f"{w:08x}" for w in cmd.queue_words(PRESETS[preset_name]))
        out.append(f"{what} ({preset_name} preset), words in push order:\n\n    {words}")
    return "\n\n".join(out)


# ---------------------------------------------------------------------------------------------------------
# docs/uart_link.md
# ---------------------------------------------------------------------------------------------------------
def frame_constants_md() -> str:
    rows = [[f"`Frame.{k}`", f"{v:#06x}" if k == "CRC_INIT" else (f"{v:#04x}" if k.endswith("SYNC") else v)]
            for k, v in vars(Frame).items() if k.isupper()]
    consts = _table(["constant", "value"], rows)
    codes = _table(["cmd", "name"], [[f"{int(x):#04x}", x.name] for x in FrameCmd])
    status = _table(["status", "name"], [[f"{int(x):#04x}", x.name] for x in FrameStatus])
    lines = []
    for n, p in PRESETS.items():
        div = c.uart_reset_div(p)
        cyc = Frame.TIMEOUT_BYTES * 10 * div
        lines.append(f"- `{n}` ({p.clk_hz / 1e6:g} MHz): PHY at the reset divisor {div}: "
                     f"{Frame.TIMEOUT_BYTES} × 10 × {div} = {cyc} cycles ({cyc / p.clk_hz * 1e3:.2f} ms); "
                     f"PHY bypassed: {Frame.BYPASS_TIMEOUT_CYCLES} cycles "
                     f"({Frame.BYPASS_TIMEOUT_CYCLES / p.clk_hz * 1e6:.2f} µs)")
    return "\n\n".join([consts, codes, status, "Inter-byte timeout:\n\n" + "\n".join(lines)])


# (title, request bytes, response bytes, note). The responses are what the link sends by the rules of
# docs/uart_link.md; tests/test_doc_tables.py replays the requests on the golden link model to confirm them.
def frame_examples() -> list[tuple[str, bytes, bytes, str]]:
    hole = CSR_BASE + max(Reg) + 4      # the first CSR address past the last register
    unmapped = 0x0080_0000              # between the GB and bank windows in every preset
    return [
        ("Write 0x11223344, 0xDEADBEEF to scratch word 0 (byte address 0x00010000), sequence 7",
         encode_request(7, FrameCmd.WRITE, SCRATCH_BASE, words=[0x11223344, 0xDEADBEEF]),
         encode_response(7, FrameStatus.OK), "OK, len 0: a write returns no payload"),
        ("Read the MAGIC register (address 0), sequence 8",
         encode_request(8, FrameCmd.READ, CSR_BASE + Reg.MAGIC, count=1),
         encode_response(8, FrameStatus.OK, [MAGIC]), f"OK, 1 word: 0x{MAGIC:08X} \"PIM1\""),
        (f"Read 4 words at 0x{unmapped:08X} (outside every window), sequence 9",
         encode_request(9, FrameCmd.READ, unmapped, count=4),
         encode_response(9, FrameStatus.BAD_ADDR), "BAD_ADDR, len 0, nothing accessed"),
        (("WRITE to scratch word 0 with len 0, sequence 10: a bad length means no payload is read, so the CRC"
          " follows the address directly"),
         encode_raw_request(10, FrameCmd.WRITE, 0, SCRATCH_BASE),
         encode_response(10, FrameStatus.BAD_LEN), "BAD_LEN, len 0"),
        (f"Read 2 words at 0x{hole - 4:08X} ({max(Reg).name}, then the hole after it), sequence 11",
         encode_request(11, FrameCmd.READ, hole - 4, count=2),
         encode_response(11, FrameStatus.BUS_ERROR), "BUS_ERROR, len 0: no partial payload"),
    ]


def _fields(frame: bytes, widths: list[int]) -> str:
    out, pos = [], 0
    for w in widths:
        out.append(frame[pos:pos + w].hex(" "))
        pos += w
    return " | ".join(x for x in out if x)


def _request_fields(f: bytes) -> str:
    return _fields(f, [1, 1, 1, 2, 4, len(f) - Frame.REQ_HEADER - Frame.CRC_BYTES, Frame.CRC_BYTES])


def _response_fields(f: bytes) -> str:
    return _fields(f, [1, 1, 1, 2, len(f) - Frame.RESP_HEADER - Frame.CRC_BYTES, Frame.CRC_BYTES])


def examples_md() -> str:
    parts = [("Fields separated by `|`: request `sync | seq | cmd | len | addr | payload | crc`, "
              "response `sync | seq | status | len | payload | crc`.")]
    for title, req, resp, note in frame_examples():
        parts.append(f"{title}:\n\n    {_request_fields(req)}\n    {_response_fields(resp)}\n\n({note})")
    return "\n\n".join(parts)


SECTIONS = {
    "docs/control_hub.md": {"windows": windows_md, "regs": regs_md, "status": status_md, "control": control_md,
                            "cmd-layout": cmd_layout_md, "cmd-example": cmd_example_md},
    "docs/uart_link.md": {"frame-constants": frame_constants_md, "examples": examples_md},
}


def render(text: str, generators: dict, where: str = "") -> str:
    """text with every generated section replaced; each generator's section must appear exactly once."""
    seen: list[str] = []

    def sub(m):
        name = m[1]
        if name not in generators:
            raise SystemExit(f"{where}: unknown generated section {name!r}")
        seen.append(name)
        return f"<!-- generated:{name} begin -->\n\n{generators[name]()}\n\n<!-- generated:{name} end -->"

    out = MARKER.sub(sub, text)
    for name in generators:
        if seen.count(name) != 1:
            raise SystemExit(f"{where}: generated section {name!r} appears {seen.count(name)} times, expected once")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ci.doc_tables", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if a generated section is out of date")
    args = ap.parse_args(argv)
    stale = []
    for rel, gens in SECTIONS.items():
        path = ROOT / rel
        old = path.read_text()
        new = render(old, gens, rel)
        if new != old:
            stale.append(rel)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run `python -m ci.doc_tables`", file=sys.stderr)
        return 1
    for rel in stale:
        print(f"rewrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
