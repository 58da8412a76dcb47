"""L-lane BF16 multiply and aligned integer reduction to one FP32 lane sum (docs/numerics.md §2, §3)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import FP32_QNAN, LANE_GUARD_BITS

from .fp32 import ROUND_PACK_CUTS, pipeline_stage, round_pack, tree_reduce

__all__ = ["LaneReduce"]

_PROD_EXP_OFFSET = 2 * 127 + 2 * 7   # a product is P * 2**(E - 268)


class LaneReduce(wiring.Component):
    """Pipelined lane reduction, one burst per cycle when `en` is high.

    Ports: `w`, `x` are bursts of `lanes` BF16 words (lane i in bits 16i..16i+15); `result` is the FP32 lane
    sum of the burst presented LATENCY enabled cycles earlier. `en` freezes every stage when low.
    """

    # the bursts registered; products; the largest exponent (two stages); the aligned magnitudes; the signed
    # terms; their sum; its magnitude; rounding (its own cuts, then the result)
    LATENCY = 8 + ROUND_PACK_CUTS + 1

    def __init__(self, *, lanes):
        if not isinstance(lanes, int) or lanes < 2 or lanes & (lanes - 1):
            raise ValueError(f"lanes must be a power of two >= 2, not {lanes!r}")
        self.lanes = lanes
        super().__init__({
            "en": In(1),
            "w": In(16 * lanes),
            "x": In(16 * lanes),
            "result": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        align_bits = 16 + LANE_GUARD_BITS
        sum_bits = align_bits + (L - 1).bit_length() + 1

        # Stage 0: the bursts registered as they arrive. They come straight out of block RAM (the bank memory
        # and the GB), whose late clock-to-output and the multipliers' inputs made the 60 MHz ULX3S build's
        # critical path (18.3 ns: the read data through a LUT into a MULT18X18D).
        w_in, x_in = Signal.like(self.w, name="w_in"), Signal.like(self.x, name="x_in")
        with m.If(self.en):
            m.d.sync += [w_in.eq(self.w), x_in.eq(self.x)]

        # Stage 1: per-lane exact products and classification.
        p1 = [Signal(16, name=f"p1_{i}") for i in range(L)]
        e1 = [Signal(9, name=f"e1_{i}") for i in range(L)]
        neg1 = Signal(L)
        fin1 = Signal(L)
        inf1 = Signal(L)
        nan1 = Signal(L)
        with m.If(self.en):
            for i in range(L):
                w = w_in[16 * i:16 * i + 16]
                x = x_in[16 * i:16 * i + 16]
                ew, mw, ex, mx = w[7:15], w[:7], x[7:15], x[:7]
                wz, xz = ew == 0, ex == 0
                wi, xi = (ew == 0xFF) & (mw == 0), (ex == 0xFF) & (mx == 0)
                wn, xn = (ew == 0xFF) & (mw != 0), (ex == 0xFF) & (mx != 0)
                nan = wn | xn | (wi & xz) | (xi & wz)
                m.d.sync += [
                    p1[i].eq(Cat(mw, Const(1, 1)) * Cat(mx, Const(1, 1))),
                    e1[i].eq(ew + ex),
                    neg1[i].eq(w[15] ^ x[15]),
                    fin1[i].eq(~wz & ~xz & (ew != 0xFF) & (ex != 0xFF)),
                    inf1[i].eq((wi | xi) & ~nan),
                    nan1[i].eq(nan),
                ]

        # Stages 2 and 3: the largest exponent, a balanced tree of compares with a register after its first
        # level (the whole tree and the enable of the finite lanes in one cycle made a ~19 ns path). Stage 3 also
        # forms each lane's distance below it and whether that is inside the aligned width, from every pair's
        # difference chosen by the same compares: formed after the register, the subtraction's carry chain ran
        # into the alignment shifter (the 65 MHz ULX3S build's critical path, 13.90 ns, seed 3).
        stage = pipeline_stage(m, self.en, name="lr")
        ez = [Mux(fin1[i], e1[i], 0) for i in range(L)]
        pairs = [stage(Mux(ez[i] > ez[i + 1], ez[i], ez[i + 1])) for i in range(0, L, 2)]
        e_end = [stage(e1[i] + align_bits) for i in range(L)]    # a distance below align_bits <=> emax < e_end
        p1, e1, neg1, fin1, inf1, nan1 = (
            [stage(v) for v in p1], [stage(v) for v in e1], stage(neg1), stage(fin1), stage(inf1), stage(nan1))

        def larger(a, b):
            # Each node's results are signals: as nested expressions the tree's Verilog grew to 30 MB at 16 lanes.
            first = Signal(name="lr_first")
            node = (Signal(9, name="lr_max"), [Signal(9, name=f"lr_dist{i}") for i in range(L)],
                    Signal(L, name="lr_inside"))
            m.d.comb += [first.eq(a[0] > b[0]), node[0].eq(Mux(first, a[0], b[0])),
                         node[2].eq(Mux(first, a[2], b[2]))]
            m.d.comb += [d.eq(Mux(first, x, y)) for d, x, y in zip(node[1], a[1], b[1])]
            return node

        # A finite lane's exponent is at most emax, so the 9-bit difference is its distance exactly; a lane that
        # is not finite contributes nothing whatever its distance.
        emax_c, dist_c, inside_c = tree_reduce(
            [(p, [(p - e)[:9] for e in e1], Cat(*(p < end for end in e_end))) for p in pairs], larger)
        emax = Signal(9)
        m.d.comb += emax.eq(emax_c)
        emax, dist, inside, p1, neg1, fin1, inf1, nan1 = (
            stage(emax), [stage(v) for v in dist_c], stage(inside_c), [stage(v) for v in p1], stage(neg1),
            stage(fin1), stage(inf1), stage(nan1))

        # Stage 4: align to the largest exponent and truncate; stage 5: the sign (the shifter and the
        # negation's carry chain in one cycle made an ~18.4 ns path).
        mags = []
        for i in range(L):
            a = Signal(align_bits, name=f"a_{i}")
            m.d.comb += a.eq(Mux(fin1[i] & inside[i], Cat(Const(0, LANE_GUARD_BITS), p1[i]) >> dist[i], 0))
            mags.append(stage(a))
        pinf, ninf, nan = stage((inf1 & ~neg1).any()), stage((inf1 & neg1).any()), stage(nan1.any())
        neg1, emax = stage(neg1), stage(emax)
        terms = []
        for i in range(L):
            t = Signal(signed(sum_bits), name=f"t_{i}")
            m.d.comb += t.eq(Mux(neg1[i], -mags[i], mags[i]))
            terms.append(stage(t))
        emax, pinf, ninf, nan = stage(emax), stage(pinf), stage(ninf), stage(nan)

        # Stage 6: sum as integers (a balanced tree).
        s2 = stage(tree_reduce(terms, lambda a, b: a + b))
        emax2, pinf2, ninf2, nan2 = stage(emax), stage(pinf), stage(ninf), stage(nan)

        # Stage 7: the sum's sign and magnitude (the negation's carry chain and the leading-zero count in one
        # cycle made a ~17 ns path on the ULX3S estimate).
        mag = Signal(sum_bits)
        m.d.comb += mag.eq(Mux(s2 < 0, -s2, s2))
        mag, sum_neg, sum_zero = stage(mag), stage(s2 < 0), stage(s2 == 0)
        emax2, pinf2, ninf2, nan2 = stage(emax2), stage(pinf2), stage(ninf2), stage(nan2)

        # Stage 8 on: one normalisation and rounding to FP32 (ROUND_PACK_CUTS stages), then the result.
        exp2 = Signal(signed(12))
        m.d.comb += exp2.eq(emax2 - (_PROD_EXP_OFFSET + LANE_GUARD_BITS))
        rounded = round_pack(m, sum_neg, mag, exp2, name="ls_rp", stage=stage)
        cls = Cat(nan2 | (pinf2 & ninf2), pinf2, ninf2, sum_zero)
        for _ in range(ROUND_PACK_CUTS):
            cls = stage(cls)
        with m.If(self.en):
            with m.If(cls[0]):
                m.d.sync += self.result.eq(FP32_QNAN)
            with m.Elif(cls[1]):
                m.d.sync += self.result.eq(0x7F800000)
            with m.Elif(cls[2]):
                m.d.sync += self.result.eq(0xFF800000)
            with m.Elif(cls[3]):
                m.d.sync += self.result.eq(0)
            with m.Else():
                m.d.sync += self.result.eq(rounded)
        return m
