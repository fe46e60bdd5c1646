"""``MultiSeriesForecaster``: one shared LSTM/GRU forecasting many series, each
with its own recurrent state and feature scalers, over a stream of rows
``(series_id, y, features)`` that arrive in any order and at any pace.

It is the core that the River estimators (``forecast/estimators.py``), ``streamlstm
run`` and the Kafka worker are thin layers over:

* ``features.SeriesFeatures`` turns a row into the network's input and scaled
  target (per-series online scaling, lags, seasonal position);
* ``OnlineRNN.step_rows`` steps the rows in arrival order, bit for bit as one
  ``step`` per row (docs/spec.md section 3) but in few backend calls;
* multi-step forecasts roll the network forward on *copies* of the state with
  ``OnlineRNN.predict``, feeding each forecast back as the next input.
"""
from __future__ import annotations

import json
import numbers
import sys

import numpy as np
from tqdm import tqdm

from streamlstm.core import checkpoint as _ckpt
from streamlstm.core.checks import all_finite, check_int
from streamlstm.errors import CheckpointError, InputError
from streamlstm.forecast.features import (SeriesFeatures, check_features, check_lags,
                                          check_periods, to_raw)
from streamlstm.forecast.experts import ExpertState, check_experts
from streamlstm.forecast import combined, onerow, room
from streamlstm.forecast.intervals import IntervalState, check_coverage
from streamlstm.forecast.warm import compile_twins
from streamlstm.forecast.rows import (FAST_ROWS, check_batch, fast_batch, frame_rows,
                                     norm_id)
from streamlstm.core.layout import Layout
from streamlstm.core.online_rnn import OnlineRNN
from streamlstm.core.optim import Adam, optimizer_from_config

CHECKPOINT_KIND = "MultiSeriesForecaster"
FORMAT = 1
DEFAULT_LR = 1e-2
# Rows per chunk in learn_many/replay: bounds memory and paces the progress bar.
CHUNK_ROWS = 1 << 16
# learn_many shows a progress bar on its own from this many rows (on a terminal).
PROGRESS_ROWS = 200_000


class MultiSeriesForecaster:
    """Forecast many series with one stateful recurrent network, online.

    Every row is forecast before its value is seen, then learned from.  New series
    may appear at any time and get their own (zero) recurrent state and scalers;
    the weights are shared by all series.

    Parameters
    ----------
    cell, hidden_size, n_layers
        The recurrent network (``"lstm"`` or ``"gru"``).
    k1, k2
        Truncated BPTT: a series triggers an update every ``k1`` of its rows,
        back-propagating through its last ``k2`` rows (docs/spec.md section 4).  With
        many series the shared weights are updated by some series at most rows
        anyway; a larger ``k1`` lets the rows in between run as one batched
        call.  (A single short series wants ``k1=1``, as ``LSTMForecaster``.)
    optimizer
        ``streamlstm.Adam``/``SGD``; default ``Adam(lr=1e-2)``.
    features
        Names of the numeric exogenous features (columns of ``X``), or None.
    horizon
        Columns of ``predict_learn``'s output: the forecasts 1..horizon steps ahead.
    backend, dtype, seed
        As ``OnlineRNN``.
    lags
        Which past (scaled) values the network sees as inputs, in steps back.
    seasonality
        Period(s) in rows, e.g. 12 or (24, 168): adds sin/cos of each series'
        position in the period as inputs.  None: no seasonal inputs.
    differencing
        Predict the scaled change from the last value (True) or the scaled value
        itself (False).
    scale_window
        Effective memory, in rows, of the per-series scalers.
    clip_norm
        Gradient-norm clipping (``torch.nn.utils.clip_grad_norm_``), or None.
    trend
        Centre the scaled values on a smoothed level *plus trend* (Holt/Brown)
        rather than on a smoothed level only.
    coverage
        Nominal coverage of online prediction intervals (e.g. 0.9), per series
        and horizon step (``forecast/intervals.py``), or None for none.  Their
        state is updated by ``predict_learn`` and ``learn_many``.
    scaling
        ``"series"``: every series is scaled by its own online scalers (the
        network sees each series in its own units).  ``"global"``: one
        model-wide scaler (a running mean and variance of every value of every
        series, in row order), so all series share one unit and what was learned
        on one series carries over to a new one (``examples/warm_start.py``);
        ``trend`` must then be False.
    experts
        ``"auto"``: every forecast is the network's combined, per series and
        horizon step, with naive, smoothed-level and seasonal forecasts (naive,
        seasonal random walk, Holt-Winters per period of ``seasonality``), a
        detected cycle's and the drift, by weights learned online from the errors revealed so
        far (``forecast/experts.py``: ML-Poly, discounted), so a badly forecast
        series falls back on the best simple one.  None: the network alone.

    Examples
    --------
    >>> import numpy as np
    >>> from streamlstm.forecast.multiseries import MultiSeriesForecaster
    >>> m = MultiSeriesForecaster(hidden_size=8, horizon=3, backend="reference")
    >>> t = np.arange(60)
    >>> ids = np.where(t % 2 == 0, "a", "b")          # two series, interleaved rows
    >>> y = np.where(ids == "a", 100 + t, 5 - 0.1 * t)
    >>> out = m.predict_learn(ids, y)
    >>> out.shape, m.series_ids
    ((60, 3), ['a', 'b'])
    >>> f = m.forecast(2)
    >>> sorted(f), len(f["a"])
    (['a', 'b'], 2)

    With ``coverage``, ``interval=True`` gives the bands too (NaN for a step
    that has scored fewer than ``intervals.MIN_SCORED`` forecasts):

    >>> m = MultiSeriesForecaster(hidden_size=8, horizon=2, coverage=0.9, backend="reference")
    >>> band = m.predict_learn(ids, y, interval=True)
    >>> band.yhat.shape, band.lo.shape, bool((band.lo[20:] <= band.hi[20:]).all())
    ((60, 2), (60, 2), True)
    >>> yhat, lo, hi = m.forecast(2, series="a", interval=True)["a"]
    >>> lo[0] <= yhat[0] <= hi[0]
    True
    """

    def __init__(self, cell="lstm", hidden_size=16, n_layers=1, k1=8, k2=16, optimizer=None,
                 features=None, horizon=1, backend="cpu", dtype="float64", seed=0,
                 lags=(1,), seasonality=None, differencing=False, scale_window=16,
                 clip_norm=None, trend=False, coverage=None, scaling="series",
                 experts="auto"):
        self.cell = cell
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.features = features
        self.horizon = horizon
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        self.lags = lags
        self.seasonality = seasonality
        self.differencing = differencing
        self.scale_window = scale_window
        self.clip_norm = clip_norm
        self.trend = trend
        self.coverage = coverage
        self.scaling = scaling
        self.experts = experts

        self._features = check_features(features)
        self._horizon = check_int("horizon", horizon, 1)
        self._lags = check_lags(lags)
        self._periods = check_periods(seasonality)
        self._window = check_int("scale_window", scale_window, 1)
        self._feats = SeriesFeatures(self._lags, self._periods, len(self._features),
                                     bool(differencing), self._window, bool(trend), scaling)
        opt = Adam(lr=DEFAULT_LR) if optimizer is None else optimizer
        self._net = OnlineRNN(n_inputs=self._feats.n_inputs, hidden_size=hidden_size,
                              n_outputs=1, n_series=0, cell=cell, n_layers=n_layers, k1=k1,
                              k2=k2, optimizer=opt, clip_norm=clip_norm, dtype=dtype,
                              backend=backend, seed=seed)
        self._ids = []          # slot -> id
        self._slot = {}         # id -> slot
        cov = check_coverage(type(self).__name__, coverage)
        self._iv = None if cov is None else IntervalState(cov, self._horizon)
        ex = check_experts(type(self).__name__, experts)
        self.experts = ex
        self._ex = None if ex is None else ExpertState(self._periods, self._horizon)
        self._onerow = onerow.OneRow()

    # -- slots --------------------------------------------------------------------------
    @property
    def series_ids(self):
        """Series ids in slot order (the order they first appeared)."""
        return list(self._ids)

    @property
    def n_features(self):
        return len(self._features)

    @property
    def net(self):
        """The underlying ``OnlineRNN`` (read-only use: stepping it directly would
        desynchronise it from the per-series feature state)."""
        return self._net

    # -- the per-slot API: for layers that validated their rows already ---------------
    # (the River estimators).  Slots are int64 arrays from ``slots_of``; ``y`` (R,)
    # float64 finite or NaN; ``X`` (R, F) float64 raw features, NaN = absent.
    def slots_of(self, ids, create=False):
        """Map ids (a list or array) to slots (int64); with ``create``, new ids get
        new slots (nothing is created unless every id is valid), else an unknown
        id raises ``InputError``."""
        if type(ids) is list and len(ids) <= FAST_ROWS and all(type(v) is str for v in ids):
            slots = [self._slot.get(v, -1) for v in ids]     # the common case, checked fast
            if min(slots, default=0) >= 0:
                return np.array(slots, dtype=np.int64)
        if len(ids) > 64 and (isinstance(ids, np.ndarray) or set(map(type, ids)) <= {str, int}):
            return self._slots_for_many(ids, create)
        norm = [norm_id(v, r) for r, v in enumerate(ids)]
        return self._slot_array(norm, norm, create)

    def _slots_for_many(self, ids, create):
        """Long batches: factorize in C, then look up each distinct id once."""
        import pandas as pd
        # a list goes to an object array: np.asarray(["a", 7]) would make 7 the string "7"
        a = ids if isinstance(ids, np.ndarray) else np.array(ids, dtype=object)
        if a.dtype.kind not in "iuU":
            a = np.asarray(ids, dtype=object)
            if a.dtype == object and not set(map(type, a.tolist())) <= {str, int}:
                return self._slot_array([norm_id(v, r) for r, v in enumerate(ids)],
                                        None, create)
        codes, uniques = pd.factorize(a)
        norm = [norm_id(v, r) for r, v in enumerate(uniques.tolist())]
        return self._slot_array(norm, None, create)[codes]

    def _slot_array(self, norm, rows, create):
        """Slots of the normalized ids ``norm``; ``rows`` (the same ids per row) or
        None only changes how an unknown id is reported."""
        if not create:
            for r, v in enumerate(norm):
                if v not in self._slot:
                    where = f" (position {r})" if rows is not None else ""
                    raise InputError(f"unknown series id {v!r}{where}; this model knows "
                                     f"{len(self._ids)} series: learn from it first")
        else:
            new, slot = [], {}
            for v in norm:
                if v not in self._slot and v not in slot:
                    slot[v] = len(self._ids) + len(new)
                    new.append(v)
            if new:
                # room first: if it cannot be had, no id is registered without its room
                self._grow(len(self._ids) + len(new))
                self._slot.update(slot)
                self._ids.extend(new)
        return np.fromiter((self._slot[v] for v in norm), dtype=np.int64, count=len(norm))

    def reserve(self, n):
        """Room for ``n`` series, exactly (series added beyond it grow the room
        geometrically): a model that will only ever hold ``n`` series, such as a
        River forecaster's one, keeps no room for more."""
        room.resize(self._per_series(), check_int("n", n, 1), self._periods)

    def _grow(self, n):
        """Make room for ``n`` series (forecast/room.py); capacity grows
        geometrically so that adding series one by one stays linear overall."""
        parts = self._per_series()
        cap = room.capacity(parts)
        if n > cap:
            room.resize(parts, max(n, int(cap * 1.5) + 8), self._periods)

    def _per_series(self):
        return [p for p in (self._feats, self._iv, self._ex, self._net) if p is not None]

    # -- learning -----------------------------------------------------------------------
    def predict_learn(self, series_ids, y, X=None, interval=False):
        """Forecast each row before seeing its value, then learn from it.

        ``series_ids`` (R,) str/int ids, ``y`` (R,) values (NaN = missing: no
        learning, the state still advances), ``X`` (R, F) features or None.
        Returns (R, horizon): column 0 is this row's forecast, column j the
        forecast of the series' value j steps later (rolled out on a copy of the
        state, features held).  Bit for bit the same however the rows are split
        into calls.  With ``interval=True`` (needs ``coverage``) returns an
        ``intervals.Band``: ``yhat`` (that array), ``lo``, ``hi`` (R, horizon)
        and the ``scores`` of the earlier forecasts of each row's value.
        """
        self._check_interval(interval)
        fast = fast_batch(series_ids, y, X, len(self._features))
        ids, y, X = fast if fast is not None else check_batch(series_ids, y, X, self._features)
        return self.predict_learn_slots(self.slots_of(ids, create=True), y, X, interval)

    def _check_interval(self, interval):
        if interval and self._iv is None:
            raise InputError("this model makes no intervals: construct it with a coverage, "
                             "e.g. MultiSeriesForecaster(coverage=0.9)")

    def predict_learn_slots(self, slots, y, X, interval=False):
        """``predict_learn`` on int64 ``slots`` from ``slots_of`` (validated rows)."""
        if slots.shape[0] == 1 and (done := self._onerow.learn(self._feats, self._net,
                self._ex, self._iv, self._horizon, slots, y, X, interval)) is not None:
            return done             # one arriving value in one compiled call (onerow.py)
        out = self._predict_learn(slots, y, X, self._horizon)
        if self._ex is not None:   # combined in place (and banded) in one compiled call
            return combined.update(self._ex, self._iv, slots, y, out, interval)
        if self._iv is None:
            return out
        band = self._iv.update(slots, y, out)
        return band if interval else out

    def widen_horizon(self, horizon):
        """Forecast (and track intervals for) ``horizon`` steps from now on, if more
        than now; steps new to the intervals start fresh."""
        h = check_int("horizon", horizon, 1)
        if h > self._horizon:
            self._horizon = self.horizon = h
            if self._iv is not None:
                self._iv.set_horizon(h)
            if self._ex is not None:
                self._ex.set_horizon(h)

    def _predict_learn(self, slots, y, X, horizon):
        R = slots.size
        out = np.empty((R, horizon))
        if R == 0:
            return out
        if horizon == 1:   # (R, 1): a view of the fresh (R,) forecasts, no copy
            return self.learn_slots(slots, y, X)[:, None]
        # Rollouts need the weights in force before each row's update, so go call
        # by call exactly as step_rows would (distinct slots, ending at a due row).
        offsets = self._net.call_groups(slots)
        if self._feats.glob:
            # one model-wide scaler: a row's rollout must see the rows before it folded
            # in, as row by row would (one row per group: the same bits, step_rows)
            offsets = np.arange(R + 1)
        for c in range(offsets.size - 1):
            a, b = offsets[c], offsets[c + 1]
            out[a:b] = self._learn_group(slots[a:b], y[a:b], X[a:b], horizon)
        return out

    def learn_slots(self, slots, y, X):
        """Forecast then learn one row per slot, rows in order (the trusted twin of
        ``predict_learn`` with horizon 1): returns the (R,) one-step forecasts."""
        U, T, level, scale = self._feats.learn(slots, y, X)
        yhat = self._step_rows(slots, U, T[:, None])
        return to_raw(np.ascontiguousarray(yhat[:, 0], dtype=np.float64), level, scale)

    # The network is driven through OnlineRNN's trusted path: the rows are built
    # here, valid by construction (slots in range, targets finite or NaN), so its
    # argument checks - most of the cost of one small call - are skipped.  Should
    # a non-finite input ever come out of the features, the checked method is
    # called instead and raises its clear error.
    def _step_rows(self, slots, U, T):
        """``OnlineRNN.step_rows`` (same grouping, same bits), unchecked."""
        net = self._net
        if not all_finite(U):
            return net.step_rows(slots, U, T)
        return net.step_rows_trusted(slots, *(np.ascontiguousarray(a, dtype=net.numpy_dtype)
                                              for a in (U, T)))

    def _get_state(self, slots):
        return self._net.states_trusted(slots)

    def _forward(self, U, state):
        """``OnlineRNN.predict`` from a given state (pure), unchecked."""
        net = self._net
        if not all_finite(U):
            return net.predict(U, state=state)
        return net.forward_trusted(state, np.ascontiguousarray(U, dtype=net.numpy_dtype))

    def _learn_group(self, slots, y, X, horizon):
        """One group of distinct slots: roll out ``horizon`` steps from the state
        before the rows, then learn from them."""
        snap = self._feats.snapshot(slots)
        state = self._get_state(slots)
        fc = self._rollout(snap, state, horizon, lambda j: X, fold_first=X)
        fc[:, 0] = self.learn_slots(slots, y, X)
        return fc

    def _rollout(self, snap, state, horizon, x_at, fold_first=None):
        """``horizon`` forecasts per snapshot row, feeding each one back.  ``x_at(j)``
        gives the raw features of step j.  With ``fold_first`` the first step's
        features are folded into the (copied) scalers first, as ``learn_rows`` does."""
        B = snap["pos"].shape[0]
        out = np.empty((B, horizon))
        if fold_first is not None and fold_first.shape[1]:
            self._feats.fold_x(snap, fold_first)
        for j in range(horizon):
            U, level, scale = self._feats.rollout_step(snap, x_at(j))
            yhat, state = self._forward(U, state)
            v = to_raw(np.ascontiguousarray(yhat[:, 0], dtype=np.float64), level, scale)
            out[:, j] = v
            self._feats.rollout_push(snap, v)
        return out

    # -- forecasting ---------------------------------------------------------------------
    def forecast(self, horizon, series=None, xs=None, interval=False):
        """Forecasts ``horizon`` steps ahead, without changing anything.

        ``series``: one id, a list of ids, or None for every series.  ``xs``:
        future features, (horizon, F) for all listed series or a dict id ->
        (horizon, F); the last seen features are held when None.  Returns a dict
        id -> list of ``horizon`` floats (NaN for a series with no value yet);
        with ``interval=True`` (needs ``coverage``) id -> ``(yhat, lo, hi)``,
        three such lists (NaN bands beyond the model's ``horizon``).
        """
        h = check_int("horizon", horizon, 1)
        self._check_interval(interval)
        ids = self._ids_of(series)
        slots = self.slots_of(ids, create=False)
        ids = [self._ids[s] for s in slots]
        if not ids:
            return {}
        F = len(self._features)
        Xf = self._future_x(xs, ids, slots, h, F)
        out = self._forecast_slots(slots, h, Xf)
        if interval:
            lo, hi = self._iv.bounds(slots, out)
            return {i: (out[k].tolist(), lo[k].tolist(), hi[k].tolist())
                    for k, i in enumerate(ids)}
        return {i: out[k].tolist() for k, i in enumerate(ids)}

    def forecast_slots(self, slots, horizon, X=None, interval=False):
        """(B, horizon) forecasts of int64 ``slots``, changing nothing.  ``X`` (B,
        horizon, F) raw future features, or None to hold each series' last seen.
        ``interval=True``: ``(yhat, lo, hi)``, three such arrays."""
        self._check_interval(interval)
        if X is None:
            X = self._future_x(None, None, slots, horizon, len(self._features))
        out = self._forecast_slots(slots, horizon, X)
        return (out, *self._iv.bounds(slots, out)) if interval else out

    def _forecast_slots(self, slots, h, Xf):
        """(B, h) forecasts for slots, ``Xf`` (B, h, F) raw future features."""
        if slots.shape[0] == 1 and (fc := self._onerow.forecast(
                self._feats, self._net, self._ex, slots, Xf)) is not None:
            return fc               # one series' forecasts in one compiled call (onerow.py)
        if self._ex is None:
            return self._network_forecast(slots, h, Xf)
        if h == 1:   # to raw units and combined in one compiled call
            return combined.next_combination(self._ex, slots, *self._next_scaled(slots, Xf))
        return self._ex.combine(slots, self._network_forecast(slots, h, Xf))

    def _next_scaled(self, slots, Xf):
        """The network's next forecasts (B,) in its own units and the (level, scale)
        that map them to raw units.  Nothing is fed back for one step: the live
        feature state is read, no copy needed."""
        U, level, scale = self._feats.next_inputs(slots, Xf[:, 0])
        net = self._net
        if all_finite(U):
            yhat = net.forward_live_trusted(slots, np.ascontiguousarray(U, dtype=net.numpy_dtype))
        else:
            yhat, _ = net.predict(U, state=self._get_state(slots))     # its clear error
        return np.ascontiguousarray(yhat[:, 0], dtype=np.float64), level, scale

    def _network_forecast(self, slots, h, Xf):
        """(B, h) forecasts of the network alone."""
        if h == 1:
            return to_raw(*self._next_scaled(slots, Xf))[:, None]
        snap = self._feats.snapshot(slots)
        return self._rollout(snap, self._get_state(slots), h, lambda j: Xf[:, j])

    def weights(self, series=None):
        """The experts' weights in the next forecasts: a dict id -> list (one per
        tracked horizon step) of dicts expert name -> weight (``experts="auto"``;
        ``forecast/experts.py``).  ``series``: one id, a list, or None for all.

        >>> m = MultiSeriesForecaster(hidden_size=4, backend="reference")
        >>> _ = m.predict_learn(["a"] * 50, list(range(50)))
        >>> sorted(m.weights("a")["a"][0])
        ['cycle', 'drift', 'level', 'naive', 'network']
        """
        if self._ex is None:
            raise InputError("this model combines no experts (experts=None)")
        ids = self._ids_of(series)
        slots = self.slots_of(ids, create=False)
        w = self._ex.weights(slots)
        return {self._ids[s]: list(w[k]) for k, s in enumerate(slots)}

    def weight_table(self):
        """``(names, W)``: the experts' names and each series' weights in its next
        forecasts, W (n_series, horizon, K) in ``series_ids`` order (None with
        ``experts=None``)."""
        if self._ex is None:
            return None
        n = len(self._ids)
        return self._ex.names, self._ex.weight_array(np.arange(n, dtype=np.int64))

    def _ids_of(self, series):
        if series is None:
            return list(self._ids)
        if isinstance(series, (str, numbers.Integral, np.integer)):
            return [series]
        return list(series)

    def _future_x(self, xs, ids, slots, h, F):
        """(B, h, F) raw future features (NaN = absent)."""
        B = len(slots)
        if F == 0:                 # no features: nothing to gather (the per-call hot path)
            return np.empty((B, h, 0))
        if xs is None:
            last = self._feats.a["xlast"][slots]                 # (B, F)
            return np.repeat(last[:, None, :], h, axis=1)
        if isinstance(xs, dict):
            out = np.empty((B, h, F))
            for k, i in enumerate(ids):
                if i not in xs:
                    raise InputError(f"xs has no entry for series {i!r}; give future features "
                                     f"for every forecast series or xs=None")
                out[k] = self._check_xs(xs[i], h, F, f"xs[{i!r}]")
            return out
        return np.repeat(self._check_xs(xs, h, F, "xs")[None], B, axis=0)

    def _check_xs(self, a, h, F, name):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be numeric, shape ({h}, {F})") from None
        if a.shape != (h, F):
            raise InputError(f"{name} has shape {a.shape}; expected (horizon, F) = ({h}, {F}) "
                             f"with columns {self._features}")
        bad = np.argwhere(np.isinf(a))
        if bad.size:
            j, c = bad[0]
            raise InputError(f"{name} has non-finite value {a[j, c]} at step {j}, column "
                             f"{self._features[c]!r}")
        return a

    # -- features that appear later --------------------------------------------------------
    def add_features(self, names):
        """Add exogenous feature columns (at the end of ``X``).  The network gets
        new input columns with zero weights, so its forecasts do not change; they
        were absent (input 0) in every past row, which is what the stored
        windows hold."""
        names = check_features(list(names))
        clash = [n for n in names if n in self._features]
        if clash:
            raise InputError(f"feature {clash[0]!r} is already known")
        if not names:
            return
        k = len(names)
        net = self._net
        meta = {"config": net.config(), "layout": net.layout.describe()}
        arrays = {key: np.array(v, copy=True) for key, v in net.arrays().items()}
        old_layout = net.layout
        new_layout = Layout(net.cell, net.n_inputs + k, net.hidden_size, 1, net.n_layers)
        meta["config"]["n_inputs"] = net.n_inputs + k
        meta["layout"] = new_layout.describe()
        for key in ("theta", "opt_m", "opt_v"):   # the moments share theta's packed layout
            sd = old_layout.to_state_dict(arrays[key])
            w = sd["weight_ih_l0"]
            sd["weight_ih_l0"] = np.concatenate([w, np.zeros((w.shape[0], k), w.dtype)], axis=1)
            arrays[key] = new_layout.from_state_dict(sd, w.dtype)
        wu = arrays["win_u"]
        arrays["win_u"] = np.concatenate([wu, np.zeros(wu.shape[:2] + (k,), wu.dtype)], axis=2)
        meta["config"]["n_series"] = wu.shape[0]
        self._net = OnlineRNN.from_checkpoint_parts(meta, arrays, backend=net.backend)
        self._feats.add_features(k)
        self._features = self._features + names

    # -- compiling ahead ---------------------------------------------------------------
    def compile_kernels(self, every=False):
        """Compile (or load from Numba's cache) the kernels this model's calls use
        (``every=True``: all the CPU driver's specializations; forecast/warm.py).
        Returns the seconds it took."""
        return compile_twins(self, every)

    def compile_one_row(self, parts, slots, X):
        """``onerow.compile_parts`` of this model's states (forecast/warm.py)."""
        onerow.compile_parts(parts, self._feats, self._ex, self._iv, self._horizon, slots, X)

    # -- many rows at once -----------------------------------------------------------------
    def learn_many(self, frame, id_col="series_id", time_col="timestamp", value_col="value",
                   progress=None):
        """Learn from a DataFrame of rows ``series_id, timestamp, value, features...``.

        Rows are taken in timestamp order (stable: ties keep the frame's order);
        without a ``time_col`` column, in the frame's order.  Feature columns are
        the ``features`` given at construction.  Every row of a chunk is stepped
        in few kernel calls (``OnlineRNN.step_rows``).  ``progress``: show a bar on
        stderr (None: on a terminal, for long frames).
        """
        ids, y, X = frame_rows(frame, self._features, id_col, time_col, value_col)
        R = len(ids)
        # with experts or intervals, their state learns too (replay = streaming)
        learn = (self.learn_slots if self._ex is None and self._iv is None
                 else self.predict_learn_slots)
        if progress is None:
            progress = R >= PROGRESS_ROWS and sys.stderr.isatty()
        with tqdm(total=R, desc="learning", unit=" rows", unit_scale=True, file=sys.stderr,
                  disable=not progress) as bar:
            for a in range(0, R, CHUNK_ROWS):
                b = min(R, a + CHUNK_ROWS)
                learn(self.slots_of(ids[a:b], create=True), y[a:b], X[a:b])
                bar.update(b - a)

    def replay(self, frame, id_col="series_id", time_col="timestamp", value_col="value",
               progress=True):
        """Warm the model on a long history: ``learn_many`` with a progress bar."""
        self.learn_many(frame, id_col=id_col, time_col=time_col, value_col=value_col,
                        progress=progress)

    # -- checkpoints ------------------------------------------------------------------------
    def _config(self):
        opt = self._net.optimizer
        return {"cell": self.cell, "hidden_size": self.hidden_size, "n_layers": self.n_layers,
                "k1": self.k1, "k2": self.k2, "optimizer": opt.config(),
                "features": list(self._features), "horizon": self._horizon,
                "backend": self.backend, "dtype": self.dtype, "seed": self.seed,
                "lags": list(self._lags), "seasonality": list(self._periods),
                "differencing": bool(self.differencing), "scale_window": self._window,
                "clip_norm": self.clip_norm, "trend": bool(self.trend),
                "coverage": None if self._iv is None else self._iv.coverage,
                "scaling": self.scaling, "experts": self.experts}

    def _parts(self):
        """(meta, arrays): everything needed to rebuild this model bit for bit."""
        net = self._net
        meta = {"format": FORMAT, "config": self._config(), "ids": list(self._ids),
                "net": {"config": net.config(), "layout": net.layout.describe()}}
        arrays = {f"net.{k}": v for k, v in net.arrays().items()}
        arrays.update({f"feat.{k}": v for k, v in self._feats.a.items()})
        arrays.update({f"gfeat.{k}": v for k, v in (self._feats.g or {}).items()})
        if self._iv is not None:
            arrays.update({f"iv.{k}": v for k, v in self._iv.a.items()})
        if self._ex is not None:
            arrays.update({f"ex.{k}": v for k, v in self._ex.a.items()})
        return meta, arrays

    @classmethod
    def _from_parts(cls, meta, arrays, backend=None, source="checkpoint"):
        try:
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{source}: MultiSeriesForecaster format "
                                      f"{meta.get('format')!r}, this streamlstm reads {FORMAT}")
            cfg = dict(meta["config"])
            cfg["optimizer"] = optimizer_from_config(cfg["optimizer"])
            cfg["seasonality"] = tuple(cfg["seasonality"]) or None
            cfg["lags"] = tuple(cfg["lags"])
            cfg.setdefault("experts", None)     # a checkpoint from before experts
            if backend is not None:
                cfg["backend"] = backend
            model = cls(**cfg)
            net_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("net.")}
            model._net = OnlineRNN.from_checkpoint_parts(meta["net"], net_arrays,
                                                         backend=cfg["backend"], source=source)
            n = model._net.n_series
            model._feats.load({k[5:]: v for k, v in arrays.items() if k.startswith("feat.")},
                              {k[6:]: v for k, v in arrays.items() if k.startswith("gfeat.")},
                              n, source)
            if model._iv is not None:
                model._iv.load({k[3:]: v for k, v in arrays.items() if k.startswith("iv.")}, n,
                               source)
            if model._ex is not None:
                model._ex.load({k[3:]: v for k, v in arrays.items() if k.startswith("ex.")}, n,
                               source)
            model._ids = list(meta["ids"])
            model._slot = {i: s for s, i in enumerate(model._ids)}
        except CheckpointError:
            raise
        except (KeyError, TypeError, InputError) as exc:
            raise CheckpointError(f"{source}: bad MultiSeriesForecaster checkpoint "
                                  f"({exc!r})") from None
        return model

    def save(self, path, extra_meta=None, extra_arrays=None):
        """Write everything needed to resume bit for bit (network, optimizer,
        per-series states, windows and scalers, ids) atomically to ``path``.
        ``extra_meta`` (JSON-able) and ``extra_arrays`` (name -> ndarray) are
        stored alongside and returned by ``load_with_extras``."""
        extra_meta = {} if extra_meta is None else extra_meta
        try:
            json.dumps(extra_meta)
        except TypeError as exc:
            raise InputError(f"extra_meta must be JSON-serialisable ({exc})") from None
        meta, arrays = self._parts()
        meta["extra"] = extra_meta
        for k, v in (extra_arrays or {}).items():
            arrays[f"extra.{k}"] = np.asarray(v)
        _ckpt.write(path, kind=CHECKPOINT_KIND, meta=meta, arrays=arrays)

    @classmethod
    def load(cls, path, backend=None):
        """The model ``save`` wrote to ``path`` (``backend`` overrides the saved one)."""
        return cls.load_with_extras(path, backend=backend)[0]

    @classmethod
    def load_with_extras(cls, path, backend=None):
        """``(model, extra_meta, extra_arrays)``: the model and what the caller of
        ``save`` stored beside it (a stream snapshot keeps its runner there)."""
        meta, arrays = _ckpt.read(path, kind=CHECKPOINT_KIND)
        model = cls._from_parts(meta, arrays, backend=backend, source=str(path))
        extra = {k[6:]: v for k, v in arrays.items() if k.startswith("extra.")}
        return model, meta.get("extra", {}), extra

    # Pickling (River's clone/pickle checks, multiprocessing) goes through the same
    # parts as a checkpoint: backends may hold device memory or compiled state.
    def __getstate__(self):
        meta, arrays = self._parts()
        return {"meta": meta, "arrays": {k: np.array(v, copy=True) for k, v in arrays.items()}}

    def __setstate__(self, state):
        other = type(self)._from_parts(state["meta"], state["arrays"], source="pickle")
        self.__dict__.update(other.__dict__)

    def __repr__(self):
        return (f"MultiSeriesForecaster(cell={self.cell!r}, hidden_size={self.hidden_size}, "
                f"n_series={len(self._ids)}, features={self._features}, "
                f"horizon={self._horizon}, backend={self.backend!r})")
