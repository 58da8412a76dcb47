"""The control hub: its rooms wired together, the command queue and the command fetch.

The host fills the command queue (CMDQ window) with commands in the contract's encoding: CMD_HEADER_WORDS
header words (contract.Command.header_words) followed by payload_words(op) words. The fetch here takes them
word by word into the header and payload registers and hands each complete command to the sequencer, which
executes it with no host action in between. The rooms, each in its own file:

- hub_windows.HubWindows: the bus slave, with the bank/GB windows' staged write burst and read cache;
- hub_csr.HubCSR: the registers of contract.Reg, the error latch and the counters;
- sequencer.Sequencer: command execution, the GEMV and attention tile walkers, EWMUL/EWADD;
- hub_responses.ResponseRouter: the array's answers to scratch, the window cache or the score memory;
- softmax_datapath.SoftmaxDatapath: the attention tile's exp pass, lane sums, reciprocal and p bursts.

Commands reach the bank array through a register slice (stream_slice.StreamRegisterSlice), so that the windows'
address decoding and the walkers' next command do not run into the array's checks and memory addresses in the
same cycle; the sequencer forms the array's verdict on an array command itself, from the fetched command, with
the same checks (bank_array.command_error). Its answers come from its answer buffer (a FIFO with an output
register), whose read enable is the router's decision on the head beat; the array's pipeline does not wait on it.
"""

from amaranth.hdl import Array, Cat, Module, ResetInserter, Signal
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from pimhil.contract import CMD_HEADER, CMD_HEADER_WORDS, PAYLOAD_OPS, DeviceParams, payload_words

from .bank_array import BankArray, cmd_layout
from .bus import BurstBusSignature, BusSignature
from .hub_csr import UART_COUNTER_PORTS, HubCSR
from .hub_responses import ResponseKind, ResponseRouter
from .hub_windows import READ_AHEAD, HubWindows
from .sequencer import Sequencer
from .softmax_datapath import SoftmaxDatapath
from .stream_slice import StreamRegisterSlice

__all__ = ["ControlHub"]


class ControlHub(wiring.Component):
    """Ports: `bus` (slave), `wide` (burst-wide slave of the bank and GB windows),
    `uart_baud_div` (the BAUD_DIV register, reset value `uart_default_div`),
    the UART link's counters `uart_<counter>` (inputs shown in the CSR window), `irq_error` (error latched),
    `busy` (what PERF_BUSY counts: the sequencer or the array at work)."""

    def __init__(self, *, params, uart_default_div=None):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        self.csr = HubCSR(params=params, uart_default_div=uart_default_div)
        self.uart_default_div = self.csr.uart_default_div
        self.array = BankArray(params=params)
        super().__init__({
            "bus": In(BusSignature()),
            "wide": In(BurstBusSignature(params.burst_bits)),
            "uart_baud_div": Out(16, init=self.uart_default_div),
            **{port: In(32) for port in UART_COUNTER_PORTS.values()},
            "irq_error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.array = array = self.array
        m.submodules.csr = csr = self.csr
        m.submodules.windows = win = HubWindows(params=p)
        m.submodules.sequencer = seq = Sequencer(params=p)
        # As many answers may be expected as the array holds commands between issue and response, and then
        # some: the windows' read-ahead and the walkers' READ MACs stream instead of waiting for descriptors.
        m.submodules.responses = router = ResponseRouter(params=p, depth=READ_AHEAD)
        m.submodules.softmax = softmax = SoftmaxDatapath(params=p)
        # CONTROL.abort empties the queue in one cycle (words the fetch has not taken are dropped).
        m.submodules.cmdq = cmdq = ResetInserter(csr.abort)(fifo.SyncFIFOBuffered(width=32, depth=p.cmdq_words))

        # Scratch: three read ports (copies in block RAM) and one write port, so that it maps to block RAM.
        # Internal writes (responses, EW results; never in the same cycle) take it first: a bus write waits.
        m.submodules.scratch = scratch = memory.Memory(shape=32, depth=p.scratch_words, init=[])
        connect(m, win.scratch_rd, scratch.read_port())
        connect(m, seq.ew_a, scratch.read_port())
        connect(m, seq.ew_b, scratch.read_port())
        sc_wr = scratch.write_port()
        m.d.comb += win.scratch_busy.eq(seq.ew_wr.en | router.scratch_wr.en)
        for i, user in enumerate((seq.ew_wr, router.scratch_wr, win.scratch_wr)):
            with (m.If if i == 0 else m.Elif)(user.en):
                m.d.comb += [sc_wr.en.eq(1), sc_wr.addr.eq(user.addr), sc_wr.data.eq(user.data)]
        # Attention scores: one row of B FP32 scores per MAC_ABK answer.
        m.submodules.scores = scores = memory.Memory(shape=32 * p.banks, depth=p.score_words // p.banks, init=[])
        connect(m, softmax.score_wr, scores.write_port())
        connect(m, softmax.score_rd, scores.read_port())

        # The array's command port (behind the slice) and the response descriptors go together: to the windows
        # while they hold the array (only while the sequencer is idle or waiting for words), to the sequencer
        # otherwise. Both keep their order through the slice, so descriptors and answers still pair up.
        m.submodules.cmd_slice = cmd_slice = StreamRegisterSlice(layout=cmd_layout(p))
        connect(m, cmd_slice.o, array.cmd)
        cmd_in = cmd_slice.i
        # The sequencer sees both readies whoever holds the array: the windows own it only while the sequencer
        # is idle (they take it only while no command is fetched complete or executing, and the fetch starts
        # none while they hold it), and an idle sequencer offers nothing. Gated by `owns`, the readies put the
        # windows' ownership register in front of every walker register and the CSR events (~21 ns on the
        # ULX3S build).
        m.d.comb += [seq.array.ready.eq(cmd_in.ready), seq.expect.ready.eq(router.expect.ready)]
        with m.If(win.owns):
            m.d.comb += [cmd_in.valid.eq(win.array.valid), win.array.ready.eq(cmd_in.ready)]
            m.d.comb += [cmd_in.payload[f].eq(win.array.payload[f]) for f in win.array.payload.shape().members]
            m.d.comb += [router.expect.valid.eq(win.read_issued), win.read_room.eq(router.expect.ready),
                         router.expect.payload.kind.eq(ResponseKind.WINDOW_CACHE), router.expect.payload.beats.eq(1)]
        with m.Else():
            m.d.comb += [cmd_in.valid.eq(seq.array.valid), cmd_in.payload.eq(seq.array.payload),
                         router.expect.valid.eq(seq.expect.valid), router.expect.payload.eq(seq.expect.payload)]
        connect(m, array.resp, router.resp)
        connect(m, router.cache, win.cache)
        connect(m, router.scores, softmax.scores)
        connect(m, seq.softmax, softmax.ctl)
        # The array counts as busy while the slice holds a command for it (its own `busy` sees the slice's
        # output as a waiting command).
        m.d.comb += [seq.array_busy.eq(array.busy), seq.resp_idle.eq(router.idle)]

        # A command's end reaches the fetch and the CSR a cycle later, registered: `done` and a refusal come
        # out of the walkers' and checks' logic, and through the fetch state and the CSR's error and event
        # registers they made ~19.9 ns on the ULX3S build. The sequencer is idle meanwhile, and the fetch (still
        # in EXEC) starts nothing before it sees the end. The end itself is the sequencer's return to idle
        # (`idle`, a state register's decode, after a cycle it was not): registering `done` still took its logic
        # into the register (17.88 ns estimated, the estimator's worst path on the 60 MHz build's netlist).
        seq_was_busy = Signal(name="seq_was_busy")
        seq_error = Signal(name="seq_error_q")
        seq_code, seq_op = Signal(8, name="seq_error_code_q"), Signal(8, name="seq_error_op_q")
        m.d.sync += [seq_was_busy.eq(~seq.idle), seq_error.eq(seq.error.valid), seq_code.eq(seq.error.code),
                     seq_op.eq(seq.error.op)]
        seq_ended = Signal(name="seq_ended")           # done or refused in the previous cycle
        seq_done = Signal(name="seq_done")
        m.d.comb += [seq_ended.eq(seq.idle & seq_was_busy), seq_done.eq(seq_ended & ~seq_error)]
        m.d.comb += [csr.error.valid.eq(seq_error), csr.error.code.eq(seq_code), csr.error.op.eq(seq_op)]
        seq_busy, seq_wait = self._fetch(m, cmdq, seq, csr, win, seq_ended)

        connect(m, flipped(self.bus), win.bus)
        connect(m, flipped(self.wide), win.wide)
        connect(m, win.csr, csr.access)
        m.d.comb += [
            cmdq.w_en.eq(win.cmdq.valid), cmdq.w_data.eq(win.cmdq.payload), win.cmdq.ready.eq(cmdq.w_rdy),
            # Served while the sequencer is idle or waits for the rest of a command (which only this bus can
            # push: waiting for it here would wedge the bus for good).
            win.may_take.eq((~seq_busy | seq_wait) & ~cmdq.r_rdy & router.idle),
            # Any command may change memory; waiting for words does not.
            win.invalidate.eq(seq_done | (seq_busy & ~seq_wait)),
            csr.queue_overflow.eq(win.queue_overflow), csr.bus_error.eq(win.bus_error),
            csr.bus_error_addr.eq(win.bus_error_addr),
            csr.seq_busy.eq(seq_busy), csr.seq_wait.eq(seq_wait), csr.array_busy.eq(array.busy),
            csr.queue_level.eq(cmdq.r_level), csr.queue_nonempty.eq(cmdq.r_rdy),
            csr.array_mac.eq(array.mac_active), csr.array_stall.eq(array.stall), csr.cmd_done.eq(seq_done),
            self.uart_baud_div.eq(csr.uart_baud_div), self.irq_error.eq(csr.error_latched),
            self.busy.eq(csr.working),
        ]
        m.d.comb += [getattr(csr, port).eq(getattr(self, port)) for port in UART_COUNTER_PORTS.values()]
        return m

    def _fetch(self, m, cmdq, seq, csr, win, ended):
        """The command fetch: queue words into the header and payload registers, a complete command to the
        sequencer, held until `ended` (its end or refusal, registered). Returns (seq_busy, seq_wait): a command
        is held or executing; the fetch waits for words."""
        p = self.params
        max_payload = max(payload_words(op, p) for op in PAYLOAD_OPS)
        hdr = Array(Signal(32, name=f"hdr{i}") for i in range(CMD_HEADER_WORDS))
        payload = Array(Signal(32, name=f"pl{i}") for i in range(max_payload))
        n_words = Signal(range(CMD_HEADER_WORDS + max_payload + 1))
        assert sum(w for _, w in CMD_HEADER) == 32 * CMD_HEADER_WORDS
        m.d.comb += seq.cmd.eq(Cat(*hdr, Cat(*payload)[:p.burst_bits]))
        # The command's payload words, decoded from its opcode into a register: the decoding and the word
        # count's compare in front of the queue's read enable and level made 16.4 ns (estimated) on the ULX3S
        # build. The count matters only once the header is in, and the opcode (header word 0) came in at least
        # CMD_HEADER_WORDS - 1 cycles before.
        assert CMD_HEADER_WORDS >= 2
        n_payload = Signal(range(max_payload + 1), name="n_payload")
        with m.Switch(seq.cmd.op):
            for op in sorted(PAYLOAD_OPS):
                with m.Case(int(op)):
                    m.d.sync += n_payload.eq(payload_words(op, p))
            with m.Default():
                m.d.sync += n_payload.eq(0)

        seq_busy, seq_wait = Signal(), Signal()
        with m.FSM(name="fetch"):
            with m.State("IDLE"):
                m.d.sync += n_words.eq(0)
                with m.If(csr.error_latched):
                    m.d.comb += cmdq.r_en.eq(1)       # drain what was queued behind the refused command
                with m.Elif(cmdq.r_rdy & ~win.owns):
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += seq_busy.eq(1)
                with m.If(csr.abort):
                    m.next = "IDLE"                   # the partial command is dropped with the queue
                with m.Elif(n_words < CMD_HEADER_WORDS + n_payload):
                    m.d.comb += seq_wait.eq(~cmdq.r_rdy)
                    with m.If(cmdq.r_rdy):
                        m.d.comb += cmdq.r_en.eq(1)
                        m.d.sync += n_words.eq(n_words + 1)
                        with m.If(n_words < CMD_HEADER_WORDS):
                            m.d.sync += hdr[n_words[:(CMD_HEADER_WORDS - 1).bit_length()]].eq(cmdq.r_data)
                        with m.Else():
                            m.d.sync += payload[n_words - CMD_HEADER_WORDS].eq(cmdq.r_data)
                with m.Elif(~win.owns):
                    # A window access taken while this command was incomplete finishes first.
                    m.d.comb += seq.start.eq(1)
                    m.next = "EXEC"
            with m.State("EXEC"):
                m.d.comb += seq_busy.eq(1)
                with m.If(ended):
                    m.next = "IDLE"
        return seq_busy, seq_wait
