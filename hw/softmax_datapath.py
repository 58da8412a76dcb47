"""The attention tile's softmax datapath (docs/control_hub.md, "Attention tile"; docs/numerics.md §8).

It owns the score memory's ports: score rows arrive from the response router with a running maximum per lane;
the exp pass turns each row of B scores into e = exp2((s - m) * scale * log2 e), one score a cycle in each of its
units, writes the row back and adds each e to its lane's sum; the lane sums' pairwise tree gives S and r = 1/S;
p = e * r is rounded to BF16 and handed out one GB burst at a time. The sequencer's attention walker decides when
each step happens (`SoftmaxControlSignature`).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import FP32_QNAN, LOG2E_F32, DeviceParams

from .fp32 import FP32_ADD_CUTS, FP32_MUL_CUTS, fp32_add, fp32_mul, fp32_to_bf16, pipeline_stage, tree_reduce
from .function_unit import EXP2_STAGES, exp2_fixed, is_nan, order_key, reciprocal, reciprocal_depth
from .hub_responses import score_row
from .replica import UNMERGED, replicas

__all__ = ["SoftmaxDatapath", "SoftmaxControlSignature"]

_NEG_INF = 0xFF800000


def _score_rows(params):
    return params.score_words // params.banks


class SoftmaxControlSignature(wiring.Signature):
    """The walker's side: `clear_max` (a tile starts: forget the running maxima), `load_max` (every score has
    landed and `busy` is low: latch the maximum m and c = `scale` * log2 e, zero the lane sums), `row` (the
    score row read this cycle), `exp` (the row read last cycle goes through the exp pass; at most one row every
    SoftmaxDatapath.ROW_GAP cycles, the lane sums' adder being a pipeline), `busy` (in: m and c have not yet
    followed the last score, exp pass results are still on their way to the lane sums, or S and 1/S have not
    yet followed them), `load_recip` (latch r = 1/S; only once `busy` is low), `burst` (which group of `lanes`
    scores `p_burst` shows), `p_burst` (in: p as BF16 for the row that was read SoftmaxDatapath.P_LATENCY
    cycles earlier, the row address held since)."""

    def __init__(self, params):
        super().__init__({
            "clear_max": Out(1),
            "scale": Out(32),
            "load_max": Out(1),
            "row": Out(range(_score_rows(params))),
            "exp": Out(1),
            "busy": In(1),
            "load_recip": Out(1),
            "burst": Out(max((params.banks // params.lanes - 1).bit_length(), 1)),
            "p_burst": In(params.burst_bits),
        })


class SoftmaxDatapath(wiring.Component):
    """Ports: `ctl` (In SoftmaxControlSignature) from the sequencer; `scores` (in stream of
    hub_responses.score_row, always ready) from the response router; `score_wr`, `score_rd`: the score memory's
    ports (one write port, so that it maps to block RAM: scores land during the MAC pass and exponentials are
    written back during the exp pass, which starts only after every score has landed)."""

    ROW_GAP = FP32_ADD_CUTS + 1          # cycles between exp-pass rows: the lane sums' adder latency + 1
    # score row read -> p_burst: the read, the read data's register, the multiply, the BF16 register
    P_LATENCY = 3 + FP32_MUL_CUTS

    def __init__(self, *, params):
        if not isinstance(params, DeviceParams):
            raise TypeError(f"params must be a DeviceParams, not {params!r}")
        self.params = params
        # Lanes per exp-pass unit: the most that divide the banks and fit between two rows.
        self.exp_lanes = max(k for k in range(1, min(params.banks, self.ROW_GAP) + 1) if params.banks % k == 0)
        rows = _score_rows(params)
        port = {"addr_width": (rows - 1).bit_length(), "shape": 32 * params.banks}
        super().__init__({
            "ctl": In(SoftmaxControlSignature(params)),
            "scores": In(stream.Signature(score_row(params), always_ready=True)),
            "score_wr": In(memory.WritePort.Signature(**port)),
            "score_rd": In(memory.ReadPort.Signature(**port)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        B, L = p.banks, p.lanes
        ctl, rd = self.ctl, self.score_rd
        # The walker's strobes are registered as they arrive, and act a cycle later: each enables or clears a few
        # hundred registers here (the maxima, m and c per exp unit, the lane sums, r per lane), and from the
        # walker's state straight into those enables the route across the device made the 75 MHz build's
        # critical path (18.55 ns: 8.56 ns of it one route, sequencer to softmax). The walker looks at nothing
        # they change for many cycles after each (`busy` stays low until the exp pass starts, scores arrive only
        # after the score MACs), and what they latch holds still around them (m and c settled, r settled). Each
        # is one register per lane (load_max: per exp unit) and one for the common counters (hw/replica.py): one
        # register into every lane made a029335's 65 MHz build fail with seed 2 (load_max to lane 3's sums,
        # 15.36 ns of routing).
        K = self.exp_lanes
        U = B // K
        clear_max = replicas(m, ctl.clear_max, B + 1, name="clear_max")
        load_max = replicas(m, ctl.load_max, U + 1, name="load_max")
        load_recip = replicas(m, ctl.load_recip, B, name="load_recip")

        # Scores land in the memory; each lane keeps its maximum (a NaN anywhere makes m NaN). A row is
        # registered as it arrives (`busy` covers it): the router's queue logic, the maxima's compares and their
        # enables in one cycle made ~18.1 ns on the ULX3S build.
        run_max = Array(Signal(32, name=f"run_max{i}", init=_NEG_INF) for i in range(B))
        any_nan = Signal()
        sc_valid = Signal(name="score_in_valid")
        sc = Signal.like(self.scores.payload, name="score_in")
        m.d.sync += [sc_valid.eq(self.scores.valid), sc.eq(self.scores.payload)]
        with m.If(sc_valid):
            m.d.comb += [self.score_wr.en.eq(1), self.score_wr.addr.eq(sc.row), self.score_wr.data.eq(sc.scores)]
            for i in range(B):
                sv = sc.scores[32 * i:32 * i + 32]
                with m.If(is_nan(sv)):
                    m.d.sync += any_nan.eq(1)
                with m.Elif(order_key(sv) > order_key(run_max[i])):
                    m.d.sync += run_max[i].eq(sv)
        for i in range(B):
            with m.If(clear_max[i]):
                m.d.sync += run_max[i].eq(_NEG_INF)
        with m.If(clear_max[B]):
            m.d.sync += any_nan.eq(0)

        reg = pipeline_stage(m, name="sm")       # a free-running register: every value one cycle later

        # m (a compare tree over the lanes' maxima, a register per level) and c = scale * log2 e (a pipelined
        # multiply) run freely; `max_settle` counts their depth down after the last change of their inputs.
        m_tree = tree_reduce(list(run_max), lambda a, b: reg(Mux(order_key(b) > order_key(a), b, a)))
        scale_c = reg(fp32_mul(m, ctl.scale, Const(LOG2E_F32, 32), name="sm_c", stage=reg))
        max_depth = max((B - 1).bit_length(), FP32_MUL_CUTS + 1) + 1
        max_settle = Signal(range(max_depth + 1))
        with m.If(sc_valid | clear_max[B]):
            m.d.sync += max_settle.eq(max_depth)
        with m.Elif(max_settle != 0):
            m.d.sync += max_settle.eq(max_settle - 1)
        # The exp pass runs on U = B / K units of K lanes each, one lane a cycle (see exp_lanes): rows come
        # ROW_GAP cycles apart, so one unit has time for K <= ROW_GAP of a row's scores. A unit per lane sat idle
        # ROW_GAP - 1 cycles in ROW_GAP and made the softmax 44 % of the ULX3S build's LUT4s (22,096).
        # m and c are held in a register per unit, as r is per lane below: one register of each into every
        # lane's exp pass made the 75 MHz build's critical path (15.8 ns, one route of 9.2 ns across the device).
        m_unit = [Signal(32, name=f"sm_max{u}", attrs=UNMERGED) for u in range(U)]
        c_unit = [Signal(32, name=f"sm_scale{u}", attrs=UNMERGED) for u in range(U)]
        lane_sum = [[Signal(32, name=f"lane_sum{u * K + k}") for k in range(K)] for u in range(U)]
        for u in range(U):
            with m.If(load_max[u]):
                m.d.sync += [m_unit[u].eq(Mux(any_nan, FP32_QNAN, m_tree)), c_unit[u].eq(scale_c)]
                m.d.sync += [s.eq(0) for s in lane_sum[u]]

        # The score memory's read data is registered before any arithmetic: a block RAM's output comes late in
        # the cycle (5.6 ns on the ECP5), and straight into a multiplier it was the device's critical path.
        m.d.comb += [rd.addr.eq(ctl.row), rd.en.eq(1)]
        row_q = reg(rd.data)
        # The row read at `exp_row` is in row_q while row_v; each unit's K scores of it are then shifted out of
        # `feed` one a cycle (lane u * K + x_k while x_v).
        exp_row = Signal.like(ctl.row)
        row_v, row_at = Signal(name="sm_row_v"), Signal.like(ctl.row, name="sm_row_at")
        m.d.sync += [exp_row.eq(ctl.row), row_v.eq(ctl.exp), row_at.eq(exp_row)]
        feed = [Signal(32 * K, name=f"sm_feed{u}") for u in range(U)]
        x_v, x_k = Signal(name="sm_x_v"), Signal(range(max(K, 2)), name="sm_x_k")
        x_row = Signal.like(ctl.row, name="sm_x_row")
        with m.If(row_v):
            m.d.sync += [x_v.eq(1), x_k.eq(0), x_row.eq(row_at)]
            m.d.sync += [f.eq(row_q[32 * K * u:32 * K * (u + 1)]) for u, f in enumerate(feed)]
        with m.Else():
            m.d.sync += [f.eq(f[32:]) for f in feed]
            with m.If(x_v):
                m.d.sync += [x_k.eq(x_k + 1), x_v.eq(x_k != K - 1)]
        # A register after every FP32 operation and at each of its cuts: d = s - m, t = d * c, e = exp2(t)
        # (itself EXP2_STAGES deep); the lane, its row and whether it is one follow beside them.
        e_unit = []
        for u in range(U):
            diff = reg(fp32_add(m, feed[u][:32], m_unit[u] ^ 0x80000000, name=f"sm_d{u}", stage=reg))
            t = reg(fp32_mul(m, diff, c_unit[u], name=f"sm_t{u}", stage=reg))
            e_unit.append(reg(exp2_fixed(m, t, name=f"sm_e{u}", stage=reg)))
        e_depth = (FP32_ADD_CUTS + 1) + (FP32_MUL_CUTS + 1) + (EXP2_STAGES + 1)
        lane_v, e_k, e_at = [x_v], x_k, x_row
        for _ in range(e_depth):
            lane_v.append(reg(lane_v[-1]))
            e_at = reg(e_at)
        for _ in range(e_depth - 1):
            e_k = reg(e_k)
        k_next, e_k = e_k, reg(e_k)                     # the lane coming next cycle, the lane in e_unit
        e_v = lane_v[-1]
        # Each unit's K exponentials are gathered lane by lane, and the row is written back after its last.
        e_hold = [Signal(32 * K, name=f"sm_ehold{u}") for u in range(U)]
        w_v, w_at = Signal(name="sm_w_v"), Signal.like(ctl.row, name="sm_w_at")
        m.d.sync += [w_v.eq(e_v & (e_k == K - 1)), w_at.eq(e_at)]
        with m.If(e_v):
            m.d.sync += [h.eq(Cat(h[32:], e)) for h, e in zip(e_hold, e_unit)]
        with m.If(w_v):
            m.d.comb += [self.score_wr.en.eq(1), self.score_wr.addr.eq(w_at), self.score_wr.data.eq(Cat(*e_hold))]
        # The lane sums' adder is a pipeline of FP32_ADD_CUTS cycles; a lane's scores come ROW_GAP apart, so each
        # addition starts from the sum the lane's previous score left. The sum to add to is chosen a cycle ahead
        # into a register (the lane's selection in front of the adder's first stage made the 75 MHz builds'
        # worst estimate, 15.03 ns); in that cycle the lane's previous sum is still leaving the adder, and is
        # taken from its output.
        sum_valid, sum_k = [e_v], e_k
        for _ in range(FP32_ADD_CUTS):
            sum_valid.append(reg(sum_valid[-1]))
            sum_k = reg(sum_k)
        for u in range(U):
            sums = Array(lane_sum[u])
            sum_in = Signal(32, name=f"sm_sum_in{u}")
            nxt = fp32_add(m, sum_in, e_unit[u], name=f"sm_s{u}", stage=reg)
            m.d.sync += sum_in.eq(Mux(sum_valid[-1] & (sum_k == k_next), nxt, sums[k_next]))
            with m.If(sum_valid[-1]):
                m.d.sync += sums[sum_k].eq(nxt)

        # S as a pairwise tree of the lane sums, then r = 1/S, registers at every FP32 operation's cuts and
        # after it. The registers run freely: once the lane sums stop changing, r is right `recip_depth`
        # cycles later.
        level, lvl = [s for sums in lane_sum for s in sums], 0
        while len(level) > 1:
            level = [reg(fp32_add(m, level[j], level[j + 1], name=f"sm_tree{lvl}_{j}", stage=reg))
                     for j in range(0, len(level), 2)]
            lvl += 1
        # r is registered once before its per-lane copies: the last Newton step's exponent and special cases
        # straight into a lane's r register 39 columns away made the 75 MHz build's critical path (14.26 ns).
        recip = reg(reciprocal(m, level[0], name="sm_recip", stage=reg))
        recip_depth = lvl * (FP32_ADD_CUTS + 1) + reciprocal_depth() + 1
        settle = Signal(range(recip_depth + 1))
        with m.If(sum_valid[-1] | load_max[U]):
            m.d.sync += settle.eq(recip_depth)
        with m.Elif(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        # `busy` is registered but for the arriving scores: every other term rises only in a cycle when another
        # one was high or after a walker control (`exp`, `load_max`, `clear_max`) the walker does not follow with
        # a look at `busy` for several cycles, so the register only makes `busy` fall a cycle later. The OR of
        # the pipeline's valid bits into the walker's `load_max` and back into `settle` made ~17.9 ns
        # (estimated) on the ULX3S build.
        busy_q = Signal(name="busy_q")
        m.d.sync += busy_q.eq(Cat(row_v, *lane_v, *sum_valid, w_v).any() | (settle != 0) | (max_settle != 0) | sc_valid)
        m.d.comb += ctl.busy.eq(busy_q | sc_valid)
        # r is held in a register per lane: one register into every lane's multiplier was the critical path of
        # the ULX3S build (18.12 ns at 45 MHz, one route of 9.45 ns across the device).
        r_lane = [Signal(32, name=f"sm_r{i}", attrs=UNMERGED) for i in range(B)]
        for i in range(B):
            with m.If(load_recip[i]):
                m.d.sync += r_lane[i].eq(recip)

        # p = e * r as BF16 for the row read P_LATENCY cycles earlier (the read data registered, the multiply
        # pipelined, a register after the rounding); `burst` picks the L of them that form one GB burst.
        p_bf = [reg(fp32_to_bf16(m, fp32_mul(m, row_q[32 * i:32 * i + 32], r_lane[i], name=f"sm_p{i}", stage=reg),
                                 name=f"sm_pb{i}")) for i in range(B)]
        m.d.comb += ctl.p_burst.eq(Array(Cat(*p_bf[j:j + L]) for j in range(0, B, L))[ctl.burst])
        return m
