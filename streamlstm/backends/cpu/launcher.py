"""The Numba CPU backend (``backend="cpu"``): the launcher layer over the
``@njit`` kernels (kernels.py is their driver; contract: backends/__init__.py;
numbers: docs/spec.md, checked against ``reference.py``).

One ``step_calls`` request - a single ``step``, a whole ``run(U, Y)`` of T steps
or a micro-batched ``step_rows`` - is ONE compiled call: the loop over calls,
rows and due series never comes back to Python.  The forward of a call runs
its rows four at a time (sharing every weight load) and in parallel blocks
when there is enough work; an update deals its due series, in chunks, to a
fixed number of gradient lanes run in parallel;
a whole k1 = k2 window of lockstep calls (what ``run`` passes) is computed
series-major, forward and backward while hot, without the re-run.  Results do
not depend on the thread count nor on which of these paths ran (see
config.py).

The kernels are cached on disk by ``backends.cache.cached_njit``, whose cache
entries are stamped with all backend sources: after any edit every kernel is
compiled afresh once (a few minutes), and nothing stale can load.

The weights and optimizer moments live in the kernels' layout (``kp``, ``km``,
``kv``: ``theta``, ``opt_m``, ``opt_v`` with every W^T row padded to a SIMD
multiple); ``host_arrays()`` converts them to PyTorch's layout when they are
read.  Besides these the backend owns buffers that are never saved: ``grad``,
a workspace of one slot per gradient lane (the lane's partial gradient and
four windows' re-run states and activations) and, for small models with
k1 = k2, the activation cache.  Per series nothing is kept
beyond the SPEC arrays once the cache is off, so memory is the state, the
window-entry state and k2 rows of (u, y).  Not thread-safe: one model is
stepped by one Python thread at a time.
"""
from __future__ import annotations

import numba
import numpy as np

from streamlstm.backends.cpu.config import GRAD_LANES, N_CFG
from streamlstm.backends.cpu.forward import forward_rows
from streamlstm.backends.cache import is_cached
from streamlstm.backends.cpu.update import update_due
from streamlstm.backends.cpu import arena, kernels
from streamlstm.errors import CheckpointError
from streamlstm.core.layout import ALL_ARRAYS, INDEX_DTYPE, INT_ARRAYS, Layout, grow_series_arrays

# Workspace slots = gradient lanes (config.GRAD_LANES, fewer for models so
# large that their partial gradients would pass this budget).  A function of
# the model alone - never of the thread count - since it fixes how an
# update's gradient is summed.
_WORKSPACE_BYTES = 256 << 20
# The activation cache (k1 = k2 only) keeps each series' forward activations for
# its current window so that an update need not re-run it.  It costs
# k2 * L * (S*H + A) numbers per series and only pays while it stays in the
# core's caches: measured (LSTM H=32 float32) ~25% faster for 1-16 series, but
# ~25% slower at 10,000 series, where re-running the window from the hot
# workspace beats streaming the cache through memory.  So it is kept only
# while all slots fit in this budget; many-series models keep the SPEC's lean
# per-series memory.
ACTIVATION_CACHE_BYTES = 2 << 20



def simd_lanes(dtype) -> int:
    """Numbers per 512-bit SIMD vector of the kernels (simd.py)."""
    return 512 // (8 * np.dtype(dtype).itemsize)


def kernel_layout(layout: Layout, dtype):
    """The kernels' weight layout (see config.py): returns
    ``(koff (L, 2) int64 [matrix offset, bias offset], head offset, size,
    GHp, perm)`` where ``perm[p]`` is the kernel-layout index of ``theta[p]``
    and every W^T row is zero-padded from G*H to GHp numbers."""
    L, H, O = layout.n_layers, layout.hidden_size, layout.n_outputs
    GH = layout.G * H
    VL = simd_lanes(dtype)
    GHp = -(-GH // VL) * VL
    koff = np.zeros((L, 2), dtype=np.int64)
    off = 0
    for k in range(L):
        koff[k, 0] = off
        off += (layout.layer_input_size(k) + H) * GHp
    for k in range(L):
        koff[k, 1] = off
        off += 2 * GHp
    ho = off
    size = ho + O * H + O
    perm = np.empty(layout.n_params, dtype=np.int64)
    r = np.arange(GH)[:, None]
    for k in range(L):
        nin = layout.layer_input_size(k)
        w_ih, w_hh, b_ih, b_hh = (int(o) for o in layout.offsets[k])
        mo, bo = int(koff[k, 0]), int(koff[k, 1])
        perm[w_ih:w_ih + GH * nin] = (mo + np.arange(nin)[None, :] * GHp + r).ravel()
        perm[w_hh:w_hh + GH * H] = (mo + (nin + np.arange(H)[None, :]) * GHp + r).ravel()
        perm[b_ih:b_ih + GH] = bo + np.arange(GH)
        perm[b_hh:b_hh + GH] = bo + GHp + np.arange(GH)
    hw, hb = layout.head_offsets
    perm[hw:hw + O * H] = ho + np.arange(O * H)
    perm[hb:hb + O] = ho + O * H + np.arange(O)
    assert np.unique(perm).size == perm.size and perm.max() < size
    return koff, ho, size, GHp, perm


#: The kernels' compile-time switches (kernels.step_calls), by the rows a call
#: has: calls of at most SMALL_ROWS rows never fill a block of four series, so
#: they take rows one at a time (``quad`` None) - what a one-series stream needs,
#: about half the code of a first run (bench/compile_time.py); calls of fewer
#: than PARALLEL_ROWS rows run serially (``n_threads`` None: no parallel launcher
#: compiled - a parallel region costs ~10 us to launch, and each launcher
#: compiles its whole subtree again); larger calls get the thread count.
SMALL_ROWS = 3
PARALLEL_ROWS = 64


def _modes(rows):
    """(n_threads, quad) for kernel calls of at most ``rows`` rows per call (see
    SMALL_ROWS).  A small call skips ``numba.get_num_threads()`` (about 1 us: it
    takes a lock) on the one-row path a stream calls per arrival.  Results never
    depend on the thread count nor on the switches (docs/spec.md section 6;
    tests/test_cpu_backend.py)."""
    if rows <= SMALL_ROWS:
        return None, None
    if rows < PARALLEL_ROWS:
        return None, True
    n = numba.get_num_threads()
    return (None if n == 1 else n), True


class CPUBackend:
    """Backend contract of backends/__init__.py with Numba ``@njit`` kernels."""

    name = "cpu"

    def __init__(self, layout: Layout, k1, k2, hyper, dtype, arrays):
        self.layout, self.k1, self.k2 = layout, int(k1), int(k2)
        self._fuse = True if self.k1 == self.k2 else None
        self._rows = {}         # B -> arange(B), the row slots of a forecast's forward
        self.hyper = np.ascontiguousarray(hyper, dtype=np.float64)
        self.dtype = np.dtype(dtype).type
        lay = layout
        H = lay.hidden_size
        self.koff, ho, size, self.GHp, self.perm = kernel_layout(lay, self.dtype)
        self.A = self.GHp + H if lay.cell == "lstm" else 2 * self.GHp
        self.kp = np.zeros(size, dtype=self.dtype)      # theta, kernel layout
        self.km = np.zeros(size, dtype=self.dtype)      # opt_m
        self.kv = np.zeros(size, dtype=self.dtype)      # opt_v
        self.cfg = np.array([lay.n_inputs, H, lay.n_outputs, lay.n_layers, lay.G, lay.S,
                             int(lay.cell == "lstm"), self.k1, self.k2, self.A, ho,
                             lay.n_params, self.GHp, size], dtype=np.int64)
        assert self.cfg.shape[0] == N_CFG
        self.grad = np.zeros(size, dtype=self.dtype)
        self._alloc_workspace()
        self._ver = np.zeros(1, dtype=np.int64)     # weights version (activation cache)
        # rows stepped, rows re-run by updates, rows computed in fused windows (for
        # benchmarks and curiosity; not saved)
        self.stats = np.zeros(3, dtype=np.int64)
        self._set_arrays(arrays, copy=False)
        self._pack()

    # -- internals ----------------------------------------------------------------------
    def _alloc_workspace(self):
        """Per-slot scratch (a slot = one gradient lane, or one block of forward
        rows): four windows' re-run states (k2+1, L, S, H) and activations
        (k2, L, A), the backward's vectors, pre-activation gradients dA
        (L, 2, k2*GHp), the lane's partial gradient (kernel layout) and four
        rows of forward activations."""
        lay, dt = self.layout, self.dtype
        L, S, H, GHp, k2 = lay.n_layers, lay.S, lay.hidden_size, self.GHp, self.k2
        KP = self.kp.size
        n_vec = 2 * L * H + H + lay.n_outputs * (H + 1)
        per_slot = (KP + 4 * (k2 + 1) * L * S * H + 4 * k2 * L * self.A + n_vec
                    + 2 * L * k2 * GHp + 4 * L * self.A) * np.dtype(dt).itemsize
        n_slots = max(1, min(GRAD_LANES, _WORKSPACE_BYTES // per_slot))
        self.ws = (
            np.zeros((n_slots, 4, k2 + 1, L, S, H), dtype=dt),       # re-run states
            np.zeros((n_slots, 4, k2, L, self.A), dtype=dt),         # re-run activations
            np.zeros((n_slots, n_vec), dtype=dt),                    # backward vectors
            np.zeros((n_slots, KP), dtype=dt),                       # lane partial gradient
            np.zeros((n_slots, L, 2, k2 * GHp), dtype=dt),           # dA (pads stay 0)
            np.zeros((n_slots, 4, L, self.A), dtype=dt),             # forward activations
        )

    def _set_arrays(self, arrays, copy):
        a = {}
        for k in ALL_ARRAYS:
            want = INDEX_DTYPE if k in INT_ARRAYS else self.dtype
            v = arrays[k]
            a[k] = np.array(v, dtype=want, copy=True) if copy else np.ascontiguousarray(v, dtype=want)
        # The kernels write window row win_len[n]: refuse arrays that break the
        # invariant 0 <= win_len < k2 rather than write out of bounds.
        wl = a["win_len"]
        if wl.size and (wl.min() < 0 or wl.max() >= self.k2):
            n = int(np.flatnonzero((wl < 0) | (wl >= self.k2))[0])
            raise CheckpointError(f"series slot {n} has win_len={int(wl[n])}, outside 0..{self.k2 - 1} "
                                  f"for k2={self.k2}; the arrays are corrupt or from another model")
        for name, k_arr in (("theta", self.kp), ("opt_m", self.km), ("opt_v", self.kv)):
            k_arr[self.perm] = a.pop(name)         # padding stays 0
        self.a = a
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

    def _pack(self):
        """Move every array the kernels keep into the two arenas (arena.py) and
        point this backend's names at their views there: the same shapes and
        values, but a kernel call passes ``F`` and ``I`` instead of each array.
        Called after anything that allocates (construction, resize, load)."""
        a = self.a
        floats = dict(kp=self.kp, km=self.km, kv=self.kv, grad=self.grad, state=a["state"],
                      entry=a["entry"], win_u=a["win_u"], win_y=a["win_y"],
                      c_st=self.cache[0], c_act=self.cache[1], c_st0=self.cache[0][:0],
                      c_act0=self.cache[1][:0],
                      **{f"ws{i}": w for i, w in enumerate(self.ws)})
        ints = dict(opt_step=a["opt_step"], win_len=a["win_len"], count=a["count"],
                    koff=self.koff, cfg=self.cfg, c_ver=self.cache[2], ver=self._ver,
                    stats=self.stats, c_ver0=self.cache[2][:0])
        self.F, self.I, v = arena.pack(floats, ints, self.dtype)
        self.kp, self.km, self.kv, self.grad = v["kp"], v["km"], v["kv"], v["grad"]
        for k in ("state", "entry", "win_u", "win_y", "opt_step", "win_len", "count"):
            a[k] = v[k]
        self.koff, self.cfg, self._ver, self.stats = v["koff"], v["cfg"], v["ver"], v["stats"]
        self.ws = tuple(v[f"ws{i}"] for i in range(len(self.ws)))
        self.cache = (v["c_st"], v["c_act"], v["c_ver"], self._ver)
        # kernel_args(), asked for on every one-row call: made here, where the arenas are
        self._kernel_args = (self.F, self.I, self.hyper, self._fuse, a["state"])

    # -- contract -----------------------------------------------------------------------
    def step_calls(self, series, U, Y, offsets):
        R = U.shape[0]
        out = np.empty((R, self.layout.n_outputs), dtype=self.dtype)
        # a call lists distinct slots: at most n_series rows each
        if R <= SMALL_ROWS:             # the one-row path a stream calls: no call here
            n_threads = quad = None
        else:
            n_threads, quad = _modes(min(R, self.a["count"].shape[0]))
        kernels.step_calls(series, U, Y, offsets, out, self.F, self.I, self.hyper,
                           n_threads, self._fuse, quad)
        return out

    def driver_signatures(self, rows):
        """``[(update_due, types), (kernels.step_calls, types)]``: the functions
        calls of ``rows`` rows compile - the update, then the driver around it -
        each with the argument types those calls pass it."""
        if rows <= SMALL_ROWS:
            n_threads = quad = None
        else:
            n_threads, quad = _modes(min(rows, self.a["count"].shape[0]))
        a, lay, dt = self.a, self.layout, self.dtype
        update = (np.empty(0, dtype=np.int64), self.kp, self.km, self.kv, a["opt_step"],
                  self.hyper, self.grad, self.koff, self.cfg, a["entry"], a["win_u"],
                  a["win_y"], a["win_len"], self.ws, self.cache, self.stats, n_threads, quad)
        rows_ = np.empty(0, dtype=np.int64)
        U, Y = np.empty((0, lay.n_inputs), dt), np.empty((0, lay.n_outputs), dt)
        driver = (rows_, U, Y, rows_, Y, self.F, self.I, self.hyper, n_threads, self._fuse, quad)
        return [(update_due, tuple(numba.typeof(x) for x in update)),
                (kernels.step_calls, tuple(numba.typeof(x) for x in driver))]

    def compile_driver(self, rows, driver=True):
        """Compile (or load from the cache) ``driver_signatures(rows)``, in order
        (the driver with the forward too, if another process has not saved it
        meanwhile), or with ``driver`` False only the update; nothing runs.  On a
        first run forecast/warm.py has a second process do this while the first
        compiles the rest."""
        for dispatcher, types in self.driver_signatures(rows)[:None if driver else 1]:
            dispatcher.compile(types)

    def driver_ready(self, rows, driver=True):
        """Whether the driver for calls of ``rows`` rows (or, ``driver`` False, only
        the update it calls) is compiled in this process or saved in Numba's cache
        (from today's sources); compiles and loads nothing."""
        dispatcher, types = self.driver_signatures(rows)[-1 if driver else 0]
        return types in dispatcher.overloads or is_cached(dispatcher, types)

    def kernel_args(self):
        """``(F, I, hyper, fuse, state)``: what a compiled caller outside the backend
        (forecast/onerow.py) hands ``kernels.step_calls`` (a one-row call: no
        parallel launcher, no four-series blocks) and ``forward.forward_rows``,
        and the live states (N, L, S, H) a forecast copies.  Valid until the next
        ``resize`` or ``load_arrays``: ask again for every call."""
        return self._kernel_args

    def resize(self, n_series):
        """All or nothing: if memory runs out on the way, the model is as before."""
        old_a, old_cache = self.a, self.cache
        self.a = dict(old_a)
        try:
            self.a.update(grow_series_arrays(old_a, self.layout, n_series, self.k2, self.dtype))
            self._alloc_cache()         # fresh cache rows are invalid: windows re-run once
            self._pack()                # (allocates the arenas before it points anything there)
        except MemoryError:
            self.a, self.cache = old_a, old_cache
            raise

    def host_arrays(self):
        out = dict(self.a)
        out["theta"], out["opt_m"], out["opt_v"] = (k[self.perm] for k in (self.kp, self.km, self.kv))
        return {k: out[k] for k in ALL_ARRAYS}

    def load_arrays(self, arrays):
        self._set_arrays(arrays, copy=False)       # pack() copies them into the arenas
        self._pack()

    def host_counts(self):
        return self.a["count"]

    def forward(self, state, U):
        new_state = np.array(state, dtype=self.dtype, copy=True, order="C")
        return self._forward_own(new_state, np.ascontiguousarray(U, dtype=self.dtype)), new_state

    def forward_live(self, series, U):
        """``forward(get_states(series), U)[0]``: one copy of the states, not two."""
        return self._forward_own(self.a["state"][series], U)

    def _forward_own(self, state, U):
        """Forward rows of U (B, I) from ``state`` (B, L, S, H), a C-contiguous copy
        of this dtype that the kernel advances in place."""
        B = U.shape[0]
        rows = self._rows.get(B)
        if rows is None:
            rows = self._rows[B] = np.arange(B, dtype=np.int64)
        out = np.empty((B, self.layout.n_outputs), dtype=self.dtype)
        if B <= SMALL_ROWS:
            n_threads = quad = None
        else:
            n_threads, quad = _modes(B)
        forward_rows(0, B, rows, U, state, out, self.F, self.I, False, n_threads, quad)
        return out

    def get_states(self, series):
        return self.a["state"][series]
