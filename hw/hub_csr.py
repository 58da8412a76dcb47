"""The control hub's CSR file: the registers of contract.Reg, their sources, the error latch and the counters.

The register map is generated from the contract: every readable `Reg` (all but WRITE_ONLY_REGS) has exactly
one source below, the writable ones are WRITABLE_REGS, and STATUS/CONTROL bits are placed by their STATUS_* /
CONTROL_* masks, so no address or bit position is typed here.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import (CONTRACT_VERSION, CONTROL_ABORT, CONTROL_CLEAR_COUNTERS, CONTROL_CLEAR_ERROR, CSR_BYTES,
                             IDENTITY_REGS, LINK_COUNTERS, MAGIC, STATUS_BUSY, STATUS_DONE, STATUS_ERROR,
                             STATUS_PARTIAL, STATUS_QUEUE_EMPTY, UART_MIN_DIV, WRITABLE_REGS,
                             WRITE_ONLY_REGS, DeviceParams, HubError, Reg, uart_reset_div)

__all__ = ["HubCSR", "CSRAccessSignature", "ErrorEventSignature", "UART_COUNTER_PORTS"]

# The UART link's counters: the register showing each, and the input port (uart_<counter>) it comes in on.
UART_COUNTER_PORTS = {reg: f"uart_{name}" for name, reg in LINK_COUNTERS}


class CSRAccessSignature(wiring.Signature):
    """One CSR access, from the bus side: `addr` (offset in the CSR window) is decoded every cycle into
    `rdata` (0 for holes), `readable` and `writable`; `write` commits `wdata` to the register at `addr` (the bus
    side raises it only for a writable register)."""

    def __init__(self, addr_width):
        super().__init__({
            "addr": Out(addr_width),
            "write": Out(1),
            "wdata": Out(32),
            "rdata": In(32),
            "readable": In(1),
            "writable": In(1),
        })


class ErrorEventSignature(wiring.Signature):
    """An error raised this cycle (`valid`): `code` (ErrorCode / HubError) and `op`, the opcode that raised it."""

    def __init__(self):
        super().__init__({"valid": Out(1), "code": Out(8), "op": Out(8)})


class HubCSR(wiring.Component):
    """Ports:

    - `access` (In CSRAccessSignature): the bus side's register access.
    - `error` (In ErrorEventSignature): a command refused by the sequencer; `queue_overflow`: a word pushed
      into a full command queue (HubError.QUEUE_OVERFLOW, op 0; it wins over `error` in the same cycle, and
      the two count as one error). The first error latches ERROR_CODE/ERROR_OP; `error_latched` shows it.
    - `bus_error`, `bus_error_addr`: a refused bus access (BUS_ERRORS, BUS_ERROR_ADDR).
    - state shown in STATUS: `seq_busy` (the sequencer holds or executes a command), `seq_wait` (it waits for
      the host to push the rest of one), `array_busy`, `queue_level` and `queue_nonempty` (the command queue).
    - counted: `array_mac` (PERF_MAC), `array_stall` (PERF_STALL), `cmd_done` (PERF_CMDS).
    - `working` (out): what PERF_BUSY counts, the sequencer (not waiting for words) or the array at work.
    - CONTROL actions, one-cycle strobes out: `abort` (clear_error and clear_counters act in here).
    - `uart_baud_div` (out, the UART_BAUD_DIV register, reset `uart_default_div`); `uart_<counter>` (in).
    """

    def __init__(self, *, params, uart_default_div=None):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        div = uart_reset_div(params) if uart_default_div is None else uart_default_div
        if not isinstance(div, int) or not UART_MIN_DIV <= div < (1 << 16):
            raise ValueError(f"uart_default_div must be an int in [{UART_MIN_DIV}, 65535], not {div!r}")
        self.params = params
        self.uart_default_div = div
        super().__init__({
            "access": In(CSRAccessSignature((CSR_BYTES - 1).bit_length())),
            "error": In(ErrorEventSignature()),
            "queue_overflow": In(1),
            "bus_error": In(1),
            "bus_error_addr": In(32),
            "error_latched": Out(1),
            "seq_busy": In(1),
            "seq_wait": In(1),
            "array_busy": In(1),
            "queue_level": In(range(params.cmdq_words + 1)),
            "queue_nonempty": In(1),
            "array_mac": In(1),
            "array_stall": In(1),
            "cmd_done": In(1),
            "working": Out(1),
            "abort": Out(1),
            "uart_baud_div": Out(16, init=div),
            **{port: In(32) for port in UART_COUNTER_PORTS.values()},
        })

    def identity(self):
        """The constant registers: MAGIC, VERSION and the DeviceParams fields of IDENTITY_REGS."""
        return {Reg.MAGIC: MAGIC, Reg.VERSION: CONTRACT_VERSION,
                **{reg: getattr(self.params, name) for reg, name in IDENTITY_REGS}}

    def elaborate(self, platform):
        m = Module()
        acc = self.access

        err_code, err_op, err_count = Signal(8), Signal(8), Signal(32)
        perf = {r: Signal(32, name=r.name.lower()) for r in (Reg.PERF_CYCLES, Reg.PERF_BUSY, Reg.PERF_MAC,
                                                               Reg.PERF_STALL, Reg.PERF_CMDS)}
        bus_errors, bus_err_addr = Signal(32), Signal(32)
        busy = self.seq_busy | self.array_busy | self.queue_nonempty
        status = Signal(32)
        for mask, value in {STATUS_BUSY: busy, STATUS_ERROR: self.error_latched,
                            STATUS_QUEUE_EMPTY: ~self.queue_nonempty, STATUS_DONE: ~busy,
                            STATUS_PARTIAL: self.seq_wait}.items():
            m.d.comb += status[mask.bit_length() - 1].eq(value)
        sources = {
            **self.identity(), Reg.STATUS: status, Reg.ERROR_CODE: err_code, Reg.ERROR_OP: err_op,
            Reg.ERROR_COUNT: err_count, Reg.CMDQ_LEVEL: self.queue_level, **perf, Reg.UART_BAUD_DIV: self.uart_baud_div,
            Reg.BUS_ERRORS: bus_errors, Reg.BUS_ERROR_ADDR: bus_err_addr,
            **{reg: getattr(self, port) for reg, port in UART_COUNTER_PORTS.items()},
        }
        assert set(sources) == set(Reg) - WRITE_ONLY_REGS, "every readable register needs exactly one source"
        with m.Switch(acc.addr):
            for reg, value in sources.items():
                with m.Case(int(reg)):
                    m.d.comb += [acc.rdata.eq(value), acc.readable.eq(1)]
        m.d.comb += acc.writable.eq(Cat(*(acc.addr == int(r) for r in sorted(WRITABLE_REGS))).any())

        # Writes: one action per register of WRITABLE_REGS.
        assert WRITABLE_REGS == {Reg.CONTROL, Reg.UART_BAUD_DIV}, "a writable register without its action"
        # CONTROL's actions take effect in the cycle after the write: the address decoding then ends at these
        # registers, not in the command queue's reset, the fetch and the counters (one ~23 ns path on the ULX3S
        # build). The bus answers the write in its own cycle, so no access of any master sees the difference.
        clear_err, clear_cnt = Signal(), Signal()
        control = acc.write & (acc.addr == int(Reg.CONTROL))
        m.d.sync += [clear_err.eq(control & ((acc.wdata & CONTROL_CLEAR_ERROR) != 0)),
                     clear_cnt.eq(control & ((acc.wdata & CONTROL_CLEAR_COUNTERS) != 0)),
                     self.abort.eq(control & ((acc.wdata & CONTROL_ABORT) != 0))]
        with m.If(acc.write & (acc.addr == int(Reg.UART_BAUD_DIV))):
            div = acc.wdata[:16]
            m.d.sync += self.uart_baud_div.eq(Mux(div < UART_MIN_DIV, UART_MIN_DIV, div))

        # The first error since clear_error latches; every error counts.
        raised = self.error.valid | self.queue_overflow
        with m.If(raised):
            m.d.sync += err_count.eq(err_count + 1)
            with m.If(~self.error_latched):
                m.d.sync += [self.error_latched.eq(1),
                             err_code.eq(Mux(self.queue_overflow, HubError.QUEUE_OVERFLOW, self.error.code)),
                             err_op.eq(Mux(self.queue_overflow, 0, self.error.op))]
        with m.If(clear_err):
            m.d.sync += [self.error_latched.eq(0), err_code.eq(0), err_op.eq(0)]

        # A command whose words the host has not all pushed yet waits for the host, not the device: that
        # time is not busy (PERF_BUSY and `working`), although STATUS still shows it as busy.
        m.d.comb += self.working.eq((self.seq_busy & ~self.seq_wait) | self.array_busy)
        m.d.sync += perf[Reg.PERF_CYCLES].eq(perf[Reg.PERF_CYCLES] + 1)
        # The counters count each event a cycle after it happened: their 32-bit adders' enables then start at a
        # register, not at the end of the sequencer's and the array's decisions (on the ULX3S build those ran on
        # into PERF_CMDS and PERF_MAC in the same cycle). A counter read sees every event up to two cycles
        # before the read; clearing drops an event of the cycle before the clear, not one of the clear's own.
        counted = {}
        for reg, event in {Reg.PERF_BUSY: self.working, Reg.PERF_MAC: self.array_mac,
                           Reg.PERF_STALL: self.array_stall, Reg.PERF_CMDS: self.cmd_done}.items():
            counted[reg] = Signal(name=f"{reg.name.lower()}_event")
            m.d.sync += counted[reg].eq(event)
        with m.If(clear_cnt):
            m.d.sync += [perf[r].eq(0) for r in counted] + [err_count.eq(0)]
        with m.Else():
            m.d.sync += [perf[r].eq(perf[r] + event) for r, event in counted.items()]
        with m.If(self.bus_error):
            m.d.sync += [bus_errors.eq(bus_errors + 1), bus_err_addr.eq(self.bus_error_addr)]
        return m
