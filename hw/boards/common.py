"""What every board top shares: the device as built for hardware, and its simulation-only ports tied off.

The hardware assembly is `hw.device.Device(params=...)`: it has no simulation-only port or logic (those are
hw/sim_device.py's SimDevice). `SIM_ONLY_PORTS` are tied off only where a device still has them. Ports that
a board does not wire (the AXI ports on a board without PCIe) are tied off the same way, inputs at their
reset value, which is "no request".
"""

from amaranth.hdl import Const, Value
from amaranth.lib import io, wiring
from pimhil.contract import DeviceParams

from hw.device import Device

__all__ = ["PCIE_PORTS", "SIM_ONLY_PORTS", "check_top_params", "hardware_device", "pin", "tie_off"]

# Device ports a simulation drives and no board does. Names that the device no longer has are skipped, so
# the board tops keep building when the lead removes them from the hardware assembly.
SIM_ONLY_PORTS = ("uart_bypass", "ub_in", "ub_out")
# XDMA's AXI4-Lite (BAR) and AXI4 (H2C/C2H) ports.
PCIE_PORTS = ("axil", "axi")


def hardware_device(*, params):
    """The device as an FPGA build instantiates it: no simulation bridge."""
    if not isinstance(params, DeviceParams):
        raise TypeError(f"params must be a DeviceParams, not {params!r}")
    return Device(params=params)


def check_top_params(*, params, por_cycles):
    """The checks every board top makes of its constructor arguments (exact messages tested)."""
    if not isinstance(params, DeviceParams):
        raise TypeError(f"params must be a DeviceParams, not {params!r}")
    if not isinstance(por_cycles, int) or not 2 <= por_cycles <= 1 << 24:
        raise ValueError(f"por_cycles must be an int in [2, 2**24], not {por_cycles!r}")


def tie_off(m, component, names):
    """Drive every input bit under the members `names` of `component` with its reset value.

    Outputs are left unconnected (synthesis removes what drives only them). Returns the names that were
    present, so a caller can tell which ports it actually tied off.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be a wiring.Component, not {component!r}")
    present = []
    for name in names:
        if name not in component.signature.members:
            continue
        present.append(name)
        for path, member, port in component.signature.flatten(component):
            if path[0] != name:
                continue
            if member.flow == wiring.In:
                # The port signal carries the member's reset value (e.g. an idle-high UART line).
                m.d.comb += port.eq(Const(getattr(port, "init", 0), len(Value.cast(port))))
    return present


def pin(m, platform, name, direction, *, number=0, sub=None):
    """Request a pin (or subsignal `sub` of a resource) raw and put an I/O buffer on it; returns the
    buffer's `i` (input) or `o` (output) signal."""
    port = platform.request(name, number, dir="-")
    if sub is not None:
        port = getattr(port, sub)
    buf = io.Buffer(direction, port)
    m.submodules[f"{name}_{number}{'_' + sub if sub else ''}_buf"] = buf
    return buf.i if direction == "i" else buf.o
