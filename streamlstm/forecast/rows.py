"""Checks of the rows given to ``MultiSeriesForecaster.predict_learn``: series
ids, values and features, with a fast path for the call a stream makes per
arrival (a few rows, plain Python floats or float64 arrays, no features).

``fast_batch`` answers "certainly valid?" in a few hundred nanoseconds and
returns exactly what ``check_batch`` would; on anything else it returns None and
the caller runs ``check_batch``, whose errors are the messages.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from streamlstm.core.checks import is_ready_array, no_inf, refuse_nonfinite
from streamlstm.errors import InputError

_F64 = np.dtype(np.float64)
# Batches up to this many rows are checked in Python on the fast path.
FAST_ROWS = 64


def norm_id(v, r):
    """Series ids are str or int (JSON-able, so they survive a checkpoint)."""
    if isinstance(v, str):
        return v
    if isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    raise InputError(f"series id {v!r} at row {r} is a {type(v).__name__}; series ids must be "
                     f"str or int (convert them, e.g. str(id))")


def check_batch(series_ids, y, X, features, allow_missing_x=False):
    """``(ids list, y (R,) float64, X (R, F) float64)``, both C-contiguous, of a
    batch of rows; raises ``InputError`` naming the row and column of a bad value."""
    ids = list(series_ids) if not isinstance(series_ids, np.ndarray) else series_ids.tolist()
    R = len(ids)
    try:
        ya = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("y must hold real numbers (NaN marks a missing value)") from None
    if ya.ndim == 0:
        ya = ya.reshape(1)
    if ya.shape != (R,):
        raise InputError(f"y has shape {ya.shape}; expected ({R},): one value per row of "
                         f"series_ids")
    bad = np.flatnonzero(np.isinf(ya))
    if bad.size:
        r = bad[0]
        raise InputError(f"y has infinite value {ya[r]} at row {r} (series {ids[r]!r}); "
                         f"use NaN to mark a missing value")
    F = len(features)
    if X is None:
        Xa = np.full((R, F), np.nan)
    else:
        try:
            Xa = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"X must be a numeric array of shape ({R}, {F}) with columns "
                             f"{features}") from None
        if Xa.ndim == 1 and F == 1 and Xa.shape[0] == R:
            Xa = Xa.reshape(R, 1)
        if Xa.shape != (R, F):
            raise InputError(f"X has shape {Xa.shape}; expected ({R}, {F}): one row per "
                             f"series id, columns {features}")
        bad = np.argwhere(np.isinf(Xa) if allow_missing_x else ~np.isfinite(Xa))
        if bad.size:
            r, c = bad[0]
            raise InputError(f"X has non-finite value {Xa[r, c]} at row {r} (series "
                             f"{ids[r]!r}), column {c} ({features[c]!r}); features "
                             f"must be finite: impute or drop the row")
    return ids, np.ascontiguousarray(ya), np.ascontiguousarray(Xa)


def fast_batch(series_ids, y, X, n_features):
    """What ``check_batch`` returns, when the batch certainly passes it and is
    of the common kind: ``series_ids`` a list of at most ``FAST_ROWS`` ids,
    ``y`` a list of Python floats or a C-contiguous float64 (R,) array, none
    infinite, and ``X`` None.  Otherwise None (then run ``check_batch``)."""
    if X is not None or type(series_ids) is not list:
        return None
    R = len(series_ids)
    if R > FAST_ROWS:
        return None
    if type(y) is list:
        if len(y) != R:
            return None
        for v in y:
            if type(v) is not float or math.isinf(v):
                return None
        ya = np.array(y, dtype=np.float64)
    elif is_ready_array(y, _F64, (R,)) and no_inf(y):
        ya = y
    else:
        return None
    Xa = np.empty((R, 0)) if n_features == 0 else np.full((R, n_features), np.nan)
    return list(series_ids), ya, Xa


def frame_rows(frame, features, id_col, time_col, value_col):
    """The rows of a DataFrame for ``learn_many``: ids, values and the ``features``
    columns, in ``time_col`` order (stable; the frame's order without it), each
    checked (a missing column, a non-numeric or infinite value is named)."""
    cols = list(frame.columns)
    for c in (id_col, value_col, *features):
        if c not in cols:
            raise InputError(f"the frame has no column {c!r} (columns: {cols}); "
                             f"rename it or pass id_col=/value_col=")
    if time_col is not None and time_col in cols:
        order = np.argsort(np.asarray(frame[time_col]), kind="stable")
        frame = frame.iloc[order]
    ids = frame[id_col].to_numpy()
    if ids.dtype.kind not in "iuU":
        ids = ids.astype(object)
        if not set(map(type, ids.tolist())) <= {str, int}:      # validate every id first
            for r, v in enumerate(ids.tolist()):
                norm_id(v, r)
    try:
        y = frame[value_col].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise InputError(f"column {value_col!r} must be numeric (NaN marks a missing "
                         f"value)") from None
    F = len(features)
    X = np.empty((len(ids), F))
    for c, name in enumerate(features):
        try:
            X[:, c] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise InputError(f"feature column {name!r} must be numeric") from None
    where = frame.index
    bad = np.flatnonzero(np.isinf(y))
    if bad.size:
        r = bad[0]
        raise InputError(f"column {value_col!r} has infinite value {y[r]} at row "
                         f"{where[r]!r} (series {ids[r]!r}); use NaN for a missing value")
    refuse_nonfinite(X, lambda r, c: (
        f"feature column {features[c]!r} has non-finite value {X[r, c]} at row "
        f"{where[r]!r} (series {ids[r]!r}); impute or drop the row"))
    return ids, np.ascontiguousarray(y), X
