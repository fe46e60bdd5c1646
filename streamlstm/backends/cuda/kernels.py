"""Private ``@cuda.jit`` kernels of the CUDA backend (docs/spec.md sections 1, 3, 4).

Layering (stumpy): these kernels neither allocate nor check anything; the
launcher in ``cuda.py`` owns the device arrays, sizes the grids and orders the
launches; ``OnlineRNN`` (``model.py``) validates every user input before.

``build(dtype, cell, norm_lanes, rows_per_thread)`` returns, for one model
dtype and cell, each kernel as ``(python function, explicit signature)``;
``kernels(...)`` compiles them with ``cuda.jit`` (cached).  The dtype and the
cell are closure constants, so float32 models compute in float32 throughout (a
bare ``1.0`` would promote to float64) and the LSTM/GRU branches are pruned at
compile time.  The scalar cell math is ``@njit(inline="always")`` functions,
which numba.cuda compiles for the device.

Determinism.  Every output element is produced by ONE thread with a fixed
sequential loop, so no result depends on block, grid, chunk or register-block
sizes.  Gradients are
never summed with float atomics: ``grad_partial`` gives each segment of
``GRAD_SEGMENT`` due series (ascending slot order) its own partial gradient,
accumulated sequentially over (series, time step), and ``grad_accumulate`` adds
the partials in segment order.  The only atomic is the integer count M of
present targets (exact in any order).

Thread mapping of the row-tile kernels (``step_forward``, ``window_fb``): a
block takes a tile of ``rows_per_block`` series; its threads stride over the
(group of R series, hidden unit j) pairs of the tile for the matrix-vector
products (each weight loaded serves R series, accumulators in registers), and
over (series, unit j) pairs for the elementwise cell math, each pair computing
all gates of unit j (so the cell nonlinearity needs no other thread), with a
``syncthreads`` wherever a thread reads what other threads of the tile wrote
(the full h vector of a layer, the full gate-gradient vector of a unit row).
The forward reads a transposed copy ``wt`` of the recurrent weight matrices so
that neighbouring threads (neighbouring j) read neighbouring addresses; the
backward matrix-vector products read ``theta`` in its PyTorch layout for the
same reason (neighbouring threads = neighbouring input columns k).

Cached activations of the window re-run (``window_fb``), per due row c,
step t and layer l, ``cache[c, t, l, :]`` of length (S + 4) H:

    [0, H)            h' (the layer's new h)
    [H, 2H)           c' (LSTM only, S = 2)
    [S H, S H + 4H)   LSTM: pre-activations, then i f g o, then (backward) the
                      gate gradients da = d(loss)/d(pre-activation), i f g o;
                      GRU: pre-activations (r, z, W_in x + b_in, W_hn h + b_hn),
                      then r z n ghn, then (backward) dar daz dan and dan*r
                      (the n-gate gradient seen by W_hn/b_hn).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda, njit

# Columns of the parameter table (``param_table``): one row per tensor of theta.
PT_OFF, PT_KIND, PT_LAYER, PT_ROWS, PT_COLS, PT_TILE0, PT_TILES_K = range(7)
# Output tile of one ``grad_partial`` thread: TQ rows x TK columns of a tensor
# (each loaded gate gradient serves TK outputs, each loaded input TQ outputs).
TQ, TK = 4, 4
# Tensor kinds.
K_WIH, K_WHH, K_BIH, K_BHH, K_HEADW, K_HEADB = range(6)
# Entries of the float64 ``upd`` vector written by ``update_prepare``.
U_APPLY, U_COEF, U_STEP_SIZE, U_SQRT_BC2 = range(4)
N_UPD = 4

# hyper vector layout of optim.py (kept literal here: kernels are closures and
# read module constants at compile time).
from streamlstm.core.optim import (H_BETA1, H_BETA2, H_CLIP, H_EPS, H_KIND, H_LR,  # noqa: E402
                    H_MOMENTUM, H_WD, KIND_SGD)


def param_table(layout) -> np.ndarray:
    """int64 (n_tensors, 7): offset, kind, layer, rows, cols of every tensor of
    theta in packed order (biases and the head bias have cols = 1), then the
    index of its first TQ x TK gradient tile and its tiles per row of tiles;
    the last row's tile range ends at the total tile count."""
    rows = []
    kinds = {"weight_ih": K_WIH, "weight_hh": K_WHH, "bias_ih": K_BIH, "bias_hh": K_BHH}
    tile0 = 0
    for name, shape, off in layout.tensors:
        if name == "head.weight":
            kind, layer = K_HEADW, layout.n_layers - 1
        elif name == "head.bias":
            kind, layer = K_HEADB, layout.n_layers - 1
        else:
            stem, lk = name.rsplit("_l", 1)
            kind, layer = kinds[stem], int(lk)
        r = shape[0]
        c = shape[1] if len(shape) == 2 else 1
        tiles_k = -(-c // TK)
        rows.append((off, kind, layer, r, c, tile0, tiles_k))
        tile0 += -(-r // TQ) * tiles_k
    return np.array(rows, dtype=np.int64)


def n_grad_tiles(ptab) -> int:
    """Total TQ x TK gradient tiles of ``param_table`` rows."""
    last = ptab[-1]
    return int(last[PT_TILE0] + -(-last[PT_ROWS] // TQ) * last[PT_TILES_K])


def build(dtype: str, cell: str, norm_lanes: int, rows_per_thread: int) -> dict:
    """Kernels for one dtype ('float32'/'float64') and cell ('lstm'/'gru'):
    ``{name: (pyfunc, signature string)}``.  ``rows_per_thread`` (R) rows share
    each weight load in the matrix-vector products; ``rows_per_block`` passed to
    the row-tile kernels must be a multiple of R."""
    DT = {"float32": np.float32, "float64": np.float64}[dtype]
    f = {"float32": "float32", "float64": "float64"}[dtype]
    LSTM = cell == "lstm"
    G = 4 if LSTM else 3          # gates per unit
    S = 2 if LSTM else 1          # state vectors per layer
    ZERO, ONE, TWO, NAN = DT(0.0), DT(1.0), DT(2.0), DT(np.nan)
    LANES = int(norm_lanes)
    R = int(rows_per_thread)
    R4 = 4 * R
    TQK = TQ * TK

    # -- scalar math (SPEC 1), shared by the step forward and the window re-run -----
    @njit(inline="always")
    def sigmoid(a):
        # 1 / (1 + exp(-a)) as the reference; exp overflow gives inf -> 0.
        return ONE / (ONE + math.exp(-a))

    @njit(inline="always")
    def lstm_cell(a_i, a_f, a_g, a_o, c):
        """Pre-activations of unit j and its old c -> (i, f, g, o, c', h')."""
        i = sigmoid(a_i)
        fg = sigmoid(a_f)
        g = math.tanh(a_g)
        o = sigmoid(a_o)
        c2 = fg * c + i * g
        h2 = o * math.tanh(c2)
        return i, fg, g, o, c2, h2

    @njit(inline="always")
    def gru_cell(a_r, a_z, gi_n, gh_n, h):
        """r, z pre-activations (ih + hh), W_in x + b_in, W_hn h + b_hn and the old
        h of unit j -> (r, z, n, h')."""
        r = sigmoid(a_r)
        z = sigmoid(a_z)
        n = math.tanh(gi_n + r * gh_n)
        h2 = (ONE - z) * n + z * h
        return r, z, n, h2

    @njit(inline="always")
    def lstm_cell_backward(dh2, dc2, i, fg, g, o, c2, c):
        """Reference ``lstm_backward`` for unit j -> (da_i, da_f, da_g, da_o, dc_prev)."""
        tc = math.tanh(c2)
        do = dh2 * tc
        dc = dc2 + dh2 * o * (ONE - tc * tc)
        di = dc * g
        dg = dc * i
        df = dc * c
        return (di * i * (ONE - i), df * fg * (ONE - fg), dg * (ONE - g * g),
                do * o * (ONE - o), dc * fg)

    @njit(inline="always")
    def gru_cell_backward(dh2, r, z, n, ghn, h):
        """Reference ``gru_backward`` for unit j -> (dar, daz, dan, dan * r, dh2 * z)."""
        dn = dh2 * (ONE - z)
        dz = dh2 * (h - n)
        dan = dn * (ONE - n * n)
        dar = dan * ghn * r * (ONE - r)
        daz = dz * z * (ONE - z)
        return dar, daz, dan, dan * r, dh2 * z

    # -- kernels ----------------------------------------------------------------------
    def step_forward(series, s0, lo, hi, U, Y, yhat, state, wt, theta, offs, head_w, head_b,
                     win_u, win_y, win_len, count, scratch, rows_per_block, append):
        """SPEC 3 steps 1-2 for rows lo..hi-1 of one call: row r steps slot
        series[s0 + r - lo] on U[r]; yhat[r] = head(h_top) with the current
        weights; if ``append``, (U[r], Y[r]) join the slot's window and its step
        count moves.  ``state`` is updated in place.

        scratch (blocks, rows_per_block, 4H): the tile's pre-activations, because
        unit j's new h may only be written once every unit has read the old h.
        """
        L = state.shape[1]
        H = state.shape[3]
        I = U.shape[1]
        O = yhat.shape[1]
        K2 = win_u.shape[1]
        GH = G * H
        RB = rows_per_block
        NG = RB // R                  # groups of R rows: one thread per (group, unit)
        slot = cuda.local.array(R, np.int64)
        acc = cuda.local.array(R4, DT)
        tid = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        blk = cuda.blockIdx.x
        n_tiles = (hi - lo + RB - 1) // RB
        for tile in range(blk, n_tiles, cuda.gridDim.x):
            base = lo + tile * RB
            for l in range(L):
                o_ih = offs[l, 0]
                o_hh = offs[l, 1]
                o_bih = offs[l, 2]
                o_bhh = offs[l, 3]
                n_in = I if l == 0 else H
                # phase A: pre-activations of every gate of unit j (SPEC 1) for R rows
                # at once, so that each weight load serves R rows
                for p in range(tid, NG * H, nthr):
                    gq = p // H
                    j = p - gq * H
                    for rr in range(R):
                        row = base + gq * R + rr
                        slot[rr] = series[s0 + row - lo] if row < hi else -1
                    for e in range(R4):
                        acc[e] = ZERO
                    for k in range(n_in):
                        q = o_ih + k * GH + j
                        w0 = wt[q]
                        w1 = wt[q + H]
                        w2 = wt[q + 2 * H]
                        w3 = wt[q + 3 * H] if LSTM else ZERO
                        for rr in range(R):
                            n = slot[rr]
                            if n >= 0:
                                if l == 0:
                                    xv = U[base + gq * R + rr, k]
                                else:
                                    xv = state[n, l - 1, 0, k]
                                acc[rr] += xv * w0
                                acc[R + rr] += xv * w1
                                acc[2 * R + rr] += xv * w2
                                if LSTM:
                                    acc[3 * R + rr] += xv * w3
                    for rr in range(R):
                        acc[rr] += theta[o_bih + j]
                        acc[R + rr] += theta[o_bih + H + j]
                        acc[2 * R + rr] += theta[o_bih + 2 * H + j]
                        if LSTM:
                            acc[3 * R + rr] += theta[o_bih + 3 * H + j]
                    for k in range(H):
                        q = o_hh + k * GH + j
                        w0 = wt[q]
                        w1 = wt[q + H]
                        w2 = wt[q + 2 * H]
                        w3 = wt[q + 3 * H] if LSTM else ZERO
                        for rr in range(R):
                            n = slot[rr]
                            if n >= 0:
                                hv = state[n, l, 0, k]
                                acc[rr] += hv * w0
                                acc[R + rr] += hv * w1
                                if LSTM:
                                    acc[2 * R + rr] += hv * w2
                                    acc[3 * R + rr] += hv * w3
                                else:   # W_hn h + b_hn is kept apart: r multiplies it
                                    acc[3 * R + rr] += hv * w2
                    for rr in range(R):
                        acc[rr] += theta[o_bhh + j]
                        acc[R + rr] += theta[o_bhh + H + j]
                        if LSTM:
                            acc[2 * R + rr] += theta[o_bhh + 2 * H + j]
                            acc[3 * R + rr] += theta[o_bhh + 3 * H + j]
                        else:
                            acc[3 * R + rr] += theta[o_bhh + 2 * H + j]
                    for rr in range(R):
                        if slot[rr] >= 0:
                            for g in range(4):
                                scratch[blk, gq * R + rr, g * H + j] = acc[g * R + rr]
                cuda.syncthreads()
                # phase B: the cell, elementwise in unit j; the new state in place
                for p in range(tid, RB * H, nthr):
                    r = p // H
                    j = p - r * H
                    row = base + r
                    if row < hi:
                        n = series[s0 + row - lo]
                        if LSTM:
                            i_, f_, g_, o_, c2, hn = lstm_cell(
                                scratch[blk, r, j], scratch[blk, r, H + j],
                                scratch[blk, r, 2 * H + j], scratch[blk, r, 3 * H + j],
                                state[n, l, 1, j])
                            state[n, l, 1, j] = c2
                        else:
                            r_, z_, n_, hn = gru_cell(
                                scratch[blk, r, j], scratch[blk, r, H + j],
                                scratch[blk, r, 2 * H + j], scratch[blk, r, 3 * H + j],
                                state[n, l, 0, j])
                        state[n, l, 0, j] = hn
                cuda.syncthreads()
            # head: yhat = W_head h_top + b_head
            for p in range(tid, RB * O, nthr):
                r = p // O
                o = p - r * O
                row = base + r
                if row < hi:
                    n = series[s0 + row - lo]
                    yh = ZERO
                    for k in range(H):
                        yh += state[n, L - 1, 0, k] * theta[head_w + o * H + k]
                    yhat[row, o] = yh + theta[head_b + o]
            if append != 0:
                # SPEC 3 step 2: (u, y) joins the window, one thread per row (the
                # window never holds more than k2 rows: it moves every k1 <= k2 steps).
                # No other phase touches the window, so no syncthreads is needed; the
                # next tile's rows are other slots (and their scratch use starts after
                # every thread has passed this tile's last syncthreads).
                for r in range(tid, RB, nthr):
                    row = base + r
                    if row < hi:
                        n = series[s0 + row - lo]
                        w = win_len[n]
                        if w < K2:
                            for q in range(I):
                                win_u[n, w, q] = U[row, q]
                            for q in range(O):
                                win_y[n, w, q] = Y[row, q]
                            win_len[n] = w + 1
                        count[n] += 1

    def window_fb(due, dlo, n_rows, entry, win_u, win_y, win_len, wt, theta, offs, head_w,
                  head_b, cache, dy, carry, dxb, tlen, M, k1, rows_per_block):
        """SPEC 4 for due rows c = 0..n_rows-1 (slot due[dlo + c]): re-run the
        window from its entry state with the current weights, caching what the
        backward reads, then (if M > 0) back-propagate through all its steps.

        cache (C, k2, L, (S+4)H): see the module docstring.
        dy    (C, k2, O): d(loss)/d(yhat') = 2 m (yhat' - y) / M on the last k1
              steps, 0 elsewhere.
        carry (C, L, 2, H): dh and dc flowing from step t+1 into step t.
        dxb   (C, H): d(loss)/d(h') of layer l-1 at step t, from layer l.
        tlen  (C,): the row's window length T (read before the window moves).
        """
        L = entry.shape[1]
        H = entry.shape[3]
        I = win_u.shape[2]
        O = win_y.shape[2]
        K2 = win_u.shape[1]
        GH = G * H
        SH = S * H
        RB = rows_per_block
        NG = RB // R
        slot = cuda.local.array(R, np.int64)
        acc = cuda.local.array(R4, DT)
        tid = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        Mv = M[0]
        Mf = DT(Mv)
        n_tiles = (n_rows + RB - 1) // RB
        for tile in range(cuda.blockIdx.x, n_tiles, cuda.gridDim.x):
            base = tile * RB
            for r in range(tid, RB, nthr):
                c = base + r
                if c < n_rows:
                    tlen[c] = win_len[due[dlo + c]]
            cuda.syncthreads()
            # -- forward re-run, t = 0 .. T-1 -------------------------------------------
            for t in range(K2):
                for l in range(L):
                    o_ih = offs[l, 0]
                    o_hh = offs[l, 1]
                    o_bih = offs[l, 2]
                    o_bhh = offs[l, 3]
                    n_in = I if l == 0 else H
                    # phase A: pre-activations, R rows per thread (as step_forward)
                    for p in range(tid, NG * H, nthr):
                        gq = p // H
                        j = p - gq * H
                        for rr in range(R):
                            c = base + gq * R + rr
                            slot[rr] = c if (c < n_rows and t < tlen[c]) else -1
                        for e in range(R4):
                            acc[e] = ZERO
                        for k in range(n_in):
                            q = o_ih + k * GH + j
                            w0 = wt[q]
                            w1 = wt[q + H]
                            w2 = wt[q + 2 * H]
                            w3 = wt[q + 3 * H] if LSTM else ZERO
                            for rr in range(R):
                                c = slot[rr]
                                if c >= 0:
                                    if l == 0:
                                        xv = win_u[due[dlo + c], t, k]
                                    else:
                                        xv = cache[c, t, l - 1, k]
                                    acc[rr] += xv * w0
                                    acc[R + rr] += xv * w1
                                    acc[2 * R + rr] += xv * w2
                                    if LSTM:
                                        acc[3 * R + rr] += xv * w3
                        for rr in range(R):
                            acc[rr] += theta[o_bih + j]
                            acc[R + rr] += theta[o_bih + H + j]
                            acc[2 * R + rr] += theta[o_bih + 2 * H + j]
                            if LSTM:
                                acc[3 * R + rr] += theta[o_bih + 3 * H + j]
                        for k in range(H):
                            q = o_hh + k * GH + j
                            w0 = wt[q]
                            w1 = wt[q + H]
                            w2 = wt[q + 2 * H]
                            w3 = wt[q + 3 * H] if LSTM else ZERO
                            for rr in range(R):
                                c = slot[rr]
                                if c >= 0:
                                    if t == 0:
                                        hv = entry[due[dlo + c], l, 0, k]
                                    else:
                                        hv = cache[c, t - 1, l, k]
                                    acc[rr] += hv * w0
                                    acc[R + rr] += hv * w1
                                    if LSTM:
                                        acc[2 * R + rr] += hv * w2
                                        acc[3 * R + rr] += hv * w3
                                    else:   # W_hn h + b_hn is kept apart: r multiplies it
                                        acc[3 * R + rr] += hv * w2
                        for rr in range(R):
                            acc[rr] += theta[o_bhh + j]
                            acc[R + rr] += theta[o_bhh + H + j]
                            if LSTM:
                                acc[2 * R + rr] += theta[o_bhh + 2 * H + j]
                                acc[3 * R + rr] += theta[o_bhh + 3 * H + j]
                            else:
                                acc[3 * R + rr] += theta[o_bhh + 2 * H + j]
                        for rr in range(R):
                            c = slot[rr]
                            if c >= 0:
                                for g in range(4):
                                    cache[c, t, l, SH + g * H + j] = acc[g * R + rr]
                    cuda.syncthreads()
                    for p in range(tid, RB * H, nthr):   # phase B: the cell
                        r = p // H
                        j = p - r * H
                        c = base + r
                        if c < n_rows and t < tlen[c]:
                            n = due[dlo + c]
                            if LSTM:
                                if t == 0:
                                    cp = entry[n, l, 1, j]
                                else:
                                    cp = cache[c, t - 1, l, H + j]
                                i_, f_, g_, o_, c2, hn = lstm_cell(
                                    cache[c, t, l, SH + j], cache[c, t, l, SH + H + j],
                                    cache[c, t, l, SH + 2 * H + j],
                                    cache[c, t, l, SH + 3 * H + j], cp)
                                cache[c, t, l, SH + j] = i_
                                cache[c, t, l, SH + H + j] = f_
                                cache[c, t, l, SH + 2 * H + j] = g_
                                cache[c, t, l, SH + 3 * H + j] = o_
                                cache[c, t, l, H + j] = c2
                            else:
                                if t == 0:
                                    hp = entry[n, l, 0, j]
                                else:
                                    hp = cache[c, t - 1, l, j]
                                r_, z_, n_, hn = gru_cell(
                                    cache[c, t, l, SH + j], cache[c, t, l, SH + H + j],
                                    cache[c, t, l, SH + 2 * H + j],
                                    cache[c, t, l, SH + 3 * H + j], hp)
                                cache[c, t, l, SH + j] = r_
                                cache[c, t, l, SH + H + j] = z_
                                cache[c, t, l, SH + 2 * H + j] = n_
                            cache[c, t, l, j] = hn
                    cuda.syncthreads()
                # output gradient of the loss (SPEC 4) on the last k1 steps
                for p in range(tid, RB * O, nthr):
                    r = p // O
                    o = p - r * O
                    c = base + r
                    if c < n_rows:
                        T = tlen[c]
                        g = ZERO
                        if Mv > 0 and t < T and t >= T - k1:
                            yv = win_y[due[dlo + c], t, o]
                            if yv == yv:   # not NaN: the target is present
                                yh = ZERO
                                for k in range(H):
                                    yh += cache[c, t, L - 1, k] * theta[head_w + o * H + k]
                                g = TWO * (yh + theta[head_b + o] - yv) / Mf
                        dy[c, t, o] = g
            cuda.syncthreads()
            if Mv > 0:
                # -- backward, t = T-1 .. 0 (the entry state is a constant) --------------
                for p in range(tid, RB * L * 2 * H, nthr):
                    r = p // (L * 2 * H)
                    e = p - r * (L * 2 * H)
                    c = base + r
                    if c < n_rows:
                        l = e // (2 * H)
                        e2 = e - l * 2 * H
                        s = e2 // H
                        carry[c, l, s, e2 - s * H] = ZERO
                cuda.syncthreads()
                for tt in range(K2):
                    t = K2 - 1 - tt
                    for ll in range(L):
                        l = L - 1 - ll
                        # phase C: gate gradients of unit j, elementwise
                        for p in range(tid, RB * H, nthr):
                            r = p // H
                            j = p - r * H
                            c = base + r
                            if c < n_rows and t < tlen[c]:
                                n = due[dlo + c]
                                if l == L - 1:   # from the head: dy[t] @ W_head
                                    dxin = ZERO
                                    for o in range(O):
                                        dxin += dy[c, t, o] * theta[head_w + o * H + j]
                                else:            # from layer l+1 at the same step
                                    dxin = dxb[c, j]
                                dh2 = carry[c, l, 0, j] + dxin
                                if LSTM:
                                    if t == 0:
                                        cp = entry[n, l, 1, j]
                                    else:
                                        cp = cache[c, t - 1, l, H + j]
                                    da_i, da_f, da_g, da_o, dcp = lstm_cell_backward(
                                        dh2, carry[c, l, 1, j], cache[c, t, l, SH + j],
                                        cache[c, t, l, SH + H + j], cache[c, t, l, SH + 2 * H + j],
                                        cache[c, t, l, SH + 3 * H + j], cache[c, t, l, H + j], cp)
                                    cache[c, t, l, SH + j] = da_i
                                    cache[c, t, l, SH + H + j] = da_f
                                    cache[c, t, l, SH + 2 * H + j] = da_g
                                    cache[c, t, l, SH + 3 * H + j] = da_o
                                    carry[c, l, 1, j] = dcp
                                else:
                                    if t == 0:
                                        hp = entry[n, l, 0, j]
                                    else:
                                        hp = cache[c, t - 1, l, j]
                                    dar, daz, dan, danr, dhz = gru_cell_backward(
                                        dh2, cache[c, t, l, SH + j], cache[c, t, l, SH + H + j],
                                        cache[c, t, l, SH + 2 * H + j],
                                        cache[c, t, l, SH + 3 * H + j], hp)
                                    cache[c, t, l, SH + j] = dar
                                    cache[c, t, l, SH + H + j] = daz
                                    cache[c, t, l, SH + 2 * H + j] = dan
                                    cache[c, t, l, SH + 3 * H + j] = danr
                                    carry[c, l, 0, j] = dhz   # the direct term dh2 * z
                        cuda.syncthreads()
                        # phase D: dx = da @ W_ih (into layer l-1), dh = da @ W_hh (into
                        # t-1), R rows per thread: each weight load serves R rows
                        o_ih = offs[l, 0]
                        o_hh = offs[l, 1]
                        for p in range(tid, NG * H, nthr):
                            gq = p // H
                            k = p - gq * H
                            for rr in range(R):
                                c = base + gq * R + rr
                                slot[rr] = c if (c < n_rows and t < tlen[c]) else -1
                                acc[rr] = ZERO
                                acc[R + rr] = ZERO
                            for q in range(GH):
                                qd = q
                                if not LSTM and q >= 2 * H:
                                    qd = q + H         # W_hn sees dan * r
                                wi = theta[o_ih + q * H + k] if l > 0 else ZERO
                                wh = theta[o_hh + q * H + k]
                                for rr in range(R):
                                    c = slot[rr]
                                    if c >= 0:
                                        if l > 0:
                                            acc[rr] += cache[c, t, l, SH + q] * wi
                                        if t > 0:
                                            acc[R + rr] += cache[c, t, l, SH + qd] * wh
                            for rr in range(R):
                                c = slot[rr]
                                if c >= 0:
                                    if l > 0:
                                        dxb[c, k] = acc[rr]
                                    if t > 0:
                                        if LSTM:
                                            carry[c, l, 0, k] = acc[R + rr]
                                        else:
                                            carry[c, l, 0, k] = carry[c, l, 0, k] + acc[R + rr]
                        cuda.syncthreads()

    def grad_partial(due, dlo, n_rows, entry, win_u, cache, dy, tlen, ptab, n_tiles, partial,
                     M, seg):
        """partial[s, p] = d(loss)/d(theta[p]) summed over the due rows of segment
        s (rows s*seg .. s*seg+seg-1 of this chunk) and their window steps, in
        that order (SPEC 4; deterministic).  One thread computes a TQ x TK tile
        of one tensor (gate rows q x input columns k): dW[q, k] += D[q] x[k],
        with D the gate gradients of that step (dy for the head) and x the
        tensor's input at that step (1 for biases)."""
        if M[0] == 0:
            return
        dv = cuda.local.array(TQ, DT)
        xb = cuda.local.array(TK, DT)
        acc = cuda.local.array(TQK, DT)
        H = entry.shape[3]
        SH = S * H
        n_segs = (n_rows + seg - 1) // seg
        for item in range(cuda.grid(1), n_segs * n_tiles, cuda.gridsize(1)):
            sg = item // n_tiles
            tile = item - sg * n_tiles
            ti = 0       # the tensor holding the tile (a handful of rows: a linear scan)
            while ti + 1 < ptab.shape[0] and tile >= ptab[ti + 1, PT_TILE0]:
                ti += 1
            off = ptab[ti, PT_OFF]
            kind = ptab[ti, PT_KIND]
            l = ptab[ti, PT_LAYER]
            rows = ptab[ti, PT_ROWS]
            cols = ptab[ti, PT_COLS]
            tl = tile - ptab[ti, PT_TILE0]
            qt = tl // ptab[ti, PT_TILES_K]
            q0 = qt * TQ
            k0 = (tl - qt * ptab[ti, PT_TILES_K]) * TK
            hh = kind == K_WHH or kind == K_BHH
            for e in range(TQK):
                acc[e] = ZERO
            c1 = sg * seg + seg
            if c1 > n_rows:
                c1 = n_rows
            for c in range(sg * seg, c1):
                n = due[dlo + c]
                for t in range(tlen[c]):
                    for a in range(TQ):
                        q = q0 + a
                        v = ZERO
                        if q < rows:
                            if kind >= K_HEADW:
                                v = dy[c, t, q]
                            elif hh and not LSTM and q >= 2 * H:
                                v = cache[c, t, l, SH + H + q]     # W_hn / b_hn see dan * r
                            else:
                                v = cache[c, t, l, SH + q]
                        dv[a] = v
                    for b in range(TK):
                        k = k0 + b
                        v = ZERO
                        if k < cols:
                            if kind == K_WIH:
                                if l == 0:
                                    v = win_u[n, t, k]
                                else:
                                    v = cache[c, t, l - 1, k]
                            elif kind == K_WHH:
                                if t == 0:
                                    v = entry[n, l, 0, k]
                                else:
                                    v = cache[c, t - 1, l, k]
                            elif kind == K_HEADW:
                                v = cache[c, t, l, k]
                            else:
                                v = ONE                          # biases
                        xb[b] = v
                    for a in range(TQ):
                        for b in range(TK):
                            acc[a * TK + b] += dv[a] * xb[b]
            for a in range(TQ):
                for b in range(TK):
                    if q0 + a < rows and k0 + b < cols:
                        partial[sg, off + (q0 + a) * cols + k0 + b] = acc[a * TK + b]

    def grad_accumulate(partial, n_segs, grad, first, M):
        """grad (+)= partial[0] + partial[1] + ... in segment order; the first chunk
        of an update overwrites (so grad needs no zeroing launch)."""
        if M[0] == 0:
            return
        for p in range(cuda.grid(1), grad.shape[0], cuda.gridsize(1)):
            if first != 0:
                acc = partial[0, p]
                s_lo = 1
            else:
                acc = grad[p]
                s_lo = 0
            for sg in range(s_lo, n_segs):
                acc += partial[sg, p]
            grad[p] = acc

    def window_move(due, dlo, n_rows, entry, win_u, win_y, win_len, cache, tlen, k1):
        """SPEC 4: with T rows, the oldest d = max(0, T + k1 - k2) leave the window
        and the entry state becomes the re-run's state after those d rows
        (weights before the update).  Rows of win_u past the window are left as
        they were, win_y past it is NaN, as in the reference."""
        L = entry.shape[1]
        S_ = entry.shape[2]
        H = entry.shape[3]
        I = win_u.shape[2]
        O = win_y.shape[2]
        K2 = win_u.shape[1]
        E = I + O + L * S_ * H
        for item in range(cuda.grid(1), n_rows * E, cuda.gridsize(1)):
            c = item // E
            q = item - c * E
            n = due[dlo + c]
            T = tlen[c]
            d = T + k1 - K2
            if d > 0:
                if q < I:       # one thread per column: ascending copy is safe
                    for i in range(T - d):
                        win_u[n, i, q] = win_u[n, i + d, q]
                elif q < I + O:
                    o = q - I
                    for i in range(T - d):
                        win_y[n, i, o] = win_y[n, i + d, o]
                    for i in range(T - d, K2):
                        win_y[n, i, o] = NAN
                    if o == 0:
                        win_len[n] = T - d
                else:
                    e = q - I - O
                    l = e // (S_ * H)
                    e2 = e - l * S_ * H
                    s = e2 // H
                    j = e2 - s * H
                    entry[n, l, s, j] = cache[c, d - 1, l, s * H + j]

    def count_targets(due, dlo, n_due, win_y, win_len, k1, M):
        """M += present targets in the last k1 rows of every due window (integer
        atomics: exact in any order).  M is 0 on entry: ``optimizer_step`` of
        the previous update (or the backend's construction) zeroed it."""
        O = win_y.shape[2]
        for i in range(cuda.grid(1), n_due, cuda.gridsize(1)):
            n = due[dlo + i]
            T = win_len[n]
            cnt = 0
            t0 = T - k1 if T > k1 else 0
            for t in range(t0, T):
                for o in range(O):
                    yv = win_y[n, t, o]
                    if yv == yv:
                        cnt += 1
            if cnt > 0:
                cuda.atomic.add(M, 0, cnt)

    def update_prepare(grad, hyper, opt_step, upd, M):
        """One block (any size).  If M > 0: the clip coefficient
        min(1, c / (||g||_2 + 1e-6)) (clip_grad_norm_), the optimizer step count
        and torch's bias corrections, into ``upd``; else mark "no update" (SPEC 4:
        the step count does not move).  Lane k of the norm sums the squares of
        elements k, k + NORM_LANES, ... in float64, whatever the block size."""
        lanes = cuda.shared.array(LANES, np.float64)
        tid = cuda.threadIdx.x
        if M[0] == 0:
            if tid == 0:
                upd[U_APPLY] = 0.0
            return
        clip = hyper[H_CLIP]
        for lane in range(tid, LANES, cuda.blockDim.x):
            acc = 0.0
            if clip > 0.0:
                for p in range(lane, grad.shape[0], LANES):
                    g = np.float64(grad[p])
                    acc += g * g
            lanes[lane] = acc
        cuda.syncthreads()
        if tid == 0:
            tot = 0.0
            for k in range(LANES):
                tot += lanes[k]
            coef = 1.0
            if clip > 0.0:
                coef = clip / (math.sqrt(tot) + 1e-6)
                if coef > 1.0:
                    coef = 1.0
            t = opt_step[0] + 1
            opt_step[0] = t
            upd[U_APPLY] = 1.0
            upd[U_COEF] = coef
            upd[U_STEP_SIZE] = hyper[H_LR] / (1.0 - hyper[H_BETA1] ** t)
            upd[U_SQRT_BC2] = math.sqrt(1.0 - hyper[H_BETA2] ** t)

    def optimizer_step(theta, grad, opt_m, opt_v, opt_step, hyper, upd, wt, ptab, M):
        """Clip, then torch.optim.SGD / Adam on every parameter (optim.apply_update);
        the thread that writes theta[p] also writes its transposed twin in ``wt``.
        Last launch of an update: zeroes M for the next one."""
        if cuda.grid(1) == 0:
            M[0] = 0
        if upd[U_APPLY] == 0.0:
            return
        t = opt_step[0]
        clip = hyper[H_CLIP] > 0.0
        coef = DT(upd[U_COEF])
        lr = DT(hyper[H_LR])
        sgd = hyper[H_KIND] == KIND_SGD
        mom = DT(hyper[H_MOMENTUM])
        use_mom = hyper[H_MOMENTUM] != 0.0
        one_b1 = DT(1.0 - hyper[H_BETA1])
        b2 = DT(hyper[H_BETA2])
        one_b2 = DT(1.0 - hyper[H_BETA2])
        eps = DT(hyper[H_EPS])
        wd = DT(hyper[H_WD])
        use_wd = hyper[H_WD] != 0.0
        step_size = DT(upd[U_STEP_SIZE])
        sqrt_bc2 = DT(upd[U_SQRT_BC2])
        for p in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
            g = grad[p]
            if clip:
                g = g * coef
            if sgd:
                if use_mom:
                    if t == 1:
                        m = g
                    else:
                        m = opt_m[p] * mom + g
                    opt_m[p] = m
                    g = m
                theta[p] = theta[p] - lr * g
            else:
                if use_wd:
                    g = g + wd * theta[p]
                m = opt_m[p]
                m = m + one_b1 * (g - m)          # exp_avg.lerp_(grad, 1 - beta1)
                opt_m[p] = m
                v = opt_v[p] * b2 + one_b2 * g * g
                opt_v[p] = v
                denom = math.sqrt(v) / sqrt_bc2 + eps
                theta[p] = theta[p] - step_size * (m / denom)
            ti = 0
            while p >= ptab[ti, PT_OFF] + ptab[ti, PT_ROWS] * ptab[ti, PT_COLS]:
                ti += 1
            kind = ptab[ti, PT_KIND]
            if kind == K_WIH or kind == K_WHH:
                e = p - ptab[ti, PT_OFF]
                q = e // ptab[ti, PT_COLS]
                wt[ptab[ti, PT_OFF] + (e - q * ptab[ti, PT_COLS]) * ptab[ti, PT_ROWS] + q] = theta[p]

    def refresh_transposed(theta, wt, ptab):
        """wt = the recurrent weight matrices of theta, each stored transposed
        (in_k, G*H) at its own offset, read by the forward kernels (after a load;
        ``optimizer_step`` keeps it current after an update)."""
        for p in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
            ti = 0       # the tensor holding p (a handful of rows: a linear scan)
            while p >= ptab[ti, PT_OFF] + ptab[ti, PT_ROWS] * ptab[ti, PT_COLS]:
                ti += 1
            kind = ptab[ti, PT_KIND]
            if kind == K_WIH or kind == K_WHH:
                off = ptab[ti, PT_OFF]
                cols = ptab[ti, PT_COLS]
                e = p - off
                q = e // cols
                k = e - q * cols
                wt[off + k * ptab[ti, PT_ROWS] + q] = theta[p]

    def gather_rows(series, src, out):
        """out[b, :] = src[series[b], :] (2-D views of (N, L*S*H) state arrays)."""
        E = src.shape[1]
        for item in range(cuda.grid(1), series.shape[0] * E, cuda.gridsize(1)):
            b = item // E
            e = item - b * E
            out[b, e] = src[series[b], e]

    a1, a2, a3, a4 = f"{f}[::1]", f"{f}[:, ::1]", f"{f}[:, :, ::1]", f"{f}[:, :, :, ::1]"
    i1, i2, i = "int64[::1]", "int64[:, ::1]", "int64"
    d1 = "float64[::1]"

    def sig(*args):
        return "void(" + ", ".join(args) + ")"

    return {
        "step_forward": (step_forward, sig(
            i1, i, i, i, a2, a2, a2, a4, a1, a1, i2, i, i, a3, a3, i1, i1, a3, i, i)),
        "window_fb": (window_fb, sig(
            i1, i, i, a4, a3, a3, i1, a1, a1, i2, i, i, a4, a3, a4, a2, i1, i1, i, i)),
        "grad_partial": (grad_partial, sig(i1, i, i, a4, a3, a4, a3, i1, i2, i, a2, i1, i)),
        "grad_accumulate": (grad_accumulate, sig(a2, i, a1, i, i1)),
        "window_move": (window_move, sig(i1, i, i, a4, a3, a3, i1, a4, i1, i)),
        "count_targets": (count_targets, sig(i1, i, i, a3, i1, i, i1)),
        "update_prepare": (update_prepare, sig(a1, d1, i1, d1, i1)),
        "optimizer_step": (optimizer_step, sig(a1, a1, a1, a1, i1, d1, d1, a1, i2, i1)),
        "refresh_transposed": (refresh_transposed, sig(a1, a1, i2)),
        "gather_rows": (gather_rows, sig(i1, a2, a2)),
    }


@lru_cache(maxsize=None)
def kernels(dtype: str, cell: str, norm_lanes: int, rows_per_thread: int):
    """The compiled kernels for one dtype and cell, as a dict name -> kernel.

    On a GPU each kernel is compiled once, eagerly, from its explicit signature;
    under ``NUMBA_ENABLE_CUDASIM=1`` they run in Numba's simulator.
    """
    return {name: cuda.jit(signature)(fn) for name, (fn, signature) in
            build(dtype, cell, norm_lanes, rows_per_thread).items()}
