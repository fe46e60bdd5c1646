"""The update kernels of the CUDA backend (docs/spec.md section 4): clip the
gradient and step the optimizer, as torch's ``clip_grad_norm_`` and
``torch.optim.SGD`` / ``Adam`` (``core/optim.py``), and keep the transposed
recurrent weights ``wt`` of the forward kernels current.

``update_prepare`` reduces the clip norm in a fixed order: lane k of
``NORM_LANES`` sums the squares of elements k, k + NORM_LANES, ... in float64,
then the lanes are added in order, whatever the block size.  Capitalised names
are compile-time constants (``spec.py``).
"""
import math

import numpy as np
from numba import cuda

from streamlstm.backends.cuda.grad import K_WHH, K_WIH, PT_COLS, PT_KIND, PT_OFF, PT_ROWS
from streamlstm.backends.cuda.spec import DT, LANES
from streamlstm.core.optim import (H_BETA1, H_BETA2, H_CLIP, H_EPS, H_KIND, H_LR, H_MOMENTUM,
                                   H_WD, KIND_SGD)

KERNELS = ("update_prepare", "optimizer_step", "refresh_transposed")
DEVICE_FUNCTIONS = ("transposed_index",)

# Entries of the float64 ``upd`` vector written by ``update_prepare``.
U_APPLY, U_COEF, U_STEP_SIZE, U_SQRT_BC2 = range(4)
N_UPD = 4


def update_prepare(grad, opt, M):
    """One block (any size).  If M > 0: the clip coefficient
    min(1, c / (||g||_2 + 1e-6)) (clip_grad_norm_), the optimizer step count
    and torch's bias corrections, into ``opt.upd``; else mark "no update"
    (SPEC 4: the step count does not move)."""
    lanes = cuda.shared.array(LANES, np.float64)
    tid = cuda.threadIdx.x
    upd = opt.upd
    hyper = opt.hyper
    if M[0] == 0:
        if tid == 0:
            upd[U_APPLY] = 0.0
        return
    clip = hyper[H_CLIP]
    for lane in range(tid, LANES, cuda.blockDim.x):
        acc = 0.0
        if clip > 0.0:
            for p in range(lane, grad.shape[0], LANES):
                g = np.float64(grad[p])
                acc += g * g
        lanes[lane] = acc
    cuda.syncthreads()
    if tid == 0:
        tot = 0.0
        for k in range(LANES):
            tot += lanes[k]
        coef = 1.0
        if clip > 0.0:
            coef = clip / (math.sqrt(tot) + 1e-6)
            if coef > 1.0:
                coef = 1.0
        t = opt.opt_step[0] + 1
        opt.opt_step[0] = t
        upd[U_APPLY] = 1.0
        upd[U_COEF] = coef
        upd[U_STEP_SIZE] = hyper[H_LR] / (1.0 - hyper[H_BETA1] ** t)
        upd[U_SQRT_BC2] = math.sqrt(1.0 - hyper[H_BETA2] ** t)


def optimizer_step(theta, grad, opt, wt, ptab, M):
    """Clip, then torch.optim.SGD / Adam on every parameter (optim.apply_update);
    the thread that writes theta[p] also writes its transposed twin in ``wt``.
    Last launch of an update: zeroes M for the next one."""
    if cuda.grid(1) == 0:
        M[0] = 0
    hyper = opt.hyper
    upd = opt.upd
    if upd[U_APPLY] == 0.0:
        return
    t = opt.opt_step[0]
    clip = hyper[H_CLIP] > 0.0
    coef = DT(upd[U_COEF])
    lr = DT(hyper[H_LR])
    sgd = hyper[H_KIND] == KIND_SGD
    mom = DT(hyper[H_MOMENTUM])
    use_mom = hyper[H_MOMENTUM] != 0.0
    one_b1 = DT(1.0 - hyper[H_BETA1])
    b2 = DT(hyper[H_BETA2])
    one_b2 = DT(1.0 - hyper[H_BETA2])
    eps = DT(hyper[H_EPS])
    wd = DT(hyper[H_WD])
    use_wd = hyper[H_WD] != 0.0
    step_size = DT(upd[U_STEP_SIZE])
    sqrt_bc2 = DT(upd[U_SQRT_BC2])
    for p in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        g = grad[p]
        if clip:
            g = g * coef
        if sgd:
            if use_mom:
                if t == 1:
                    m = g
                else:
                    m = opt.opt_m[p] * mom + g
                opt.opt_m[p] = m
                g = m
            theta[p] = theta[p] - lr * g
        else:
            if use_wd:
                g = g + wd * theta[p]
            m = opt.opt_m[p]
            m = m + one_b1 * (g - m)          # exp_avg.lerp_(grad, 1 - beta1)
            opt.opt_m[p] = m
            v = opt.opt_v[p] * b2 + one_b2 * g * g
            opt.opt_v[p] = v
            denom = math.sqrt(v) / sqrt_bc2 + eps
            theta[p] = theta[p] - step_size * (m / denom)
        q = transposed_index(ptab, p)
        if q >= 0:
            wt[q] = theta[p]


def transposed_index(ptab, p):
    """The index in ``wt`` of theta[p] when p lies in a recurrent weight matrix
    (stored transposed, (in_k, G*H), at the matrix's own offset), else -1."""
    ti = 0       # the tensor holding p (a handful of rows: a linear scan)
    while p >= ptab[ti, PT_OFF] + ptab[ti, PT_ROWS] * ptab[ti, PT_COLS]:
        ti += 1
    kind = ptab[ti, PT_KIND]
    if kind != K_WIH and kind != K_WHH:
        return -1
    off = ptab[ti, PT_OFF]
    cols = ptab[ti, PT_COLS]
    e = p - off
    q = e // cols
    return off + (e - q * cols) * ptab[ti, PT_ROWS] + q


def refresh_transposed(theta, wt, ptab):
    """wt = the recurrent weight matrices of theta, each stored transposed, read
    by the forward kernels (after a load; ``optimizer_step`` keeps it current
    after an update)."""
    for p in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        q = transposed_index(ptab, p)
        if q >= 0:
            wt[q] = theta[p]
