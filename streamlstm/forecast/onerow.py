"""One arriving value per compiled call: the per-arrival path of the forecasters.

A River forecaster's ``learn_one`` and ``forecast(1)``, and a stream's one-row
``predict_learn`` on a model of horizon 1, each touch four states for one row:
the series' features (``features.py``), the network (the CPU backend's
``kernels.step_calls`` / ``forward_rows``), the experts' weights
(``experts.py``) and the interval trackers (``intervals.py``).  Driven from
Python that is four to six Numba dispatches per row, each with its own
argument checks, fresh arrays and dtype conversions - about half of what a
value cost (bench/hotpath.py).

``learn_row`` and ``next_row`` make exactly the calls ``MultiSeriesForecaster``
makes on that path, in the same order on the same arrays, inside one compiled
function each: the same bits (``tests/test_onerow.py`` runs both paths side by
side, every piece of state compared), one dispatch.  They apply when the
network runs on the CPU backend (``OnlineRNN.cpu_kernel_args``) and the call has
one row; every other call takes the general path.

Each state hands its arrays over through its own public ``*_arrays`` method, so
this module names no other module's private parts.  The cache entries are
stamped with every source compiled in (``backends/cache.py``).
"""
from __future__ import annotations

import math

import numpy as np

from streamlstm.backends import cache
from streamlstm.backends.cache import stamp_with
from streamlstm.backends.cpu import kernels
from streamlstm.backends.cpu.forward import forward_rows
from streamlstm.backends.specialize import njit
from streamlstm.forecast import combined, experts, features, intervals

stamp_with(__file__, [__file__, combined.__file__, experts.__file__, features.__file__,
                      intervals.__file__, *cache.source_files()])

ONE_CALL = np.array([0, 1], dtype=np.int64)      # one row = one call of the network
ROW0 = np.zeros(1, dtype=np.int64)               # forward_rows' row slot of a forecast

# learn_row's result: the row was learned, or its network input came out of the
# features non-finite (the features are updated, nothing else: the caller hands
# the input to the checked ``OnlineRNN.step_rows``, which raises its clear error)
OK, NOT_FINITE = 0, 1


@njit(cache=True)
def _finite(U):
    for i in range(U.shape[1]):
        if not math.isfinite(U[0, i]):
            return False
    return True


@njit(cache=True)
def learn_row(slots, y, X, feats, net, ex, iv, U, T, level, scale, Un, Tn, out, fnet,
              lo, hi, scores):
    """One row (``slots``, ``y``, ``X`` of length 1) through the features
    (``feats``: ``SeriesFeatures.kernel_arrays()``), the network (``net``:
    ``OnlineRNN.cpu_kernel_args()``), then the experts (``ex``:
    ``ExpertState.kernel_arrays()``, or None) and the intervals (``iv``:
    ``IntervalState.kernel_arrays()``, or None).  Writes the row's forecast
    (combined if ``ex``) in ``fnet`` (1, 1) and, with ``iv``, its band and
    scores in ``lo``, ``hi``, ``scores``.  ``U``, ``T``, ``level``, ``scale``
    (float64), ``Un``, ``Tn``, ``out`` (the network's dtype) are scratch.
    Returns OK or NOT_FINITE."""
    features.learn_rows(slots, y, X, *feats, U, T, level, scale)
    if not _finite(U):
        return NOT_FINITE
    for i in range(U.shape[1]):
        Un[0, i] = U[0, i]
    Tn[0, 0] = T[0]
    F, I, hyper, fuse, _state = net
    kernels.step_calls(slots, Un, Tn, ONE_CALL, out, F, I, hyper, None, fuse, None)
    yhat = np.empty(1)
    yhat[0] = out[0, 0]
    fnet[0, 0] = features.to_raw(yhat, level, scale)[0]
    if ex is not None:
        if iv is None:
            experts.update_rows(slots, y, fnet, *ex, fnet)
        else:
            combined.update_rows(slots, y, fnet, *ex, *iv, lo, hi, scores)
    elif iv is not None:
        intervals.update_rows(slots, y, fnet, *iv, lo, hi, scores)
    return OK


@njit(cache=True)
def next_row(slots, X, feats, net, ex, weights, U, level, scale, Un, out, fc):
    """The next forecast ``fc`` (1, 1) of the one series ``slots[0]`` from its
    live state, changing nothing: ``feats`` (``SeriesFeatures.next_arrays()``),
    ``X`` (1, F) its next features, ``net`` as ``learn_row``'s, combined by the
    experts' ``ex`` (``ExpertState.live_arrays()``, or None) with ``weights`` as
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
    forward_rows(0, 1, ROW0, Un, st, out, F, I, False, None, None)
    yhat = np.empty(1)
    yhat[0] = out[0, 0]
    fc[0, 0] = features.to_raw(yhat, level, scale)[0]
    if ex is not None:
        experts.combine_live(slots, fc, *ex, fc, weights)
    return OK
