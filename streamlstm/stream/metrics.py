"""Scoring one-step forecasts: River's MAE, RMSE and SMAPE, bit for bit.

``ForecastMetrics`` scores every row, in arrival order, by River's metrics
(``river.metrics`` MAE, RMSE and SMAPE, overall and per series: "worst series",
``--metrics-out``), and the naive last-value forecast by MAE on the same rows
(overall and per series), so the numbers have a yardstick.

Each of these River metrics is a running mean (``river.stats.Mean``: weight
``n``, mean) of a per-row term: MAE ``|y - f|``, RMSE the square root of the
mean of ``(y - f) ** 2``, SMAPE 100 x the mean of ``2 |y - f| / (|y| + |f|)``
(0 where both are 0).  They are kept here as that state - numbers in Python
lists, one entry per series - and updated with River's own formula
(``n += 1; mean += (1 / n) * (x - mean)``) on River's own terms, row by row in
arrival order; ``stream.steps`` does the same for every horizon step and gives
the values (``metric_values``).  Same operations in the same order, so the
numbers are River's bit for bit (``tests/test_metrics.py`` checks them against
River objects), and they do not depend on how rows were batched.  Not River
objects, for two reasons: importing ``river.metrics`` imports ``scipy.stats``
(0.75 s of a 2.7 s warm ``streamlstm run`` on the example), and four metric
objects per row cost ~4 us in method calls, this loop ~1 us.

The rolling window is the last ``window`` scored rows, kept in a ring buffer,
scored afresh when a summary is asked for (what ``river.utils.Rolling`` of each
metric gives over them), which costs nothing per row.  ``state()`` /
``from_state()`` turn the whole object into plain arrays and numbers for the
checkpoint (no pickle): each metric's weight and mean, restored exactly -
resumed = uninterrupted, bit for bit (the same arrays as when these were River
objects, so older checkpoints resume too).

With forecasts of more than one step (``update_steps``), ``steps`` (a
``stream.steps.StepMetrics``) scores every horizon step, per series and overall.

Per series it also sums the one-step prediction bands scored (count, covered,
width: ``update_bands``), for the per-series coverage of ``--metrics-out``.

Memory: about 300 bytes per series (eight numbers and the last value in lists,
the count; measured with tracemalloc over 100,000 series) plus the window.
"""
from __future__ import annotations

import math

import numpy as np

from streamlstm.stream.steps import K_MAE, K_MSE, K_NAIVE, K_SMAPE, N_METRICS, StepMetrics, \
    metric_values

METRIC_NAMES = ("MAE", "RMSE", "SMAPE")


class ForecastMetrics:
    """River's metrics of one-step forecasts, overall and per series.

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
        # Running means (River's stats.Mean state: weight n, mean) of each metric's
        # per-row term, indexed [K_MAE, K_MSE, K_SMAPE, K_NAIVE]: over all rows, and
        # per series (lists, one entry per series in dense index order).
        self._all_n, self._all_mean = [0.0] * N_METRICS, [0.0] * N_METRICS
        self._n = [[] for _ in range(N_METRICS)]
        self._mean = [[] for _ in range(N_METRICS)]
        self.last_obs = []        # latest observed target per series (the naive forecast)
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

    @property
    def n_series(self):
        return len(self.last_obs)

    def update(self, index, y, yhat):
        """Score rows: ``index`` (R,) the series' dense index (0, 1, ... in first-seen
        order), ``y`` (R,) actual (NaN = missing, not scored), ``yhat`` (R,)."""
        need = int(index.max()) + 1 if index.size else 0
        self._grow(need)
        last = self.last_obs
        n_mae, n_mse, n_smape, n_naive = self._n
        m_mae, m_mse, m_smape, m_naive = self._mean
        all_n, all_mean = self._all_n, self._all_mean
        # Scored: rows with a target and a forecast (a series' first row has no
        # forecast yet: the forecaster returns NaN there).
        has_y = ~np.isnan(y)
        ok = has_y & ~np.isnan(yhat)
        for i, a, b, scored in zip(index.tolist(), y.tolist(), yhat.tolist(), ok.tolist()):
            if scored:
                # River's terms: MAE abs(y - f), MSE (y - f) ** 2, SMAPE 2 |y - f| / (|y| + |f|)
                e = abs(a - b)
                sq = (a - b) ** 2
                den = abs(a) + abs(b)
                sm = 0.0 if den == 0 else 2.0 * e / den
                _add(all_n, all_mean, K_MAE, e)
                _add(all_n, all_mean, K_MSE, sq)
                _add(all_n, all_mean, K_SMAPE, sm)
                _add(n_mae, m_mae, i, e)
                _add(n_mse, m_mse, i, sq)
                _add(n_smape, m_smape, i, sm)
                p = last[i]
                if p == p:
                    e = abs(a - p)
                    _add(all_n, all_mean, K_NAIVE, e)
                    _add(n_naive, m_naive, i, e)
            if a == a:
                last[i] = a
        self.counts += np.bincount(index[ok], minlength=self.counts.size)
        self._push(y[ok], yhat[ok])
        self.scored += int(ok.sum())
        self.missing += int(ok.size - has_y.sum())
        self.unforecast += int((has_y & ~ok).sum())

    def _grow(self, need):
        extra = need - len(self.last_obs)
        if extra <= 0:
            return
        for k in range(N_METRICS):
            self._n[k] += [0.0] * extra
            self._mean[k] += [0.0] * extra
        self.last_obs += [math.nan] * extra
        self.counts = np.concatenate([self.counts, np.zeros(extra, np.int64)])

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

    def _table(self):
        """(series, 4, 2): each series' metrics as running-mean states (n, mean)."""
        return np.stack([np.array(self._n, dtype=np.float64).reshape(N_METRICS, -1).T,
                         np.array(self._mean, dtype=np.float64).reshape(N_METRICS, -1).T],
                        axis=-1)

    def per_series_table(self):
        """One entry per series (dense index order): scored rows, MAE, RMSE, SMAPE,
        naive MAE (NaN where none was scored), and with bands their count, coverage
        and mean width."""
        n = self.n_series
        v = metric_values(self._table())
        out = {"rows": self.counts[:n].copy(), "MAE": v["MAE"], "RMSE": v["RMSE"],
               "SMAPE": v["SMAPE"], "naive_MAE": v["naive_MAE"]}
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
        """``{"MAE", "RMSE", "SMAPE"}`` of the window's rows, as
        ``river.utils.Rolling`` of each River metric gives them over those rows."""
        n, mean = [0.0] * N_METRICS, [0.0] * N_METRICS
        for a, b in zip(*(v.tolist() for v in self.recent())):
            e = abs(a - b)
            den = abs(a) + abs(b)
            _add(n, mean, K_MAE, e)
            _add(n, mean, K_MSE, (a - b) ** 2)
            _add(n, mean, K_SMAPE, 0.0 if den == 0 else 2.0 * e / den)
        values = _river_values(n, mean)
        return {k: values[k] for k in METRIC_NAMES}

    def worst(self, n):
        """``n`` series with the largest MAE: ``[(index, mae, scored rows)]``."""
        mae = self._mean[K_MAE]
        cand = [(i, mae[i], int(self.counts[i])) for i in range(self.n_series)
                if self.counts[i] > 0]
        cand.sort(key=lambda t: (-t[1] if math.isfinite(t[1]) else -math.inf, t[0]))
        return cand[:n]

    def summary(self, n_worst=3):
        overall = _river_values(self._all_n, self._all_mean)
        return {"scored": self.scored, "missing": self.missing, "unforecast": self.unforecast,
                "window": self.window,
                "overall": {k: overall[k] for k in METRIC_NAMES},
                "rolling": self.rolling(),
                "rolling_rows": len(self.recent()[0]),
                "naive": {"MAE": overall["naive_MAE"]},
                "worst": self.worst(n_worst),
                "steps": None if self.steps is None else self.steps.report()}

    # -- checkpoint state: arrays and numbers, no pickle ---------------------------------
    def state(self):
        """``(numbers, arrays)``: JSON-able counters and the arrays that restore this
        object exactly (``from_state``).  Each metric's state is a (k, 2) table of
        weight and mean: "overall" holds MAE, RMSE (its mean square), SMAPE (its
        mean fraction) and the naive MAE; "per_series" (MAE), "per_rmse",
        "per_smape" and "per_naive" one row per series."""
        numbers = {"window": self.window, "scored": self.scored, "missing": self.missing,
                   "unforecast": self.unforecast, "ring_next": self._ring_next,
                   "ring_full": self._ring_full}
        table = self._table()
        arrays = {"overall": np.column_stack([self._all_n, self._all_mean]),
                  "bands": self.bands, "last_obs": np.asarray(self.last_obs, dtype=np.float64),
                  "counts": self.counts, "ring": self._ring}
        arrays.update({name: table[:, k].copy() for k, name in enumerate(_PER_SERIES)})
        if self.steps is not None:
            arrays.update({f"steps.{k}": v for k, v in self.steps.state().items()})
        return numbers, arrays

    @classmethod
    def from_state(cls, numbers, arrays):
        self = cls(numbers["window"])
        self.scored, self.missing = int(numbers["scored"]), int(numbers["missing"])
        self.unforecast = int(numbers["unforecast"])
        self._ring_next, self._ring_full = int(numbers["ring_next"]), bool(numbers["ring_full"])
        overall = np.array(arrays["overall"], dtype=np.float64).reshape(N_METRICS, 2)
        self._all_n, self._all_mean = overall[:, 0].tolist(), overall[:, 1].tolist()
        n = len(arrays["per_series"])
        # A checkpoint from before the per-series RMSE/SMAPE/naive metrics restarts
        # them empty (the MAE above, and everything else, continue exactly).
        empty = np.zeros((n, 2))
        for k, name in enumerate(_PER_SERIES):
            t = np.array(arrays.get(name, empty), dtype=np.float64).reshape(n, 2)
            self._n[k], self._mean[k] = t[:, 0].tolist(), t[:, 1].tolist()
        self.bands = np.array(arrays.get("bands", np.zeros((0, 3))),
                              dtype=np.float64).reshape(-1, 3)
        self.last_obs = arrays["last_obs"].tolist()
        self.counts = np.array(arrays["counts"], dtype=np.int64)
        self._ring = np.array(arrays["ring"], dtype=np.float64).reshape(self.window, 2)
        steps = {k[len("steps."):]: v for k, v in arrays.items() if k.startswith("steps.")}
        self.steps = StepMetrics.from_state(steps) if steps else None
        return self


# The checkpoint's per-series tables, in the order K_MAE, K_MSE, K_SMAPE, K_NAIVE.
_PER_SERIES = ("per_series", "per_rmse", "per_smape", "per_naive")


def _add(n, mean, i, x):
    """``river.stats.Mean.update(x)`` on the state ``(n[i], mean[i])``."""
    c = n[i] + 1.0
    n[i] = c
    mean[i] += (1.0 / c) * (x - mean[i])


def _river_values(n, mean):
    """The metrics' values from their states (``metric_values``), as Python floats."""
    return metric_values(np.column_stack([n, mean]))
