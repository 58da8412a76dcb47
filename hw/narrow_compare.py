"""Compares of wide command fields against small limits, with carry chains only as wide as the limit.

A 16- or 32-bit field compared with a limit of a few bits goes through a carry chain as wide as the field
(Yosys maps `>=` and `+` to CCU2C chains bit for bit); the command checks of the array and the sequencer put
several of them in front of a register (17.4 ns estimated on the ULX3S build at 60 MHz). Above the limit's own
width a field's bits only need testing for zero, which is a LUT tree beside the short chain. Beside them, the
opcode decode's membership test (`in_set`), shared by the array's and the sequencer's checks."""

from amaranth.hdl import Cat, Const

__all__ = ["at_least", "in_set", "sum_exceeds"]


def _width(limit):
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise TypeError(f"limit must be a non-negative int, not {limit!r}")
    return max(limit.bit_length(), 1)


def at_least(value, limit):
    """value >= limit, for an unsigned Value and a non-negative int."""
    w = _width(limit)
    if len(value) <= w:
        return value >= limit
    return value[w:].any() | (value[:w] >= limit)


def sum_exceeds(a, b, limit):
    """a + b > limit, for unsigned Values and a non-negative int: an operand at or above 2**w (w the limit's
    width) makes the sum exceed the limit whatever the other operand is."""
    w = _width(limit)
    high = Cat(a[w:] if len(a) > w else Const(0, 1), b[w:] if len(b) > w else Const(0, 1)).any()
    return high | (a[:w] + b[:w] > limit)


def in_set(value, constants):
    """value is one of `constants` (ints or IntEnum members): one equality per constant, ORed."""
    return Cat(*(value == int(c) for c in sorted(constants))).any()
