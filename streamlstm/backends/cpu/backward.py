"""The backward pass of the CPU backend (SPEC 4): back-propagation of one
series' window through all its re-run rows (``window_backward``), by
cellmath's ``*_cell_backward`` on SIMD vectors, into a gradient in the kernel
layout (config.py).  Nothing here allocates.
"""
import math

from streamlstm.backends.cache import cached_njit

from streamlstm.backends.cellmath import gru_cell_backward, lstm_cell_backward
from streamlstm.backends.cpu.config import C_GHP, C_H, C_HO, C_I, C_K1, C_L, C_LSTM, C_O, FAST
from streamlstm.backends.cpu.matvec import bias_acc, dot, dots_acc, outer_acc, vin, vout
from streamlstm.backends.cpu.simd import lanes, vfma, vsplat


@cached_njit(**FAST)
def _bw_head(t, T, Mf, htop, wy, kp, cfg, dxv, hg):
    """Row t's loss (if among the last k1) into dxv = d loss / d h_top and the
    head gradient hg (W (O, H) | b (O)) of this series."""
    zero = kp.dtype.type(0)
    two = kp.dtype.type(2)
    H, O, ho = cfg[C_H], cfg[C_O], cfg[C_HO]
    VL = lanes(kp)
    for q in range(H):
        dxv[q] = zero
    if t >= T - cfg[C_K1]:                 # loss only on the last k1 rows
        for o in range(O):
            y = wy[t, o]
            if not math.isnan(y):
                yh = dot(kp, ho + o * H, htop) + kp[ho + O * H + o]   # the re-run forecast
                d = two * (yh - y) / Mf    # d/dyhat of (1/M) m (yhat - y)^2
                hg[O * H + o] += d
                dv = vsplat(d)
                for j in range(0, H, VL):  # hg_W[o] += d h_top;  dxv += d W_head[o]
                    m = min(VL, H - j)
                    vout(hg, o * H + j, vfma(dv, vin(htop, j, m), vin(hg, o * H + j, m)), m)
                    vout(dxv, j, vfma(dv, vin(kp, ho + o * H + j, m), vin(dxv, j, m)), m)


@cached_njit(**FAST)
def _bw_cell(prev, act, dhk, dck, dxv, Di, Dh, d0, cfg):
    """One layer, one row, by cellmath's *_cell_backward on SIMD vectors:
    dh' = dh (from t+1) + dx (from above) -> pre-activation gradients Di (input
    side) and Dh (hidden side; the same array for LSTM) at d0, the new dc, and
    in dhk the direct part of dh_prev (GRU: z dh'; LSTM: 0)."""
    H, GHp = cfg[C_H], cfg[C_GHP]
    VL = lanes(act)
    one = vsplat(act.dtype.type(1))
    zero = vsplat(act.dtype.type(0))
    lstm = cfg[C_LSTM] != 0
    for j in range(0, H, VL):
        m = min(VL, H - j)
        dh2 = vin(dhk, j, m) + vin(dxv, j, m)
        if lstm:
            di, df, dg, do, dcp = lstm_cell_backward(
                dh2, vin(dck, j, m), vin(act, j, m), vin(act, H + j, m),
                vin(act, 2 * H + j, m), vin(act, 3 * H + j, m), vin(prev[1], j, m),
                vin(act, GHp + j, m), one)
            vout(Di, d0 + j, di, m)
            vout(Di, d0 + H + j, df, m)
            vout(Di, d0 + 2 * H + j, dg, m)
            vout(Di, d0 + 3 * H + j, do, m)
            vout(dck, j, dcp, m)
            vout(dhk, j, zero, m)
        else:
            dar, daz, dan, dhn, dhdir = gru_cell_backward(
                dh2, vin(act, j, m), vin(act, H + j, m), vin(act, 2 * H + j, m),
                vin(act, GHp + 2 * H + j, m), vin(prev[0], j, m), one)
            vout(Di, d0 + j, dar, m)
            vout(Di, d0 + H + j, daz, m)
            vout(Di, d0 + 2 * H + j, dan, m)
            vout(Dh, d0 + j, dar, m)
            vout(Dh, d0 + H + j, daz, m)
            vout(Dh, d0 + 2 * H + j, dhn, m)
            vout(dhk, j, dhdir, m)


@cached_njit(**FAST)
def _bw_sums(T, cst, wu, dA, hg, kp, koff, cfg, gp):
    """Add one series' window gradient to gp: the head's, then per layer the
    weights' (sums over the window's rows of da x^T, da h_prev^T) and biases'."""
    I, H, O, L, GHp, ho = cfg[C_I], cfg[C_H], cfg[C_O], cfg[C_L], cfg[C_GHP], cfg[C_HO]
    hs = 0 if cfg[C_LSTM] != 0 else 1
    for p in range(O * H + O):
        gp[ho + p] += hg[p]
    for k in range(L):
        nin = I if k == 0 else H
        mo, bo = koff[k, 0], koff[k, 1]
        D_i = dA[k, 0]
        D_h = dA[k, hs]
        if k == 0:
            outer_acc(gp, mo, GHp, D_i, wu[:, :], T)   # typed 'A' as the two below: one outer_acc
        else:
            outer_acc(gp, mo, GHp, D_i, cst[1:, k - 1, 0], T)
        outer_acc(gp, mo + nin * GHp, GHp, D_h, cst[:, k, 0], T)
        bias_acc(gp, bo, GHp, D_i, T)
        bias_acc(gp, bo + GHp, GHp, D_h, T)


@cached_njit(**FAST)
def window_backward(T, Mf, cst, cact, wu, wy, kp, koff, cfg, vec, dA, gp):
    """Back-propagate the masked loss of the last k1 of T re-run rows through
    all T rows and add the gradient to gp (kernel layout).

    cst (k2+1, L, S, H): cst[0] is the window-entry state (a constant, SPEC 4)
    and cst[t+1] the re-run state after row t; cact (k2, L, A) the re-run
    activations; wu (k2, I), wy (k2, O) the window.  dA (L, 2, k2*GHp) receives
    the pre-activation gradients of every row (input side, hidden side; the
    same for LSTM), from which the weight gradients are formed after the time
    loop as sums over t (_bw_sums).  vec is scratch: dh (L, H) | dc (L, H) |
    dxv (H) | the head gradient (O*H + O), summed over the window before it is
    added.
    """
    zero = kp.dtype.type(0)
    I, H, O, L = cfg[C_I], cfg[C_H], cfg[C_O], cfg[C_L]
    GHp = cfg[C_GHP]
    hs = 0 if cfg[C_LSTM] != 0 else 1
    dh = vec[0:L * H].reshape((L, H))
    dc = vec[L * H:2 * L * H].reshape((L, H))
    dxv = vec[2 * L * H:2 * L * H + H]
    hg = vec[2 * L * H + H:2 * L * H + H + O * H + O]
    for q in range(vec.shape[0]):
        vec[q] = zero
    for t in range(T - 1, -1, -1):
        _bw_head(t, T, Mf, cst[t + 1, L - 1, 0], wy, kp, cfg, dxv, hg)
        d0 = t * GHp
        for k in range(L - 1, -1, -1):
            _bw_cell(cst[t, k], cact[t, k], dh[k], dc[k], dxv, dA[k, 0], dA[k, hs], d0, cfg)
            mo = koff[k, 0]
            nin = I if k == 0 else H
            dots_acc(dh[k], kp, mo + nin * GHp, GHp, dA[k, hs], d0)   # dh_prev += W_hh^T da
            if k > 0:                                                   # dx = W_ih^T da
                for q in range(H):
                    dxv[q] = zero
                dots_acc(dxv, kp, mo, GHp, dA[k, 0], d0)
    _bw_sums(T, cst, wu, dA, hg, kp, koff, cfg, gp)
