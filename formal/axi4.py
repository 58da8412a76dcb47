"""hw/axi4.py AXI4Slave: AXI4 handshake and burst rules seen from the slave, and what reaches the 32-bit bus and
the burst bus, at the widths the presets use (256-bit beats of one burst: sim; 128-bit beats of two: board).

Environment: the master keeps the AXI rules (a VALID stays high, its payload unchanged, until READY; WLAST
on exactly the last beat of the burst); BREADY, RREADY and both buses' answers are free in every cycle.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib.wiring import Out

from hw.axi4 import FIXED, INCR, AXI4Signature, AXI4Slave
from hw.axi_lite import OKAY, SLVERR

from ._common import MutableHarness, Probe, Proof, Properties, past
from .axi_lite import bus_holds, keep_valid, slave_holds

ID_WIDTH = 4
WIDE_RANGE = (0x1000, 0x100)     # small, so that bursts run out of it into the word path


def harness(data_width, burst_bits):
    class Harness(MutableHarness):
        def elaborate(self, platform):
            return build(self, data_width, burst_bits)
    Harness.__name__ = f"Harness{data_width}x{burst_bits}"
    return Harness


def build(self, W, B):
    m = Module()
    props = self.props = Properties(m)
    dut = AXI4Slave(data_width=W, id_width=ID_WIDTH, burst_bits=B, wide_ranges=[WIDE_RANGE])
    probe = Probe(dut)
    s, bus, wb = dut.axi, dut.bus, dut.wide
    beat_bytes, words, units = W // 8, W // 32, W // B
    unit_bytes, lsb = B // 8, (W // 8 - 1).bit_length()
    left = probe.sig("left")
    if self.mutation == "rlast_early":
        with probe.module.If(probe.sig("r_done") & (~s.rvalid | s.rready) & (left == 2)):
            probe.module.d.sync += s.rlast.eq(1)
    elif self.mutation == "rdata_changes":
        with probe.module.If(s.rvalid & ~s.rready):
            probe.module.d.sync += s.rdata.eq(s.rdata + 1)
    elif self.mutation == "ahead_overpromised":
        ahead = probe.sig("ahead")
        probe.module.d.comb += wb.ahead.eq(Mux(ahead == 0, 1, ahead))
    m.submodules.dut = probe.module

    for name, port in AXI4Signature(data_width=W, id_width=ID_WIDTH).members.items():
        if port.flow == Out:                 # driven by the master: free, within the rules assumed below
            m.d.comb += getattr(s, name).eq(AnySeq(len(getattr(s, name))))
    for port, fields in ((bus, ("ready", "rdata", "err")), (wb, ("ready", "rdata", "err"))):
        for f in fields:
            m.d.comb += getattr(port, f).eq(AnySeq(len(getattr(port, f))))
    keep_valid(m, props, "aw", s.awvalid, s.awready, Cat(s.awid, s.awaddr, s.awlen, s.awsize, s.awburst))
    keep_valid(m, props, "w", s.wvalid, s.wready, Cat(s.wdata, s.wstrb, s.wlast))
    keep_valid(m, props, "ar", s.arvalid, s.arready, Cat(s.arid, s.araddr, s.arlen, s.arsize, s.arburst))

    slave_holds(m, props, "b", s.bvalid, s.bready, Cat(s.bid, s.bresp), "BID and BRESP")
    slave_holds(m, props, "r", s.rvalid, s.rready, Cat(s.rid, s.rdata, s.rresp, s.rlast), "RID, RDATA, RRESP, RLAST")
    bus_holds(m, props, bus)
    w_pending = past(m, wb.valid & ~wb.ready, name="wide_pending")
    w_req = Cat(wb.we, wb.addr, wb.wdata, wb.wmask, wb.ahead, wb.incr)
    w_prev = past(m, w_req, name="wide_req_prev")
    props.assert_("wide_request_held", ~w_pending | (wb.valid & (w_req == w_prev)),
                  "as a burst-bus master, the slave holds valid and its request until ready")

    aw_hs, w_hs, ar_hs = s.awvalid & s.awready, s.wvalid & s.wready, s.arvalid & s.arready
    b_hs, r_hs = s.bvalid & s.bready, s.rvalid & s.rready
    # The burst accepted and not yet answered on each side, and what it asked for.
    w_pend, r_pend = Signal(name="w_pend"), Signal(name="r_pend")
    aw = {f: Signal(len(getattr(s, f"aw{f}")), name=f"req_aw{f}") for f in ("id", "addr", "len", "size", "burst")}
    ar = {f: Signal(len(getattr(s, f"ar{f}")), name=f"req_ar{f}") for f in ("id", "addr", "len", "size", "burst")}
    w_beats, r_beats = Signal(9, name="w_beats"), Signal(9, name="r_beats")
    with m.If(aw_hs):
        m.d.sync += [w_pend.eq(1), w_beats.eq(0)] + [aw[f].eq(getattr(s, f"aw{f}")) for f in aw]
    with m.If(ar_hs):
        m.d.sync += [r_pend.eq(1), r_beats.eq(0)] + [ar[f].eq(getattr(s, f"ar{f}")) for f in ar]
    with m.If(w_hs):
        m.d.sync += w_beats.eq(w_beats + 1)
    with m.If(r_hs):
        m.d.sync += r_beats.eq(r_beats + 1)
        with m.If(s.rlast):
            m.d.sync += r_pend.eq(0)
    with m.If(b_hs):
        m.d.sync += w_pend.eq(0)
    props.assume("master_wlast_on_last_beat", ~(s.wvalid & w_pend) | (s.wlast == (w_beats == aw["len"])),
                 "the master sets WLAST on exactly beat AWLEN of the burst")

    def served(req):
        return (req["size"] == lsb) & ((req["burst"] == INCR) | (req["burst"] == FIXED))

    def beat_addr(req, i):
        """Address of beat i of a burst: its own for the first (and every FIXED, or refused) beat, then aligned."""
        aligned = Cat(Const(0, lsb), req["addr"][lsb:])
        return Mux((i == 0) | (req["burst"] != INCR), req["addr"], (aligned + i * beat_bytes)[:32])

    def block(a):
        return Cat(Const(0, lsb), a[lsb:])

    def in_range(a):
        return (a >= WIDE_RANGE[0]) & (a < sum(WIDE_RANGE))

    w_ok, r_ok = served(aw), served(ar)
    p_full = probe.sig("p_full")
    r_fetch = Signal(10, name="r_fetch")             # beats fetched: delivered, in RDATA, behind it
    m.d.comb += r_fetch.eq(r_beats + s.rvalid + p_full)
    w_addr, r_addr = beat_addr(aw, w_beats), beat_addr(ar, r_fetch)
    nibbles = [s.wstrb[4 * i:4 * i + 4] for i in range(words)]
    strobe_bad = Cat(*((n != 0) & (n != 0xF) for n in nibbles)).any()

    w_err = Signal(name="w_err_seen")               # a beat of this burst failed or was refused
    with m.If(aw_hs):
        m.d.sync += w_err.eq(0)
    with m.If((w_hs & (~w_ok | strobe_bad)) | (bus.valid & bus.ready & bus.we & bus.err)
              | (wb.valid & wb.ready & wb.we & wb.err)):
        m.d.sync += w_err.eq(1)

    props.assert_("one_burst_at_a_time", ~(w_pend & r_pend) & ~(aw_hs & (w_pend | r_pend))
                  & ~(ar_hs & (w_pend | r_pend)), "a new burst is accepted only when none is in progress")
    props.assert_("w_only_inside_burst", ~w_hs | (w_pend & ~s.bvalid & (w_beats <= aw["len"])),
                  "write data is accepted only for an accepted burst, at most AWLEN + 1 beats, before BVALID")
    props.assert_("bresp_after_last_beat", ~s.bvalid | (w_pend & (w_beats == aw["len"] + 1)),
                  "BVALID only after every write beat of an accepted burst")
    props.assert_("bid_matches", ~s.bvalid | (s.bid == aw["id"]), "BID is the burst's AWID")
    props.assert_("bresp_reports_errors", ~s.bvalid | (s.bresp == Mux(w_err, SLVERR, OKAY)),
                  "BRESP is SLVERR if and only if a beat was refused (kind, strobe) or an access failed")
    props.assert_("r_only_inside_burst", ~s.rvalid | (r_pend & (r_beats <= ar["len"])),
                  "RVALID only for an accepted read burst, at most ARLEN + 1 beats")
    props.assert_("rlast_on_last_beat", ~s.rvalid | (s.rlast == (r_beats == ar["len"])),
                  "RLAST on exactly beat ARLEN")
    props.assert_("rid_matches", ~s.rvalid | (s.rid == ar["id"]), "RID is the burst's ARID")
    props.assert_("refused_read_is_slverr", ~s.rvalid | r_ok | ((s.rdata == 0) & (s.rresp == SLVERR)),
                  "a refused read burst (size, WRAP) answers every beat SLVERR with data 0")

    # What the buses see: words (32-bit bus) or bursts (burst bus) of the beat in progress, outside / inside
    # the range, writes only where the strobes cover a whole word.
    word_i = bus.addr[2:lsb]
    w_words = [s.wdata[32 * i:32 * i + 32] for i in range(words)]
    props.assert_("bus_write_is_a_word_of_the_beat",
                  ~(bus.valid & bus.we) | (w_pend & w_ok & s.wvalid & ~s.bvalid & ~strobe_bad & ~in_range(block(w_addr))
                                           & (block(bus.addr) == block(w_addr)) & (bus.addr[:2] == 0)
                                           & (Cat(*nibbles).word_select(word_i, 4) == 0xF)
                                           & (bus.wdata == Cat(*w_words).word_select(word_i, 32))),
                  "the bus writes only a whole-strobe word of the current write beat, outside the range, with its data")
    props.assert_("bus_read_is_a_word_of_the_beat",
                  ~(bus.valid & ~bus.we) | (r_pend & r_ok & ~p_full & (r_fetch <= ar["len"])
                                            & ~in_range(block(r_addr)) & (block(bus.addr) == block(r_addr))
                                            & (bus.addr[:2] == 0) & (bus.addr >= Cat(Const(0, 2), r_addr[2:]))),
                  "the bus reads only words of the beat being fetched, outside the range, from its address's word on")
    unit_i = wb.addr[(unit_bytes - 1).bit_length():lsb] if units > 1 else Const(0, 1)
    word_on = Cat(*(n == 0xF for n in nibbles))
    props.assert_("wide_write_is_a_burst_of_the_beat",
                  ~(wb.valid & wb.we) | (w_pend & w_ok & s.wvalid & ~s.bvalid & in_range(block(w_addr))
                                         & (block(wb.addr) == block(w_addr)) & (wb.addr[:lsb] == unit_i * unit_bytes)
                                         & (wb.wdata == s.wdata.word_select(unit_i, B))
                                         & (wb.wmask == Mux(strobe_bad, 0, word_on.word_select(unit_i, B // 32)))
                                         & (wb.incr == (aw["burst"] == INCR))),
                  "the burst bus writes only a burst of the current write beat, inside the range, with its data and "
                  "exactly its whole-strobe words (none if the beat is refused)")
    props.assert_("wide_read_is_a_burst_of_the_beat",
                  ~(wb.valid & ~wb.we) | (r_pend & r_ok & ~p_full & (r_fetch <= ar["len"]) & in_range(block(r_addr))
                                          & (block(wb.addr) == block(r_addr)) & (wb.incr == (ar["burst"] == INCR))),
                  "the burst bus reads only bursts of the beat being fetched, inside the range")

    # `ahead`: every access announced comes, each with one fewer to follow, at the next burst when INCR; none
    # is outstanding when a burst is accepted or answered.
    pend, pend_incr, pend_addr = Signal(16, name="ahead_pend"), Signal(name="ahead_incr"), Signal(32, name="ahead_addr")
    with m.If(wb.valid & wb.ready):
        m.d.sync += [pend.eq(wb.ahead), pend_incr.eq(wb.incr), pend_addr.eq(wb.addr)]
    props.assert_("ahead_counts_down",
                  ~wb.valid | (pend == 0)
                  | ((wb.ahead == pend - 1) & (~pend_incr | (wb.addr == pend_addr + unit_bytes))),
                  "an access announced by `ahead` comes with one fewer announced, at the next burst when INCR")
    props.assert_("ahead_all_come", ~(aw_hs | ar_hs | s.bvalid | (s.rvalid & s.rlast)) | (pend == 0),
                  "every announced access has come before a burst ends or the next one starts")

    st = {n: probe.in_state("fsm", n) for n in ("IDLE", "W_BEAT", "B", "R_BEAT")}
    ahead_i, wide_i = probe.sig("ahead"), probe.sig("wide")
    sub, unit_addr = probe.sig("sub"), probe.sig("unit_addr")
    p_last, p_data, p_err = probe.sig("p_last"), probe.sig("p_data"), probe.sig("p_err")
    fetching = st["R_BEAT"] & (left != 0)
    helpers = {
        "helper_states": (st["IDLE"] == (~w_pend & ~r_pend)) & ((st["W_BEAT"] | st["B"]) == w_pend)
        & (st["B"] == s.bvalid) & (st["R_BEAT"] == r_pend) & (~p_full | s.rvalid),
        "helper_write": ~st["W_BEAT"] | ((left == aw["len"] + 1 - w_beats) & (probe.sig("addr") == w_addr)
                                         & (probe.sig("ok") == w_ok) & (probe.sig("err") == w_err)
                                         & (probe.sig("burst") == aw["burst"]) & (w_beats <= aw["len"])),
        "helper_read": ~st["R_BEAT"] | ((left == ar["len"] + 1 - r_fetch) & (probe.sig("addr") == r_addr)
                                        & (probe.sig("ok") == r_ok) & (probe.sig("burst") == ar["burst"])
                                        & (r_fetch <= ar["len"] + 1)),
        "helper_behind": ~p_full | ((p_last == (r_beats + 1 == ar["len"])) & (r_ok | ((p_data == 0) & p_err))),
        "helper_ids": (~(st["W_BEAT"] | st["B"]) | (s.bid == aw["id"])) & (~st["R_BEAT"] | (s.rid == ar["id"])),
        "helper_sub": (st["W_BEAT"] | fetching | (sub == 0)) & (sub < max(words, units)) & (~wide_i | (sub < units)),
        "helper_ahead": (pend == 0) | ((st["W_BEAT"] | fetching) & wide_i & probe.sig("ok") & (ahead_i == pend - 1)
                                       & (~pend_incr | (unit_addr == pend_addr + unit_bytes))
                                       & (probe.sig("burst") == Mux(pend_incr, INCR, FIXED))),
    }
    for name, test in helpers.items():
        props.assert_(name, test, "helper: the FSM state and its registers match the accepted burst and the beats "
                                  "done")

    props.cover("write_burst_okay", b_hs & (s.bresp == OKAY) & (aw["len"] >= 2) & (aw["burst"] == INCR),
                "an INCR write burst of 3 or more beats completes OKAY")
    props.cover("wide_write_burst_okay", b_hs & (s.bresp == OKAY) & (aw["len"] >= 1) & in_range(aw["addr"]),
                "a write burst of 2 or more beats over the burst bus completes OKAY")
    props.cover("read_burst_done", r_hs & s.rlast & (ar["len"] >= 2) & (s.rresp == OKAY),
                "an INCR read burst of 3 or more beats completes")
    props.cover("wrap_refused", r_hs & s.rlast & (ar["burst"] == 0b10) & (ar["len"] >= 1),
                "a WRAP read burst is answered (SLVERR) beat by beat")
    props.cover("rvalid_waits", s.rvalid & ~s.rready & past(m, s.rvalid & ~s.rready, name="rw"),
                "RVALID waits for RREADY two cycles")
    props.cover("beat_behind_rdata", p_full, "a fetched read beat waits behind RDATA")
    return m


_ASSUMES = {"master_*_held": "AXI4 master rules (IHI 0022, A3.2.1): the slave may rely on them",
            "master_wlast_on_last_beat": "AXI4 master rule (A3.4.1); the slave ends a burst on WLAST"}
_MUTATIONS = {"rlast_early": "RLAST is raised one beat early",
              "rdata_changes": "RDATA changes while RVALID waits for RREADY",
              "ahead_overpromised": "the burst bus is told of one more access after the last one"}
_EXPECTS = {"rlast_early": "rlast_on_last_beat", "rdata_changes": "rvalid_held",
            "ahead_overpromised": "ahead_counts_down"}

PROOFS = [
    Proof(name="axi4", block="hw/axi4.py", build=harness(256, 256), mode="prove", depth=6, cover_depth=12,
          assumes_why=_ASSUMES, mutations=_MUTATIONS, mutation_expects=_EXPECTS),
    Proof(name="axi4_board", block="hw/axi4.py", build=harness(128, 64), mode="prove", depth=6, cover_depth=12,
          assumes_why=_ASSUMES, mutations={"ahead_overpromised": _MUTATIONS["ahead_overpromised"]},
          mutation_expects={"ahead_overpromised": "ahead_counts_down"}),
]
