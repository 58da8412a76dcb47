"""What every harness shares: named properties, a white-box probe of a component's internals, registered past
values and the description of one proof (`Proof`) that the runner turns into a .sby file.

Property names become the names of Yosys's $check cells (`name_checks`), so SymbiYosys reports a failing
assertion or an unreached cover by the name given here, not by a source line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from amaranth.hdl import Assert, Assume, Cover, Elaboratable, Module, ResetSignal, Signal, Value
from amaranth.hdl._dsl import resolve_statement

from pimhil.contract import DeviceParams

__all__ = ["SMALLEST", "Properties", "Probe", "Proof", "past", "name_checks", "ProbeError"]

# The smallest DeviceParams the gateware elaborates with (DeviceParams allows rows * bursts_per_row = 1 and
# gb_words = lanes, but a BurstMemory needs depth >= 2): the state space a proof has to cover.
SMALLEST = DeviceParams(banks=4, lanes=4, rows=1, bursts_per_row=2, gb_words=8, accs=1, scratch_words=64,
                        score_words=4, cmdq_words=16)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class MutableHarness(Elaboratable):
    """A proof's top: the block under test wrapped with its properties; `mutation` names a known bug the
    harness injects (None: the design as it is)."""

    def __init__(self, mutation=None):
        self.mutation = mutation


class Properties:
    """The assertions, assumptions and covers of one harness, each with a unique name and a one-line meaning
    (the runner reports and docs/formal.md lists them)."""

    def __init__(self, m: Module):
        self.m = m
        self.entries: dict[str, tuple[str, str]] = {}    # name -> (kind, meaning)
        m.d.comb += Assume(~ResetSignal(), "no_reset")   # the initial state is the reset state; reset stays low
        self.entries["no_reset"] = ("assume", "reset is never asserted: the proof starts from the reset state")

    def _add(self, kind, name, meaning):
        if not _NAME.match(name):
            raise ValueError(f"property name {name!r} must be lower_snake_case")
        if name in self.entries:
            raise ValueError(f"property {name!r} is defined twice")
        self.entries[name] = (kind, meaning)

    def assert_(self, name: str, test, meaning: str):
        self._add("assert", name, meaning)
        self.m.d.comb += Assert(test, name, src_loc_at=1)

    def assume(self, name: str, test, meaning: str):
        self._add("assume", name, meaning)
        self.m.d.comb += Assume(test, name, src_loc_at=1)

    def cover(self, name: str, test, meaning: str):
        self._add("cover", name, meaning)
        self.m.d.comb += Cover(test, name, src_loc_at=1)

    def names(self, kind: str) -> list[str]:
        return [n for n, (k, _) in self.entries.items() if k == kind]


def past(m: Module, value, *, name: str, init: int = 0) -> Signal:
    """`value` one cycle ago (`init` in the first cycle): Amaranth 0.5 has no Past()."""
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name, init=init)
    m.d.sync += reg.eq(value)
    return reg


class ProbeError(LookupError):
    """A harness names an internal signal or FSM state that the gateware no longer has."""


def _walk(stmts, found: dict):
    for st in stmts:
        st = resolve_statement(st)        # FSM `m.next` statements are bound to their state signal only now
        for sig in list(st._lhs_signals()) + list(st._rhs_signals()):
            found.setdefault(sig.name, {})[id(sig)] = sig


class Probe:
    """White-box access to a component's internal signals and FSM states, for the helper invariants that make
    an inductive proof close. The component is elaborated here, so the harness holds the very Module that is
    proved (`module`, to be added as the harness's submodule) and can read its locals by name. A renamed local
    raises ProbeError at elaboration, which tests/test_formal.py turns into a failing test rather than a
    silently weaker proof."""

    def __init__(self, component, platform=None):
        self.component = component
        self.module = component.elaborate(platform)
        # The component is proved through the Module elaborated here, never through itself: tell Amaranth's
        # unused-elaboratable check so (it would otherwise warn for every harness).
        component._MustUse__used = True
        if not isinstance(self.module, Module):
            raise ProbeError(f"{type(component).__name__}.elaborate() did not return a Module")
        self._found: dict | None = None

    def _index(self):
        if self._found is None:
            found: dict = {}
            for stmts in self.module._statements.values():
                _walk(stmts, found)
            _walk(self.module._top_comb_statements, found)
            self._found = found
        return self._found

    def sig(self, name: str) -> Signal:
        hits = self._index().get(name, {})
        if len(hits) != 1:
            raise ProbeError(f"{type(self.component).__name__}: expected one internal signal named {name!r}, "
                             f"found {len(hits)}")
        return next(iter(hits.values()))

    def in_state(self, fsm: str, state: str) -> Value:
        gen = self.module._generated.get(fsm)
        if gen is None:
            raise ProbeError(f"{type(self.component).__name__}: no FSM named {fsm!r}")
        if state not in gen.encoding:
            raise ProbeError(f"{type(self.component).__name__}: FSM {fsm!r} has no state {state!r}")
        return gen._data["signal"] == gen.encoding[state]

    def field(self, name: str, field: str) -> Value:
        """Field `field` of the internal struct-shaped signal `name` (its layout is local to elaborate(); the
        signal's waveform format still names the fields and their bits)."""
        fmt = getattr(self.sig(name), "_format", None)
        fields = getattr(fmt, "_fields", None)
        if not fields or field not in fields:
            raise ProbeError(f"{type(self.component).__name__}: {name!r} has no field {field!r}")
        (value, _spec), = fields[field]._chunks
        return value

    def fsm_legal(self, fsm: str) -> Value:
        """The FSM's state register holds one of its states (its spare encodings are unreachable)."""
        gen = self.module._generated.get(fsm)
        if gen is None:
            raise ProbeError(f"{type(self.component).__name__}: no FSM named {fsm!r}")
        return gen._data["signal"] < len(gen.encoding)

    def submodule(self, name: str):
        try:
            return self.module._named_submodules[name][0]
        except KeyError:
            raise ProbeError(f"{type(self.component).__name__}: no submodule named {name!r}") from None

    def replace_submodule(self, name: str, stub):
        """Swap a submodule for an abstraction with the same ports (the stub must drive its outputs freely or
        from the harness: see each harness for why the abstraction is sound for its property)."""
        src_loc = self.module._named_submodules[name][1] if name in self.module._named_submodules else None
        if src_loc is None:
            raise ProbeError(f"{type(self.component).__name__}: no submodule named {name!r}")
        old = self.module._named_submodules[name][0]
        # The replaced block (and the blocks it built in its constructor) is deliberately never elaborated.
        for obj in (old, *vars(old).values()):
            if isinstance(obj, Elaboratable):
                obj._MustUse__used = True
        self.module._named_submodules[name] = (stub, src_loc)


def name_checks(il: str) -> str:
    """Rename Amaranth's anonymous $check cells (`cell $check $17`) after their message, the property name,
    so that SymbiYosys's reports and witness traces name them."""
    out = []
    lines = il.split("\n")
    for i, line in enumerate(lines):
        mt = re.match(r"^(\s*)cell \$check (\S+)$", line)
        if mt:
            fmt = None
            for nxt in lines[i + 1:i + 4]:
                mf = re.match(r'^\s*parameter \\FORMAT "([a-z0-9_]+)"$', nxt)
                if mf:
                    fmt = mf.group(1)
                    break
            if fmt is not None:
                line = f"{mt.group(1)}cell $check \\{fmt}"
        out.append(line)
    return "\n".join(out)


@dataclass
class Proof:
    """One proved block. `build(mutation)` returns (top Elaboratable, Properties); `mutations` maps a mutation
    name to what it breaks (the harness injects it into the real component's Module when asked), and the
    proof must fail with it."""

    name: str
    block: str                      # the hw/ source it proves
    build: object
    mode: str                       # "prove" (k-induction) or "bmc"
    depth: int                      # k for prove, the bound for bmc
    cover_depth: int
    assumes_why: dict = field(default_factory=dict)
    mutations: dict = field(default_factory=dict)
    # Mutation -> the assertion it must break (else any failure counts), and mutation -> depth of a BMC from
    # reset to run instead of the proof, so that the trace is a real run of the bug, not an induction step.
    mutation_expects: dict = field(default_factory=dict)
    mutation_bmc: dict = field(default_factory=dict)
