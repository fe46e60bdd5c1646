"""The gradient kernels of the CUDA backend (docs/spec.md section 4): after
``window.window_backward`` has left the gate gradients of a chunk of due rows
in its cache, ``grad_partial`` and ``grad_accumulate`` form the gradient of
every parameter.  Also the parameter table they (and ``optimizer.py``) read.

Determinism.  Gradients are never summed with float atomics: ``grad_partial``
gives each segment of ``GRAD_SEGMENT`` due rows (ascending slot order) its own
partial gradient, accumulated sequentially over (row, time step), and
``grad_accumulate`` adds the partials in segment order.  Capitalised names are
compile-time constants (``spec.py``).
"""
import numpy as np
from numba import cuda

from streamlstm.backends.cuda.spec import DT, LSTM, ONE, S, ZERO

KERNELS = ("grad_partial", "grad_accumulate")
DEVICE_FUNCTIONS = ("tile_tensor", "tile_rows", "tile_cols")

# Columns of the parameter table (``param_table``): one row per tensor of theta.
PT_OFF, PT_KIND, PT_LAYER, PT_ROWS, PT_COLS, PT_TILE0, PT_TILES_K = range(7)
# Output tile of one ``grad_partial`` thread: TQ rows x TK columns of a tensor
# (each loaded gate gradient serves TK outputs, each loaded input TQ outputs).
TQ, TK = 4, 4
TQK = TQ * TK
# Tensor kinds.
K_WIH, K_WHH, K_BIH, K_BHH, K_HEADW, K_HEADB = range(6)


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


def tile_tensor(ptab, tile):
    """The ``param_table`` row of the tensor holding gradient tile ``tile`` (a
    handful of rows: a linear scan)."""
    ti = 0
    while ti + 1 < ptab.shape[0] and tile >= ptab[ti + 1, PT_TILE0]:
        ti += 1
    return ti


def tile_rows(dv, ptab, ti, q0, chunk, c, t):
    """dv[a] = D[q0 + a]: the gradient that output row q0 + a of tensor ti sees
    at step t of due row c (the gate gradients of its layer; dy for the head),
    0 past the tensor's rows."""
    kind = ptab[ti, PT_KIND]
    l = ptab[ti, PT_LAYER]
    H = chunk.cache.shape[3] // (S + 4)
    SH = S * H
    hh = kind == K_WHH or kind == K_BHH
    for a in range(TQ):
        q = q0 + a
        v = ZERO
        if q < ptab[ti, PT_ROWS]:
            if kind >= K_HEADW:
                v = chunk.dy[c, t, q]
            elif hh and not LSTM and q >= 2 * H:
                v = chunk.cache[c, t, l, SH + H + q]     # W_hn / b_hn see dan * r
            else:
                v = chunk.cache[c, t, l, SH + q]
        dv[a] = v


def tile_cols(xb, ptab, ti, k0, chunk, entry, win_u, n, c, t):
    """xb[b] = x[k0 + b]: the input that column k0 + b of tensor ti multiplies
    at step t of due row c (slot n): the layer's input, its old h, the top h
    (head), 1 (biases); 0 past the tensor's columns."""
    kind = ptab[ti, PT_KIND]
    l = ptab[ti, PT_LAYER]
    for b in range(TK):
        k = k0 + b
        v = ZERO
        if k < ptab[ti, PT_COLS]:
            if kind == K_WIH:
                v = win_u[n, t, k] if l == 0 else chunk.cache[c, t, l - 1, k]
            elif kind == K_WHH:
                v = entry[n, l, 0, k] if t == 0 else chunk.cache[c, t - 1, l, k]
            elif kind == K_HEADW:
                v = chunk.cache[c, t, l, k]
            else:
                v = ONE                          # biases
        xb[b] = v


def grad_partial(due, entry, win_u, chunk, ptab, n_tiles, partial, M, seg):
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
    n_segs = (due.n + seg - 1) // seg
    for item in range(cuda.grid(1), n_segs * n_tiles, cuda.gridsize(1)):
        sg = item // n_tiles
        tile = item - sg * n_tiles
        ti = tile_tensor(ptab, tile)
        tl = tile - ptab[ti, PT_TILE0]
        qt = tl // ptab[ti, PT_TILES_K]
        q0 = qt * TQ
        k0 = (tl - qt * ptab[ti, PT_TILES_K]) * TK
        for e in range(TQK):
            acc[e] = ZERO
        c1 = sg * seg + seg
        if c1 > due.n:
            c1 = due.n
        for c in range(sg * seg, c1):
            n = due.slots[due.lo + c]
            for t in range(chunk.tlen[c]):
                tile_rows(dv, ptab, ti, q0, chunk, c, t)
                tile_cols(xb, ptab, ti, k0, chunk, entry, win_u, n, c, t)
                for a in range(TQ):
                    for b in range(TK):
                        acc[a * TK + b] += dv[a] * xb[b]
        off = ptab[ti, PT_OFF]
        cols = ptab[ti, PT_COLS]
        for a in range(TQ):
            for b in range(TK):
                if q0 + a < ptab[ti, PT_ROWS] and k0 + b < cols:
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
