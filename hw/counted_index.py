"""A counter with its end tests in registers, set together with it.

An index's increment and its compare with a limit are two carry chains; in front of a state register they made
critical paths of the ULX3S build (the UART link's word indices, 16.15 ns at 60 MHz; the attention tile's
walkers). Each end test is kept instead in a one-bit register that is set in the same cycle as the counter,
from the counter's next value plus one, so the test reads a flip-flop when it is needed.
"""

from amaranth.hdl import Const

__all__ = ["counter_setter"]


def counter_setter(counter, ends):
    """A function set_(m, step, *, first=None) that sets `counter` to counter + 1 (step) or to 0, and with it each
    end test of `ends`, a list of (flag, test): flag <- test(the counter's new value + 1).

    On a restart (step false) `first`, if given, holds the flags' values instead (one per end, in order): for a
    limit loaded in the same cycle as the restart, which test() would read a cycle too early."""
    def set_(m, step, *, first=None):
        if first is not None and (step or len(first) != len(ends)):
            raise ValueError(f"first gives the {len(ends)} end values of a restart, not {first!r}")
        after = counter + 2 if step else Const(1, 2)
        values = first if first is not None else [test(after) for _, test in ends]
        m.d.sync += [counter.eq(counter + 1 if step else 0), *(flag.eq(v) for (flag, _), v in zip(ends, values))]
    return set_
