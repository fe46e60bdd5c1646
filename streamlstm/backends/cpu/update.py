"""The update of the CPU backend (SPEC 4), per call: for the due series of a
call, re-run each window from its entry state (or reuse the activation cache),
back-propagate it, move the window, then clip and step the optimizer.  The due
series are dealt in chunks of ``GRAD_CHUNK`` to a fixed number of gradient
lanes (config.py), run in parallel; the lane sums are added in lane order.
"""
import math

import numpy as np
from numba import prange

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cpu.backward import window_backward
from streamlstm.backends.cpu.config import C_H, C_K1, C_K2, C_L, C_S, EXACT_INNER, FAST, FAST_NRT, \
    GRAD_CHUNK
from streamlstm.backends.cpu.forward import stack_forward1, stack_forward4
from streamlstm.backends.cpu.optimizer import sum_lanes_and_step


@cached_njit(**FAST)
def copy_state(dst, src, L, S, H):
    for k in range(L):
        for s in range(S):
            for q in range(H):
                dst[k, s, q] = src[k, s, q]


@cached_njit(**FAST)
def window_row(t, rows, m, group, win_u, st, act, kp, koff, cfg, quad):
    """Row t of the windows of a group of up to four series (``group``, m of
    them, at positions 0..m-1 of a workspace slot): each position s with
    rows[s] > t steps st[s, t+1] = st[s, t] on win_u[group[s], t], activations
    into act[s, t] - the four in step (one stack_forward4) when all four run
    this row (``quad`` None compiles no such block: a small call's groups have
    at most three).  rows has four entries (0 past m)."""
    L, S, H = cfg[C_L], cfg[C_S], cfg[C_H]
    if quad is not None and rows[0] > t and rows[1] > t and rows[2] > t and rows[3] > t:
        for s in range(4):
            copy_state(st[s, t + 1], st[s, t], L, S, H)
        stack_forward4(win_u[group[0], t], win_u[group[1], t], win_u[group[2], t],
                       win_u[group[3], t], st[0, t + 1], st[1, t + 1], st[2, t + 1],
                       st[3, t + 1], act[0, t], act[1, t], act[2, t], act[3, t], kp, koff, cfg)
    else:
        for s in range(m):
            if rows[s] > t:
                copy_state(st[s, t + 1], st[s, t], L, S, H)
                stack_forward1(win_u[group[s], t], st[s, t + 1], act[s, t], kp, koff, cfg)


@cached_njit(**FAST_NRT)
def _rows(n, s, slot, ws_x, c_x, c_ver, ver):
    """Series n's re-run states/activations: its activation-cache rows when
    valid, else workspace position s of slot."""
    if c_ver.shape[0] > 0 and c_ver[n] == ver[0]:
        return c_x[n]
    return ws_x[slot, s]


@cached_njit(**FAST_NRT)
def _update_chunk(ch, lanes_, due, mcnt, M, Mf, kp, koff, cfg,
                  entry, win_u, win_y, win_len, ws, cache, quad):
    """Chunk ch of the sorted due list, on lane ``slot`` = ch % lanes_ (its
    workspace slot and partial gradient, which the lane's first chunk zeroes;
    a lane's chunks must come in ascending order): for each of its series re-run the window from the entry state (weights before
    the update; four series at a time), back-propagate into the lane's partial
    gradient ws_g[slot] (series in ascending order), then move the window
    (SPEC 4: d = max(0, w + k1 - k2) oldest rows leave, the entry state becomes
    the re-run state after them).  A series whose window is in the activation
    cache (see _cache_row_start) skips the re-run."""
    ws_st, ws_a, ws_vec, ws_g, ws_da, ws_f = ws
    c_st, c_act, c_ver, ver = cache
    H, L, S = cfg[C_H], cfg[C_L], cfg[C_S]
    k1, k2 = cfg[C_K1], cfg[C_K2]
    D = due.shape[0]
    j0 = ch * GRAD_CHUNK
    j1 = min(D, j0 + GRAD_CHUNK)
    slot = ch % lanes_
    gp = ws_g[slot]
    if M > 0 and ch < lanes_:
        for p in range(gp.shape[0]):
            gp[p] = kp.dtype.type(0)
    tf = np.zeros(4, dtype=np.int64)           # rows to re-run per group position
    for g0 in range(j0, j1, 4):
        m = min(4, j1 - g0)
        tmax = 0
        for s in range(4):
            tf[s] = 0
        for s in range(m):
            n = due[g0 + s]
            T = win_len[n]
            d = max(0, T + k1 - k2)
            need_bw = M > 0 and mcnt[g0 + s] > 0
            cached = c_ver.shape[0] > 0 and c_ver[n] == ver[0]
            if not cached:
                tf[s] = T if need_bw else d
                copy_state(ws_st[slot, s, 0], entry[n], L, S, H)
                tmax = max(tmax, tf[s])
        for t in range(tmax):
            window_row(t, tf, m, due[g0:g0 + m], win_u, ws_st[slot], ws_a[slot], kp, koff, cfg,
                       quad)
        for s in range(m):                      # backward and window move, in slot order
            n = due[g0 + s]
            T = win_len[n]
            d = max(0, T + k1 - k2)
            need_bw = M > 0 and mcnt[g0 + s] > 0
            cst_n = _rows(n, s, slot, ws_st, c_st, c_ver, ver)
            if need_bw:
                window_backward(T, Mf, cst_n, _rows(n, s, slot, ws_a, c_act, c_ver, ver),
                                win_u[n], win_y[n], kp, koff, cfg, ws_vec[slot], ws_da[slot], gp)
            if d > 0:
                copy_state(entry[n], cst_n[d], L, S, H)
                wu, wy = win_u[n], win_y[n]
                for t in range(T - d):
                    for q in range(wu.shape[1]):
                        wu[t, q] = wu[t + d, q]
                    for q in range(wy.shape[1]):
                        wy[t, q] = wy[t + d, q]
                nan = kp.dtype.type(np.nan)
                for t in range(T - d, k2):
                    for q in range(wy.shape[1]):
                        wy[t, q] = nan
                win_len[n] = T - d


@cached_njit(parallel=True, **EXACT_INNER)
def _update_lanes_par(lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                      entry, win_u, win_y, win_len, ws, cache):
    """The lanes in parallel (one parallel region per update), each its chunks
    lane, lane + lanes_, ... in order."""
    for lane in prange(lanes_):
        for ch in range(lane, n_chunks, lanes_):
            _update_chunk(ch, lanes_, due, mcnt, M, Mf, kp, koff, cfg,
                          entry, win_u, win_y, win_len, ws, cache, True)


@cached_njit(**EXACT_INNER)
def update_due(due, kp, km, kv, opt_step, hyper, grad, koff, cfg,
               entry, win_u, win_y, win_len, ws, cache, stats, n_threads, quad):
    """SPEC 4 for the due series ``due`` (sorted ascending): loss normaliser M,
    chunked re-run + backward + window moves, chunk sums in chunk order, then
    clipping and the optimizer step (only if M > 0).  ``n_threads`` None:
    serial, ``quad`` None: no four-series blocks (compile-time switches, as
    forward.forward_rows)."""
    k1 = cfg[C_K1]
    D = due.shape[0]
    mcnt = np.empty(D, dtype=np.int64)
    for jj in range(D):
        n = due[jj]
        T = win_len[n]
        cnt = 0
        for t in range(max(0, T - k1), T):
            for o in range(win_y.shape[2]):
                if not math.isnan(win_y[n, t, o]):
                    cnt += 1
        mcnt[jj] = cnt
    M = mcnt.sum()                  # (not a literal-typed 0: one compiled chunk kernel)
    c_ver, ver = cache[2], cache[3]
    for jj in range(D):             # statistics: rows this update re-runs
        n = due[jj]
        if not (c_ver.shape[0] > 0 and c_ver[n] == ver[0]):
            T = win_len[n]
            stats[1] += T if (M > 0 and mcnt[jj] > 0) else max(0, T + k1 - cfg[C_K2])
    Mf = kp.dtype.type(M)
    n_chunks = (D + GRAD_CHUNK - 1) // GRAD_CHUNK
    ws_g = ws[3]
    lanes_ = min(ws_g.shape[0], n_chunks)      # chunk ch -> lane ch % lanes_
    # Serially the chunks run in order (each lane's in ascending order: the same
    # sums as the parallel lanes).
    if n_threads is None:
        for ch in range(n_chunks):
            _update_chunk(ch, lanes_, due, mcnt, M, Mf, kp, koff, cfg,
                          entry, win_u, win_y, win_len, ws, cache, quad)
    elif lanes_ > 1 and n_threads > 1:
        _update_lanes_par(lanes_, n_chunks, due, mcnt, M, Mf, kp, koff, cfg,
                          entry, win_u, win_y, win_len, ws, cache)
    else:
        for ch in range(n_chunks):
            _update_chunk(ch, lanes_, due, mcnt, M, Mf, kp, koff, cfg,
                          entry, win_u, win_y, win_len, ws, cache, quad)
    if M > 0:
        sum_lanes_and_step(lanes_, ws_g, grad, kp, km, kv, opt_step, hyper, cache)
