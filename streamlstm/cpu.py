"""The Numba CPU backend (``backend="cpu"``): the launcher layer over the
``@njit`` kernels of ``_cpu_kernels.py`` (contract: ``backend.py``; numbers:
../shared/SPEC.md, checked against ``reference.py``).

One ``step_calls`` request - a single ``step``, a whole ``run(U, Y)`` of T steps
or a micro-batched ``step_rows`` - is ONE compiled call: the loop over calls,
rows and due series never comes back to Python.  The forward of a call runs
its rows in parallel when there is enough work; an update runs its due series
in parallel chunks.  Results do not depend on the thread count (see
``_cpu_kernels``).

The backend owns the model arrays of ``layout.ALL_ARRAYS`` plus three derived
buffers that are never saved: ``wt`` (the transposed recurrent weights, a
function of ``theta``), ``grad`` (P,) and a workspace of ``n_slots`` slots, each
with one chunk's partial gradient (P,) and one window's re-run states and
activations (k2 x L x (S*H + A)).  Per series nothing is kept beyond the SPEC
arrays, so memory is the state, the window-entry state and k2 rows of (u, y).
Not thread-safe: one model is stepped by one Python thread at a time.
"""
from __future__ import annotations

import numba
import numpy as np

from . import _cpu_kernels as K
from .errors import CheckpointError
from .layout import ALL_ARRAYS, Layout, grow_series_arrays

# Workspace slots: enough to keep every thread busy with a chunk, capped so the
# per-slot partial gradients of a very large model stay small.
_WORKSPACE_BYTES = 256 << 20
# The activation cache (k1 = k2 only) keeps each series' forward activations for
# its current window so that an update need not re-run it.  It costs
# k2 * L * (S*H + A) numbers per series, so it is only kept while all slots fit
# in this budget: many-series models keep the SPEC's lean per-series memory.
ACTIVATION_CACHE_BYTES = 32 << 20

_INT_ARRAYS = ("win_len", "count", "opt_step")


def grad_perm(layout: Layout, wt_off) -> np.ndarray:
    """perm[p] = index of theta[p] in the kernels' gradient layout
    (_cpu_kernels.GRAD_LAYOUT: transposed weight matrices, then biases, then head)."""
    L, H, GH, O = layout.n_layers, layout.hidden_size, layout.G * layout.hidden_size, \
        layout.n_outputs
    wtot = sum((layout.layer_input_size(k) + H) * GH for k in range(L))
    perm = np.empty(layout.n_params, dtype=np.int64)
    r = np.arange(GH)[:, None]
    for k in range(L):
        nin = layout.layer_input_size(k)
        w_ih, w_hh, b_ih, b_hh = (int(o) for o in layout.offsets[k])
        q = np.arange(nin)[None, :]
        perm[w_ih:w_ih + GH * nin] = (wt_off[k] + q * GH + r).ravel()
        q = np.arange(H)[None, :]
        perm[w_hh:w_hh + GH * H] = (wt_off[k] + nin * GH + q * GH + r).ravel()
        perm[b_ih:b_ih + GH] = wtot + 2 * k * GH + np.arange(GH)
        perm[b_hh:b_hh + GH] = wtot + (2 * k + 1) * GH + np.arange(GH)
    hw, hb = layout.head_offsets
    head = wtot + 2 * L * GH
    perm[hw:hw + O * H] = head + np.arange(O * H)
    perm[hb:hb + O] = head + O * H + np.arange(O)
    assert np.array_equal(np.sort(perm), np.arange(layout.n_params))
    return perm


class CPUBackend:
    """Backend contract of ``backend.py`` with Numba ``@njit`` kernels."""

    name = "cpu"

    def __init__(self, layout: Layout, k1, k2, hyper, dtype, arrays):
        self.layout, self.k1, self.k2 = layout, int(k1), int(k2)
        self.hyper = np.ascontiguousarray(hyper, dtype=np.float64)
        self.dtype = np.dtype(dtype).type
        lay = layout
        H, G, L, I = lay.hidden_size, lay.G, lay.n_layers, lay.n_inputs
        self.A = 5 * H if lay.cell == "lstm" else 6 * H
        hw, hb = lay.head_offsets
        sizes = [(lay.layer_input_size(k) + H) * G * H for k in range(L)]
        self.wt_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.wt = np.empty(int(sum(sizes)), dtype=self.dtype)
        self.cfg = np.array([I, H, lay.n_outputs, L, G, lay.S, int(lay.cell == "lstm"),
                             self.k1, self.k2, self.A, hw, hb, lay.n_params, self.wt.size],
                            dtype=np.int64)
        assert self.cfg.shape[0] == K.N_CFG
        self.offs = np.ascontiguousarray(lay.offsets, dtype=np.int64)
        self.perm = grad_perm(lay, self.wt_off)
        self.grad = np.zeros(lay.n_params, dtype=self.dtype)
        self._alloc_workspace()
        self._ver = np.zeros(1, dtype=np.int64)     # weights version (activation cache)
        self._set_arrays(arrays, copy=False)

    # -- internals ----------------------------------------------------------------------
    def _alloc_workspace(self):
        """Per-slot scratch (a slot = one chunk in flight or one block of forward
        rows): re-run states cst (k2+1, L, S, H), activations (k2, L, A), the
        backward's vectors, pre-activation gradients dA (L, 2, k2, G*H), the
        chunk's partial gradient (P,) and the exp's integer scratch (G*H,)."""
        lay, dt = self.layout, self.dtype
        L, S, H, GH = lay.n_layers, lay.S, lay.hidden_size, lay.G * lay.hidden_size
        k2, P = self.k2, lay.n_params
        n_vec = 4 * L * H
        per_slot = (P + (k2 + 1) * L * S * H + k2 * L * self.A + n_vec + 2 * L * k2 * GH + GH) \
            * np.dtype(dt).itemsize
        n_slots = max(1, min(2 * numba.config.NUMBA_NUM_THREADS, _WORKSPACE_BYTES // per_slot))
        self.ws = (
            np.zeros((n_slots, k2 + 1, L, S, H), dtype=dt),          # cst
            np.zeros((n_slots, k2, L, self.A), dtype=dt),            # activations
            np.zeros((n_slots, n_vec), dtype=dt),                    # dh | dc | dx | dh_total
            np.zeros((n_slots, P), dtype=dt),                        # chunk partial gradient
            # integer scratch of the vectorised exp (2^n in the exponent bits): same width as dt
            np.zeros((n_slots, GH), dtype=np.int64 if np.dtype(dt).itemsize == 8 else np.int32),
            np.zeros((n_slots, L, 2, k2, GH), dtype=dt),             # dA
        )

    def _set_arrays(self, arrays, copy):
        a = {}
        for k in ALL_ARRAYS:
            want = np.int64 if k in _INT_ARRAYS else self.dtype
            v = arrays[k]
            a[k] = np.array(v, dtype=want, copy=True) if copy else np.ascontiguousarray(v, dtype=want)
        # The kernels write window row win_len[n]: refuse arrays that break the
        # invariant 0 <= win_len < k2 rather than write out of bounds.
        wl = a["win_len"]
        if wl.size and (wl.min() < 0 or wl.max() >= self.k2):
            n = int(np.flatnonzero((wl < 0) | (wl >= self.k2))[0])
            raise CheckpointError(f"series slot {n} has win_len={int(wl[n])}, outside 0..{self.k2 - 1} "
                                  f"for k2={self.k2}; the arrays are corrupt or from another model")
        self.a = a
        K.refresh_wt(a["theta"], self.wt, self.offs, self.wt_off, self.cfg)
        self._ver[0] += 1
        self._alloc_cache()

    def _alloc_cache(self):
        lay, k2 = self.layout, self.k2
        L, S, H = lay.n_layers, lay.S, lay.hidden_size
        N = self.a["count"].shape[0]
        per_series = ((k2 + 1) * L * S * H + k2 * L * self.A) * np.dtype(self.dtype).itemsize
        on = self.k1 == self.k2 and N * per_series <= ACTIVATION_CACHE_BYTES
        Nc = N if on else 0
        self.cache = (np.zeros((Nc, k2 + 1, L, S, H), dtype=self.dtype),
                      np.zeros((Nc, k2, L, self.A), dtype=self.dtype),
                      np.full(Nc, -1, dtype=np.int64),
                      self._ver)
        self._no_cache = (self.cache[0][:0], self.cache[1][:0], self.cache[2][:0], self._ver)

    # -- contract -----------------------------------------------------------------------
    def step_calls(self, series, U, Y, offsets):
        a = self.a
        out = np.empty((U.shape[0], self.layout.n_outputs), dtype=self.dtype)
        K.step_calls(series, U, Y, offsets, a["theta"], self.wt, a["opt_m"], a["opt_v"],
                     a["opt_step"], self.hyper, self.grad, self.perm, a["state"], a["entry"], a["win_u"],
                     a["win_y"], a["win_len"], a["count"], self.offs, self.wt_off, self.cfg,
                     self.ws, self.cache, out, numba.get_num_threads())
        return out

    def resize(self, n_series):
        self.a.update(grow_series_arrays(self.a, self.layout, n_series, self.k2, self.dtype))
        self._alloc_cache()             # fresh cache rows are invalid: windows re-run once

    def host_arrays(self):
        return self.a

    def load_arrays(self, arrays):
        self._set_arrays(arrays, copy=True)

    def host_counts(self):
        return self.a["count"]

    def forward(self, state, U):
        new_state = np.array(state, dtype=self.dtype, copy=True, order="C")
        U = np.ascontiguousarray(U, dtype=self.dtype)
        B = U.shape[0]
        out = np.empty((B, self.layout.n_outputs), dtype=self.dtype)
        K.forward_rows(0, B, np.arange(B, dtype=np.int64), U, new_state, self.a["theta"], self.wt,
                       self.offs, self.wt_off, self.cfg, self.ws[1], self.ws[4], out,
                       self.a["win_len"], self.a["entry"], self._no_cache, numba.get_num_threads())
        return out, new_state

    def get_states(self, series):
        return self.a["state"][series]
