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

from .errors import InputError
from .multiseries import MultiSeriesForecaster
from .optim import Adam

__all__ = ["LSTMForecaster", "GRUForecaster", "LSTMRegressor", "MultiSeriesForecaster",
           "season_from_step"]

# Rows held back while ``seasonality="auto"`` waits for a second timestamp.
_MAX_PENDING = 3
_DAY = 86400.0
_CYCLES = (_DAY, 7 * _DAY, 365.25 * _DAY)     # day, week, year


def season_from_step(seconds):
    """The seasonal period, in steps, of a series sampled every ``seconds``:
    the first natural cycle (day, week, year) spanning at least 4 steps.

    >>> [season_from_step(s) for s in (900, 3600, 86400, 7 * 86400, 30.4 * 86400, 91 * 86400)]
    [96, 24, 7, 52, 12, 4]
    >>> season_from_step(365 * 86400) is None
    True
    """
    if not seconds or seconds <= 0 or not math.isfinite(seconds):
        return None
    for cycle in _CYCLES:
        if cycle / seconds >= 4.0 - 1e-9:
            return int(round(cycle / seconds))
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

    def _reset_state(self):
        self._core = None
        self._feature_names = []       # numeric feature names in input-column order
        self._n_learned = 0

    def _new_core(self, **kw):
        core = MultiSeriesForecaster(
            cell=self._CELL, hidden_size=self.hidden_size, n_layers=self.n_layers,
            k1=self.k1, k2=self.k2, optimizer=Adam(lr=self.lr), clip_norm=self.clip_norm,
            backend=self.backend, dtype=self.dtype, seed=self.seed,
            scale_window=self.scale_window, **kw)
        core._slots_for([0], create=True)          # the one series, slot 0
        return core

    def _row(self, xnum, grow):
        """The feature row for ``xnum``; with ``grow``, unseen names become new
        input columns first (sorted, so dict order never matters)."""
        if grow:
            new = sorted(k for k in xnum if k not in self._feature_index)
            if new:
                self._core.add_features(new)
                self._feature_names = self._feature_names + new
        return np.array([[xnum.get(f, math.nan) for f in self._feature_names]])

    @property
    def _feature_index(self):
        return set(self._feature_names)

    def _learn_row(self, y, xnum):
        X = self._row(xnum, grow=True)
        if X.shape[1]:
            bad = np.isinf(X[0])
            if bad.any():
                f = self._feature_names[int(np.flatnonzero(bad)[0])]
                raise InputError(f"feature {f!r} is infinite ({xnum[f]}); pass finite values")
        self._core._learn(self._SLOT, np.array([y]), X)
        self._n_learned += 1

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

    def __init__(self, hidden_size: int = 16, n_layers: int = 1, lr: float = 0.01, k1: int = 1,
                 k2: int = 16, seasonality: int | str | None = "auto", lags: tuple | str = "auto",
                 differencing: bool = False, scale_window: int = 32,
                 clip_norm: float | None = None, backend: str = "cpu", dtype: str = "float64",
                 seed: int = 0):
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.lr = lr
        self.k1 = k1
        self.k2 = k2
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
        self._reset_state()
        self._pending = []             # (y, xnum) held while the period is unknown
        self._first_time = None
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
            return True, season_from_step(step / (len(self._pending) - 1))
        return len(self._pending) >= _MAX_PENDING, None

    def _build(self, period):
        self.period_ = period
        if self.lags == "auto":
            lags = (1,) if period is None else (1, period - 1, period, period + 1)
        else:
            lags = self.lags
        self._core = self._new_core(lags=lags, seasonality=period,
                                    differencing=self.differencing)

    # -- River API ---------------------------------------------------------------------
    def learn_one(self, y, x=None):
        """Learn from the next value ``y`` of the series (``x``: its features; only
        numeric values are used, datetimes set ``seasonality="auto"``)."""
        yv = _target(y)
        xnum = _numeric(x)
        if self._core is not None:
            self._learn_row(yv, xnum)
            return
        self._pending.append((yv, xnum))
        decided, period = self._decide_period(_find_time(x))
        if decided:
            self._build(period)
            rows, self._pending = self._pending, []
            for yy, xx in rows:
                self._learn_row(yy, xx)

    def forecast(self, horizon, xs=None):
        """Forecasts of the next ``horizon`` values (``xs``: their features, if
        known), rolled out on a copy of the state: nothing changes."""
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 0:
            raise InputError(f"horizon={horizon!r} must be an integer >= 0")
        if xs is not None and len(xs) != horizon:
            raise InputError(f"xs has {len(xs)} entries; it must have one per forecast step "
                             f"(horizon={horizon})")
        if horizon == 0:
            return []
        if self._core is None:
            last = next((yy for yy, _ in reversed(self._pending) if not math.isnan(yy)), 0.0)
            return [last] * horizon
        return self._core.forecast(horizon, series=0, xs=self._future(xs, horizon))[0]

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4}
        yield {"hidden_size": 3, "k1": 2, "k2": 3, "seasonality": 2, "differencing": True,
               "dtype": "float32"}


class LSTMForecaster(_RecurrentForecaster):
    """Online LSTM forecaster: learns from every value as it arrives and forecasts
    any horizon from its persistent recurrent state.

    The network predicts the next value from scaled lags (by default the last
    value and the values one season ago), the position in the season and numeric
    exogenous features; it learns by truncated backpropagation through time after
    every ``k1`` values over the last ``k2`` (SPEC section 4) with Adam(``lr``).

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
        ``"auto"`` (from the spacing of datetimes in ``x``; none without them),
        None, or a period in steps.
    lags
        ``"auto"`` (1, and the period -1, 0, +1 when seasonal) or a tuple of steps back.
    differencing
        Predict the change from the last value instead of the scaled value.
    scale_window
        Memory, in values, of the online scalers of the target and the features.
    clip_norm
        Gradient-norm clipping, or None.
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

    Examples
    --------
    >>> from river import datasets, metrics, time_series
    >>> import streamlstm
    >>> model = streamlstm.LSTMForecaster()
    >>> time_series.evaluate(datasets.AirlinePassengers(), model, metrics.MAE(), horizon=12)
    +1  MAE: ...
    ...
    +12 MAE: ...
    >>> model.period_
    12
    >>> [round(v) for v in model.forecast(horizon=3)]
    [...]

    """

    _CELL = "lstm"


class GRUForecaster(_RecurrentForecaster):
    """Online GRU forecaster: ``LSTMForecaster`` with GRU cells (PyTorch's
    ``nn.GRU`` equations, SPEC section 1).  Same parameters.

    Examples
    --------
    >>> import math
    >>> import streamlstm
    >>> model = streamlstm.GRUForecaster(seasonality=None)
    >>> for t in range(200):
    ...     model.learn_one(500.0 + 50.0 * math.sin(t / 3.0))
    >>> [round(v, 1) for v in model.forecast(horizon=3)]
    [...]

    """

    _CELL = "gru"


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
    >>> from river import datasets, evaluate, metrics, preprocessing
    >>> import streamlstm
    >>> model = streamlstm.LSTMRegressor()
    >>> evaluate.progressive_val_score(datasets.TrumpApproval(), model, metrics.MAE())
    MAE: ...

    """

    _CELL = "lstm"

    def __init__(self, hidden_size: int = 16, n_layers: int = 1, lr: float = 0.01, k1: int = 1,
                 k2: int = 16, autoregressive: bool = False, scale_window: int = 32,
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
        self._reset_state()

    def learn_one(self, x, y):
        if self._core is None:
            self._core = self._new_core(lags=(1,) if self.autoregressive else (),
                                        differencing=False)
        self._learn_row(_target(y), _numeric(x))

    def predict_one(self, x):
        if self._core is None:
            return 0.0
        return self._core.forecast(1, series=0, xs=self._future([x], 1))[0][0]

    @classmethod
    def _unit_test_params(cls):
        yield {"hidden_size": 4, "k2": 4}
        yield {"hidden_size": 3, "k1": 2, "k2": 3, "autoregressive": True}
