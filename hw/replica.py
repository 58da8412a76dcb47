"""Registers copied on purpose: one value loaded into several registers, each to be placed beside its own group of
loads.

A register that feeds logic spread across the device (a scale factor into every lane's multiplier, an index into
every PU's multiplexers) makes one long route per cycle, and on the ECP5 builds those routes, not logic depth,
set fmax. nextpnr does not duplicate registers, so the design does: `replicas` gives one register per group of
loads, all loaded alike.

Yosys' opt_merge folds registers with the same inputs back into one; it leaves cells marked `keep` alone. The
copies' wires carry REPLICA_ATTR, and the board flow (ci/board.py, `KEEP_REPLICAS`) marks the flip-flops that
drive them `keep` before synthesis. In simulation they are ordinary registers.
"""

from amaranth.hdl import Signal, Value

__all__ = ["REPLICA_ATTR", "UNMERGED", "replicas"]

REPLICA_ATTR = "pim_replica"
# Attributes of a register that must stay its own where another register is loaded alike (the same flow keeps its
# flip-flop): for registers a block keeps beside its own loads, not named as a group of copies.
UNMERGED = {REPLICA_ATTR: 1, "keep": 1}


def replicas(m, value, count, *, en=None, name):
    """`count` registers (a list of Signals named `{name}_r{i}`), each loaded with `value` in the cycles `en` is
    high (every cycle when `en` is None); their reset value is `value`'s shape's zero."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    value = Value.cast(value)
    # `keep` on the wires as well: Yosys may otherwise drop a copy's name for another name of the same net (a port
    # it drives), and the board flow's check could not tell a renamed copy from a merged one.
    regs = [Signal(value.shape(), name=f"{name}_r{i}", attrs={REPLICA_ATTR: 1, "keep": 1}) for i in range(count)]
    if en is None:
        m.d.sync += [r.eq(value) for r in regs]
    else:
        with m.If(en):
            m.d.sync += [r.eq(value) for r in regs]
    return regs
