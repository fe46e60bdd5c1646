"""SIMD products over the rows of W^T in the kernel layout (config.py), the
workers both passes of the CPU backend are built from: the forward's gate
pre-activations for one or four series (``mv1``, ``mv4``), dot products
(``dot``), the backward's W^T da (``dots_acc``) and the weight and bias
gradient sums over a window's rows (``outer_acc``, ``bias_acc``), and masked
vector access at a row's end (``vin``, ``vout``).  Nothing here allocates.
"""

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cpu.config import FAST
from streamlstm.backends.cpu.simd import lanes, vadd, vfma, vhsum, vload, vload_n, vsplat, vstore, vstore_n


# ---------------------------------------------------------------------------------
# gate pre-activations: SIMD matrix-vector products over rows of W^T in kp
@cached_njit(**FAST)
def vstore4(a, i, v0, v1, v2, v3):
    """a[i : i + 4 VL] = four vectors."""
    VL = lanes(a)
    vstore(a, i, v0)
    vstore(a, i + VL, v1)
    vstore(a, i + 2 * VL, v2)
    vstore(a, i + 3 * VL, v3)


@cached_njit(**FAST)
def vload4(a, i):
    """a[i : i + 4 VL] as four vectors."""
    VL = lanes(a)
    return vload(a, i), vload(a, i + VL), vload(a, i + 2 * VL), vload(a, i + 3 * VL)


@cached_njit(**FAST)
def _acc_init(o, oo, kp, ba, bb, mode, c):
    """The vector at offset c of a product's initial value (see mv1's modes)."""
    if mode == 2:
        return vload(o, oo + c)
    if mode == 1:
        return vadd(vload(kp, ba + c), vload(kp, bb + c))
    return vload(kp, ba + c)


@cached_njit(**FAST)
def mv1(o, oo, x, kp, w0, K, GHp, ba, bb, mode):
    """One series: o[oo:oo+GHp] = init + sum_{k<K} x[k] * kp[w0 + k*GHp : +GHp].
    init = kp[ba:] (mode 0), kp[ba:] + kp[bb:] (mode 1) or o itself (mode 2).
    Blocks of four vectors stay in registers over k; every lane is an FMA chain
    in k order (the same instructions mv4 runs for each of its series)."""
    VL = lanes(kp)
    NV = GHp // VL
    nb = NV // 4
    for blk in range(nb):
        c = blk * 4 * VL
        a0 = _acc_init(o, oo, kp, ba, bb, mode, c)
        a1 = _acc_init(o, oo, kp, ba, bb, mode, c + VL)
        a2 = _acc_init(o, oo, kp, ba, bb, mode, c + 2 * VL)
        a3 = _acc_init(o, oo, kp, ba, bb, mode, c + 3 * VL)
        for k in range(K):
            xs = vsplat(x[k])
            r = w0 + k * GHp + c
            a0 = vfma(xs, vload(kp, r), a0)
            a1 = vfma(xs, vload(kp, r + VL), a1)
            a2 = vfma(xs, vload(kp, r + 2 * VL), a2)
            a3 = vfma(xs, vload(kp, r + 3 * VL), a3)
        vstore4(o, oo + c, a0, a1, a2, a3)
    for v in range(nb * 4, NV):
        c = v * VL
        a0 = _acc_init(o, oo, kp, ba, bb, mode, c)
        for k in range(K):
            a0 = vfma(vsplat(x[k]), vload(kp, w0 + k * GHp + c), a0)
        vstore(o, oo + c, a0)


@cached_njit(**FAST)
def _fma2(s, w0, w1, a0, a1):
    """(s * w0 + a0, s * w1 + a1), each an exactly rounded FMA."""
    return vfma(s, w0, a0), vfma(s, w1, a1)


@cached_njit(**FAST)
def mv4(o0, o1, o2, o3, oo, x0, x1, x2, x3, kp, w0, K, GHp, ba, bb, mode):
    """mv1 for four series at once: every W^T row block is loaded once for the
    four (16 accumulators in registers), with the very same per-lane FMA chain."""
    VL = lanes(kp)
    NV = GHp // VL
    nb = NV // 2
    for blk in range(nb):                      # two vectors x four series
        c = blk * 2 * VL
        if mode == 2:
            a00, a01 = vload(o0, oo + c), vload(o0, oo + c + VL)
            a10, a11 = vload(o1, oo + c), vload(o1, oo + c + VL)
            a20, a21 = vload(o2, oo + c), vload(o2, oo + c + VL)
            a30, a31 = vload(o3, oo + c), vload(o3, oo + c + VL)
        else:
            b0 = _acc_init(o0, oo, kp, ba, bb, mode, c)
            b1 = _acc_init(o0, oo, kp, ba, bb, mode, c + VL)
            a00, a01, a10, a11, a20, a21, a30, a31 = b0, b1, b0, b1, b0, b1, b0, b1
        for k in range(K):
            r = w0 + k * GHp + c
            w_0 = vload(kp, r)
            w_1 = vload(kp, r + VL)
            a00, a01 = _fma2(vsplat(x0[k]), w_0, w_1, a00, a01)
            a10, a11 = _fma2(vsplat(x1[k]), w_0, w_1, a10, a11)
            a20, a21 = _fma2(vsplat(x2[k]), w_0, w_1, a20, a21)
            a30, a31 = _fma2(vsplat(x3[k]), w_0, w_1, a30, a31)
        vstore(o0, oo + c, a00)
        vstore(o0, oo + c + VL, a01)
        vstore(o1, oo + c, a10)
        vstore(o1, oo + c + VL, a11)
        vstore(o2, oo + c, a20)
        vstore(o2, oo + c + VL, a21)
        vstore(o3, oo + c, a30)
        vstore(o3, oo + c + VL, a31)
    if NV % 2:
        c = (NV - 1) * VL
        if mode == 2:
            a00, a10, a20, a30 = vload(o0, oo + c), vload(o1, oo + c), vload(o2, oo + c), \
                vload(o3, oo + c)
        else:
            b0 = _acc_init(o0, oo, kp, ba, bb, mode, c)
            a00, a10, a20, a30 = b0, b0, b0, b0
        for k in range(K):
            w_0 = vload(kp, w0 + k * GHp + c)
            a00 = vfma(vsplat(x0[k]), w_0, a00)
            a10 = vfma(vsplat(x1[k]), w_0, a10)
            a20 = vfma(vsplat(x2[k]), w_0, a20)
            a30 = vfma(vsplat(x3[k]), w_0, a30)
        vstore(o0, oo + c, a00)
        vstore(o1, oo + c, a10)
        vstore(o2, oo + c, a20)
        vstore(o3, oo + c, a30)


@cached_njit(**FAST)
def vin(a, i, m):
    """m lanes of a[i:] as a vector: a whole one, or a masked one at a row's end."""
    if m == lanes(a):
        return vload(a, i)
    return vload_n(a, i, m)


@cached_njit(**FAST)
def vout(a, i, v, m):
    if m == lanes(a):
        vstore(a, i, v)
    else:
        vstore_n(a, i, v, m)


@cached_njit(**FAST)
def dot(w, off, h):
    """<w[off:off+H], h>: SIMD lanes by FMA, then a fixed pairwise tree (a
    scalar chain of H dependent FMAs would cost ~4H cycles of latency)."""
    H = h.shape[0]
    VL = lanes(w)
    acc = vsplat(w.dtype.type(0))
    for j in range(0, H, VL):
        m = min(VL, H - j)
        if m == VL:
            acc = vfma(vload(w, off + j), vload(h, j), acc)
        else:
            acc = vfma(vload_n(w, off + j, m), vload_n(h, j, m), acc)
    return vhsum(acc)


# ---------------------------------------------------------------------------------
# backward workers: one series' window (SPEC 4)
@cached_njit(**FAST)
def dots_acc(out, kp, r0, GHp, D, d0):
    """out[q] += <kp[r0 + q*GHp : +GHp], D[d0 : d0+GHp]> for every q: W^T rows
    against a pre-activation gradient (W^T da).  Lanes accumulate by FMA in
    vector order, then reduce in a fixed pairwise tree; eight rows at a time
    share the loads of D and keep eight independent FMA chains in flight."""
    VL = lanes(kp)
    NV = GHp // VL
    Q = out.shape[0]
    zero = vsplat(out.dtype.type(0))
    Q8 = Q - Q % 8
    for q in range(0, Q8, 8):
        r = r0 + q * GHp
        a0, a1, a2, a3, a4, a5, a6, a7 = zero, zero, zero, zero, zero, zero, zero, zero
        for v in range(NV):
            e = v * VL
            d = vload(D, d0 + e)
            a0 = vfma(vload(kp, r + e), d, a0)
            a1 = vfma(vload(kp, r + GHp + e), d, a1)
            a2 = vfma(vload(kp, r + 2 * GHp + e), d, a2)
            a3 = vfma(vload(kp, r + 3 * GHp + e), d, a3)
            a4 = vfma(vload(kp, r + 4 * GHp + e), d, a4)
            a5 = vfma(vload(kp, r + 5 * GHp + e), d, a5)
            a6 = vfma(vload(kp, r + 6 * GHp + e), d, a6)
            a7 = vfma(vload(kp, r + 7 * GHp + e), d, a7)
        out[q] += vhsum(a0)
        out[q + 1] += vhsum(a1)
        out[q + 2] += vhsum(a2)
        out[q + 3] += vhsum(a3)
        out[q + 4] += vhsum(a4)
        out[q + 5] += vhsum(a5)
        out[q + 6] += vhsum(a6)
        out[q + 7] += vhsum(a7)
    for q in range(Q8, Q):
        r = r0 + q * GHp
        a0 = zero
        for v in range(NV):
            a0 = vfma(vload(kp, r + v * VL), vload(D, d0 + v * VL), a0)
        out[q] += vhsum(a0)


@cached_njit(**FAST)
def outer_acc(gp, g0, GHp, D, X, T):
    """gp[g0 + q*GHp : +GHp] += sum_{t<T} X[t, q] * D[t*GHp : +GHp] for every q:
    one weight gradient (W^T layout) summed over the window's rows.  Blocks of
    two rows q x four vectors stay in registers over t (one load and store per
    element per window; each load of D serves two rows)."""
    VL = lanes(gp)
    NV = GHp // VL
    nb = NV // 4
    Q = X.shape[1]
    for q in range(0, Q - Q % 2, 2):
        r0 = g0 + q * GHp
        r1 = r0 + GHp
        for blk in range(nb):
            e = blk * 4 * VL
            a0, a1, a2, a3 = vload4(gp, r0 + e)
            b0, b1, b2, b3 = vload4(gp, r1 + e)
            for t in range(T):
                xa = vsplat(X[t, q])
                xb = vsplat(X[t, q + 1])
                d0, d1, d2, d3 = vload4(D, t * GHp + e)
                a0 = vfma(xa, d0, a0)
                a1 = vfma(xa, d1, a1)
                a2 = vfma(xa, d2, a2)
                a3 = vfma(xa, d3, a3)
                b0 = vfma(xb, d0, b0)
                b1 = vfma(xb, d1, b1)
                b2 = vfma(xb, d2, b2)
                b3 = vfma(xb, d3, b3)
            vstore4(gp, r0 + e, a0, a1, a2, a3)
            vstore4(gp, r1 + e, b0, b1, b2, b3)
        for v in range(nb * 4, NV):
            c = v * VL
            a0, b0 = vload(gp, r0 + c), vload(gp, r1 + c)
            for t in range(T):
                d0 = vload(D, t * GHp + c)
                a0 = vfma(vsplat(X[t, q]), d0, a0)
                b0 = vfma(vsplat(X[t, q + 1]), d0, b0)
            vstore(gp, r0 + c, a0)
            vstore(gp, r1 + c, b0)
    if Q % 2:
        q = Q - 1
        row = g0 + q * GHp
        for v in range(NV):
            c = row + v * VL
            a0 = vload(gp, c)
            for t in range(T):
                a0 = vfma(vsplat(X[t, q]), vload(D, t * GHp + v * VL), a0)
            vstore(gp, c, a0)


@cached_njit(**FAST)
def bias_acc(gp, b0, GHp, D, T):
    """gp[b0 : b0+GHp] += sum_{t<T} D[t*GHp : +GHp] (a bias gradient)."""
    VL = lanes(gp)
    for v in range(GHp // VL):
        a = vload(gp, b0 + v * VL)
        for t in range(T):
            a = vadd(a, vload(D, t * GHp + v * VL))
        vstore(gp, b0 + v * VL, a)
