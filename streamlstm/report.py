"""Scoring and showing one-step forecasts: River metrics (never re-implemented)
and the actual-vs-forecast plot.

``ForecastMetrics`` feeds every scored row, in arrival order, to
``river.metrics`` MAE, RMSE and SMAPE - overall, inside a ``river.utils.Rolling``
window of the last ``window`` scored rows, and MAE per series (for "worst
series").  Rows are fed one at a time in a fixed order, so the numbers do not
depend on how rows were batched, and the whole object pickles into a checkpoint:
resumed = uninterrupted, bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from river import metrics, utils

METRIC_NAMES = ("MAE", "RMSE", "SMAPE")


def _new_metrics():
    return [metrics.MAE(), metrics.RMSE(), metrics.SMAPE()]


class ForecastMetrics:
    """River metrics of one-step forecasts.

    >>> m = ForecastMetrics(window=2)
    >>> m.update(np.array([0, 1, 0]), np.array([1.0, 2.0, np.nan]), np.array([1.5, 2.0, 0.0]))
    >>> m.scored, m.missing
    (2, 1)
    >>> m.summary()["overall"]["MAE"]
    0.25
    >>> m.worst(1)
    [(0, 0.5, 1)]
    """

    def __init__(self, window=1000):
        self.window = int(window)
        self.overall = metrics.base.Metrics(_new_metrics())
        self.rolling = utils.Rolling(metrics.base.Metrics, window_size=self.window, metrics=_new_metrics())
        self.per_series = []
        self.counts = np.zeros(0, dtype=np.int64)  # scored rows per series
        self.scored = 0
        self.missing = 0      # rows without a target
        self.unforecast = 0   # rows with a target but no forecast (a series' first rows)

    def update(self, index, y, yhat):
        """Score rows: ``index`` (R,) the series' dense index (0, 1, ... in first-seen
        order), ``y`` (R,) actual (NaN = missing, not scored), ``yhat`` (R,)."""
        per = self.per_series
        need = int(index.max()) + 1 if index.size else 0
        while len(per) < need:
            per.append(metrics.MAE())
        # Scored: rows with a target and a forecast (a series' first row has no
        # forecast yet: the forecaster returns NaN there).
        has_y = ~np.isnan(y)
        ok = has_y & ~np.isnan(yhat)
        index, y, yhat = index[ok], y[ok], yhat[ok]
        overall, rolling = self.overall.update, self.rolling.update
        for i, a, b in zip(index.tolist(), y.tolist(), yhat.tolist()):
            overall(a, b)
            rolling(a, b)
            per[i].update(a, b)
        if need > self.counts.size:
            self.counts = np.concatenate([self.counts, np.zeros(need - self.counts.size, np.int64)])
        self.counts += np.bincount(index, minlength=self.counts.size)
        self.scored += int(ok.sum())
        self.missing += int(ok.size - has_y.sum())
        self.unforecast += int((has_y & ~ok).sum())

    @staticmethod
    def _values(ms):
        return {name: m.get() for name, m in zip(METRIC_NAMES, ms)}

    def worst(self, n):
        """``n`` series with the largest MAE: ``[(index, mae, scored rows)]``."""
        cand = [(i, m.get(), int(self.counts[i])) for i, m in enumerate(self.per_series)
                if self.counts[i] > 0]
        cand.sort(key=lambda t: (-t[1] if math.isfinite(t[1]) else -math.inf, t[0]))
        return cand[:n]

    def summary(self, n_worst=3):
        return {"scored": self.scored, "missing": self.missing, "unforecast": self.unforecast,
                "window": self.window,
                "overall": self._values(self.overall),
                "rolling": self._values(self.rolling.obj),
                "rolling_rows": len(self.rolling.window),
                "worst": self.worst(n_worst)}


def format_summary(s, series_name=None, out=None):
    """The metric table printed at the end of a run (list of lines)."""
    series_name = series_name or (lambda i: str(i))
    lines = []
    if s["scored"] == 0:
        lines.append("no scored rows (every target was missing): no metrics")
        return lines
    w = 16
    lines.append(f"{'':{w}}" + "".join(f"{n:>12}" for n in METRIC_NAMES))

    def row(label, vals):
        cells = [f"{vals['MAE']:>12.4g}", f"{vals['RMSE']:>12.4g}", f"{vals['SMAPE']:>11.3g}%"]
        return f"{label:{w}}" + "".join(cells)

    lines.append(row(f"all {s['scored']:,} rows", s["overall"]))
    lines.append(row(f"last {s['rolling_rows']:,} rows", s["rolling"]))
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
