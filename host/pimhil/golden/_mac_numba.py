"""The numba kernel of fastmac.gemv_numba (the `fast` extra). Module-level, so that numba caches the compiled
code beside this file (__pycache__) and later processes load it instead of compiling again.

The arithmetic is mac.lane_sum's integer algorithm (numerics.md §2-§4), arranged for SIMD:
- x is decoded once per call: its exponent field (ZERO_E for a zero, so that a lane with a zero operand has a
  negative exponent sum and never sets the burst's maximum), its significand and its sign bit, as int16;
- group_simd takes `lanes` bursts of a W row at a time, one LLVM vector per burst: exponent sums, their maximum
  Emax, the shift min(Emax - E, 31) and the product P in 16-bit lanes; the aligned lane P * 2**G >> shift and
  the signed sum S in 32-bit lanes (a lane with a zero operand has a shift of 31 or more and so adds 0, as
  P * 2**G < 2**24: the reference's truncation without a mask). The maxima and sums of the group are reduced
  together (_tree);
- the lane sum S * 2**(Emax - OFF) is rounded on the vector of sums: int32 -> float32 is RNE to 24 bits (exact
  while |S| < 2**24), the same rounding as numerics.md §1 step 2; the exponent field is then moved by
  Emax - OFF, and a field outside 1..254 is the flush to a signed zero (rule 3) or the overflow to Inf (rule 4);
- the accumulation is IEEE float32 addition in burst order, a subnormal result flushed to a zero of its sign,
  done for `lanes` rows at once on lane sums transposed in registers (accumulate_simd).
Bursts with an Inf or NaN operand (exponent field 255) are redone by special_sum, lane by lane; a burst width
other than 4 or 16 (the presets') takes the scalar loops burst_sums and round_sums, which compute the same.
"""

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..contract import FP32_QNAN, LANE_GUARD_BITS
from .fastmac import _EXP_OFFSET, _MIN_NORMAL

G = LANE_GUARD_BITS
OFF = _EXP_OFFSET
ZERO_E = -1024          # exponent of a zero x: E + ZERO_E < 0 for every w
I32 = np.int32
QNAN = np.uint32(FP32_QNAN)


@numba.njit(cache=True, inline="always")
def special_sum(wr, x, j0, lanes):
    # a burst with an Inf or NaN operand: mac.lane_sum's rules, lane by lane
    pinf = ninf = nan = False
    for j in range(j0, j0 + lanes):
        wv, xv = np.int64(wr[j]), np.int64(x[j])
        ew, ex = (wv >> 7) & 0xFF, (xv >> 7) & 0xFF
        winf, xinf = ew == 255 and (wv & 0x7F) == 0, ex == 255 and (xv & 0x7F) == 0
        wnan, xnan = ew == 255 and (wv & 0x7F) != 0, ex == 255 and (xv & 0x7F) != 0
        if wnan or xnan or (winf and ex == 0) or (xinf and ew == 0):
            nan = True
        elif winf or xinf:
            if ((wv ^ xv) >> 15) == 1:
                ninf = True
            else:
                pinf = True
    if nan or (pinf and ninf):
        return np.float32(np.nan)
    return np.float32(np.inf) if pinf else np.float32(-np.inf)


def _tree(builder, vecs, n, op):
    """Reduce n vectors of n lanes (n a power of two) to one vector whose lane b is op over all lanes of
    vecs[b]: log2(n) levels, each combining pairs with two shuffles and one op (a transpose-and-reduce, no
    horizontal operation)."""
    m, q = 1, n        # each vector holds q partials of each of m source vectors, in blocks of q lanes
    while len(vecs) > 1:
        h = q // 2
        lo = [blk * q + i for blk in range(m) for i in range(h)]
        lo += [n + j for j in lo]
        hi = ir.Constant(ir.VectorType(ir.IntType(32), n), [j + h for j in lo])
        lo = ir.Constant(ir.VectorType(ir.IntType(32), n), lo)
        vecs = [op(builder.shuffle_vector(a, b, lo), builder.shuffle_vector(a, b, hi))
                for a, b in zip(vecs[0::2], vecs[1::2])]
        m, q = 2 * m, h
    return vecs[0]


@intrinsic
def group_simd(typingctx, wr, xe, xm, xs, j0, lanes, ls_out, b0):
    """Lane sums of the `lanes` bursts at wr[j0:j0 + lanes**2] (lanes a power-of-two literal), stored as FP32
    bits in ls_out[b0:b0 + lanes]. Each burst is one LLVM vector (16-bit lanes up to the alignment, 32-bit
    lanes after); the maxima and the sums of the bursts are reduced together by _tree, and the rounding is done
    on the vector of sums. Written as LLVM IR because numba types integer arithmetic as int64, which keeps
    LLVM from vectorising it in narrow lanes."""
    if not isinstance(lanes, types.IntegerLiteral) or lanes.literal_value & (lanes.literal_value - 1):
        return None
    n = lanes.literal_value
    sig = types.void(wr, xe, xm, xs, j0, lanes, ls_out, b0)

    def codegen(context, builder, signature, args):
        i16, i32 = ir.IntType(16), ir.IntType(32)
        v16, v32 = ir.VectorType(i16, n), ir.VectorType(i32, n)

        def splat(c, vec=v32):
            return ir.Constant(vec, [c] * n)

        def ptr(k, offset):
            data = context.make_array(signature.args[k])(context, builder, args[k]).data
            return cgutils.gep(builder, data, offset)

        def load(k, offset):
            return builder.load(builder.bitcast(ptr(k, offset), v16.as_pointer()), align=2)

        def smax(a, b):
            return builder.select(builder.icmp_signed(">", a, b), a, b)

        # exponents, their maxima, shifts and products fit 16 bits: half-width vectors up to the alignment
        e, w = [], []
        for b in range(n):
            off = builder.add(args[4], ir.Constant(args[4].type, b * n))
            wb = load(0, off)
            eb = builder.and_(builder.lshr(wb, splat(7, v16)), splat(0xFF, v16))
            zero_w = builder.icmp_unsigned("==", eb, splat(0, v16))
            e.append(builder.add(builder.add(eb, load(1, off)), builder.select(zero_w, splat(ZERO_E, v16),
                                                                                 splat(0, v16))))
            w.append((wb, off))
        emax = smax(_tree(builder, e, n, smax), splat(0, v16))
        terms = []
        for b in range(n):
            wb, off = w[b]
            d = builder.sub(builder.shuffle_vector(emax, ir.Constant(v16, ir.Undefined),
                                                   ir.Constant(v32, [b] * n)), e[b])
            d = builder.select(builder.icmp_unsigned("<", d, splat(31, v16)), d, splat(31, v16))
            p = builder.mul(builder.or_(builder.and_(wb, splat(0x7F, v16)), splat(0x80, v16)), load(2, off))
            a = builder.lshr(builder.shl(builder.zext(p, v32), splat(G)), builder.zext(d, v32))
            neg = builder.icmp_unsigned("!=", builder.and_(builder.xor(wb, load(3, off)), splat(0x8000, v16)),
                                        splat(0, v16))
            terms.append(builder.select(neg, builder.sub(splat(0), a), a))
        s = _tree(builder, terms, n, builder.add)
        # S * 2**(Emax - OFF), round-and-flush: sitofp is RNE to 24 bits; the exponent is then moved by
        # Emax - OFF, and a field outside 1..254 is the flush to a signed zero or the overflow to Inf.
        v = builder.bitcast(builder.sitofp(s, ir.VectorType(ir.FloatType(), n)), v32)
        sign = builder.and_(v, splat(-0x80000000))
        ne = builder.add(builder.and_(builder.lshr(v, splat(23)), splat(0xFF)),
                         builder.sub(builder.sext(emax, v32), splat(OFF)))
        r = builder.or_(builder.and_(v, splat(-0x7F800001)), builder.shl(ne, splat(23)))
        r = builder.select(builder.icmp_signed("<=", ne, splat(0)), sign, r)
        r = builder.select(builder.icmp_signed(">=", ne, splat(255)), builder.or_(sign, splat(0x7F800000)), r)
        r = builder.select(builder.icmp_signed("==", s, splat(0)), splat(0), r)
        builder.store(r, builder.bitcast(ptr(6, args[7]), v32.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def accumulate_simd(typingctx, ls, nb, b0, lanes, accv):
    """accv[r] <- fp32 add-and-flush of ls[r, b0], ls[r, b0 + 1], ... ls[r, b0 + lanes - 1] in order, for the
    `lanes` rows r of ls (a (lanes, nb) array of FP32 bits; lanes a power-of-two literal): the block is
    transposed in registers, so that each burst's lane sums of every row are added as one vector."""
    if not isinstance(lanes, types.IntegerLiteral) or lanes.literal_value & (lanes.literal_value - 1):
        return None
    n = lanes.literal_value
    sig = types.void(ls, nb, b0, lanes, accv)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        v32, vf = ir.VectorType(i32, n), ir.VectorType(ir.FloatType(), n)
        ls_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        acc_ptr = builder.bitcast(context.make_array(signature.args[4])(context, builder, args[4]).data,
                                  vf.as_pointer())
        rows = []
        for r in range(n):
            off = builder.add(builder.mul(args[1], ir.Constant(args[1].type, r)), args[2])
            rows.append(builder.load(builder.bitcast(cgutils.gep(builder, ls_data, off), v32.as_pointer()), align=4))
        h = n // 2
        while h:        # butterfly transpose: exchange the h-blocks of rows i and i + h
            lo = ir.Constant(v32, [j if j & h == 0 else n + j - h for j in range(n)])
            hi = ir.Constant(v32, [j + h if j & h == 0 else n + j for j in range(n)])
            for i in range(n):
                if i & h == 0:
                    a, b = rows[i], rows[i + h]
                    rows[i], rows[i + h] = builder.shuffle_vector(a, b, lo), builder.shuffle_vector(a, b, hi)
            h //= 2
        acc = builder.load(acc_ptr, align=4)
        for col in rows:
            bits = builder.bitcast(builder.fadd(acc, builder.bitcast(col, vf)), v32)
            tiny = builder.icmp_unsigned("<", builder.and_(bits, ir.Constant(v32, [0x7FFFFFFF] * n)),
                                         ir.Constant(v32, [0x00800000] * n))
            acc = builder.bitcast(builder.select(tiny, builder.and_(bits, ir.Constant(v32, [-0x80000000] * n)),
                                                 bits), vf)
        builder.store(acc, acc_ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, inline="always")
def burst_sums(wr, xe, xm, xs, b0, nb, lanes, s_out, e_out):
    for b in range(b0, nb):
        j0 = b * lanes
        emax = I32(0)
        for j in range(j0, j0 + lanes):
            wv = I32(wr[j])
            ew = (wv >> I32(7)) & I32(0xFF)
            emax = max(emax, ew + I32(xe[j]) + (I32(ZERO_E) & -I32(ew == I32(0))))
        s = I32(0)
        for j in range(j0, j0 + lanes):
            wv = I32(wr[j])
            ew = (wv >> I32(7)) & I32(0xFF)
            d = min(emax - (ew + I32(xe[j]) + (I32(ZERO_E) & -I32(ew == I32(0)))), I32(31))
            a = ((((wv & I32(0x7F)) | I32(0x80)) * I32(xm[j])) << I32(G)) >> d
            sg = ((wv ^ I32(xs[j])) >> I32(15)) & I32(1)
            s += (a ^ -sg) + sg
        s_out[b] = s
        e_out[b] = emax


@numba.njit(cache=True, inline="always")
def round_sums(s, e, b0, out_bits):
    # lane sums S * 2**(Emax - OFF) in round-and-flush (numerics.md §1), as FP32 bits; group_simd's rounding
    f = out_bits.view(np.float32)
    for b in range(b0, s.shape[0]):
        f[b] = np.float32(s[b])
    for b in range(b0, s.shape[0]):
        v = out_bits[b]
        sign = v & I32(-0x80000000)
        ne = ((v >> I32(23)) & I32(0xFF)) + e[b] - I32(OFF)
        r = (v & I32(-0x7F800001)) | (ne << I32(23))
        r = sign if ne <= I32(0) else r
        r = (sign | I32(0x7F800000)) if ne >= I32(255) else r
        out_bits[b] = I32(0) if s[b] == I32(0) else r


@numba.njit(cache=True, inline="always")
def row_lane_sums(wr, x, xe, xm, xs, xspecial, anyx, lanes, s, e, ls_bits):
    # every lane sum of one W row, as FP32 bits in ls_bits
    nb = ls_bits.shape[0]
    done = 0
    if lanes == 16:             # the presets' burst widths get the vector code, others the scalar loop
        done = nb - nb % 16
        for b in range(0, done, 16):
            group_simd(wr, xe, xm, xs, b * 16, 16, ls_bits, b)
    elif lanes == 4:
        done = nb - nb % 4
        for b in range(0, done, 4):
            group_simd(wr, xe, xm, xs, b * 4, 4, ls_bits, b)
    if done < nb:
        burst_sums(wr, xe, xm, xs, done, nb, lanes, s, e)
        round_sums(s, e, done, ls_bits)
    wspecial = False
    for j in range(wr.shape[0]):
        wspecial |= (wr[j] & 0x7F80) == 0x7F80
    if wspecial or anyx:
        ls = ls_bits.view(np.float32)
        for b in range(nb):
            j0 = b * lanes
            special = xspecial[b]
            for j in range(j0, j0 + lanes):
                special |= (wr[j] & 0x7F80) == 0x7F80
            if special:
                ls[b] = special_sum(wr, x, j0, lanes)


@numba.njit(cache=True, inline="always")
def daz(a):
    return np.float32(0.0) * a if abs(a) < _MIN_NORMAL else a


@numba.njit(cache=True, inline="always")
def add_ftz(a, b):
    # IEEE float32 addition, a subnormal result flushed to a zero of its sign (numerics.md §4)
    r = a + b
    return np.float32(0.0) * r if abs(r) < _MIN_NORMAL else r


@numba.njit(cache=True, nogil=True)
def kernel(w, x, acc, lanes):
    """y = acc + W x as FP32 bits: w (M, K) uint16 BF16 bits with K a multiple of lanes, x (K,) uint16, acc (M,)
    float32 (the bias, DAZ applied here)."""
    m, k = w.shape
    nb = k // lanes
    out = np.empty(m, np.float32)
    xe = np.empty(k, np.int16)       # exponent field, ZERO_E for a zero (or DAZ'd) x
    xm = np.empty(k, np.int16)       # significand with its leading one
    xs = np.empty(k, np.int16)       # sign bit, in place (0x8000 as int16)
    xspecial = np.zeros(nb, np.bool_)
    for j in range(k):
        xv = I32(x[j])
        e = (xv >> I32(7)) & I32(0xFF)
        xe[j] = e if e != 0 else I32(ZERO_E)
        xm[j] = (xv & I32(0x7F)) | I32(0x80)
        xs[j] = (xv >> I32(15)) * I32(-0x8000)
        if e == 255:
            xspecial[j // lanes] = True
    anyx = xspecial.any()
    s = np.empty(nb, np.int32)
    e = np.empty(nb, np.int32)
    rows_per_block = lanes if lanes == 16 or lanes == 4 else 1     # accumulate_simd's square blocks
    ls_bits = np.empty((rows_per_block, nb), np.int32)
    ls = ls_bits.view(np.float32)
    accv = np.empty(rows_per_block, np.float32)
    for i0 in range(0, m, rows_per_block):
        rows = min(rows_per_block, m - i0)
        for r in range(rows):
            row_lane_sums(w[i0 + r], x, xe, xm, xs, xspecial, anyx, lanes, s, e, ls_bits[r])
        for r in range(rows):
            accv[r] = daz(acc[i0 + r])
        done = 0
        if rows == rows_per_block:
            done = nb - nb % lanes
            if lanes == 16:
                for b in range(0, done, 16):
                    accumulate_simd(ls_bits, nb, b, 16, accv)
            elif lanes == 4:
                for b in range(0, done, 4):
                    accumulate_simd(ls_bits, nb, b, 4, accv)
            else:
                done = 0
        for r in range(rows):
            a = accv[r]
            for b in range(done, nb):
                a = add_ftz(a, ls[r, b])
            out[i0 + r] = a
    bits = out.view(np.uint32)
    for i in range(m):
        if out[i] != out[i]:
            bits[i] = QNAN
    return bits

