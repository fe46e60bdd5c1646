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

from ._cellmath import FASTMATH, gru_cell, gru_cell_backward, lstm_cell, lstm_cell_backward

# Due series per gradient chunk.  Part of this backend's numerical contract:
# changing it changes the last bits of every multi-series update.
GRAD_CHUNK = 8
# Multiply-adds below which a call's forward stays on the calling thread
# (launching a parallel region costs ~10 us; one series at H=32 is ~4k MACs).
PAR_FORWARD_WORK = 1 << 18

# Indices into the int64 ``cfg`` vector built by cpu.CPUBackend.
(C_I, C_H, C_O, C_L, C_G, C_S, C_LSTM, C_K1, C_K2, C_A, C_HW, C_HB, C_P) = range(13)
N_CFG = 13


# ---------------------------------------------------------------------------------
# forward workers
@njit(cache=True, fastmath=FASTMATH)
def _axpy_matvec(a, a0, wt, w0, x, ncol):
    """a[a0:a0+ncol] += W x with W^T stored row-major at wt[w0:] (len(x) x ncol)."""
    for k in range(x.shape[0]):
        xk = x[k]
        base = w0 + k * ncol
        for r in range(ncol):
            a[a0 + r] += xk * wt[base + r]


@njit(cache=True, fastmath=FASTMATH)
def _lstm_layer_forward(x, h, c, theta, wt, b_ih, b_hh, w0, act, H, one):
    """SPEC 1 LSTM, one series, in place: (h, c) <- cell(x, h, c).
    act (>= 5H) receives i, f, g, o, tanh(c') (what lstm_backward reads)."""
    GH = 4 * H
    for r in range(GH):
        act[r] = theta[b_ih + r] + theta[b_hh + r]
    _axpy_matvec(act, 0, wt, w0, x, GH)
    _axpy_matvec(act, 0, wt, w0 + x.shape[0] * GH, h, GH)
    for j in range(H):
        i, f, g, o, c2, tc, h2 = lstm_cell(act[j], act[H + j], act[2 * H + j], act[3 * H + j],
                                           c[j], one)
        act[j] = i
        act[H + j] = f
        act[2 * H + j] = g
        act[3 * H + j] = o
        act[4 * H + j] = tc
        c[j] = c2
        h[j] = h2


@njit(cache=True, fastmath=FASTMATH)
def _gru_layer_forward(x, h, theta, wt, b_ih, b_hh, w0, act, H, one):
    """SPEC 1 GRU, one series, in place: h <- cell(x, h).  act (>= 6H): the
    input-side pre-activations [0, 3H) become r, z, n; the hidden-side ones
    [3H, 6H) are scratch except W_hn h + b_hn at [5H, 6H) (gru_backward reads it)."""
    GH = 3 * H
    for r in range(GH):
        act[r] = theta[b_ih + r]
        act[GH + r] = theta[b_hh + r]
    _axpy_matvec(act, 0, wt, w0, x, GH)
    _axpy_matvec(act, GH, wt, w0 + x.shape[0] * GH, h, GH)
    for j in range(H):
        rr, z, n, h2 = gru_cell(act[j], act[H + j], act[2 * H + j],
                                act[GH + j], act[GH + H + j], act[GH + 2 * H + j], h[j], one)
        act[j] = rr
        act[H + j] = z
        act[2 * H + j] = n
        h[j] = h2


@njit(cache=True, fastmath=FASTMATH)
def _stack_forward(x0, st, theta, wt, offs, wt_off, is_lstm, H, acts, one):
    """One time step of the whole stack for one series, in place on st (L, S, H);
    layer k > 0 reads layer k-1's new h.  acts (L, A) receives the activations."""
    L = st.shape[0]
    for k in range(L):
        if k == 0:
            x = x0
        else:
            x = st[k - 1, 0]
        if is_lstm:
            _lstm_layer_forward(x, st[k, 0], st[k, 1], theta, wt, offs[k, 2], offs[k, 3],
                                wt_off[k], acts[k], H, one)
        else:
            _gru_layer_forward(x, st[k, 0], theta, wt, offs[k, 2], offs[k, 3],
                               wt_off[k], acts[k], H, one)


@njit(cache=True, fastmath=FASTMATH)
def _head(h, theta, hw, hb, out_row):
    """y_hat = W_head h + b_head (SPEC 1)."""
    H = h.shape[0]
    for o in range(out_row.shape[0]):
        acc = theta[hw + o * H] * h[0]
        for j in range(1, H):
            acc += theta[hw + o * H + j] * h[j]
        out_row[o] = acc + theta[hb + o]


@njit(cache=True, fastmath=FASTMATH)
def _forward_rows(lo, hi, slots, U, state, theta, wt, offs, wt_off, cfg, acts, out):
    """Rows lo:hi: advance state[slots[r]] by one step on U[r]; out[r] = y_hat."""
    one = theta.dtype.type(1)
    H, L, is_lstm = cfg[C_H], cfg[C_L], cfg[C_LSTM] != 0
    hw, hb = cfg[C_HW], cfg[C_HB]
    for r in range(lo, hi):
        st = state[slots[r]]
        _stack_forward(U[r], st, theta, wt, offs, wt_off, is_lstm, H, acts, one)
        _head(st[L - 1, 0], theta, hw, hb, out[r])


@njit(cache=True, parallel=True)
def _forward_rows_par(lo, hi, nb, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a, out):
    """_forward_rows over nb blocks of rows in parallel (block b uses scratch slot b).
    Every row's arithmetic is its own, so the blocking changes no bit."""
    R = hi - lo
    for b in prange(nb):
        r0 = lo + (R * b) // nb
        r1 = lo + (R * (b + 1)) // nb
        _forward_rows(r0, r1, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a[b, 0], out)


@njit(cache=True)
def forward_rows(lo, hi, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a, out, n_threads):
    """Rows lo:hi of one call; parallel only when the work pays for the launch."""
    R = hi - lo
    nb = min(ws_a.shape[0], R)
    work = R * cfg[C_L] * cfg[C_G] * cfg[C_H] * (cfg[C_H] + cfg[C_I])
    if nb > 1 and n_threads > 1 and work >= PAR_FORWARD_WORK:
        _forward_rows_par(lo, hi, nb, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a, out)
    else:
        _forward_rows(lo, hi, slots, U, state, theta, wt, offs, wt_off, cfg, ws_a[0, 0], out)


# ---------------------------------------------------------------------------------
# backward worker: one series' window (SPEC 4)
@njit(cache=True, fastmath=FASTMATH)
def _window_backward(T, k1, Mf, ent, cst, cact, wu, wy, theta, offs, cfg, vec, gp):
    """Back-propagate the masked loss of the last k1 of T re-run rows through
    all T rows and add the gradient to gp (P,).

    ent (L, S, H) window-entry state (a constant, SPEC 4); cst (k2, L, S, H) and
    cact (k2, L, A) the re-run states/activations; wu (k2, I), wy (k2, O) the
    window.  vec is scratch: dh (L*H) | dc (L*H) | dxv (H) | dht (H) | dhd (H)
    | dai (G*H) | dah (G*H).
    """
    one = theta.dtype.type(1)
    two = one + one
    zero = one - one
    H, O, L = cfg[C_H], cfg[C_O], cfg[C_L]
    is_lstm = cfg[C_LSTM] != 0
    GH = cfg[C_G] * H
    hw, hb = cfg[C_HW], cfg[C_HB]
    dh = vec[0:L * H]
    dc = vec[L * H:2 * L * H]
    o0 = 2 * L * H
    dxv = vec[o0:o0 + H]
    dht = vec[o0 + H:o0 + 2 * H]
    dhd = vec[o0 + 2 * H:o0 + 3 * H]
    dai = vec[o0 + 3 * H:o0 + 3 * H + GH]
    if is_lstm:
        dah = dai                      # LSTM: the same pre-activation feeds both sides
    else:
        dah = vec[o0 + 3 * H + GH:o0 + 3 * H + 2 * GH]
    for q in range(2 * L * H):
        vec[q] = zero
    for t in range(T - 1, -1, -1):
        htop = cst[t, L - 1, 0]
        for q in range(H):
            dxv[q] = zero
        if t >= T - k1:                 # loss only on the last k1 rows
            for o in range(O):
                y = wy[t, o]
                if not math.isnan(y):
                    acc = theta[hw + o * H] * htop[0]
                    for j in range(1, H):
                        acc += theta[hw + o * H + j] * htop[j]
                    d = two * (acc + theta[hb + o] - y) / Mf   # d/dyhat (1/M) m (yhat - y)^2
                    gp[hb + o] += d
                    row = hw + o * H
                    for q in range(H):
                        gp[row + q] += d * htop[q]
                        dxv[q] += d * theta[row + q]
        for k in range(L - 1, -1, -1):
            if k == 0:
                x = wu[t]
            else:
                x = cst[t, k - 1, 0]
            if t == 0:
                prev = ent[k]
            else:
                prev = cst[t - 1, k]
            act = cact[t, k]
            for q in range(H):
                dht[q] = dh[k * H + q] + dxv[q]
            if is_lstm:
                for j in range(H):
                    di, df, dg, do, dcp = lstm_cell_backward(
                        dht[j], dc[k * H + j], act[j], act[H + j], act[2 * H + j], act[3 * H + j],
                        prev[1, j], act[4 * H + j], one)
                    dai[j] = di
                    dai[H + j] = df
                    dai[2 * H + j] = dg
                    dai[3 * H + j] = do
                    dc[k * H + j] = dcp
                    dhd[j] = zero
            else:
                for j in range(H):
                    dar, daz, dan, dhn, dhdir = gru_cell_backward(
                        dht[j], act[j], act[H + j], act[2 * H + j], act[5 * H + j], prev[0, j], one)
                    dai[j] = dar
                    dai[H + j] = daz
                    dai[2 * H + j] = dan
                    dah[j] = dar
                    dah[H + j] = daz
                    dah[2 * H + j] = dhn
                    dhd[j] = dhdir
            w_ih, w_hh, b_ih, b_hh = offs[k, 0], offs[k, 1], offs[k, 2], offs[k, 3]
            nin = x.shape[0]
            # input side: grad W_ih += da x^T, grad b_ih += da; dx = W_ih^T da (not below layer 0)
            if k > 0:
                for q in range(H):
                    dxv[q] = zero
                for r in range(GH):
                    cr = dai[r]
                    gp[b_ih + r] += cr
                    row = w_ih + r * nin
                    for q in range(nin):
                        gp[row + q] += cr * x[q]
                        dxv[q] += cr * theta[row + q]
            else:
                for r in range(GH):
                    cr = dai[r]
                    gp[b_ih + r] += cr
                    row = w_ih + r * nin
                    for q in range(nin):
                        gp[row + q] += cr * x[q]
            # hidden side: grad W_hh += da_h h_prev^T; dh_prev = (GRU: z dh') + W_hh^T da_h
            hp = prev[0]
            for q in range(H):
                dh[k * H + q] = dhd[q]
            for r in range(GH):
                cr = dah[r]
                gp[b_hh + r] += cr
                row = w_hh + r * H
                for q in range(H):
                    gp[row + q] += cr * hp[q]
                    dh[k * H + q] += cr * theta[row + q]


# ---------------------------------------------------------------------------------
# the update (SPEC 4)
@njit(cache=True, fastmath=FASTMATH)
def _update_chunk(ch, slot, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                  entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g):
    """Chunk ch of the sorted due list, on workspace slot ``slot``: for each of
    its series re-run the window from the entry state (weights before the
    update), back-propagate into the chunk's partial gradient ws_g[slot], then
    move the window (SPEC 4: d = max(0, w + k1 - k2) oldest rows leave, the
    entry state becomes the re-run state after them)."""
    one = theta.dtype.type(1)
    zero = one - one
    H, L, is_lstm = cfg[C_H], cfg[C_L], cfg[C_LSTM] != 0
    k1, k2 = cfg[C_K1], cfg[C_K2]
    S = cfg[C_S]
    D = due.shape[0]
    j0 = ch * GRAD_CHUNK
    j1 = min(D, j0 + GRAD_CHUNK)
    gp = ws_g[slot]
    cst = ws_st[slot]
    cact = ws_a[slot]
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
        for t in range(Tf):
            src = ent if t == 0 else cst[t - 1]
            dst = cst[t]
            for k in range(L):
                for s in range(S):
                    for q in range(H):
                        dst[k, s, q] = src[k, s, q]
            _stack_forward(win_u[n, t], dst, theta, wt, offs, wt_off, is_lstm, H, cact[t], one)
        if need_bw:
            _window_backward(T, k1, Mf, ent, cst, cact, win_u[n], win_y[n], theta, offs, cfg,
                             ws_vec[slot], gp)
        if d > 0:
            last = cst[d - 1]
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


@njit(cache=True, parallel=True)
def _update_chunks_par(g0, g1, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                       entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g):
    for ch in prange(g0, g1):
        _update_chunk(ch, ch - g0, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                      entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g)


@njit(cache=True)
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


@njit(cache=True)
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
    for p in range(P):
        g = grad[p]
        if wd != 0.0:
            g = g + wd_ * theta[p]
        m = opt_m[p] + c1 * (g - opt_m[p])          # exp_avg.lerp_(grad, 1 - beta1)
        v = opt_v[p] * b2_ + c2 * g * g            # exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
        opt_m[p] = m
        opt_v[p] = v
        denom = math.sqrt(v) / sq_bc2 + eps_
        theta[p] -= step_size * (m / denom)        # param.addcdiv_(exp_avg, denom, -step_size)


@njit(cache=True)
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


@njit(cache=True)
def _update(due, theta, wt, opt_m, opt_v, opt_step, hyper, grad, offs, wt_off, cfg,
            entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g, n_threads):
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
    NB = ws_g.shape[0]
    g0 = 0
    while g0 < n_chunks:
        g1 = min(n_chunks, g0 + NB)
        if g1 - g0 > 1 and n_threads > 1:
            _update_chunks_par(g0, g1, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                               entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g)
        else:
            for ch in range(g0, g1):
                _update_chunk(ch, ch - g0, due, mcnt, M, Mf, theta, wt, offs, wt_off, cfg,
                              entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g)
        if M > 0:
            for ch in range(g0, g1):           # chunk order: independent of threads and NB
                gp = ws_g[ch - g0]
                for p in range(P):
                    grad[p] += gp[p]
        g0 = g1
    if M > 0:
        apply_update(theta, grad, opt_m, opt_v, opt_step, hyper)
        refresh_wt(theta, wt, offs, wt_off, cfg)


# ---------------------------------------------------------------------------------
# the driver
@njit(cache=True)
def step_calls(series, U, Y, offsets, theta, wt, opt_m, opt_v, opt_step, hyper, grad,
               state, entry, win_u, win_y, win_len, count, offs, wt_off, cfg,
               ws_st, ws_a, ws_vec, ws_g, out, n_threads):
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
        forward_rows(lo, hi, series, U, state, theta, wt, offs, wt_off, cfg, ws_a, out, n_threads)
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
            _update(due, theta, wt, opt_m, opt_v, opt_step, hyper, grad, offs, wt_off, cfg,
                    entry, win_u, win_y, win_len, ws_st, ws_a, ws_vec, ws_g, n_threads)
