"""Combinational FP32 building blocks in the device's arithmetic (docs/numerics.md §1; used by §4-§8).

These are functions that add logic to a Module and return the result signal, not Components: they are used
inside pipeline stages of larger blocks, whose registers decide where the stage boundaries fall. Each takes an
optional `stage` function (value -> value) that every signal crossing one of its cuts goes through: None
leaves the operator combinational; `pipeline_stage(m, en)` registers every cut, which makes the operator a
pipeline of `*_CUTS` cycles taking one input per cycle. The cuts change where registers go, never a result bit.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

from pimhil.contract import BF16_QNAN, FP32_QNAN

__all__ = ["leading_zeros", "round_pack", "fp32_add", "fp32_mul", "fp32_to_bf16", "tree_reduce", "pipeline_stage",
           "ROUND_PACK_CUTS", "FP32_ADD_CUTS", "FP32_MUL_CUTS"]

# How many cuts each operator offers its `stage` function along its longest path.
ROUND_PACK_CUTS = 3         # after the leading-zero count, after the normalising shift, after the rounding add
FP32_ADD_CUTS = 3 + ROUND_PACK_CUTS      # after compare/difference, after alignment, after the add
# Two cuts before the multipliers and two after them (see fp32_mul), then after the product.
FP32_MUL_CUTS = 5 + ROUND_PACK_CUTS


def pipeline_stage(m, en=None, *, name="pipe", attrs=None):
    """A `stage` function that registers every value passed through it, holding it while `en` is low; `attrs`
    go on every register (hw/replica.py's UNMERGED)."""
    count = [0]

    def stage(value):
        value = Value.cast(value)
        reg = Signal(value.shape(), name=f"{name}_{count[0]}", attrs=attrs or {})
        count[0] += 1
        if en is None:
            m.d.sync += reg.eq(value)
        else:
            with m.If(en):
                m.d.sync += reg.eq(value)
        return reg
    return stage


def _through(stage, values):
    return tuple(stage(v) for v in values)


def tree_reduce(values, fn):
    """Combine values pairwise in a balanced tree (depth log2 n, never a long chain)."""
    values = list(values)
    if not values:
        raise ValueError("tree_reduce needs at least one value")
    while len(values) > 1:
        nxt = [fn(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


def _count_leading_zeros(bits):
    """(count, all zero) of a power-of-two-wide value, as a tree: each half's count and all-zero flag, and the
    upper half's flag picks which count continues, so the depth is log2 of the width."""
    if len(bits) == 2:
        return ~bits[1], ~bits[1] & ~bits[0]
    half = len(bits) // 2
    c_lo, z_lo = _count_leading_zeros(bits[:half])
    c_hi, z_hi = _count_leading_zeros(bits[half:])
    return Cat(Mux(z_hi, c_lo, c_hi), z_hi), z_hi & z_lo


def leading_zeros(m, value, *, name):
    """Number of zero bits above the most significant set bit of `value` (len(value) - 1 when value is 0, as
    if bit 0 were set). A tree of halves (log2 depth): a priority multiplexer over the bits mapped to a chain of
    LUTs as long as the value, the first stage of round_pack and on the ULX3S build ~18.4 ns with what follows."""
    width = len(value)
    padded = 1 << max((width - 1).bit_length(), 1)
    # Bit 0 forced to one gives the zero value's count; zeros appended below keep every count.
    # A signal, not the expression: the tree slices it 2 * padded times, and each slice of an expression is the
    # whole expression again in the Verilog (thousands of 48-bit wires per device, each a toggle-coverage point).
    bits = Signal(padded, name=f"{name}_bits")
    m.d.comb += bits.eq(Cat(Const(0, padded - width), value | 1) if padded > width else value | 1)
    count, _ = _count_leading_zeros(bits)
    lz = Signal(range(max(width, 2)), name=name)
    m.d.comb += lz.eq(count)
    return lz


def round_pack(m, sign, mag, exp2, *, name, stage=None):
    """FP32 bits of (-1)**sign * mag * 2**exp2 with round-and-flush; mag == 0 gives zero of that sign.

    mag: unsigned value; exp2: signed value. RNE to 24 bits with unbounded exponent, then flush below 2**-126
    to signed zero and saturate above the FP32 range to signed Inf. stage: ROUND_PACK_CUTS cuts (module doc).
    """
    stage = stage or (lambda v: v)
    # Widen so that 24 result bits, a guard bit and at least one sticky bit are always present.
    pad = max(0, 26 - len(mag))
    mag_w = Signal(len(mag) + pad, name=f"{name}_mag")
    m.d.comb += mag_w.eq(mag << pad)
    width = len(mag_w)
    lz = leading_zeros(m, mag_w, name=f"{name}_nlz")
    ew = max(len(exp2), 12) + 2
    e0 = Signal(signed(ew), name=f"{name}_e")
    # exp2 - pad + (position of the leading one), the position being width - 1 - lz
    m.d.comb += e0.eq(exp2 + (width - 1 - pad) - lz)
    zero = Signal(name=f"{name}_zero")
    m.d.comb += zero.eq(mag_w == 0)
    mag_w, lz, e0, zero, sign = _through(stage, (mag_w, lz, e0, zero, sign))          # cut 1
    norm = Signal(width, name=f"{name}_norm")
    # Amaranth forms the shift len(mag_w) + 2**len(lz) - 1 bits wide; norm keeps the low bits (the others are
    # never set). Two other forms were measured on the board device, see docs/coverage.md: per-stage
    # multiplexers mapped to 12 % more LUT4, a right shift of the bit-reversed operand to 5 % fewer.
    m.d.comb += norm.eq(mag_w << lz)
    norm, e0, zero, sign = _through(stage, (norm, e0, zero, sign))                     # cut 2
    q = norm[width - 24:]
    guard = norm[width - 25]
    sticky = norm[:width - 25].any()
    up = guard & (sticky | q[0])
    q1 = Signal(25, name=f"{name}_q1")
    m.d.comb += q1.eq(q + up)
    # The exponent is e0, or e0 + 1 when rounding carries out (q1[24]). Both outcomes' range checks and
    # exponent fields are formed from e0 while the significand rounds, so the carry only selects.
    # Only the low 8 bits of the biased exponent are kept: add to e0's low byte (a 9-bit sum, not a 16-bit one).
    # Cut 3 falls between the rounding add and the selection: the sticky OR, the 25-bit carry chain and the
    # result multiplexers in one cycle were the softmax exp pass's worst paths (~19.7 ns estimated).
    flush0, flush1 = Signal(name=f"{name}_fl0"), Signal(name=f"{name}_fl1")
    sat0, sat1 = Signal(name=f"{name}_sat0"), Signal(name=f"{name}_sat1")
    field0, field1 = Signal(8, name=f"{name}_f0"), Signal(8, name=f"{name}_f1")
    m.d.comb += [flush0.eq(e0 < -126), flush1.eq(e0 < -127), sat0.eq(e0 > 127), sat1.eq(e0 > 126),
                 field0.eq(e0[:8] + 127), field1.eq(e0[:8] + 128)]
    q1, flush0, flush1, sat0, sat1, field0, field1, zero, sign = _through(
        stage, (q1, flush0, flush1, sat0, sat1, field0, field1, zero, sign))                   # cut 3
    carry = q1[24]
    flush = Mux(carry, flush1, flush0)
    sat = Mux(carry, sat1, sat0)
    field = Mux(carry, field1, field0)
    out = Signal(32, name=name)
    frac = Mux(carry, Const(0, 23), q1[:23])
    with m.If(zero | flush):
        m.d.comb += out.eq(Cat(Const(0, 31), sign))
    with m.Elif(sat):
        m.d.comb += out.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
    with m.Else():
        m.d.comb += out.eq(Cat(frac, field, sign))
    return out


def _unpack(m, bits, name):
    s = bits[31]
    e = bits[23:31]
    f = bits[:23]
    zero = e == 0                    # DAZ: subnormals read as zero
    inf = (e == 0xFF) & (f == 0)
    nan = (e == 0xFF) & (f != 0)
    mant = Signal(24, name=f"{name}_mant")
    m.d.comb += mant.eq(Cat(f, Const(1, 1)))
    return s, e, mant, zero, inf, nan


def _trailing_zeros(m, mant, name):
    """Trailing zero bits of a 24-bit significand whose top bit is set (so at most 23): the leading zeros of
    its bit reversal, a log-depth tree (a priority chain over the 24 bits was most of fp32_add's first stage)."""
    return leading_zeros(m, mant[::-1], name=name)


def fp32_add(m, a, b, *, name, stage=None):
    """a + b on FP32 bit patterns: DAZ, IEEE RNE with signed-zero rules, round-and-flush, canonical NaN.

    stage: FP32_ADD_CUTS cuts (module doc)."""
    stage = stage or (lambda v: v)
    sa, ea, ma, za, ia, na = _unpack(m, a, f"{name}_a")
    sb, eb, mb, zb, ib, nb = _unpack(m, b, f"{name}_b")
    # Order the operands so that |x| >= |y|; then x's exponent is the alignment reference. Both exponent
    # differences and both operands' trailing-zero counts are formed beside the magnitude compare, not
    # after it: the swap only selects.
    swap = Cat(b[:31]) > Cat(a[:31])
    sx, ex, mx = Mux(swap, sb, sa), Mux(swap, eb, ea), Mux(swap, mb, ma)
    sy, my = Mux(swap, sa, sb), Mux(swap, ma, mb)
    d_ab, d_ba = Signal(8, name=f"{name}_dab"), Signal(8, name=f"{name}_dba")
    m.d.comb += [d_ab.eq(ea - eb), d_ba.eq(eb - ea)]
    d = Signal(8, name=f"{name}_d")
    m.d.comb += d.eq(Mux(swap, d_ba, d_ab))
    # Three extra bits (guard, round, sticky) below the 24-bit significands suffice for correct RNE: y's
    # significand, three bits up, shifted right by d (at most 27, which leaves nothing), with every bit
    # shifted out ORed into the lowest one. A bit is shifted out exactly when d exceeds y's trailing zeros
    # plus 3, so the sticky bit is a compare, not an OR over the shifted-out bits.
    # y's trailing-zero count crosses cut 1 and the compare runs beside the alignment shifter: formed before
    # the cut, the count, its +3 and the compare made the first stage's worst path (~18.2 ns estimated).
    tz_b, tz_a = _trailing_zeros(m, mb, f"{name}_tzb"), _trailing_zeros(m, ma, f"{name}_tza")
    tz_y = Signal(5, name=f"{name}_tzy")
    m.d.comb += tz_y.eq(Mux(swap, tz_a, tz_b))
    # Every result that is not a rounded sum is decided from the inputs' classes, which cross cut 1 as flags:
    # the result itself (NaN, Inf of x's sign, a zero, or x itself beside a zero y) is formed after the cut
    # from x's registered fields, so the first stage does not carry a 32-bit priority selection.
    sub = sx != sy
    s_nan = Signal(name=f"{name}_snan")
    s_inf, s_zz, s_z1 = Signal(name=f"{name}_sinf"), Signal(name=f"{name}_szz"), Signal(name=f"{name}_sz1")
    m.d.comb += [s_nan.eq(na | nb | (ia & ib & (sa != sb))), s_inf.eq(ia | ib), s_zz.eq(za & zb),
                 s_z1.eq(za | zb)]
    # The significands cross without their leading 1 (a constant register: see cut 2).
    sx, sy, ex, mx, my, d, tz_y, sub, s_nan, s_inf, s_zz, s_z1 = _through(
        stage, (sx, sy, ex, mx[:23], my[:23], d, tz_y, sub, s_nan, s_inf, s_zz, s_z1))    # cut 1
    mx, my = Cat(mx, Const(1, 1)), Cat(my, Const(1, 1))
    # Which is x: an Inf (not both, or both of one sign) is the larger magnitude, so x and its sign; a nonzero
    # beside a zero (DAZ: a subnormal is smaller than any normal) is x, bits unchanged.
    special = Signal(name=f"{name}_special")
    special_val = Signal(32, name=f"{name}_sval")
    m.d.comb += special.eq(s_nan | s_inf | s_z1)
    with m.If(s_nan):
        m.d.comb += special_val.eq(FP32_QNAN)
    with m.Elif(s_inf):
        m.d.comb += special_val.eq(Cat(Const(0, 23), Const(0xFF, 8), sx))
    with m.Elif(s_zz):
        m.d.comb += special_val.eq(Cat(Const(0, 31), sx & sy))      # -0 only for (-0) + (-0)
    with m.Else():
        m.d.comb += special_val.eq(Cat(mx[:23], ex, sx))
    sticky = d > tz_y + 3
    shifted = Signal(27, name=f"{name}_ysh")
    # A shift by 27 or more leaves nothing: the range check zeroes the result beside the shifter.
    m.d.comb += shifted.eq(Mux(d > 26, 0, Cat(Const(0, 3), my) >> d[:5]))
    y_al = Signal(27, name=f"{name}_yal")
    m.d.comb += y_al.eq(shifted | sticky)
    # x's significand crosses the cut without its leading 1: a register holding a constant is one that Yosys
    # merges with every other such register (the same input), and that one register's route across the device
    # to the AF unit, the sequencer and the softmax made a 60 MHz build's critical path (15.0 ns in one hop).
    mx_frac, y_al, sx, ex, sub, special, special_val = _through(
        stage, (mx[:23], y_al, sx, ex, sub, special, special_val))                       # cut 2
    x_al = Signal(27, name=f"{name}_xal")
    m.d.comb += x_al.eq(Cat(Const(0, 3), mx_frac, Const(1, 1)))
    total = Signal(28, name=f"{name}_sum")
    with m.If(~sub):
        m.d.comb += total.eq(x_al + y_al)
    with m.Else():
        m.d.comb += total.eq(x_al - y_al)
    total, sx, ex, special, special_val = _through(stage, (total, sx, ex, special, special_val))   # cut 3
    e_ref = Signal(signed(12), name=f"{name}_eref")
    m.d.comb += e_ref.eq(ex)
    cancel = total == 0                                        # exact cancellation is +0 under RNE
    rp = round_pack(m, sx, total, e_ref - (127 + 23 + 3), name=f"{name}_rp", stage=stage)
    for _ in range(ROUND_PACK_CUTS):
        cancel, special, special_val = _through(stage, (cancel, special, special_val))

    out = Signal(32, name=name)
    with m.If(special):
        m.d.comb += out.eq(special_val)
    with m.Elif(cancel):
        m.d.comb += out.eq(0)
    with m.Else():
        m.d.comb += out.eq(rp)
    return out


def fp32_mul(m, a, b, *, name, zero_wins=False, stage=None):
    """a * b on FP32 bit patterns: DAZ, exact product rounded once (round-and-flush), canonical NaN.

    zero_wins: a zero operand gives signed zero even against Inf (the AF unit's rule, numerics.md §6), though
    a NaN operand still gives NaN; otherwise Inf x 0 is NaN. A zero product's sign is the xor (§1).
    stage: FP32_MUL_CUTS cuts (module doc).
    """
    stage = stage or (lambda v: v)
    sa, ea, ma, za, ia, na = _unpack(m, a, f"{name}_a")
    sb, eb, mb, zb, ib, nb = _unpack(m, b, f"{name}_b")
    s = sa ^ sb
    # The significand product as four 12 x 12 partial products (a MULT18X18D each), with a cut before they are
    # summed: on the ECP5 the DSP blocks sit in a few rows, and a product summed in the same cycle paid the
    # route to the block and the route back into the carry chains (14.6 of 24 ns, the ULX3S critical path).
    ah, al, bh, bl = ma[12:], ma[:12], mb[12:], mb[:12]
    exp2 = Signal(signed(12), name=f"{name}_exp2")
    m.d.comb += exp2.eq(ea + eb - (2 * 127 + 46))
    # The operands' classes cross cut 0 and the special result is chosen after it: the unpacking's compares,
    # that choice and its 32-bit value in one cycle made 15.0 ns, estimated, on the 75 MHz build (EWMUL's).
    zero, inf, nan = za | zb, ia | ib, na | nb
    exp2, s, zero, inf, nan = _through(stage, (exp2, s, zero, inf, nan))                           # cut 0
    special = Signal(name=f"{name}_special")
    special_val = Signal(32, name=f"{name}_sval")
    m.d.comb += special.eq(1)
    with m.If(nan | (Const(not zero_wins) & inf & zero)):
        m.d.comb += special_val.eq(FP32_QNAN)
    with m.Elif(zero):
        m.d.comb += special_val.eq(Cat(Const(0, 31), s))
    with m.Elif(inf):
        m.d.comb += special_val.eq(Cat(Const(0, 23), Const(0xFF, 8), s))
    with m.Else():
        m.d.comb += special.eq(0)
    # Cuts 0 and 1: the operand halves registered twice after the unpacking; cuts 2 and 3: the partial products
    # registered twice after the multipliers. The DSP blocks sit in a few rows, often far from the logic around
    # them (84 of them in use), and the placer puts a register beside its logic: one register on each side made
    # the 60 MHz builds' critical paths, register -> route -> MULT18X18D -> route -> register (18.24 ns, 13.79 of
    # it the two routes across the device; 17.14 ns with the route in front only). With two, one register of
    # each pair sits beside the block and the route is split. The high halves cross the cuts without their
    # leading 1 (a constant register: see fp32_add's cut 2).
    al, bl, ah, bh = _through(stage, _through(stage, (al, bl, ah[:11], bh[:11])))
    ah, bh = Cat(ah, Const(1, 1)), Cat(bh, Const(1, 1))
    exp2, s, special, special_val = _through(stage, (exp2, s, special, special_val))               # cut 1
    pp = [Signal(24, name=f"{name}_pp{i}") for i in range(4)]
    m.d.comb += [pp[0].eq(al * bl), pp[1].eq(al * bh), pp[2].eq(ah * bl), pp[3].eq(ah * bh)]
    for _ in range(2):                                                                               # cuts 2, 3
        *pp, exp2, s, special, special_val = _through(stage, (*pp, exp2, s, special, special_val))
    prod = Signal(48, name=f"{name}_prod")
    m.d.comb += prod.eq(pp[0] + ((pp[1] + pp[2]) << 12) + (pp[3] << 24))
    prod, exp2, s, special, special_val = _through(stage, (prod, exp2, s, special, special_val))   # cut 4
    rp = round_pack(m, s, prod, exp2, name=f"{name}_rp", stage=stage)
    for _ in range(ROUND_PACK_CUTS):
        special, special_val = _through(stage, (special, special_val))
    out = Signal(32, name=name)
    with m.If(special):
        m.d.comb += out.eq(special_val)
    with m.Else():
        m.d.comb += out.eq(rp)
    return out


def fp32_to_bf16(m, x, *, name):
    """FP32 -> BF16 read-out rounding: RNE on the low 16 bits, NaN -> canonical (numerics.md §5).

    No DAZ and no FTZ: a subnormal pattern (only WR_BIAS can load one) rounds to the nearest BF16 subnormal.
    """
    r = Signal(33, name=f"{name}_r")
    m.d.comb += r.eq(x + 0x7FFF + x[16])
    is_nan = (x[23:31] == 0xFF) & (x[:23] != 0)
    out = Signal(16, name=name)
    m.d.comb += out.eq(Mux(is_nan, BF16_QNAN, r[16:32]))
    return out
