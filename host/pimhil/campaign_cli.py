"""`pimctl campaign run | status | report` (docs/campaigns.md); wired into cli.py's parser and main."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time

from .campaign import SpecError, load_spec, open_db, run_campaign, status


class MissingExtra(Exception):
    """An optional dependency is not installed: the message names the extra that brings it."""


def need(module: str, extra: str = "campaign", why: str = ""):
    """Import an optional dependency, or raise MissingExtra with a one-line install hint."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{why or module} needs the `{extra}` extra: pip install './host[{extra}]' "
                           f"(or `pip install -r requirements.txt`)") from None


# A sim server started for a campaign waits for its client between cases (data are made and references
# computed on the host meanwhile, minutes for the largest shapes), not the default 30 s of silence.
SIM_IDLE_S = 3600.0


def open_kw(target: str) -> dict:
    """open_target keyword arguments for a campaign on `target`."""
    from .sim_launch import sim_target
    return {"idle": SIM_IDLE_S} if sim_target(target) else {}


def add_parser(sub, count, seconds) -> None:
    """The `campaign` subcommand and its three actions on argparse subparsers `sub`."""
    c = sub.add_parser("campaign", help="run, watch and report comparison campaigns (docs/campaigns.md)")
    cs = c.add_subparsers(dest="campaign_cmd", required=True)
    r = cs.add_parser("run", help="run a campaign spec's cases into a results database")
    r.add_argument("spec", help="campaign spec (TOML), e.g. campaigns/smoke.toml")
    r.add_argument("--target", dest="targets", action="append", metavar="TARGET",
                   help="where to run (default golden); repeat for several boards, one worker each")
    r.add_argument("--db", required=True, help="SQLite results file (created if missing; reruns resume)")
    r.add_argument("--workers", type=count, default=None, help="run on a local Dask cluster of N workers")
    r.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="submit to a running dask.distributed cluster")
    r.add_argument("--json", action="store_true", help="print one JSON object at the end")
    r.add_argument("--run-timeout", type=seconds, default=600.0, help="deadline per workload, seconds")
    st = cs.add_parser("status", help="done / failed / remaining per campaign and target")
    st.add_argument("--db", required=True)
    st.add_argument("--json", action="store_true")
    rp = cs.add_parser("report", help="index.html with plots, verdicts, projection, JUnit XML and CSV")
    rp.add_argument("--db", required=True)
    rp.add_argument("--out", required=True, help="directory for index.html, junit.xml, cases.csv, plots")
    rp.add_argument("--json", action="store_true")
    from .projection import add_arguments
    add_arguments(rp)


def check(a, usage_error) -> None:
    """Checks before any work: the spec parses, the targets' syntax, the workers/scheduler combination."""
    from .cli import _check_target
    if a.campaign_cmd == "run":
        try:
            a.spec_obj = load_spec(a.spec)
        except SpecError as e:
            raise usage_error(str(e)) from None
        a.targets = a.targets or ["golden"]
        for t in a.targets:
            _check_target(t)
        if a.workers is not None and a.scheduler:
            raise usage_error("--workers and --scheduler exclude each other (one local cluster, or an existing one)")
        if a.scheduler and not a.scheduler.startswith(("tcp://", "tls://", "inproc://")):
            raise usage_error(f"--scheduler {a.scheduler!r}: expected tcp://HOST:PORT")
        if len(a.targets) > 1 and a.targets[0].partition(":")[0] not in ("uart", "xdma", "sysfs", "pcie-sock"):
            raise usage_error("several --target values name boards (one worker each); for simulation and golden "
                              "targets use --workers N")
        d = os.path.dirname(os.path.abspath(a.db))
        if not os.path.isdir(d):
            raise usage_error(f"--db {a.db}: directory {d} does not exist")
    elif not os.path.isfile(a.db):
        raise usage_error(f"--db {a.db}: no results database there")


def run(a, usage_error) -> tuple[dict, int]:
    """Execute the checked campaign command; (result dict, exit status)."""
    try:
        conn = open_db(a.db)
    except sqlite3.Error as e:
        raise usage_error(f"--db {a.db}: not a results database ({e})") from None
    try:
        if a.campaign_cmd == "status":
            return {"status": status(conn)}, 0
        if a.campaign_cmd == "report":
            from .report import write_report
            try:
                return write_report(conn, a.out, a), 0
            except MissingExtra as e:
                raise usage_error(str(e)) from None
        return _run(a, conn, usage_error)
    finally:
        conn.close()


def _run(a, conn, usage_error):
    spec, t0 = a.spec_obj, time.monotonic()
    quiet = a.json

    def progress(case, st, n, total):
        if not quiet:
            print(f"[{n}/{total}] {case.key}: {st}", file=sys.stderr, flush=True)

    if a.workers is not None or a.scheduler or len(a.targets) > 1:
        from .campaign_dask import DaskExecutor
        try:
            ex = DaskExecutor(a.targets, workers=a.workers, scheduler=a.scheduler, run_timeout=a.run_timeout)
        except MissingExtra as e:
            raise usage_error(str(e)) from None
        with ex:
            counts = run_campaign(spec, a.targets[0], conn, device_factory=None, executor=ex, progress=progress,
                                  params=ex.params)
    else:
        from .device import Device
        from .transport import open_target
        with open_target(a.targets[0], **open_kw(a.targets[0])) as t:
            dev = Device(t, timeout=a.run_timeout)
            counts = run_campaign(spec, a.targets[0], conn, device_factory=lambda: dev, progress=progress,
                                  params=dev.params)
    res = {"campaign": spec.name, "db": a.db, **counts, "wall_s": round(time.monotonic() - t0, 3),
           "status": status(conn)}
    return res, 0 if counts["failed"] == 0 and counts["mismatch"] == 0 else 1


def human(res: dict) -> str:
    lines = []
    for s in res.get("status", []):
        lines.append(f"{s['campaign']} on {s['target']}: {s['done']} done, {s['mismatch']} mismatched, "
                     f"{s['failed']} failed, {s['remaining']} remaining (of {s['total']})")
    if "wall_s" in res:
        lines.append(f"this run: {res['done']} done, {res['mismatch']} mismatched, {res['failed']} failed, "
                     f"{res['skipped']} already finished; {res['wall_s']:.1f} s")
    if "index" in res:
        lines.append(f"report: {res['index']}")
    return "\n".join(lines) or json.dumps(res)


__all__ = ["add_parser", "check", "run", "human", "MissingExtra", "need", "argparse"]
