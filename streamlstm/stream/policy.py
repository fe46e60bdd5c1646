"""What a stream does with rows it cannot learn from: the data policy.

One table, applied in one place (``validate``) to every batch of every source
(Parquet, CSV, pandas, Kafka), so the same row gets the same treatment whatever
it came from.  Each problem is reported with the origin (file or topic), the row,
the column and the offending value, and says what to do.

=====================================  ==========================================
situation                              treatment
=====================================  ==========================================
missing target (empty, NA, NaN, null)  a normal step: the row is forecast and its
                                       series' state advances, but it carries no
                                       loss (docs/spec.md section 3) and no metric
infinite target                        bad row
target or feature that is not a        bad row
number (``"abc"``)
non-finite feature (NaN, null, inf)    bad row (inputs must be finite, SPEC s. 6)
missing series id or timestamp         bad row
timestamp equal to (duplicate) or      bad row (a recurrent state must see each
before (out of order) the series'      series' observations once, in time order)
latest accepted timestamp
series in live data, not in history    ``new_series``: ``"allow"`` starts it from
                                       zero state with the shared (warm) weights;
                                       ``"skip"`` drops its rows; ``"error"`` stops
missing column, column of a            always an error, before any row is read
non-numeric type, unreadable, empty
or corrupt file
=====================================  ==========================================

``on_bad_row="error"`` (the default) stops at the first bad row, before any row of
its batch has changed the model; ``"skip"`` drops bad rows and counts them by
reason.  Gaps in time are not filled: a series steps once per row it reports.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamlstm.backends.specialize import njit
from streamlstm.errors import InputError

BAD_ROW_CHOICES = ("error", "skip")
NEW_SERIES_CHOICES = ("allow", "skip", "error")

# Reasons, as counted in the run summary.
MISSING_ID = "missing series id"
MISSING_TIME = "missing timestamp"
BAD_TIME = "unreadable timestamp"
NOT_A_NUMBER = "not a number"
INF_TARGET = "infinite target"
BAD_FEATURE = "non-finite feature"
DUPLICATE_TIME = "duplicate timestamp"
OUT_OF_ORDER = "out-of-order timestamp"
NEW_SERIES = "series not in history"


class DataError(InputError):
    """A problem in the data itself, located: origin (file/topic), row, column, value."""

    def __init__(self, message, origin=None, row=None, column=None, value=None, reason=None):
        super().__init__(message)
        self.origin, self.row, self.column, self.value, self.reason = origin, row, column, value, reason


@dataclass(frozen=True)
class Policy:
    """How bad rows and unseen series are treated (see the module table)."""

    on_bad_row: str = "error"
    new_series: str = "allow"

    def __post_init__(self):
        if self.on_bad_row not in BAD_ROW_CHOICES:
            raise InputError(f"on_bad_row={self.on_bad_row!r}; choose one of {BAD_ROW_CHOICES}")
        if self.new_series not in NEW_SERIES_CHOICES:
            raise InputError(f"new_series={self.new_series!r}; choose one of {NEW_SERIES_CHOICES}")

    def config(self):
        return {"on_bad_row": self.on_bad_row, "new_series": self.new_series}


@dataclass
class Problem:
    """Rows of a batch that share one problem.  ``value(r)`` returns the raw
    value at batch row ``r`` for the message."""

    mask: np.ndarray          # (R,) bool
    column: str | None
    reason: str
    value: object             # callable r -> raw value
    hint: str = ""
    detail: object = None     # callable r -> extra context for the message, or None


_SKIP_HINT = "or pass --on-bad-row skip to drop such rows"

HINTS = {
    MISSING_ID: f"fill in the series id, {_SKIP_HINT}",
    MISSING_TIME: f"fill in the timestamp, {_SKIP_HINT}",
    BAD_TIME: f"write timestamps as ISO 8601 dates or numbers, {_SKIP_HINT}",
    NOT_A_NUMBER: f"fix the value (leave a target empty or NaN to mark it missing), {_SKIP_HINT}",
    INF_TARGET: f"leave the target empty or NaN to mark it missing, {_SKIP_HINT}",
    BAD_FEATURE: f"impute the feature (features must be finite), {_SKIP_HINT}",
    DUPLICATE_TIME: f"drop the duplicate row, {_SKIP_HINT}",
    OUT_OF_ORDER: f"sort the rows of each series by time, {_SKIP_HINT}",
    NEW_SERIES: "pass --new-series allow to start it from zero state, or skip to drop it",
}


def _fmt_value(v):
    import datetime
    if isinstance(v, (datetime.datetime, datetime.date)):
        return repr(str(v))     # '2024-01-31 13:00:00', not datetime.datetime(...)
    return repr(v)


def raise_first(batch, problems):
    """Raise a ``DataError`` for the earliest row (in arrival order) of any problem."""
    first, best = None, None
    for p in problems:
        hit = np.flatnonzero(p.mask)
        if hit.size and (first is None or hit[0] < first):
            first, best = int(hit[0]), p
    if best is None:
        return
    v = best.value(first)
    col = f", column {best.column!r}" if best.column else ""
    hint = best.hint or HINTS.get(best.reason, "")
    detail = f"; {best.detail(first)}" if best.detail is not None else ""
    raise DataError(f"{batch.where(first)}{col}: {best.reason} (value {_fmt_value(v)}{detail}); "
                    f"{hint}",
                    origin=batch.origin, row=int(batch.rows[first]), column=best.column,
                    value=v, reason=best.reason)


def stateless_problems(batch):
    """Problems that need no history: infinite targets and non-finite features
    (parse problems come from the source in ``batch.problems``)."""
    out = list(batch.problems)
    y = batch.y
    inf = np.isinf(y)
    if inf.any():
        out.append(Problem(inf, batch.target_name, INF_TARGET, lambda r: float(y[r])))
    if batch.X is not None and batch.X.shape[1]:
        bad = ~np.isfinite(batch.X)
        if bad.any():
            rows_bad = bad.any(axis=1)
            X, names = batch.X, batch.feature_names

            def value(r, bad=bad, X=X):
                return float(X[r, np.flatnonzero(bad[r])[0]])

            # Name the first offending column of the first offending row.
            r0 = int(np.flatnonzero(rows_bad)[0])
            c0 = int(np.flatnonzero(bad[r0])[0])
            out.append(Problem(rows_bad, names[c0] if names else f"feature {c0}", BAD_FEATURE, value))
    return out


@njit(cache=True)
def _order_check(slot, t, last, seen):
    """Sequential time-order check (arrival order): a row is accepted iff its
    time is strictly after its series' latest accepted time.  ``last``/``seen``
    are updated in place (callers pass copies).  Returns codes: 0 ok, 1
    duplicate, 2 out of order."""
    R = slot.shape[0]
    code = np.zeros(R, dtype=np.int8)
    for r in range(R):
        s = slot[r]
        if seen[s]:
            if t[r] == last[s]:
                code[r] = 1
                continue
            if t[r] < last[s]:
                code[r] = 2
                continue
        last[s] = t[r]
        seen[s] = True
    return code


def order_codes(slot, t, last, seen):
    """Duplicate/out-of-order codes for rows ``slot``/``t`` against the running
    ``last`` time per slot (updated in place) — rows that were already
    rejected for another reason must be excluded by the caller first."""
    return _order_check(np.ascontiguousarray(slot, dtype=np.int64), t, last, seen)
