"""verilator --lint-only -Wall on generated tops, with only the documented waivers (tb/support/runner.py).

Usage: python -m ci.lint rtl/<top>.v ...   Exits non-zero on any warning.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tb.support.runner import LINT_WAIVERS, verilator_on_path


def lint(path: Path) -> subprocess.CompletedProcess:
    verilator_on_path()
    top = path.stem
    return subprocess.run(["verilator", "--lint-only", "-Wall", *LINT_WAIVERS, "--top-module", top, str(path)],
                          capture_output=True, text=True)


def main(argv=None):
    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        raise SystemExit("usage: python -m ci.lint FILE.v ...")
    verilator_on_path()
    failed = 0
    # One Verilator per top, side by side (each is single-threaded); reported in the order given.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(lint, paths))
    for p, r in zip(paths, results):
        ok = r.returncode == 0 and "%Warning" not in r.stderr
        print(f"{'clean' if ok else 'FAILED'}: {p}")
        if not ok:
            failed += 1
            sys.stderr.write(r.stderr[-4000:])
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
