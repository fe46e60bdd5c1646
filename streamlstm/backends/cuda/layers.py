"""Device functions of one LSTM/GRU layer, shared by the row-tile kernels
(``forward.step_forward``, ``window.window_forward`` / ``window_backward``),
in forward/backward pairs (docs/spec.md section 1; gate order as PyTorch).

* ``gate_matvec`` / ``gate_matvec_backward``: the gate matrix-vector products
  of R rows at once (register blocking: each weight loaded serves R rows).
* ``cell_forward`` / ``cell_backward``: one hidden unit's cell, by the scalar
  cell math of ``backends/cellmath.py`` (the CPU kernels' own), imported below
  and compiled for the device by ``kernels.py``.  Nothing here or in the other
  CUDA modules restates that math.
* ``head_dot``: one output of the linear head.

Each works on its arguments alone: the calling kernel passes its thread's
unit, rows and local arrays, and nothing here calls ``cuda.*``.  The
capitalised names are compile-time constants (``spec.py``).

Row views.  A kernel hands a layer its operands as 2-D views whose first index
is a row of the kernel's own numbering (a slot, a due row or a tile row), e.g.
``state[:, l, 0, :]`` (h of layer l by slot) or ``cache[:, t, l, S*H:]`` (the
4H gate values of step t by due row); ``ix`` / ``ih`` (R entries) say which row
of the input / hidden view each of the thread's R rows reads, ``ih[rr] < 0``
marking a row without work.
"""
from streamlstm.backends.cellmath import (gru_cell, gru_cell_backward, lstm_cell,
                                          lstm_cell_backward_c2)
from streamlstm.backends.cuda.spec import G, LSTM, ONE, R, R4, ZERO

DEVICE_FUNCTIONS = ("gate_accumulate", "gate_bias", "gate_matvec", "gate_matvec_backward",
                    "gates_at", "set_gates", "cell_forward", "cell_backward", "head_dot")


def gate_accumulate(acc, v, iv, ih, wt, q0, H, n, c2):
    """acc[g R + rr] += sum over k < n of v[iv[rr], k] W_g[k] for the gates g of
    one unit, whose weights sit in the transposed matrix ``wt`` at q0 + k G H +
    g H (neighbouring units = neighbouring addresses).  The third gate's products
    go to slot c2: 2, or 3 for the GRU's hidden n part."""
    GH = G * H
    for k in range(n):
        q = q0 + k * GH
        w0 = wt[q]
        w1 = wt[q + H]
        w2 = wt[q + 2 * H]
        w3 = wt[q + 3 * H] if LSTM else ZERO
        for rr in range(R):
            if ih[rr] >= 0:
                xv = v[iv[rr], k]
                acc[rr] += xv * w0
                acc[R + rr] += xv * w1
                acc[c2 * R + rr] += xv * w2
                if LSTM:
                    acc[3 * R + rr] += xv * w3


def gate_bias(acc, theta, b0, H, c2):
    """acc[g R + rr] += the bias of gate g (theta[b0 + g H]), third gate into slot c2."""
    for rr in range(R):
        acc[rr] += theta[b0]
        acc[R + rr] += theta[b0 + H]
        acc[c2 * R + rr] += theta[b0 + 2 * H]
        if LSTM:
            acc[3 * R + rr] += theta[b0 + 3 * H]


def gate_matvec(out, o0, x, ix, n_in, h, ih, acc, model, l, j):
    """SPEC 1 for unit j of layer l and R rows: out[o0 + rr, g H + j] = the
    pre-activation of gate g, W_ih x + b_ih + W_hh h + b_hh, with x = x[ix[rr],
    :n_in] and h = h[ih[rr], :H].  The GRU keeps its n gate's hidden part
    W_hn h + b_hn apart, in column 3H + j (r multiplies it), and its input
    part W_in x + b_in in 2H + j.  Sums in the order of the reference: the input
    products over k, its bias, the hidden products over k, its bias."""
    H = out.shape[1] // 4
    offs = model.offs
    hn = 2 if LSTM else 3
    for e in range(R4):
        acc[e] = ZERO
    gate_accumulate(acc, x, ix, ih, model.wt, offs[l, 0] + j, H, n_in, 2)
    gate_bias(acc, model.theta, offs[l, 2] + j, H, 2)
    gate_accumulate(acc, h, ih, ih, model.wt, offs[l, 1] + j, H, H, hn)
    gate_bias(acc, model.theta, offs[l, 3] + j, H, hn)
    for rr in range(R):
        if ih[rr] >= 0:
            for g in range(4):
                out[o0 + rr, g * H + j] = acc[g * R + rr]


def gate_matvec_backward(da, ix, dx, carry, acc, model, l, t, k):
    """The backward of ``gate_matvec`` for input column k and R rows (due row
    ix[rr], skipped if < 0) of step t: from the gate gradients da[c, :4H]
    (``cell_backward``), dx[c, k] = (da @ W_ih)[k] into layer l-1 (l > 0) and
    (da @ W_hh)[k] into carry[c, l, 0, k], the gradient w.r.t. h of step t-1
    (t > 0; the GRU adds it to the direct term already there).  Reads ``theta``
    in its PyTorch layout: neighbouring k = neighbouring addresses."""
    H = da.shape[1] // 4
    theta = model.theta
    o_ih = model.offs[l, 0]
    o_hh = model.offs[l, 1]
    for rr in range(R):
        acc[rr] = ZERO
        acc[R + rr] = ZERO
    for q in range(G * H):
        qd = q
        if not LSTM and q >= 2 * H:
            qd = q + H                   # W_hn sees dan * r
        wi = theta[o_ih + q * H + k] if l > 0 else ZERO
        wh = theta[o_hh + q * H + k]
        for rr in range(R):
            c = ix[rr]
            if c >= 0:
                if l > 0:
                    acc[rr] += da[c, q] * wi
                if t > 0:
                    acc[R + rr] += da[c, qd] * wh
    for rr in range(R):
        c = ix[rr]
        if c >= 0:
            if l > 0:
                dx[c, k] = acc[rr]
            if t > 0:
                if LSTM:
                    carry[c, l, 0, k] = acc[R + rr]
                else:
                    carry[c, l, 0, k] = carry[c, l, 0, k] + acc[R + rr]


def gates_at(a, p, j):
    """The four gate values of unit j in row p of a (rows, 4H) view."""
    H = a.shape[1] // 4
    return a[p, j], a[p, H + j], a[p, 2 * H + j], a[p, 3 * H + j]


def set_gates(a, p, j, v0, v1, v2, v3):
    """Store the four gate values of unit j in row p of a (rows, 4H) view."""
    H = a.shape[1] // 4
    a[p, j] = v0
    a[p, H + j] = v1
    a[p, 2 * H + j] = v2
    a[p, 3 * H + j] = v3


def cell_forward(pre, p, j, old, keep):
    """SPEC 1 for unit j of row p: the gate pre-activations pre[p, g H + j]
    (``gate_matvec``) and ``old``, the unit's carried state (c for the LSTM, h
    for the GRU: state vector S-1) -> (h', c'), c' = 0 for the GRU.  With
    ``keep`` the activations replace the pre-activations, as the backward reads
    them: i f g o; r z n (W_hn h + b_hn stays in column 3H + j)."""
    a0, a1, a2, a3 = gates_at(pre, p, j)
    if LSTM:
        v0, v1, v2, v3, c2, tc, h2 = lstm_cell(a0, a1, a2, a3, old, ONE)
    else:   # r and z pre-activations are whole sums already: their hidden parts are 0 here
        v0, v1, v2, h2 = gru_cell(a0, a1, a2, ZERO, ZERO, a3, old, ONE)
        v3 = a3
        c2 = ZERO
    if keep:
        set_gates(pre, p, j, v0, v1, v2, v3)
    return h2, c2


def cell_backward(act, p, j, dh2, dc2, c2, old):
    """The backward of ``cell_forward`` for unit j of row p: act[p, g H + j]
    holds its kept activations and gets the gradients w.r.t. the gate
    pre-activations (GRU: dar daz dan, then dan * r for W_hn / b_hn).  dh2, dc2:
    gradients w.r.t. h' and c'; c2 = c' (LSTM; 0 and unused for the GRU).
    Returns what flows into state vector S-1 of the previous step: dc (LSTM),
    the direct part dh2 * z of dh (GRU)."""
    v0, v1, v2, v3 = gates_at(act, p, j)
    if LSTM:
        d0, d1, d2, d3, dprev = lstm_cell_backward_c2(dh2, dc2, v0, v1, v2, v3, old, c2, ONE)
    else:
        d0, d1, d2, d3, dprev = gru_cell_backward(dh2, v0, v1, v2, v3, old, ONE)
    set_gates(act, p, j, d0, d1, d2, d3)
    return dprev


def head_dot(h, p, o, H, theta, head_w):
    """sum over k < H of h[p, k] W_head[o, k] (the caller adds the bias)."""
    yh = ZERO
    for k in range(H):
        yh += h[p, k] * theta[head_w + o * H + k]
    return yh
