"""Gate-level simulation: the ULX3S build's synthesised netlist (ci/netlist.py) runs the driver suite's identity,
memory, GEMV and attention checks through its UART pins, bit-exact against the golden model.

What is simulated is the netlist the board build places and routes (Yosys' synth_ecp5 output for the whole
ULX3S top: PLL, power-on and button reset, I/O buffers, the device), not the Amaranth source: LUT4, CCU2C,
PFUMX, L6MUX21, TRELLIS_FF and TRELLIS_DPR16X4 cells with Yosys' own models (share/lattice/cells_sim_ecp5.v; LUT4
as one lookup, proven equal to Yosys' model by tb/netlist/test_cell_models.py).
Yosys ships three of its cells as blackboxes only, with no behaviour Verilator could run, and its I/O buffer's
inout pad cannot meet a top-level input in Verilator; ci/cell_models.py generates models from Yosys'
declarations, each refusing (a $fatal) any configuration it does not model:
- DP16KD (block RAM): the configurations Yosys' block RAM mapping instantiates (same width on both ports).
- MULT18X18D: the combinational multiplier of Yosys' DSP mapping.
- EHXPLLL: no frequency synthesis; CLKOP is CLKI, so the testbench drives the oscillator pin at the device's
  clock, and LOCK rises after a few cycles, so the top's reset logic runs as on the board.
- TRELLIS_IO: renamed TRELLIS_IO_IN / TRELLIS_IO_OUT by its direction in the simulator's copy of the netlist;
  input pads pass through, output pads are driven (never tristated on these tops).

The driver talks to the pins through a simulated USB-serial adapter (tb/netlist/serial_line.py): first contact
at the reset rate, then pimhil.uart_rate.raise_rate switches the link to the fastest rate the device's clock makes
(divisor UART_MIN_DIV: 18.75 Mbaud at 75 MHz), verified as on a bench. A bench stops at the adapter's 3 Mbaud;
the simulated line has no such limit, and the netlist simulates about 9,000 cycles per second, so every
cycle a byte saves counts (the 3 Mbaud switch itself is checked on the RTL, tests/test_uart_phy_rate.py).

Run with `make gate-sim` (the board's synthesis, reused from `make board` when the source is unchanged, then this
test); `make test` skips it because the synthesis needs the board toolchain and several minutes.
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

from hw.boards.ulx3s_85f import POR_CYCLES
from pimhil.contract import UART_RESET_BAUD, preset
from pimhil.transport.uart import UartTransport
from pimhil.uart_rate import max_baud, open_device, raise_rate
from tb.netlist.serial_line import SerialLine, SimSerialPort
from tb.support.results import record
from tb.support.seed import rngs
from tests import driver_suite

def checks(p):
    """The driver suite's checks, [(name, check)]; memory and GEMV smaller than on faster targets (the netlist
    simulates about 9,000 cycles per second and every byte on the line is 10 bits of UART_MIN_DIV cycles),
    still every bank, lane and padding case: 2 bursts in every bank, the GB and the scratch memory; a GEMV of
    banks + 1 rows (two row groups, the second padded) by a row - 3 (the last burst padded; the driver moves
    whole rows, so a shorter k would cost as much); attention as on every target."""
    return [("check_identity", driver_suite.check_identity),
            ("check_memory_round_trip",
             functools.partial(driver_suite.check_memory_round_trip, words=2 * p.lanes)),
            ("check_gemv_padded",
             functools.partial(driver_suite.check_gemv_padded, m=p.banks + 1, k=p.row_words - 3)),
            ("check_attention", driver_suite.check_attention)]


ENABLE_ENV = "PIM_GATE_SIM"


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
    # The oscillator pin at the device clock (the PLL model passes it through). An even number of picoseconds
    # (cocotb halves it); the serial line counts cycles, not picoseconds.
    Clock(dut.clk, 2 * round(5e11 / params.clk_hz), unit="ps").start()
    dut.uart_rx.value = 1
    # The reset button, pressed and let go; then the top holds the device in reset for POR_CYCLES.
    dut.btn.value = 1
    await ClockCycles(dut.clk, 32)
    dut.btn.value = 0
    await ClockCycles(dut.clk, POR_CYCLES + 32)
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
        rate = raise_rate(dev, rates=(max_baud(params.clk_hz),))
        dut._log.info("%s", rate.message)
        assert rate.baud == max_baud(params.clk_hz), rate.as_dict()
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
    assert int(dut.led_error.value) == 0, "the error LED is lit after the checks"
    # steps: [simulated cycles, wall seconds] of the first contact (with the rate switch) and of each check
    record("gate_level", {"checks": done, "baud": rate.baud, "cycles": line.cycle, "wall_s": round(seconds, 1),
                          "cycles_per_s": round(line.cycle / seconds), "steps": steps})
    dut._log.info("gate level: %s passed in %d cycles (%.0f s)", done, line.cycle, seconds)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get(ENABLE_ENV) != "1",
                    reason="gate-level simulation runs in `make gate-sim` (board toolchain, several minutes)")
def test_gate_level_netlist():
    from ci.netlist import build_netlist, cells_sim_path
    from tb.support import runner

    report = build_netlist()
    assert report["status"] == "ok", f"netlist: {report['status']}"
    cells = report["cells"]
    # The board build's netlist: block RAM, DSP, PLL and I/O cells, and no behavioural memory left.
    assert cells.get("LUT4", 0) > 1000 and cells.get("TRELLIS_FF", 0) > 1000, cells
    assert all(cells.get(k, 0) > 0 for k in ("DP16KD", "MULT18X18D", "EHXPLLL", "TRELLIS_IO_IN", "TRELLIS_IO_OUT")), \
        cells
    assert "TRELLIS_IO" not in cells, cells       # every pad renamed by its direction (no BIDIR pad)
    assert not any(k.startswith("$mem") for k in cells), cells
    sim = cells_sim_path()
    sources = [*report["models"], report["netlist"], report["sim_top_file"]]
    build_args = [f"-I{sim.parent}", *NETLIST_WAIVERS, *NETLIST_BUILD]
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
    "-Wno-INITIALDLY",      # TRELLIS_DPR16X4's model loads its INITVAL with <= in an initial block
]
# ~60,000 cells and their nets make a C++ model of a few hundred files: functions are kept small (the compiler's
# cost grows faster than their size; the runner compiles at -O1, tb/support/runner.py CXX_OPT).
NETLIST_BUILD = ["--output-split-cfuncs", "2000"]
