"""The driver of the Numba CPU backend's ``@njit`` kernels (launcher.py is the
entry point): ``step_calls`` runs all C calls of a ``step_calls`` request
without going back to Python.

The kernels come in three layers, stumpy-style: workers that never allocate
(matvec.py: matrix-vector products for up to four series; forward.py: one
layer's pointwise cell math; backward.py: one window's backward; compiled
without Numba's reference counting), parallel launchers (``*_par``: ``prange``
over fixed blocks of rows or chunks of due series) and this driver.  What they
share - the ``cfg`` vector, the weight layout, compile options and the
determinism rules - is config.py.

Two ways through a window (SPEC 4), with the same bits: per call (forward.py
for the call's rows; at a due call update.py re-runs each due window from its
entry state - or reuses the activation cache - and back-propagates it), and,
for a whole fresh k1 = k2 window of lockstep calls, series-major (fused.py:
each chunk of series runs its k1 rows forward and then backward while hot).
"""
import numpy as np

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cpu.arena import (F_CACT, F_CST, F_ENTRY, F_GRAD, F_KM, F_KP, F_KV,
                                           F_STATE, F_WIN_U, F_WIN_Y, F_WS0, F_WS1, F_WS2, F_WS3,
                                           F_WS4, F_WS5, I_CFG, I_COUNT, I_CVER, I_KOFF,
                                           I_OPT_STEP, I_STATS, I_VER, I_WIN_LEN, view1, view2,
                                           view3, view4, view5, view6)
from streamlstm.backends.cpu.config import C_K1, EXACT, FAST_NRT
from streamlstm.backends.cpu.forward import forward_rows
from streamlstm.backends.cpu.fused import fused_window
from streamlstm.backends.cpu.update import update_due
from streamlstm.backends.specialize import INNER, njit


@cached_njit(**FAST_NRT)
def sort_slots(a, n_slots):
    """Sorts the distinct slot numbers ``a`` (each < n_slots) ascending, in place:
    by insertion for a few, else by marking them in an n_slots table.  (Not
    np.sort: that compiles Numba's whole quicksort, about 1 s of a first run.)"""
    n = a.shape[0]
    if n <= 32:
        for i in range(1, n):
            v = a[i]
            j = i - 1
            while j >= 0 and a[j] > v:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = v
        return
    mark = np.empty(n_slots, dtype=np.int64)
    for s in range(n_slots):
        mark[s] = 0
    for i in range(n):
        mark[a[i]] = 1
    i = 0
    for s in range(n_slots):
        if mark[s] != 0:
            a[i] = s
            i += 1


@cached_njit(**EXACT)
def step_calls(series, U, Y, offsets, out, F, I, hyper, n_threads, fuse, quad):
    """C consecutive ``step`` calls (SPEC 3): call c steps rows offsets[c]:offsets[c+1].
    Per call: forward every row (weights before the update), append (u, y) to
    each window, then one update if any listed series is due - or, for a whole
    fresh k1 = k2 lockstep window, the same computed series-major
    (fused_window).  ``n_threads`` is numba.get_num_threads() of the caller
    (read in Python: calling it here would keep the driver out of the on-disk
    cache); None compiles a driver without the parallel launchers (serial).
    ``quad`` None compiles no four-series blocks (calls of at most three rows
    never fill one; launcher._modes picks both).  ``fuse``: None compiles a driver without
    fused_window (a model with k1 != k2 never takes it), True tries it.
    (Numba prunes a branch on ``arg is None`` by the argument's type before it
    compiles anything, so a one-series stream compiles about half the code:
    bench/compile_time.py.)  ``stats`` counts rows forwarded, rows re-run by
    updates and rows computed in fused windows.  Every array the model keeps comes
    from the arenas ``F`` and ``I`` (arena.py): two arguments instead of twenty
    for Numba to unbox per call."""
    v = driver_views(F, I)
    (kp, km, kv, grad, state, entry, win_u, win_y, ws, cache, opt_step, win_len, count, koff,
     cfg, stats) = v
    k1 = cfg[C_K1]
    C = offsets.shape[0] - 1
    max_rows = 0
    for c in range(C):
        max_rows = max(max_rows, offsets[c + 1] - offsets[c])
    due_buf = np.empty(max_rows, dtype=np.int64)
    c = 0
    while c < C:
        # a fused window needs k1 more calls in this request: a one-call ``step``
        # never pays fused_window's call (its ~25 arguments cost ~0.4 us)
        if fuse is not None and c + k1 < offsets.shape[0]:
            if fused_window(c, offsets, series, U, Y, out, kp, km, kv, opt_step, hyper, grad,
                            state, entry, win_u, win_y, win_len, count, koff, cfg, ws, cache,
                            stats, n_threads, quad):
                c += k1
                continue
        one_call(offsets[c], offsets[c + 1], series, U, Y, out, F, I, hyper, v, n_threads,
                 quad, due_buf)
        c += 1


@njit(inline="always", **INNER)
def driver_views(F, I):
    """The arrays of the arenas ``F``, ``I`` that the driver's calls use, as views:
    ``(kp, km, kv, grad, state, entry, win_u, win_y, ws, cache, opt_step, win_len,
    count, koff, cfg, stats)``.  (Inlined where it is called, as ``one_call``.)"""
    kp, km, kv = view1(F, I, F_KP), view1(F, I, F_KM), view1(F, I, F_KV)
    grad = view1(F, I, F_GRAD)
    state, entry = view4(F, I, F_STATE), view4(F, I, F_ENTRY)
    win_u, win_y = view3(F, I, F_WIN_U), view3(F, I, F_WIN_Y)
    ws = (view6(F, I, F_WS0), view5(F, I, F_WS1), view2(F, I, F_WS2), view2(F, I, F_WS3),
          view4(F, I, F_WS4), view4(F, I, F_WS5))
    cache = (view5(F, I, F_CST), view4(F, I, F_CACT), view1(I, I, I_CVER), view1(I, I, I_VER))
    opt_step, win_len, count = view1(I, I, I_OPT_STEP), view1(I, I, I_WIN_LEN), view1(I, I, I_COUNT)
    koff, cfg, stats = view2(I, I, I_KOFF), view1(I, I, I_CFG), view1(I, I, I_STATS)
    return (kp, km, kv, grad, state, entry, win_u, win_y, ws, cache, opt_step, win_len, count,
            koff, cfg, stats)


@njit(inline="always", **INNER)
def one_call(lo, hi, series, U, Y, out, F, I, hyper, v, n_threads, quad, due_buf):
    """One call of ``step_calls`` outside a fused window (SPEC 3): forward rows
    ``lo:hi`` (weights before the update), append each (u, y) to its series'
    window, then update the series that are due.  ``v``: ``driver_views(F, I)``;
    ``due_buf``: room for hi - lo slot numbers.  Inlined into its two callers
    (Numba's ``inline="always"``: no compiled function of its own), ``step_calls``
    and ``step_row``."""
    (kp, km, kv, grad, state, entry, win_u, win_y, ws, cache, opt_step, win_len, count, koff,
     cfg, stats) = v
    k1 = cfg[C_K1]
    stats[0] += hi - lo
    forward_rows(lo, hi, series, U, state, out, F, I, True, n_threads, quad)
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
        due = due_buf[:nd]
        sort_slots(due, win_len.shape[0])
        update_due(due, kp, km, kv, opt_step, hyper, grad, koff, cfg,
                   entry, win_u, win_y, win_len, ws, cache, stats, n_threads, quad)


@njit(inline="always", **INNER)
def step_row(series, U, Y, out, F, I, hyper):
    """``step_calls`` of one call of the rows ``U``, ``Y`` (series ``series``) for a
    model without the fused window (``fuse`` None), serial and without four-series
    blocks (``n_threads`` = ``quad`` = None): the same operations on the same
    arrays, so the same bits (tests/test_onerow.py), inlined into a compiled caller
    (forecast/onerow.py's ``learn_row``) so that a River forecaster's first run
    compiles no driver of its own (bench/README.md, "First run")."""
    due_buf = np.empty(U.shape[0], dtype=np.int64)
    one_call(0, U.shape[0], series, U, Y, out, F, I, hyper, driver_views(F, I), None, None,
             due_buf)
