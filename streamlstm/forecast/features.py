"""What the network sees: per-series online scaling of the target and of the
exogenous features, lag inputs and seasonal-position inputs.

The recurrent core (``OnlineRNN``) learns best on inputs and targets of order one;
real series are in the hundreds (AirlinePassengers), drift, have outliers
(WaterFlow's dropouts to a quarter of the usual flow) and each their own scale.
So every series keeps a small *feature state* and the network works in a scaled
space (measured choices: bench/accuracy.py):

* target: by default the value's z-score ``(y_t - c) / s`` around the series'
  smoothed level ``c`` (``trend=True``: level + trend, Holt/Brown), with ``s``
  the RMS of values around it; with ``differencing``, the change
  ``(y_t - y_{t-1}) / s_d`` scaled by the RMS of past changes (not winsorized:
  it is the target's unit, and a large change that recurs must stay learnable).  Forecasts map
  back with the same ``(level, s)``, so a network that outputs 0 forecasts the
  smoothed level (resp. the last value): learning starts from a sane forecaster.
* lag inputs: the same scaled quantity ``l`` steps back, for ``l`` in ``lags``
  (``hist`` keeps the last raw values of each series); with ``differencing``,
  also where the last value sits around the level (mean reversion).
* seasonal position: ``sin/cos(2 pi pos / p)`` for each period ``p`` in
  ``seasonality``, ``pos`` being the series' own row count.
* exogenous features: z-scored with the series' running mean/variance (the row's
  own value included: it is known when forecasting); absent (NaN) -> 0.

Scalers are *adaptive exponential* averages: weight ``max(1/n, 1/window)`` on the
n-th observation, i.e. the plain mean until ``window`` observations, then an
exponentially weighted one, so they start unbiased and follow drift.  The spread
is tracked over ``SCALE_MEMORY`` times the level's window, and updates are
winsorized once a scaler is established (all but the change scaler, see above),
so one outlier moves a scaler a little while a lasting shift is adopted within a
few dozen values.  Scaled values are
clipped to ``[-CLIP, CLIP]``.  Statistics are updated only with the series' own
rows, in arrival order, so nothing depends on how rows are batched.

With ``scaling="global"`` one model-wide target scaler and one feature scaler
stand in for the per-series ones: a running mean and variance (equal weights, no
window, no trend) of every value of every series, updated row by row in arrival
order (so batching still changes nothing).  Every series is then seen in the
same units: lag inputs and targets are ``(y - c) / s`` with the model's ``(c, s)``
(with ``differencing``, changes over the model's RMS change), so what the
network learned on one series means the same on another, and a new series
warmed by replaying its history is forecast as the old ones were.  Per series
remain the raw history, the last value and the position.

The kernels here are ``@njit`` row loops; ``SeriesFeatures`` owns the arrays.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from streamlstm.backends.specialize import INNER, njit
from streamlstm.core.checks import check_int
from streamlstm.errors import CheckpointError, InputError
from streamlstm.forecast.kept_args import KeptArgs

CLIP = 8.0           # scaled inputs/targets are clipped to [-CLIP, CLIP]
WINSOR = 4.0         # scaler updates are winsorized at mean +- WINSOR * s ...
WINSOR_AFTER = 4.0   # ... once a scaler has seen this many values
TINY = 1e-12         # relative floor on a scale, so a constant series does not divide by 0
SCALE_MEMORY = 4.0   # the spread of a series is tracked over 4x the window of its level

# Columns of the per-series target state ``ystat`` (N, 6): the level scaler
# (count, EW mean, EW variance of values), the change scaler (count, EW mean
# square of one-step changes) and the last observed value.
Y_N, Y_MEAN, Y_VAR, Y_DN, Y_DSQ, Y_LEVEL, Y_TREND = range(7)
N_YSTAT = 7
# Columns of the per-series per-feature state ``xstat`` (N, F, 3).
X_N, X_MEAN, X_VAR = range(3)


@njit(cache=True, **INNER)
def _clip(v):
    if v > CLIP:
        return CLIP
    if v < -CLIP:
        return -CLIP
    return v


@njit(cache=True, **INNER)
def _floor(s, ref):
    f = TINY * max(1.0, abs(ref))
    return s if s > f else f


@njit(cache=True, **INNER)
def _level_scale(ystat_row):
    """(center, s): the smoothed level one step ahead (level + trend) and the
    RMS of values around it; s <= 0 while fewer than 2 values were seen."""
    if ystat_row[Y_N] < 1.0:
        return np.nan, -1.0                        # no value yet: nothing to centre on
    m = ystat_row[Y_MEAN] + ystat_row[Y_TREND]
    if ystat_row[Y_N] < 2.0:
        return m, -1.0
    return m, _floor(math.sqrt(ystat_row[Y_VAR]), m)


@njit(cache=True, **INNER)
def _change_scale(ystat_row, last):
    """RMS of the one-step changes (``last``: the series' last value, the floor's
    reference); <= 0 while none was seen."""
    if ystat_row[Y_DN] < 1.0:
        return -1.0
    return _floor(math.sqrt(ystat_row[Y_DSQ]), last)


@njit(cache=True, **INNER)
def _target_map(own_row, ystat_row, diff):
    """(level, s): raw = level + s * scaled for the series' next value (s <= 0:
    not enough history yet: no target, and the forecast is ``level``).
    ``own_row``: the series' own row (its last value), ``ystat_row``: the scaler
    (the same row with per-series scaling, the model-wide one with global)."""
    if diff:
        return own_row[Y_LEVEL], _change_scale(ystat_row, own_row[Y_LEVEL])
    return _level_scale(ystat_row)


@njit(cache=True, **INNER)
def _ew(n, mean, var, v, alpha_min):
    """Adaptive EW mean/variance (West): weight max(1/n, alpha_min), so the plain
    mean/variance until 1/alpha_min values, exponentially weighted after.  Once
    established, an update is winsorized at mean +- WINSOR s: one outlier (a
    sensor dropout) moves the scaler a little, a lasting shift within a few
    dozen values (the variance grows geometrically while it lasts).  A running
    mean (``alpha_min=0``: the global scaler) weighs each value 1/n already and is
    not winsorized."""
    n += 1.0
    a = max(1.0 / n, alpha_min)
    if n > WINSOR_AFTER and var > 0.0 and alpha_min > 0.0:
        lim = WINSOR * math.sqrt(var)
        if v > mean + lim:
            v = mean + lim
        elif v < mean - lim:
            v = mean - lim
    d = v - mean
    mean += a * d
    var = (1.0 - a) * (var + a * d * d)
    return n, mean, var


@njit(cache=True, **INNER)
def _inputs(u, hist_row, own_row, ystat_row, xstat_row, x_row, pos, lags, periods, diff,
            n_x_first):
    """Fill one input row ``u`` (I,) from a series' feature state before this row.

    Layout: [lag inputs (len(lags)), level input (differencing only),
    sin/cos per period (2 len(periods)), features (F)].  ``x_row`` must already
    be folded into ``xstat_row`` (see ``_update_x``).  ``own_row`` is the
    series' row of ``ystat`` (its last value); ``ystat_row``/``xstat_row`` are
    the scalers in use (the series' own, or the model-wide ones).
    """
    mean, sy = _level_scale(ystat_row)
    sd = _change_scale(ystat_row, own_row[Y_LEVEL])
    P = hist_row.shape[0]
    j = 0
    for k in range(lags.shape[0]):
        lag = lags[k]
        v = 0.0
        a = hist_row[P - lag]                          # y_{t-lag}
        if diff:
            b = hist_row[P - lag - 1]                  # y_{t-lag-1}
            if sd > 0.0 and not (math.isnan(a) or math.isnan(b)):
                v = _clip((a - b) / sd)
        elif sy > 0.0 and not math.isnan(a):
            v = _clip((a - mean) / sy)
        u[j] = v
        j += 1
    if diff:
        # where the last value sits in the series' usual range: lets the network
        # learn mean reversion, which changes alone cannot show
        v = 0.0
        lv = own_row[Y_LEVEL]
        if sy > 0.0 and not math.isnan(lv):
            v = _clip((lv - mean) / sy)
        u[j] = v
        j += 1
    for k in range(periods.shape[0]):
        ang = 2.0 * math.pi * (pos % periods[k]) / periods[k]
        u[j] = math.sin(ang)
        u[j + 1] = math.cos(ang)
        j += 2
    for f in range(x_row.shape[0]):
        v = 0.0
        xv = x_row[f]
        if not math.isnan(xv) and xstat_row[f, X_N] >= 2.0 and xstat_row[f, X_VAR] > 0.0:
            v = _clip((xv - xstat_row[f, X_MEAN]) / math.sqrt(xstat_row[f, X_VAR]))
        u[n_x_first + f] = v


@njit(cache=True, **INNER)
def _update_x(xstat_row, x_row, alpha_min):
    for f in range(x_row.shape[0]):
        xv = x_row[f]
        if math.isnan(xv):
            continue
        n, m, v = _ew(xstat_row[f, X_N], xstat_row[f, X_MEAN], xstat_row[f, X_VAR], xv, alpha_min)
        xstat_row[f, X_N] = n
        xstat_row[f, X_MEAN] = m
        xstat_row[f, X_VAR] = v


@njit(cache=True, **INNER)
def _push_y(hist_row, own_row, ystat_row, y, alpha_min, trend):
    """Fold an observed (finite) or missing (NaN) value into the series' state
    (``own_row``) and into the scaler in use (``ystat_row``: the same row, or
    the model-wide one)."""
    P = hist_row.shape[0]
    prev = hist_row[P - 1]
    for p in range(P - 1):
        hist_row[p] = hist_row[p + 1]
    hist_row[P - 1] = y
    if math.isnan(y):
        return
    if not math.isnan(prev):
        # changes have mean ~0: track their EW mean square, *not* winsorized: it is
        # the unit of the differenced target, and a change that recurs (a sawtooth's
        # reset, a daily ramp-down) must stay within CLIP of it to be learnable
        d = y - prev
        n = ystat_row[Y_DN] + 1.0
        a = max(1.0 / n, alpha_min)
        ystat_row[Y_DN] = n
        ystat_row[Y_DSQ] = (1.0 - a) * ystat_row[Y_DSQ] + a * d * d
    _holt(ystat_row, y, alpha_min, trend)
    own_row[Y_LEVEL] = y


@njit(cache=True, **INNER)
def _holt(ystat_row, y, alpha_min, trend):
    """Holt's linear smoothing in error-correction form with the adaptive weight
    a = max(1/n, alpha_min), trend gain a^2 (Brown's double exponential smoothing):
    e = y - (L + T);  L <- L + T + a e;  T <- T + a^2 e;  V <- EW mean of e^2.
    Centring on L + T instead of a plain mean keeps a trending series (airline
    passengers) centred instead of lagging half a window behind.  The error is
    winsorized at WINSOR sqrt(V) once established (robust to outliers), except in
    a running mean (``alpha_min=0``)."""
    n = ystat_row[Y_N] + 1.0
    ystat_row[Y_N] = n
    if n == 1.0:
        ystat_row[Y_MEAN] = y
        ystat_row[Y_TREND] = 0.0
        ystat_row[Y_VAR] = 0.0
        return
    a = max(1.0 / n, alpha_min)
    var = ystat_row[Y_VAR]
    e = y - (ystat_row[Y_MEAN] + ystat_row[Y_TREND])
    if n > WINSOR_AFTER and var > 0.0 and alpha_min > 0.0:
        lim = WINSOR * math.sqrt(var)
        if e > lim:
            e = lim
        elif e < -lim:
            e = -lim
    # The level must follow the series; its spread is a steadier property and a
    # longer memory keeps one burst (WaterFlow's dropouts) from shrinking every
    # scaled input for a whole window afterwards.
    av = max(1.0 / n, alpha_min / SCALE_MEMORY)
    ystat_row[Y_VAR] = (1.0 - av) * (var + av * e * e)
    ystat_row[Y_MEAN] += ystat_row[Y_TREND] + a * e
    if trend:
        ystat_row[Y_TREND] += a * a * e


@njit(cache=True)
def learn_rows(slots, y, X, hist, ystat, xstat, xlast, pos, gy, gx, glob, lags, periods, diff,
               trend, alpha_min, n_x_first, U, T, level, scale):
    """The learning pass over R rows in arrival order (each row for ``slots[r]``).

    Writes the network input ``U[r]``, the scaled target ``T[r]`` (NaN = no loss:
    missing y, or not enough history to scale it) and the map back to raw units
    ``(level[r], scale[r])`` of row r's forecast, then folds row r into its
    series' state.  The scalers are the series' own rows of ``ystat``/``xstat``,
    or with ``glob`` the one model-wide row ``gy[0]``/``gx[0]``, which every row
    of every series updates in turn.  Nothing here depends on the network's
    outputs, so the whole batch can be prepared before the network steps it.
    """
    for r in range(slots.shape[0]):
        n = slots[r]
        if glob:
            sy = gy[0]
            sx = gx[0]
        else:
            sy = ystat[n]
            sx = xstat[n]
        _update_x(sx, X[r], alpha_min)
        for f in range(X.shape[1]):
            if not math.isnan(X[r, f]):
                xlast[n, f] = X[r, f]
        _inputs(U[r], hist[n], ystat[n], sy, sx, X[r], pos[n], lags, periods, diff, n_x_first)
        lv, s = _target_map(ystat[n], sy, diff)
        level[r] = lv
        scale[r] = s
        t = np.nan
        yr = y[r]
        if s > 0.0 and not math.isnan(yr):
            if diff:
                if not math.isnan(hist[n, hist.shape[1] - 1]):   # change from an observed value
                    t = _clip((yr - lv) / s)
            else:
                t = _clip((yr - lv) / s)
        T[r] = t
        _push_y(hist[n], ystat[n], sy, yr, alpha_min, trend)
        pos[n] += 1


@njit(cache=True)
def fold_x_rows(xstat, X, alpha_min):
    for b in range(X.shape[0]):
        _update_x(xstat[b], X[b], alpha_min)


@njit(cache=True)
def rollout_inputs(hist, ystat, sy, sx, X, pos, lags, periods, diff, n_x_first, U, level, scale):
    """Inputs of one rollout step for B independent (copied) series states, row b
    scaled by ``sy[b]``/``sx[b]`` (``ystat``/``xstat`` themselves with per-series
    scaling); the scalers are frozen during a rollout (``X`` is scaled, not learned)."""
    for b in range(hist.shape[0]):
        _inputs(U[b], hist[b], ystat[b], sy[b], sx[b], X[b], pos[b], lags, periods, diff,
                n_x_first)
        lv, s = _target_map(ystat[b], sy[b], diff)
        level[b] = lv
        scale[b] = s


@njit(cache=True)
def rollout_push(hist, ystat, sy, pos, values):
    """Feed a rollout step's forecasts back as if observed (copies only): shift
    ``hist`` and move the level; the scale statistics stay frozen."""
    P = hist.shape[1]
    for b in range(hist.shape[0]):
        for p in range(P - 1):
            hist[b, p] = hist[b, p + 1]
        hist[b, P - 1] = values[b]
        if not math.isnan(values[b]):
            ystat[b, Y_LEVEL] = values[b]
        sy[b, Y_MEAN] += sy[b, Y_TREND]            # the smoothed level moves on by its trend
        pos[b] += 1


SCALINGS = ("series", "global")


def check_scaling(scaling, trend):
    """``scaling``: "series" (each series its own scalers) or "global" (one
    model-wide scaler), as given; global has no per-series trend."""
    if scaling not in SCALINGS:
        raise InputError(f"scaling={scaling!r}: use 'series' (each series scaled on its own) "
                         f"or 'global' (one model-wide scaler, so that state transfers)")
    if scaling == "global" and trend:
        raise InputError("trend=True centres each series on its own trend; with "
                         "scaling='global' every series shares one scaler: use trend=False")
    return scaling


class SeriesFeatures(KeptArgs):
    """Per-series feature state (all float64, one row per slot) and the input layout.

    ``hist`` (N, P) last P raw values (NaN = missing); ``ystat`` (N, 7) target
    scaler (``Y_*`` columns; its ``Y_LEVEL``, the last value, is always the
    series' own); ``xstat`` (N, F, 3) feature scalers (count, mean, variance);
    ``xlast`` (N, F) last raw features (held constant in forecasts when no
    future features are given); ``pos`` (N,) rows seen.

    ``scaling="global"``: the target and feature scalers are instead one
    model-wide row, ``g["ystat"]`` (1, 7) and ``g["xstat"]`` (1, F, 3), updated
    by every row of every series in row order with equal weights (a running
    mean and variance, not winsorized: the model's unit must not move when one
    series does, and series at other levels are no outliers), so
    every series is in the same units and what the network learned on one
    series applies to another.  The per-series scaler columns then stay unused.
    """

    ARRAYS = ("hist", "ystat", "xstat", "xlast", "pos")
    GLOBAL_ARRAYS = ("ystat", "xstat")
    _KEPT = ("_kernel", "_next")     # kernel_arrays(), next_arrays() (kept_args.py)

    def __init__(self, lags, periods, n_features, differencing, window, trend=True,
                 scaling="series"):
        self.lags = np.asarray(lags, dtype=np.int64)
        self.periods = np.asarray(periods, dtype=np.float64)
        self.diff = bool(differencing)
        self.trend = bool(trend)
        self.glob = check_scaling(scaling, trend) == "global"
        # global: weights 1/n for ever (the window is the per-series scalers' memory)
        self.alpha_min = 0.0 if self.glob else 1.0 / float(window)
        self.n_features = int(n_features)
        self.P = max(1, int(self.lags.max(initial=0)) + (1 if self.diff else 0))
        n = int(self.lags.size + (1 if self.diff else 0) + 2 * self.periods.size)
        # A network needs an input: with no lag, seasonal or level input (a
        # regressor before its first feature), one constant-0 column stands in.
        # (Computed once: it is read on every call.)
        self._n_x_first = max(n, 1)
        self.a = self._fresh(0)
        self.g = self._fresh(1, ("ystat", "xstat")) if self.glob else None
        self.forget_args()

    @property
    def n_x_first(self):
        return self._n_x_first

    @property
    def n_inputs(self):
        return self.n_x_first + self.n_features

    def _fresh(self, n, keys=ARRAYS):
        F = self.n_features
        ystat = np.zeros((n, N_YSTAT))
        ystat[:, Y_LEVEL] = np.nan
        a = {"hist": np.full((n, self.P), np.nan), "ystat": ystat,
             "xstat": np.zeros((n, F, 3)), "xlast": np.full((n, F), np.nan),
             "pos": np.zeros(n, dtype=np.int64)}
        return {k: a[k] for k in keys}

    @property
    def n_series(self):
        return self.a["pos"].shape[0]

    def resize(self, n):
        old = self.a
        new = self._fresh(n)
        m = old["pos"].shape[0]
        for k in self.ARRAYS:
            new[k][:m] = old[k]
        self.a = new
        self.forget_args()

    def add_features(self, k):
        """k more feature columns, absent (NaN, scaler empty) in every series so far."""
        for a in (self.a, self.g) if self.glob else (self.a,):
            n = a["xstat"].shape[0]
            a["xstat"] = np.concatenate([a["xstat"], np.zeros((n, k, 3))], axis=1)
        n = self.n_series
        self.a["xlast"] = np.concatenate([self.a["xlast"], np.full((n, k), np.nan)], axis=1)
        self.n_features += k
        self.forget_args()

    def load(self, arrays, global_arrays, n, source):
        """Restore the per-series arrays ``arrays`` (name -> ndarray) of ``n``
        series and, with global scaling, the model-wide scaler ``global_arrays``."""
        for k in self.ARRAYS:
            if k not in arrays or arrays[k].shape[:1] != (n,):
                raise CheckpointError(f"{source}: feature state {k!r} is missing or has the "
                                      f"wrong shape; the file is corrupt")
        if self.g is not None:            # scaling="global": the model-wide scaler
            for k, v in self.g.items():
                if k not in global_arrays or global_arrays[k].shape != v.shape:
                    raise CheckpointError(f"{source}: global scaler {k!r} is missing or "
                                          f"has the wrong shape; the file is corrupt")
            self.g = {k: np.array(global_arrays[k], copy=True) for k in self.g}
        self.a = {k: np.array(arrays[k], copy=True) for k in self.ARRAYS}
        self.forget_args()

    def learn(self, slots, y, X):
        """Prepare R rows (see ``learn_rows``); returns ``(U, T, level, scale)`` and
        folds the rows into the state."""
        R = slots.shape[0]
        U = np.zeros((R, self.n_inputs))
        T = np.empty(R)
        level = np.empty(R)
        scale = np.empty(R)
        learn_rows(slots, y, X, *self.kernel_arrays(), U, T, level, scale)
        return U, T, level, scale

    def kernel_arrays(self):
        """The arguments of ``learn_rows`` between ``X`` and ``U``, in its order
        (kept: kept_args.py)."""
        k = self._kernel
        if k is None:
            a = self.a
            g = self.g if self.glob else a          # unused without global scaling
            k = self._kernel = (a["hist"], a["ystat"], a["xstat"], a["xlast"], a["pos"],
                                g["ystat"], g["xstat"], self.glob, self.lags, self.periods,
                                self.diff, self.trend, self.alpha_min, self._n_x_first)
        return k

    def next_arrays(self):
        """The live state and settings ``onerow.next_row`` reads for a series' next
        inputs (as ``next_inputs`` does, without copies; kept: kept_args.py)."""
        k = self._next
        if k is None:
            a = self.a
            g = self.g if self.glob else a
            k = self._next = (a["hist"], a["ystat"], a["xstat"], a["pos"], g["ystat"],
                              g["xstat"], self.glob, self.lags, self.periods, self.diff,
                              self._n_x_first)
        return k

    def _with_scalers(self, snap):
        """Add the scalers each row of ``snap`` uses: ``sy``/``sx``, its own rows,
        or (global) a copy of the model-wide row per row, so that rows stay
        independent in a rollout."""
        if self.glob:
            B = snap["pos"].shape[0]
            snap["sy"] = np.repeat(self.g["ystat"], B, axis=0)
            snap["sx"] = np.repeat(self.g["xstat"], B, axis=0)
        else:
            snap["sy"] = snap["ystat"]
            snap["sx"] = snap["xstat"]
        return snap

    def view(self, slots):
        """The listed series' state for reading (views where possible; do not write)."""
        if slots.shape[0] == 1:
            s = int(slots[0])
            return self._with_scalers({k: self.a[k][s:s + 1] for k in self.ARRAYS})
        return self._with_scalers({k: self.a[k][slots] for k in self.ARRAYS})

    def snapshot(self, slots):
        """Copies of the listed series' state, for side-effect-free rollouts."""
        if slots.shape[0] == 1:                     # one series: basic slices are cheaper
            s = int(slots[0])
            return self._with_scalers({k: self.a[k][s:s + 1].copy() for k in self.ARRAYS})
        return self._with_scalers({k: self.a[k][slots] for k in self.ARRAYS})   # copies

    def fold_x(self, snap, X):
        """Fold one row of features per snapshot row into the (copied) scalers."""
        fold_x_rows(snap["sx"], X, self.alpha_min)

    def rollout_step(self, snap, X):
        """Inputs and (level, scale) for the next rollout step of the snapshot."""
        B = snap["pos"].shape[0]
        U = np.zeros((B, self.n_inputs))
        level = np.empty(B)
        scale = np.empty(B)
        rollout_inputs(snap["hist"], snap["ystat"], snap["sy"], snap["sx"], X, snap["pos"],
                       self.lags, self.periods, self.diff, self.n_x_first, U, level, scale)
        return U, level, scale

    def next_inputs(self, slots, X):
        """``rollout_step(view(slots), X)``, for the one-series call of a stream
        without building the view's dict (the same arrays reach the kernel)."""
        if self.glob or slots.shape[0] != 1:
            return self.rollout_step(self.view(slots), X)
        s = int(slots[0])
        a = self.a
        ystat = a["ystat"][s:s + 1]
        U = np.zeros((1, self.n_inputs))
        level = np.empty(1)
        scale = np.empty(1)
        rollout_inputs(a["hist"][s:s + 1], ystat, ystat, a["xstat"][s:s + 1], X,
                       a["pos"][s:s + 1], self.lags, self.periods, self.diff, self.n_x_first,
                       U, level, scale)
        return U, level, scale

    def rollout_push(self, snap, values):
        rollout_push(snap["hist"], snap["ystat"], snap["sy"], snap["pos"], values)


@njit(cache=True)
def to_raw(yhat, level, scale):
    """Map scaled network outputs (B,) back to raw units: ``level + s * yhat``
    (just ``level`` while the series has no scale yet; NaN while it has no value)."""
    out = np.empty(level.shape[0])
    for b in range(level.shape[0]):
        s = scale[b]
        out[b] = level[b] + yhat[b] * s if s > 0.0 else level[b]
    return out


# -- constructor checks (MultiSeriesForecaster) ---------------------------------------
def check_features(features):
    """Feature names: a list of distinct str (None: no features)."""
    if features is None:
        return []
    if isinstance(features, str):
        raise InputError(f"features={features!r} must be a list of column names, "
                         f"e.g. [{features!r}]")
    names = list(features)
    for f in names:
        if not isinstance(f, str):
            raise InputError(f"feature name {f!r} must be a str")
    if len(set(names)) != len(names):
        dup = [f for f in names if names.count(f) > 1][0]
        raise InputError(f"feature {dup!r} is listed twice in features")
    return names


def check_lags(lags):
    """Lags: an int or ints >= 1, as a tuple."""
    ls = [lags] if isinstance(lags, numbers.Integral) else list(lags)
    for lag in ls:
        check_int("lags entry", lag, 1)
    return tuple(int(v) for v in ls)


def check_periods(seasonality):
    """Seasonal periods > 1 (None: none), as a tuple of floats."""
    if seasonality is None:
        return ()
    ps = [seasonality] if isinstance(seasonality, numbers.Real) else list(seasonality)
    for p in ps:
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not np.isfinite(p) or p <= 1:
            raise InputError(f"seasonality entry {p!r} must be a period > 1 (in rows)")
    return tuple(float(p) for p in ps)
