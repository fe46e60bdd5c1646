"""Scoring and showing one-step forecasts: River metrics (never re-implemented)
and the actual-vs-forecast plot.

``ForecastMetrics`` feeds every scored row, in arrival order, to
``river.metrics`` MAE, RMSE and SMAPE (overall), to a River MAE per series (for
"worst series"), and scores the naive last-value forecast with a River MAE on
the same rows, so the numbers have a yardstick.  The rolling window is a
``river.utils.Rolling`` of each metric over the last ``window`` scored rows; the
rows themselves are kept in a ring buffer and fed to the ``Rolling`` objects
when a summary is asked for, which gives the same window and costs nothing per
row.  Rows are fed one at a time in a fixed order, so the numbers do not depend
on how rows were batched, and the whole object pickles into a checkpoint:
resumed = uninterrupted, bit for bit.

Memory: about 180 bytes per series (its River MAE) plus the window.
"""
from __future__ import annotations

import math

import numpy as np
from river import metrics, utils

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
        self.counts = np.zeros(0, dtype=np.int64)  # scored rows per series
        self.scored = 0
        self.missing = 0          # rows without a target
        self.unforecast = 0       # rows with a target but no forecast (a series' first rows)
        # The last `window` scored rows (y, yhat), oldest first once unrolled.
        self._ring = np.zeros((self.window, 2))
        self._ring_next = 0
        self._ring_full = False

    def update(self, index, y, yhat):
        """Score rows: ``index`` (R,) the series' dense index (0, 1, ... in first-seen
        order), ``y`` (R,) actual (NaN = missing, not scored), ``yhat`` (R,)."""
        per, last = self.per_series, self.last_obs
        need = int(index.max()) + 1 if index.size else 0
        while len(per) < need:
            per.append(metrics.MAE())
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
                p = last[i]
                if p == p:
                    naive(a, p)
            if a == a:
                last[i] = a
        if need > self.counts.size:
            self.counts = np.concatenate([self.counts, np.zeros(need - self.counts.size, np.int64)])
        self.counts += np.bincount(index[ok], minlength=self.counts.size)
        self._push(y[ok], yhat[ok])
        self.scored += int(ok.sum())
        self.missing += int(ok.size - has_y.sum())
        self.unforecast += int((has_y & ~ok).sum())

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
                "worst": self.worst(n_worst)}


def format_summary(s, series_name=None, out=None):
    """The metric table printed at the end of a run (list of lines)."""
    series_name = series_name or (lambda i: str(i))
    lines = []
    if s["scored"] == 0:
        lines.append("no scored rows (every target was missing): no metrics")
        return lines
    w = 18
    lines.append(f"{'':{w}}" + "".join(f"{n:>12}" for n in METRIC_NAMES))

    def row(label, vals):
        cells = [f"{vals['MAE']:>12.4g}", f"{vals['RMSE']:>12.4g}", f"{vals['SMAPE']:>11.3g}%"]
        return f"{label:{w}}" + "".join(cells)

    lines.append(row(f"all {s['scored']:,} rows", s["overall"]))
    lines.append(row(f"last {s['rolling_rows']:,} rows", s["rolling"]))
    naive, model = s["naive"]["MAE"], s["overall"]["MAE"]
    if naive > 0:
        lines.append(f"naive last-value forecast: MAE {naive:.4g} (the model's is "
                     f"{abs(1 - model / naive):.0%} {'lower' if model <= naive else 'higher'})")
    if s["worst"]:
        worst = ", ".join(f"{series_name(i)} {mae:.4g} ({n:,} rows)" for i, mae, n in s["worst"])
        lines.append(f"worst series by MAE: {worst}")
    return lines


def plot_forecasts(path, curves, title="actual vs one-step forecast"):
    """Write a PNG with one panel per series: ``curves`` is a list of
    ``(label, time, y, yhat)`` (NumPy arrays).  Uses matplotlib's Agg backend,
    so it works without a display."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = max(1, len(curves))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.4 * n + 0.6), squeeze=False, sharex=False)
    for ax, (label, t, y, yhat) in zip(axes[:, 0], curves):
        ax.plot(t, y, lw=1.0, color="0.25", label="actual")
        ax.plot(t, yhat, lw=1.0, color="tab:orange", label="forecast")
        ax.set_title(str(label), fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
