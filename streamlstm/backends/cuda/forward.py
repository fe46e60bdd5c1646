"""The step kernel of the CUDA backend: SPEC 3 steps 1-2 (docs/spec.md
section 3) for the rows of one call, and ``gather_rows`` for ``get_states``.

Layering (stumpy): kernels neither allocate nor check anything; ``launcher.py``
owns the device arrays, sizes the grids and orders the launches; ``OnlineRNN``
validates every input before.  Capitalised names are compile-time constants
(``spec.py``); arguments come in the bundles of ``kernels.py``.

Thread mapping (row tiles).  A block takes a tile of ``rows_per_block`` rows;
its threads stride over the (group of R rows, hidden unit j) pairs of the tile
for the gate matrix-vector products (``layers.gate_matvec``: each weight load
serves R rows) and over (row, unit j) pairs for the cell, each pair computing
all gates of unit j, so the cell nonlinearity needs no other thread.  A
``syncthreads`` stands wherever a thread reads what others wrote (the full h
vector of a layer).  Every output element is computed by one thread with a
fixed sequential loop, so no result depends on block, grid or register-block
sizes.
"""
import numpy as np
from numba import cuda

from streamlstm.backends.cuda.layers import cell_forward, gate_matvec, head_dot
from streamlstm.backends.cuda.spec import DT, LSTM, R, R4, S

KERNELS = ("step_forward", "gather_rows")
DEVICE_FUNCTIONS = ("window_append",)


def step_forward(call, state, model, win, count, scratch, rows_per_block, append):
    """SPEC 3 steps 1-2 for rows lo..hi-1 of one call (``Call``): row r steps
    slot series[s0 + r - lo] on U[r]; yhat[r] = head(h_top) with the current
    weights; if ``append``, (U[r], Y[r]) join the slot's window and its step
    count moves.  ``state`` is updated in place.

    scratch (blocks, rows_per_block, 4H): the tile's pre-activations, because
    unit j's new h may only be written once every unit has read the old h.
    """
    L = state.shape[1]
    H = state.shape[3]
    I = call.U.shape[1]
    O = call.yhat.shape[1]
    RB = rows_per_block
    NG = RB // R                  # groups of R rows: one thread per (group, unit)
    ix = cuda.local.array(R, np.int64)
    ih = cuda.local.array(R, np.int64)
    acc = cuda.local.array(R4, DT)
    tid = cuda.threadIdx.x
    nthr = cuda.blockDim.x
    blk = cuda.blockIdx.x
    pre = scratch[blk]
    n_tiles = (call.hi - call.lo + RB - 1) // RB
    for tile in range(blk, n_tiles, cuda.gridDim.x):
        base = call.lo + tile * RB
        for l in range(L):
            x = call.U if l == 0 else state[:, l - 1, 0, :]
            for p in range(tid, NG * H, nthr):      # phase A: the gate pre-activations
                gq = p // H
                for rr in range(R):
                    row = base + gq * R + rr
                    n = call.series[call.s0 + row - call.lo] if row < call.hi else -1
                    ix[rr] = row if l == 0 else n
                    ih[rr] = n
                gate_matvec(pre, gq * R, x, ix, I if l == 0 else H, state[:, l, 0, :], ih,
                            acc, model, l, p - gq * H)
            cuda.syncthreads()
            for p in range(tid, RB * H, nthr):      # phase B: the cell; the new state in place
                r = p // H
                j = p - r * H
                row = base + r
                if row < call.hi:
                    n = call.series[call.s0 + row - call.lo]
                    h2, c2 = cell_forward(pre, r, j, state[n, l, S - 1, j], False)
                    if LSTM:
                        state[n, l, 1, j] = c2
                    state[n, l, 0, j] = h2
            cuda.syncthreads()
        for p in range(tid, RB * O, nthr):          # head: yhat = W_head h_top + b_head
            r = p // O
            o = p - r * O
            row = base + r
            if row < call.hi:
                n = call.series[call.s0 + row - call.lo]
                call.yhat[row, o] = (head_dot(state[:, L - 1, 0, :], n, o, H, model.theta,
                                              model.head_w) + model.theta[model.head_b + o])
        if append != 0:
            window_append(call, base, RB, win, count, tid, nthr)


def window_append(call, base, RB, win, count, tid, nthr):
    """SPEC 3 step 2 for the tile's rows from ``base``: (U[r], Y[r]) join the
    window, one thread per row (the window never holds more than k2 rows: it
    moves every k1 <= k2 steps).  No other phase touches the window, so no
    syncthreads is needed; the next tile's rows are other slots (and their
    scratch use starts after every thread has passed this tile's last
    syncthreads)."""
    K2 = win.win_u.shape[1]
    for r in range(tid, RB, nthr):
        row = base + r
        if row < call.hi:
            n = call.series[call.s0 + row - call.lo]
            w = win.win_len[n]
            if w < K2:
                for q in range(call.U.shape[1]):
                    win.win_u[n, w, q] = call.U[row, q]
                for q in range(call.Y.shape[1]):
                    win.win_y[n, w, q] = call.Y[row, q]
                win.win_len[n] = w + 1
            count[n] += 1


def gather_rows(series, src, out):
    """out[b, :] = src[series[b], :] (2-D views of (N, L*S*H) state arrays)."""
    E = src.shape[1]
    for item in range(cuda.grid(1), series.shape[0] * E, cuda.gridsize(1)):
        b = item // E
        e = item - b * E
        out[b, e] = src[series[b], e]
