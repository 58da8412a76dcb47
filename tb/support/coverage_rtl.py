"""Verilog with source locations for coverage builds (PIM_COVERAGE=1, `make coverage`): a simulated top of
hw/generate.py converted with `emit_src=True` into build/coverage/rtl/<top>.v, so that ci/coverage.py can map
Verilator's coverage points back to hw/*.py lines.

rtl/ is left as `make rtl` writes it (no source attributes, the normal models' hashes unchanged). The runner asks
for a top when a coverage build first needs it; <top>.hash beside it (a hash of hw/ and the contract) skips the
regeneration, minutes for a sim-preset top, while nothing changed. A lock keeps parallel workers from generating
the same top twice.

Amaranth's temporaries (escaped names starting with `$`: one per operator, no `hw/` location) are declared
between `/*verilator coverage_off*/` and `/*verilator coverage_on*/`, so Verilator gives toggle points to the
signals `hw/` names (ports, registers, every `Signal`) only: the temporaries are functions of those, they map to
no line a reader could act on, and they were more than half of the board device's toggle instrumentation
(docs/coverage.md, the toggle figures).
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COVERAGE_RTL = ROOT / "build" / "coverage" / "rtl"

HEADER = """\
// GENERATED FILE - DO NOT EDIT.
// Produced for `make coverage` (tb/support/coverage_rtl.py) from the Amaranth sources in hw/, with source
// locations (emit_src=True); top {top}, preset {preset}. rtl/{top}.v is the same design without them.
"""


# A declaration of a temporary: `wire \$12 ;`, `wire [47:0] \$13 ;`, `reg \$auto$...$381  = 0;` (one line each).
_TEMPORARY = re.compile(r"^(\s*)((?:wire|reg)\b(?:\s*\[[^\]]+\])?\s*\\\$[^;]*;)[ \t]*$", re.M)


def untoggled_temporaries(text: str) -> str:
    """The Verilog with every temporary's declaration inside coverage_off/coverage_on metacomments."""
    return _TEMPORARY.sub(r"\1/*verilator coverage_off*/ \2 /*verilator coverage_on*/", text)


def source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "hw").rglob("*.py")) + [ROOT / "host" / "pimhil" / "contract.py", Path(__file__)]:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def ensure(top: str) -> Path:
    """build/coverage/rtl/<top>.v, generated now unless it is current."""
    from amaranth.back import verilog

    from hw.generate import strip_zero_memory_init, tops

    COVERAGE_RTL.mkdir(parents=True, exist_ok=True)
    path, stamp = COVERAGE_RTL / f"{top}.v", COVERAGE_RTL / f"{top}.hash"
    want = source_hash()
    with open(COVERAGE_RTL / f".{top}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() and stamp.exists() and stamp.read_text() == want:
            return path
        found = [t for t in tops() if t[0] == top]
        if not found:
            raise FileNotFoundError(f"{top} is not a top of hw/generate.py")
        _, preset, _, factory = found[0]
        print(f"coverage: generating {path} (emit_src=True)", file=sys.stderr)
        text = HEADER.format(top=top, preset=preset) + untoggled_temporaries(strip_zero_memory_init(
            verilog.convert(factory(), name=top, emit_src=True)))
        path.write_text(text)
        stamp.write_text(want)
    return path


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(ensure(name))
