"""Scoring one-step forecasts with River metrics (never re-implemented).

``ForecastMetrics`` feeds every scored row, in arrival order, to
``river.metrics`` MAE, RMSE and SMAPE (overall and per series: "worst series",
``--metrics-out``), and scores the naive last-value forecast with a River MAE on
the same rows (overall and per series), so the numbers have a yardstick.  The rolling window is a
``river.utils.Rolling`` of each metric over the last ``window`` scored rows; the
rows themselves are kept in a ring buffer and fed to the ``Rolling`` objects
when a summary is asked for, which gives the same window and costs nothing per
row.  Rows are fed one at a time in a fixed order, so the numbers do not depend
on how rows were batched.  ``state()`` / ``from_state()`` turn the whole object
into plain arrays and numbers for the checkpoint (no pickle): each River metric
here is a running mean, so its state is its weight ``n`` and its mean, restored
exactly - resumed = uninterrupted, bit for bit.

With forecasts of more than one step (``update_steps``), ``steps`` (a
``stream.steps.StepMetrics``) scores every horizon step, per series and overall.

Per series it also sums the one-step prediction bands scored (count, covered,
width: ``update_bands``), for the per-series coverage of ``--metrics-out``.

Memory: about 800 bytes per series (its four River metrics) plus the window.
"""
from __future__ import annotations

import math

import numpy as np
from river import metrics, stats, utils

from streamlstm.stream.steps import StepMetrics

METRIC_NAMES = ("MAE", "RMSE", "SMAPE")
METRIC_CLASSES = (metrics.MAE, metrics.RMSE, metrics.SMAPE)


class ForecastMetrics:
    """River metrics of one-step forecasts.

    >>> m = ForecastMetrics(window=2)
    >>> m.update(np.array([0, 1, 0, 0]), np.array([1.0, 2.0, np.nan, 3.0]),
    ...          np.array([1.5, 2.0, 0.0, 2.0]))
    >>> m.scored, m.missing
    (3, 1)
    >>> s = m.summary()
    >>> s["overall"]["MAE"], s["rolling"]["MAE"], s["naive"]["MAE"]
    (0.5, 0.5, 2.0)
    >>> m.worst(1)
    [(0, 0.75, 2)]
    """

    def __init__(self, window=1000):
        self.window = int(window)
        self.overall = [cls() for cls in METRIC_CLASSES]
        self.naive = metrics.MAE()
        self.last_obs = []        # latest observed target per series (the naive forecast)
        self.per_series = []      # River MAE per series
        self.per_rmse = []        # River RMSE per series
        self.per_smape = []       # River SMAPE per series
        self.per_naive = []       # River MAE of the naive forecast per series
        self.bands = np.zeros((0, 3))  # per series: one-step bands scored, covered, width sum
        self.counts = np.zeros(0, dtype=np.int64)  # scored rows per series
        self.scored = 0
        self.missing = 0          # rows without a target
        self.unforecast = 0       # rows with a target but no forecast (a series' first rows)
        self.steps = None         # StepMetrics of every horizon step (horizon > 1)
        # The last `window` scored rows (y, yhat), oldest first once unrolled.
        self._ring = np.zeros((self.window, 2))
        self._ring_next = 0
        self._ring_full = False

    def update(self, index, y, yhat):
        """Score rows: ``index`` (R,) the series' dense index (0, 1, ... in first-seen
        order), ``y`` (R,) actual (NaN = missing, not scored), ``yhat`` (R,)."""
        per, last = self.per_series, self.last_obs
        per_rmse, per_smape, per_naive = self.per_rmse, self.per_smape, self.per_naive
        need = int(index.max()) + 1 if index.size else 0
        while len(per) < need:
            per.append(metrics.MAE())
            per_rmse.append(metrics.RMSE())
            per_smape.append(metrics.SMAPE())
            per_naive.append(metrics.MAE())
            last.append(math.nan)
        # Scored: rows with a target and a forecast (a series' first row has no
        # forecast yet: the forecaster returns NaN there).
        has_y = ~np.isnan(y)
        ok = has_y & ~np.isnan(yhat)
        mae, rmse, smape = (m.update for m in self.overall)
        naive = self.naive.update
        for i, a, b, scored in zip(index.tolist(), y.tolist(), yhat.tolist(), ok.tolist()):
            if scored:
                mae(a, b)
                rmse(a, b)
                smape(a, b)
                per[i].update(a, b)
                per_rmse[i].update(a, b)
                per_smape[i].update(a, b)
                p = last[i]
                if p == p:
                    naive(a, p)
                    per_naive[i].update(a, p)
            if a == a:
                last[i] = a
        if need > self.counts.size:
            self.counts = np.concatenate([self.counts, np.zeros(need - self.counts.size, np.int64)])
        self.counts += np.bincount(index[ok], minlength=self.counts.size)
        self._push(y[ok], yhat[ok])
        self.scored += int(ok.sum())
        self.missing += int(ok.size - has_y.sum())
        self.unforecast += int((has_y & ~ok).sum())

    def update_steps(self, index, y, yhat):
        """Score every horizon step of the forecasts ``yhat`` (R, H) made at rows of
        series ``index`` with values ``y`` (``StepMetrics``); nothing when H is 1."""
        if yhat.shape[1] < 2:
            return
        if self.steps is None:
            self.steps = StepMetrics(yhat.shape[1])
        self.steps.update(index, y, yhat)

    def update_bands(self, index, scores):
        """Add band scores of rows of series ``index``, in arrival order: one-step
        (R, 3: covered 1/0, width, Winkler; NaN where none), or every step (R, H,
        3), of which steps 2..H go to ``steps``."""
        if scores.ndim == 3:
            if self.steps is not None:
                self.steps.update_bands(index, scores)
            scores = scores[:, 0]
        need = int(index.max()) + 1 if index.size else 0
        if need > len(self.bands):
            self.bands = np.concatenate([self.bands, np.zeros((need - len(self.bands), 3))])
        ok = ~np.isnan(scores[:, 0])
        # np.add.at adds row by row in order: the sums do not depend on batching.
        np.add.at(self.bands, index[ok], np.column_stack([np.ones(int(ok.sum())),
                                                          scores[ok, 0], scores[ok, 1]]))

    def per_series_table(self):
        """One entry per series (dense index order): scored rows, MAE, RMSE, SMAPE,
        naive MAE, and with bands their count, coverage and mean width."""
        n = len(self.per_series)
        get = lambda ms: np.array([m.get() if c else math.nan     # noqa: E731
                                   for m, c in zip(ms, self.counts.tolist())], dtype=np.float64)
        naive = np.array([m.get() if _weight(m) else math.nan for m in self.per_naive[:n]])
        out = {"rows": self.counts[:n].copy(), "MAE": get(self.per_series),
               "RMSE": get(self.per_rmse), "SMAPE": get(self.per_smape), "naive_MAE": naive}
        if self.bands[:, 0].any():
            b = np.zeros((n, 3))
            b[:len(self.bands)] = self.bands[:n]
            with np.errstate(invalid="ignore", divide="ignore"):
                out["bands"] = b[:, 0].astype(np.int64)
                out["coverage"] = b[:, 1] / b[:, 0]
                out["width"] = b[:, 2] / b[:, 0]
        if self.steps is not None:
            out.update(self.steps.per_series_columns(n))
        return out

    def _push(self, y, yhat):
        W = self.window
        n = y.size
        if n >= W:
            self._ring[:, 0], self._ring[:, 1] = y[-W:], yhat[-W:]
            self._ring_next, self._ring_full = 0, True
            return
        k = self._ring_next
        first = min(n, W - k)
        self._ring[k:k + first, 0], self._ring[k:k + first, 1] = y[:first], yhat[:first]
        rest = n - first
        self._ring[:rest, 0], self._ring[:rest, 1] = y[first:], yhat[first:]
        self._ring_next = (k + n) % W
        self._ring_full = self._ring_full or k + n >= W

    def recent(self):
        """The window's rows, oldest first: (y, yhat)."""
        if self._ring_full:
            r = np.roll(self._ring, -self._ring_next, axis=0)
        else:
            r = self._ring[:self._ring_next]
        return r[:, 0], r[:, 1]

    def rolling(self):
        """``river.utils.Rolling`` of MAE, RMSE and SMAPE over the window's rows."""
        rolls = [utils.Rolling(cls, window_size=self.window) for cls in METRIC_CLASSES]
        for a, b in zip(*(v.tolist() for v in self.recent())):
            for r in rolls:
                r.update(a, b)
        return rolls

    def worst(self, n):
        """``n`` series with the largest MAE: ``[(index, mae, scored rows)]``."""
        cand = [(i, m.get(), int(self.counts[i])) for i, m in enumerate(self.per_series)
                if self.counts[i] > 0]
        cand.sort(key=lambda t: (-t[1] if math.isfinite(t[1]) else -math.inf, t[0]))
        return cand[:n]

    def summary(self, n_worst=3):
        rolls = self.rolling()
        return {"scored": self.scored, "missing": self.missing, "unforecast": self.unforecast,
                "window": self.window,
                "overall": {k: m.get() for k, m in zip(METRIC_NAMES, self.overall)},
                "rolling": {k: r.get() for k, r in zip(METRIC_NAMES, rolls)},
                "rolling_rows": len(rolls[0].window),
                "naive": {"MAE": self.naive.get()},
                "worst": self.worst(n_worst),
                "steps": None if self.steps is None else self.steps.report()}

    # -- checkpoint state: arrays and numbers, no pickle ---------------------------------
    def state(self):
        """``(numbers, arrays)``: JSON-able counters and the arrays that restore this
        object exactly (``from_state``)."""
        numbers = {"window": self.window, "scored": self.scored, "missing": self.missing,
                   "unforecast": self.unforecast, "ring_next": self._ring_next,
                   "ring_full": self._ring_full}
        arrays = {"overall": _means_state(self.overall + [self.naive]),
                  "per_series": _means_state(self.per_series),
                  "per_rmse": _means_state(self.per_rmse),
                  "per_smape": _means_state(self.per_smape),
                  "per_naive": _means_state(self.per_naive), "bands": self.bands,
                  "last_obs": np.asarray(self.last_obs, dtype=np.float64),
                  "counts": self.counts, "ring": self._ring}
        if self.steps is not None:
            arrays.update({f"steps.{k}": v for k, v in self.steps.state().items()})
        return numbers, arrays

    @classmethod
    def from_state(cls, numbers, arrays):
        self = cls(numbers["window"])
        self.scored, self.missing = int(numbers["scored"]), int(numbers["missing"])
        self.unforecast = int(numbers["unforecast"])
        self._ring_next, self._ring_full = int(numbers["ring_next"]), bool(numbers["ring_full"])
        *self.overall, self.naive = _means_from_state(METRIC_CLASSES + (metrics.MAE,),
                                                      arrays["overall"])
        n = len(arrays["per_series"])
        self.per_series = _means_from_state((metrics.MAE,) * n, arrays["per_series"])
        # A checkpoint from before the per-series RMSE/SMAPE/naive metrics restarts
        # them empty (the MAE above, and everything else, continue exactly).
        empty = np.zeros((n, 2))
        self.per_rmse = _means_from_state((metrics.RMSE,) * n, arrays.get("per_rmse", empty))
        self.per_smape = _means_from_state((metrics.SMAPE,) * n, arrays.get("per_smape", empty))
        self.per_naive = _means_from_state((metrics.MAE,) * n, arrays.get("per_naive", empty))
        self.bands = np.array(arrays.get("bands", np.zeros((0, 3))),
                              dtype=np.float64).reshape(-1, 3)
        self.last_obs = arrays["last_obs"].tolist()
        self.counts = np.array(arrays["counts"], dtype=np.int64)
        self._ring = np.array(arrays["ring"], dtype=np.float64).reshape(self.window, 2)
        steps = {k[len("steps."):]: v for k, v in arrays.items() if k.startswith("steps.")}
        self.steps = StepMetrics.from_state(steps) if steps else None
        return self


# River keeps a MeanMetric's running mean in the attribute ``_mean`` (a
# ``stats.Mean``: public weight ``n``, mean from ``get()``) and offers no public
# way to set it; these three functions are the one place that knows, so a River
# upgrade that renames it breaks here, loudly, and nowhere else.
def _weight(m):
    """How many values a River MeanMetric has seen."""
    return m._mean.n


def _means_state(ms):
    """(k, 2) float64: each River MeanMetric's weight and running mean."""
    out = np.zeros((len(ms), 2))
    for k, m in enumerate(ms):
        mean = m._mean
        out[k] = mean.n, mean.get()
    return out


def _means_from_state(classes, table):
    ms = []
    for cls, (n, mean) in zip(classes, table.tolist()):
        m = cls()
        m._mean = stats.Mean._from_state(n, mean)
        ms.append(m)
    return ms
