"""Optimizers (docs/spec.md section 4), exactly as ``torch.optim.SGD`` and
``torch.optim.Adam``, plus gradient-norm clipping as ``clip_grad_norm_``.

``SGD`` and ``Adam`` are plain configuration objects: the arithmetic runs inside
each backend on the flat ``theta``/``opt_m``/``opt_v`` arrays of ``layout.py``.
``apply_update`` below is the readable NumPy version every backend is checked
against.
"""
from __future__ import annotations

import math

import numpy as np

from streamlstm.core.checks import check_number
from streamlstm.errors import InputError

# Layout of the float64 ``hyper`` vector handed to the kernels.
H_KIND, H_LR, H_MOMENTUM, H_BETA1, H_BETA2, H_EPS, H_WD, H_CLIP = range(8)
KIND_SGD, KIND_ADAM = 0.0, 1.0
N_HYPER = 8


class SGD:
    """Stochastic gradient descent, as ``torch.optim.SGD(lr, momentum)``
    (no dampening, no Nesterov, no weight decay).

    >>> SGD(lr=0.01, momentum=0.9)
    SGD(lr=0.01, momentum=0.9)
    """

    def __init__(self, lr=0.01, momentum=0.0):
        self.lr = lr
        self.momentum = momentum
        check_number("SGD", "lr", lr, lo=0.0, lo_open=True)
        check_number("SGD", "momentum", momentum, lo=0.0, hi=1.0)

    def __repr__(self):
        return f"SGD(lr={self.lr!r}, momentum={self.momentum!r})"

    def __eq__(self, other):
        return type(other) is SGD and self.config() == other.config()

    def config(self) -> dict:
        return {"name": "SGD", "lr": float(self.lr), "momentum": float(self.momentum)}

    def hyper(self, clip_norm) -> np.ndarray:
        h = np.zeros(N_HYPER)
        h[H_KIND], h[H_LR], h[H_MOMENTUM] = KIND_SGD, self.lr, self.momentum
        h[H_CLIP] = -1.0 if clip_norm is None else float(clip_norm)
        return h


class Adam:
    """Adam, as ``torch.optim.Adam(lr, betas, eps, weight_decay)`` (L2-style weight
    decay added to the gradient, bias-corrected moments, one step count per update).

    >>> Adam(lr=1e-3)
    Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        check_number("Adam", "lr", lr, lo=0.0, lo_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InputError(f"Adam(betas={betas!r}) must be a pair (beta1, beta2)")
        check_number("Adam", "betas[0]", betas[0], lo=0.0, hi=1.0, hi_open=True)
        check_number("Adam", "betas[1]", betas[1], lo=0.0, hi=1.0, hi_open=True)
        check_number("Adam", "eps", eps, lo=0.0)
        check_number("Adam", "weight_decay", weight_decay, lo=0.0)

    def __repr__(self):
        return (f"Adam(lr={self.lr!r}, betas={tuple(self.betas)!r}, eps={self.eps!r}, "
                f"weight_decay={self.weight_decay!r})")

    def __eq__(self, other):
        return type(other) is Adam and self.config() == other.config()

    def config(self) -> dict:
        return {"name": "Adam", "lr": float(self.lr), "betas": [float(b) for b in self.betas],
                "eps": float(self.eps), "weight_decay": float(self.weight_decay)}

    def hyper(self, clip_norm) -> np.ndarray:
        h = np.zeros(N_HYPER)
        h[H_KIND], h[H_LR] = KIND_ADAM, self.lr
        h[H_BETA1], h[H_BETA2] = self.betas
        h[H_EPS], h[H_WD] = self.eps, self.weight_decay
        h[H_CLIP] = -1.0 if clip_norm is None else float(clip_norm)
        return h


def optimizer_from_config(cfg: dict):
    if cfg.get("name") == "SGD":
        return SGD(lr=cfg["lr"], momentum=cfg["momentum"])
    if cfg.get("name") == "Adam":
        return Adam(lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                    weight_decay=cfg["weight_decay"])
    raise InputError(f"unknown optimizer config {cfg!r}")


def apply_update(theta, grad, opt_m, opt_v, opt_step, hyper):
    """Reference optimizer step on the flat arrays, in place (docs/spec.md section 4).

    ``grad`` is modified (clipped).  ``opt_step`` is a (1,) int64 array.
    Arithmetic follows torch exactly: clip_grad_norm_ scales by
    min(1, c / (||g||_2 + 1e-6)); SGD keeps buf = g on the first step then
    buf = momentum * buf + g; Adam is torch's single-tensor implementation with
    its Python-float bias corrections.
    """
    dt = theta.dtype.type
    clip = hyper[H_CLIP]
    if clip > 0:
        norm = math.sqrt(float(np.dot(grad, grad)))
        coef = min(1.0, clip / (norm + 1e-6))
        grad *= dt(coef)
    opt_step[0] += 1
    t = int(opt_step[0])
    lr = hyper[H_LR]
    if hyper[H_KIND] == KIND_SGD:
        mom = hyper[H_MOMENTUM]
        if mom != 0.0:
            if t == 1:
                opt_m[:] = grad
            else:
                opt_m *= dt(mom)
                opt_m += grad
            d = opt_m
        else:
            d = grad
        theta -= dt(lr) * d
        return
    b1, b2, eps, wd = hyper[H_BETA1], hyper[H_BETA2], hyper[H_EPS], hyper[H_WD]
    if wd != 0.0:
        grad = grad + dt(wd) * theta
    opt_m += dt(1.0 - b1) * (grad - opt_m)          # torch: exp_avg.lerp_(grad, 1 - beta1)
    opt_v *= dt(b2)
    opt_v += dt(1.0 - b2) * grad * grad             # exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
    bc1 = 1.0 - b1 ** t
    bc2 = 1.0 - b2 ** t
    step_size = lr / bc1
    denom = np.sqrt(opt_v) / dt(math.sqrt(bc2)) + dt(eps)
    theta -= dt(step_size) * (opt_m / denom)        # param.addcdiv_(exp_avg, denom, -step_size)
