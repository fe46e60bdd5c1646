"""The window kernels of the CUDA backend: SPEC 4 (docs/spec.md section 4) for
one chunk of due series, in launch order ``count_targets``, then per chunk
``window_forward``, ``window_backward`` (``grad.py``'s kernels follow) and
``window_move``.

Due row c of a chunk is slot ``due.slots[due.lo + c]``, c < ``due.n``.  The
re-run and its backward are row-tile kernels with the thread mapping of
``forward.py``.  Capitalised names are compile-time constants (``spec.py``).

Cached activations of the re-run, per due row c, step t and layer l,
``cache[c, t, l, :]`` of length (S + 4) H:

    [0, H)            h' (the layer's new h)
    [H, 2H)           c' (LSTM only, S = 2)
    [S H, S H + 4H)   LSTM: pre-activations, then i f g o, then (backward) the
                      gate gradients da = d(loss)/d(pre-activation), i f g o;
                      GRU: pre-activations (r, z, W_in x + b_in, W_hn h + b_hn),
                      then r z n ghn, then (backward) dar daz dan and dan*r
                      (the n-gate gradient seen by W_hn/b_hn).

The other chunk buffers: ``dy`` (C, k2, O) d(loss)/d(yhat') = 2 m (yhat' - y)
/ M on the last k1 steps, 0 elsewhere; ``carry`` (C, L, 2, H) dh and dc flowing
from step t+1 into step t; ``dxb`` (C, H) d(loss)/d(h') of layer l-1 at step t,
from layer l; ``tlen`` (C,) the row's window length T (read before the window
moves).
"""
import numpy as np
from numba import cuda

from streamlstm.backends.cuda.layers import (cell_backward, cell_forward, gate_matvec,
                                             gate_matvec_backward, head_dot)
from streamlstm.backends.cuda.spec import DT, LSTM, NAN, R, R4, S, TWO, ZERO

KERNELS = ("window_forward", "window_backward", "window_move", "count_targets")
DEVICE_FUNCTIONS = ("tile_shape", "carried", "output_gradient")


def tile_shape(entry, rows_per_block):
    """(L, H, S H, rows per tile, groups of R rows per tile) of a row-tile
    kernel over the due rows' ``entry`` states (one thread per group and unit
    in the matrix-vector products)."""
    H = entry.shape[3]
    return entry.shape[1], H, S * H, rows_per_block, rows_per_block // R


def carried(entry, cache, n, c, t, l, j):
    """State vector S-1 (c for the LSTM, h for the GRU) of unit j of layer l
    before step t of due row c (slot n): the entry state at t = 0."""
    H = entry.shape[3]
    return entry[n, l, S - 1, j] if t == 0 else cache[c, t - 1, l, (S - 1) * H + j]


def window_forward(due, entry, win, model, chunk, M, k1, rows_per_block):
    """SPEC 4, forward half: re-run each due row's window from its entry state
    with the current weights, caching what the backward reads, and its output
    gradient ``dy`` (``output_gradient``).  Runs whether or not M > 0: the
    window move reads the re-run's states."""
    L, H, SH, RB, NG = tile_shape(entry, rows_per_block)
    I = win.win_u.shape[2]
    K2 = win.win_u.shape[1]
    ix = cuda.local.array(R, np.int64)
    ih = cuda.local.array(R, np.int64)
    acc = cuda.local.array(R4, DT)
    tid = cuda.threadIdx.x
    nthr = cuda.blockDim.x
    cache = chunk.cache
    tlen = chunk.tlen
    for tile in range(cuda.blockIdx.x, (due.n + RB - 1) // RB, cuda.gridDim.x):
        base = tile * RB
        for r in range(tid, RB, nthr):
            c = base + r
            if c < due.n:
                tlen[c] = win.win_len[due.slots[due.lo + c]]
        cuda.syncthreads()
        for t in range(K2):
            for l in range(L):
                x = win.win_u[:, t, :] if l == 0 else cache[:, t, l - 1, :]
                h = entry[:, l, 0, :] if t == 0 else cache[:, t - 1, l, :]
                for p in range(tid, NG * H, nthr):      # phase A, as step_forward
                    gq = p // H
                    for rr in range(R):
                        c = base + gq * R + rr
                        n = -1
                        if c < due.n and t < tlen[c]:
                            n = due.slots[due.lo + c]
                        ix[rr] = n if l == 0 else c
                        ih[rr] = -1 if n < 0 else (n if t == 0 else c)
                    gate_matvec(cache[:, t, l, SH:], base + gq * R, x, ix, I if l == 0 else H,
                                h, ih, acc, model, l, p - gq * H)
                cuda.syncthreads()
                for p in range(tid, RB * H, nthr):      # phase B: the cell
                    r = p // H
                    j = p - r * H
                    c = base + r
                    if c < due.n and t < tlen[c]:
                        old = carried(entry, cache, due.slots[due.lo + c], c, t, l, j)
                        h2, c2 = cell_forward(cache[:, t, l, SH:], c, j, old, True)
                        if LSTM:
                            cache[c, t, l, H + j] = c2
                        cache[c, t, l, j] = h2
                cuda.syncthreads()
            output_gradient(due, win, model, chunk, M, k1, base, RB, t, tid, nthr)
        cuda.syncthreads()


def output_gradient(due, win, model, chunk, M, k1, base, RB, t, tid, nthr):
    """SPEC 4: dy[c, t, o] = 2 (yhat' - y) / M for a present target y on the
    last k1 steps of the window (M > 0), else 0, for the tile's rows from
    ``base``."""
    cache = chunk.cache
    L = cache.shape[2]
    H = cache.shape[3] // (S + 4)
    O = win.win_y.shape[2]
    for p in range(tid, RB * O, nthr):
        r = p // O
        o = p - r * O
        c = base + r
        if c < due.n:
            T = chunk.tlen[c]
            g = ZERO
            if M[0] > 0 and t < T and t >= T - k1:
                yv = win.win_y[due.slots[due.lo + c], t, o]
                if yv == yv:   # not NaN: the target is present
                    yh = head_dot(cache[:, t, L - 1, :], c, o, H, model.theta, model.head_w)
                    g = TWO * (yh + model.theta[model.head_b + o] - yv) / DT(M[0])
            chunk.dy[c, t, o] = g


def window_backward(due, entry, model, chunk, M, rows_per_block):
    """SPEC 4, backward half (if M > 0): back-propagate through all steps of
    each due row's re-run, t = T-1 .. 0 (the entry state is a constant),
    leaving the gate gradients in the cache for ``grad.grad_partial``."""
    if M[0] == 0:
        return
    L, H, SH, RB, NG = tile_shape(entry, rows_per_block)
    O = chunk.dy.shape[2]
    K2 = chunk.dy.shape[1]
    ix = cuda.local.array(R, np.int64)
    acc = cuda.local.array(R4, DT)
    tid = cuda.threadIdx.x
    nthr = cuda.blockDim.x
    cache = chunk.cache
    carry = chunk.carry
    tlen = chunk.tlen
    for tile in range(cuda.blockIdx.x, (due.n + RB - 1) // RB, cuda.gridDim.x):
        base = tile * RB
        for p in range(tid, RB * L * 2 * H, nthr):
            r = p // (L * 2 * H)
            e = p - r * (L * 2 * H)
            if base + r < due.n:
                l = e // (2 * H)
                e2 = e - l * 2 * H
                s = e2 // H
                carry[base + r, l, s, e2 - s * H] = ZERO
        cuda.syncthreads()
        for tt in range(K2):
            t = K2 - 1 - tt
            for ll in range(L):
                l = L - 1 - ll
                for p in range(tid, RB * H, nthr):      # phase C: gate gradients of unit j
                    r = p // H
                    j = p - r * H
                    c = base + r
                    if c < due.n and t < tlen[c]:
                        if l == L - 1:   # from the head: dy[t] @ W_head
                            dxin = ZERO
                            for o in range(O):
                                dxin += chunk.dy[c, t, o] * model.theta[model.head_w + o * H + j]
                        else:            # from layer l+1 at the same step
                            dxin = chunk.dxb[c, j]
                        old = carried(entry, cache, due.slots[due.lo + c], c, t, l, j)
                        carry[c, l, S - 1, j] = cell_backward(
                            cache[:, t, l, SH:], c, j, carry[c, l, 0, j] + dxin,
                            carry[c, l, 1, j] if LSTM else ZERO,
                            cache[c, t, l, H + j] if LSTM else ZERO, old)
                cuda.syncthreads()
                for p in range(tid, NG * H, nthr):      # phase D: into layer l-1 and step t-1
                    gq = p // H
                    for rr in range(R):
                        c = base + gq * R + rr
                        ix[rr] = c if (c < due.n and t < tlen[c]) else -1
                    gate_matvec_backward(cache[:, t, l, SH:], ix, chunk.dxb, carry, acc, model,
                                         l, t, p - gq * H)
                cuda.syncthreads()


def window_move(due, entry, win, chunk, k1):
    """SPEC 4: with T rows, the oldest d = max(0, T + k1 - k2) leave the window
    and the entry state becomes the re-run's state after those d rows
    (weights before the update).  Rows of win_u past the window are left as
    they were, win_y past it is NaN, as in the reference."""
    L = entry.shape[1]
    S_ = entry.shape[2]
    H = entry.shape[3]
    I = win.win_u.shape[2]
    O = win.win_y.shape[2]
    K2 = win.win_u.shape[1]
    E = I + O + L * S_ * H
    for item in range(cuda.grid(1), due.n * E, cuda.gridsize(1)):
        c = item // E
        q = item - c * E
        n = due.slots[due.lo + c]
        T = chunk.tlen[c]
        d = T + k1 - K2
        if d > 0:
            if q < I:       # one thread per column: ascending copy is safe
                for i in range(T - d):
                    win.win_u[n, i, q] = win.win_u[n, i + d, q]
            elif q < I + O:
                o = q - I
                for i in range(T - d):
                    win.win_y[n, i, o] = win.win_y[n, i + d, o]
                for i in range(T - d, K2):
                    win.win_y[n, i, o] = NAN
                if o == 0:
                    win.win_len[n] = T - d
            else:
                e = q - I - O
                l = e // (S_ * H)
                e2 = e - l * S_ * H
                s = e2 // H
                j = e2 - s * H
                entry[n, l, s, j] = chunk.cache[c, d - 1, l, s * H + j]


def count_targets(due, win, k1, M):
    """M += present targets in the last k1 rows of every due window (integer
    atomics: exact in any order).  M is 0 on entry: ``optimizer_step`` of
    the previous update (or the backend's construction) zeroed it."""
    O = win.win_y.shape[2]
    for i in range(cuda.grid(1), due.n, cuda.gridsize(1)):
        n = due.slots[due.lo + i]
        T = win.win_len[n]
        cnt = 0
        t0 = T - k1 if T > k1 else 0
        for t in range(t0, T):
            for o in range(O):
                yv = win.win_y[n, t, o]
                if yv == yv:
                    cnt += 1
        if cnt > 0:
            cuda.atomic.add(M, 0, cnt)
