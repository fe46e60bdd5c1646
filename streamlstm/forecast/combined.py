"""The experts' and the intervals' work on the per-row path in one compiled call.

With experts and intervals both on (the defaults), each batch of rows given to
``MultiSeriesForecaster.predict_learn`` (one row per call on the per-arrival
path: ``learn_one``, a stream's one-row calls) updates two states after the
network: the experts' (``experts.update_rows``: combine the network's forecasts,
score the pending combinations) and then the intervals' (``intervals.update_rows``:
bands around the combined forecasts, score the pending bands).  Called one after
the other from Python, that is two Numba dispatches, two sets of argument checks
and three to four fresh output arrays per row.  ``update_rows`` here makes the
same two kernel calls, in the same order on the same arrays, inside one compiled
function: the same bits (``tests/test_intervals.py``), one dispatch, and the
combination written over the network's forecasts in place.  Likewise
``next_rows`` takes the network's next-step forecast to raw units and combines
it (``forecast(1)``, ``forecast_slots(slots, 1)``) in one call instead of two.

With experts alone (``coverage=None``) ``update`` runs the experts' kernel with the
combination written in place.  The cache entries here are stamped with this file,
``experts.py``, ``features.py`` and ``intervals.py`` (``backends/cache.py``'s
``stamp_with``): an edit to any of those kernels recompiles them.
"""
from __future__ import annotations

from streamlstm.backends.cache import stamp_with
from streamlstm.backends.specialize import njit
from streamlstm.forecast import experts, features, intervals
from streamlstm.forecast.intervals import Band

stamp_with(__file__, [__file__, experts.__file__, features.__file__, intervals.__file__])


@njit(cache=True)
def update_rows(slots, y, fnet, buf, dims, ibuf, idims, lo, hi, scores):
    """``experts.update_rows`` with ``fnet`` as its output too (each row's network
    forecasts are read before their combination overwrites them), then
    ``intervals.update_rows`` on the combined forecasts."""
    experts.update_rows(slots, y, fnet, buf, dims, fnet)
    intervals.update_rows(slots, y, fnet, ibuf, idims, lo, hi, scores)


def update(ex, iv, slots, y, fnet, band):
    """Combine and band the network's forecasts ``fnet`` (R, H; C-contiguous
    float64, overwritten with the combination) of int64 ``slots`` with targets
    float64 ``y`` (R,), updating ``ex`` (``ExpertState``) and ``iv``
    (``IntervalState``, or None: no bands) row by row: the combination, or with
    ``band`` the ``Band`` (as ``iv.update(slots, y, ex.update(slots, y, fnet))``
    would give)."""
    if iv is None:
        experts.update_rows(slots, y, fnet, *ex.kernel_arrays(), fnet)
        return fnet
    R, H = fnet.shape
    lo, hi, scores = iv.outputs(R, H, keep=band)
    update_rows(slots, y, fnet, *ex.kernel_arrays(), *iv.kernel_arrays(), lo, hi, scores)
    return Band(fnet, lo, hi, scores) if band else fnet


@njit(cache=True)
def next_rows(yhat, level, scale, slots, buf, dims, weights):
    """``features.to_raw`` of the network's next forecasts, then
    ``experts.combine_live`` of them: (B, 1) combined forecasts."""
    out = features.to_raw(yhat, level, scale).reshape((-1, 1))
    experts.combine_live(slots, out, buf, dims, out, weights)
    return out


def next_combination(ex, slots, yhat, level, scale):
    """The combined next forecasts (B, 1) of int64 ``slots`` from the network's
    forecasts ``yhat`` (B,) in its own units and the ``level``, ``scale`` that map
    them to raw units: ``ex.combine(slots, to_raw(yhat, level, scale)[:, None])``
    in one compiled call."""
    return next_rows(yhat, level, scale, slots, *ex.kernel_arrays(), ex.no_weights)
