"""River estimators over the streamlstm core: ``LSTMForecaster``/``GRUForecaster``
(``river.time_series.base.Forecaster``) and ``LSTMRegressor`` (``river.base.Regressor``).

They are thin layers over ``MultiSeriesForecaster`` (one series): River's dict
``x`` becomes a row of numeric features, everything else (online scaling, lags,
seasonal inputs, rollouts on copied state, truncated BPTT) is the core's.

What a River user gets with no tuning:

* raw series at any scale work: target and features are scaled online per
  series (``features.py``), robustly to outliers;
* numeric values of ``x`` are exogenous inputs; datetimes, strings and other
  non-numeric values are not fed to the network; features that appear later
  get new input columns (with zero weights, so nothing learned is disturbed),
  features that vanish are treated as absent;
* ``seasonality="auto"``: when ``x`` carries a datetime (River datasets do), the
  sampling step gives the seasonal period (hourly -> 24, daily -> 7, weekly -> 52,
  monthly -> 12, quarterly -> 4), used for seasonal lags and position inputs;
* ``forecast`` rolls the network forward on a copy of its state, feeding each
  forecast back: it has no side effects.
"""
from __future__ import annotations

import datetime as _dt
import math
import numbers

import numpy as np
from river import base
from river.time_series.base import Forecaster

from streamlstm.backends import BACKENDS
from streamlstm.core.checks import check_int, check_number
from streamlstm.core.layout import DTYPES
from streamlstm.errors import InputError
from streamlstm.forecast.experts import check_experts
from streamlstm.forecast.intervals import check_coverage
from streamlstm.forecast.multiseries import MultiSeriesForecaster
from streamlstm.forecast.warm import compile_in_two
from streamlstm.core.optim import Adam

__all__ = ["LSTMForecaster", "GRUForecaster", "LSTMRegressor", "MultiSeriesForecaster",
           "season_from_step", "MAX_AUTO_PERIOD"]

# Rows held back while ``seasonality="auto"`` waits for a second timestamp.
_MAX_PENDING = 3
# forecast() rolls through at most this many unasked-for steps to reach xs's first datetime.
_MAX_LEAD = 1000
# forecast_interval tracks at most this many steps ahead (each tracked step makes learn_one
# roll out one step further; the pending forecasts grow as its square): NaN beyond.
_MAX_TRACKED = 128
_DAY = 86400.0
_CYCLES = (_DAY, 7 * _DAY, 365.25 * _DAY)     # day, week, year
# The longest period "auto" picks, in steps (a day of 10-second data).  The seasonal
# lags and experts keep about four values per step of the period: a day of 1-second
# data would make a model of ~3 MB, of 10 Hz data ~30 MB.  Pass a longer one as
# ``seasonality`` where it is worth that.
MAX_AUTO_PERIOD = 10_000
# The feature row of a model without features: np.array([[]]), made once (the
# per-call hot path; an array with no elements is never written).
_NO_FEATURES = np.empty((1, 0))


def season_from_step(seconds):
    """The seasonal period, in steps, of a series sampled every ``seconds``:
    the first natural cycle (day, week, year) spanning at least 4 steps, if it
    spans at most ``MAX_AUTO_PERIOD`` steps.

    >>> [season_from_step(s) for s in (10, 60, 900, 3600, 86400, 7 * 86400, 30.4 * 86400,
    ...                                91 * 86400)]
    [8640, 1440, 96, 24, 7, 52, 12, 4]
    >>> season_from_step(365 * 86400) is None, season_from_step(1) is None
    (True, True)
    """
    if not seconds or seconds <= 0 or not math.isfinite(seconds):
        return None
    for cycle in _CYCLES:
        if cycle / seconds >= 4.0 - 1e-9:
            period = int(round(cycle / seconds))
            return period if period <= MAX_AUTO_PERIOD else None
    return None


def _is_time(v):
    return isinstance(v, (_dt.date, np.datetime64))


def _find_time(x):
    """The first datetime-like value of ``x`` (River's datasets carry one), or None."""
    if x:
        for v in x.values():
            if _is_time(v):
                return v
    return None


def _seconds_between(a, b):
    try:
        if isinstance(a, np.datetime64) or isinstance(b, np.datetime64):
            return float((np.datetime64(b) - np.datetime64(a)) / np.timedelta64(1, "s"))
        return (b - a).total_seconds()
    except (TypeError, ValueError, OverflowError):   # naive vs aware, date vs datetime...
        return None


def _numeric(x):
    """Numeric items of ``x`` as floats (bools as 0/1); other values are ignored."""
    out = {}
    if x:
        for k, v in x.items():
            if isinstance(v, (numbers.Real, np.number)) and not isinstance(v, np.datetime64):
                out[k] = float(v)
    return out


def _target(y):
    if type(y) is float and not math.isinf(y):     # the common case, without ABC checks
        return y
    if isinstance(y, (numbers.Real, np.number)) and not isinstance(y, np.datetime64):
        v = float(y)
        if math.isinf(v):
            raise InputError(f"y={y!r} is infinite; pass a finite value (NaN marks a missing one)")
        return v
    if y is None:
        return math.nan
    raise InputError(f"y={y!r} is a {type(y).__name__}; a forecaster learns real numbers")


class _SingleSeries:
    """Shared plumbing: one MultiSeriesForecaster slot fed from River dicts."""

    _SLOT = np.zeros(1, dtype=np.int64)
    _BETAS = (0.9, 0.999)          # Adam's moment decays (torch's defaults)

    def _check_options(self):
        """Refuse bad constructor arguments at construction, not at the first
        ``learn_one``: each message names the argument, its value and the range."""
        owner = type(self).__name__
        check_int("hidden_size", self.hidden_size, 1)
        check_int("n_layers", self.n_layers, 1)
        check_number(owner, "lr", self.lr, lo=0.0, lo_open=True)
        check_int("k1", self.k1, 1)
        check_int("k2", self.k2, 1)
        if self.k2 < self.k1:
            raise InputError(f"{owner}(k1={self.k1}, k2={self.k2}): truncated BPTT needs "
                             f"k1 <= k2; raise k2 or lower k1")
        check_int("scale_window", self.scale_window, 1)
        if self.clip_norm is not None:
            check_number(owner, "clip_norm", self.clip_norm, lo=0.0, lo_open=True)
        if self.backend not in BACKENDS:
            raise InputError(f"{owner}(backend={self.backend!r}): use one of {BACKENDS}")
        if self.dtype not in DTYPES:
            raise InputError(f"{owner}(dtype={self.dtype!r}): use one of {tuple(DTYPES)}")
        check_int("seed", self.seed, 0)

    def _reset_state(self):
        self._core = None
        self._feature_names = []       # numeric feature names in input-column order
        self._n_learned = 0

    def _new_core(self, **kw):
        core = MultiSeriesForecaster(
            cell=self._CELL, hidden_size=self.hidden_size, n_layers=self.n_layers,
            k1=self.k1, k2=self.k2, optimizer=Adam(lr=self.lr, betas=self._BETAS),
            clip_norm=self.clip_norm,
            backend=self.backend, dtype=self.dtype, seed=self.seed,
            scale_window=self.scale_window, **kw)
        core.reserve(1)                          # the one series (no room for more)
        core.slots_of([0], create=True)          # ... in slot 0
        compile_in_two(core, 1)     # a first run: compile on two cores (forecast/warm.py)
        return core

    def _row(self, xnum, grow):
        """The feature row for ``xnum``; with ``grow``, unseen names become new
        input columns first (sorted, so dict order never matters)."""
        if not xnum and not self._feature_names:
            return _NO_FEATURES
        if grow:
            known = set(self._feature_names)
            # sorted, so dict order never matters (keys may be any hashable, not only str)
            new = sorted((k for k in xnum if k not in known),
                         key=lambda k: (not isinstance(k, str), str(k), repr(k)))
            if new:
                self._core.add_features([k if isinstance(k, str) else f"{k!r}#{len(known) + i}"
                                         for i, k in enumerate(new)])
                self._feature_names = self._feature_names + new
        return np.array([[xnum.get(f, math.nan) for f in self._feature_names]])

    def _learn_row(self, y, xnum):
        for f, v in xnum.items():          # checked before anything changes
            if math.isinf(v):
                raise InputError(f"feature {f!r} is infinite ({v}); pass finite values "
                                 f"(NaN or leaving it out marks it absent)")
        X = self._row(xnum, grow=True)
        core = self._core
        if core.experts is not None and getattr(self, "experts", None) is None:
            # an LSTMRegressor pickled before its core dropped the experts it never
            # scored: learn as it did then (its forecasts are the network's alone)
            core.learn_slots(self._SLOT, np.array([y]), X)
        else:   # forecast, learn, and (when on) score the experts' and intervals' forecasts
            core.predict_learn_slots(self._SLOT, np.array([y]), X)
        self._n_learned += 1

    def _forecast_one(self, horizon, X):
        """Forecasts of the one series, ``X`` (horizon, F) raw features or None."""
        return self._core.forecast_slots(self._SLOT, horizon,
                                         None if X is None else X[None])[0].tolist()

    def _future(self, xs, horizon):
        F = len(self._feature_names)
        if xs is None or F == 0:
            return None
        rows = []
        for x in xs:
            xnum = _numeric(x)
            rows.append([xnum.get(f, math.nan) for f in self._feature_names])
        X = np.array(rows, dtype=np.float64).reshape(horizon, F)
        X[np.isinf(X)] = np.nan
        return X


class _RecurrentForecaster(_SingleSeries, Forecaster):
    _CELL = "lstm"
    # A forecaster updates on every value (k1=1), from one value's error: a
    # gradient that changes with every position of a pattern.  Momentum over ~100
    # updates (beta1=0.99, several cycles of a short pattern) and second moments
    # over ~10^4 average that noise out, so the weights settle instead of chasing
    # the latest value (bench/sequences.py).
    _BETAS = (0.99, 0.9999)

    def __init__(self, hidden_size: int = 16, n_layers: int = 1, lr: float = 0.01, k1: int = 1,
                 k2: int = 8, seasonality: int | str | None = "auto", lags: tuple | str = "auto",
                 differencing: bool = True, scale_window: int = 1000,
                 clip_norm: float | None = None, trend: bool = False, align_to_xs: bool = True,
                 coverage: float | None = 0.9, experts: str | None = "auto",
                 backend: str = "cpu", dtype: str = "float64", seed: int = 0):
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.lr = lr
        self.k1 = k1
        self.k2 = k2
        self.trend = trend
        self.align_to_xs = align_to_xs
        self.coverage = coverage
        self.experts = experts
        self.seasonality = seasonality
        self.lags = lags
        self.differencing = differencing
        self.scale_window = scale_window
        self.clip_norm = clip_norm
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        if not (seasonality is None or seasonality == "auto"
                or (isinstance(seasonality, numbers.Integral) and not isinstance(seasonality, bool)
                    and seasonality > 1)):
            raise InputError(f"seasonality={seasonality!r} must be 'auto', None or a period > 1")
        if not (lags == "auto" or isinstance(lags, tuple)):
            raise InputError(f"lags={lags!r} must be 'auto' or a tuple of steps, e.g. (1, 12)")
        self._check_options()
        check_coverage(type(self).__name__, coverage)
        check_experts(type(self).__name__, experts)
        self._reset_state()
        self._pending = []             # (y, xnum) held while the period is unknown
        self._first_time = None
        self._last_time = None         # datetime of the newest learned value
        self._step_seconds = None      # sampling step, from the first two datetimes
        self.period_ = None            # the seasonal period in use (None: none)

    # -- building the core once the period is known ------------------------------------
    def _decide_period(self, t):
        """(decided, period) given the timestamp of the newest pending row."""
        if self.seasonality != "auto":
            return True, self.seasonality
        if t is None:
            return True, None
        if self._first_time is None:
            self._first_time = t
            return False, None
        step = _seconds_between(self._first_time, t)
        if step is not None and step > 0:
            self._step_seconds = step / (len(self._pending) - 1)
            return True, season_from_step(self._step_seconds)
        return len(self._pending) >= _MAX_PENDING, None

    def _build(self, period):
        self.period_ = period
        if self.lags == "auto":
            lags = (1,) if period is None else (1, period - 1, period, period + 1)
        else:
            lags = self.lags
        self._core = self._new_core(lags=lags, seasonality=period,
                                    differencing=self.differencing, trend=self.trend,
                                    coverage=self.coverage, experts=self.experts)

    # -- River API ---------------------------------------------------------------------
    def learn_one(self, y, x=None):
        """Learn from the next value ``y`` of the series (``x``: its features; only
        numeric values are used, datetimes set ``seasonality="auto"``)."""
        yv = _target(y)
        xnum = _numeric(x)
        t = _find_time(x)
        if t is not None:
            self._last_time = t
        if self._core is not None:
            self._learn_row(yv, xnum)
            return
        self._pending.append((yv, xnum))
        decided, period = self._decide_period(t)
        if decided:
            self._build(period)
            rows, self._pending = self._pending, []
            for yy, xx in rows:
                self._learn_row(yy, xx)

    def forecast(self, horizon, xs=None):
        """Forecasts of the next ``horizon`` values (``xs``: their features, if
        known), rolled out on a copy of the state: nothing changes.

        Before the series' first value there is nothing to forecast from: NaN at
        every step, as ``MultiSeriesForecaster.forecast`` gives for a series it
        has not seen.  Until the network is built (while the seasonal period is
        inferred from the first timestamps) the forecast is the last value."""
        self._check_horizon(horizon, xs)
        if horizon == 0:
            return []
        if self._core is None:   # no network yet: the last value, NaN before any
            last = next((yy for yy, _ in reversed(self._pending) if not math.isnan(yy)), math.nan)
            return [last] * horizon
        lead = self._lead(xs)
        track = min(lead + horizon, _MAX_TRACKED)
        if track > self._core.horizon and self._core.experts is not None:
            self._core.widen_horizon(track)    # learn the weights of the steps asked for
        X = self._future(xs, horizon)
        if lead:
            if X is not None:
                X = np.concatenate([np.repeat(X[:1], lead, axis=0), X])
            return self._forecast_one(lead + horizon, X)[lead:]
        return self._forecast_one(horizon, X)

    @staticmethod
    def _check_horizon(horizon, xs):
        if type(horizon) is int and horizon >= 0 and xs is None:   # the common case, fast
            return
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 0:
            raise InputError(f"horizon={horizon!r} must be an integer >= 0")
        if xs is not None and len(xs) != horizon:
            raise InputError(f"xs has {len(xs)} entries; it must have one per forecast step "
                             f"(horizon={horizon})")

    def forecast_interval(self, horizon, xs=None):
        """Prediction intervals of the next ``horizon`` values, one ``(lo, hi)`` per
        step, around ``forecast(horizon, xs)``, of nominal coverage ``coverage``.

        Each step's band is calibrated online by the errors of this model's own
        earlier forecasts of that step (``streamlstm/forecast/intervals.py``:
        scale-free quantile tracking, long-run coverage for any error sequence).
        Asking for a step tracks it from then on (``learn_one`` then also rolls
        the forecast out that far, to score it); a step gives ``(nan, nan)``
        until it has scored a few forecasts (``intervals.MIN_SCORED``), as does
        every step before the network exists and beyond 128 steps ahead.
        Nothing else changes."""
        if self.coverage is None:
            raise InputError(f"{type(self).__name__}(coverage=None) makes no intervals; "
                             f"construct it with a coverage, e.g. coverage=0.9")
        self._check_horizon(horizon, xs)
        if horizon == 0 or self._core is None:
            return [(math.nan, math.nan)] * horizon
        lead = self._lead(xs)
        self._core.widen_horizon(min(lead + horizon, _MAX_TRACKED))
        X = self._future(xs, horizon)
        if lead and X is not None:
            X = np.concatenate([np.repeat(X[:1], lead, axis=0), X])
        _, lo, hi = self._core.forecast_slots(self._SLOT, lead + horizon,
                                              None if X is None else X[None], interval=True)
        return list(zip(lo[0, lead:].tolist(), hi[0, lead:].tolist()))

    @property
    def weights_(self):
        """The experts' weights in the next forecasts (``experts="auto"``): one dict
        expert name -> weight per tracked horizon step (a step is tracked from the
        first time ``forecast`` asks for it); ``[]`` before the network exists or
        with ``experts=None``."""
        if self._core is None or self._core.experts is None:
            return []
        return self._core.weights(0)[0]

    def _lead(self, xs):
        """Steps between the newest learned value and the first forecast asked for,
        minus one, from the datetimes in ``xs`` (0 without them).  River's
        ``evaluate`` asks for the values 2..h+1 steps after the last learned one:
        rolling on through the gap forecasts the times that are actually asked for."""
        if not (self.align_to_xs and xs and self._last_time is not None and self._step_seconds):
            return 0
        t0 = _find_time(xs[0])
        gap = None if t0 is None else _seconds_between(self._last_time, t0)
        if gap is None:
            return 0
        k = int(round(gap / self._step_seconds))
        return k - 1 if 1 < k <= _MAX_LEAD else 0

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4}
        yield {"hidden_size": 3, "k1": 2, "k2": 3, "seasonality": 2, "differencing": True,
               "dtype": "float32", "coverage": None, "experts": None}


class LSTMForecaster(_RecurrentForecaster):
    """Online LSTM forecaster: learns from every value as it arrives and forecasts
    any horizon from its persistent recurrent state.

    By default the network predicts the change from the last value (so a network
    that outputs 0 forecasts the last value), in units of the series' RMS change,
    from the scaled lags (by default the last value and the values one season
    ago), where the last value sits in the series' range, the position in the
    season and the numeric exogenous features; it learns by truncated
    backpropagation through time after every ``k1`` values over the last ``k2``
    (docs/spec.md section 4) with Adam(``lr``, betas=(0.99, 0.9999)): long
    moment averages, since each update comes from a single value's error.

    The scalers have a long memory (``scale_window=1000`` values), so the same
    value maps to the same input throughout a pattern: with the defaults, the
    alphabet as the numbers 0..25, repeated 300 times, is forecast 26/26 to
    within 0.5, and the "there and back" sequence 0..25..1 50/50
    (``bench/sequences.py``).  (Until issue 11: ``differencing=False``,
    ``scale_window=16``, betas (0.9, 0.999), which learned 10/26 and 13/50.)
    Checked on River's ForecastingTrack and TrumpApproval (``bench/accuracy.py``).

    Parameters
    ----------
    hidden_size
        LSTM units.
    n_layers
        Stacked LSTM layers.
    lr
        Adam learning rate.
    k1, k2
        Update the weights every ``k1`` values, backpropagating through the last ``k2``.
    seasonality
        ``"auto"`` (from the spacing of datetimes in ``x``: the day, week or year,
        the first that spans 4 steps or more, if it spans at most
        ``MAX_AUTO_PERIOD`` = 10,000 steps; none without datetimes), None, or a
        period in steps.  Each step of the period costs about 32 bytes per
        model (its lags and seasonal experts keep ~4 values per step).
    lags
        ``"auto"`` (1, and the period -1, 0, +1 when seasonal) or a tuple of steps back.
    differencing
        Predict the change from the last value (default) instead of the scaled value.
    scale_window
        Memory, in values, of the online scalers of the target and the features
        (plain running means until then, exponentially weighted after).
    clip_norm
        Gradient-norm clipping, or None.
    trend
        Centre the scaled values on a smoothed level plus trend (Brown's double
        exponential smoothing) instead of the smoothed level.
    align_to_xs
        When ``xs`` carries datetimes, forecast the times it names: if the first
        is several steps after the newest learned value, roll on through the gap.
        (River's ``evaluate`` asks, after learning y_t, for y_{t+2}..y_{t+h+1}.)
    coverage
        Nominal coverage of ``forecast_interval``'s bands (None: no intervals,
        and ``learn_one`` skips their bookkeeping).
    experts
        ``"auto"``: each forecast step combines the network with the naive, a
        smoothed level, the drift and seasonal forecasts (naive, seasonal random
        walk, Holt-Winters) at the period, by weights learned online
        from the errors revealed so far (``weights_``; streamlstm/forecast/experts.py),
        so the model falls back on a simple forecast where the network is worse.
        Asking ``forecast`` for a step tracks that step's weights from then on.
        None: the network alone.
    backend
        ``"cpu"`` (Numba), ``"reference"`` (NumPy) or ``"cuda"``.
    dtype
        ``"float64"`` or ``"float32"``.
    seed
        Seeds the initial weights.

    Attributes
    ----------
    period_
        The seasonal period in use, once known.
    weights_
        The experts' weights per tracked horizon step.

    Examples
    --------
    The raw monthly series (in the hundreds, ``x`` holding a datetime), no tuning:

    >>> from river import datasets, evaluate, metrics
    >>> import streamlstm
    >>> model = streamlstm.LSTMForecaster()
    >>> evaluate.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=12)
    +1  MAE: 11.38
    +2  MAE: 14.50
    +3  MAE: 16.43
    +4  MAE: 18.18
    +5  MAE: 19.12
    +6  MAE: 20.74
    +7  MAE: 21.05
    +8  MAE: 19.04
    +9  MAE: 20.13
    +10 MAE: 21.76
    +11 MAE: 23.63
    +12 MAE: 27.98

    (River's ``HoltWinters`` docstring scores 25.90 ... 33.98 on the same run.)
    The seasonal period came from the monthly datetimes:

    >>> model.period_
    12
    >>> [round(v) for v in model.forecast(horizon=3)]   # Jan..Mar 1961
    [427, 406, 476]

    90% prediction intervals, calibrated online on the model's own errors (a
    step is tracked from the first time it is asked for):

    >>> model = streamlstm.LSTMForecaster(coverage=0.9)
    >>> hits = n = 0
    >>> for t, (x, y) in enumerate(datasets.AirlinePassengers()):
    ...     if t >= 30:
    ...         lo, hi = model.forecast_interval(horizon=1)[0]
    ...         hits, n = hits + (lo <= y <= hi), n + 1
    ...     model.learn_one(y, x)
    >>> n, round(hits / n, 2)
    (114, 0.9)

    """

    _CELL = "lstm"


class GRUForecaster(_RecurrentForecaster):
    """Online GRU forecaster: ``LSTMForecaster`` with GRU cells (PyTorch's
    ``nn.GRU`` equations, docs/spec.md section 1).  Same parameters; Adam keeps
    torch's betas (0.9, 0.999).

    Examples
    --------
    >>> import math
    >>> import streamlstm
    >>> model = streamlstm.GRUForecaster(seasonality=None)
    >>> for t in range(200):
    ...     model.learn_one(500.0 + 50.0 * math.sin(t / 3.0))
    >>> [round(v, 1) for v in model.forecast(horizon=3)]    # truth: 468.0, 457.2, 451.1
    [468.9, 457.7, 450.7]

    """

    _CELL = "gru"
    # torch's betas: with beta1=0.99 the GRU overshoots on WaterFlow (MAE 7.8 against
    # 3.5, naive 4.5; bench/sequences.py, bench/accuracy.py)
    _BETAS = (0.9, 0.999)


class LSTMRegressor(_SingleSeries, base.Regressor):
    """Online LSTM regressor whose recurrent state persists across calls: every
    ``learn_one(x, y)`` is one time step, so the prediction for ``x`` depends on
    the sequence of ``x``'s seen before (for streams whose order carries meaning).

    ``predict_one`` steps a copy of the state (no side effect).  Numeric features
    are scaled online; non-numeric ones are ignored; features may appear and vanish.

    Parameters
    ----------
    hidden_size, n_layers, lr, k1, k2, scale_window, clip_norm, backend, dtype, seed
        As ``LSTMForecaster``.
    autoregressive
        Also feed the previous target as an input.

    Examples
    --------
    >>> from river import datasets, dummy, evaluate, metrics, stats
    >>> import streamlstm
    >>> model = streamlstm.LSTMRegressor()
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: 0.48
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(),
    ...                                dummy.StatisticRegressor(stats.Mean()), metrics.MAE())
    MAE: 1.57

    """

    _CELL = "lstm"

    def __init__(self, hidden_size: int = 16, n_layers: int = 1, lr: float = 0.01, k1: int = 1,
                 k2: int = 8, autoregressive: bool = False, scale_window: int = 16,
                 clip_norm: float | None = None, backend: str = "cpu", dtype: str = "float64",
                 seed: int = 0):
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.lr = lr
        self.k1 = k1
        self.k2 = k2
        self.autoregressive = autoregressive
        self.scale_window = scale_window
        self.clip_norm = clip_norm
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        self._check_options()
        self._reset_state()

    def learn_one(self, x, y):
        if self._core is None:
            self._core = self._new_core(lags=(1,) if self.autoregressive else (),
                                        differencing=False, coverage=None, experts=None)
        self._learn_row(_target(y), _numeric(x))

    def predict_one(self, x):
        if self._core is None:
            return 0.0
        return self._forecast_one(1, self._future([x], 1))[0]

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4}
        yield {"hidden_size": 3, "k1": 2, "k2": 3, "autoregressive": True}
