"""The optimizer step of the CPU backend (SPEC 4): ``core.optim.apply_update``
in Numba - clip_grad_norm_, then torch's SGD or Adam - on the flat arrays of
the kernel layout (elementwise, so the padding stays 0).  The ``hyper`` vector
is read by the index names of core/optim.py.
"""
import math

import numpy as np

from streamlstm.backends.cache import cached_njit
from streamlstm.backends.cpu.config import EXACT_INNER
from streamlstm.core.optim import H_BETA1, H_BETA2, H_CLIP, H_EPS, H_KIND, H_LR, H_MOMENTUM, H_WD, KIND_SGD


@cached_njit(**EXACT_INNER)
def _sum_squares(g):
    """||g||^2 accumulated in float64 over 8 interleaved partial sums (explicit,
    so the order is fixed without fast-math re-association, and it vectorises)."""
    acc = np.zeros(8, dtype=np.float64)
    P = g.shape[0]
    P8 = P - P % 8
    for p in range(0, P8, 8):
        for j in range(8):
            v = np.float64(g[p + j])
            acc[j] += v * v
    for p in range(P8, P):
        v = np.float64(g[p])
        acc[p - P8] += v * v
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


@cached_njit(**EXACT_INNER)
def apply_update(theta, grad, opt_m, opt_v, opt_step, hyper):
    """optim.apply_update in Numba (SPEC 4): clip_grad_norm_, then torch's SGD or
    Adam.  No fast-math here: the optimizer follows torch operation for operation."""
    dt = theta.dtype.type
    P = theta.shape[0]
    clip = hyper[H_CLIP]
    if clip > 0:
        norm = math.sqrt(_sum_squares(grad))
        coef = dt(min(1.0, clip / (norm + 1e-6)))
        for p in range(P):
            grad[p] *= coef
    opt_step[0] += 1
    t = opt_step[0]
    lr = hyper[H_LR]
    if hyper[H_KIND] == KIND_SGD:
        mom = hyper[H_MOMENTUM]
        lr_ = dt(lr)
        if mom != 0.0:
            mom_ = dt(mom)
            if t == 1:
                for p in range(P):
                    opt_m[p] = grad[p]
            else:
                for p in range(P):
                    opt_m[p] = opt_m[p] * mom_ + grad[p]
            for p in range(P):
                theta[p] -= lr_ * opt_m[p]
        else:
            for p in range(P):
                theta[p] -= lr_ * grad[p]
        return
    b1, b2, eps, wd = hyper[H_BETA1], hyper[H_BETA2], hyper[H_EPS], hyper[H_WD]
    c1 = dt(1.0 - b1)
    c2 = dt(1.0 - b2)
    b2_ = dt(b2)
    wd_ = dt(wd)
    bc1 = 1.0 - math.pow(b1, float(t))            # as CPython's float ** int (C pow)
    bc2 = 1.0 - math.pow(b2, float(t))
    step_size = dt(lr / bc1)
    sq_bc2 = dt(math.sqrt(bc2))
    eps_ = dt(eps)
    if wd != 0.0:
        for p in range(P):
            grad[p] = grad[p] + wd_ * theta[p]     # L2-style weight decay (grad is scratch)
    for p in range(P):
        g = grad[p]
        m = opt_m[p] + c1 * (g - opt_m[p])          # exp_avg.lerp_(grad, 1 - beta1)
        v = opt_v[p] * b2_ + c2 * g * g            # exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
        opt_m[p] = m
        opt_v[p] = v
        denom = math.sqrt(v) / sq_bc2 + eps_
        theta[p] -= step_size * (m / denom)        # param.addcdiv_(exp_avg, denom, -step_size)


@cached_njit(**EXACT_INNER)
def sum_lanes_and_step(lanes_, ws_g, grad, kp, km, kv, opt_step, hyper, cache):
    """The end of an update that saw targets: grad = the partial gradients of
    lanes 0..lanes_-1 of ws_g added in lane order (so the threads change no
    bit), then apply_update on the kernel-layout arrays.  The new weights make
    every cached window stale (the cache's version counter, cache[3])."""
    zero = kp.dtype.type(0)
    P = kp.shape[0]
    for p in range(P):
        grad[p] = zero
    for lane in range(lanes_):
        gp = ws_g[lane]
        for p in range(P):
            grad[p] += gp[p]
    apply_update(kp, grad, km, kv, opt_step, hyper)
    cache[3][0] += 1
