"""Source messages: their format, and how one partition's messages become a
``RowBatch``.

Message format
--------------
Source messages (topic ``kafka://HOST:PORT/TOPIC``), one observation each:

* **key**: the series id, UTF-8.  Kafka sends equal keys to one partition, so
  every row of a series reaches the same partition - and the same model.
* **value**: a UTF-8 JSON object ::

      {"series_id": "sensor-17", "timestamp": "2024-05-01T10:00:00Z",
       "value": 21.5, "humidity": 0.41}

  with the field names of ``--series-col``/``--time-col``/``--target-col`` and one
  field per ``--features`` name.  ``series_id`` may be left out (the key is
  used); when both are there they must agree.  ``timestamp`` is an ISO 8601
  string (naive = UTC) or a number (int or float), one kind per topic.
  ``value`` is a number, or ``null`` for a missing target (the row is forecast,
  its series' state advances, nothing is learned or scored).

A message that cannot be used (not JSON, not an object, a missing field, a
non-number, a non-finite feature, a duplicate or out-of-order timestamp, ...)
gets the same policy as a bad Parquet row (``streamlstm.stream.policy``): the default
``--on-bad-row error`` stops the worker with a message naming topic, partition,
offset, field and value; ``skip`` drops it, counts it by reason in the summary
(and in the partition's snapshot, so the count survives restarts) and moves on.
``decode_messages`` only flags such messages (``RowBatch.problems``); the
partition's runner applies the policy, as to a Parquet file's unparseable cells.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from streamlstm.io.files import Columns
from streamlstm.stream.batch import RowBatch
from streamlstm.stream.policy import BAD_TIME, MISSING_ID, MISSING_TIME, NOT_A_NUMBER, Problem

# Reasons a message cannot be read at all (counted like the policy's reasons).
UNREADABLE = "unreadable message"
MISSING_FIELD = "missing field"
KEY_MISMATCH = "key differs from series id"

_HINTS = {
    UNREADABLE: "send a UTF-8 JSON object per message (see streamlstm.io.kafka.codec), "
                "or pass --on-bad-row skip to drop such messages",
    MISSING_FIELD: "add the field to every message (a missing target is null), "
                   "or pass --on-bad-row skip to drop such messages",
    KEY_MISMATCH: "key each message by its series id (the key decides the partition, "
                  "hence the model), or pass --on-bad-row skip to drop such messages",
}

_loads = json.JSONDecoder().decode     # str -> object, without json.loads' per-call checks


class MessageFormat(Columns):
    """Field names of source messages (``--series-col`` etc.) and of sink
    messages: the file sources' ``Columns``, plus how an observation is written."""

    @classmethod
    def of(cls, columns: Columns) -> "MessageFormat":
        """The message format that names its fields as ``columns`` names columns."""
        return cls(columns.series, columns.time, columns.target, tuple(columns.features))

    def encode(self, series_id, timestamp, value, features=None) -> tuple[bytes, bytes]:
        """(key, value) bytes of one observation.  Floats are written with
        ``repr`` precision, so the consumer reads back the very same float64;
        NaN targets become ``null``.

        >>> MessageFormat(features=("h",)).encode("s1", 5, 1.5, [0.25])
        (b's1', b'{"series_id": "s1", "timestamp": 5, "value": 1.5, "h": 0.25}')
        """
        v = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        d = {self.series: series_id, self.time: timestamp, self.target: v}
        for name, x in zip(self.features, features if features is not None else ()):
            d[name] = x
        return str(series_id).encode(), json.dumps(d, allow_nan=True).encode()


@dataclass
class KafkaBatch(RowBatch):
    """A ``RowBatch`` of one partition's messages (``rows`` are their offsets),
    whose row locations read ``kafka://host:port/topic, partition 3, offset 1234``."""

    partition: int = -1

    def where(self, r):
        return f"{self.origin}, partition {self.partition}, offset {int(self.rows[r])}"


def decode_messages(messages, fmt: MessageFormat, origin: str, partition: int, time_kind=None):
    """Turn one partition's messages (in offset order) into a ``KafkaBatch`` whose
    ``rows`` are the offsets and whose ``problems`` list every message that could
    not be parsed (the runner applies the policy to them, as to a Parquet file's
    unparseable cells).  ``time_kind`` is the kind the partition's runner already
    uses (``None``: decided by the first readable timestamp)."""
    rows = _Rows(len(messages), fmt)
    for r, m in enumerate(messages):
        rows.read(r, m)
    # Timestamps: one kind per partition (ISO strings -> ns since the epoch, UTC).
    kind = time_kind
    if kind is None:
        first = next((t for t in rows.raw_time if t is not None and not isinstance(t, bool)),
                     None)
        kind = _time_kind(first)
    t_arr, t_bad = _parse_times(rows.raw_time, kind)
    for r in np.flatnonzero(t_bad):
        rows.flag(BAD_TIME, fmt.time, int(r), rows.raw_time[r])
    problems = rows.problems()
    return KafkaBatch(ids=rows.ids, time=t_arr, y=rows.y, X=rows.X, rows=rows.offsets,
                      origin=origin, time_kind=kind, target_name=fmt.target,
                      time_name=fmt.time, feature_names=tuple(fmt.features), problems=problems,
                      columns=_time_columns(rows.raw_time), partition=partition)


class _Rows:
    """The arrays one poll's messages are decoded into, and the messages that
    could not be: ``bad[(reason, column)] = {row: raw value}``."""

    def __init__(self, R, fmt):
        self.fmt = fmt
        self.offsets = np.empty(R, dtype=np.int64)
        self.ids = np.empty(R, dtype=object)
        self.raw_time = [None] * R
        self.y = np.full(R, np.nan)
        self.X = np.zeros((R, len(fmt.features))) if fmt.features else None
        self.bad = defaultdict(dict)

    def flag(self, reason, column, r, value):
        self.bad[(reason, column)].setdefault(r, value)

    def read(self, r, m):
        """Message ``m`` into row ``r``, or its first problem flagged."""
        fmt, flag = self.fmt, self.flag
        self.offsets[r] = m.offset()
        key = m.key()
        try:
            d = _loads(m.value().decode())
        except (ValueError, AttributeError, UnicodeDecodeError):   # (None: a tombstone)
            return flag(UNREADABLE, None, r, _preview(m.value()))
        if not isinstance(d, dict):
            return flag(UNREADABLE, None, r, _preview(m.value()))
        sid = d.get(fmt.series, None)
        if sid is None and key is not None:
            try:
                sid = key.decode()
            except UnicodeDecodeError:
                return flag(UNREADABLE, "key", r, key)
        elif sid is not None and key is not None and str(sid).encode() != key:
            return flag(KEY_MISMATCH, fmt.series, r, f"key {key!r}, {fmt.series} {sid!r}")
        if sid is None:
            return flag(MISSING_ID, fmt.series, r, None)
        if isinstance(sid, bool) or not isinstance(sid, (str, int)):
            return flag(UNREADABLE, fmt.series, r, sid)       # ids are strings or integers
        self.ids[r] = sid
        if fmt.target not in d:
            return flag(MISSING_FIELD, fmt.target, r, None)
        v = _number(d[fmt.target], allow_bool=False)
        if v is None:
            return flag(NOT_A_NUMBER, fmt.target, r, d[fmt.target])
        self.y[r] = v
        for j, name in enumerate(fmt.features):
            if name not in d:
                return flag(MISSING_FIELD, name, r, None)
            x = _number(d[name], allow_bool=True)
            if x is None:
                return flag(NOT_A_NUMBER, name, r, d[name])
            self.X[r, j] = x              # NaN/inf: the policy names a non-finite feature
        t = d.get(fmt.time)
        if t is None:
            return flag(MISSING_TIME, fmt.time, r, None)
        self.raw_time[r] = t

    def problems(self):
        """One ``policy.Problem`` per (reason, column); a message counts under its
        first problem only, and its row is reset to valid filler for the runner."""
        R = len(self.y)
        problems = []
        rows_bad = np.zeros(R, dtype=bool)
        for (reason, column), hits in self.bad.items():
            mask = np.zeros(R, dtype=bool)
            mask[list(hits)] = True
            mask &= ~rows_bad
            rows_bad |= mask
            if mask.any():
                problems.append(Problem(mask, column, reason, lambda r, h=hits: h.get(int(r)),
                                        _HINTS.get(reason, "")))
        # Rows with a problem must still be valid array entries for the runner.
        for r in np.flatnonzero(rows_bad):
            self.y[r] = np.nan
            if self.X is not None:
                self.X[r] = 0.0
        return problems


def _time_columns(raw_time):
    """``time_raw``: the JSON timestamps as sent (echoed to the sink); ``time``: the
    same as a pyarrow array when they have one type, so policy errors quote the
    timestamp as written rather than as nanoseconds."""
    cols = {"time_raw": raw_time}
    try:
        import pyarrow as pa
        cols["time"] = pa.array(raw_time)
    except Exception:  # noqa: BLE001 - mixed types: errors fall back to the parsed value
        pass
    return cols


def _preview(b, n=60):
    if b is None:
        return None
    more = "..." if len(b) > n else ""
    try:
        return b[:n].decode() + more
    except UnicodeDecodeError:
        return repr(b[:n]) + more


def _number(v, allow_bool):
    """A JSON value as the Parquet path reads a cell: numbers and numeric strings
    ("1.5", "nan") are numbers, ``null`` is NaN (missing), booleans are 0/1 for
    features only; anything else is ``None`` (not a number)."""
    if v is None:
        return np.nan
    if isinstance(v, bool):
        return float(v) if allow_bool else None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _time_kind(first):
    """The kind of a partition's timestamps, from its first readable one: as the
    Parquet path guesses a string column (int, then float, then ISO datetime)."""
    if isinstance(first, str):
        for kind, conv in (("int", int), ("float", float)):
            try:
                conv(first.strip())
                return kind
            except ValueError:
                pass
        return "datetime"
    if isinstance(first, float) and not first.is_integer():
        return "float"
    return "int"


def _parse_times(raw, kind):
    """``raw`` JSON timestamps -> (int64 or float64 array, bad mask); rows already
    rejected (None) are filled with 0 and not flagged."""
    if kind == "datetime":
        return _parse_datetimes(raw)
    R = len(raw)
    bad = np.zeros(R, dtype=bool)
    out = np.zeros(R, dtype=np.float64 if kind == "float" else np.int64)
    for r, t in enumerate(raw):
        if t is None:
            continue
        if isinstance(t, str):
            try:
                t = (int if kind == "int" else float)(t.strip())
            except ValueError:
                bad[r] = True
                continue
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            bad[r] = True
        elif kind == "int":
            if isinstance(t, float) and not t.is_integer():
                bad[r] = True
            else:
                out[r] = int(t)
        else:
            out[r] = float(t)
    return out, bad


def _parse_datetimes(raw):
    """ISO 8601 strings -> (int64 ns since the epoch, UTC; bad mask)."""
    import pandas as pd
    R = len(raw)
    bad = np.zeros(R, dtype=bool)
    out = np.zeros(R, dtype=np.int64)
    idx = [r for r in range(R) if raw[r] is not None]
    strs = [raw[r] for r in idx]
    ok = [isinstance(s, str) for s in strs]
    if idx:
        parsed = pd.to_datetime(pd.Series([s if k else None for s, k in zip(strs, ok)],
                                          dtype=object),
                                utc=True, format="ISO8601", errors="coerce")
        # Nanoseconds since the epoch, as the Parquet path keys datetimes (pandas
        # 3 would otherwise pick the resolution from the strings).
        vals = parsed.dt.as_unit("ns").array.asi8
        nat = parsed.isna().to_numpy()
        for k, r in enumerate(idx):
            if not ok[k] or nat[k]:
                bad[r] = True
            else:
                out[r] = vals[k]
    return out, bad
