"""The control hub's response router: where each of the bank array's answers goes, in command order.

Whoever issues a command that answers also pushes a descriptor (`ResponseKind`, destination, beats) onto
`expect` in the same cycle; the router pairs the array's response beats with the descriptors in order.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import DeviceParams

from .bank_array import resp_layout

__all__ = ["ResponseRouter", "ResponseKind", "response_descriptor", "score_row"]


class ResponseKind(enum.Enum, shape=2):
    SCRATCH_BURSTS = 0   # `beats` bursts (RD_SBK, RD_GB), lanes/2 words each, to scratch from `dest`
    SCRATCH_BANKS = 1    # one beat of one FP32 word per bank (RD_MAC, MAC_* READ) to scratch from `dest`
    WINDOW_CACHE = 2     # one burst into the bus windows' read cache
    SCORES = 3           # one beat of B attention scores into score row `dest`


def response_descriptor():
    return data.StructLayout({"kind": ResponseKind, "dest": 16, "beats": 16})


def score_row(params):
    """One row of the score memory as it arrives: its row address and B FP32 scores."""
    return data.StructLayout({"row": 16, "scores": 32 * params.banks})


class ResponseRouter(wiring.Component):
    """Ports:

    - `resp` (in stream): the bank array's answer beats (refusals are handled when the command issues, from
      the array's `cmd_err`).
    - `expect` (in stream of `response_descriptor()`): what the next answers are, in command order.
    - `scratch_wr` (memory write port, driven): SCRATCH_* beats, word by word. A beat is taken into a
      register at once and written out from there, so the array is never frozen while it is serialised.
    - `cache` (out stream, always ready): a WINDOW_CACHE burst, `payload` valid in the `valid` cycle only.
    - `scores` (out stream of `score_row`, always ready): a SCORES beat.
    - `idle` (out): no descriptor waiting, no beat arriving and none being written.
    """

    def __init__(self, *, params, depth=8):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, not {depth!r}")
        self.params = params
        self.depth = depth
        super().__init__({
            "resp": In(stream.Signature(resp_layout(params))),
            "expect": In(stream.Signature(response_descriptor())),
            "scratch_wr": In(memory.WritePort.Signature(addr_width=(params.scratch_words - 1).bit_length(),
                                                        shape=32)),
            "cache": Out(stream.Signature(params.burst_bits, always_ready=True)),
            "scores": Out(stream.Signature(score_row(params), always_ready=True)),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        B, words_per_burst = p.banks, p.lanes // 2
        layout = response_descriptor()
        # Descriptors are registered on their way into the queue (the walkers' `fire` into the queue's write
        # logic made ~20.2 ns on the ULX3S build), and `expect.ready` is a register too: the level as it stood
        # a cycle ago, which with the writes of that cycle and the registered one still leaves room for this
        # cycle's (the level's compare in front of the walkers' `fire` made ~19.7 ns). Two entries more than
        # `depth` keep `depth` descriptors of room.
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=layout.size, depth=self.depth + 2)
        room = Signal(name="expect_room", init=1)
        in_valid, in_payload = Signal(name="expect_in_valid"), Signal(layout.size, name="expect_in")
        m.d.sync += [room.eq(queue.w_level < self.depth), in_valid.eq(self.expect.valid),
                     in_payload.eq(self.expect.payload)]
        m.d.comb += [queue.w_data.eq(in_payload), queue.w_en.eq(in_valid), self.expect.ready.eq(room)]
        head = data.View(layout, queue.r_data)
        resp, wr = self.resp, self.scratch_wr

        beat = Signal(p.resp_data_bits)
        beat_full = Signal()
        beat_done = Signal(16)              # beats finished of the head descriptor
        word_i = Signal(range(max(B, words_per_burst) + 1))
        beat_words = Array(beat[32 * i:32 * i + 32] for i in range(max(B, words_per_burst)))
        words_in_beat = Mux(head.kind == ResponseKind.SCRATCH_BANKS, B, words_per_burst)

        with m.If(resp.valid & queue.r_rdy & ~beat_full):
            m.d.comb += resp.ready.eq(1)
            with m.Switch(head.kind):
                with m.Case(ResponseKind.SCORES):
                    m.d.comb += [queue.r_en.eq(1), self.scores.valid.eq(1), self.scores.payload.row.eq(head.dest),
                                 self.scores.payload.scores.eq(resp.payload.data[:32 * B])]
                with m.Case(ResponseKind.WINDOW_CACHE):
                    m.d.comb += [queue.r_en.eq(1), self.cache.valid.eq(1),
                                 self.cache.payload.eq(resp.payload.data[:p.burst_bits])]
                with m.Default():
                    m.d.sync += [beat.eq(resp.payload.data), beat_full.eq(1), word_i.eq(0)]
        # Both beat sizes are powers of two, so the beat's offset is a shift: as a multiply it went through a DSP
        # block, on the path from the queue's head into the scratch write port and the hub's command slice.
        assert B & (B - 1) == 0 and words_per_burst & (words_per_burst - 1) == 0
        beat_offset = Mux(head.kind == ResponseKind.SCRATCH_BANKS, beat_done << (B - 1).bit_length(),
                          beat_done << (words_per_burst - 1).bit_length())
        # The head descriptor's end test, a register: the increment and compare in front of the queue's read
        # enable and level made 16.5 ns (estimated) on the ULX3S build. The test is read at a beat's last word,
        # a cycle or more after the beat came (every beat has at least two words), and neither the head nor
        # beat_done changes while a beat is written.
        assert min(B, words_per_burst) >= 2
        last_beat = Signal(name="last_beat")
        m.d.sync += last_beat.eq(beat_done + 1 == head.beats)
        with m.If(beat_full):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(head.dest + beat_offset + word_i),
                         wr.data.eq(beat_words[word_i])]
            with m.If(word_i == words_in_beat - 1):
                m.d.sync += [word_i.eq(0), beat_full.eq(0)]
                with m.If(last_beat):
                    m.d.comb += queue.r_en.eq(1)
                    m.d.sync += beat_done.eq(0)
                with m.Else():
                    m.d.sync += beat_done.eq(beat_done + 1)
            with m.Else():
                m.d.sync += word_i.eq(word_i + 1)
        m.d.comb += self.idle.eq(~in_valid & ~queue.r_rdy & ~resp.valid & ~beat_full)
        return m
