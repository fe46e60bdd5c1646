"""The plain-NumPy reference backend: slow, readable, the oracle every other
backend is compared to (docs/spec.md).

Layers are ``*_forward`` / ``*_backward`` pairs with the same argument order
(llm.c style).  The forward returns a ``cache`` holding exactly what the backward
reads; shapes are given with B = rows (series) stepped together.
"""
from __future__ import annotations

import numpy as np

from streamlstm.core.layout import Layout
from streamlstm.core.optim import apply_update


def sigmoid(a):
    # 1 / (1 + exp(-a)) as torch computes it; exp overflow -> inf -> 0 is correct.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def linear(x, w):
    """x (B, in) @ w.T (in, out) computed row by row: each row's bits do not depend
    on how many rows share the call (BLAS picks size-dependent kernels), which
    keeps ``step_rows`` = one ``step`` per row bit for bit on this backend too."""
    return (x[:, None, :] * w[None, :, :]).sum(axis=-1)


# ---------------------------------------------------------------------------------
# LSTM (SPEC 1): i,f,g,o = split(W_ih x + b_ih + W_hh h + b_hh)
def lstm_forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """x (B, in), h (B, H), c (B, H) -> h' (B, H), c' (B, H), cache."""
    H = h.shape[1]
    a = linear(x, w_ih) + b_ih + linear(h, w_hh) + b_hh          # (B, 4H)
    i = sigmoid(a[:, 0 * H:1 * H])
    f = sigmoid(a[:, 1 * H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:4 * H])
    c2 = f * c + i * g
    tc = np.tanh(c2)
    h2 = o * tc
    # cache: x (B, in), h (B, H), c (B, H), i f g o (B, H) each, tanh(c') (B, H)
    return h2, c2, (x, h, c, i, f, g, o, tc)


def lstm_backward(dh2, dc2, cache, w_ih, w_hh, gw_ih, gw_hh, gb_ih, gb_hh):
    """Gradients w.r.t. h', c' -> (dx, dh, dc); parameter gradients accumulated."""
    x, h, c, i, f, g, o, tc = cache
    do = dh2 * tc
    dc = dc2 + dh2 * o * (1.0 - tc * tc)
    di, dg, df, dc_prev = dc * g, dc * i, dc * c, dc * f
    da = np.concatenate([di * i * (1.0 - i), df * f * (1.0 - f),
                         dg * (1.0 - g * g), do * o * (1.0 - o)], axis=1)   # (B, 4H)
    gw_ih += da.T @ x
    gw_hh += da.T @ h
    gb_ih += da.sum(axis=0)
    gb_hh += da.sum(axis=0)
    return da @ w_ih, da @ w_hh, dc_prev


# ---------------------------------------------------------------------------------
# GRU (SPEC 1): r, z = sigma(.), n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h' = (1-z) n + z h
def gru_forward(x, h, w_ih, w_hh, b_ih, b_hh):
    """x (B, in), h (B, H) -> h' (B, H), cache."""
    H = h.shape[1]
    gi = linear(x, w_ih) + b_ih                               # (B, 3H)
    gh = linear(h, w_hh) + b_hh                               # (B, 3H)
    r = sigmoid(gi[:, 0:H] + gh[:, 0:H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    ghn = gh[:, 2 * H:3 * H]
    n = np.tanh(gi[:, 2 * H:3 * H] + r * ghn)
    h2 = (1.0 - z) * n + z * h
    # cache: x (B, in), h (B, H), r z n (B, H) each, W_hn h + b_hn (B, H)
    return h2, (x, h, r, z, n, ghn)


def gru_backward(dh2, cache, w_ih, w_hh, gw_ih, gw_hh, gb_ih, gb_hh):
    """Gradient w.r.t. h' -> (dx, dh); parameter gradients accumulated."""
    x, h, r, z, n, ghn = cache
    dn = dh2 * (1.0 - z)
    dz = dh2 * (h - n)
    dan = dn * (1.0 - n * n)
    dar = dan * ghn * r * (1.0 - r)
    daz = dz * z * (1.0 - z)
    dgi = np.concatenate([dar, daz, dan], axis=1)       # (B, 3H)
    dgh = np.concatenate([dar, daz, dan * r], axis=1)   # (B, 3H)
    gw_ih += dgi.T @ x
    gw_hh += dgh.T @ h
    gb_ih += dgi.sum(axis=0)
    gb_hh += dgh.sum(axis=0)
    return dgi @ w_ih, dh2 * z + dgh @ w_hh


# ---------------------------------------------------------------------------------
def stack_forward(layout: Layout, W: dict, x, state):
    """One time step of the whole stack.  x (B, I), state (B, L, S, H) ->
    (h_top (B, H), new state (B, L, S, H), caches per layer)."""
    new = np.empty_like(state)
    caches = []
    for k in range(layout.n_layers):
        args = (W[f"weight_ih_l{k}"], W[f"weight_hh_l{k}"], W[f"bias_ih_l{k}"], W[f"bias_hh_l{k}"])
        if layout.cell == "lstm":
            h2, c2, cache = lstm_forward(x, state[:, k, 0], state[:, k, 1], *args)
            new[:, k, 1] = c2
        else:
            h2, cache = gru_forward(x, state[:, k, 0], *args)
        new[:, k, 0] = h2
        caches.append(cache)
        x = h2                                            # layer k+1 reads layer k's new h
    return x, new, caches


def head_forward(W, h_top):
    return linear(h_top, W["head.weight"]) + W["head.bias"]


def window_loss_and_grad(layout: Layout, theta, entry, win_u, win_y, k1):
    """Re-run one series' window from its entry state and back-propagate (SPEC 4).

    entry (L, S, H), win_u (T, I), win_y (T, O).  Returns ``(sq, m, grad_fn,
    states)``: ``sq`` the masked squared errors (T, O) of the last k1 steps
    (zeros elsewhere), ``m`` their mask, ``states[t]`` (L, S, H) the state after
    t+1 rows, and ``grad_fn(dy)`` which back-propagates the output gradients
    dy (T, O) through the whole window and returns the flat gradient (P,).
    """
    W = layout.views(theta)
    T = win_u.shape[0]
    state = entry[None].copy()
    tops, caches, states = [], [], []
    for t in range(T):
        h_top, state, c = stack_forward(layout, W, win_u[t:t + 1], state)
        tops.append(h_top)
        caches.append(c)
        states.append(state[0].copy())
    yhat = head_forward(W, np.concatenate(tops, axis=0))  # (T, O)
    m = ~np.isnan(win_y)
    m[:max(0, T - k1)] = False                            # loss only on the last k1 steps
    diff = np.where(m, yhat - np.where(m, win_y, 0.0), 0.0)

    def grad_fn(dy):
        grad = np.zeros_like(theta)
        G = layout.views(grad)
        G["head.weight"] += dy.T @ np.concatenate(tops, axis=0)
        G["head.bias"] += dy.sum(axis=0)
        L, H = layout.n_layers, layout.hidden_size
        dh = np.zeros((L, 1, H), dtype=theta.dtype)       # from step t+1 into step t
        dc = np.zeros((L, 1, H), dtype=theta.dtype)
        for t in range(T - 1, -1, -1):
            dx = dy[t:t + 1] @ W["head.weight"]           # into the top layer's h at t
            for k in range(L - 1, -1, -1):
                args = (W[f"weight_ih_l{k}"], W[f"weight_hh_l{k}"], G[f"weight_ih_l{k}"],
                        G[f"weight_hh_l{k}"], G[f"bias_ih_l{k}"], G[f"bias_hh_l{k}"])
                dh_total = dh[k] + dx
                if layout.cell == "lstm":
                    dx, dh[k], dc[k] = lstm_backward(dh_total, dc[k], caches[t][k], *args)
                else:
                    dx, dh[k] = gru_backward(dh_total, caches[t][k], *args)
        return grad

    return diff, m, grad_fn, states


class ReferenceBackend:
    """Backend contract of ``backends/__init__.py`` in plain NumPy; one Python loop per call."""

    name = "reference"

    def __init__(self, layout: Layout, k1, k2, hyper, dtype, arrays):
        self.layout, self.k1, self.k2 = layout, k1, k2
        self.hyper = np.asarray(hyper, dtype=np.float64)
        self.dtype = dtype
        self.a = arrays

    # -- contract -----------------------------------------------------------------------
    def step_calls(self, series, U, Y, offsets):
        out = np.empty((U.shape[0], self.layout.n_outputs), dtype=self.dtype)
        for c in range(offsets.shape[0] - 1):
            lo, hi = offsets[c], offsets[c + 1]
            out[lo:hi] = self._step(series[lo:hi], U[lo:hi], Y[lo:hi])
        return out

    def resize(self, n_series):
        from streamlstm.core.layout import grow_series_arrays
        grown = grow_series_arrays(self.a, self.layout, n_series, self.k2, self.dtype)
        self.a.update(grown)

    def host_arrays(self):
        return self.a

    def load_arrays(self, arrays):
        self.a = {k: np.array(v, copy=True) for k, v in arrays.items()}

    def host_counts(self):
        return self.a["count"]

    def forward(self, state, U):
        W = self.layout.views(self.a["theta"])
        h_top, new_state, _ = stack_forward(self.layout, W, U, state)
        return head_forward(W, h_top), new_state

    def forward_live(self, series, U):
        return self.forward(self.get_states(series), U)[0]

    def get_states(self, series):
        return self.a["state"][series].copy()

    # -- one call (SPEC 3) ----------------------------------------------------------------
    def _step(self, idx, u, y):
        a, lay = self.a, self.layout
        W = lay.views(a["theta"])
        # 1. advance each listed series one cell step; yhat = head(h_top)
        h_top, new_state, _ = stack_forward(lay, W, u, a["state"][idx])
        a["state"][idx] = new_state
        yhat = head_forward(W, h_top)
        # 2. append (u, y) to each window; the series' own step count moves
        for j, n in enumerate(idx):
            w = a["win_len"][n]
            a["win_u"][n, w] = u[j]
            a["win_y"][n, w] = y[j]
            a["win_len"][n] = w + 1
            a["count"][n] += 1
        # 3. one update if any listed series is due
        due = np.sort(idx[a["count"][idx] % self.k1 == 0])
        if due.size:
            self._update(due)
        return yhat

    def _update(self, due):
        """SPEC 4: loss over the last k1 steps of every due series' window, exact
        gradient through the whole window, then every due window moves."""
        a, lay = self.a, self.layout
        theta = a["theta"]
        runs = []
        M = 0
        for n in due:
            T = a["win_len"][n]
            diff, m, grad_fn, states = window_loss_and_grad(
                lay, theta, a["entry"][n], a["win_u"][n, :T], a["win_y"][n, :T], self.k1)
            M += int(m.sum())
            runs.append((n, T, diff, grad_fn, states))
        # Move every due window (weights before the update), whether or not M = 0.
        moves = []
        for n, T, diff, grad_fn, states in runs:
            d = max(0, T + self.k1 - self.k2)
            if d > 0:
                moves.append((n, T, d, states[d - 1]))
        if M > 0:
            grad = np.zeros_like(theta)
            for n, T, diff, grad_fn, states in runs:      # ascending slot order
                grad += grad_fn(2.0 * diff / theta.dtype.type(M))   # d/dyhat of (1/M) sum m (yhat-y)^2
            apply_update(theta, grad, a["opt_m"], a["opt_v"], a["opt_step"], self.hyper)
        for n, T, d, entry_state in moves:
            a["win_u"][n, :T - d] = a["win_u"][n, d:T].copy()
            a["win_y"][n, :T - d] = a["win_y"][n, d:T].copy()
            a["win_y"][n, T - d:] = np.nan
            a["win_len"][n] = T - d
            a["entry"][n] = entry_state
