"""The forward pass of the CPU backend (SPEC 1): one time step of the whole
stack for one series or four (sharing every weight load), the head, and the
rows of one call (``forward_rows``: blocks of four rows, in parallel blocks
when the work pays for the launch).  The gate pre-activations are SIMD AXPYs
over W^T rows (matvec.py); the pointwise cell math is cellmath's, run on SIMD
vectors (simd.py registers the arithmetic and the polynomial exp/tanh for
them: ``math.exp`` is a scalar libm call on CPUs without SVML).
"""
from numba import prange

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cpu.arena import (F_CACT, F_CACT0, F_CST, F_CST0, F_ENTRY, F_KP, F_WS5,
                                           I_CFG, I_CVER, I_CVER0, I_KOFF, I_VER, I_WIN_LEN,
                                           view1, view2, view4, view5)
from streamlstm.backends.cellmath import gru_cell, lstm_cell
from streamlstm.backends.cpu.config import C_G, C_GHP, C_H, C_HO, C_I, C_L, C_LSTM, C_O, C_S, \
    EXACT, EXACT_INNER, FAST, PAR_FORWARD_WORK
from streamlstm.backends.cpu.matvec import dot, mv1, mv4, vin, vout
from streamlstm.backends.cpu.simd import lanes, vsplat


# ---------------------------------------------------------------------------------
# pointwise cell math of one series (SPEC 1), in place
@cached_njit(**FAST)
def _lstm_pointwise(h, c, act, GHp):
    """act[0:4H] holds the pre-activations of (i, f, g, o) -> activations, and
    (h, c) <- the new state, by cellmath.lstm_cell on SIMD vectors (VL units
    at a time, a masked vector for the last H % VL); tanh(c') goes to
    act[GHp:GHp+H] (the backward reads it)."""
    H = h.shape[0]
    VL = lanes(act)
    one = vsplat(act.dtype.type(1))
    for j in range(0, H, VL):
        m = min(VL, H - j)
        i, f, g, o, c2, tc, h2 = lstm_cell(vin(act, j, m), vin(act, H + j, m),
                                           vin(act, 2 * H + j, m), vin(act, 3 * H + j, m),
                                           vin(c, j, m), one)
        vout(act, j, i, m)
        vout(act, H + j, f, m)
        vout(act, 2 * H + j, g, m)
        vout(act, 3 * H + j, o, m)
        vout(act, GHp + j, tc, m)
        vout(c, j, c2, m)
        vout(h, j, h2, m)


@cached_njit(**FAST)
def _gru_pointwise(h, act, GHp):
    """act[0:3H] = W_i x + b_i, act[GHp:GHp+3H] = W_h h + b_h (gates r, z, n) ->
    r, z, n in act[0:3H] and h <- h', by cellmath.gru_cell on SIMD vectors
    (W_hn h + b_hn stays at act[GHp+2H:GHp+3H] for the backward)."""
    H = h.shape[0]
    VL = lanes(act)
    one = vsplat(act.dtype.type(1))
    for j in range(0, H, VL):
        m = min(VL, H - j)
        r, z, n, h2 = gru_cell(vin(act, j, m), vin(act, H + j, m), vin(act, 2 * H + j, m),
                               vin(act, GHp + j, m), vin(act, GHp + H + j, m),
                               vin(act, GHp + 2 * H + j, m), vin(h, j, m), one)
        vout(act, j, r, m)
        vout(act, H + j, z, m)
        vout(act, 2 * H + j, n, m)
        vout(h, j, h2, m)


@cached_njit(**FAST)
def _gates1(x, h, act, kp, k, nin, koff, cfg):
    """Pre-activations of one layer for one series into act (see module doc)."""
    H, GHp = cfg[C_H], cfg[C_GHP]
    mo, bo = koff[k, 0], koff[k, 1]
    if cfg[C_LSTM] != 0:
        mv1(act, 0, x, kp, mo, nin, GHp, bo, bo + GHp, 1)
        mv1(act, 0, h, kp, mo + nin * GHp, H, GHp, 0, 0, 2)
    else:
        mv1(act, 0, x, kp, mo, nin, GHp, bo, 0, 0)
        mv1(act, GHp, h, kp, mo + nin * GHp, H, GHp, bo + GHp, 0, 0)


@cached_njit(**FAST)
def _gates4(x0, x1, x2, x3, h0, h1, h2, h3, a0, a1, a2, a3, kp, k, nin, koff, cfg):
    """_gates1 for four series sharing every weight load."""
    H, GHp = cfg[C_H], cfg[C_GHP]
    mo, bo = koff[k, 0], koff[k, 1]
    if cfg[C_LSTM] != 0:
        mv4(a0, a1, a2, a3, 0, x0, x1, x2, x3, kp, mo, nin, GHp, bo, bo + GHp, 1)
        mv4(a0, a1, a2, a3, 0, h0, h1, h2, h3, kp, mo + nin * GHp, H, GHp, 0, 0, 2)
    else:
        mv4(a0, a1, a2, a3, 0, x0, x1, x2, x3, kp, mo, nin, GHp, bo, 0, 0)
        mv4(a0, a1, a2, a3, GHp, h0, h1, h2, h3, kp, mo + nin * GHp, H, GHp, bo + GHp, 0, 0)


@cached_njit(**FAST)
def _pointwise(st, k, act, cfg):
    if cfg[C_LSTM] != 0:
        _lstm_pointwise(st[k, 0], st[k, 1], act, cfg[C_GHP])
    else:
        _gru_pointwise(st[k, 0], act, cfg[C_GHP])


@cached_njit(**FAST)
def stack_forward1(x, st, acts, kp, koff, cfg):
    """One time step of the whole stack for one series, in place on st (L, S, H);
    layer k > 0 reads layer k-1's new h.  acts (L, A) receives the activations."""
    for k in range(cfg[C_L]):
        if k == 0:
            _gates1(x, st[0, 0], acts[0], kp, 0, cfg[C_I], koff, cfg)
        else:
            _gates1(st[k - 1, 0], st[k, 0], acts[k], kp, k, cfg[C_H], koff, cfg)
        _pointwise(st, k, acts[k], cfg)


@cached_njit(**FAST)
def stack_forward4(x0, x1, x2, x3, s0, s1, s2, s3, c0, c1, c2, c3, kp, koff, cfg):
    """stack_forward1 for four series, layer by layer."""
    for k in range(cfg[C_L]):
        if k == 0:
            _gates4(x0, x1, x2, x3, s0[0, 0], s1[0, 0], s2[0, 0], s3[0, 0],
                    c0[0], c1[0], c2[0], c3[0], kp, 0, cfg[C_I], koff, cfg)
        else:
            _gates4(s0[k - 1, 0], s1[k - 1, 0], s2[k - 1, 0], s3[k - 1, 0],
                    s0[k, 0], s1[k, 0], s2[k, 0], s3[k, 0],
                    c0[k], c1[k], c2[k], c3[k], kp, k, cfg[C_H], koff, cfg)
        _pointwise(s0, k, c0[k], cfg)
        _pointwise(s1, k, c1[k], cfg)
        _pointwise(s2, k, c2[k], cfg)
        _pointwise(s3, k, c3[k], cfg)


@cached_njit(**FAST)
def head(h, kp, cfg, out_row):
    """y_hat = W_head h + b_head (SPEC 1)."""
    H, O, ho = cfg[C_H], cfg[C_O], cfg[C_HO]
    for o in range(O):
        out_row[o] = dot(kp, ho + o * H, h) + kp[ho + O * H + o]


@cached_njit(**FAST)
def _cache_row_start(n, st, entry, win_len, cache, L, S, H):
    """Activation cache (k1 = k2 only): returns the cache row of slot n's next
    window position, after updating its validity.  The cache stays valid while
    every row of the window is computed with the current weights version from
    a live state equal to the window-entry state; the re-run would then compute
    the same numbers with the same code, so the update may use the cache."""
    c_st, c_act, c_ver, ver = cache
    w = win_len[n]
    if w == 0:                          # a window starts: is the live state its entry state?
        same = True
        en = entry[n]
        c0 = c_st[n, 0]
        for k in range(L):
            for s_ in range(S):
                for q in range(H):
                    same = same and st[k, s_, q] == en[k, s_, q]
                    c0[k, s_, q] = st[k, s_, q]
        c_ver[n] = ver[0] if same else -1
    elif c_ver[n] != ver[0]:
        c_ver[n] = -1
    return w


@cached_njit(**FAST)
def _forward_rows(lo, hi, slots, U, state, kp, koff, cfg, acts4, out,
                  win_len, entry, cache, quad):
    """Rows lo:hi: advance state[slots[r]] by one step on U[r]; out[r] = y_hat.
    Rows go four at a time through stack_forward4 (acts4 (4, L, A) scratch);
    ``quad`` None compiles the row-at-a-time path only (a small call: see
    forward_rows).  A row's bits are the same either way.
    With the activation cache on, activations and states go to the slot's cache
    row instead (see _cache_row_start) so that the update can skip the re-run."""
    L, S, H = cfg[C_L], cfg[C_S], cfg[C_H]
    c_st, c_act, c_ver, ver = cache
    use = c_ver.shape[0] > 0
    r = lo
    while r < hi:
        m = min(4, hi - r)
        n0 = slots[r]
        n1 = slots[r + 1] if m > 1 else n0
        n2 = slots[r + 2] if m > 2 else n0
        n3 = slots[r + 3] if m > 3 else n0
        if use:
            w0 = _cache_row_start(n0, state[n0], entry, win_len, cache, L, S, H)
            a0 = c_act[n0, w0]
            a1, a2, a3 = a0, a0, a0
            if m > 1:
                w1 = _cache_row_start(n1, state[n1], entry, win_len, cache, L, S, H)
                a1 = c_act[n1, w1]
            if m > 2:
                w2 = _cache_row_start(n2, state[n2], entry, win_len, cache, L, S, H)
                a2 = c_act[n2, w2]
            if m > 3:
                w3 = _cache_row_start(n3, state[n3], entry, win_len, cache, L, S, H)
                a3 = c_act[n3, w3]
        else:
            a0, a1, a2, a3 = acts4[0], acts4[1], acts4[2], acts4[3]
        if quad is not None and m == 4:
            stack_forward4(U[r], U[r + 1], U[r + 2], U[r + 3], state[n0], state[n1],
                           state[n2], state[n3], a0, a1, a2, a3, kp, koff, cfg)
        else:
            stack_forward1(U[r], state[n0], a0, kp, koff, cfg)
            if m > 1:
                stack_forward1(U[r + 1], state[n1], a1, kp, koff, cfg)
            if m > 2:
                stack_forward1(U[r + 2], state[n2], a2, kp, koff, cfg)
            if m > 3:
                stack_forward1(U[r + 3], state[n3], a3, kp, koff, cfg)
        for j in range(m):
            n = slots[r + j]
            st = state[n]
            if use:
                c1 = c_st[n, win_len[n] + 1]
                for k in range(L):
                    for s_ in range(S):
                        for q in range(H):
                            c1[k, s_, q] = st[k, s_, q]
            head(st[L - 1, 0], kp, cfg, out[r + j])
        r += m


@cached_njit(parallel=True, **EXACT_INNER)
def _forward_rows_par(lo, hi, nb, slots, U, state, kp, koff, cfg, ws_a, out,
                      win_len, entry, cache):
    """_forward_rows over nb blocks of rows in parallel (block b uses scratch slot b).
    Every row's arithmetic is its own, so the blocking changes no bit."""
    R = hi - lo
    for b in prange(nb):
        r0 = lo + (R * b) // nb
        r1 = lo + (R * (b + 1)) // nb
        _forward_rows(r0, r1, slots, U, state, kp, koff, cfg, ws_a[b], out,
                      win_len, entry, cache, True)


@cached_njit(**EXACT)
def forward_rows(lo, hi, slots, U, state, out, F, I, use_cache, n_threads, quad):
    """Rows lo:hi of one call from ``state`` (the live state in the arena, or a
    forecast's copy); the model's other arrays come from the arenas ``F``,
    ``I`` (arena.py).  ``use_cache``: keep the activation cache (a step) or
    leave it alone (a forecast).  Parallel only when the work pays for the
    launch.  Compile-time switches (Numba prunes ``arg is None`` branches by
    the argument's type): ``n_threads`` None compiles no parallel launcher
    (serial), ``quad`` None no four-series blocks (rows one at a time: calls
    of at most three rows never fill a block).  launcher._modes picks them."""
    kp, koff, cfg = view1(F, I, F_KP), view2(I, I, I_KOFF), view1(I, I, I_CFG)
    ws_a, win_len, entry = view4(F, I, F_WS5), view1(I, I, I_WIN_LEN), view4(F, I, F_ENTRY)
    if use_cache:
        cache = (view5(F, I, F_CST), view4(F, I, F_CACT), view1(I, I, I_CVER),
                 view1(I, I, I_VER))
    else:
        cache = (view5(F, I, F_CST0), view4(F, I, F_CACT0), view1(I, I, I_CVER0),
                 view1(I, I, I_VER))
    R = hi - lo
    nb = min(ws_a.shape[0], (R + 3) // 4)
    work = R * cfg[C_L] * cfg[C_G] * cfg[C_H] * (cfg[C_H] + cfg[C_I])
    if n_threads is None:
        _forward_rows(lo, hi, slots, U, state, kp, koff, cfg, ws_a[0], out,
                      win_len, entry, cache, quad)
    elif nb > 1 and n_threads > 1 and work >= PAR_FORWARD_WORK:
        _forward_rows_par(lo, hi, nb, slots, U, state, kp, koff, cfg, ws_a, out,
                          win_len, entry, cache)
    else:
        _forward_rows(lo, hi, slots, U, state, kp, koff, cfg, ws_a[0], out,
                      win_len, entry, cache, quad)
