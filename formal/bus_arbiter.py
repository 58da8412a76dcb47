"""hw/bus.py BusArbiter with three masters, as hw/device.py builds it (UART link, AXI4-Lite, AXI4).

Environment: every master keeps the bus protocol (valid held, request unchanged, until ready); the slave
answers a presented request within SLAVE_WAIT cycles (the hub's windows answer CSR/CMDQ/scratch at once and
bank/GB accesses once the sequencer lets them: a bounded wait, docs/control_hub.md "Partial commands").
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Cat, Module, Signal

from hw.bus import BusArbiter

from ._common import MutableHarness, Probe, Proof, Properties, past

MASTERS = 3
SLAVE_WAIT = 3
# Worst case for a waiting master, in cycles with its valid high and ready low: it asks just as the grant goes
# to the next master in round-robin order, every other master is served once before it (a grant cycle and up
# to SLAVE_WAIT + 1 bus cycles each), then its own grant cycle and SLAVE_WAIT cycles before ready. A request
# already on the bus when it asks costs less than a full turn, so this is the bound, and a cover reaches it.
SERVE_BOUND = (MASTERS - 1) * (SLAVE_WAIT + 2) + 1 + SLAVE_WAIT


class Harness(MutableHarness):
    def elaborate(self, platform):
        m = Module()
        props = self.props = Properties(m)
        dut = BusArbiter(masters=MASTERS)
        probe = Probe(dut)
        grant, busy = probe.sig("grant"), probe.sig("busy")
        if self.mutation == "starve":
            # Always prefer master 0 when it asks: the round robin is gone and master 1 can starve.
            with probe.module.If(~busy & dut.m0.valid):
                probe.module.d.sync += grant.eq(0)
        elif self.mutation == "switch_mid_request":
            # Re-arbitrate while a request is outstanding.
            with probe.module.If(busy & ~dut.bus.ready & dut.m2.valid):
                probe.module.d.sync += grant.eq(2)
        m.submodules.dut = probe.module
        ports = [getattr(dut, f"m{i}") for i in range(MASTERS)]
        bus = dut.bus

        for i, p in enumerate(ports):
            for f in ("valid", "we", "addr", "wdata"):
                m.d.comb += getattr(p, f).eq(AnySeq(len(getattr(p, f))))
            pending = past(m, p.valid & ~p.ready, name=f"m{i}_pending")
            held = Cat(p.we, p.addr, p.wdata)
            held_prev = past(m, held, name=f"m{i}_req_prev")
            props.assume(f"m{i}_keeps_request", ~pending | (p.valid & (held == held_prev)),
                         f"master {i} holds valid and its request until ready")
        for f in ("ready", "rdata", "err"):
            m.d.comb += getattr(bus, f).eq(AnySeq(len(getattr(bus, f))))
        slave_wait = Signal(range(SLAVE_WAIT + 2))
        with m.If(bus.valid & ~bus.ready):
            m.d.sync += slave_wait.eq(slave_wait + 1)
        with m.Else():
            m.d.sync += slave_wait.eq(0)
        props.assume("slave_answers", ~bus.valid | (slave_wait < SLAVE_WAIT) | bus.ready,
                     f"the slave answers a presented request within {SLAVE_WAIT} cycles")

        readies = Cat(p.ready for p in ports)
        props.assert_("one_master_at_a_time", (readies & (readies - 1)) == 0,
                      "at most one master is answered in any cycle")
        for i, p in enumerate(ports):
            props.assert_(f"m{i}_answered_only_when_granted",
                          ~p.ready | (busy & (grant == i) & bus.valid & p.valid & (p.rdata == bus.rdata)
                                      & (p.err == bus.err)),
                          f"master {i} sees ready (with the slave's rdata and err) only for its own presented request")
        bus_pending = past(m, bus.valid & ~bus.ready, name="bus_pending")
        bus_req = Cat(bus.we, bus.addr, bus.wdata)
        bus_req_prev = past(m, bus_req, name="bus_req_prev")
        grant_prev = past(m, grant, name="grant_prev")
        props.assert_("bus_request_held",
                      ~bus_pending | (bus.valid & (bus_req == bus_req_prev) & (grant == grant_prev)),
                      "a presented request stays on the bus, unchanged and from the same master, until ready")
        waits = []
        for i, p in enumerate(ports):
            wait = Signal(range(SERVE_BOUND + 2), name=f"m{i}_wait")
            waits.append(wait)
            with m.If(p.valid & ~p.ready):
                m.d.sync += wait.eq(wait + 1)
            with m.Else():
                m.d.sync += wait.eq(0)
            props.assert_(f"m{i}_served_within_bound", wait <= SERVE_BOUND,
                          f"master {i} waits at most {SERVE_BOUND} cycles (valid high, ready low) for its answer")
        props.assert_("grant_in_range", grant < MASTERS,
                      "helper: the grant register names an existing master (its spare encoding is unreachable)")
        props.assert_("busy_means_presented", ~busy | bus.valid,
                      "helper: while a grant is outstanding, the granted master's request is on the bus")

        for i, p in enumerate(ports):
            props.cover(f"m{i}_served", p.valid & p.ready, f"master {i} gets an answer")
        all_wait = Cat(p.valid & ~p.ready for p in ports).all()
        props.cover("three_contend", all_wait & (ports[0].ready | ports[1].ready | ports[2].ready | busy),
                    "all three masters request at once")
        props.cover("worst_wait", Cat(w == SERVE_BOUND for w in waits).any(),
                    "a master waits the full bound (the bound is tight)")
        return m


PROOFS = [
    Proof(name="bus_arbiter", block="hw/bus.py", build=Harness, mode="prove", depth=24, cover_depth=24,
          assumes_why={
              "m*_keeps_request": "the bus protocol of hw/bus.py: a master holds valid and its request until ready",
              "slave_answers": f"the hub answers within a bounded time; {SLAVE_WAIT} cycles is a stand-in for the "
                               "bound (the served-within figure scales with it)",
          },
          mutations={"starve": "grant always goes to master 0 when it asks (no round robin)",
                     "switch_mid_request": "the grant moves to master 2 while a request is outstanding"},
          mutation_expects={"starve": "m2_served_within_bound", "switch_mid_request": "bus_request_held"},
          mutation_bmc={"starve": 20}),
]
