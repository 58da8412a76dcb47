#!/usr/bin/env python3
"""Verilator's OBJCACHE hook: compiles Verilator's own run-time library once per set of flags, not once per model.

verilated.mk compiles every object as `$(OBJCACHE) $(CXX) ... -c -o <obj> <src>`; tb/support/runner.py sets
OBJCACHE to this script. Every model directory compiles the same run-time sources (verilated.cpp,
verilated_vpi.cpp, verilated_cov.cpp, verilated_threads.cpp: ~12 s of g++ per model, 2026-12-04), and CI builds
some seventy models. This script serves those objects from a cache keyed by the complete compiler command line,
the source's text, Verilator's version header and the compiler binary, and runs everything else unchanged: a
model's own files, and any source outside Verilator's include directory (cocotb's verilator.cpp includes the
model's header).

An object is stored only when its dependency file (-MMD, written beside it) names no file outside Verilator's
include directory, so nothing that depends on the model directory is ever shared. Stores are atomic (a
temporary file, then a rename), so parallel builds may race for the same entry. Standard library only: make
runs it with whatever `python3` is on PATH.

Environment: PIM_OBJCACHE_DIR (the cache directory; unset: no caching), PIM_OBJCACHE_ROOT (Verilator's include
directory, the only sources cached).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _source_and_output(cmd: list[str]) -> tuple[str | None, str | None]:
    if "-c" not in cmd or "-o" not in cmd:
        return None, None
    i = cmd.index("-o")
    out = cmd[i + 1] if i + 1 < len(cmd) else None
    srcs = [a for a in cmd if a.endswith((".cpp", ".cc", ".c")) and not a.startswith("-")]
    return (srcs[0] if len(srcs) == 1 else None), out


def _key(cmd: list[str], src: Path, root: Path) -> str:
    h = hashlib.sha256()
    h.update("\0".join(cmd).encode())
    h.update(src.read_bytes())
    h.update((root / "verilated_config.h").read_bytes())
    compiler = shutil.which(cmd[0])
    if compiler is None:
        raise FileNotFoundError(cmd[0])
    st = Path(compiler).resolve().stat()
    h.update(f"{Path(compiler).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _deps_inside(dep_file: Path, root: Path) -> bool:
    """True when every dependency the .d file names lies inside `root` (the object's target name aside)."""
    text = dep_file.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if ":" not in line:
            continue
        _, deps = line.split(":", 1)
        for d in deps.split():
            if not Path(d).resolve().is_relative_to(root):
                return False
    return True


def _store(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".tmp-")
    os.close(fd)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv: list[str]) -> int:
    cmd = argv[1:]
    if not cmd:
        print("objcache: usage: objcache.py <compiler> <arguments...>", file=sys.stderr)
        return 2
    cache, root = os.environ.get("PIM_OBJCACHE_DIR"), os.environ.get("PIM_OBJCACHE_ROOT")
    src, out = _source_and_output(cmd)
    if not (cache and root and src and out) or not Path(src).resolve().is_relative_to(Path(root).resolve()):
        return subprocess.call(cmd)
    root_p = Path(root).resolve()
    entry = Path(cache) / _key(cmd, Path(src), root_p)
    obj, dep = Path(out), Path(out).with_suffix(".d")
    if (entry / "obj").is_file() and (entry / "dep").is_file():
        shutil.copyfile(entry / "obj", obj)
        shutil.copyfile(entry / "dep", dep)
        return 0
    rc = subprocess.call(cmd)
    if rc == 0 and dep.is_file() and _deps_inside(dep, root_p):
        # The object first: an entry is complete once its dependency file exists.
        _store(obj, entry / "obj")
        _store(dep, entry / "dep")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
