"""Gate-level simulation: the synthesised netlist of the device (ci/netlist.py) runs the driver suite's identity,
memory, GEMV and attention checks through its UART pins, bit-exact against the golden model.

What is simulated is Yosys' output for the ECP5, not the Amaranth source: LUT4, CCU2C, PFUMX, L6MUX21 and
TRELLIS_FF cells with Yosys' own models (share/lattice/cells_sim_ecp5.v), and MULT18X18D. Yosys ships some
cells as blackboxes only, with no behaviour Verilator could run:
- DP16KD and TRELLIS_DPR16X4 (RAM primitives): the netlist keeps memories as Yosys' inferred behavioural
  memories (memory mapping skipped); everything around them goes through the same passes as the ULX3S build.
- MULT18X18D: simulated by a model generated from the blackbox's port list (ci/netlist.py), for the
  combinational configuration Yosys' DSP mapping uses; any other configuration stops the simulation.
- EHXPLLL and the I/O buffers of the ULX3S top: the netlist's top is the device the board top instantiates;
  the clock comes straight from the testbench at the device's clk_hz.

The driver talks to the pins through a simulated USB-serial adapter (tb/netlist/serial_line.py): first contact
at the reset rate, then pimhil.uart_rate.raise_rate takes the link to 3 Mbaud as on a bench.

Run with `make gate-sim` (synthesises the netlist with the board toolchain, then this test); `make test`
skips it because the synthesis needs the board toolchain and several minutes.
"""

from __future__ import annotations

import functools
import os
import time

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from pimhil.contract import UART_RESET_BAUD, preset
from pimhil.transport.uart import UartTransport
from pimhil.uart_rate import open_device, raise_rate
from tb.netlist.serial_line import SerialLine, SimSerialPort
from tb.support.results import record
from tb.support.seed import rngs
from tests import driver_suite

def checks(p):
    """The driver suite's checks, [(name, check)]; memory and GEMV smaller than on faster targets (the netlist
    simulates about a thousand cycles per second and every byte on the line is 50 cycles at 3 Mbaud), still
    every bank, lane and padding case: 2 bursts in every bank, the GB and the scratch memory; a GEMV of
    banks + 1 rows (two row groups, the second padded) by a row - 3 (the last burst padded); attention as on
    every target."""
    return [("check_identity", driver_suite.check_identity),
            ("check_memory_round_trip",
             functools.partial(driver_suite.check_memory_round_trip, words=2 * p.lanes)),
            ("check_gemv_padded",
             functools.partial(driver_suite.check_gemv_padded, m=p.banks + 1, k=p.row_words - 3)),
            ("check_attention", driver_suite.check_attention)]


ENABLE_ENV = "PIM_GATE_SIM"


def _idle_inputs(dut, params):
    """Every input of the hardware device at its reset value (the AXI masters idle, the UART line high)."""
    from amaranth.hdl import Value
    from amaranth.lib import wiring

    from hw.device import Device

    dev = Device(params=params)
    for path, member, port in dev.signature.flatten(dev):
        if member.flow != wiring.In:
            continue
        name = "__".join(str(p) for p in path)
        getattr(dut, name).value = getattr(port, "init", 0) if len(Value.cast(port)) else 0


async def _progress(dut, line, every: int = 1 << 17):
    """A log line every `every` cycles: how far the run is and how fast the netlist simulates."""
    t0 = time.monotonic()
    while True:
        await ClockCycles(dut.clk, every)
        dut._log.info("%d cycles, %.0f cycles/s, %d bytes received", line.cycle,
                      line.cycle / (time.monotonic() - t0), line.received)


@cocotb.test()
async def test_driver_checks_on_netlist(dut):
    params = preset(os.environ.get("PIM_PRESET", "board"))
    # An even number of picoseconds (cocotb halves it); the serial line counts cycles, not picoseconds.
    Clock(dut.clk, 2 * round(5e11 / params.clk_hz), unit="ps").start()
    _idle_inputs(dut, params)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 8)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 8)
    _, rng = rngs(dut._log)
    line = SerialLine(dut, clk_hz=params.clk_hz, baud=UART_RESET_BAUD)
    cocotb.start_soon(_progress(dut, line))
    # Deadlines are wall-clock while the netlist runs far below real time: a read may run up to 5 ms of
    # simulated time before it returns empty-handed, and the driver waits up to 10 minutes for an answer.
    port = SimSerialPort(line, time_scale=0.1)
    transport = UartTransport(serial=port, baudrate=UART_RESET_BAUD, timeout=600.0, retries=0)

    def run():
        t0 = time.monotonic()
        dev = open_device(transport, timeout=600.0, poll_s=0)
        rate = raise_rate(dev)
        dut._log.info("%s", rate.message)
        assert rate.baud == 3_000_000, rate.as_dict()
        done, steps = [], {"first_contact": [line.cycle, round(time.monotonic() - t0, 1)]}
        for name, check in checks(params):
            dut._log.info("%s", name)
            c0, w0 = line.cycle, time.monotonic()
            check(dev, rng)
            done.append(name)
            steps[name] = [line.cycle - c0, round(time.monotonic() - w0, 1)]
            dut._log.info("%s passed: %d cycles in %.0f s", name, *steps[name])
        return done, steps, rate, time.monotonic() - t0

    done, steps, rate, seconds = await bridge(run)()
    assert line.framing_errors == 0, f"{line.framing_errors} framing errors on the line"
    # steps: [simulated cycles, wall seconds] of the first contact (with the rate switch) and of each check
    record("gate_level", {"checks": done, "baud": rate.baud, "cycles": line.cycle, "wall_s": round(seconds, 1),
                          "cycles_per_s": round(line.cycle / seconds), "steps": steps})
    dut._log.info("gate level: %s passed in %d cycles (%.0f s)", done, line.cycle, seconds)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get(ENABLE_ENV) != "1",
                    reason="gate-level simulation runs in `make gate-sim` (board toolchain, several minutes)")
def test_gate_level_netlist(monkeypatch):
    from ci.netlist import build_netlist, cells_sim_path
    from tb.support import runner

    report = build_netlist("board")
    assert report["status"] == "ok", f"netlist synthesis: {report['status']}"
    cells = report["cells"]
    assert cells.get("LUT4", 0) > 1000 and cells.get("TRELLIS_FF", 0) > 1000, cells
    assert not any(k in cells for k in ("DP16KD", "TRELLIS_DPR16X4")), cells
    sim = cells_sim_path()
    sources = [sim, *report["models"], report["netlist"], report["sim_top_file"]]
    build_args = [f"-I{sim.parent}", *NETLIST_WAIVERS, *NETLIST_BUILD]
    # The model's C++ is compiled with the optimisation levels below, for this model only (make variables of
    # Verilator's generated makefile, passed through MAKEFLAGS as the runner passes its own).
    monkeypatch.setenv("MAKEFLAGS", " ".join([os.environ.get("MAKEFLAGS", ""), *NETLIST_CXX_OPT]).strip())
    t0 = time.monotonic()
    runner.build(toplevel=report["sim_top"], sources=sources, build_dir=runner.BUILD / CONFIG,
                 build_args=build_args)
    build_s = time.monotonic() - t0
    figures = runner.run(toplevel=report["sim_top"], sources=sources, test_module="tb.netlist.test_netlist",
                         config=CONFIG, extra_env={"PIM_PRESET": "board"}, build_args=build_args,
                         rerun_waves=False)
    gate = figures["gate_level"]
    assert gate["checks"] == [name for name, _ in checks(preset("board"))]
    print(f"gate level: model built in {build_s:.0f} s; {gate['cycles']} cycles in {gate['wall_s']} s "
          f"({gate['cycles_per_s']} cycles/s)")


CONFIG = "netlist_board"
# Yosys' cell models and netlist meet these Verilator warnings; nothing else is waived.
NETLIST_WAIVERS = [
    "-Wno-SPECIFYIGN",      # the cells' specify blocks (timing arcs) mean nothing in a zero-delay simulation
    "-Wno-PINMISSING",      # cells instantiated without their unused pins (e.g. TRELLIS_FF without M)
    "-Wno-MODDUP",          # cells_sim_ecp5.v includes cells_ff.vh / cells_io.vh, which repeat a few modules
    "-Wno-GENUNNAMED",      # unnamed generate blocks in the cell models
    "-Wno-UNOPTFLAT",       # ABC9's LUT netlist reads a vector's bits in an order Verilator cannot split
]
# ~40,000 LUT4 and their nets make a C++ model of a few hundred files: functions are kept small (the compiler's
# cost grows faster than their size) and the evaluation code is compiled at -O1 instead of Verilator's -Os,
# which did not finish on a loaded 2-core machine (the rest is -O0 already: Verilator's OPT_SLOW).
NETLIST_BUILD = ["--output-split-cfuncs", "2000"]
NETLIST_CXX_OPT = ["OPT_FAST=-O1"]
