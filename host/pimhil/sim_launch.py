"""Start and stop a sim server (`python -m tb.sim_server`) from a checkout of this repository.

The server needs the development environment (cocotb, Verilator); a bench PC with only the host package
has no simulation and gets a clear error. The repository is found from $PIM_REPO, the working directory or
this file's location.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .errors import DeviceGone, LinkTimeout

# The sim server's links: (link name for `python -m tb.sim_server --link`, open_target/pimctl target kind,
# what it is). The one table the server, the launcher, the targets and pimctl's help all read.
SIM_LINKS = (
    ("uart", "sim", "UART link bytes, PHY bypassed, 64 bytes per wake-up"),
    ("uart-phy", "sim-phy", "UART link through the 8N1 PHY, RFC 2217 (rates, breaks)"),
    ("uart-bytes", "sim-bytes", "UART link bytes, plain byte bypass (slow)"),
    ("pcie", "sim-pcie", "AXI ports with XDMA routing (BAR and DMA)"),
)
LINKS = tuple(link for link, _, _ in SIM_LINKS)
LINK_OF_TARGET = {target: link for link, target, _ in SIM_LINKS}


def sim_target(target: str) -> tuple[str, str] | None:
    """(link, preset) of a sim-server target string (`sim-pcie:board` -> ("pcie", "board"); without a preset the
    server runs the "sim" preset), None for any other target."""
    kind, _, preset = target.partition(":")
    return (LINK_OF_TARGET[kind], preset or "sim") if kind in LINK_OF_TARGET else None


def find_repo() -> Path:
    here = [Path(os.environ["PIM_REPO"])] if os.environ.get("PIM_REPO") else []
    here += [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
    for d in here:
        if (d / "tb" / "sim_server" / "__main__.py").is_file() and (d / "hw").is_dir():
            return d
    raise FileNotFoundError("the sim targets need a checkout of the pim-hil repository (tb/sim_server); "
                            "run from inside it or set PIM_REPO")


class SimServer:
    """A sim server process serving `link` for the `preset` device; a context manager.

    start_timeout: seconds for the model build (minutes on a first run) and start-up.
    deadline: seconds the server may live. accept: seconds it waits for its client.
    idle: seconds the connected client may send nothing, with no answer owed to it, before the server exits
    (None: the server's default, 30 s; 0: no limit, e.g. for an interactive session).
    python: the interpreter with cocotb and Verilator installed.
    baud_div, line_max_baud: uart-phy only (tb/sim_server --baud-div, --line-max-baud): the device's first
    divisor (0: its reset divisor) and the host rate above which the simulated line fails (0: never).
    `baud` is then the host rate that matches the first divisor.
    """

    def __init__(self, link: str = "uart", preset: str = "sim", *, start_timeout: float = 1800.0,
                 deadline: float = 7200.0, accept: float = 120.0, idle: float | None = None,
                 python: str | None = None, log: str | None = None, baud_div: int | None = None,
                 line_max_baud: float | None = None):
        if link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, not {link!r}")
        self.link, self.preset = link, preset
        self.repo = find_repo()
        self._tmp = tempfile.TemporaryDirectory(prefix="pim-sim-")
        ready = Path(self._tmp.name) / "ready.json"
        self.log_path = Path(log) if log else Path(self._tmp.name) / "server.log"
        python = python or _repo_python(self.repo)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.repo), str(self.repo / "host"), env.get("PYTHONPATH", "")])
        cmd = [python, "-m", "tb.sim_server", "--preset", preset, "--link", link, "--deadline", str(deadline),
               "--accept", str(accept), "--ready-file", str(ready), "--log", str(self.log_path)]
        if idle is not None:
            cmd += ["--idle", str(idle)]
        if baud_div is not None:
            cmd += ["--baud-div", str(baud_div)]
        if line_max_baud is not None:
            cmd += ["--line-max-baud", str(line_max_baud)]
        self.proc = subprocess.Popen(cmd, cwd=self.repo, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        limit = time.monotonic() + start_timeout
        try:
            while not ready.exists():
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode(errors="replace")[-2000:]
                    raise DeviceGone(f"sim server exited ({self.proc.returncode}) before listening: {err}\n"
                                     f"log: {self.tail_log()}")
                if time.monotonic() > limit:
                    raise LinkTimeout(f"sim server not listening after {start_timeout} s")
                time.sleep(0.05)
        except BaseException:
            # Ctrl-C or a failure while it starts: the server runs in its own session (no SIGINT reaches it)
            # and would go on building its model for minutes.
            self.kill()
            self._tmp.cleanup()
            raise
        info = json.loads(ready.read_text())
        self.host, self.port = info["host"], int(info["port"])
        self.baud = info.get("baud")

    def tail_log(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> int | None:
        """Wait for the server to end by itself (it exits when its client leaves), else terminate it."""
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.kill()
            except BaseException:
                self.kill()         # a second Ctrl-C while waiting must not leave the server behind
                raise
        if self.proc.stderr:
            self.proc.stderr.close()
        self._tmp.cleanup()
        return self.proc.returncode

    def kill(self) -> None:
        """End the server at once: the launcher and the simulator it runs (one process group)."""
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def _signal(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass    # already gone

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _repo_python(repo: Path) -> str:
    venv = repo / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable
