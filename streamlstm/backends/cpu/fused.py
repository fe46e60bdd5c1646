"""Fused windows of the CPU backend: a whole fresh k1 = k2 window of lockstep
calls (what ``run`` passes) computed series-major - each chunk of series runs
its k1 rows forward and then backward while hot, without the update's re-run -
with the same bits as the per-call path (forward.py, update.py).
"""
import math

import numpy as np
from numba import prange

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cpu.backward import window_backward
from streamlstm.backends.cpu.config import C_H, C_I, C_K1, C_K2, C_L, C_O, C_S, EXACT_INNER, FAST_NRT, \
    GRAD_CHUNK
from streamlstm.backends.cpu.forward import head
from streamlstm.backends.cpu.optimizer import sum_lanes_and_step
from streamlstm.backends.cpu.update import copy_state, window_row


@cached_njit(**FAST_NRT)
def _fused_chunk(ch, lanes_, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff, cfg,
                 state, entry, win_u, win_y, win_len, count, ws, quad):
    """Chunk ch of a fused window (see fused_window) on workspace slot ``slot``:
    for each group of four of its series (ascending slots) run the k1 rows
    forward from the live state (= the entry state) with the current weights,
    writing the forecasts, then back-propagate every series in slot order into
    the partial gradient of its lane ``slot`` = ch % lanes_ (zeroed by the
    lane's first chunk, as update._update_chunk), then leave the arrays exactly as the k1
    per-call steps and the update would."""
    ws_st, ws_a, ws_vec, ws_g, ws_da, ws_f = ws
    H, L, S, I, O = cfg[C_H], cfg[C_L], cfg[C_S], cfg[C_I], cfg[C_O]
    k1 = cfg[C_K1]
    D = due.shape[0]
    j0 = ch * GRAD_CHUNK
    j1 = min(D, j0 + GRAD_CHUNK)
    slot = ch % lanes_
    gp = ws_g[slot]
    if M > 0 and ch < lanes_:
        for p in range(gp.shape[0]):
            gp[p] = kp.dtype.type(0)
    nan = kp.dtype.type(np.nan)
    rows = np.zeros(4, dtype=np.int64)         # rows to run per group position
    for g0 in range(j0, j1, 4):
        m = min(4, j1 - g0)
        for s in range(m):
            n = due[g0 + s]
            copy_state(ws_st[slot, s, 0], state[n], L, S, H)
            for t in range(k1):                 # the window rows, as the calls append them
                r = offsets[c + t] + pos[g0 + s]
                for q in range(I):
                    win_u[n, t, q] = U[r, q]
                for q in range(O):
                    win_y[n, t, q] = Y[r, q]
        for s in range(4):
            rows[s] = k1 if s < m else 0
        for t in range(k1):
            window_row(t, rows, m, due[g0:g0 + m], win_u, ws_st[slot], ws_a[slot], kp, koff, cfg,
                       quad)
            for s in range(m):
                head(ws_st[slot, s, t + 1, L - 1, 0], kp, cfg, out[offsets[c + t] + pos[g0 + s]])
        for s in range(m):                      # backward and window move, in slot order
            n = due[g0 + s]
            if M > 0 and mcnt[g0 + s] > 0:
                window_backward(k1, Mf, ws_st[slot, s], ws_a[slot, s], win_u[n], win_y[n], kp,
                                koff, cfg, ws_vec[slot], ws_da[slot], gp)
            last = ws_st[slot, s, k1]
            copy_state(state[n], last, L, S, H)
            copy_state(entry[n], last, L, S, H)   # d = k1 rows leave: the window empties
            for t in range(win_y.shape[1]):
                for q in range(O):
                    win_y[n, t, q] = nan
            win_len[n] = 0
            count[n] += k1


@cached_njit(parallel=True, **EXACT_INNER)
def _fused_lanes_par(lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff,
                     cfg, state, entry, win_u, win_y, win_len, count, ws):
    for lane in prange(lanes_):
        for ch in range(lane, n_chunks, lanes_):
            _fused_chunk(ch, lanes_, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff,
                         cfg, state, entry, win_u, win_y, win_len, count, ws, True)


@cached_njit(**EXACT_INNER)
def fused_window(c, offsets, series, U, Y, out, kp, km, kv, opt_step, hyper, grad, state,
                 entry, win_u, win_y, win_len, count, koff, cfg, ws, cache, stats, n_threads,
                 quad):
    """Run calls c .. c+k1-1 series-major if they form one fresh lockstep window:
    k1 = k2, every call lists the same slots in the same order, and every listed
    slot starts an empty window (count a multiple of k1) from a live state equal
    to its entry state.  Then no update happens before the last call, each
    series' k1 rows depend only on its own state and the current weights, and
    the update's re-run would reproduce them bit for bit - so each chunk of
    series runs forward and backward while its activations are hot (no re-run,
    nothing kept per series).  Same bits as the per-call path; returns False
    (doing nothing) when the calls do not qualify."""
    k1, k2 = cfg[C_K1], cfg[C_K2]
    L, S, H = cfg[C_L], cfg[C_S], cfg[C_H]
    if k1 != k2 or c + k1 >= offsets.shape[0]:
        return False
    lo = offsets[c]
    B = offsets[c + 1] - lo
    if B == 0 or win_len[series[lo]] != 0 or count[series[lo]] % k1 != 0:
        return False                            # cheap rejection first
    for j in range(1, k1):
        base = offsets[c + j]
        if offsets[c + j + 1] - base != B:
            return False
        for i in range(B):
            if series[base + i] != series[lo + i]:
                return False
    for i in range(B):
        n = series[lo + i]
        if win_len[n] != 0 or count[n] % k1 != 0:
            return False
        st, en = state[n], entry[n]
        for k in range(L):
            for s in range(S):
                for q in range(H):
                    if st[k, s, q] != en[k, s, q]:
                        return False
    pos = np.argsort(series[lo:lo + B])         # slots are distinct: any sort is the same
    stats[0] += k1 * B
    stats[2] += k1 * B
    due = np.empty(B, dtype=np.int64)
    mcnt = np.zeros(B, dtype=np.int64)
    for jj in range(B):
        due[jj] = series[lo + pos[jj]]
        for t in range(k1):
            r = offsets[c + t] + pos[jj]
            for o in range(Y.shape[1]):
                if not math.isnan(Y[r, o]):
                    mcnt[jj] += 1
    M = mcnt.sum()
    Mf = kp.dtype.type(M)
    n_chunks = (B + GRAD_CHUNK - 1) // GRAD_CHUNK
    ws_g = ws[3]
    lanes_ = min(ws_g.shape[0], n_chunks)      # as update_due
    if n_threads is None:                # serial (switches as update.update_due)
        for ch in range(n_chunks):
            _fused_chunk(ch, lanes_, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff,
                         cfg, state, entry, win_u, win_y, win_len, count, ws, quad)
    elif lanes_ > 1 and n_threads > 1:
        _fused_lanes_par(lanes_, n_chunks, due, pos, mcnt, M, Mf, c, offsets, U, Y, out,
                         kp, koff, cfg, state, entry, win_u, win_y, win_len, count, ws)
    else:
        for ch in range(n_chunks):
            _fused_chunk(ch, lanes_, due, pos, mcnt, M, Mf, c, offsets, U, Y, out, kp, koff,
                         cfg, state, entry, win_u, win_y, win_len, count, ws, quad)
    if M > 0:
        sum_lanes_and_step(lanes_, ws_g, grad, kp, km, kv, opt_step, hyper, cache)
    return True
