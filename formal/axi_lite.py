"""hw/axi_lite.py AXILiteSlave: the AXI4-Lite handshake rules seen from the slave, and what reaches the bus.

Environment: the master keeps the AXI rules (a VALID stays high, its payload unchanged, until READY); BREADY,
RREADY and the bus's answers (ready, rdata, err) are free in every cycle, so no liveness is assumed.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Cat, Module, Signal

from hw.axi_lite import OKAY, SLVERR, AXILiteSlave

from ._common import MutableHarness, Probe, Proof, Properties, past


def keep_valid(m, props, name, valid, ready, payload):
    """Assume the master's side of a channel: VALID held and payload stable until READY."""
    pending = past(m, valid & ~ready, name=f"{name}_pending")
    prev = past(m, payload, name=f"{name}_prev")
    props.assume(f"master_{name}_held", ~pending | (valid & (payload == prev)),
                 f"the master holds {name.upper()}VALID and its payload until {name.upper()}READY")


def slave_holds(m, props, name, valid, ready, payload, what):
    pending = past(m, valid & ~ready, name=f"{name}_out_pending")
    prev = past(m, payload, name=f"{name}_out_prev")
    props.assert_(f"{name}valid_held", ~pending | (valid & (payload == prev)),
                  f"{name.upper()}VALID stays high and {what} stable until {name.upper()}READY")


def bus_holds(m, props, bus):
    pending = past(m, bus.valid & ~bus.ready, name="bus_pending")
    req = Cat(bus.we, bus.addr, bus.wdata)
    prev = past(m, req, name="bus_req_prev")
    props.assert_("bus_request_held", ~pending | (bus.valid & (req == prev)),
                  "as a bus master, the slave holds valid and its request until the bus's ready")


class Harness(MutableHarness):
    def elaborate(self, platform):
        m = Module()
        props = self.props = Properties(m)
        dut = AXILiteSlave()
        probe = Probe(dut)
        s, bus = dut.axil, dut.bus
        if self.mutation == "drop_bvalid":
            with probe.module.If(s.bvalid & ~s.bready):
                probe.module.d.sync += s.bvalid.eq(0)
        elif self.mutation == "read_without_request":
            with probe.module.If(~s.rvalid & ~s.arvalid & bus.ready):
                probe.module.d.sync += s.rvalid.eq(1)
        m.submodules.dut = probe.module

        for f in ("awaddr", "awprot", "awvalid", "wdata", "wstrb", "wvalid", "bready", "araddr", "arprot",
                  "arvalid", "rready"):
            m.d.comb += getattr(s, f).eq(AnySeq(len(getattr(s, f))))
        for f in ("ready", "rdata", "err"):
            m.d.comb += getattr(bus, f).eq(AnySeq(len(getattr(bus, f))))
        keep_valid(m, props, "aw", s.awvalid, s.awready, Cat(s.awaddr, s.awprot))
        keep_valid(m, props, "w", s.wvalid, s.wready, Cat(s.wdata, s.wstrb))
        keep_valid(m, props, "ar", s.arvalid, s.arready, Cat(s.araddr, s.arprot))

        slave_holds(m, props, "b", s.bvalid, s.bready, s.bresp, "BRESP")
        slave_holds(m, props, "r", s.rvalid, s.rready, Cat(s.rdata, s.rresp), "RDATA and RRESP")
        bus_holds(m, props, bus)

        # Requests accepted and not yet answered, per channel, and what they asked for.
        aw_hs, w_hs, ar_hs = s.awvalid & s.awready, s.wvalid & s.wready, s.arvalid & s.arready
        b_hs, r_hs = s.bvalid & s.bready, s.rvalid & s.rready
        pend_aw, pend_w, pend_ar = Signal(2, name="pend_aw"), Signal(2, name="pend_w"), Signal(2, name="pend_ar")
        m.d.sync += [pend_aw.eq(pend_aw + aw_hs - b_hs), pend_w.eq(pend_w + w_hs - b_hs),
                     pend_ar.eq(pend_ar + ar_hs - r_hs)]
        waddr, wdata = Signal(32, name="req_waddr"), Signal(32, name="req_wdata")
        wstrb, raddr = Signal(4, name="req_wstrb"), Signal(32, name="req_raddr")
        with m.If(aw_hs):
            m.d.sync += waddr.eq(s.awaddr)
        with m.If(w_hs):
            m.d.sync += [wdata.eq(s.wdata), wstrb.eq(s.wstrb)]
        with m.If(ar_hs):
            m.d.sync += raddr.eq(s.araddr)
        # The bus access of the pending request: written (and the error), or the read's answer.
        wrote, rd_ans, rd_err = Signal(name="bus_wrote"), Signal(32, name="bus_rd_ans"), Signal(name="bus_rd_err")
        with m.If(bus.valid & bus.ready & bus.we):
            m.d.sync += wrote.eq(1)
        with m.If(bus.valid & bus.ready & ~bus.we):
            m.d.sync += [rd_ans.eq(bus.rdata), rd_err.eq(bus.err)]
        w_err = Signal(name="bus_wr_err")
        with m.If(bus.valid & bus.ready & bus.we):
            m.d.sync += w_err.eq(bus.err)
        with m.If(b_hs):
            m.d.sync += [wrote.eq(0), w_err.eq(0)]

        props.assert_("one_write_at_a_time", (pend_aw <= 1) & (pend_w <= 1),
                      "at most one write address and one write data accepted and not yet answered")
        props.assert_("one_read_at_a_time", pend_ar <= 1, "at most one read accepted and not yet answered")
        props.assert_("bresp_only_for_accepted_write", ~s.bvalid | ((pend_aw == 1) & (pend_w == 1)),
                      "BVALID only after both the write address and the write data were accepted")
        props.assert_("rresp_only_for_accepted_read", ~s.rvalid | (pend_ar == 1),
                      "RVALID only for an accepted read")
        props.assert_("bus_write_is_the_request",
                      ~(bus.valid & bus.we) | ((pend_aw == 1) & (pend_w == 1) & (wstrb == 0xF) & ~s.bvalid
                                               & (bus.addr == waddr) & (bus.wdata == wdata)),
                      "the bus writes only an accepted full-strobe write, at its address with its data, before BVALID")
        props.assert_("bus_read_is_the_request",
                      ~(bus.valid & ~bus.we) | ((pend_ar == 1) & ~s.rvalid & (bus.addr == raddr)),
                      "the bus reads only for an accepted read, at its address, before RVALID")
        props.assert_("partial_strobe_refused", ~s.bvalid | (wstrb == 0xF) | ((s.bresp == SLVERR) & ~wrote),
                      "a write with a partial strobe is answered SLVERR and never reaches the bus")
        props.assert_("bresp_is_bus_answer", ~s.bvalid | (wstrb != 0xF) | (wrote & (s.bresp == (w_err << 1))),
                      "a full-strobe write is answered after its bus write, OKAY or SLVERR as the bus said")
        props.assert_("rdata_is_bus_answer", ~s.rvalid | ((s.rdata == rd_ans) & (s.rresp == (rd_err << 1))),
                      "RDATA and RRESP are the bus's answer to that read")
        # Helper invariants for the induction (the slave's state against the harness's bookkeeping).
        st = {n: probe.in_state("fsm", n) for n in ("IDLE", "WRITE", "BRESP", "READ", "RRESP")}
        props.assert_("helper_state", (st["IDLE"] == ((pend_aw == 0) & (pend_w == 0) & (pend_ar == 0)))
                      & (st["BRESP"] == s.bvalid) & (st["RRESP"] == s.rvalid)
                      & ((st["WRITE"] | st["BRESP"]) == (pend_aw == 1)) & (pend_aw == pend_w)
                      & ((st["READ"] | st["RRESP"]) == (pend_ar == 1))
                      & (~(st["WRITE"] | st["BRESP"]) | ((probe.sig("addr") == waddr) & (probe.sig("data") == wdata)
                                                        & (probe.sig("full") == (wstrb == 0xF))))
                      & (~(st["READ"] | st["RRESP"]) | (probe.sig("addr") == raddr))
                      & (~wrote | st["BRESP"]) & (~st["BRESP"] | (wstrb != 0xF) | wrote),
                      "helper: the FSM state and its registers match the accepted request")

        props.cover("write_okay", b_hs & (s.bresp == OKAY), "a full write completes OKAY")
        props.cover("write_refused", b_hs & (s.bresp == SLVERR) & (wstrb != 0xF), "a partial-strobe write is refused")
        props.cover("read_done", r_hs & (s.rresp == OKAY), "a read completes OKAY")
        props.cover("bvalid_waits", s.bvalid & ~s.bready & past(m, s.bvalid & ~s.bready, name="bw"),
                    "BVALID waits for BREADY two cycles")
        return m


PROOFS = [
    Proof(name="axi_lite", block="hw/axi_lite.py", build=Harness, mode="prove", depth=6, cover_depth=10,
          assumes_why={"master_*_held": "AXI4-Lite master rules (IHI 0022, A3.2.1): the slave may rely on them"},
          mutations={"drop_bvalid": "BVALID falls while BREADY is low",
                     "read_without_request": "RVALID is raised with no read accepted"},
          mutation_expects={"drop_bvalid": "bvalid_held", "read_without_request": "rresp_only_for_accepted_read"}),
]
