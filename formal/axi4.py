"""hw/axi4.py AXI4Slave: AXI4 handshake and burst rules seen from the slave, and what reaches the bus.

Environment: the master keeps the AXI rules (a VALID stays high, its payload unchanged, until READY; WLAST
on exactly the last beat of the burst); BREADY, RREADY and the bus's answers are free in every cycle.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Cat, Module, Mux, Signal

from amaranth.lib.wiring import Out

from hw.axi4 import FIXED, INCR, AXI4Signature, AXI4Slave
from hw.axi_lite import OKAY, SLVERR

from ._common import MutableHarness, Probe, Proof, Properties, past
from .axi_lite import bus_holds, keep_valid, slave_holds

ID_WIDTH = 4


class Harness(MutableHarness):
    def elaborate(self, platform):
        m = Module()
        props = self.props = Properties(m)
        dut = AXI4Slave(id_width=ID_WIDTH)
        probe = Probe(dut)
        s, bus = dut.axi, dut.bus
        left = probe.sig("left")
        if self.mutation == "rlast_early":
            with probe.module.If(probe.in_state("fsm", "R_BEAT") & (left == 2)):
                probe.module.d.sync += s.rlast.eq(1)
        elif self.mutation == "rdata_changes":
            with probe.module.If(s.rvalid & ~s.rready):
                probe.module.d.sync += s.rdata.eq(s.rdata + 1)
        m.submodules.dut = probe.module

        for name, port in AXI4Signature(id_width=ID_WIDTH).members.items():
            if port.flow == Out:                 # driven by the master: free, within the rules assumed below
                m.d.comb += getattr(s, name).eq(AnySeq(len(getattr(s, name))))
        for f in ("ready", "rdata", "err"):
            m.d.comb += getattr(bus, f).eq(AnySeq(len(getattr(bus, f))))
        keep_valid(m, props, "aw", s.awvalid, s.awready, Cat(s.awid, s.awaddr, s.awlen, s.awsize, s.awburst))
        keep_valid(m, props, "w", s.wvalid, s.wready, Cat(s.wdata, s.wstrb, s.wlast))
        keep_valid(m, props, "ar", s.arvalid, s.arready, Cat(s.arid, s.araddr, s.arlen, s.arsize, s.arburst))

        slave_holds(m, props, "b", s.bvalid, s.bready, Cat(s.bid, s.bresp), "BID and BRESP")
        slave_holds(m, props, "r", s.rvalid, s.rready, Cat(s.rid, s.rdata, s.rresp, s.rlast),
                    "RID, RDATA, RRESP, RLAST")
        bus_holds(m, props, bus)

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

        w_ok = (aw["size"] == 2) & ((aw["burst"] == INCR) | (aw["burst"] == FIXED))
        r_ok = (ar["size"] == 2) & ((ar["burst"] == INCR) | (ar["burst"] == FIXED))
        w_addr = (aw["addr"] + Mux(aw["burst"] == INCR, w_beats << 2, 0))[:32]
        r_addr = (ar["addr"] + Mux(ar["burst"] == INCR, r_beats << 2, 0))[:32]
        w_err = Signal(name="w_err_seen")               # a beat of this burst failed or was refused
        with m.If(aw_hs):
            m.d.sync += w_err.eq(0)
        with m.If(w_hs & (~w_ok | (s.wstrb != 0xF) | bus.err)):
            m.d.sync += w_err.eq(1)
        r_ans, r_err = Signal(32, name="r_ans"), Signal(name="r_err")
        with m.If(bus.valid & bus.ready & ~bus.we):
            m.d.sync += [r_ans.eq(bus.rdata), r_err.eq(bus.err)]

        props.assert_("one_burst_at_a_time", ~(w_pend & r_pend) & ~(aw_hs & (w_pend | r_pend))
                      & ~(ar_hs & (w_pend | r_pend)), "a new burst is accepted only when none is in progress")
        props.assert_("w_only_inside_burst", ~w_hs | (w_pend & ~s.bvalid & (w_beats <= aw["len"])),
                      "write data is accepted only for an accepted burst, at most AWLEN + 1 beats, before BVALID")
        props.assert_("bresp_after_last_beat", ~s.bvalid | (w_pend & (w_beats == aw["len"] + 1)),
                      "BVALID only after every write beat of an accepted burst")
        props.assert_("bid_matches", ~s.bvalid | (s.bid == aw["id"]), "BID is the burst's AWID")
        props.assert_("bresp_reports_errors", ~s.bvalid | (s.bresp == Mux(w_err, SLVERR, OKAY)),
                      "BRESP is SLVERR if and only if a beat was refused (kind, strobe) or failed on the bus")
        props.assert_("r_only_inside_burst", ~s.rvalid | (r_pend & (r_beats <= ar["len"])),
                      "RVALID only for an accepted read burst, at most ARLEN + 1 beats")
        props.assert_("rlast_on_last_beat", ~s.rvalid | (s.rlast == (r_beats == ar["len"])),
                      "RLAST on exactly beat ARLEN")
        props.assert_("rid_matches", ~s.rvalid | (s.rid == ar["id"]), "RID is the burst's ARID")
        props.assert_("rdata_is_bus_answer", ~s.rvalid | ~r_ok | ((s.rdata == r_ans) & (s.rresp == (r_err << 1))),
                      "a served burst's RDATA and RRESP are the bus's answer to that beat")
        props.assert_("refused_read_is_slverr", ~s.rvalid | r_ok | ((s.rdata == 0) & (s.rresp == SLVERR)),
                      "a refused read burst (size, WRAP) answers every beat SLVERR with data 0")
        props.assert_("bus_write_is_the_beat",
                      ~(bus.valid & bus.we) | (w_pend & w_ok & s.wvalid & (s.wstrb == 0xF) & ~s.bvalid
                                               & (bus.addr == w_addr) & (bus.wdata == s.wdata)),
                      "the bus writes only a full-strobe beat of a served burst, at the beat's address, with its data")
        props.assert_("bus_read_is_the_beat",
                      ~(bus.valid & ~bus.we) | (r_pend & r_ok & ~s.rvalid & (bus.addr == r_addr)),
                      "the bus reads only for the next beat of a served read burst, at its address")
        st = {n: probe.in_state("fsm", n) for n in ("IDLE", "W_BEAT", "B", "R_BEAT", "R_OUT")}
        reading = st["R_BEAT"] | st["R_OUT"]
        props.assert_("helper_state",
                      (st["IDLE"] == (~w_pend & ~r_pend)) & ((st["W_BEAT"] | st["B"]) == w_pend)
                      & (st["B"] == s.bvalid) & (st["R_OUT"] == s.rvalid) & ((st["R_BEAT"] | st["R_OUT"]) == r_pend)
                      & (~st["W_BEAT"] | ((left == aw["len"] + 1 - w_beats) & (probe.sig("addr") == w_addr)
                                          & (probe.sig("ok") == w_ok) & (probe.sig("err") == w_err)
                                          & (probe.sig("burst") == aw["burst"])))
                      & (~reading | ((left == ar["len"] + 1 - r_beats) & (probe.sig("addr") == r_addr)
                                     & (probe.sig("ok") == r_ok) & (probe.sig("burst") == ar["burst"])))
                      & (~(st["W_BEAT"] | st["B"]) | (s.bid == aw["id"])) & (~reading | (s.rid == ar["id"]))
                      & (~st["W_BEAT"] | (w_beats <= aw["len"])) & (~reading | (r_beats <= ar["len"])),
                      "helper: the FSM state and its registers match the accepted burst and the beats done")

        props.cover("write_burst_okay", b_hs & (s.bresp == OKAY) & (aw["len"] >= 2) & (aw["burst"] == INCR),
                    "an INCR write burst of 3 or more beats completes OKAY")
        props.cover("read_burst_done", r_hs & s.rlast & (ar["len"] >= 2) & (s.rresp == OKAY),
                    "an INCR read burst of 3 or more beats completes")
        props.cover("wrap_refused", r_hs & s.rlast & (ar["burst"] == 0b10) & (ar["len"] >= 1),
                    "a WRAP read burst is answered (SLVERR) beat by beat")
        props.cover("rvalid_waits", s.rvalid & ~s.rready & past(m, s.rvalid & ~s.rready, name="rw"),
                    "RVALID waits for RREADY two cycles")
        return m


PROOFS = [
    Proof(name="axi4", block="hw/axi4.py", build=Harness, mode="prove", depth=6, cover_depth=12,
          assumes_why={"master_*_held": "AXI4 master rules (IHI 0022, A3.2.1): the slave may rely on them",
                       "master_wlast_on_last_beat": "AXI4 master rule (A3.4.1); the slave ends a burst on WLAST"},
          mutations={"rlast_early": "RLAST is raised one beat early",
                     "rdata_changes": "RDATA changes while RVALID waits for RREADY"},
          mutation_expects={"rlast_early": "rlast_on_last_beat", "rdata_changes": "rvalid_held"}),
]
