"""Transports: one file each, one interface (base.Transport). The register layer above never knows which.

Targets (`open_target`):
  golden[:preset]          the golden model, in-process
  {sim_targets}
  uart:<pyserial URL>      a board (or a running sim server: uart:socket://127.0.0.1:PORT)
  xdma:<device path>       a board through the XDMA driver (/dev/xdma0 or /dev/xdma0_user)
  sysfs:<resource path>    a board's BAR mmap'ed from sysfs, registers only
  pcie-sock:[HOST:]PORT    a running sim server's PCIe port
"""

from __future__ import annotations

from ..sim_launch import SIM_LINKS, sim_target
from .base import Transport

__all__ = ["Transport", "open_target", "TARGET_HELP"]

__doc__ = __doc__.format(sim_targets="\n  ".join(f"{t + '[:preset]':24s} sim server for the call: {doc}"
                                                for _, t, doc in SIM_LINKS))
TARGET_HELP = __doc__.split("Targets (`open_target`):\n", 1)[1]


def open_target(target: str, *, timeout: float | None = None, **kw) -> Transport:
    """A transport for a target string (above). timeout: link deadline in seconds (each transport's default
    if None). Raises ValueError for an unknown target, DeviceGone if it cannot be reached."""
    kind, _, rest = target.partition(":")
    tkw = {} if timeout is None else {"timeout": timeout}
    if kind == "golden":
        from .golden import GoldenTransport
        return GoldenTransport(rest or "sim")
    if (sim := sim_target(target)) is not None:
        from ..sim_launch import SimServer
        link, preset = sim
        server = SimServer(link, preset, **kw)
        try:
            if link == "pcie":
                from .sim_pcie import SimPcieTransport
                t = SimPcieTransport(f"{server.host}:{server.port}", **tkw)
            elif link == "uart-phy":
                from .uart import UartTransport
                # RFC 2217 carries the rate and breaks to the simulated line. The simulation is far slower
                # than the rate says: deadlines are set for the simulation.
                t = UartTransport(f"rfc2217://{server.host}:{server.port}", baudrate=server.baud,
                                  timeout=timeout or 30.0)
                t.wire_baud = 20_000
            else:
                from .uart import UartTransport
                # The simulated link moves ~10^4..10^5 bytes/s: deadlines are set for that, not for the baud.
                t = UartTransport(f"socket://{server.host}:{server.port}", baudrate=20_000,
                                  timeout=timeout or 30.0)
        except BaseException:   # any failure, Ctrl-C included: do not leave the server running, then re-raise
            server.stop(0)
            raise
        t.name = kind
        t.server = server
        close = t.close

        def close_and_stop():
            try:
                close()
            finally:
                server.stop()           # a close that fails must not leave the server running
        t.close = close_and_stop
        return t
    if kind == "uart":
        from .uart import UartTransport
        return UartTransport(rest, **tkw, **kw)
    if kind == "xdma":
        from .xdma import XdmaFiles, XdmaTransport
        return XdmaTransport(XdmaFiles(rest, **tkw))
    if kind == "sysfs":
        from .sysfs import SysfsTransport
        return SysfsTransport(rest)
    if kind == "pcie-sock":
        from .sim_pcie import SimPcieTransport
        return SimPcieTransport(rest, **tkw)
    raise ValueError(f"unknown target {target!r}; targets:\n{TARGET_HELP}")
