"""One arriving value per compiled call: the per-arrival path of the forecasters.

A River forecaster's ``learn_one`` and ``forecast(h)``, and a stream's one-row
``predict_learn``, each touch four states for one row: the series' features
(``features.py``), the network (the CPU backend's ``kernels.step_calls`` /
``forward_rows``), the experts' weights (``experts.py``) and the interval
trackers (``intervals.py``); at a horizon H > 1 the network is also rolled
forward H steps on copies of the state.  Driven from Python that is four to six
Numba dispatches per row, and four more per rollout step, each with its own
argument checks, fresh arrays and dtype conversions: a quarter of what a value
cost at horizon 1 (31 -> 23 us with the defaults), three quarters at horizon 12
(209 -> 48 us; bench/README.md, "One compiled call per arriving value").

``learn_row``, ``next_row`` and ``forecast_row`` make exactly the calls
``MultiSeriesForecaster`` makes on that path, in the same order on the same
arrays (copies where it copies), inside one compiled function each: the same
bits (``tests/test_onerow.py`` runs both paths side by side, every piece of
state compared), one dispatch.  They apply when the network runs on the CPU
backend (``OnlineRNN.cpu_kernel_args``) and the call has one row (or one
series); every other call takes the general path.

Each state hands its arrays over through its own public ``*_arrays`` method, so
this module names no other module's private parts.  The cache entries are
stamped with every source compiled in (``backends/cache.py``).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from streamlstm.backends import cache
from streamlstm.backends.cache import stamp_with
from streamlstm.backends.cpu import kernels
from streamlstm.backends.cpu.forward import forward_rows
from streamlstm.backends.specialize import njit
from streamlstm.forecast import experts, features, intervals
from streamlstm.forecast.intervals import Band

stamp_with(__file__, [__file__, experts.__file__, features.__file__,
                      intervals.__file__, *cache.source_files()])

# The weights argument of a model without experts (never written).
_NO_WEIGHTS = np.empty((0, 0, 0))

# The kernels' results: done; or the network's input came out of the features
# non-finite while learning (the features are updated, nothing else: the caller
# hands the input to the checked ``OnlineRNN.step_rows``, which raises its clear
# error); or it did in a rollout, before anything changed (the caller takes the
# general path, whose checked call raises).
OK, NOT_FINITE, ROLLOUT_NOT_FINITE = 0, 1, 2


@njit(cache=True)
def _finite(U):
    """Whether the one input row ``U`` (1, I) is finite."""
    for i in range(U.shape[1]):
        if not math.isfinite(U[0, i]):
            return False
    return True


@njit(cache=True)
def _rollout(s, X, held, feats, net, fc, U, level, scale, Un, out, fold):
    """``MultiSeriesForecaster._rollout`` of the one series ``s``: ``fc.shape[1]``
    forecasts (into ``fc`` (1, h)) from copies of its feature state and network
    state, each fed back; ``X`` (1, h, F) the raw features of each step, or with
    ``held`` ``X[:, 0]`` at every step; ``fold``: the first step's features are
    folded into the copied scalers first (the rollout before learning a row).
    ``feats`` as ``learn_row``'s.  Returns OK or ROLLOUT_NOT_FINITE (nothing of
    the model changed either way)."""
    hist, ystat, xstat, _xlast, pos, gy, gx, glob, lags, periods, diff, _trend, \
        alpha_min, n_x_first = feats
    # SeriesFeatures.snapshot: copies of the series' rows, and the scalers it uses
    # (its own rows, or copies of the model-wide ones)
    hist_c = hist[s:s + 1].copy()
    ystat_c = ystat[s:s + 1].copy()
    xstat_c = xstat[s:s + 1].copy()
    pos_c = pos[s:s + 1].copy()
    if glob:
        sy = gy[0:1].copy()
        sx = gx[0:1].copy()
    else:
        sy = ystat_c
        sx = xstat_c
    if fold and X.shape[2] > 0:
        features.fold_x_rows(sx, X[:, 0], alpha_min)
    F, I, _hyper, _fuse, state = net
    st = state[s:s + 1].copy()
    row0 = np.zeros(1, dtype=np.int64)                  # the copy's row (see learn_row)
    yhat = np.empty(1)
    for j in range(fc.shape[1]):
        Xj = X[:, 0] if held else X[:, j]
        features.rollout_inputs(hist_c, ystat_c, sy, sx, Xj, pos_c, lags, periods, diff,
                                n_x_first, U, level, scale)
        if not _finite(U):
            return ROLLOUT_NOT_FINITE
        for i in range(U.shape[1]):
            Un[0, i] = U[0, i]
        forward_rows(0, 1, row0, Un, st, out, F, I, False, None, None)
        yhat[0] = out[0, 0]
        v = features.to_raw(yhat, level, scale)
        fc[0, j] = v[0]
        features.rollout_push(hist_c, ystat_c, sy, pos_c, v)
    return OK


@njit(cache=True)
def learn_row(slots, y, X, feats, net, ex, iv, U, T, level, scale, Un, Tn, out, fnet,
              lo, hi, scores, roll, fuse):
    """One row (``slots``, ``y``, ``X`` of length 1) through the features
    (``feats``: ``SeriesFeatures.kernel_arrays()``), the network (``net``:
    ``OnlineRNN.cpu_kernel_args()``), then the experts (``ex``:
    ``ExpertState.kernel_arrays()``, or None) and the intervals (``iv``:
    ``IntervalState.kernel_arrays()``, or None).  Writes the row's forecasts
    (combined if ``ex``) in ``fnet`` (1, H): with H > 1, first the rollout of
    steps 1..H-1 from the state before the row (``_rollout``, the features held),
    then step 0 from learning it; with ``iv``, the bands and scores in ``lo``,
    ``hi``, ``scores`` (or, all None, nowhere: nothing allocated).  ``U``, ``T``,
    ``level``, ``scale`` (float64), ``Un``, ``Tn``, ``out`` (the network's dtype)
    are scratch.  ``roll``: None when H = 1 (a compile-time switch: a model of horizon
    1 compiles no rollout), else True.  ``fuse``: ``net``'s, an argument of its own
    so that Numba prunes by its type (a compile-time switch): None steps the row
    with the driver's one call inlined (``kernels.step_row``: a first run compiles no
    driver), else with the driver (which may fuse a k1 = k2 window).  Returns OK,
    NOT_FINITE or ROLLOUT_NOT_FINITE."""
    if roll is not None:    # the rollout needs the weights in force before the update
        X3 = np.empty((1, 1, X.shape[1]))       # (the layout forecast_row's rollouts get)
        for f in range(X.shape[1]):
            X3[0, 0, f] = X[0, f]
        status = _rollout(slots[0], X3, True, feats, net, fnet, U, level, scale, Un, out,
                          True)
        if status != OK:
            return status
    features.learn_rows(slots, y, X, *feats, U, T, level, scale)
    if not _finite(U):
        return NOT_FINITE
    for i in range(U.shape[1]):
        Un[0, i] = U[0, i]
    Tn[0, 0] = T[0]
    F, I, hyper, _fuse, _state = net
    if fuse is None:        # the driver's one call, inlined: no driver to compile
        kernels.step_row(slots, Un, Tn, out, F, I, hyper)
    else:                   # a k1 = k2 model: the driver, which may fuse a window
        # made here, not module constants: Numba types a global array as read-only,
        # and step_calls would compile again for that type
        one_call = np.empty(2, dtype=np.int64)          # one row = one call
        one_call[0] = 0
        one_call[1] = 1
        kernels.step_calls(slots, Un, Tn, one_call, out, F, I, hyper, None, fuse, None)
    yhat = np.empty(1)
    yhat[0] = out[0, 0]
    fnet[0, 0] = features.to_raw(yhat, level, scale)[0]
    # combined.update_rows's two calls (forecast/combined.py), made from here: one
    # level less for Numba to optimize again (~0.5 s of a first run)
    if ex is not None:
        experts.update_rows(slots, y, fnet, *ex, fnet)
    if iv is not None:
        intervals.update_rows(slots, y, fnet, *iv, lo, hi, scores)
    return OK


@njit(cache=True)
def forecast_row(slots, X, feats, net, ex, weights, U, level, scale, Un, out, fc):
    """``forecast_slots(slots, h)`` of the one series ``slots[0]``, h =
    ``fc.shape[1]`` > 1: the network's rollout from copies of its state
    (``_rollout``, ``X`` (1, h, F) the raw features of each step), then combined by
    the experts (``ex``, ``weights`` as ``next_row``'s).  Returns OK or
    ROLLOUT_NOT_FINITE (nothing written that matters: the general path then)."""
    status = _rollout(slots[0], X, False, feats, net, fc, U, level, scale, Un, out, False)
    if status == OK and ex is not None:
        experts.combine_live(slots, fc, *ex, fc, weights)
    return status


@njit(cache=True)
def next_row(slots, X, feats, net, ex, weights, U, level, scale, Un, out, fc):
    """The next forecast ``fc`` (1, 1) of the one series ``slots[0]`` from its
    live state, changing nothing: ``feats`` (``SeriesFeatures.next_arrays()``),
    ``X`` (1, F) its next features, ``net`` as ``learn_row``'s, combined by the
    experts' ``ex`` (``ExpertState.kernel_arrays()``, or None) with ``weights`` as
    ``combine_live``'s (``U``, ``level``, ``scale``, ``Un``, ``out``: scratch).
    Returns OK, or NOT_FINITE when the network input is not finite (nothing
    written: the caller takes the checked path, which raises its clear error)."""
    hist, ystat, xstat, pos, gy, gx, glob, lags, periods, diff, n_x_first = feats
    s = slots[0]
    if glob:
        sy = gy[0:1]
        sx = gx[0:1]
    else:
        sy = ystat[s:s + 1]
        sx = xstat[s:s + 1]
    features.rollout_inputs(hist[s:s + 1], ystat[s:s + 1], sy, sx, X, pos[s:s + 1], lags,
                            periods, diff, n_x_first, U, level, scale)
    if not _finite(U):
        return NOT_FINITE
    for i in range(U.shape[1]):
        Un[0, i] = U[0, i]
    F, I, _hyper, _fuse, state = net
    st = state[s:s + 1].copy()
    row0 = np.zeros(1, dtype=np.int64)                  # the copy's row (see learn_row)
    forward_rows(0, 1, row0, Un, st, out, F, I, False, None, None)
    yhat = np.empty(1)
    yhat[0] = out[0, 0]
    fc[0, 0] = features.to_raw(yhat, level, scale)[0]
    if ex is not None:
        experts.combine_live(slots, fc, *ex, fc, weights)
    return OK


class OneRow:
    """A model's one-row path: its scratch arrays, and the calls that hand the
    kernels above the arrays of the model's states (``MultiSeriesForecaster``:
    ``predict_learn_slots`` and ``forecast_slots`` of one row or series)."""

    def __init__(self):
        self._scratch = None

    def _arrays(self, feats, net):
        """Scratch (U, T, level, scale, Un, Tn, out), kept while the input width
        stays (zeros where no input column is ever written)."""
        sc = self._scratch
        n_in = feats.n_inputs
        if sc is None or sc[0].shape[1] != n_in:
            dt = net.numpy_dtype
            sc = self._scratch = (np.zeros((1, n_in)), np.empty(1), np.empty(1), np.empty(1),
                                  np.zeros((1, n_in), dtype=dt), np.empty((1, 1), dtype=dt),
                                  np.empty((1, net.layout.n_outputs), dtype=dt))
        return sc

    def learn(self, feats, net, ex, iv, horizon, slots, y, X, interval):
        """``predict_learn_slots`` of one row: the forecasts (1, ``horizon``), or the
        ``Band`` with ``interval``; None on a backend other than the CPU's, or when
        a rollout's input is not finite (nothing done: the caller takes the
        general path)."""
        args = net.cpu_kernel_args()
        if args is None:
            return None
        U, T, level, scale, Un, Tn, out = self._arrays(feats, net)
        fnet = np.empty((1, horizon))
        # the band's arrays only when they are returned (else the kernel's scratch)
        lo, hi, scores = (iv.outputs(1, horizon, keep=True) if interval
                          else (None, None, None))
        status = learn_row(slots, y, X, feats.kernel_arrays(), args,
                           None if ex is None else ex.kernel_arrays(),
                           None if iv is None else iv.kernel_arrays(),
                           U, T, level, scale, Un, Tn, out, fnet, lo, hi, scores,
                           None if horizon == 1 else True, args[3])
        if status == ROLLOUT_NOT_FINITE:
            return None
        if status != OK:
            # The features have learned the row, as on the general path; the network's
            # checked call refuses the non-finite input with its clear error.
            net.step_rows(slots, U.copy(), T[:, None].copy())
            raise AssertionError("OnlineRNN.step_rows accepted a non-finite input")
        return Band(fnet, lo, hi, scores) if interval else fnet

    def forecast(self, feats, net, ex, slots, X):
        """``forecast_slots(slots, h)`` of one series, ``X`` (1, h, F) the raw
        features of the steps: (1, h), or None (another backend, or a non-finite
        input: the general path, with its clear error)."""
        args = net.cpu_kernel_args()
        if args is None:
            return None
        U, _, level, scale, Un, _, out = self._arrays(feats, net)
        h = X.shape[1]
        fc = np.empty((1, h))
        live = None if ex is None else ex.kernel_arrays()
        weights = _NO_WEIGHTS if ex is None else ex.no_weights
        if h == 1:      # from the live state, as the general path's next forecast
            status = next_row(slots, X[:, 0], feats.next_arrays(), args, live, weights,
                              U, level, scale, Un, out, fc)
        else:
            status = forecast_row(slots, X, feats.kernel_arrays(), args, live, weights,
                                  U, level, scale, Un, out, fc)
        return fc if status == OK else None


def compile_parts(parts, feats, ex, iv, horizon, slots, X):
    """Compile (or load from Numba's cache), running nothing, kernels ``learn_row``
    calls, with the argument types ``OneRow.learn`` gives it (no band) for
    ``slots`` and ``X``: with ``"features"`` in ``parts`` the features' learning
    pass and map back to raw units, with ``"scoring"`` the experts' and the
    intervals' ``update_rows``.  A first run's two processes (forecast/warm.py)
    compile them apart, so that ``learn_row`` loads what it calls rather than
    compiling it a second time."""
    y = level = scale = np.zeros(1)
    if "features" in parts:
        _compile(features.learn_rows, slots, y, X, *feats.kernel_arrays(),
                 np.zeros((1, feats.n_inputs)), y, level, scale)
        _compile(features.to_raw, y, level, scale)
    fnet = np.zeros((1, horizon))
    if "scoring" in parts and ex is not None:
        _compile(experts.update_rows, slots, y, fnet, *ex.kernel_arrays(), fnet)
    if "scoring" in parts and iv is not None:
        _compile(intervals.update_rows, slots, y, fnet, *iv.kernel_arrays(), None, None, None)


def _compile(kernel, *args):
    kernel.compile(tuple(numba.typeof(a) for a in args))
