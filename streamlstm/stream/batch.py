"""What flows through a stream: ``RowBatch`` (rows in arrival order, as a source
produces them) and ``Forecasts`` (what the runner returns for a batch)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def format_time(v, batch):
    """A time key (int ns / int / float) as the user wrote it, for messages."""
    if batch.time_kind != "datetime":
        return v.item() if hasattr(v, "item") else v
    import pyarrow as pa
    tb = (batch.columns or {}).get("time")
    tz = getattr(tb.type, "tz", None) if tb is not None else None
    return str(pa.scalar(int(v), type=pa.timestamp("ns", tz=tz)).as_py())


@dataclass
class RowBatch:
    """Rows in arrival order, one observation each (long format).

    ``ids`` (R,) series ids (str or int), ``time`` (R,) int64 (datetimes as ns,
    integer times) or float64, ``y`` (R,) float64 target (NaN = missing: forecast,
    no loss, state advances - docs/spec.md section 3), ``X``
    (R, F) float64 features or None; ``rows`` (R,) where each row sits in its
    origin (file row, Kafka offset) - for messages; ``problems`` rows the source
    could not parse (``policy.Problem``); ``position`` the source position after
    this batch; ``columns`` original-typed arrays to pass through to the output
    (e.g. pyarrow arrays of ids and timestamps)."""

    ids: np.ndarray
    time: np.ndarray
    y: np.ndarray
    X: np.ndarray | None = None
    rows: np.ndarray | None = None
    origin: str = "<stream>"
    time_kind: str = "int"
    target_name: str = "value"
    time_name: str = "timestamp"
    feature_names: tuple = ()
    problems: list = field(default_factory=list)
    position: object = None
    line_base: int | None = None
    columns: dict | None = None

    def __post_init__(self):
        if self.rows is None:
            self.rows = np.arange(len(self.y), dtype=np.int64)

    def __len__(self):
        return len(self.y)

    def where(self, r):
        """Human location of batch row ``r``: ``file.csv, row 17 (line 19)``."""
        row = int(self.rows[r])
        line = f" (line {row + self.line_base})" if self.line_base is not None else ""
        return f"{self.origin}, row {row}{line}"


@dataclass
class Forecasts:
    """What ``process`` returns: ``keep`` (K,) indices of the batch rows that were
    forecast (all rows unless some were skipped by the policy) and ``yhat`` (K, h):
    column 0 the one-step forecast of the row's own target, column j the
    forecast j steps later, all made before the row's target was seen; ``lo``,
    ``hi`` (K, h) their prediction intervals when the model makes them, else None."""

    batch: RowBatch
    keep: np.ndarray
    yhat: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def __len__(self):
        return self.keep.size

    @property
    def y(self):
        return self.batch.y[self.keep]

    def to_arrow(self, series_name="series_id", time_name="timestamp"):
        """A ``pyarrow.Table`` ``series_id, timestamp, y, yhat[, yhat_h2, ...]``
        (then ``yhat_lo, yhat_hi[, yhat_lo_h2, yhat_hi_h2, ...]`` with intervals)
        with ids and timestamps in their original types when the batch carried
        them (``batch.columns``)."""
        import pyarrow as pa
        b, keep = self.batch, self.keep
        cols = b.columns or {}
        take = pa.array(keep, type=pa.int64())
        ids = cols["series"].take(take) if "series" in cols else pa.array(b.ids[keep])
        t = cols["time"].take(take) if "time" in cols else pa.array(b.time[keep])
        data = {series_name: ids, time_name: t, "y": pa.array(b.y[keep], type=pa.float64())}
        for name, a in forecast_columns(self.yhat, self.lo, self.hi):
            data[name] = pa.array(np.ascontiguousarray(a), type=pa.float64())
        return pa.table(data)


def forecast_column_names(horizon, intervals):
    """``yhat, yhat_h2, ...`` then, with intervals, ``yhat_lo, yhat_hi, yhat_lo_h2, ...``.

    >>> forecast_column_names(2, True)
    ['yhat', 'yhat_h2', 'yhat_lo', 'yhat_hi', 'yhat_lo_h2', 'yhat_hi_h2']
    """
    names = ["yhat" if j == 0 else f"yhat_h{j + 1}" for j in range(horizon)]
    if intervals:
        for j in range(horizon):
            tail = "" if j == 0 else f"_h{j + 1}"
            names += [f"yhat_lo{tail}", f"yhat_hi{tail}"]
    return names


def forecast_columns(yhat, lo=None, hi=None):
    """``(name, column)`` pairs of the forecast columns (``forecast_column_names``)."""
    h = yhat.shape[1]
    cols = [yhat[:, j] for j in range(h)]
    if lo is not None:
        for j in range(h):
            cols += [lo[:, j], hi[:, j]]
    return list(zip(forecast_column_names(h, lo is not None), cols))
