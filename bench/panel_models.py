"""The models of bench/accuracy.py's panel and the loops that score them.

Single series (River forecasters) are scored as River 0.26's
``evaluate.iter_evaluate`` does (``run_river`` repeats its loop, checked against it
by ``python bench/accuracy.py --check``): the first ``h`` values are learned only;
then, for each value, ``forecast(h, xs)`` of the ``h`` values *after* it, MAE per
step, then ``learn_one(y, x)``.  (So River's step +1 is the value two after the last
one learned; a forecaster given datetimes in ``x`` can see that gap.)

The many-series panels go through ``MultiSeriesForecaster.predict_learn``, one call
per time step with a row per series, in time order: column j of a row is the
forecast of that series' value j steps after the row, made before the row's value
is seen; the other models run one per series on the same rows (``run_panel_river``,
``run_panel_naive``).  Deterministic sequences use the seed experiment's loop: ``forecast(1)``
of the next value, then ``learn_one``.
"""
from __future__ import annotations

import inspect
import math
import time

import numpy as np
from river import linear_model, optim, preprocessing, time_series

import streamlstm

REFIT_EVERY = 100       # statsforecast models: steps between refits
FIT_WINDOW = 1000       # ... fitted (and rolled forward) on the last values only


class NoX(time_series.base.Forecaster):
    """Hide x from forecasters that cannot take datetimes as features.  Until the
    model can forecast (River's HoltWinters needs a season of values first and
    raises IndexError before), the last value."""

    def __init__(self, model):
        self.model = model
        self.last = 0.0

    def learn_one(self, y, x=None):
        self.model.learn_one(y)
        self.last = y

    def forecast(self, horizon, xs=None):
        try:
            return self.model.forecast(horizon)
        except IndexError:
            return [self.last] * horizon


class Naive(time_series.base.Forecaster):
    """Seasonal naive with period m (m=1: the last value).  ``lead``: how many values
    lie between the last one learned and the first one asked for (River's
    ``evaluate`` asks from the second value on: lead 1), so that step j is given
    the value a whole number of seasons before the value it targets."""

    def __init__(self, m=1, lead=0):
        self.m, self.lead = m, lead
        self.hist = []

    def learn_one(self, y, x=None):
        self.hist = (self.hist + [y])[-self.m:]

    def forecast(self, horizon, xs=None):
        h = self.hist
        if not h:
            return [0.0] * horizon
        if len(h) < self.m:
            return [h[-1]] * horizon
        return [h[(j + self.lead) % self.m] for j in range(horizon)]


class StatsRefit(time_series.base.Forecaster):
    """A statsforecast model (``AutoETS``/``AutoTheta``), refit every ``REFIT_EVERY``
    values on the last ``FIT_WINDOW`` ones and rolled forward in between.

    ``forecast`` at time t: if the last fit is ``REFIT_EVERY`` or more values old
    (or there is none and 2 seasons + 4 values, at least 10, have arrived), fit
    ``season_length=m`` on the last ``FIT_WINDOW`` values; then
    ``model.forward(y=<last FIT_WINDOW values>, h)``, which runs the fitted
    parameters over the values up to now (no re-estimation) and forecasts from
    there.  Before the first fit, and if a fit fails, the last value.  ETS with a
    period over 24 is fitted without a season (as R's ``ets``, which refuses m > 24).  ``lead`` as ``Naive``: forecasts h + lead values
    and gives the last h."""

    def __init__(self, kind, m, lead=0):
        self.kind, self.m, self.lead = kind, m, lead
        self.hist, self.model, self.fitted_at, self.failures = [], None, None, 0

    def learn_one(self, y, x=None):
        self.hist.append(float(y))

    def _fit(self):
        from statsforecast.models import AutoETS, AutoTheta
        m = self.m if (self.kind == "theta" or self.m <= 24) else 1
        cls = AutoTheta if self.kind == "theta" else AutoETS
        y = np.asarray(self.hist[-FIT_WINDOW:], dtype=np.float64)
        try:
            self.model = cls(season_length=m if y.size >= 2 * m + 4 else 1).fit(y)
        except Exception:   # noqa: BLE001 - a failed fit falls back to the last value
            self.model, self.failures = None, self.failures + 1
        self.fitted_at = len(self.hist)

    def forecast(self, horizon, xs=None):
        n = len(self.hist)
        if n == 0:
            return [0.0] * horizon
        due = self.fitted_at is None and n >= max(10, 2 * self.m + 4)
        if due or (self.fitted_at is not None and n - self.fitted_at >= REFIT_EVERY):
            self._fit()
        if self.model is not None:
            try:
                y = np.asarray(self.hist[-FIT_WINDOW:], dtype=np.float64)
                out = self.model.forward(y=y, h=horizon + self.lead)["mean"][self.lead:]
                if np.all(np.isfinite(out)):
                    return [float(v) for v in out]
            except Exception:   # noqa: BLE001
                self.failures += 1
        return [self.hist[-1]] * horizon


def stats_available():
    try:
        import statsforecast  # noqa: F401
        return True
    except ImportError:
        return False


def accepts(cls, name):
    return name in inspect.signature(cls).parameters


def streamlstm_columns(m, single=True):
    """The streamlstm columns: as shipped, the network alone (when the forecaster
    takes ``experts``), told the known period (when it has one), global scaling
    (MultiSeriesForecaster, when it takes ``scaling``)."""
    if single:
        L, G = streamlstm.LSTMForecaster, streamlstm.GRUForecaster
        cols = {"streamlstm default": lambda seed=0: L(seed=seed),
                "streamlstm GRU": lambda seed=0: G(seed=seed)}
        if accepts(L, "experts"):
            cols["network alone"] = lambda seed=0: L(experts=None, seed=seed)
        if m > 1:
            cols["known period"] = lambda seed=0: L(seasonality=m, seed=seed)
        return cols
    M = streamlstm.MultiSeriesForecaster
    cols = {"streamlstm default": lambda h: M(horizon=h, coverage=0.9)}
    if accepts(M, "experts"):
        cols["network alone"] = lambda h: M(horizon=h, coverage=0.9, experts=None)
    if m > 1:
        cols["known period"] = lambda h: M(horizon=h, coverage=0.9, seasonality=m)
    if accepts(M, "scaling"):
        cols["global scaling"] = lambda h: M(horizon=h, coverage=0.9, scaling="global")
    return cols


def baseline_columns(m, positive, stats, lead=1):
    """River's models as the ForecastingTrack bench configures them, the naive
    forecasts, and statsforecast's when requested and installed."""
    cols = {
        "naive": lambda: Naive(1),
        "seasonal naive": lambda: Naive(m, lead),
        "HoltWinters": lambda: NoX(time_series.HoltWinters(
            alpha=0.3, beta=0.1, gamma=0.6, seasonality=m if m > 1 else 0)),
        "SNARIMAX": lambda: NoX(time_series.SNARIMAX(
            p=m, d=1, q=m, m=m, sd=1 if m > 1 else 0,
            regressor=preprocessing.StandardScaler()
            | linear_model.LinearRegression(optimizer=optim.SGD(0.001)))),
    }
    if positive and m > 1:
        cols["HoltWinters mul"] = lambda: NoX(time_series.HoltWinters(
            alpha=0.3, beta=0.1, gamma=0.6, seasonality=m, multiplicative=True))
    if stats:
        cols["AutoETS"] = lambda: StatsRefit("ets", m, lead)
        cols["AutoTheta"] = lambda: StatsRefit("theta", m, lead)
    return cols


class Scores:
    """MAE per horizon step and, for bands, coverage per step."""

    def __init__(self, h):
        self.err = np.zeros(h)
        self.n = np.zeros(h)
        self.hit = np.zeros(h)
        self.nband = np.zeros(h)

    def add(self, j, pred, y, band=None):
        if math.isfinite(pred) and math.isfinite(y):
            self.err[j] += abs(pred - y)
            self.n[j] += 1
        if band is not None and math.isfinite(band[0]) and math.isfinite(band[1]):
            self.hit[j] += band[0] <= y <= band[1]
            self.nband[j] += 1

    def result(self, seconds, extra=None):
        out = {"per_step": (self.err / np.maximum(self.n, 1)).tolist(), "seconds": seconds}
        if self.nband.any():
            out["coverage_per_step"] = (self.hit / np.maximum(self.nband, 1)).tolist()
            out["banded"] = self.nband.tolist()
        out.update(extra or {})
        return out


def run_river(model, pairs, h, bands=False):
    """River 0.26 ``iter_evaluate`` over ``pairs`` [(x, y)], with optional bands."""
    t0, sc = time.perf_counter(), Scores(h)
    for x, y in pairs[:h]:
        model.learn_one(y=y, x=x)
    for k in range(h, len(pairs) - h):
        x, y = pairs[k]
        ahead = pairs[k + 1:k + 1 + h]
        xs = [a[0] for a in ahead]
        pred = model.forecast(h, xs=xs)
        band = model.forecast_interval(h, xs=xs) if bands else [None] * h
        for j, (_, yj) in enumerate(ahead):
            sc.add(j, float(pred[j]), float(yj), band[j])
        model.learn_one(y=y, x=x)
    return sc.result(time.perf_counter() - t0)


def run_sequence(model, y, period):
    """The seed experiment: forecast(1) of the next value, then learn it.  Also how
    many of the last pass's ``period`` forecasts are within 0.5 of the value."""
    t0, sc, last = time.perf_counter(), Scores(1), []
    for k, v in enumerate(y):
        if k:
            p = float(model.forecast(1)[0])
            sc.add(0, p, float(v))
            if k >= len(y) - period:
                last.append(abs(p - v) < 0.5)
        model.learn_one(float(v))
    return sc.result(time.perf_counter() - t0, {"last_pass_right": int(sum(last)),
                                                "last_pass_of": len(last)})


def panel_units(series):
    """Each series' mean absolute change: the unit its errors are counted in, so
    that series in different units weigh alike (a constant per series)."""
    return {k: float(np.mean(np.abs(np.diff(v)))) or 1.0 for k, v in series.items()}


def run_panel_model(model, series, h):
    """MultiSeriesForecaster.predict_learn, a row per series per time step."""
    ids = list(series)
    T = max(v.size for v in series.values())
    unit = panel_units(series)
    t0, sc = time.perf_counter(), Scores(h)
    bands = getattr(model, "coverage", None) is not None
    for t in range(T):
        live = [i for i in ids if t < series[i].size]
        y = np.array([series[i][t] for i in live])
        out = model.predict_learn(live, y, interval=bands)
        yhat, lo, hi = (out.yhat, out.lo, out.hi) if bands else (out, None, None)
        if t < h:
            continue
        for r, i in enumerate(live):
            for j in range(h):
                if t + j < series[i].size:
                    band = (lo[r, j] / unit[i], hi[r, j] / unit[i]) if bands else None
                    sc.add(j, yhat[r, j] / unit[i], series[i][t + j] / unit[i], band)
    return sc.result(time.perf_counter() - t0)


def run_panel_river(make, series, h):
    """A River-style forecaster per series (``make()`` each), scored on the rows
    ``run_panel_model`` scores: at row t, ``forecast(h)`` of values t..t+h-1 from
    the values before t, then ``learn_one`` of value t."""
    unit = panel_units(series)
    t0, sc = time.perf_counter(), Scores(h)
    for i, v in series.items():
        model = make()
        for t in range(v.size):
            if t >= h:
                pred = model.forecast(h)
                for j in range(min(h, v.size - t)):
                    sc.add(j, float(pred[j]) / unit[i], v[t + j] / unit[i])
            model.learn_one(float(v[t]))
    return sc.result(time.perf_counter() - t0)


def run_panel_naive(series, h, m):
    """Per-series naive (m=1) or seasonal naive forecasts, on the rows
    ``run_panel_model`` scores: value t+j forecast from values before t."""
    unit = panel_units(series)
    t0, sc = time.perf_counter(), Scores(h)
    for i, v in series.items():
        for t in range(h, v.size):
            for j in range(h):
                if t + j >= v.size:
                    break
                back = m * math.ceil((j + 1) / m)
                src = t + j - back if t + j - back >= 0 else t - 1
                sc.add(j, v[src] / unit[i], v[t + j] / unit[i])
    return sc.result(time.perf_counter() - t0)
