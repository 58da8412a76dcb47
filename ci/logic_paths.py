"""Estimated register-to-register delays of an ECP5 netlist, grouped by where they start and end:
`python -m ci.logic_paths build/board/ulx3s-85f/top.json [--over NS] [--top N] [--detail]`.

nextpnr reports one critical path per clock; closing timing needs every path over the period, and a place and
route of the board device takes ~15 minutes. This reads the netlist Yosys writes (`top.json`, after
`synth_ecp5`; `ci.board.synthesis` makes one in ~2 minutes without place and route) and gives every endpoint
(flip-flop input, block RAM and LUT RAM write-side input) an estimated arrival time along its longest path,
then groups the endpoints over a threshold by the register scopes they start and end in (`device.hub.sequencer.a_k`
-> `device.hub.csr.perf_cmds`), worst first, with the cells of the worst path of each group.

The delays are estimates: cell delays of the LFE5U-85F-6 as nextpnr reports them in its critical-path listing,
and routing as a function of fan-out only, since nothing is placed yet (ROUTE_BASE_NS + ROUTE_FANOUT_NS x
log2(fan-out + 1), at most ROUTE_MAX_NS; at least HARD_ROUTE_NS into or out of a DSP; nothing
between cells of one slice or one carry chain). The worst path
came out 1-3 ns above nextpnr's on the board device (26.5 against 23.4 ns, 21.9 against 20.2 ns, 2026-12-04);
the ranking is what it is for: which paths to cut next.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Endpoint", "estimate", "group", "main"]

# Cell delays, ns (nextpnr-ecp5's figures for the -6 speed grade in its critical-path listings).
CLK_TO_Q_NS = 0.52
LUT4_NS = 0.24
MUX_NS = 0.17                # PFUMX / L6MUX21 from the LUTs of their slice
MUX_SELECT_NS = 0.26         # their select input
CARRY_IN_NS = 0.45           # CCU2C: a LUT input to COUT or S
CARRY_CHAIN_NS = 0.07        # CIN -> COUT, per CCU2C
CARRY_OUT_NS = 0.44          # CIN -> S
MULT_NS = 3.93               # MULT18X18D without input or output registers
EBR_CLK_TO_Q_NS = 5.83       # DP16KD output without its output register
LUTRAM_READ_NS = 0.5         # TRELLIS_DPR16X4 read address -> data
ROUTE_BASE_NS = 0.75
ROUTE_FANOUT_NS = 0.3
ROUTE_MAX_NS = 4.0
# A net into or out of a DSP: they sit in a few fixed rows, so their nets are long whatever the fan-out
# (2.2-5.2 ns in the routed builds of 2026-12-05, against ~1 ns for other nets of fan-out 1; a block RAM's
# output net was 1.2 ns there, so block RAMs are not counted).
HARD_ROUTE_NS = 2.5
_HARD_CELLS = ("MULT18X18D",)

# Where paths end: the inputs sampled by a clock edge.
_ENDPOINT_PORTS = {"TRELLIS_FF": ("DI", "CE", "LSR", "M"),
                   "TRELLIS_DPR16X4": ("WAD", "DI", "WRE")}
_EBR_INPUTS = ("AD", "DI", "CE", "WE", "CS")


def route_ns(fanout: int) -> float:
    return min(ROUTE_MAX_NS, ROUTE_BASE_NS + ROUTE_FANOUT_NS * math.log2(fanout + 1))


@dataclass
class Endpoint:
    """One sampled input: `cell`.`port`, its estimated arrival (ns after the clock edge) and the cells of its
    longest path, first (a register or block RAM) to last (the one driving the endpoint)."""
    arrival_ns: float
    cell: str
    port: str
    path: list = field(default_factory=list)


def _scope(name: str) -> str:
    """The register or memory a cell belongs to, from the names Yosys gives cells it maps onto a signal."""
    name = name.lstrip("\\")
    return re.split(r"_TRELLIS|\$|_LUT4|_CCU2C|_PFUMX|_L6MUX|_DO[AB]?\d", name)[0].rstrip(".")


class _Graph:
    def __init__(self, module: dict):
        self.cells = module["cells"]
        self.driver = {}
        fanout = collections.Counter()
        for name, cell in self.cells.items():
            for port, bits in cell["connections"].items():
                out = cell["port_directions"].get(port) == "output"
                for bit in bits:
                    if isinstance(bit, str):
                        continue            # constants
                    if out:
                        self.driver[bit] = (name, port)
                    else:
                        fanout[bit] += 1
        self.fanout = fanout
        self.arrival = {}
        self.pred = {}

    def _inputs(self, name: str, ports) -> list:
        """(bit, driver cell, driver port, sink port) of the cell's inputs among `ports`."""
        cell = self.cells[name]
        found = []
        for port in ports:
            for bit in cell["connections"].get(port, ()):
                if not isinstance(bit, str) and bit in self.driver:
                    found.append((bit, *self.driver[bit], port))
        return found

    def _arcs(self, name: str, port: str) -> list:
        """(input ports, delay) of the timing arcs into output `port` of cell `name`; [] for a start point."""
        cell = self.cells[name]
        kind = cell["type"]
        if kind == "LUT4":
            return [("ABCD", LUT4_NS)]
        if kind == "PFUMX":
            return [(("ALUT", "BLUT"), MUX_NS), (("C0",), MUX_SELECT_NS)]
        if kind == "L6MUX21":
            return [(("D0", "D1"), MUX_NS), (("SD",), MUX_SELECT_NS)]
        if kind == "CCU2C":
            lut_inputs = ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1")
            return [(lut_inputs, CARRY_IN_NS), (("CIN",), CARRY_CHAIN_NS if port == "COUT" else CARRY_OUT_NS)]
        if kind == "MULT18X18D":
            return [(tuple(p for p in cell["connections"] if p[0] in "AB" and p[1:].isdigit()), MULT_NS)]
        if kind == "TRELLIS_DPR16X4":
            return [(("RAD",), LUTRAM_READ_NS)]
        return []

    def _start_ns(self, name: str) -> float:
        kind = self.cells[name]["type"]
        return {"TRELLIS_FF": CLK_TO_Q_NS, "DP16KD": EBR_CLK_TO_Q_NS}.get(kind, 0.0)

    def _wire_ns(self, bit, driver: str, dport: str, sink: str, sport: str) -> float:
        same_slice = ((self.cells[driver]["type"] == "CCU2C" and dport == "COUT")
                      or (self.cells[sink]["type"] == "PFUMX" and sport in ("ALUT", "BLUT"))
                      or (self.cells[sink]["type"] == "L6MUX21" and sport in ("D0", "D1")))
        if same_slice:
            return 0.0
        if self.cells[driver]["type"] in _HARD_CELLS or self.cells[sink]["type"] in _HARD_CELLS:
            return max(HARD_ROUTE_NS, route_ns(self.fanout[bit]))
        return route_ns(self.fanout[bit])

    def output_ns(self, name: str, port: str) -> float:
        """Arrival at a cell output (memoised; an explicit stack, since carry chains make deep recursions).

        A cell is expanded (its inputs pushed), then computed once they are known. Only an input whose cell is
        being expanded further down the same chain closes a combinational loop: the loop is cut there. An input
        merely waiting elsewhere on the stack (reconvergent fan-out) is computed first, like any other."""
        expanding = set()
        stack = [((name, port), False)]
        while stack:
            key, expanded = stack.pop()
            if key in self.arrival:
                continue
            arcs = self._arcs(*key)
            if not expanded:
                expanding.add(key)
                stack.append((key, True))
                stack.extend(((d, dp), False) for ports, _ in arcs for _, d, dp, _ in self._inputs(key[0], ports)
                             if (d, dp) not in self.arrival and (d, dp) not in expanding)
                continue
            best, pred = self._start_ns(key[0]), None
            for ports, delay in arcs:
                for bit, d, dp, sp in self._inputs(key[0], ports):
                    if (d, dp) not in self.arrival:
                        continue                      # it closes a combinational loop: cut there
                    t = self.arrival[(d, dp)] + self._wire_ns(bit, d, dp, key[0], sp) + delay
                    if t > best:
                        best, pred = t, (d, dp)
            self.arrival[key], self.pred[key] = best, pred
            expanding.discard(key)
        return self.arrival[(name, port)]

    def input_ns(self, name: str, port: str):
        """(arrival, driver) at a cell input: the latest of its bits."""
        best, pred = None, None
        for bit, d, dp, sp in self._inputs(name, (port,)):
            t = self.output_ns(d, dp) + self._wire_ns(bit, d, dp, name, sp)
            if best is None or t > best:
                best, pred = t, (d, dp)
        return best, pred

    def path(self, last) -> list:
        cells = []
        while last is not None:
            cells.append(last[0])
            last = self.pred.get(last)
        return cells[::-1]


def estimate(netlist: dict, top: str = "top") -> list:
    """Every endpoint of module `top` of a Yosys JSON netlist (after synth_ecp5), latest first."""
    graph = _Graph(netlist["modules"][top])
    ends = []
    for name, cell in graph.cells.items():
        kind = cell["type"]
        if kind == "DP16KD":
            ports = [p for p in cell["connections"] if p.startswith(_EBR_INPUTS) and not p.startswith("CLK")]
        else:
            ports = _ENDPOINT_PORTS.get(kind, ())
        for port in ports:
            arrival, last = graph.input_ns(name, port)
            if arrival is not None:
                ends.append(Endpoint(round(arrival, 2), name, port, graph.path(last)))
    ends.sort(key=lambda e: -e.arrival_ns)
    return ends


def group(ends: list, over_ns: float) -> list:
    """Endpoints later than over_ns by (start scope, end scope): [(start, end, count, worst Endpoint)], the
    worst group first."""
    groups = {}
    for e in ends:
        if e.arrival_ns <= over_ns:
            break
        key = (_scope(e.path[0]) if e.path else "?", _scope(e.cell))
        if key not in groups:
            groups[key] = [0, e]
        groups[key][0] += 1
    return [(s, t, n, worst) for (s, t), (n, worst) in sorted(groups.items(), key=lambda kv: -kv[1][1].arrival_ns)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ci.logic_paths", description=__doc__.split("\n\n")[0])
    ap.add_argument("netlist", type=Path, help="Yosys JSON netlist after synth_ecp5 (top.json of a board build)")
    ap.add_argument("--over", type=float, default=13.3, help="list endpoints later than this, ns (default: 75 MHz)")
    ap.add_argument("--top", type=int, default=40, help="how many groups to list (default 40)")
    ap.add_argument("--detail", action="store_true", help="list the cells of each group's worst path")
    args = ap.parse_args(argv)
    try:
        netlist = json.loads(args.netlist.read_text())
    except (OSError, ValueError) as exc:
        print(f"logic_paths: cannot read {args.netlist}: {exc}", file=sys.stderr)
        return 2
    ends = estimate(netlist)
    late = sum(1 for e in ends if e.arrival_ns > args.over)
    worst = ends[0].arrival_ns if ends else 0.0
    try:
        print(f"{len(ends)} endpoints; worst {worst:.2f} ns (~{1000 / worst:.1f} MHz); {late} later than "
              f"{args.over} ns" if worst else f"{len(ends)} endpoints", flush=True)
        for start, end, n, e in group(ends, args.over)[:args.top]:
            print(f"{e.arrival_ns:6.2f} ns {n:5d} x  {start}  ->  {end}")
            if args.detail:
                for cell in e.path:
                    print(f"             {netlist['modules']['top']['cells'][cell]['type']:16s} {cell[:140]}")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head -1`): what it read is what it wanted. Python's own flush at exit
        # would raise again, so the rest goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
