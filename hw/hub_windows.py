"""The control hub's bus slave: the windows of contract.windows behind one 32-bit bus port.

CSR, CMDQ and scratch accesses are answered at once (a scratch read one cycle later). The bank and GB windows
take the array: writes are staged per burst and committed as WR_SBK / WR_GB when every word of the burst has
been written, in any order (starting another burst drops a partial one and counts a bus error); reads fetch a
whole burst into a one-burst read cache, invalidated by any window write and by `invalidate`.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import CSR_BYTES, DeviceParams, Op, bank_stride, cmd_fields, windows

from .bus import BusSignature
from .hub_csr import CSRAccessSignature

__all__ = ["HubWindows", "burst_access_layout"]


def burst_access_layout(params):
    """The array command fields a one-burst window access sets; flags, acc and imm stay 0."""
    return data.StructLayout({name: width for name, width in cmd_fields(params)
                              if name in ("op", "count", "bank", "row", "col", "gb", "data")})


class HubWindows(wiring.Component):
    """Ports:

    - `bus` (In BusSignature): the hub's bus.
    - `csr` (Out CSRAccessSignature): register accesses, to the CSR file.
    - `cmdq` (out stream of 32-bit words): pushes onto the command queue; a push the queue does not take
      (`ready` low) is dropped and raises `queue_overflow` (the bus access ends with an error).
    - `scratch_rd`, `scratch_wr`: the scratch memory ports of the scratch window; `scratch_busy` (in): the
      hub's own scratch write has the write port this cycle, so a bus write to scratch waits.
    - `array` (out stream of `burst_access_layout`): burst commands to the array. A read command is offered
      only while `read_room` is high (room for what the response router must expect), and in the cycle it is
      accepted `read_issued` is high; its burst comes back on `cache` (in stream, always ready).
    - `may_take` (in): the array may be taken for a bank/GB access now; `owns` (out): the windows hold the
      array, from the cycle after they took it until the access is done.
    - `invalidate` (in): drop the cached burst (a command may have changed memory).
    - `bus_error`, `bus_error_addr` (out): an access refused this cycle, and its address.
    """

    def __init__(self, *, params):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        self.windows = {w.name: w for w in windows(params)}
        super().__init__({
            "bus": In(BusSignature()),
            "csr": Out(CSRAccessSignature((CSR_BYTES - 1).bit_length())),
            "cmdq": Out(stream.Signature(32)),
            "queue_overflow": Out(1),
            "scratch_rd": In(memory.ReadPort.Signature(addr_width=(params.scratch_words - 1).bit_length(), shape=32)),
            "scratch_wr": In(memory.WritePort.Signature(addr_width=(params.scratch_words - 1).bit_length(), shape=32)),
            "scratch_busy": In(1),
            "array": Out(stream.Signature(burst_access_layout(params))),
            "read_room": In(1),
            "read_issued": Out(1),
            "cache": In(stream.Signature(params.burst_bits, always_ready=True)),
            "may_take": In(1),
            "owns": Out(1),
            "invalidate": In(1),
            "bus_error": Out(1),
            "bus_error_addr": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        bus, a, cmd = self.bus, self.bus.addr, self.array.payload
        words_per_burst = p.lanes // 2

        def inside(name):
            w = self.windows[name]
            return (a < w.base + w.size) if w.base == 0 else ((a >= w.base) & (a < w.base + w.size))

        in_csr, in_cmdq, in_sc, in_gb, in_bank = (inside(n) for n in ("csr", "cmdq", "scratch", "gb", "bank"))
        stride = bank_stride(p)
        burst_bytes = p.burst_bits // 8
        boff = a - self.windows["bank"].base
        w_bank = Signal(8)
        w_burst = Signal(32)
        m.d.comb += [w_bank.eq(boff // stride),
                     w_burst.eq(Mux(in_gb, (a - self.windows["gb"].base) // burst_bytes,
                                    (boff % stride) // burst_bytes))]
        w_word = (a // 4) % words_per_burst
        bank_ok = (boff % stride) < p.bank_bursts * burst_bytes
        sc_addr = (a - self.windows["scratch"].base) // 4
        m.d.comb += [self.csr.addr.eq(a - self.windows["csr"].base), self.csr.wdata.eq(bus.wdata),
                     self.cmdq.payload.eq(bus.wdata), self.bus_error_addr.eq(a)]

        # One staged burst for writes, one cached burst for reads.
        stg_valid, stg_gb, stg_bank, stg_burst = Signal(), Signal(), Signal(8), Signal(32)
        stg_mask = Signal(words_per_burst)
        stg_data = Array(Signal(32, name=f"stg{i}") for i in range(words_per_burst))
        cache_valid, cache_gb, cache_bank, cache_burst = Signal(), Signal(), Signal(8), Signal(32)
        cache_data = Signal(p.burst_bits)
        same_stage = stg_valid & (stg_gb == in_gb) & (in_gb | (stg_bank == w_bank)) & (stg_burst == w_burst)
        cache_hit = cache_valid & (cache_gb == in_gb) & (in_gb | (cache_bank == w_bank)) & (cache_burst == w_burst)
        with m.If(self.cache.valid):
            m.d.sync += [cache_data.eq(self.cache.payload), cache_valid.eq(1)]
        with m.If(self.invalidate):
            m.d.sync += cache_valid.eq(0)

        def burst_command(op, bank, burst, is_gb):
            return [cmd.op.eq(op), cmd.count.eq(1), cmd.bank.eq(Mux(is_gb, 0, bank)),
                    cmd.row.eq(burst // p.bursts_per_row), cmd.col.eq(burst % p.bursts_per_row), cmd.gb.eq(burst)]

        fire = self.array.valid & self.array.ready
        with m.FSM(name="bus"):
            with m.State("IDLE"):
                with m.If(bus.valid):
                    with m.If(a[:2] != 0):
                        m.next = "ERR"
                    with m.Elif(in_csr):
                        with m.If(Mux(bus.we, ~self.csr.writable, ~self.csr.readable)):
                            m.next = "ERR"
                        with m.Else():
                            m.d.comb += [self.csr.write.eq(bus.we), bus.ready.eq(1), bus.rdata.eq(self.csr.rdata)]
                    with m.Elif(in_cmdq):
                        with m.If(~bus.we):
                            m.next = "ERR"
                        with m.Else():
                            m.d.comb += [self.cmdq.valid.eq(1), bus.ready.eq(1),
                                         self.queue_overflow.eq(~self.cmdq.ready), bus.err.eq(~self.cmdq.ready)]
                    with m.Elif(in_sc):
                        m.d.comb += [self.scratch_rd.addr.eq(sc_addr), self.scratch_rd.en.eq(1)]
                        with m.If(bus.we):
                            m.d.comb += [self.scratch_wr.en.eq(~self.scratch_busy), self.scratch_wr.addr.eq(sc_addr),
                                         self.scratch_wr.data.eq(bus.wdata), bus.ready.eq(~self.scratch_busy)]
                        with m.Else():
                            m.next = "SC_READ"
                    with m.Elif(in_gb | (in_bank & bank_ok)):
                        with m.If(self.may_take):
                            m.d.sync += self.owns.eq(1)
                            m.next = "WIN"
                    with m.Else():
                        m.next = "ERR"
            with m.State("SC_READ"):
                m.d.comb += [bus.ready.eq(1), bus.rdata.eq(self.scratch_rd.data)]
                m.next = "IDLE"
            with m.State("ERR"):
                m.d.comb += [bus.ready.eq(1), bus.err.eq(1), self.bus_error.eq(1)]
                m.next = "IDLE"
            with m.State("WIN"):
                with m.If(bus.we):
                    m.d.comb += self.bus_error.eq(stg_valid & ~same_stage)      # a partial burst is dropped
                    mask = Mux(same_stage, stg_mask, 0) | (1 << w_word)
                    m.d.sync += [stg_valid.eq(1), stg_gb.eq(in_gb), stg_bank.eq(w_bank), stg_burst.eq(w_burst),
                                 stg_mask.eq(mask), stg_data[w_word].eq(bus.wdata), cache_valid.eq(0)]
                    with m.If(mask == (1 << words_per_burst) - 1):
                        m.next = "WIN_WRITE"
                    with m.Else():
                        m.d.comb += bus.ready.eq(1)
                        m.d.sync += self.owns.eq(0)
                        m.next = "IDLE"
                with m.Elif(cache_hit):
                    m.d.comb += [bus.ready.eq(1), bus.rdata.eq(Array(cache_data[32 * i:32 * i + 32]
                                                                     for i in range(words_per_burst))[w_word])]
                    m.d.sync += self.owns.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += burst_command(Mux(in_gb, Op.RD_GB, Op.RD_SBK), w_bank, w_burst, in_gb)
                    m.d.comb += self.array.valid.eq(self.read_room)
                    with m.If(fire):
                        m.d.comb += self.read_issued.eq(1)
                        m.d.sync += [cache_gb.eq(in_gb), cache_bank.eq(w_bank), cache_burst.eq(w_burst)]
                        m.next = "WIN_READ"
            with m.State("WIN_WRITE"):
                m.d.comb += burst_command(Mux(stg_gb, Op.WR_GB, Op.WR_SBK), stg_bank, stg_burst, stg_gb)
                m.d.comb += [cmd.data.eq(Cat(*stg_data)), self.array.valid.eq(1)]
                with m.If(fire):
                    m.d.sync += [stg_valid.eq(0), stg_mask.eq(0), self.owns.eq(0)]
                    m.d.comb += bus.ready.eq(1)
                    m.next = "IDLE"
            with m.State("WIN_READ"):
                with m.If(self.cache.valid):
                    m.next = "WIN"                   # now a cache hit
        return m
