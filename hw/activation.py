"""Activation-function unit: 64-segment piecewise-linear LUT, y = a_k * x + b_k (docs/numerics.md §6)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from pimhil.contract import AF_DOMAIN_LOG2, AF_SEGMENTS, FP32_QNAN

from .fp32 import FP32_ADD_CUTS, FP32_MUL_CUTS, fp32_add, fp32_mul, pipeline_stage

__all__ = ["ActivationUnit"]

_SEG_BITS = (AF_SEGMENTS - 1).bit_length()
# floor(x * 2**_SCALE_LOG2) is the signed segment offset from the domain centre.
_SCALE_LOG2 = _SEG_BITS - 1 - AF_DOMAIN_LOG2


class ActivationUnit(wiring.Component):
    """Fully pipelined: `x` with `in_valid` gives `y` with `out_valid` LATENCY cycles later, one per cycle.

    The LUT is written through `lut_wr_en`, `lut_idx`, `lut_a` (slope) and `lut_b` (intercept), FP32 bits.
    """

    # x registered; the segment's integer part registered; the LUT read; its data registered; the multiply (its
    # cuts and a register); the add (its cuts, the output register)
    LATENCY = 6 + FP32_MUL_CUTS + FP32_ADD_CUTS

    def __init__(self):
        super().__init__({
            "in_valid": In(1),
            "x": In(32),
            "out_valid": Out(1),
            "y": Out(32),
            "lut_wr_en": In(1),
            "lut_idx": In(range(AF_SEGMENTS)),
            "lut_a": In(32),
            "lut_b": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.lut = lut = memory.Memory(shape=64, depth=AF_SEGMENTS, init=[])
        wr = lut.write_port()
        rd = lut.read_port()
        m.d.comb += [wr.en.eq(self.lut_wr_en), wr.addr.eq(self.lut_idx), wr.data.eq(Cat(self.lut_a, self.lut_b))]

        # Stage 0: x is registered first, so that what feeds it (an accumulator read) and the segment index
        # are not one path. Then the segment index, exactly floor(x * 2**_SCALE_LOG2) + SEGMENTS/2, clamped:
        # its integer part in stage 0, the index and the LUT address in stage 1.
        x, v0 = Signal(32), Signal()
        m.d.sync += [x.eq(self.x), v0.eq(self.in_valid)]
        sign, exp, frac = x[31], x[23:31], x[:23]
        daz = Signal(32)
        m.d.comb += daz.eq(Mux(exp == 0, Cat(Const(0, 31), sign), x))
        # |x| * 2**_SCALE_LOG2 = 1.frac * 2**e_int with e_int = exp - e0, e0 = 127 - _SCALE_LOG2; the integer
        # part needs e_int >= 0. The tests below compare exp with constants instead of forming e_int: its adder
        # in front of the compares and the shift amount made 14.8 ns, estimated, at 75 MHz.
        e0 = 127 - _SCALE_LOG2
        W = _SEG_BITS - 1                              # integer bits below the domain edge
        sig = Cat(frac, Const(1, 1))                   # 24 bits, value sig * 2**(e_int - 23)
        int_part = Signal(_SEG_BITS + 1)
        has_frac = Signal()
        half = AF_SEGMENTS // 2
        big = Signal()                                  # |x| >= domain edge (or Inf): e_int >= W
        m.d.comb += big.eq((exp != 0) & (exp >= e0 + W))
        with m.If((exp == 0) | (exp < e0)):
            m.d.comb += [int_part.eq(0), has_frac.eq(exp != 0)]
        with m.Elif(~big):
            # Here 0 <= e_int < W: int_part = sig >> (23 - e_int) is the top e_int + 1 bits, taken as the top W
            # bits shifted by d = W - 1 - e_int, and the fraction is every bit below them. A shifter of W bits
            # and a reduction of the fixed low bits in parallel, not a 24-bit shifter and its mask compare in
            # series (x through both into the segment's register was the 65 MHz build's worst estimate, 15.3 ns).
            top = sig[24 - W:]
            d = Signal(range(W), name="af_top_shift")
            m.d.comb += d.eq((e0 + W - 1 - exp)[:len(d)])
            m.d.comb += [int_part.eq(top >> d),
                         has_frac.eq(sig[:24 - W].any() | ((top & ((Const(1, W) << d) - 1)) != 0))]
        # The shifter's result is registered before the segment arithmetic and the LUT's address: on the ULX3S
        # build (45 MHz) exponent, shift, mask compare and subtraction into the block RAM were its worst path.
        reg = pipeline_stage(m, name="af_seg")
        int_part, has_frac, big, sign, daz, v0 = (reg(v) for v in (int_part, has_frac, big, sign, daz, v0))
        seg = Signal(range(AF_SEGMENTS))
        with m.If(big):
            m.d.comb += seg.eq(Mux(sign, 0, AF_SEGMENTS - 1))
        with m.Elif(sign):
            # floor(-v) = -(int + has_frac); never below -half here because |x| < domain edge.
            m.d.comb += seg.eq(half - int_part - has_frac)
        with m.Else():
            m.d.comb += seg.eq(half + int_part)
        m.d.comb += [rd.addr.eq(seg), rd.en.eq(1)]

        # Stage 2: LUT data arrives; multiply (pipelined: its cuts, then a register), the intercept, the input
        # and the valid bit riding beside it.
        stage = pipeline_stage(m, name="af")
        x1, v1 = Signal(32), Signal()
        m.d.sync += [x1.eq(daz), v1.eq(v0)]
        # The LUT's read data is registered before the multiply: a block RAM's output comes late in the cycle
        # (5.8 ns on the ECP5), and into the partial products' multipliers it was the ULX3S build's critical
        # path (16.06 ns).
        a1, b1, x1, v1 = stage(rd.data[:32]), stage(rd.data[32:]), stage(x1), stage(v1)
        prod = fp32_mul(m, a1, x1, name="af_mul", zero_wins=True, stage=stage)
        b2, x2, v2 = b1, x1, v1
        for _ in range(FP32_MUL_CUTS + 1):
            b2, x2, v2 = stage(b2), stage(x2), stage(v2)
        t2 = stage(prod)

        # Stage 3: add the intercept (pipelined), NaN input wins.
        total = fp32_add(m, t2, b2, name="af_add", stage=stage)
        nan = (x2[23:31] == 0xFF) & (x2[:23] != 0)
        for _ in range(FP32_ADD_CUTS):
            nan, v2 = stage(nan), stage(v2)
        m.d.sync += [self.y.eq(Mux(nan, FP32_QNAN, total)), self.out_valid.eq(v2)]
        return m
