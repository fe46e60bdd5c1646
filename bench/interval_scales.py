"""Which running error scale calibrates the intervals best (issue 12): a replay.

    bench/.venv-stats/bin/python bench/interval_scales.py

The held-out series of ``bench/intervals.py --holdout`` are over-covered (austres
98%): a short series whose errors shrink as the model learns keeps bands sized by
its first errors.  This script runs the shipped ``LSTMForecaster()`` once per
series of the panel and the held-out set (``bench/intervals.py``'s
``run_model``), keeps its forecasts, and replays the interval rule of
``streamlstm/forecast/intervals.py`` on them (``_replay``: a plain twin of
``update_rows`` for one series) with other error scales in place of the shipped
one (a mean of |error| over ~50 errors).  It prints, per rule, how many series
land within 87-93% after the first 20% of the forecasts, the mean distance from
90%, and the Winkler score relative to conformal naive (geometric mean).

The replay scores every step on the forecasts ``forecast(h)`` returns; the model's
own trackers score its learn-time rollouts, which differ slightly for steps 2 and
on, so the replay is near, not equal to, the real runs (the shipped rule: panel
16 of 16 and 0.649 here against 16 of 16 and 0.650; held out 4 of 9 and 0.785
against 4 of 9 and 0.782).  Results: bench/README.md, stop 35.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import intervals as B  # noqa: E402  (bench/intervals.py)
from river import datasets  # noqa: E402

from streamlstm.forecast import intervals as I  # noqa: E402

MEAN, HALF, RESTART, MIN_FAST = range(4)
RULES = [  # label, rule, p1, p2
    ("shipped: mean over ~50", MEAN, 50.0, 0.0),
    ("mean over ~60", MEAN, 60.0, 0.0),
    ("mean over ~40", MEAN, 40.0, 0.0),
    ("mean over ~35", MEAN, 35.0, 0.0),
    ("mean over ~30", MEAN, 30.0, 0.0),
    ("mean over ~20", MEAN, 20.0, 0.0),
    ("mean over the last half of the errors, 10..50", HALF, 50.0, 10.0),
    ("mean over the last half of the errors, 20..50", HALF, 50.0, 20.0),
    ("mean restarted after 10 errors, then ~50", RESTART, 50.0, 10.0),
    ("mean restarted after 20 errors, then ~50", RESTART, 50.0, 20.0),
    ("min(mean over ~50, 1.2 x mean over ~20)", MIN_FAST, 50.0, 1.2),
    ("min(mean over ~50, 1.4 x mean over ~20)", MIN_FAST, 50.0, 1.4),
    ("min(mean over ~50, 2 x mean over ~20)", MIN_FAST, 50.0, 2.0),
]


@njit
def _replay(y, yhat, rule, p1, p2, a_side, eta, eta_pool, q0):
    """The bands (lo, hi) (T, H) that ``intervals.update_rows`` issues for one
    series whose step-j forecast made at row t is ``yhat[t, j]``, with the error
    scale of ``rule`` (the shipped one: MEAN, p1 = ``SCALE_WINDOW``)."""
    T, H = yhat.shape
    trk = np.zeros((H, 6))     # offsets lo, hi; scale; count; two scratch scales
    pool = np.empty((H, 2))
    pool[:, 0], pool[:, 1] = -q0, q0
    lo, hi = np.full((T, H), np.nan), np.full((T, H), np.nan)
    for t in range(T):
        for j in range(H):
            f = yhat[t, j]
            if trk[j, 3] >= I.MIN_SCORED and f == f:
                ql, qh = pool[j, 0] + trk[j, 0], pool[j, 1] + trk[j, 1]
                if ql > qh:
                    ql = qh = 0.5 * (ql + qh)
                lo[t, j], hi[t, j] = f + trk[j, 2] * ql, f + trk[j, 2] * qh
        for j in range(min(H, t + 1)):
            f, yr = yhat[t - j, j], y[t]
            if not (yr == yr and f == f):
                continue
            if lo[t - j, j] == lo[t - j, j]:
                miss_lo, miss_hi = yr < lo[t - j, j], yr > hi[t - j, j]
            else:
                sc = trk[j, 2]
                miss_lo = yr < f + sc * (pool[j, 0] + trk[j, 0])
                miss_hi = yr > f + sc * (pool[j, 1] + trk[j, 1])
            n = trk[j, 3]
            if n >= 1.0:
                g_hi = (1.0 if miss_hi else 0.0) - a_side
                g_lo = (1.0 if miss_lo else 0.0) - a_side
                trk[j, 1] += eta * g_hi
                trk[j, 0] -= eta * g_lo
                pool[j, 1] += eta_pool * g_hi
                pool[j, 0] -= eta_pool * g_lo
            e = abs(yr - f)
            if rule == MEAN:
                trk[j, 2] += max(1.0 / (n + 1.0), 1.0 / p1) * (e - trk[j, 2])
            elif rule == HALF:
                mem = min(p1, max(p2, (n + 1.0) / 2.0))
                trk[j, 2] += max(1.0 / (n + 1.0), 1.0 / mem) * (e - trk[j, 2])
            elif rule == RESTART:
                m = n - p2 + 1.0 if n >= p2 else n      # the scale so far counts as one error
                trk[j, 2] += max(1.0 / (m + 1.0), 1.0 / p1) * (e - trk[j, 2])
            else:   # MIN_FAST
                trk[j, 4] += max(1.0 / (n + 1.0), 1.0 / p1) * (e - trk[j, 4])
                trk[j, 5] += max(1.0 / (n + 1.0), 1.0 / 20.0) * (e - trk[j, 5])
                trk[j, 2] = min(trk[j, 4], p2 * trk[j, 5])
            trk[j, 3] = n + 1.0
    return lo, hi


def recorded():
    """name -> (group, y, yhat, mask, Winkler of conformal naive) per series."""
    out = {}
    for group, held in (("panel", False), ("held out", True)):
        for name, (rows, h) in B.panel_series(held).items():
            ds = getattr(datasets, name)() if rows is None else rows
            y, yhat, lo, hi, _ = B.run_model(ds, h)
            alpha = 1 - B.COVERAGE
            nl, nh = B.rolling_quantile_band(y, B.naive_center(y, h), h, alpha)
            jl, jh = B.rolling_quantile_band(y, yhat, h, alpha)
            mask = ~np.isnan(lo) & ~np.isnan(hi)     # the rows intervals.py scores
            for a in (nl, nh, jl, jh):
                mask &= ~np.isnan(a)
            ref = np.mean([s["winkler"] for s in B.scores(y, nl, nh, h, alpha, mask)])
            out[name] = (group, y, yhat, mask, ref)
            print(f"{name}: recorded", file=sys.stderr, flush=True)
    return out


def main():
    rec = recorded()
    a_side = (1 - B.COVERAGE) / 2
    q0 = I.initial_q(B.COVERAGE)
    print("| scale | panel in 87–93% | mean \\|cov − 90\\| | Winkler | held out in 87–93% "
          "| mean \\|cov − 90\\| | Winkler | outside 87–93% |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, rule, p1, p2 in RULES:
        cells, outside = [], []
        for group in ("panel", "held out"):
            covs, ratios = [], []
            for name, (g, y, yhat, mask, ref) in rec.items():
                if g != group:
                    continue
                lo, hi = _replay(y, yhat, rule, p1, p2, a_side, I.ETA, I.ETA_POOL, q0)
                steps = B.scores(y, lo, hi, yhat.shape[1], 1 - B.COVERAGE,
                                 mask & ~np.isnan(lo))
                cov = float(np.mean([s["coverage"] for s in steps]))
                covs.append(cov)
                ratios.append(np.mean([s["winkler"] for s in steps]) / ref)
                if not 0.87 <= cov <= 0.93:
                    outside.append(f"{name} {cov:.1%}")
            inside = sum(0.87 <= c <= 0.93 for c in covs)
            cells += [f"{inside} of {len(covs)}",
                      f"{100 * np.mean(np.abs(np.array(covs) - 0.9)):.2f}",
                      f"{math.exp(np.mean(np.log(ratios))):.3f}"]
        print(f"| {label} | " + " | ".join(cells) + f" | {', '.join(outside)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
