"""`make soak`: the soak of tb/soak (UART frames of every kind and hub command streams through the board
device, checked against the golden device) in SOAK_JOBS parallel simulations with seeds SEED, SEED+1, ...;
build/soak/summary.json holds the totals and each run's figures. Exit status 1 unless every run is clean and
the totals reach SOAK_FRAMES link frames and SOAK_STREAMS streams.

    python -m ci.soak                      # the whole soak (knobs in tb/README.md)
    python -m ci.soak --worker I --seed S --frames F --streams N   # one run (what the parent starts)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "soak"


def worker(i: int, seed: int, frames: int, streams: int) -> int:
    from tb.soak import test_soak
    from tb.support import results

    # This run's share, over any SOAK_* of the calling shell (which the simulator would see first).
    os.environ.update(SEED=str(seed), SOAK_FRAMES=str(frames), SOAK_STREAMS=str(streams))
    config = f"soak_{i}"
    try:
        test_soak.run(config=config, extra_env={"SOAK_FRAMES": str(frames), "SOAK_STREAMS": str(streams)},
                      log_file=OUT / f"worker_{i}.log")
        ok = True
    except AssertionError as e:
        print(e, file=sys.stderr)
        ok = False
    fig = results.load(test_soak.results_path(config)).get("soak")
    (OUT / f"worker_{i}.json").write_text(json.dumps({"ok": ok, "figures": fig}, indent=1))
    return 0 if ok else 1


def write_junit(summary: dict) -> None:
    """build/junit/soak.xml: one test case per run, as CI reads the pytest results."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="soak", tests=str(len(summary["runs"])),
                       failures=str(sum(not r["ok"] for r in summary["runs"])), time=str(summary["wall_s"]))
    for i, r in enumerate(summary["runs"]):
        case = ET.SubElement(suite, "testcase", classname="ci.soak", name=f"soak_run_{i}_seed_{r.get('seed')}",
                             time=str(r.get("wall_s", 0)))
        if not r["ok"]:
            message = (f"stopped (exit {r.get('exit')}) before writing its figures" if r.get("hangs") is None else
                       f"hangs {r.get('hangs')}, silent corruptions {r.get('silent_corruptions')}, mismatches "
                       f"{r.get('mismatches')}")
            failure = ET.SubElement(case, "failure", message=message)
            failure.text = "\n".join(r.get("notes", [])) + f"\nSEED={summary['seed']} make soak reproduces it"
    path = ROOT / "build" / "junit" / "soak.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--frames", type=int, default=int(os.environ.get("SOAK_FRAMES", "1000000")))
    ap.add_argument("--streams", type=int, default=int(os.environ.get("SOAK_STREAMS", "100000")))
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("SOAK_JOBS", "2")))
    a = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if a.worker is not None:
        return worker(a.worker, a.seed, a.frames, a.streams)

    seed = int(os.environ.get("SEED") or random.SystemRandom().randrange(1, 2**31))
    print(f"soak: {a.frames} link frames and {a.streams} command streams in {a.jobs} runs, seed {seed} "
          f"(SEED={seed} make soak reproduces it; run i uses seed {seed}+i)", flush=True)
    for old in OUT.glob("worker_*"):
        old.unlink()
    t0 = time.monotonic()
    procs = []
    for i in range(a.jobs):
        share = (a.frames * (i + 1) // a.jobs - a.frames * i // a.jobs,
                 a.streams * (i + 1) // a.jobs - a.streams * i // a.jobs)
        procs.append(subprocess.Popen([sys.executable, "-m", "ci.soak", "--worker", str(i), "--seed", str(seed + i),
                                       "--frames", str(share[0]), "--streams", str(share[1])], cwd=ROOT))
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - t0
    runs = []
    for i in range(a.jobs):
        f = OUT / f"worker_{i}.json"
        runs.append(json.loads(f.read_text()) if f.exists() else {"ok": False, "figures": None})
    figs = [r["figures"] or {} for r in runs]

    def total(key):
        return sum(f.get(key, 0) for f in figs)

    kinds: dict[str, int] = {}
    for f in figs:
        for k, v in f.get("kinds", {}).items():
            kinds[k] = kinds.get(k, 0) + v
    summary = {
        "seed": seed, "seeds": [seed + i for i in range(a.jobs)],
        "frames": total("frames"), "link_frames": total("link_frames"), "streams": total("streams"),
        "hangs": total("hangs"), "silent_corruptions": total("silent_corruptions"), "mismatches": total("mismatches"),
        "image_words": total("image_words"), "image_words_differing": total("image_words_differing"),
        "answers": total("answers"), "timeouts_injected": total("gaps"),
        "swallowed_requests": total("swallowed_requests"),
        "kinds": dict(sorted(kinds.items())), "cycles": total("cycles"), "wall_s": round(wall, 1),
        "targets": {"link_frames": a.frames, "streams": a.streams},
        "runs": [{"ok": r["ok"], "exit": c, **{k: v for k, v in (r["figures"] or {}).items() if k != "kinds"}}
                 for r, c in zip(runs, codes)],
    }
    passed = (all(r["ok"] for r in runs) and not any(codes) and summary["link_frames"] >= a.frames
              and summary["streams"] >= a.streams and summary["hangs"] == summary["silent_corruptions"]
              == summary["mismatches"] == 0 and summary["image_words_differing"] == 0)
    summary["passed"] = passed
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    write_junit(summary)
    print(f"soak {'passed' if passed else 'FAILED'}: {summary['frames']} frames ({summary['link_frames']} link "
          f"frames), {summary['streams']} command streams, {summary['answers']} answers, {summary['cycles']} "
          f"cycles in {wall:.0f} s; hangs {summary['hangs']}, silent corruptions {summary['silent_corruptions']}, "
          f"mismatches {summary['mismatches']}, image {summary['image_words']} words "
          f"({summary['image_words_differing']} differ); build/soak/summary.json")
    for r in summary["runs"]:
        for note in r.get("notes", []):
            print(f"  seed {r.get('seed')}: {note}")
    for i, (r, c) in enumerate(zip(runs, codes)):
        if r["figures"] is None:
            # A run that wrote no figures did not fail a check: it was stopped or crashed, so say which.
            how = f"stopped by signal {-c}" if c < 0 else f"exited with {c}"
            print(f"  run {i} (seed {seed + i}) {how} before writing its figures: its frames are not counted")
    if not passed:
        print(f"reproduce: SEED={seed} make soak (logs: build/soak/worker_*.log)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
