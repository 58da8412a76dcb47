"""The control hub's FP32 function-unit operations (docs/numerics.md §8): exp2, reciprocal, max.

Like fp32.py these build combinational logic inside a Module; the hub decides where registers go.
"""

from amaranth.hdl import Array, Cat, Const, Mux, Signal, signed

from pimhil.contract import (EXP2_FRAC_BITS, EXP2_SEGMENTS, EXP2_TABLE, FP32_QNAN, RECIP_NEWTON_STEPS,
                             RECIP_SEGMENTS, RECIP_TABLE)

from .fp32 import FP32_ADD_CUTS, FP32_MUL_CUTS, ROUND_PACK_CUTS, fp32_add, fp32_mul, round_pack

__all__ = ["EXP2_STAGES", "exp2_fixed", "reciprocal", "reciprocal_depth", "order_key", "is_nan"]

EXP2_STAGES = 5 + ROUND_PACK_CUTS     # the cuts exp2_fixed() offers to its `stage` function


def reciprocal_depth():
    """How many `stage`s of reciprocal() lie on its longest path (the seed lookup, then per Newton step three
    FP32 operations, each with its own cuts and a `stage` after it)."""
    return 1 + RECIP_NEWTON_STEPS * (2 * (FP32_MUL_CUTS + 1) + FP32_ADD_CUTS + 1)

_SEG_BITS = (EXP2_SEGMENTS - 1).bit_length()
_SEG_SHIFT = EXP2_FRAC_BITS - _SEG_BITS


def is_nan(x):
    """True for every NaN pattern, whatever its sign and payload."""
    return (x[23:31] == 0xFF) & (x[:23] != 0)


def order_key(x):
    """An unsigned key that orders non-NaN FP32 patterns strictly: -Inf < ... < -0 < +0 < subnormals < ...
    < +Inf, before DAZ; softmax's max uses it, so m does not depend on the order scores arrive in (§8)."""
    return Mux(x[31], ~x, x | 0x80000000)


def exp2_fixed(m, t, *, name, stage=None):
    """2**t, bit-exact with golden.softmax.exp2_fixed.

    stage: None (all combinational) or a function value -> value applied to every signal that crosses one of
    the EXP2_STAGES cuts (after the shift's amount and range, after the shift into fixed point, after its sign,
    after the table lookup, after the interpolation, then round_pack's own): a register there makes exp2 a
    pipeline of that many cycles, one input per cycle.
    """
    stage = stage or (lambda v: v)
    sign, e = t[31], t[23:31]
    mant = Signal(24, name=f"{name}_mant")
    m.d.comb += mant.eq(Mux(e == 0, 0, Cat(t[:23], Const(1, 1))))
    # The result's class rides along every cut: NaN, |t| too big (0 or Inf by sign), or the computed value.
    cls = Cat(is_nan(t), e >= 127 + 8, sign)
    # t * 2**FRAC = mant * 2**(e - 150 + FRAC); right shift by k = 150 - FRAC - e when positive.
    k = Signal(signed(10), name=f"{name}_k")
    m.d.comb += k.eq(150 - EXP2_FRAC_BITS - e)
    # The shift's amount and range are registered before the shifters (cut 0): the exponent's subtraction, its
    # compares and the shifters in one stage made 17.1 ns, estimated, at 75 MHz (the mapping's worst path).
    k_out, k_right, ks, kl = k >= 24, k > 0, k[:5], (-k)[:4]
    mant, k_out, k_right, ks, kl, sign, cls = (stage(v) for v in (mant, k_out, k_right, ks, kl, sign, cls))  # cut 0
    mag = Signal(33, name=f"{name}_mag")
    inexact = Signal(name=f"{name}_inexact")
    with m.If(k_out):
        m.d.comb += [mag.eq(0), inexact.eq(mant != 0)]
    with m.Elif(k_right):
        # Bits below ks shifted out: a compare per bit against the constant j, not the mask (1 << ks) - 1,
        # whose 25-bit borrow chain made exp2's first stage the softmax datapath's worst path.
        m.d.comb += [mag.eq(mant >> ks), inexact.eq(Cat(*(mant[j] & (ks > j) for j in range(24))).any())]
    with m.Else():
        m.d.comb += mag.eq(mant << kl)
    # The shifter and the 35-bit negation were one stage: on the ULX3S build the exponent compare, the shift's
    # multiplexers and the negation's carry chain made a ~23 ns path (the softmax datapath's worst).
    mag, inexact, sign, cls = stage(mag), stage(inexact), stage(sign), stage(cls)  # cut 1
    fx = Signal(signed(35), name=f"{name}_fx")
    m.d.comb += fx.eq(Mux(sign, -(mag + inexact), mag))
    fx, cls = stage(fx), stage(cls)                                             # cut 2

    n = Signal(signed(11), name=f"{name}_n")
    m.d.comb += n.eq(fx >> EXP2_FRAC_BITS)
    frac = fx[:EXP2_FRAC_BITS]
    i = frac[_SEG_SHIFT:]
    table = Array(Const(v, 25) for v in EXP2_TABLE[:-1])
    # The chords' rises, a table of their own: no subtractor, and an 18 x 18 product (one MULT18X18D).
    rise = [b - a for a, b in zip(EXP2_TABLE, EXP2_TABLE[1:])]
    rises = Array(Const(v, max(rise).bit_length()) for v in rise)
    lo = Signal(25, name=f"{name}_lo")
    step = Signal(max(rise).bit_length(), name=f"{name}_step")
    m.d.comb += [lo.eq(table[i]), step.eq(rises[i])]
    lo, step, r, n, cls = (stage(x) for x in (lo, step, frac[:_SEG_SHIFT], n, cls))   # cut 3

    v = Signal(26, name=f"{name}_v")
    m.d.comb += v.eq(lo + ((step * r) >> _SEG_SHIFT))
    v, n, cls = stage(v), stage(n), stage(cls)                                  # cut 4

    exp2 = Signal(signed(12), name=f"{name}_exp2")
    m.d.comb += exp2.eq(n - 23)
    packed = round_pack(m, Const(0, 1), v, exp2, name=f"{name}_rp", stage=stage)
    for _ in range(ROUND_PACK_CUTS):
        cls = stage(cls)
    out = Signal(32, name=name)
    nan, big, neg = cls[0], cls[1], cls[2]
    with m.If(nan):
        m.d.comb += out.eq(FP32_QNAN)
    with m.Elif(big & neg):
        m.d.comb += out.eq(0)
    with m.Elif(big):
        m.d.comb += out.eq(0x7F800000)
    with m.Else():
        m.d.comb += out.eq(packed)
    return out


def reciprocal(m, x, *, name, stage=None):
    """1/x for FP32 x, bit-exact with golden.softmax.reciprocal (docs/numerics.md §8).

    The seed and Newton steps work on the significand scaled into [1, 2), where every intermediate stays
    near 1; sign and exponent are applied once at the end. Scaling the seed by the exponent instead let the
    Newton product flush to zero for x just below 2**126.

    stage: None (all combinational) or a function value -> value that every FP32 operation's cuts and result
    go through, e.g. a register: then the result is right `reciprocal_depth()` cycles after x stops changing
    (the paths are not delay-matched, so this is not a one-input-per-cycle pipeline).
    """
    inner = stage                   # the FP32 operations' own cuts: none when combinational
    stage = stage or (lambda v: v)
    seg_bits = (RECIP_SEGMENTS - 1).bit_length()
    table = Array(Const(v, 32) for v in RECIP_TABLE)
    sign, e, frac = x[31], x[23:31], x[:23]
    xm = Signal(32, name=f"{name}_xm")
    m.d.comb += xm.eq(Cat(frac, Const(127, 8), Const(0, 1)))
    y = Signal(32, name=f"{name}_y0")
    m.d.comb += y.eq(table[frac[23 - seg_bits:]])
    y = stage(y)                    # the seed lookup is not in the first product's cycle
    two = Const(0x40000000, 32)
    for step in range(RECIP_NEWTON_STEPS):
        xy = stage(fp32_mul(m, xm, y, name=f"{name}_xy{step}", stage=inner))
        corr = stage(fp32_add(m, two, xy ^ 0x80000000, name=f"{name}_c{step}", stage=inner))
        # y is not delayed to meet corr: the result is meant to settle behind a held x (see `stage` above).
        y = stage(fp32_mul(m, y, corr, name=f"{name}_y{step + 1}", stage=inner))
    # y is in [0.5, 1] for every significand, so the scaled exponent stays below 255; below 1 it flushes.
    e_out = Signal(signed(10), name=f"{name}_eout")
    m.d.comb += e_out.eq(y[23:31] + 127 - e)
    out = Signal(32, name=name)
    with m.If(is_nan(x)):
        m.d.comb += out.eq(FP32_QNAN)
    with m.Elif(e == 0):                                    # zero or subnormal (DAZ)
        m.d.comb += out.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
    with m.Elif((e == 0xFF) | (e_out < 1)):                 # Inf, or a result below 2**-126
        m.d.comb += out.eq(Cat(Const(0, 31), sign))
    with m.Else():
        m.d.comb += out.eq(Cat(y[:23], e_out[:8], sign))
    return out
