"""The numba kernel of fastmac.gemv_numba (the `fast` extra). Module-level, so that numba caches the compiled
code beside this file (__pycache__) and later processes load it instead of compiling again."""

import numba
import numpy as np

from ..contract import LANE_GUARD_BITS
from .fastmac import _EXP_OFFSET, _FLUSH_UP, _MIN_NORMAL

G = LANE_GUARD_BITS
OFF = _EXP_OFFSET
I32 = np.int32

# 2**(Emax - OFF) for every exponent-field sum Emax a product can have (2..510)
POW2 = np.array([2.0 ** (e - OFF) for e in range(512)])


@numba.njit(cache=True, inline="always")
def round_flush(s, e):
    # |s| < 2**28 is exact in float64 and the power-of-two scaling too; the cast is RNE to 24 bits.
    v = float(s) * POW2[e]
    f = np.float32(v)
    if abs(f) < _MIN_NORMAL and s != 0:
        f = np.float32(_MIN_NORMAL) if abs(v) >= _FLUSH_UP else np.float32(0.0)
        f = -f if s < 0 else f
    return f


@numba.njit(cache=True, inline="always")
def special_sum(w, x, i, j0, lanes):
    # a burst with an Inf or NaN operand: mac.lane_sum's rules, lane by lane
    pinf = ninf = nan = False
    for j in range(j0, j0 + lanes):
        wv, xv = np.int64(w[i, j]), np.int64(x[j])
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


@numba.njit(cache=True, inline="always")
def burst_sum(er, pr, j0, lanes):
    # lanes is a constant at each call site below, so LLVM unrolls and vectorises these loops
    emax = I32(0)
    for j in range(j0, j0 + lanes):
        emax = max(emax, er[j])
    s = I32(0)
    for j in range(j0, j0 + lanes):
        d = min(emax - er[j], I32(31))
        v = pr[j]
        av = (abs(v) << I32(G)) >> d
        s += -av if v < 0 else av
    return s, emax


@numba.njit(cache=True, nogil=True)
def kernel(w, x, acc, lanes):
    m, k = w.shape
    nb = k // lanes
    out = np.empty(m, np.float32)
    ex = np.empty(k, np.int32)       # exponent field, 0 for a zero (or DAZ'd) x
    xm = np.empty(k, np.int32)       # significand with its leading one, 0 for a zero x
    xs = np.empty(k, np.int32)
    xspecial = np.zeros(nb, np.bool_)
    for j in range(k):
        e = (np.int32(x[j]) >> I32(7)) & I32(0xFF)
        ex[j] = e
        xm[j] = ((np.int32(x[j]) & I32(0x7F)) | I32(0x80)) if e != 0 else I32(0)
        xs[j] = np.int32(x[j]) >> I32(15)
        if e == 255:
            xspecial[j // lanes] = True
    anyx = xspecial.any()
    er = np.empty(k, np.int32)       # exponent-field sum of each lane's product, 0 for a zero product
    pr = np.empty(k, np.int32)       # signed significand product P, 0 for a zero product
    for i in range(m):
        wr = w[i]
        wspecial = False
        for j in range(k):
            wv = np.int32(wr[j])
            ew = (wv >> I32(7)) & I32(0xFF)
            wspecial |= ew == I32(255)
            nzm = -np.int32((ew != I32(0)) & (xm[j] != I32(0)))
            er[j] = (ew + ex[j]) & nzm
            pm = (((wv & I32(0x7F)) | I32(0x80)) * xm[j]) & nzm
            sg = (wv >> I32(15)) ^ xs[j]
            pr[j] = (pm ^ -sg) + sg
        a = acc[i]
        if abs(a) < _MIN_NORMAL:
            a = np.float32(0.0) * a         # DAZ, keeping the sign
        for b in range(nb):
            j0 = b * lanes
            special = False
            if wspecial or anyx:
                special = xspecial[b]
                for j in range(j0, j0 + lanes):
                    special |= ((wr[j] >> 7) & 0xFF) == 255
            if special:
                ls = special_sum(w, x, i, j0, lanes)
            else:
                if lanes == 16:
                    s, emax = burst_sum(er, pr, j0, 16)
                elif lanes == 4:
                    s, emax = burst_sum(er, pr, j0, 4)
                else:
                    s, emax = burst_sum(er, pr, j0, lanes)
                ls = round_flush(s, emax) if emax != 0 else np.float32(0.0)
            r = a + ls
            if abs(r) < _MIN_NORMAL and r != 0:
                r = np.float32(0.0) * r
            a = r
        out[i] = a
    return out
