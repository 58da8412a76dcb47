"""Figures a cocotb test hands back to the Python that ran it, as plain values.

A cocotb test runs in the simulator's process, so it cannot return anything to its caller. The runner
(tb/support/runner.py `run`) therefore names a JSON file in PIM_TB_RESULTS (build/tb/<config>/figures.json),
the test calls `record(name, values)`, and `run` returns the file's content: `{name: values, ...}` for every
record the run made. ci/bench.py takes its figures from there; nothing else parses test output.

Without PIM_TB_RESULTS (a test run by hand, the sim server) `record` only logs the figures.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

RESULTS_ENV = "PIM_TB_RESULTS"
FILE_NAME = "figures.json"

log = logging.getLogger("cocotb.results")    # under cocotb's logger, so the simulator log shows it


def _plain(value):
    # numpy scalars (counts read back through numpy, utilisations) are the one non-JSON type tests produce.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a figure (use numbers, strings, lists, dicts)")


def record(name: str, values: dict) -> None:
    """Add `values` under `name` to this run's results; a later record of the same name replaces it."""
    text = json.dumps(values, default=_plain)        # refuse what the caller could not read back, even unsaved
    log.info("figures %s: %s", name, text)
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    p = Path(path)
    data = load(p)
    data[name] = json.loads(text)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, p)      # a reader never sees half a file, even if the simulator dies mid-write


def load(path: Path) -> dict:
    """The records in `path`, {} if the run made none."""
    return json.loads(path.read_text()) if path.exists() else {}
