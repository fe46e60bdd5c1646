"""Private ``@njit`` kernels of the Numba CPU backend (``cpu.py`` is the launcher).

Three layers, stumpy-style: workers that never allocate (one layer of one
series, one window's backward), parallel launchers (``*_par``: ``prange`` over
fixed blocks of rows or chunks of due series) and one driver, ``step_calls``,
that runs all C calls of a ``step_calls`` request without going back to Python.

Everything works on flat arrays with the offsets of ``layout.py``: ``theta``
(P,) holds the PyTorch-ordered weights, ``wt`` holds per layer the transposed
stack [W_ih^T; W_hh^T] ((in_k + H) x G*H, refreshed after every update) so that
the forward matrix-vector products run as AXPYs over G*H contiguous numbers
(no horizontal reductions, and no summation order that could depend on
anything but the series' own numbers).

Shapes (cached buffers named as in llm.c): ``st`` (L, S, H) one series' state;
``acts`` (L, A) one step's per-layer activations, A = 5H for LSTM
(i, f, g, o, tanh c'), 6H for GRU (r, z, n, -, -, W_hn h + b_hn; the middle is
scratch for the hidden-side pre-activations); ``cst`` (k2, L, S, H) the states
after each re-run row; ``cact`` (k2, L, A) their activations.

Determinism (backend.py): a row's forward depends only on its own state and
input; the gradient of an update is accumulated per chunk of ``GRAD_CHUNK`` due
series (ascending slot order, series after series) and the chunk sums are
added in chunk order, so neither the thread count, nor the order a call lists
its slots, nor the number of workspace slots changes a bit.

All arithmetic runs in the array dtype: constants are made with
``theta.dtype.type(...)``, never as Python float literals (which would promote
float32 to float64).  Fast-math is FMA contraction only (see _cellmath.FASTMATH:
re-association would make the bits depend on where LLVM inlined a function).
"""
import math

import numpy as np
from numba import njit, prange

from ._cellmath import FASTMATH, gru_cell_backward, lstm_cell_backward

# Due series per gradient chunk.  Part of this backend's numerical contract:
# changing it changes the last bits of every multi-series update.
GRAD_CHUNK = 8
# The chunk partial gradients use a kernel layout (GRAD_LAYOUT) in which every
# weight matrix is transposed like ``wt`` - per layer W_ih^T (in_k, G*H) and
# W_hh^T (H, G*H) at wt_off[k] - followed by the biases (b_ih, b_hh per layer,
# G*H each) and the head (W (O, H), b (O,)).  ``perm[p]`` is the kernel-layout
# index of theta[p]; cpu.grad_perm builds it.
GRAD_LAYOUT = "wt matrices | per layer b_ih, b_hh | head W, head b"
# Multiply-adds below which a call's forward stays on the calling thread
# (launching a parallel region costs ~10 us; one series at H=32 is ~4k MACs).
PAR_FORWARD_WORK = 1 << 18

# error_model="numpy": a float division by zero gives inf/nan instead of raising;
# without it every division carries a Python-style zero check that keeps LLVM
# from vectorising the loop around it (sigmoid, Adam).
_EXACT = dict(cache=True, error_model="numpy")
_FAST = dict(cache=True, error_model="numpy", fastmath=FASTMATH)

# Indices into the int64 ``cfg`` vector built by cpu.CPUBackend.
(C_I, C_H, C_O, C_L, C_G, C_S, C_LSTM, C_K1, C_K2, C_A, C_HW, C_HB, C_P, C_WTOT) = range(14)
N_CFG = 14


# ---------------------------------------------------------------------------------
# views: every hot loop indexes a view with a loop counter starting at 0, which
# lets LLVM drop Numba's negative-index wraparound and vectorise
@njit(**_EXACT)
def _mat(a, off, rows, cols):
    """(rows, cols) row-major view of the flat a[off:]."""
    return a[off:off + rows * cols].reshape((rows, cols))


# ---------------------------------------------------------------------------------
# vectorisable exp for the gate nonlinearities.  libm's exp/tanh are scalar
# calls (~10-20 ns each, no SVML here) and were most of a step's time; this is
# Cody-Waite range reduction exp(x) = 2^n p(r), r = x - n ln2, |r| <= ln2/2,
# with a Taylor polynomial (degree 13 for float64, 7 for float32: truncation
# below half an ulp) and 2^n built in the exponent bits of the integer
# scratch ``si`` (int64 / int32, read back through a float view).  Measured
# error over [-40, 40]: sigmoid <= 2.2e-16 abs / 4.8e-16 rel (float64) and
# 8.9e-8 abs (float32); tanh = 2 sigmoid(2x) - 1 <= 3.3e-16 abs (float64).
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693359375                 # few mantissa bits: n * _LN2_HI is exact
_LN2_LO = -2.1219444005469058277e-4   # ln 2 - _LN2_HI


@njit(**_FAST)
def _vexp_neg_split(v, kf, si):
    """v[j] <- p(r_j) and si[j] <- bits of 2^n_j, so that v[j] * si.view(float)[j]
    = exp(-kf * v[j]).  The argument is clamped to the normal range (the
    sigmoid/tanh built on it are saturated there anyway)."""
    dt = v.dtype.type
    one = dt(1)
    half = dt(0.5)
    kneg = -dt(kf)
    log2e = dt(_LOG2E)
    c1 = dt(_LN2_HI)
    c2 = dt(_LN2_LO)
    ity = si.dtype.type
    if v.itemsize == 8:
        xmin, xmax = dt(-708.0), dt(709.0)
        for j in range(v.shape[0]):
            x = kneg * v[j]
            x = xmin if x < xmin else x
            x = xmax if x > xmax else x
            n = np.floor(x * log2e + half)
            r = (x - n * c1) - n * c2
            p = dt(1.0 / 6227020800.0)
            p = p * r + dt(1.0 / 479001600.0)
            p = p * r + dt(1.0 / 39916800.0)
            p = p * r + dt(1.0 / 3628800.0)
            p = p * r + dt(1.0 / 362880.0)
            p = p * r + dt(1.0 / 40320.0)
            p = p * r + dt(1.0 / 5040.0)
            p = p * r + dt(1.0 / 720.0)
            p = p * r + dt(1.0 / 120.0)
            p = p * r + dt(1.0 / 24.0)
            p = p * r + dt(1.0 / 6.0)
            p = p * r + half
            p = p * r + one
            v[j] = p * r + one
            si[j] = (ity(n) + ity(1023)) << ity(52)
    else:
        xmin, xmax = dt(-87.0), dt(88.0)
        for j in range(v.shape[0]):
            x = kneg * v[j]
            x = xmin if x < xmin else x
            x = xmax if x > xmax else x
            n = np.floor(x * log2e + half)
            r = (x - n * c1) - n * c2
            p = dt(1.0 / 5040.0)
            p = p * r + dt(1.0 / 720.0)
            p = p * r + dt(1.0 / 120.0)
            p = p * r + dt(1.0 / 24.0)
            p = p * r + dt(1.0 / 6.0)
            p = p * r + half
            p = p * r + one
            v[j] = p * r + one
            si[j] = (ity(n) + ity(127)) << ity(23)


@njit(**_FAST)
def _vsigmoid(v, si):
    """v <- 1 / (1 + exp(-v)) elementwise (SPEC 1 sigma)."""
    one = v.dtype.type(1)
    _vexp_neg_split(v, 1, si)
    sf = si.view(v.dtype)
    for j in range(v.shape[0]):
        v[j] = one / (one + v[j] * sf[j])


@njit(**_FAST)
def _vtanh(v, si):
    """v <- tanh(v) = 2 / (1 + exp(-2v)) - 1 elementwise."""
    one = v.dtype.type(1)
    two = one + one
    _vexp_neg_split(v, 2, si)
    sf = si.view(v.dtype)
    for j in range(v.shape[0]):
        v[j] = two / (one + v[j] * sf[j]) - one


# ---------------------------------------------------------------------------------
# forward workers
@njit(**_FAST)
def _axpy_rows(a, WT, x):
    """a += W x with WT = W^T (len(x), len(a)) row-major: AXPYs over rows of WT.
    Unrolled by four inputs so each a[r] is loaded and stored once per four
    FMAs; the per-element FMA chain (k ascending) is the plain loop's."""
    n = a.shape[0]
    K = x.shape[0]
    K4 = K - K % 4
    for k in range(0, K4, 4):
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        for r in range(n):
            acc = a[r]
            acc += x0 * WT[k, r]
            acc += x1 * WT[k + 1, r]
            acc += x2 * WT[k + 2, r]
            acc += x3 * WT[k + 3, r]
            a[r] = acc
    for k in range(K4, K):
        xk = x[k]
        for r in range(n):
            a[r] += xk * WT[k, r]


@njit(**_FAST)
def _lstm_layer_forward(x, h, c, WihT, WhhT, b_ih, b_hh, act, si):
    """SPEC 1 LSTM, one series, in place: (h, c) <- cell(x, h, c).
    act (5H): i, f, g, o, tanh(c') afterwards (what the backward reads)."""
    H = h.shape[0]
    pre = act[0:4 * H]
    for r in range(4 * H):
        pre[r] = b_ih[r] + b_hh[r]
    _axpy_rows(pre, WihT, x)
    _axpy_rows(pre, WhhT, h)
    _vsigmoid(act[0:2 * H], si)               # i, f
    _vtanh(act[2 * H:3 * H], si)              # g
    _vsigmoid(act[3 * H:4 * H], si)           # o
    i = act[0:H]
    f = act[H:2 * H]
    g = act[2 * H:3 * H]
    tc = act[4 * H:5 * H]
    for j in range(H):
        c2 = f[j] * c[j] + i[j] * g[j]        # c' = f c + i g
        c[j] = c2
        tc[j] = c2
    _vtanh(tc, si)
    o = act[3 * H:4 * H]
    for j in range(H):
        h[j] = o[j] * tc[j]                   # h' = o tanh(c')


@njit(**_FAST)
def _gru_layer_forward(x, h, WihT, WhhT, b_ih, b_hh, act, si):
    """SPEC 1 GRU, one series, in place: h <- cell(x, h).  act (6H): the
    input-side pre-activations [0, 3H) become r, z, n; [3H, 6H) holds the
    hidden-side ones, of which W_hn h + b_hn at [5H, 6H) is read by the backward."""
    H = h.shape[0]
    one = act.dtype.type(1)
    gi = act[0:3 * H]
    gh = act[3 * H:6 * H]
    for r in range(3 * H):
        gi[r] = b_ih[r]
        gh[r] = b_hh[r]
    _axpy_rows(gi, WihT, x)
    _axpy_rows(gh, WhhT, h)
    rz = act[0:2 * H]
    for j in range(2 * H):
        rz[j] = rz[j] + gh[j]                 # r, z = sigma(W_i x + b_i + W_h h + b_h)
    _vsigmoid(rz, si)
    r_ = act[0:H]
    z = act[H:2 * H]
    n = act[2 * H:3 * H]
    ghn = act[5 * H:6 * H]
    for j in range(H):
        n[j] = n[j] + r_[j] * ghn[j]          # n = tanh(W_in x + b_in + r (W_hn h + b_hn))
    _vtanh(n, si)
    for j in range(H):
        h[j] = (one - z[j]) * n[j] + z[j] * h[j]


@njit(**_FAST)
def _stack_forward(x0, st, theta, wt, offs, wt_off, cfg, acts, si):
    """One time step of the whole stack for one series, in place on st (L, S, H);
    layer k > 0 reads layer k-1's new h.  acts (L, A) receives the activations."""
    I, H, L, GH = cfg[C_I], cfg[C_H], cfg[C_L], cfg[C_G] * cfg[C_H]
    is_lstm = cfg[C_LSTM] != 0
    for k in range(L):
        if k == 0:
            x = x0
            nin = I
        else:
            x = st[k - 1, 0]
            nin = H
        WihT = _mat(wt, wt_off[k], nin, GH)
        WhhT = _mat(wt, wt_off[k] + nin * GH, H, GH)
        b_ih = theta[offs[k, 2]:offs[k, 2] + GH]
        b_hh = theta[offs[k, 3]:offs[k, 3] + GH]
        if is_lstm:
            _lstm_layer_forward(x, st[k, 0], st[k, 1], WihT, WhhT, b_ih, b_hh, acts[k], si)
        else:
            _gru_layer_forward(x, st[k, 0], WihT, WhhT, b_ih, b_hh, acts[k], si)


@njit(**_FAST)
def _head(h, theta, cfg, out_row):
    """y_hat = W_head h + b_head (SPEC 1)."""
    H, O = cfg[C_H], cfg[C_O]
    W = _mat(theta, cfg[C_HW], O, H)
    b = theta[cfg[C_HB]:cfg[C_HB] + O]
    for o in range(O):
        acc = W[o, 0] * h[0]
        for j in range(1, H):
            acc += W[o, j] * h[j]
        out_row[o] = acc + b[o]


@njit(**_FAST)
def _forward_rows(lo, hi, slots, U, state, theta, wt, offs, wt_off, cfg, acts, si, out,
                  win_len, entry, cache):
    """Rows lo:hi: advance state[slots[r]] by one step on U[r]; out[r] = y_hat.

    With the activation cache on (``cache``'s arrays have a row per slot; only
    when k1 = k2) the row's activations and new state go to the slot's cache
    row for its window position, so that the update can skip the re-run (SPEC 4
    allows reusing the forward when no update happened inside the window).
    The cache is valid while every row of the window was computed with the
    current weights version ``ver`` from a live state equal to the
    window-entry state; the re-run would compute the very same numbers with
    the very same code, so using it changes no bit."""
    L, S, H = cfg[C_L], cfg[C_S], cfg[C_H]
    c_st, c_act, c_ver, ver = cache
    use = c_ver.shape[0] > 0
    for r in range(lo, hi):
        n = slots[r]
        st = state[n]
        if use:
            w = win_len[n]
            if w == 0:                  # a window starts: is the live state its entry state?
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
            _stack_forward(U[r], st, theta, wt, offs, wt_off, cfg, c_act[n, w], si)
            c1 = c_st[n, w + 1]
            for k in range(L):
                for s_ in range(S):
                    for q in range(H):
                        c1[k, s_, q] = st[k, s_, q]
        else:
            _stack_forward(U[r], st, theta, wt, offs, wt_off, cfg, acts, si)
        _head(st[L - 1, 0], theta, cfg, out[r])


@njit(parallel=True, **_EXACT)
def _forward_rows_par(lo, hi, nb, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a, ws_i,
                      out, win_len, entry, cache):
    """_forward_rows over nb blocks of rows in parallel (block b uses scratch slot b).
    Every row's arithmetic is its own, so the blocking changes no bit."""
    R = hi - lo
    for b in prange(nb):
        r0 = lo + (R * b) // nb
        r1 = lo + (R * (b + 1)) // nb
        _forward_rows(r0, r1, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a[b, 0],
                      ws_i[b], out, win_len, entry, cache)


@njit(**_EXACT)
def forward_rows(lo, hi, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a, ws_i, out,
                 win_len, entry, cache, n_threads):
    """Rows lo:hi of one call; parallel only when the work pays for the launch."""
    R = hi - lo
    nb = min(ws_a.shape[0], R)
    work = R * cfg[C_L] * cfg[C_G] * cfg[C_H] * (cfg[C_H] + cfg[C_I])
    if nb > 1 and n_threads > 1 and work >= PAR_FORWARD_WORK:
        _forward_rows_par(lo, hi, nb, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a, ws_i,
                          out, win_len, entry, cache)
    else:
        _forward_rows(lo, hi, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a[0, 0],
                      ws_i[0], out, win_len, entry, cache)


# ---------------------------------------------------------------------------------
# backward worker: one series' window (SPEC 4)
@njit(**_FAST)
def _outer_acc_T(GT, D, X, T):
    """GT[q, r] += sum_{t < T} X[t, q] * D[t, r], t ascending: the transposed
    weight gradient (G*H long rows, so the inner loop is long).  Unrolled by
    four rows of t so each element is loaded and stored once per four FMAs;
    the FMA chain per element is the plain loop's."""
    Q, R = GT.shape
    T4 = T - T % 4
    for q in range(Q):
        for t in range(0, T4, 4):
            x0, x1, x2, x3 = X[t, q], X[t + 1, q], X[t + 2, q], X[t + 3, q]
            for r in range(R):
                g = GT[q, r]
                g += x0 * D[t, r]
                g += x1 * D[t + 1, r]
                g += x2 * D[t + 2, r]
                g += x3 * D[t + 3, r]
                GT[q, r] = g
        for t in range(T4, T):
            xt = X[t, q]
            for r in range(R):
                GT[q, r] += xt * D[t, r]


@njit(**_FAST)
def _col_sums_acc(g, D, T):
    """g[r] += sum_{t < T} D[t, r] (bias gradients)."""
    for t in range(T):
        for r in range(g.shape[0]):
            g[r] += D[t, r]


@njit(**_FAST)
def _window_backward(T, Mf, cst, cact, wu, wy, theta, offs, wt_off, cfg, vec, dA, gp):
    """Back-propagate the masked loss of the last k1 of T re-run rows through
    all T rows and add the gradient to gp (P,, kernel layout: GRAD_LAYOUT).

    cst (k2+1, L, S, H): cst[0] is the window-entry state (a constant, SPEC 4)
    and cst[t+1] the re-run state after row t; cact (k2, L, A) the re-run
    activations; wu (k2, I), wy (k2, O) the window.  dA (L, 2, k2, G*H) receives
    the pre-activation gradients of every row (input side, hidden side; the
    same for LSTM), from which the weight gradients are formed after the time
    loop as sums over t.  vec is scratch: dh (L, H) | dc (L, H) | dxv (H) | dht (H).
    """
    one = theta.dtype.type(1)
    two = one + one
    zero = one - one
    I, H, O, L, k1 = cfg[C_I], cfg[C_H], cfg[C_O], cfg[C_L], cfg[C_K1]
    is_lstm = cfg[C_LSTM] != 0
    GH = cfg[C_G] * H
    Wh = _mat(theta, cfg[C_HW], O, H)
    bh = theta[cfg[C_HB]:cfg[C_HB] + O]
    WTOT = cfg[C_WTOT]
    ghw = WTOT + 2 * L * GH
    gWh = _mat(gp, ghw, O, H)
    gbh = gp[ghw + O * H:ghw + O * H + O]
    dh = _mat(vec, 0, L, H)
    dc = _mat(vec, L * H, L, H)
    o0 = 2 * L * H
    dxv = vec[o0:o0 + H]
    dht = vec[o0 + H:o0 + 2 * H]
    hs = 1 if not is_lstm else 0       # LSTM: one pre-activation feeds both sides
    for q in range(2 * L * H):
        vec[q] = zero
    for t in range(T - 1, -1, -1):
        htop = cst[t + 1, L - 1, 0]
        for q in range(H):
            dxv[q] = zero
        if t >= T - k1:                 # loss only on the last k1 rows
            for o in range(O):
                y = wy[t, o]
                if not math.isnan(y):
                    acc = Wh[o, 0] * htop[0]
                    for j in range(1, H):
                        acc += Wh[o, j] * htop[j]
                    d = two * (acc + bh[o] - y) / Mf   # d/dyhat of (1/M) m (yhat - y)^2
                    gbh[o] += d
                    for q in range(H):
                        gWh[o, q] += d * htop[q]
                        dxv[q] += d * Wh[o, q]
        for k in range(L - 1, -1, -1):
            prev = cst[t, k]
            act = cact[t, k]
            dhk = dh[k]
            dck = dc[k]
            dai = dA[k, 0, t]
            dah = dA[k, hs, t]
            for q in range(H):
                dht[q] = dhk[q] + dxv[q]
            if is_lstm:
                ai, af, ag = act[0:H], act[H:2 * H], act[2 * H:3 * H]
                ao, atc = act[3 * H:4 * H], act[4 * H:5 * H]
                cp = prev[1]
                d_i, d_f, d_g, d_o = dai[0:H], dai[H:2 * H], dai[2 * H:3 * H], dai[3 * H:4 * H]
                for j in range(H):
                    di, df, dg, do, dcp = lstm_cell_backward(
                        dht[j], dck[j], ai[j], af[j], ag[j], ao[j], cp[j], atc[j], one)
                    d_i[j] = di
                    d_f[j] = df
                    d_g[j] = dg
                    d_o[j] = do
                    dck[j] = dcp
                for q in range(H):
                    dhk[q] = zero
            else:
                ar, az, an, aghn = act[0:H], act[H:2 * H], act[2 * H:3 * H], act[5 * H:6 * H]
                hp0 = prev[0]
                i_r, i_z, i_n = dai[0:H], dai[H:2 * H], dai[2 * H:3 * H]
                h_r, h_z, h_n = dah[0:H], dah[H:2 * H], dah[2 * H:3 * H]
                for j in range(H):
                    dar, daz, dan, dhn, dhdir = gru_cell_backward(
                        dht[j], ar[j], az[j], an[j], aghn[j], hp0[j], one)
                    i_r[j] = dar
                    i_z[j] = daz
                    i_n[j] = dan
                    h_r[j] = dar
                    h_z[j] = daz
                    h_n[j] = dhn
                    dhk[j] = dhdir             # the direct z * dh' part of dh_prev
            # into the previous step: dh_prev += W_hh^T da_h (W_hh is (GH, H) row-major)
            _axpy_rows(dhk, _mat(theta, offs[k, 1], GH, H), dah)
            # into the layer below at this step: dx = W_ih^T da
            if k > 0:
                for q in range(H):
                    dxv[q] = zero
                _axpy_rows(dxv, _mat(theta, offs[k, 0], GH, H), dai)
    # weight and bias gradients of every layer, summed over the window's rows,
    # in the kernel layout of gp (see GRAD_LAYOUT)
    for k in range(L):
        nin = I if k == 0 else H
        D_i = dA[k, 0]
        D_h = dA[k, hs]
        w0 = wt_off[k]
        if k == 0:
            _outer_acc_T(_mat(gp, w0, nin, GH), D_i, wu, T)
        else:
            _outer_acc_T(_mat(gp, w0, nin, GH), D_i, cst[1:, k - 1, 0], T)
        _outer_acc_T(_mat(gp, w0 + nin * GH, H, GH), D_h, cst[:, k, 0], T)
        b0 = WTOT + 2 * k * GH
        _col_sums_acc(gp[b0:b0 + GH], D_i, T)
        _col_sums_acc(gp[b0 + GH:b0 + 2 * GH], D_h, T)


# ---------------------------------------------------------------------------------
# the update (SPEC 4)
@njit(**_FAST)
def _update_chunk(ch, slot, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                  entry, win_u, win_y, win_len, ws, cache):
    """Chunk ch of the sorted due list, on workspace slot ``slot``: for each of
    its series re-run the window from the entry state (weights before the
    update), back-propagate into the chunk's partial gradient ws_g[slot], then
    move the window (SPEC 4: d = max(0, w + k1 - k2) oldest rows leave, the
    entry state becomes the re-run state after them).  A series whose window
    is in the activation cache (see _forward_rows) skips the re-run."""
    ws_st, ws_a, ws_vec, ws_g, ws_i, ws_da = ws
    c_st, c_act, c_ver, ver = cache
    zero = theta.dtype.type(0)
    H, L, S = cfg[C_H], cfg[C_L], cfg[C_S]
    k1, k2 = cfg[C_K1], cfg[C_K2]
    D = due.shape[0]
    j0 = ch * GRAD_CHUNK
    j1 = min(D, j0 + GRAD_CHUNK)
    gp = ws_g[slot]
    cst = ws_st[slot]
    cact = ws_a[slot]
    si = ws_i[slot]
    if M > 0:
        for p in range(gp.shape[0]):
            gp[p] = zero
    for jj in range(j0, j1):
        n = due[jj]
        T = win_len[n]
        d = max(0, T + k1 - k2)
        need_bw = M > 0 and mcnt[jj] > 0
        Tf = T if need_bw else d
        ent = entry[n]
        if c_ver.shape[0] > 0 and c_ver[n] == ver[0]:
            cst_n = c_st[n]             # the live forward already computed this window
            cact_n = c_act[n]
        else:
            cst_n = cst
            cact_n = cact
            c0 = cst[0]
            for k in range(L):
                for s in range(S):
                    for q in range(H):
                        c0[k, s, q] = ent[k, s, q]
            for t in range(Tf):
                src = cst[t]
                dst = cst[t + 1]
                for k in range(L):
                    for s in range(S):
                        for q in range(H):
                            dst[k, s, q] = src[k, s, q]
                _stack_forward(win_u[n, t], dst, theta, wt, offs, wt_off, cfg, cact[t], si)
        if need_bw:
            _window_backward(T, Mf, cst_n, cact_n, win_u[n], win_y[n], theta, offs, wt_off,
                             cfg, ws_vec[slot], ws_da[slot], gp)
        if d > 0:
            last = cst_n[d]
            for k in range(L):
                for s in range(S):
                    for q in range(H):
                        ent[k, s, q] = last[k, s, q]
            wu, wy = win_u[n], win_y[n]
            for t in range(T - d):
                for q in range(wu.shape[1]):
                    wu[t, q] = wu[t + d, q]
                for q in range(wy.shape[1]):
                    wy[t, q] = wy[t + d, q]
            nan = theta.dtype.type(np.nan)
            for t in range(T - d, k2):
                for q in range(wy.shape[1]):
                    wy[t, q] = nan
            win_len[n] = T - d


@njit(parallel=True, **_EXACT)
def _update_chunks_par(g0, g1, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                       entry, win_u, win_y, win_len, ws, cache):
    for ch in prange(g0, g1):
        _update_chunk(ch, ch - g0, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
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
def refresh_wt(theta, wt, offs, wt_off, cfg):
    """wt <- per layer [W_ih^T; W_hh^T] from theta (after every weight change)."""
    I, H, L, GH = cfg[C_I], cfg[C_H], cfg[C_L], cfg[C_G] * cfg[C_H]
    for k in range(L):
        nin = I if k == 0 else H
        w0 = wt_off[k]
        w_ih, w_hh = offs[k, 0], offs[k, 1]
        for r in range(GH):
            for q in range(nin):
                wt[w0 + q * GH + r] = theta[w_ih + r * nin + q]
        w0 += nin * GH
        for r in range(GH):
            for q in range(H):
                wt[w0 + q * GH + r] = theta[w_hh + r * H + q]


@njit(**_EXACT)
def _update(due, theta, wt, opt_m, opt_v, opt_step, hyper, grad, perm, offs, wt_off, cfg,
            entry, win_u, win_y, win_len, ws, cache, n_threads):
    """SPEC 4 for the due series ``due`` (sorted ascending): loss normaliser M,
    chunked re-run + backward + window moves, chunk sums in chunk order, then
    clipping and the optimizer step (only if M > 0)."""
    k1 = cfg[C_K1]
    D = due.shape[0]
    mcnt = np.empty(D, dtype=np.int64)
    M = 0
    for jj in range(D):
        n = due[jj]
        T = win_len[n]
        cnt = 0
        for t in range(max(0, T - k1), T):
            for o in range(win_y.shape[2]):
                if not math.isnan(win_y[n, t, o]):
                    cnt += 1
        mcnt[jj] = cnt
        M += cnt
    Mf = theta.dtype.type(M)
    zero = Mf - Mf
    P = theta.shape[0]
    if M > 0:
        for p in range(P):
            grad[p] = zero
    n_chunks = (D + GRAD_CHUNK - 1) // GRAD_CHUNK
    ws_g = ws[3]
    NB = ws_g.shape[0]
    g0 = 0
    while g0 < n_chunks:
        g1 = min(n_chunks, g0 + NB)
        if g1 - g0 > 1 and n_threads > 1:
            _update_chunks_par(g0, g1, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                               entry, win_u, win_y, win_len, ws, cache)
        else:
            for ch in range(g0, g1):
                _update_chunk(ch, ch - g0, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                              entry, win_u, win_y, win_len, ws, cache)
        if M > 0:
            for ch in range(g0, g1):           # chunk order: independent of threads and NB
                gp = ws_g[ch - g0]
                for p in range(P):
                    grad[p] += gp[perm[p]]     # kernel layout -> theta layout
        g0 = g1
    if M > 0:
        apply_update(theta, grad, opt_m, opt_v, opt_step, hyper)
        refresh_wt(theta, wt, offs, wt_off, cfg)
        cache[3][0] += 1                       # new weights: every cached window is stale


# ---------------------------------------------------------------------------------
# the driver
@njit(**_EXACT)
def step_calls(series, U, Y, offsets, theta, wt, opt_m, opt_v, opt_step, hyper, grad, perm,
               state, entry, win_u, win_y, win_len, count, offs, wt_off, cfg,
               ws, cache, out, n_threads):
    """C consecutive ``step`` calls (SPEC 3): call c steps rows offsets[c]:offsets[c+1].
    Per call: forward every row (weights before the update), append (u, y) to
    each window, then one update if any listed series is due.  ``n_threads`` is
    numba.get_num_threads() of the caller (read in Python: calling it here would
    keep the driver out of the on-disk cache); 1 keeps everything serial."""
    k1 = cfg[C_K1]
    C = offsets.shape[0] - 1
    max_rows = 0
    for c in range(C):
        max_rows = max(max_rows, offsets[c + 1] - offsets[c])
    due_buf = np.empty(max_rows, dtype=np.int64)
    for c in range(C):
        lo, hi = offsets[c], offsets[c + 1]
        forward_rows(lo, hi, series, U, state, theta, wt, offs, wt_off, cfg, ws[1], ws[4], out,
                     win_len, entry, cache, n_threads)
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
            _update(due, theta, wt, opt_m, opt_v, opt_step, hyper, grad, perm, offs, wt_off, cfg,
                    entry, win_u, win_y, win_len, ws, cache, n_threads)
