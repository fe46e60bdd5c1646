"""Private ``@njit`` kernels of the Numba CPU backend (``cpu.py`` is the launcher).

Three layers, stumpy-style: workers that never allocate (a matrix-vector
product for up to four series, one layer's pointwise cell math, one window's
backward; compiled without Numba's reference counting, whose atomic
increments on every array view cost more than the arithmetic of a step),
parallel launchers (``*_par``: ``prange`` over fixed blocks of rows or chunks
of due series) and one driver, ``step_calls``, that runs all C calls of a
``step_calls`` request without going back to Python.

Two ways through a window (SPEC 4), with the same bits: per call (forward of
the call's rows; at a due call the update re-runs each due window from its
entry state - or reuses the activation cache - and back-propagates it), and,
for a whole fresh k1 = k2 window of lockstep calls, series-major
(``_fused_window``: each chunk of series runs its k1 rows forward and then
backward while hot).

The weights live in ``kp``, ``theta`` in the *kernel layout* (``cpu.kernel_layout``
builds the map; the backend converts to PyTorch's layout only when the arrays
are read), and so do the optimizer moments ``km``, ``kv`` and the gradients:

    per layer k, at mo[k]:  W_ih^T (in_k rows) then W_hh^T (H rows), each row
                            G*H long, zero-padded to GHp (a multiple of the SIMD
                            width VL: 16 float32 / 8 float64 lanes)
    per layer k, at bo[k]:  b_ih (GHp), b_hh (GHp)
    at ho:                  head W (O, H) row-major, head b (O)

so that a step's gate pre-activations are AXPYs of whole W^T rows kept in SIMD
registers (``_cpu_simd``).  The optimizer is elementwise, so it runs on these
arrays unchanged (padding stays exactly 0: zero gradient, zero moments).

Shapes (cached buffers named as in llm.c): ``st`` (L, S, H) one series' state;
``act`` (L, A) one step's per-layer activations: LSTM [i f g o | pad | tanh c']
(A = GHp + H), GRU [r z n | pad | W_h h + b_h] (A = 2 GHp, W_hn h + b_hn at
GHp + 2H); ``cst`` (k2+1, L, S, H) the window-entry state and the re-run
states after each row; ``cact`` (k2, L, A) their activations; ``dA`` (L, 2,
k2*GHp) the pre-activation gradients of every row (input side, hidden side).

Determinism (backend.py): every multiply-add is an exactly rounded FMA in a
fixed order per series (k ascending), so a series' forward is the same
whether it is computed alone or in a block of four; the gradient of an update
is accumulated in chunks of ``GRAD_CHUNK`` due series (ascending slot order)
dealt to a fixed number of lanes (one parallel region per update, robust on a
busy machine), and the lane sums are added in lane order, so neither the
thread count nor the order a call lists its slots changes a bit.  Reductions
(dot products) use fixed pairwise trees.

All arithmetic runs in the array dtype: constants are made with
``theta.dtype.type(...)``, never as Python float literals (which would promote
float32 to float64).  Fast-math is FMA contraction only (see _cellmath.FASTMATH:
re-association would make the bits depend on where LLVM inlined a function).
"""
import math

import numpy as np
from numba import njit, prange

from streamlstm.backends.cellmath import FASTMATH, gru_cell, gru_cell_backward, lstm_cell, lstm_cell_backward
# _cpu_simd also registers +, -, *, /, math.exp and math.tanh for its vectors, which is
# what lets the _cellmath cell functions run on them.
from streamlstm.backends.cpu.simd import lanes, vadd, vfma, vhsum, vload, vload_n, vsplat, vstore, vstore_n

# Due series per gradient chunk, and at most how many lanes (partial gradient
# sums) an update spreads its chunks over: chunk c goes to lane c % lanes, each
# lane adds its chunks in order, and the lanes are added in order.  Both are
# part of this backend's numerical contract (cpu.py fixes the lane count from
# the model size, never from the thread count): changing them changes the
# last bits of a multi-series update.
GRAD_CHUNK = 8
GRAD_LANES = 16
# Multiply-adds below which a call's forward stays on the calling thread
# (launching a parallel region costs ~10 us; one series at H=32 is ~4k MACs).
PAR_FORWARD_WORK = 1 << 18

# error_model="numpy": a float division by zero gives inf/nan instead of raising;
# without it every division carries a Python-style zero check that keeps LLVM
# from vectorising the loop around it (sigmoid, Adam).
_EXACT = dict(cache=True, error_model="numpy")
_FAST = dict(cache=True, error_model="numpy", fastmath=FASTMATH, _nrt=False)
_FAST_NRT = dict(cache=True, error_model="numpy", fastmath=FASTMATH)

# Indices into the int64 ``cfg`` vector built by cpu.CPUBackend.
(C_I, C_H, C_O, C_L, C_G, C_S, C_LSTM, C_K1, C_K2, C_A, C_HO, C_P, C_GHP, C_KP) = range(14)
N_CFG = 14


# ---------------------------------------------------------------------------------
# gate pre-activations: SIMD matrix-vector products over rows of W^T in kp
@njit(**_FAST)
def _mv1(o, oo, x, kp, w0, K, GHp, ba, bb, mode):
    """One series: o[oo:oo+GHp] = init + sum_{k<K} x[k] * kp[w0 + k*GHp : +GHp].
    init = kp[ba:] (mode 0), kp[ba:] + kp[bb:] (mode 1) or o itself (mode 2).
    Blocks of four vectors stay in registers over k; every lane is an FMA chain
    in k order (the same instructions _mv4 runs for each of its series)."""
    VL = lanes(kp)
    NV = GHp // VL
    nb = NV // 4
    for blk in range(nb):
        c = blk * 4 * VL
        if mode == 2:
            a0, a1 = vload(o, oo + c), vload(o, oo + c + VL)
            a2, a3 = vload(o, oo + c + 2 * VL), vload(o, oo + c + 3 * VL)
        elif mode == 1:
            a0 = vadd(vload(kp, ba + c), vload(kp, bb + c))
            a1 = vadd(vload(kp, ba + c + VL), vload(kp, bb + c + VL))
            a2 = vadd(vload(kp, ba + c + 2 * VL), vload(kp, bb + c + 2 * VL))
            a3 = vadd(vload(kp, ba + c + 3 * VL), vload(kp, bb + c + 3 * VL))
        else:
            a0, a1 = vload(kp, ba + c), vload(kp, ba + c + VL)
            a2, a3 = vload(kp, ba + c + 2 * VL), vload(kp, ba + c + 3 * VL)
        for k in range(K):
            xs = vsplat(x[k])
            r = w0 + k * GHp + c
            a0 = vfma(xs, vload(kp, r), a0)
            a1 = vfma(xs, vload(kp, r + VL), a1)
            a2 = vfma(xs, vload(kp, r + 2 * VL), a2)
            a3 = vfma(xs, vload(kp, r + 3 * VL), a3)
        vstore(o, oo + c, a0)
        vstore(o, oo + c + VL, a1)
        vstore(o, oo + c + 2 * VL, a2)
        vstore(o, oo + c + 3 * VL, a3)
    for v in range(nb * 4, NV):
        c = v * VL
        if mode == 2:
            a0 = vload(o, oo + c)
        elif mode == 1:
            a0 = vadd(vload(kp, ba + c), vload(kp, bb + c))
        else:
            a0 = vload(kp, ba + c)
        for k in range(K):
            a0 = vfma(vsplat(x[k]), vload(kp, w0 + k * GHp + c), a0)
        vstore(o, oo + c, a0)


@njit(**_FAST)
def _mv4(o0, o1, o2, o3, oo, x0, x1, x2, x3, kp, w0, K, GHp, ba, bb, mode):
    """_mv1 for four series at once: every W^T row block is loaded once for the
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
            if mode == 1:
                b0 = vadd(vload(kp, ba + c), vload(kp, bb + c))
                b1 = vadd(vload(kp, ba + c + VL), vload(kp, bb + c + VL))
            else:
                b0, b1 = vload(kp, ba + c), vload(kp, ba + c + VL)
            a00, a01, a10, a11, a20, a21, a30, a31 = b0, b1, b0, b1, b0, b1, b0, b1
        for k in range(K):
            r = w0 + k * GHp + c
            w_0 = vload(kp, r)
            w_1 = vload(kp, r + VL)
            s0 = vsplat(x0[k])
            a00 = vfma(s0, w_0, a00)
            a01 = vfma(s0, w_1, a01)
            s1 = vsplat(x1[k])
            a10 = vfma(s1, w_0, a10)
            a11 = vfma(s1, w_1, a11)
            s2 = vsplat(x2[k])
            a20 = vfma(s2, w_0, a20)
            a21 = vfma(s2, w_1, a21)
            s3 = vsplat(x3[k])
            a30 = vfma(s3, w_0, a30)
            a31 = vfma(s3, w_1, a31)
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
            if mode == 1:
                b0 = vadd(vload(kp, ba + c), vload(kp, bb + c))
            else:
                b0 = vload(kp, ba + c)
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


# ---------------------------------------------------------------------------------
# pointwise cell math of one series (SPEC 1), in place
@njit(**_FAST)
def _vin(a, i, m):
    """m lanes of a[i:] as a vector: a whole one, or a masked one at a row's end."""
    if m == lanes(a):
        return vload(a, i)
    return vload_n(a, i, m)


@njit(**_FAST)
def _vout(a, i, v, m):
    if m == lanes(a):
        vstore(a, i, v)
    else:
        vstore_n(a, i, v, m)


@njit(**_FAST)
def _lstm_pointwise(h, c, act, GHp):
    """act[0:4H] holds the pre-activations of (i, f, g, o) -> activations, and
    (h, c) <- the new state, by _cellmath.lstm_cell on SIMD vectors (VL units
    at a time, a masked vector for the last H % VL); tanh(c') goes to
    act[GHp:GHp+H] (the backward reads it)."""
    H = h.shape[0]
    VL = lanes(act)
    one = vsplat(act.dtype.type(1))
    for j in range(0, H, VL):
        m = min(VL, H - j)
        i, f, g, o, c2, tc, h2 = lstm_cell(_vin(act, j, m), _vin(act, H + j, m),
                                           _vin(act, 2 * H + j, m), _vin(act, 3 * H + j, m),
                                           _vin(c, j, m), one)
        _vout(act, j, i, m)
        _vout(act, H + j, f, m)
        _vout(act, 2 * H + j, g, m)
        _vout(act, 3 * H + j, o, m)
        _vout(act, GHp + j, tc, m)
        _vout(c, j, c2, m)
        _vout(h, j, h2, m)


@njit(**_FAST)
def _gru_pointwise(h, act, GHp):
    """act[0:3H] = W_i x + b_i, act[GHp:GHp+3H] = W_h h + b_h (gates r, z, n) ->
    r, z, n in act[0:3H] and h <- h', by _cellmath.gru_cell on SIMD vectors
    (W_hn h + b_hn stays at act[GHp+2H:GHp+3H] for the backward)."""
    H = h.shape[0]
    VL = lanes(act)
    one = vsplat(act.dtype.type(1))
    for j in range(0, H, VL):
        m = min(VL, H - j)
        r, z, n, h2 = gru_cell(_vin(act, j, m), _vin(act, H + j, m), _vin(act, 2 * H + j, m),
                               _vin(act, GHp + j, m), _vin(act, GHp + H + j, m),
                               _vin(act, GHp + 2 * H + j, m), _vin(h, j, m), one)
        _vout(act, j, r, m)
        _vout(act, H + j, z, m)
        _vout(act, 2 * H + j, n, m)
        _vout(h, j, h2, m)


@njit(**_FAST)
def _gates1(x, h, act, kp, k, nin, koff, cfg):
    """Pre-activations of one layer for one series into act (see module doc)."""
    H, GHp = cfg[C_H], cfg[C_GHP]
    mo, bo = koff[k, 0], koff[k, 1]
    if cfg[C_LSTM] != 0:
        _mv1(act, 0, x, kp, mo, nin, GHp, bo, bo + GHp, 1)
        _mv1(act, 0, h, kp, mo + nin * GHp, H, GHp, 0, 0, 2)
    else:
        _mv1(act, 0, x, kp, mo, nin, GHp, bo, 0, 0)
        _mv1(act, GHp, h, kp, mo + nin * GHp, H, GHp, bo + GHp, 0, 0)


@njit(**_FAST)
def _gates4(x0, x1, x2, x3, h0, h1, h2, h3, a0, a1, a2, a3, kp, k, nin, koff, cfg):
    """_gates1 for four series sharing every weight load."""
    H, GHp = cfg[C_H], cfg[C_GHP]
    mo, bo = koff[k, 0], koff[k, 1]
    if cfg[C_LSTM] != 0:
        _mv4(a0, a1, a2, a3, 0, x0, x1, x2, x3, kp, mo, nin, GHp, bo, bo + GHp, 1)
        _mv4(a0, a1, a2, a3, 0, h0, h1, h2, h3, kp, mo + nin * GHp, H, GHp, 0, 0, 2)
    else:
        _mv4(a0, a1, a2, a3, 0, x0, x1, x2, x3, kp, mo, nin, GHp, bo, 0, 0)
        _mv4(a0, a1, a2, a3, GHp, h0, h1, h2, h3, kp, mo + nin * GHp, H, GHp, bo + GHp, 0, 0)


@njit(**_FAST)
def _pointwise(st, k, act, cfg):
    if cfg[C_LSTM] != 0:
        _lstm_pointwise(st[k, 0], st[k, 1], act, cfg[C_GHP])
    else:
        _gru_pointwise(st[k, 0], act, cfg[C_GHP])


@njit(**_FAST)
def _stack_forward1(x, st, acts, kp, koff, cfg):
    """One time step of the whole stack for one series, in place on st (L, S, H);
    layer k > 0 reads layer k-1's new h.  acts (L, A) receives the activations."""
    for k in range(cfg[C_L]):
        if k == 0:
            _gates1(x, st[0, 0], acts[0], kp, 0, cfg[C_I], koff, cfg)
        else:
            _gates1(st[k - 1, 0], st[k, 0], acts[k], kp, k, cfg[C_H], koff, cfg)
        _pointwise(st, k, acts[k], cfg)


@njit(**_FAST)
def _stack_forward4(x0, x1, x2, x3, s0, s1, s2, s3, c0, c1, c2, c3, kp, koff, cfg):
    """_stack_forward1 for four series, layer by layer."""
    for k in range(cfg[C_L]):
        if k == 0:
            _gates4(x0, x1, x2, x3, s0[0, 0], s1[0, 0], s2[0, 0], s3[0, 0],
                    c0[0], c1[0], c2[0], c3[0], kp, 0, cfg[C_I], koff, cfg)
        else:
            _gates4(s0[k - 1, 0], s1[k - 1, 0], s2[k - 1, 0], s3[k - 1, 0],
                    s0[k, 0], s1[k, 0], s2[k, 0], s3[k, 0],
                    c0[k], c1[k], c2[k], c3[k], kp, k, cfg[C_H], koff, cfg)
        _pointwise(s0, k, c0[k], cfg)
        _pointwise(s1, k, c1[k], cfg)
        _pointwise(s2, k, c2[k], cfg)
        _pointwise(s3, k, c3[k], cfg)


@njit(**_FAST)
def _dot(w, off, h):
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


@njit(**_FAST)
def _head(h, kp, cfg, out_row):
    """y_hat = W_head h + b_head (SPEC 1)."""
    H, O, ho = cfg[C_H], cfg[C_O], cfg[C_HO]
    for o in range(O):
        out_row[o] = _dot(kp, ho + o * H, h) + kp[ho + O * H + o]


@njit(**_FAST)
def _cache_row_start(n, st, entry, win_len, cache, L, S, H):
    """Activation cache (k1 = k2 only): returns the cache row of slot n's next
    window position, after updating its validity.  The cache stays valid while
    every row of the window is computed with the current weights version from
    a live state equal to the window-entry state; the re-run would then compute
    the same numbers with the same code, so the update may use the cache."""
    c_st, c_act, c_ver, ver = cache
    w = win_len[n]
    if w == 0:                          # a window starts: is the live state its entry state?
        same = True
        en = entry[n]
        c0 = c_st[n, 0]
        for k in range(L):
            for s_ in range(S):
                for q in range(H):
                    same = same and st[k, s_, q] == en[k, s_, q]
                    c0[k, s_, q] = st[k, s_, q]
        c_ver[n] = ver[0] if same else -1
    elif c_ver[n] != ver[0]:
        c_ver[n] = -1
    return w


@njit(**_FAST)
def _forward_rows(lo, hi, slots, U, state, kp, koff, cfg, acts4, out,
                  win_len, entry, cache):
    """Rows lo:hi: advance state[slots[r]] by one step on U[r]; out[r] = y_hat.
    Rows go four at a time through _stack_forward4 (acts4 (4, L, A) scratch).
    With the activation cache on, activations and states go to the slot's cache
    row instead (see _cache_row_start) so that the update can skip the re-run."""
    L, S, H = cfg[C_L], cfg[C_S], cfg[C_H]
    c_st, c_act, c_ver, ver = cache
    use = c_ver.shape[0] > 0
    r = lo
    while r < hi:
        m = min(4, hi - r)
        n0 = slots[r]
        n1 = slots[r + 1] if m > 1 else n0
        n2 = slots[r + 2] if m > 2 else n0
        n3 = slots[r + 3] if m > 3 else n0
        if use:
            w0 = _cache_row_start(n0, state[n0], entry, win_len, cache, L, S, H)
            a0 = c_act[n0, w0]
            a1, a2, a3 = a0, a0, a0
            if m > 1:
                w1 = _cache_row_start(n1, state[n1], entry, win_len, cache, L, S, H)
                a1 = c_act[n1, w1]
            if m > 2:
                w2 = _cache_row_start(n2, state[n2], entry, win_len, cache, L, S, H)
                a2 = c_act[n2, w2]
            if m > 3:
                w3 = _cache_row_start(n3, state[n3], entry, win_len, cache, L, S, H)
                a3 = c_act[n3, w3]
        else:
            a0, a1, a2, a3 = acts4[0], acts4[1], acts4[2], acts4[3]
        if m == 4:
            _stack_forward4(U[r], U[r + 1], U[r + 2], U[r + 3], state[n0], state[n1],
                            state[n2], state[n3], a0, a1, a2, a3, kp, koff, cfg)
        else:
            _stack_forward1(U[r], state[n0], a0, kp, koff, cfg)
            if m > 1:
                _stack_forward1(U[r + 1], state[n1], a1, kp, koff, cfg)
            if m > 2:
                _stack_forward1(U[r + 2], state[n2], a2, kp, koff, cfg)
        for j in range(m):
            n = slots[r + j]
            st = state[n]
            if use:
                c1 = c_st[n, win_len[n] + 1]
                for k in range(L):
                    for s_ in range(S):
                        for q in range(H):
                            c1[k, s_, q] = st[k, s_, q]
            _head(st[L - 1, 0], kp, cfg, out[r + j])
        r += m


@njit(parallel=True, **_EXACT)
def _forward_rows_par(lo, hi, nb, slots, U, state, kp, koff, cfg, ws_a, out,
                      win_len, entry, cache):
    """_forward_rows over nb blocks of rows in parallel (block b uses scratch slot b).
    Every row's arithmetic is its own, so the blocking changes no bit."""
    R = hi - lo
    for b in prange(nb):
        r0 = lo + (R * b) // nb
        r1 = lo + (R * (b + 1)) // nb
        _forward_rows(r0, r1, slots, U, state, kp, koff, cfg, ws_a[b], out,
                      win_len, entry, cache)


@njit(**_EXACT)
def forward_rows(lo, hi, slots, U, state, kp, koff, cfg, ws_a, out,
                 win_len, entry, cache, n_threads):
    """Rows lo:hi of one call; parallel only when the work pays for the launch."""
    R = hi - lo
    nb = min(ws_a.shape[0], (R + 3) // 4)
    work = R * cfg[C_L] * cfg[C_G] * cfg[C_H] * (cfg[C_H] + cfg[C_I])
    if nb > 1 and n_threads > 1 and work >= PAR_FORWARD_WORK:
        _forward_rows_par(lo, hi, nb, slots, U, state, kp, koff, cfg, ws_a, out,
                          win_len, entry, cache)
    else:
        _forward_rows(lo, hi, slots, U, state, kp, koff, cfg, ws_a[0], out,
                      win_len, entry, cache)


# ---------------------------------------------------------------------------------
# backward workers: one series' window (SPEC 4)
@njit(**_FAST)
def _dots_acc(out, kp, r0, GHp, D, d0):
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


@njit(**_FAST)
def _outer_acc(gp, g0, GHp, D, X, T):
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
            a0, a1 = vload(gp, r0 + e), vload(gp, r0 + e + VL)
            a2, a3 = vload(gp, r0 + e + 2 * VL), vload(gp, r0 + e + 3 * VL)
            b0, b1 = vload(gp, r1 + e), vload(gp, r1 + e + VL)
            b2, b3 = vload(gp, r1 + e + 2 * VL), vload(gp, r1 + e + 3 * VL)
            for t in range(T):
                xa = vsplat(X[t, q])
                xb = vsplat(X[t, q + 1])
                d = t * GHp + e
                d0, d1, d2, d3 = vload(D, d), vload(D, d + VL), vload(D, d + 2 * VL), \
                    vload(D, d + 3 * VL)
                a0 = vfma(xa, d0, a0)
                a1 = vfma(xa, d1, a1)
                a2 = vfma(xa, d2, a2)
                a3 = vfma(xa, d3, a3)
                b0 = vfma(xb, d0, b0)
                b1 = vfma(xb, d1, b1)
                b2 = vfma(xb, d2, b2)
                b3 = vfma(xb, d3, b3)
            vstore(gp, r0 + e, a0)
            vstore(gp, r0 + e + VL, a1)
            vstore(gp, r0 + e + 2 * VL, a2)
            vstore(gp, r0 + e + 3 * VL, a3)
            vstore(gp, r1 + e, b0)
            vstore(gp, r1 + e + VL, b1)
            vstore(gp, r1 + e + 2 * VL, b2)
            vstore(gp, r1 + e + 3 * VL, b3)
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


@njit(**_FAST)
def _bias_acc(gp, b0, GHp, D, T):
    """gp[b0 : b0+GHp] += sum_{t<T} D[t*GHp : +GHp] (a bias gradient)."""
    VL = lanes(gp)
    for v in range(GHp // VL):
        a = vload(gp, b0 + v * VL)
        for t in range(T):
            a = vadd(a, vload(D, t * GHp + v * VL))
        vstore(gp, b0 + v * VL, a)


@njit(**_FAST)
def _bw_head(t, T, Mf, htop, wy, kp, cfg, dxv, hg):
    """Row t's loss (if among the last k1) into dxv = d loss / d h_top and the
    head gradient hg (W (O, H) | b (O)) of this series."""
    zero = kp.dtype.type(0)
    two = kp.dtype.type(2)
    H, O, ho = cfg[C_H], cfg[C_O], cfg[C_HO]
    VL = lanes(kp)
    for q in range(H):
        dxv[q] = zero
    if t >= T - cfg[C_K1]:                 # loss only on the last k1 rows
        for o in range(O):
            y = wy[t, o]
            if not math.isnan(y):
                yh = _dot(kp, ho + o * H, htop) + kp[ho + O * H + o]   # the re-run forecast
                d = two * (yh - y) / Mf    # d/dyhat of (1/M) m (yhat - y)^2
                hg[O * H + o] += d
                dv = vsplat(d)
                for j in range(0, H, VL):  # hg_W[o] += d h_top;  dxv += d W_head[o]
                    m = min(VL, H - j)
                    _vout(hg, o * H + j, vfma(dv, _vin(htop, j, m), _vin(hg, o * H + j, m)), m)
                    _vout(dxv, j, vfma(dv, _vin(kp, ho + o * H + j, m), _vin(dxv, j, m)), m)


@njit(**_FAST)
def _bw_cell(prev, act, dhk, dck, dxv, Di, Dh, d0, cfg):
    """One layer, one row, by _cellmath's *_cell_backward on SIMD vectors:
    dh' = dh (from t+1) + dx (from above) -> pre-activation gradients Di (input
    side) and Dh (hidden side; the same array for LSTM) at d0, the new dc, and
    in dhk the direct part of dh_prev (GRU: z dh'; LSTM: 0)."""
    H, GHp = cfg[C_H], cfg[C_GHP]
    VL = lanes(act)
    one = vsplat(act.dtype.type(1))
    zero = vsplat(act.dtype.type(0))
    lstm = cfg[C_LSTM] != 0
    for j in range(0, H, VL):
        m = min(VL, H - j)
        dh2 = _vin(dhk, j, m) + _vin(dxv, j, m)
        if lstm:
            di, df, dg, do, dcp = lstm_cell_backward(
                dh2, _vin(dck, j, m), _vin(act, j, m), _vin(act, H + j, m),
                _vin(act, 2 * H + j, m), _vin(act, 3 * H + j, m), _vin(prev[1], j, m),
                _vin(act, GHp + j, m), one)
            _vout(Di, d0 + j, di, m)
            _vout(Di, d0 + H + j, df, m)
            _vout(Di, d0 + 2 * H + j, dg, m)
            _vout(Di, d0 + 3 * H + j, do, m)
            _vout(dck, j, dcp, m)
            _vout(dhk, j, zero, m)
        else:
            dar, daz, dan, dhn, dhdir = gru_cell_backward(
                dh2, _vin(act, j, m), _vin(act, H + j, m), _vin(act, 2 * H + j, m),
                _vin(act, GHp + 2 * H + j, m), _vin(prev[0], j, m), one)
            _vout(Di, d0 + j, dar, m)
            _vout(Di, d0 + H + j, daz, m)
            _vout(Di, d0 + 2 * H + j, dan, m)
            _vout(Dh, d0 + j, dar, m)
            _vout(Dh, d0 + H + j, daz, m)
            _vout(Dh, d0 + 2 * H + j, dhn, m)
            _vout(dhk, j, dhdir, m)


@njit(**_FAST)
def _bw_sums(T, cst, wu, dA, hg, kp, koff, cfg, gp):
    """Add one series' window gradient to gp: the head's, then per layer the
    weights' (sums over the window's rows of da x^T, da h_prev^T) and biases'."""
    I, H, O, L, GHp, ho = cfg[C_I], cfg[C_H], cfg[C_O], cfg[C_L], cfg[C_GHP], cfg[C_HO]
    hs = 0 if cfg[C_LSTM] != 0 else 1
    for p in range(O * H + O):
        gp[ho + p] += hg[p]
    for k in range(L):
        nin = I if k == 0 else H
        mo, bo = koff[k, 0], koff[k, 1]
        D_i = dA[k, 0]
        D_h = dA[k, hs]
        if k == 0:
            _outer_acc(gp, mo, GHp, D_i, wu, T)
        else:
            _outer_acc(gp, mo, GHp, D_i, cst[1:, k - 1, 0], T)
        _outer_acc(gp, mo + nin * GHp, GHp, D_h, cst[:, k, 0], T)
        _bias_acc(gp, bo, GHp, D_i, T)
        _bias_acc(gp, bo + GHp, GHp, D_h, T)


@njit(**_FAST)
def _window_backward(T, Mf, cst, cact, wu, wy, kp, koff, cfg, vec, dA, gp):
    """Back-propagate the masked loss of the last k1 of T re-run rows through
    all T rows and add the gradient to gp (kernel layout).

    cst (k2+1, L, S, H): cst[0] is the window-entry state (a constant, SPEC 4)
    and cst[t+1] the re-run state after row t; cact (k2, L, A) the re-run
    activations; wu (k2, I), wy (k2, O) the window.  dA (L, 2, k2*GHp) receives
    the pre-activation gradients of every row (input side, hidden side; the
    same for LSTM), from which the weight gradients are formed after the time
    loop as sums over t (_bw_sums).  vec is scratch: dh (L, H) | dc (L, H) |
    dxv (H) | the head gradient (O*H + O), summed over the window before it is
    added.
    """
    zero = kp.dtype.type(0)
    I, H, O, L = cfg[C_I], cfg[C_H], cfg[C_O], cfg[C_L]
    GHp = cfg[C_GHP]
    hs = 0 if cfg[C_LSTM] != 0 else 1
    dh = vec[0:L * H].reshape((L, H))
    dc = vec[L * H:2 * L * H].reshape((L, H))
    dxv = vec[2 * L * H:2 * L * H + H]
    hg = vec[2 * L * H + H:2 * L * H + H + O * H + O]
    for q in range(vec.shape[0]):
        vec[q] = zero
    for t in range(T - 1, -1, -1):
        _bw_head(t, T, Mf, cst[t + 1, L - 1, 0], wy, kp, cfg, dxv, hg)
        d0 = t * GHp
        for k in range(L - 1, -1, -1):
            _bw_cell(cst[t, k], cact[t, k], dh[k], dc[k], dxv, dA[k, 0], dA[k, hs], d0, cfg)
            mo = koff[k, 0]
            nin = I if k == 0 else H
            _dots_acc(dh[k], kp, mo + nin * GHp, GHp, dA[k, hs], d0)   # dh_prev += W_hh^T da
            if k > 0:                                                   # dx = W_ih^T da
                for q in range(H):
                    dxv[q] = zero
                _dots_acc(dxv, kp, mo, GHp, dA[k, 0], d0)
    _bw_sums(T, cst, wu, dA, hg, kp, koff, cfg, gp)


# ---------------------------------------------------------------------------------
# the update (SPEC 4)
@njit(**_FAST)
def _copy_state(dst, src, L, S, H):
    for k in range(L):
        for s in range(S):
            for q in range(H):
                dst[k, s, q] = src[k, s, q]


@njit(**_FAST_NRT)
def _rows(n, s, slot, ws_x, c_x, c_ver, ver):
    """Series n's re-run states/activations: its activation-cache rows when
    valid, else workspace position s of slot."""
    if c_ver.shape[0] > 0 and c_ver[n] == ver[0]:
        return c_x[n]
    return ws_x[slot, s]


@njit(**_FAST_NRT)
def _update_chunk(ch, slot, due, mcnt, M, Mf, kp, koff, cfg,
                  entry, win_u, win_y, win_len, ws, cache):
    """Chunk ch of the sorted due list, on workspace slot (= lane) ``slot``: for
    each of its series re-run the window from the entry state (weights before
    the update; four series at a time), back-propagate into the lane's partial
    gradient ws_g[slot] (series in ascending order), then move the window
    (SPEC 4: d = max(0, w + k1 - k2) oldest rows leave, the entry state becomes
    the re-run state after them).  A series whose window is in the activation
    cache (see _cache_row_start) skips the re-run."""
    ws_st, ws_a, ws_vec, ws_g, ws_da, ws_f = ws
    c_st, c_act, c_ver, ver = cache
    zero = kp.dtype.type(0)
    H, L, S = cfg[C_H], cfg[C_L], cfg[C_S]
    k1, k2 = cfg[C_K1], cfg[C_K2]
    D = due.shape[0]
    j0 = ch * GRAD_CHUNK
    j1 = min(D, j0 + GRAD_CHUNK)
    gp = ws_g[slot]
    tf = np.zeros(4, dtype=np.int64)           # rows to re-run per group position
    for g0 in range(j0, j1, 4):
        m = min(4, j1 - g0)
        tmax = 0
        for s in range(4):
            tf[s] = 0
        for s in range(m):
            n = due[g0 + s]
            T = win_len[n]
            d = max(0, T + k1 - k2)
            need_bw = M > 0 and mcnt[g0 + s] > 0
            cached = c_ver.shape[0] > 0 and c_ver[n] == ver[0]
            if not cached:
                tf[s] = T if need_bw else d
                _copy_state(ws_st[slot, s, 0], entry[n], L, S, H)
                tmax = max(tmax, tf[s])
        for t in range(tmax):                   # re-run, four series in step when possible
            if tf[0] > t and tf[1] > t and tf[2] > t and tf[3] > t:
                for s in range(4):
                    _copy_state(ws_st[slot, s, t + 1], ws_st[slot, s, t], L, S, H)
                n0, n1, n2, n3 = due[g0], due[g0 + 1], due[g0 + 2], due[g0 + 3]
                _stack_forward4(win_u[n0, t], win_u[n1, t], win_u[n2, t], win_u[n3, t],
                                ws_st[slot, 0, t + 1], ws_st[slot, 1, t + 1],
                                ws_st[slot, 2, t + 1], ws_st[slot, 3, t + 1],
                                ws_a[slot, 0, t], ws_a[slot, 1, t], ws_a[slot, 2, t],
                                ws_a[slot, 3, t], kp, koff, cfg)
            else:
                for s in range(m):
                    if tf[s] > t:
                        _copy_state(ws_st[slot, s, t + 1], ws_st[slot, s, t], L, S, H)
                        _stack_forward1(win_u[due[g0 + s], t], ws_st[slot, s, t + 1],
                                        ws_a[slot, s, t], kp, koff, cfg)
        for s in range(m):                      # backward and window move, in slot order
            n = due[g0 + s]
            T = win_len[n]
            d = max(0, T + k1 - k2)
            need_bw = M > 0 and mcnt[g0 + s] > 0
            cst_n = _rows(n, s, slot, ws_st, c_st, c_ver, ver)
            if need_bw:
                _window_backward(T, Mf, cst_n, _rows(n, s, slot, ws_a, c_act, c_ver, ver),
                                 win_u[n], win_y[n], kp, koff, cfg, ws_vec[slot], ws_da[slot], gp)
            if d > 0:
                _copy_state(entry[n], cst_n[d], L, S, H)
                wu, wy = win_u[n], win_y[n]
                for t in range(T - d):
                    for q in range(wu.shape[1]):
                        wu[t, q] = wu[t + d, q]
                    for q in range(wy.shape[1]):
                        wy[t, q] = wy[t + d, q]
                nan = kp.dtype.type(np.nan)
                for t in range(T - d, k2):
                    for q in range(wy.shape[1]):
                        wy[t, q] = nan
                win_len[n] = T - d


@njit(**_EXACT)
def _update_lane(lane, lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                 entry, win_u, win_y, win_len, ws, cache):
    """Lane ``lane`` of an update: chunks lane, lane + lanes_, ... in order,
    into the lane's partial gradient."""
    gp = ws[3][lane]
    if M > 0:
        for p in range(gp.shape[0]):
            gp[p] = kp.dtype.type(0)
    for ch in range(lane, n_chunks, lanes_):
        _update_chunk(ch, lane, due, mcnt, M, Mf, kp, koff, cfg,
                      entry, win_u, win_y, win_len, ws, cache)


@njit(parallel=True, **_EXACT)
def _update_lanes_par(lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                      entry, win_u, win_y, win_len, ws, cache):
    for lane in prange(lanes_):            # one parallel region per update
        _update_lane(lane, lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                     entry, win_u, win_y, win_len, ws, cache)


@njit(**_EXACT)
def _sum_squares(g):
    """||g||^2 accumulated in float64 over 8 interleaved partial sums (explicit,
    so the order is fixed without fast-math re-association, and it vectorises)."""
    acc = np.zeros(8, dtype=np.float64)
    P = g.shape[0]
    P8 = P - P % 8
    for p in range(0, P8, 8):
        for j in range(8):
            v = np.float64(g[p + j])
            acc[j] += v * v
    for p in range(P8, P):
        v = np.float64(g[p])
        acc[p - P8] += v * v
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


@njit(**_EXACT)
def apply_update(theta, grad, opt_m, opt_v, opt_step, hyper):
    """optim.apply_update in Numba (SPEC 4): clip_grad_norm_, then torch's SGD or
    Adam.  No fast-math here: the optimizer follows torch operation for operation."""
    dt = theta.dtype.type
    P = theta.shape[0]
    clip = hyper[7]
    if clip > 0:
        norm = math.sqrt(_sum_squares(grad))
        coef = dt(min(1.0, clip / (norm + 1e-6)))
        for p in range(P):
            grad[p] *= coef
    opt_step[0] += 1
    t = opt_step[0]
    lr = hyper[1]
    if hyper[0] == 0.0:                            # SGD
        mom = hyper[2]
        lr_ = dt(lr)
        if mom != 0.0:
            mom_ = dt(mom)
            if t == 1:
                for p in range(P):
                    opt_m[p] = grad[p]
            else:
                for p in range(P):
                    opt_m[p] = opt_m[p] * mom_ + grad[p]
            for p in range(P):
                theta[p] -= lr_ * opt_m[p]
        else:
            for p in range(P):
                theta[p] -= lr_ * grad[p]
        return
    b1, b2, eps, wd = hyper[3], hyper[4], hyper[5], hyper[6]
    c1 = dt(1.0 - b1)
    c2 = dt(1.0 - b2)
    b2_ = dt(b2)
    wd_ = dt(wd)
    bc1 = 1.0 - math.pow(b1, float(t))            # as CPython's float ** int (C pow)
    bc2 = 1.0 - math.pow(b2, float(t))
    step_size = dt(lr / bc1)
    sq_bc2 = dt(math.sqrt(bc2))
    eps_ = dt(eps)
    if wd != 0.0:
        for p in range(P):
            grad[p] = grad[p] + wd_ * theta[p]     # L2-style weight decay (grad is scratch)
    for p in range(P):
        g = grad[p]
        m = opt_m[p] + c1 * (g - opt_m[p])          # exp_avg.lerp_(grad, 1 - beta1)
        v = opt_v[p] * b2_ + c2 * g * g            # exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
        opt_m[p] = m
        opt_v[p] = v
        denom = math.sqrt(v) / sq_bc2 + eps_
        theta[p] -= step_size * (m / denom)        # param.addcdiv_(exp_avg, denom, -step_size)


@njit(**_EXACT)
def _update(due, kp, km, kv, opt_step, hyper, grad, koff, cfg,
            entry, win_u, win_y, win_len, ws, cache, stats, n_threads):
    """SPEC 4 for the due series ``due`` (sorted ascending): loss normaliser M,
    chunked re-run + backward + window moves, chunk sums in chunk order, then
    clipping and the optimizer step (only if M > 0)."""
    k1 = cfg[C_K1]
    D = due.shape[0]
    mcnt = np.empty(D, dtype=np.int64)
    for jj in range(D):
        n = due[jj]
        T = win_len[n]
        cnt = 0
        for t in range(max(0, T - k1), T):
            for o in range(win_y.shape[2]):
                if not math.isnan(win_y[n, t, o]):
                    cnt += 1
        mcnt[jj] = cnt
    M = mcnt.sum()                  # (not a literal-typed 0: one compiled chunk kernel)
    c_ver, ver = cache[2], cache[3]
    for jj in range(D):             # statistics: rows this update re-runs
        n = due[jj]
        if not (c_ver.shape[0] > 0 and c_ver[n] == ver[0]):
            T = win_len[n]
            stats[1] += T if (M > 0 and mcnt[jj] > 0) else max(0, T + k1 - cfg[C_K2])
    Mf = kp.dtype.type(M)
    zero = Mf - Mf
    P = kp.shape[0]
    if M > 0:
        for p in range(P):
            grad[p] = zero
    n_chunks = (D + GRAD_CHUNK - 1) // GRAD_CHUNK
    ws_g = ws[3]
    lanes_ = min(ws_g.shape[0], n_chunks)      # chunk ch -> lane ch % lanes_
    if lanes_ > 1 and n_threads > 1:
        _update_lanes_par(lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                          entry, win_u, win_y, win_len, ws, cache)
    else:
        for lane in range(lanes_):
            _update_lane(lane, lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                         entry, win_u, win_y, win_len, ws, cache)
    if M > 0:
        for lane in range(lanes_):             # lane order: independent of the threads
            gp = ws_g[lane]
            for p in range(P):
                grad[p] += gp[p]
    if M > 0:
        apply_update(kp, grad, km, kv, opt_step, hyper)
        cache[3][0] += 1                       # new weights: every cached window is stale


# ---------------------------------------------------------------------------------
# fused windows: k1 = k2 lockstep calls run series-major
@njit(**_FAST_NRT)
def _fused_chunk(ch, slot, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff, cfg,
                 state, entry, win_u, win_y, win_len, count, ws):
    """Chunk ch of a fused window (see _fused_window) on workspace slot ``slot``:
    for each group of four of its series (ascending slots) run the k1 rows
    forward from the live state (= the entry state) with the current weights,
    writing the forecasts, then back-propagate every series in slot order into
    the chunk's partial gradient, then leave the arrays exactly as the k1
    per-call steps and the update would."""
    ws_st, ws_a, ws_vec, ws_g, ws_da, ws_f = ws
    zero = kp.dtype.type(0)
    H, L, S, I, O = cfg[C_H], cfg[C_L], cfg[C_S], cfg[C_I], cfg[C_O]
    k1 = cfg[C_K1]
    D = due.shape[0]
    j0 = ch * GRAD_CHUNK
    j1 = min(D, j0 + GRAD_CHUNK)
    gp = ws_g[slot]
    nan = kp.dtype.type(np.nan)
    for g0 in range(j0, j1, 4):
        m = min(4, j1 - g0)
        for s in range(m):
            n = due[g0 + s]
            _copy_state(ws_st[slot, s, 0], state[n], L, S, H)
            for t in range(k1):                 # the window rows, as the calls append them
                r = offsets[c + t] + pos[g0 + s]
                for q in range(I):
                    win_u[n, t, q] = U[r, q]
                for q in range(O):
                    win_y[n, t, q] = Y[r, q]
        for t in range(k1):
            for s in range(m):
                _copy_state(ws_st[slot, s, t + 1], ws_st[slot, s, t], L, S, H)
            if m == 4:
                n0, n1, n2, n3 = due[g0], due[g0 + 1], due[g0 + 2], due[g0 + 3]
                _stack_forward4(win_u[n0, t], win_u[n1, t], win_u[n2, t], win_u[n3, t],
                                ws_st[slot, 0, t + 1], ws_st[slot, 1, t + 1],
                                ws_st[slot, 2, t + 1], ws_st[slot, 3, t + 1],
                                ws_a[slot, 0, t], ws_a[slot, 1, t], ws_a[slot, 2, t],
                                ws_a[slot, 3, t], kp, koff, cfg)
            else:
                for s in range(m):
                    _stack_forward1(win_u[due[g0 + s], t], ws_st[slot, s, t + 1],
                                    ws_a[slot, s, t], kp, koff, cfg)
            for s in range(m):
                _head(ws_st[slot, s, t + 1, L - 1, 0], kp, cfg, out[offsets[c + t] + pos[g0 + s]])
        for s in range(m):                      # backward and window move, in slot order
            n = due[g0 + s]
            if M > 0 and mcnt[g0 + s] > 0:
                _window_backward(k1, Mf, ws_st[slot, s], ws_a[slot, s], win_u[n], win_y[n], kp,
                                 koff, cfg, ws_vec[slot], ws_da[slot], gp)
            last = ws_st[slot, s, k1]
            _copy_state(state[n], last, L, S, H)
            _copy_state(entry[n], last, L, S, H)   # d = k1 rows leave: the window empties
            for t in range(win_y.shape[1]):
                for q in range(O):
                    win_y[n, t, q] = nan
            win_len[n] = 0
            count[n] += k1


@njit(**_EXACT)
def _fused_lane(lane, lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp,
                koff, cfg, state, entry, win_u, win_y, win_len, count, ws):
    gp = ws[3][lane]
    if M > 0:
        for p in range(gp.shape[0]):
            gp[p] = kp.dtype.type(0)
    for ch in range(lane, n_chunks, lanes_):
        _fused_chunk(ch, lane, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff, cfg,
                     state, entry, win_u, win_y, win_len, count, ws)


@njit(parallel=True, **_EXACT)
def _fused_lanes_par(lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff,
                     cfg, state, entry, win_u, win_y, win_len, count, ws):
    for lane in prange(lanes_):
        _fused_lane(lane, lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp,
                    koff, cfg, state, entry, win_u, win_y, win_len, count, ws)


@njit(**_EXACT)
def _fused_window(c, offsets, series, U, Y, out, kp, km, kv, opt_step, hyper, grad, state,
                  entry, win_u, win_y, win_len, count, koff, cfg, ws, cache, stats, n_threads):
    """Run calls c .. c+k1-1 series-major if they form one fresh lockstep window:
    k1 = k2, every call lists the same slots in the same order, and every listed
    slot starts an empty window (count a multiple of k1) from a live state equal
    to its entry state.  Then no update happens before the last call, each
    series' k1 rows depend only on its own state and the current weights, and
    the update's re-run would reproduce them bit for bit - so each chunk of
    series runs forward and backward while its activations are hot (no re-run,
    nothing kept per series).  Same bits as the per-call path; returns False
    (doing nothing) when the calls do not qualify."""
    k1, k2 = cfg[C_K1], cfg[C_K2]
    L, S, H = cfg[C_L], cfg[C_S], cfg[C_H]
    if k1 != k2 or c + k1 >= offsets.shape[0]:
        return False
    lo = offsets[c]
    B = offsets[c + 1] - lo
    if B == 0 or win_len[series[lo]] != 0 or count[series[lo]] % k1 != 0:
        return False                            # cheap rejection first
    for j in range(1, k1):
        base = offsets[c + j]
        if offsets[c + j + 1] - base != B:
            return False
        for i in range(B):
            if series[base + i] != series[lo + i]:
                return False
    for i in range(B):
        n = series[lo + i]
        if win_len[n] != 0 or count[n] % k1 != 0:
            return False
        st, en = state[n], entry[n]
        for k in range(L):
            for s in range(S):
                for q in range(H):
                    if st[k, s, q] != en[k, s, q]:
                        return False
    pos = np.argsort(series[lo:lo + B])         # slots are distinct: any sort is the same
    stats[0] += k1 * B
    stats[2] += k1 * B
    due = np.empty(B, dtype=np.int64)
    mcnt = np.zeros(B, dtype=np.int64)
    for jj in range(B):
        due[jj] = series[lo + pos[jj]]
        for t in range(k1):
            r = offsets[c + t] + pos[jj]
            for o in range(Y.shape[1]):
                if not math.isnan(Y[r, o]):
                    mcnt[jj] += 1
    M = mcnt.sum()
    Mf = kp.dtype.type(M)
    zero = Mf - Mf
    P = kp.shape[0]
    if M > 0:
        for p in range(P):
            grad[p] = zero
    n_chunks = (B + GRAD_CHUNK - 1) // GRAD_CHUNK
    ws_g = ws[3]
    lanes_ = min(ws_g.shape[0], n_chunks)      # as _update
    if lanes_ > 1 and n_threads > 1:
        _fused_lanes_par(lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp,
                         koff, cfg, state, entry, win_u, win_y, win_len, count, ws)
    else:
        for lane in range(lanes_):
            _fused_lane(lane, lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out,
                        kp, koff, cfg, state, entry, win_u, win_y, win_len, count, ws)
    if M > 0:
        for lane in range(lanes_):
            gp = ws_g[lane]
            for p in range(P):
                grad[p] += gp[p]
    if M > 0:
        apply_update(kp, grad, km, kv, opt_step, hyper)
        cache[3][0] += 1
    return True


# ---------------------------------------------------------------------------------
# the driver
@njit(**_EXACT)
def step_calls(series, U, Y, offsets, kp, km, kv, opt_step, hyper, grad,
               state, entry, win_u, win_y, win_len, count, koff, cfg,
               ws, cache, stats, out, n_threads):
    """C consecutive ``step`` calls (SPEC 3): call c steps rows offsets[c]:offsets[c+1].
    Per call: forward every row (weights before the update), append (u, y) to
    each window, then one update if any listed series is due - or, for a whole
    fresh k1 = k2 lockstep window, the same computed series-major
    (_fused_window).  ``n_threads`` is numba.get_num_threads() of the caller
    (read in Python: calling it here would keep the driver out of the on-disk
    cache); 1 keeps everything serial.  ``stats`` counts rows forwarded, rows
    re-run by updates and rows computed in fused windows."""
    k1 = cfg[C_K1]
    work_row = cfg[C_L] * cfg[C_G] * cfg[C_H] * (cfg[C_H] + cfg[C_I])
    C = offsets.shape[0] - 1
    max_rows = 0
    for c in range(C):
        max_rows = max(max_rows, offsets[c + 1] - offsets[c])
    due_buf = np.empty(max_rows, dtype=np.int64)
    c = 0
    while c < C:
        if _fused_window(c, offsets, series, U, Y, out, kp, km, kv, opt_step, hyper, grad,
                         state, entry, win_u, win_y, win_len, count, koff, cfg, ws, cache,
                         stats, n_threads):
            c += k1
            continue
        lo, hi = offsets[c], offsets[c + 1]
        R = hi - lo
        stats[0] += R
        nb = min(ws[5].shape[0], (R + 3) // 4)
        if nb > 1 and n_threads > 1 and R * work_row >= PAR_FORWARD_WORK:
            _forward_rows_par(lo, hi, nb, series, U, state, kp, koff, cfg, ws[5], out,
                              win_len, entry, cache)
        else:
            _forward_rows(lo, hi, series, U, state, kp, koff, cfg, ws[5][0], out,
                          win_len, entry, cache)
        nd = 0
        for r in range(lo, hi):
            n = series[r]
            w = win_len[n]
            for q in range(U.shape[1]):
                win_u[n, w, q] = U[r, q]
            for q in range(Y.shape[1]):
                win_y[n, w, q] = Y[r, q]
            win_len[n] = w + 1
            count[n] += 1
            if count[n] % k1 == 0:
                due_buf[nd] = n
                nd += 1
        if nd > 0:
            due = np.sort(due_buf[:nd])
            _update(due, kp, km, kv, opt_step, hyper, grad, koff, cfg,
                    entry, win_u, win_y, win_len, ws, cache, stats, n_threads)
        c += 1
