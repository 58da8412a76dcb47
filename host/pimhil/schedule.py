"""The order MAC bursts are issued in: burst by burst over accumulators, so the array's pipelined accumulate
adder takes one burst per cycle.

The bank array accumulates in a pipelined FP32 adder: a MAC burst that reads an accumulator waits until the
earlier bursts into that accumulator have left the adder (docs/control_hub.md, "Bank array"). A MAC of n
bursts into one accumulator therefore issues one burst every few cycles; the same work split into one-burst
MACs that rotate over several accumulators issues one burst per cycle. Each accumulator still receives its
bursts in the original order, so every result is the same bit for bit. The hub's GEMV and attention walkers
issue in this order themselves; this is the host's version for MAC commands it sends directly.
"""

from __future__ import annotations

from dataclasses import replace

from .contract import Command, Flag, Op

__all__ = ["interleave_macs"]

_MAC_OPS = (Op.MAC_ABK, Op.MAC_SBK)


def interleave_macs(cmds: list[Command]) -> list[Command]:
    """The same commands with every run of consecutive MACs into distinct accumulators rotated burst by burst.

    A MAC of n bursts becomes n one-burst MACs (column and GB address advanced per burst): ZERO on the first
    of them if it had ZERO, READ on the last if it had READ, its other flags on all. Within a
    run, burst k of every command is issued before burst k + 1 of any; a run ends at a command that is not a
    MAC or whose accumulator (bank, for MAC_SBK) already occurs in the run, so no accumulator ever receives
    its bursts out of order. Answers of a run come in the order its commands' last bursts are issued, which
    is command order when the run's commands have equal counts. Non-MAC commands pass through in place.

    Raises ValueError for a MAC with count 0 (the device would refuse it; splitting would hide that).
    """
    out: list[Command] = []
    run: list[Command] = []
    seen: set[int] = set()

    def flush():
        for k in range(max((c.count for c in run), default=0)):
            for c in run:
                if k < c.count:
                    out.append(_burst(c, k))
        run.clear()
        seen.clear()

    for c in cmds:
        if c.op not in _MAC_OPS:
            flush()
            out.append(c)
            continue
        if c.count < 1:
            raise ValueError(f"MAC with count {c.count}: the device refuses it")
        if c.acc in seen:
            flush()
        run.append(c)
        seen.add(c.acc)
    flush()
    return out


def _burst(c: Command, k: int) -> Command:
    flags = int(c.flags) & ~int(Flag.ZERO | Flag.READ)
    if k == 0:
        flags |= int(c.flags) & int(Flag.ZERO)
    if k == c.count - 1:
        flags |= int(c.flags) & int(Flag.READ)
    return replace(c, flags=flags, col=c.col + k, gb=c.gb + k, count=1)
