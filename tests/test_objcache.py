"""tb/support/objcache.py, Verilator's OBJCACHE hook, with a fake compiler that counts its runs and writes an
object and a -MMD dependency file as g++ does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tb" / "support" / "objcache.py"

FAKE_CXX = """#!{python}
import sys
from pathlib import Path
args = sys.argv[1:]
with open({count!r}, "a") as f:
    f.write("run\\n")
out = args[args.index("-o") + 1]
src = [a for a in args if a.endswith(".cpp")][0]
extra = [a[len("-DEP="):] for a in args if a.startswith("-DEP=")]
Path(out).write_text("object of " + Path(src).read_text() + " with " + " ".join(args))
Path(out).with_suffix(".d").write_text(out + ": " + " ".join([src, *extra]) + "\\n")
"""


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "include"
    root.mkdir()
    (root / "verilated_config.h").write_text("#define VERILATOR_VERSION 5\n")
    (root / "verilated.cpp").write_text("int runtime;\n")
    (root / "verilated.h").write_text("// header\n")
    count = tmp_path / "runs"
    cxx = tmp_path / "fake-cxx"
    cxx.write_text(FAKE_CXX.format(python=sys.executable, count=str(count)))
    cxx.chmod(0o755)
    e = {**os.environ, "PIM_OBJCACHE_DIR": str(tmp_path / "cache"), "PIM_OBJCACHE_ROOT": str(root)}
    return tmp_path, root, cxx, count, e


def _compile(cwd, cxx, src, e, *flags):
    cwd.mkdir(exist_ok=True)
    subprocess.run([sys.executable, str(SCRIPT), str(cxx), "-Os", *flags, "-c", "-o", "verilated.o", str(src)],
                   cwd=cwd, env=e, check=True)
    return (cwd / "verilated.o").read_text(), (cwd / "verilated.d").read_text()


def _runs(count):
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_a_runtime_object_is_compiled_once_and_copied_after(env):
    tmp, root, cxx, count, e = env
    first = _compile(tmp / "model_a", cxx, root / "verilated.cpp", e, f"-DEP={root / 'verilated.h'}")
    second = _compile(tmp / "model_b", cxx, root / "verilated.cpp", e, f"-DEP={root / 'verilated.h'}")
    assert _runs(count) == 1
    assert first == second


def test_other_flags_or_another_source_text_compile_again(env):
    tmp, root, cxx, count, e = env
    _compile(tmp / "a", cxx, root / "verilated.cpp", e)
    _compile(tmp / "b", cxx, root / "verilated.cpp", e, "-DVM_COVERAGE=1")
    (root / "verilated.cpp").write_text("int runtime_v2;\n")
    obj, _ = _compile(tmp / "c", cxx, root / "verilated.cpp", e)
    assert _runs(count) == 3
    assert "runtime_v2" in obj


def test_a_source_outside_the_include_directory_is_never_cached(env):
    tmp, root, cxx, count, e = env
    model = tmp / "model"
    model.mkdir()
    (model / "verilator.cpp").write_text("#include \"Vtop.h\"\n")
    for _ in range(2):
        subprocess.run([sys.executable, str(SCRIPT), str(cxx), "-c", "-o", "verilator.o", "verilator.cpp"],
                       cwd=model, env=e, check=True)
    assert _runs(count) == 2
    assert not (tmp / "cache").exists()


def test_an_object_that_depends_on_a_model_file_is_not_stored(env):
    tmp, root, cxx, count, e = env
    (tmp / "a").mkdir()
    (tmp / "a" / "Vtop.h").write_text("// the model\n")
    _compile(tmp / "a", cxx, root / "verilated.cpp", e, f"-DEP={tmp / 'a' / 'Vtop.h'}")
    _compile(tmp / "b", cxx, root / "verilated.cpp", e, f"-DEP={tmp / 'a' / 'Vtop.h'}")
    assert _runs(count) == 2


def test_without_a_cache_directory_it_only_runs_the_compiler(env):
    tmp, root, cxx, count, e = env
    del e["PIM_OBJCACHE_DIR"]
    _compile(tmp / "a", cxx, root / "verilated.cpp", e)
    _compile(tmp / "b", cxx, root / "verilated.cpp", e)
    assert _runs(count) == 2


def test_a_failing_compile_keeps_its_exit_code_and_stores_nothing(env):
    tmp, root, cxx, count, e = env
    bad = tmp / "bad-cxx"
    bad.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    bad.chmod(0o755)
    rc = subprocess.call([sys.executable, str(SCRIPT), str(bad), "-c", "-o", "verilated.o",
                          str(root / "verilated.cpp")], cwd=tmp, env=e)
    assert rc == 3
    assert not (tmp / "cache").exists()
