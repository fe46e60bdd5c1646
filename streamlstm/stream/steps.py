"""Scoring every horizon step of multi-step forecasts (``--horizon H > 1``).

At each row a run forecasts the series' next ``H`` values: column ``j`` of the
row's forecasts (``yhat`` for j = 0, ``yhat_h{j+1}`` after) is the forecast, made
before the row's value was seen, of the value the series reports ``j`` rows
later: step ``j + 1``.  ``StepMetrics`` keeps each series' last ``H`` rows of
forecasts (a ring) and, when a row's value arrives, scores the forecast made
``j`` rows earlier for it, for every step: MAE, RMSE and SMAPE, and the naive
forecast of the same step (the latest value known when that forecast was made)
by MAE, per series and over all series.

The metrics are River's (``river.metrics`` MAE, MSE -> RMSE, SMAPE: running means
of a per-row term) kept as arrays - a weight ``n`` and a mean per metric, as
``metrics.ForecastMetrics`` keeps the one-step ones - and updated by River's own formula
(``river.stats.Mean.update``: ``n += 1; mean += (1 / n) * (x - mean)``) on
River's own per-row terms, row by row in arrival order, in one Numba kernel:
``H`` steps x 4 metrics per series as Python objects would cost ~1 kB per step
per series and ~1 us per update.  Same operations in the same order, so the
numbers are River's bit for bit (``tests/test_cli_steps.py`` checks it against
River objects), independent of batching, and a resumed run continues exactly.

With prediction intervals, ``update_bands`` sums per series and step the bands
scored (count, covered, width), for the per-step coverage of ``--metrics-out``.

Memory per series: ``H * H`` (the ring) ``+ 12 * H`` floats.
"""
from __future__ import annotations

import math

import numpy as np

from streamlstm.backends.specialize import INNER, njit

# The metrics per step, in the last-but-one axis of ``per`` and ``overall``; the
# last axis is River's running-mean state (weight n, mean).
K_MAE, K_MSE, K_SMAPE, K_NAIVE = range(4)
N_METRICS = 4


@njit(cache=True, **INNER)
def _mean_update(table, k, x):
    """``river.stats.Mean.update(x)`` on the state ``table[k] = (n, mean)``."""
    n = table[k, 0] + 1.0
    table[k, 0] = n
    table[k, 1] += (1.0 / n) * (x - table[k, 1])


@njit(cache=True, **INNER)
def _score(table, y, f, p):
    """River's per-row terms of MAE, MSE, SMAPE (and the naive MAE)."""
    e = abs(y - f)
    _mean_update(table, K_MAE, e)
    _mean_update(table, K_MSE, (y - f) ** 2)
    den = abs(y) + abs(f)
    _mean_update(table, K_SMAPE, 0.0 if den == 0 else 2.0 * e / den)
    if p == p:
        _mean_update(table, K_NAIVE, abs(y - p))


@njit(cache=True)
def score_rows(index, y, yhat, ring, naive_ring, last_obs, pos, per, overall):
    """Score rows in arrival order (module docstring), then remember their
    forecasts.  ``index`` (R,) dense series, ``y`` (R,) values (NaN: missing),
    ``yhat`` (R, H); ``ring`` (S, H, H), ``naive_ring`` (S, H), ``last_obs`` (S,),
    ``pos`` (S,) rows seen per series; ``per`` (S, H, 4, 2), ``overall`` (H, 4, 2)."""
    R, H = yhat.shape
    for r in range(R):
        s = index[r]
        t = pos[s]
        yr = y[r]
        if yr == yr:
            for j in range(min(H, t + 1)):
                if j == 0:
                    f, p = yhat[r, 0], last_obs[s]
                else:
                    q = (t - j) % H
                    f, p = ring[s, q, j], naive_ring[s, q]
                if f == f:
                    _score(per[s, j], yr, f, p)
                    _score(overall[j], yr, f, p)
        q = t % H
        for j in range(H):
            ring[s, q, j] = yhat[r, j]
        naive_ring[s, q] = last_obs[s]
        if yr == yr:
            last_obs[s] = yr
        pos[s] = t + 1


class StepMetrics:
    """River MAE, RMSE, SMAPE and naive MAE of every horizon step, per series and
    overall (module docstring).

    >>> m = StepMetrics(2)
    >>> m.update(np.array([0, 0, 0]), np.array([1.0, 2.0, 4.0]),
    ...          np.array([[np.nan, 1.5], [1.0, 3.0], [2.0, 5.0]]))
    >>> [(r["step"], r["scored"], r["MAE"], r["naive_MAE"]) for r in m.report()]
    [(1, 2, 1.5, 1.5), (2, 2, 0.75, 3.0)]
    """

    def __init__(self, horizon):
        self.horizon = H = int(horizon)
        self.ring = np.full((0, H, H), np.nan)
        self.naive_ring = np.full((0, H), np.nan)
        self.last_obs = np.zeros(0)
        self.pos = np.zeros(0, dtype=np.int64)
        self.per = np.zeros((0, H, N_METRICS, 2))
        self.overall = np.zeros((H, N_METRICS, 2))
        self.bands = np.zeros((0, H, 3))    # per series and step: bands scored, covered, width

    def _grow(self, need):
        extra = need - self.pos.size
        if extra <= 0:
            return
        H = self.horizon
        self.ring = np.concatenate([self.ring, np.full((extra, H, H), np.nan)])
        self.naive_ring = np.concatenate([self.naive_ring, np.full((extra, H), np.nan)])
        self.last_obs = np.concatenate([self.last_obs, np.full(extra, np.nan)])
        self.pos = np.concatenate([self.pos, np.zeros(extra, dtype=np.int64)])
        self.per = np.concatenate([self.per, np.zeros((extra, H, N_METRICS, 2))])

    def update(self, index, y, yhat):
        """Rows of series ``index`` (R,) in arrival order: values ``y`` (R,), the
        forecasts made at them ``yhat`` (R, H)."""
        if yhat.shape[1] != self.horizon:
            raise ValueError(f"forecasts of {yhat.shape[1]} steps, these metrics track "
                             f"{self.horizon}")
        if not index.size:
            return
        self._grow(int(index.max()) + 1)
        score_rows(np.ascontiguousarray(index, dtype=np.int64),
                   np.ascontiguousarray(y, dtype=np.float64),
                   np.ascontiguousarray(yhat, dtype=np.float64), self.ring, self.naive_ring,
                   self.last_obs, self.pos, self.per, self.overall)

    def update_bands(self, index, scores):
        """Add the band scores (R, H, 3: covered 1/0, width, Winkler; NaN where none;
        ``intervals.Band.scores``) of rows of series ``index``, in arrival order."""
        if not index.size:
            return
        need = int(index.max()) + 1
        if need > len(self.bands):
            self.bands = np.concatenate([self.bands,
                                         np.zeros((need - len(self.bands), self.horizon, 3))])
        r, j = np.nonzero(~np.isnan(scores[:, :, 0]))
        # np.add.at adds row by row in order: the sums do not depend on batching.
        np.add.at(self.bands, (index[r], j), np.column_stack([np.ones(r.size), scores[r, j, 0],
                                                              scores[r, j, 1]]))

    def report(self):
        """Per step over all series: ``{"step", "scored", "MAE", "RMSE", "SMAPE",
        "naive_MAE", "naive_scored"}`` (NaN where nothing was scored)."""
        return [dict(step=j + 1, **metric_values(self.overall[j])) for j in range(self.horizon)]

    def per_series_columns(self, n, first_step=2):
        """Columns ``rows_h{h}, MAE_h{h}, RMSE_h{h}, SMAPE_h{h}, naive_MAE_h{h}`` (and
        with bands ``bands_h{h}, coverage_h{h}, width_h{h}``) for steps
        ``first_step..H`` of the first ``n`` series (NaN where not scored)."""
        per = np.zeros((n, self.horizon, N_METRICS, 2))
        m = min(n, len(self.per))
        per[:m] = self.per[:m]
        bands = np.zeros((n, self.horizon, 3))
        bands[:min(n, len(self.bands))] = self.bands[:n]
        out = {}
        for j in range(first_step - 1, self.horizon):
            v = metric_values(per[:, j])
            for key in ("scored", "MAE", "RMSE", "SMAPE", "naive_MAE"):
                name = "rows" if key == "scored" else key
                out[f"{name}_h{j + 1}"] = v[key]
            if self.bands.any():
                b = bands[:, j]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[f"bands_h{j + 1}"] = b[:, 0].astype(np.int64)
                    out[f"coverage_h{j + 1}"] = b[:, 1] / b[:, 0]
                    out[f"width_h{j + 1}"] = b[:, 2] / b[:, 0]
        return out

    def state(self):
        return {"ring": self.ring, "naive_ring": self.naive_ring, "last_obs": self.last_obs,
                "pos": self.pos, "per": self.per, "overall": self.overall, "bands": self.bands}

    @classmethod
    def from_state(cls, arrays):
        overall = np.array(arrays["overall"], dtype=np.float64)
        self = cls(overall.shape[0])
        H = self.horizon
        self.overall = overall.reshape(H, N_METRICS, 2)
        self.ring = np.array(arrays["ring"], dtype=np.float64).reshape(-1, H, H)
        self.naive_ring = np.array(arrays["naive_ring"], dtype=np.float64).reshape(-1, H)
        self.last_obs = np.array(arrays["last_obs"], dtype=np.float64).reshape(-1)
        self.pos = np.array(arrays["pos"], dtype=np.int64).reshape(-1)
        self.per = np.array(arrays["per"], dtype=np.float64).reshape(-1, H, N_METRICS, 2)
        self.bands = np.array(arrays.get("bands", np.zeros((0, H, 3))),
                              dtype=np.float64).reshape(-1, H, 3)
        return self


def metric_values(t):
    """Metric values from running-mean states ``t`` (..., 4, 2), as River's
    ``get()`` gives them (RMSE = MSE ** 0.5, SMAPE in percent); NaN where a
    metric saw nothing."""
    n = t[..., :, 0]
    mean = np.where(n > 0, t[..., :, 1], math.nan)
    scored = n[..., K_MAE].astype(np.int64)
    naive_scored = n[..., K_NAIVE].astype(np.int64)
    # Python's float ** 0.5, as River's RMSE.get(), value by value.
    rmse = np.array([v ** 0.5 for v in np.ravel(mean[..., K_MSE]).tolist()]).reshape(
        scored.shape)
    if not scored.ndim:
        return {"scored": int(scored), "MAE": float(mean[K_MAE]), "RMSE": float(rmse),
                "SMAPE": float(100 * mean[K_SMAPE]), "naive_MAE": float(mean[K_NAIVE]),
                "naive_scored": int(naive_scored)}
    return {"scored": scored, "MAE": mean[..., K_MAE], "RMSE": rmse,
            "SMAPE": 100 * mean[..., K_SMAPE], "naive_MAE": mean[..., K_NAIVE]}
