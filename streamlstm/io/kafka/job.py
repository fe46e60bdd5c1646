"""Kafka source and sink for ``streamlstm run``, with one exact state per partition.

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

Sink messages (``--sink kafka://HOST:PORT/TOPIC``), one per forecast row:
key = series id, value = JSON ``{"series_id", "timestamp", "y", "yhat",
"yhat_h2", ..., "partition", "offset"}``: the timestamp exactly as it came in,
the observed ``y`` (``null`` when missing), the forecasts made *before* ``y``
was seen, and where the observation sits in the source topic.

State: the partition is the unit
--------------------------------
Each source partition has its own ``StreamRunner`` (model, id -> slot map,
metrics, policy bookkeeping), fed that partition's messages in offset order -
so a partition's forecasts are those of a Parquet run over the same rows, bit
for bit, however polls are batched.  Its snapshot (``--checkpoint DIR``, one
file per partition: ``DIR/<topic>/partition-<p>.ckpt``) holds the runner and
the offset of the next message to read, written together atomically
(``checkpoint.write``: temp file, fsync, rename), so DIR may be shared storage
that every worker of a group can read.

* On assignment a worker loads the partition's snapshot and **seeks to the
  offset in it** (not the group's committed offset); no snapshot: a fresh model
  from the partition's first message.
* Every ``--checkpoint-every`` (messages or seconds), on revocation and at the
  end: flush the sink, snapshot every partition that moved, then commit the same
  offsets to the group (for lag monitoring; never read back).
* A partition *lost* (session timed out) is dropped without a snapshot: its new
  owner replays from the last snapshot.

Delivery: every observation changes the state exactly once (snapshot and
offset are one file).  Forecasts reach the sink at least once: after a crash,
the rows since the last snapshot are forecast again - identical values, same
``(series_id, timestamp)``, so duplicates are easy to drop.  ``exactly_once``
(``--exactly-once``) sends forecasts in Kafka transactions instead, and replays
rows whose forecasts a committed transaction already holds without emitting
them again (see ``KafkaWorker``).

Scale-out is Kafka's own consumer-group protocol: start another worker with the
same ``--group`` and ``--checkpoint`` and the group moves some partitions to it
(cooperative-sticky assignment: only the moved partitions pause, and each is
snapshotted by its old owner before the new one loads it).

Known tansu 0.6 quirks (the broker of the tests) and what this module does:
ListOffsets(latest) is wrong - offsets are kept in the snapshots and high
watermarks never read; JoinGroup waits ``session.timeout.ms / 2``; a group
whose leader leaves mid-rebalance can hang (use a fresh ``--group`` per
experiment); a killed static member (``--instance-id``) is not replaced within
its session timeout.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from streamlstm.errors import CheckpointError, InputError, StreamlstmError

SCHEME = "kafka://"
SNAPSHOT_SUFFIX = ".ckpt"
# Reasons a message cannot be read at all (counted like the policy's reasons).
UNREADABLE = "unreadable message"
MISSING_FIELD = "missing field"
KEY_MISMATCH = "key differs from series id"


class KafkaSetupError(InputError):
    """The broker cannot be reached, a topic does not exist, or an address is bad."""


class KafkaRuntimeError(StreamlstmError, RuntimeError):
    """The broker went away, or refused something, while a worker was running."""


# -- addresses ------------------------------------------------------------------------------
@dataclass(frozen=True)
class KafkaAddress:
    """``kafka://HOST:PORT[,HOST:PORT...]/TOPIC``."""

    bootstrap: str
    topic: str

    def __str__(self):
        return f"{SCHEME}{self.bootstrap}/{self.topic}"

    @classmethod
    def parse(cls, url: str, what: str = "address") -> "KafkaAddress":
        """Parse a ``kafka://`` URL; an ``InputError`` says what a good one looks like.

        >>> KafkaAddress.parse("kafka://127.0.0.1:9092/sensors")
        KafkaAddress(bootstrap='127.0.0.1:9092', topic='sensors')
        """
        if not isinstance(url, str) or not url.startswith(SCHEME):
            raise KafkaSetupError(f"{what} {url!r} is not a Kafka address; write "
                                  f"kafka://HOST:PORT/TOPIC, e.g. kafka://127.0.0.1:9092/sensors")
        rest = url[len(SCHEME):]
        hosts, sep, topic = rest.partition("/")
        if not sep or not topic or "/" in topic:
            raise KafkaSetupError(f"{what} {url!r} names no topic (or more than one path part); "
                                  f"write kafka://HOST:PORT/TOPIC")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
            raise KafkaSetupError(f"{what} {url!r}: topic {topic!r} is not a legal Kafka topic name "
                                  f"(letters, digits, '.', '_', '-')")
        for h in hosts.split(","):
            host, colon, port = h.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise KafkaSetupError(f"{what} {url!r}: broker {h!r} must be HOST:PORT, "
                                      f"e.g. 127.0.0.1:9092")
        return cls(hosts, topic)


def is_kafka_url(s) -> bool:
    return isinstance(s, str) and s.startswith(SCHEME)


def _client_conf(bootstrap: str, timeout: float) -> dict:
    ms = max(1000, int(timeout * 1000))
    return {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": ms,
            "socket.timeout.ms": max(ms, 10000), "reconnect.backoff.max.ms": 1000,
            "logger": _quiet_logger()}


def _quiet_logger():
    """librdkafka logs every disconnect on stderr; our own errors say it better."""
    import logging
    log = logging.getLogger("streamlstm.kafka.librdkafka")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


def topic_partitions(addr: KafkaAddress, timeout: float = 5.0, client=None) -> int:
    """Number of partitions of ``addr.topic``; a fast, clear ``KafkaSetupError``
    when the broker cannot be reached or the topic does not exist (never a hang:
    at most ``timeout`` seconds)."""
    from confluent_kafka import Consumer, KafkaException
    own = client is None
    if own:
        client = Consumer({**_client_conf(addr.bootstrap, timeout), "group.id": "streamlstm-probe"})
    try:
        try:
            md = client.list_topics(addr.topic, timeout=timeout)
        except KafkaException as exc:
            raise KafkaSetupError(
                f"cannot reach the Kafka broker at {addr.bootstrap} (for topic {addr.topic!r}) "
                f"within {timeout:g} s: {exc.args[0].str()}; check the address and that the "
                f"broker is running") from None
        t = md.topics.get(addr.topic)
        if t is None or t.error is not None or not t.partitions:
            try:
                others = sorted(n for n in client.list_topics(timeout=timeout).topics
                                if not n.startswith("__"))
            except KafkaException:
                others = []
            there = f" (topics there: {', '.join(others[:20])})" if others else " (it has no topics)"
            raise KafkaSetupError(
                f"topic {addr.topic!r} does not exist on the Kafka broker at {addr.bootstrap}"
                f"{there}; create it first, e.g. kafka-topics.sh --bootstrap-server "
                f"{addr.bootstrap} --create --topic {addr.topic} --partitions 8, or fix the name")
        return len(t.partitions)
    finally:
        if own:
            client.close()


# -- the message format -------------------------------------------------------------------
@dataclass(frozen=True)
class MessageFormat:
    """Field names of source messages (``--series-col`` etc.) and of sink messages."""

    series: str = "series_id"
    time: str = "timestamp"
    target: str = "value"
    features: tuple = ()

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


def _json_time(v):
    """A timestamp as it travels in JSON (pandas/NumPy datetimes as ISO strings)."""
    if isinstance(v, (np.datetime64,)):
        import pandas as pd
        v = pd.Timestamp(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


class KafkaBatch:
    """Factory of ``stream.RowBatch`` es whose row locations read
    ``kafka://host:port/topic, partition 3, offset 1234``."""

    _cls = None

    @classmethod
    def make(cls, **kw):
        if cls._cls is None:
            from streamlstm.stream.batch import RowBatch

            class _Batch(RowBatch):
                partition: int = -1

                def where(self, r):
                    return f"{self.origin}, partition {self.partition}, offset {int(self.rows[r])}"

            cls._cls = _Batch
        partition = kw.pop("partition")
        b = cls._cls(**kw)
        b.partition = partition
        return b


def decode_messages(messages, fmt: MessageFormat, origin: str, partition: int, time_kind=None):
    """Turn one partition's messages (in offset order) into a ``RowBatch`` whose
    ``rows`` are the offsets and whose ``problems`` list every message that could
    not be parsed (the runner applies the policy to them, as to a Parquet file's
    unparseable cells).  ``time_kind`` is the kind the partition's runner already
    uses (``None``: decided by the first readable timestamp)."""
    from streamlstm.stream.policy import BAD_TIME, MISSING_ID, MISSING_TIME, NOT_A_NUMBER, Problem
    R = len(messages)
    F = len(fmt.features)
    offsets = np.empty(R, dtype=np.int64)
    ids = np.empty(R, dtype=object)
    raw_time = [None] * R
    y = np.full(R, np.nan)
    X = np.zeros((R, F)) if F else None
    bad = defaultdict(dict)   # (reason, column) -> {row: raw value}

    def flag(reason, column, r, value):
        bad[(reason, column)].setdefault(r, value)

    for r, m in enumerate(messages):
        offsets[r] = m.offset()
        key = m.key()
        try:
            d = _loads(m.value().decode())
        except (ValueError, AttributeError, UnicodeDecodeError):   # (None: a tombstone)
            flag(UNREADABLE, None, r, _preview(m.value()))
            continue
        if not isinstance(d, dict):
            flag(UNREADABLE, None, r, _preview(m.value()))
            continue
        sid = d.get(fmt.series, None)
        if sid is None and key is not None:
            try:
                sid = key.decode()
            except UnicodeDecodeError:
                flag(UNREADABLE, "key", r, key)
                continue
        elif sid is not None and key is not None and str(sid).encode() != key:
            flag(KEY_MISMATCH, fmt.series, r, f"key {key!r}, {fmt.series} {sid!r}")
            continue
        if sid is None:
            flag(MISSING_ID, fmt.series, r, None)
            continue
        if isinstance(sid, bool) or not isinstance(sid, (str, int)):
            flag(UNREADABLE, fmt.series, r, sid)       # ids are strings or integers
            continue
        ids[r] = sid
        if fmt.target not in d:
            flag(MISSING_FIELD, fmt.target, r, None)
            continue
        v = _number(d[fmt.target], allow_bool=False)
        if v is None:
            flag(NOT_A_NUMBER, fmt.target, r, d[fmt.target])
            continue
        y[r] = v
        for j, name in enumerate(fmt.features):
            if name not in d:
                flag(MISSING_FIELD, name, r, None)
                break
            x = _number(d[name], allow_bool=True)
            if x is None:
                flag(NOT_A_NUMBER, name, r, d[name])
                break
            X[r, j] = x                   # NaN/inf: the policy names a non-finite feature
        else:
            t = d.get(fmt.time)
            if t is None:
                flag(MISSING_TIME, fmt.time, r, None)
                continue
            raw_time[r] = t
    # Timestamps: one kind per partition (ISO strings -> ns since the epoch, UTC).
    kind = time_kind
    if kind is None:
        first = next((t for t in raw_time if t is not None and not isinstance(t, bool)), None)
        kind = _time_kind(first)
    t_arr, t_bad = _parse_times(raw_time, kind)
    for r in np.flatnonzero(t_bad):
        flag(BAD_TIME, fmt.time, int(r), raw_time[r])

    problems = []
    rows_bad = np.zeros(R, dtype=bool)
    for (reason, column), hits in bad.items():
        mask = np.zeros(R, dtype=bool)
        mask[list(hits)] = True
        mask &= ~rows_bad         # a message counts under its first problem only
        rows_bad |= mask
        if mask.any():
            problems.append(Problem(mask, column, reason, lambda r, h=hits: h.get(int(r)),
                                    _HINTS.get(reason, "")))
    # Rows with a problem must still be valid array entries for the runner.
    for r in np.flatnonzero(rows_bad):
        y[r] = np.nan
        if X is not None:
            X[r] = 0.0
    return KafkaBatch.make(ids=ids, time=t_arr, y=y, X=X, rows=offsets, origin=origin,
                           time_kind=kind, target_name=fmt.target, time_name=fmt.time,
                           feature_names=tuple(fmt.features), problems=problems,
                           columns=_time_columns(raw_time), partition=partition)


_loads = json.JSONDecoder().decode     # str -> object, without json.loads' per-call checks


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


_HINTS = {
    UNREADABLE: "send a UTF-8 JSON object per message (see streamlstm.io.kafka.job), "
                "or pass --on-bad-row skip to drop such messages",
    MISSING_FIELD: "add the field to every message (a missing target is null), "
                   "or pass --on-bad-row skip to drop such messages",
    KEY_MISMATCH: "key each message by its series id (the key decides the partition, "
                  "hence the model), or pass --on-bad-row skip to drop such messages",
}


def _json_float(v):
    """A float as ``json.dumps`` writes it, with NaN/inf as ``null``."""
    return repr(v) if math.isfinite(v) else "null"


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
    R = len(raw)
    bad = np.zeros(R, dtype=bool)
    if kind == "datetime":
        import pandas as pd
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


# -- per-partition snapshots --------------------------------------------------------------
class PartitionStore:
    """One snapshot file per source partition: ``DIR/<topic>/partition-00003.ckpt``.

    The directory may be shared storage (NFS and the like): every write is one
    atomic rename of a complete file holding a state *and* the offset it has
    reached, so any snapshot a worker loads is consistent.  The partition's owner
    writes it (on revocation before the group hands the partition on); a worker
    whose session expired unnoticed (a long stall) may still overwrite a newer
    snapshot with an older one - which costs its next owner a longer replay,
    never a row counted twice or lost.  (With ``--exactly-once`` such a worker is
    fenced at its next transaction and stops before it snapshots.)"""

    def __init__(self, directory):
        self.directory = os.fspath(directory)

    def path(self, topic: str, partition: int) -> str:
        return os.path.join(self.directory, topic, f"partition-{partition:05d}{SNAPSHOT_SUFFIX}")

    def exists(self, topic, partition) -> bool:
        return os.path.exists(self.path(topic, partition))

    def partitions(self, topic) -> list[int]:
        d = os.path.join(self.directory, topic)
        if not os.path.isdir(d):
            return []
        out = []
        for name in os.listdir(d):
            m = re.fullmatch(r"partition-(\d+)" + re.escape(SNAPSHOT_SUFFIX), name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def save(self, runner, topic, partition, offset, meta):
        runner.snapshot(self.path(topic, partition),
                        position={"topic": topic, "partition": int(partition), "offset": int(offset)},
                        meta=meta)

    def load(self, topic, partition, backend=None):
        """``(runner, next_offset, meta)`` or ``None`` when there is no snapshot."""
        from streamlstm.stream.runner import StreamRunner
        path = self.path(topic, partition)
        if not os.path.exists(path):
            return None
        runner, pos, meta = StreamRunner.restore(path, backend=backend)
        if not isinstance(pos, dict) or pos.get("topic") != topic or pos.get("partition") != partition:
            raise CheckpointError(f"{path}: this snapshot belongs to {pos!r}, not to topic "
                                  f"{topic!r} partition {partition}; it was moved or copied by hand")
        return runner, int(pos["offset"]), meta


# -- the sink -----------------------------------------------------------------------------
class ForecastSink:
    """Forecast rows to a Kafka topic (key = series id, JSON value).

    ``transactional_id`` switches to Kafka transactions (``begin`` / ``commit``);
    otherwise an idempotent producer whose ``flush`` raises if any message
    could not be delivered (so a snapshot is never written past a forecast
    that did not reach the broker)."""

    def __init__(self, addr: KafkaAddress, out_names=("series_id", "timestamp"), timeout=30.0,
                 transactional_id=None):
        from confluent_kafka import Producer
        self.addr = addr
        self.series_name, self.time_name = out_names
        self.timeout = timeout
        conf = {**_client_conf(addr.bootstrap, min(timeout, 10.0)),
                "linger.ms": 20, "enable.idempotence": True, "acks": "all",
                "message.timeout.ms": max(1000, int(timeout * 1000)),
                "queue.buffering.max.messages": 1_000_000, "batch.num.messages": 10000,
                "error_cb": self._on_error}
        if transactional_id:
            conf["transactional.id"] = transactional_id
            conf["transaction.timeout.ms"] = max(10000, int(timeout * 1000))
        self.producer = Producer(conf)
        self.transactional = bool(transactional_id)
        self.failures = []
        self.fatal = None
        self.sent = 0
        if self.transactional:
            self._txn(self.producer.init_transactions, timeout)
            self.in_txn = False

    def _on_error(self, err):
        if err.fatal():
            self.fatal = err

    def _on_delivery(self, err, msg):
        if err is not None and len(self.failures) < 5:
            self.failures.append(err)

    def _txn(self, fn, *args):
        from confluent_kafka import KafkaException
        try:
            return fn(*args)
        except KafkaException as exc:
            raise KafkaRuntimeError(f"Kafka transaction on sink {self.addr} failed: "
                                    f"{exc.args[0].str()}") from None

    def begin(self):
        if self.transactional and not self.in_txn:
            self._txn(self.producer.begin_transaction)
            self.in_txn = True

    def commit(self, offsets=None, group_metadata=None):
        """Commit the open transaction, with the source ``offsets`` in it."""
        if not self.transactional or not self.in_txn:
            return
        if offsets:
            self._txn(self.producer.send_offsets_to_transaction, offsets, group_metadata,
                      self.timeout)
        self._txn(self.producer.commit_transaction, self.timeout)
        self.in_txn = False

    def abort(self):
        if self.transactional and self.in_txn:
            try:
                self.producer.abort_transaction(self.timeout)
            except Exception:  # noqa: BLE001 - the worker is failing anyway
                pass
            self.in_txn = False

    def send(self, fc, partition: int):
        """Produce one message per forecast row of ``fc`` (a ``stream.Forecasts``).

        The JSON is formatted from a template rather than ``json.dumps`` of a dict
        per row (half the cost of a light model's worker was JSON): floats with
        ``float.__repr__`` exactly as ``json`` writes them (the shortest repr that
        reads back as the same float64), non-finite values as ``null``, ids and
        timestamps through ``json.dumps`` once per distinct value."""
        if not len(fc):
            return
        b, keep = fc.batch, fc.keep
        raw_t = b.columns["time_raw"]
        ids, offs = b.ids[keep], b.rows[keep]
        h = fc.yhat.shape[1]
        nums = np.column_stack([b.y[keep], fc.yhat]).tolist()   # Python floats, exact
        head = (json.dumps(self.series_name) + ": %s, " + json.dumps(self.time_name)
                + ': %s, "y": %s, ')
        tail = ", ".join(['"yhat": %s'] + [f'"yhat_h{j + 1}": %s' for j in range(1, h)])
        template = "{" + head + tail + f', "partition": {int(partition)}, "offset": %d}}'
        ids_json, keys = {}, {}
        produce, topic, on_delivery = self.producer.produce, self.addr.topic, self._on_delivery
        for k in range(keep.size):
            sid = ids[k]
            sj = ids_json.get(sid)
            if sj is None:
                sj = ids_json[sid] = json.dumps(sid)
                keys[sid] = str(sid).encode()
            t = raw_t[keep[k]]
            tj = repr(t) if type(t) is int else json.dumps(t)
            value = (template % (sj, tj, *[_json_float(v) for v in nums[k]],
                                 int(offs[k]))).encode()
            while True:
                try:
                    produce(topic, value, keys[sid], on_delivery=on_delivery)
                    break
                except BufferError:      # local queue full: let it drain
                    self.producer.poll(0.05)
        self.sent += keep.size
        self.producer.poll(0)

    def flush(self):
        """Wait until every forecast sent so far is on the broker, or raise."""
        left = self.producer.flush(self.timeout)
        if self.fatal is not None:
            raise KafkaRuntimeError(f"the Kafka producer for sink {self.addr} failed: "
                                    f"{self.fatal.str()}")
        if left or self.failures:
            why = self.failures[0].str() if self.failures else f"{left} still queued"
            raise KafkaRuntimeError(
                f"could not deliver forecasts to sink {self.addr} within {self.timeout:g} s "
                f"({why}); is the broker at {self.addr.bootstrap} up?  No snapshot was written "
                f"past them: rerun the same command to resume")


# -- the partition worker -------------------------------------------------------------------
@dataclass
class _Partition:
    """What a worker holds for one assigned partition."""

    partition: int
    runner: object
    next_offset: int              # offset of the next message to read
    emit_from: int = 0            # exactly-once: rows below were emitted by a committed txn
    dirty: bool = False           # moved since its last snapshot
    snap_offset: int = -1         # offset in its latest snapshot (-1: none)
    received: int = 0             # messages this worker processed for it


@dataclass
class WorkerSummary:
    """What a worker did, for the run summary."""

    source: str
    group: str
    messages: int = 0                     # messages processed by this worker
    forecasts: int = 0                    # forecast rows sent to the sink
    snapshots: int = 0
    rebalances: int = 0
    seconds: float = 0.0
    busy_seconds: float = 0.0             # time spent decoding, learning, sending
    busy_cpu_seconds: float = 0.0         # ... in CPU time of the process (all its threads)
    first_at: float | None = None         # time.time() of the first message received
    last_at: float | None = None          # ... and when the last one had been processed
    skipped: Counter = field(default_factory=Counter)   # this worker's bad messages by reason
    partitions: dict = field(default_factory=dict)      # partition -> dict, as last held
    held: list = field(default_factory=list)            # partitions held at the end
    stopped_because: str = ""


class KafkaWorker:
    """Consume ``source`` in consumer group ``group``, one ``StreamRunner`` per
    assigned partition; forecasts to ``sink`` (a ``ForecastSink``) when given.

    Parameters
    ----------
    source
        ``KafkaAddress`` of the input topic.
    group
        Consumer group id; every worker of one job uses the same.
    new_runner
        ``() -> StreamRunner``: a fresh runner for a partition without snapshot.
    store
        ``PartitionStore`` (``--checkpoint DIR``) or None (state lives in memory
        only: a restart replays each partition from its first message).
    sink
        ``ForecastSink`` or None (learn and score only).
    fmt
        ``MessageFormat``: field names of source messages.
    checkpoint_every, checkpoint_seconds
        Snapshot after this many messages (per worker) / seconds.
    max_idle, max_messages
        Stop after ``max_idle`` seconds without a message (counted from the
        last message or rebalance), or after ``max_messages`` messages.
    instance_id
        Static group membership (``group.instance.id``): a restarted worker with
        the same id takes its partitions back without a rebalance of the others.
    exactly_once
        Send forecasts in Kafka transactions that also commit the source offsets;
        after a crash, rows up to the committed offset are replayed into the
        state without being sent again (read the sink with
        ``isolation.level=read_committed``).
    run_meta
        JSON-able description of the model options; a snapshot written with
        other options is refused (it would silently mix two models).
    backend
        Backend to restore snapshots on (None: the one they were written with).
    log
        ``str -> None`` for status lines (assignments, resumes, snapshots).
    progress
        An object with ``start(label, total, done)``, ``update(rows, n_series)``
        and ``finish()`` (the CLI's progress bar), or None.
    policy
        ``policy.Policy`` that restored runners follow from now on (None: the one
        in their snapshot).
    """

    def __init__(self, source, group, new_runner, *, store=None, sink=None, fmt=None,
                 checkpoint_every=None, checkpoint_seconds=None, max_idle=None,
                 max_messages=None, instance_id=None, session_timeout_ms=10000,
                 batch_size=5000, poll_timeout=0.25, connect_timeout=5.0, exactly_once=False,
                 run_meta=None, backend=None, log=None, join_timeout=60.0, progress=None,
                 policy=None):
        if not group:
            raise KafkaSetupError("a Kafka source needs a consumer group: pass --group NAME "
                                  "(every worker of one job uses the same name)")
        if exactly_once and (sink is None or not sink.transactional):
            raise KafkaSetupError("exactly-once delivery needs a Kafka --sink (it commits "
                                  "forecasts and source offsets in one transaction)")
        self.source, self.group, self.new_runner = source, group, new_runner
        self.store, self.sink = store, sink
        self.fmt = fmt or MessageFormat()
        self.checkpoint_every, self.checkpoint_seconds = checkpoint_every, checkpoint_seconds
        self.max_idle, self.max_messages = max_idle, max_messages
        self.instance_id = instance_id
        self.session_timeout_ms = int(session_timeout_ms)
        self.batch_size, self.poll_timeout = int(batch_size), float(poll_timeout)
        self.connect_timeout = float(connect_timeout)
        self.exactly_once = bool(exactly_once)
        self.run_meta = run_meta or {}
        self.backend = backend
        self.log = log or (lambda s: None)
        self.join_timeout = float(join_timeout)
        self.progress = progress
        self.policy = policy
        self.origin = str(source)
        self.parts: dict[int, _Partition] = {}
        self.summary = WorkerSummary(str(source), group)
        self._failed = None           # first error raised inside a rebalance callback
        self._closing = False
        self._joined = False
        self._consumer = None

    # -- consumer configuration ------------------------------------------------------
    def _consumer_conf(self):
        conf = {**_client_conf(self.source.bootstrap, self.connect_timeout),
                "group.id": self.group,
                "enable.auto.commit": False,
                # The start offset always comes from the partition's snapshot; a
                # position that is no longer in the log is an error, never a silent
                # jump (which would feed the state a second, different history).
                "auto.offset.reset": "error",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": self.session_timeout_ms,
                "heartbeat.interval.ms": max(100, self.session_timeout_ms // 5),
                "max.poll.interval.ms": max(self.session_timeout_ms, 300000),
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 100,
                "error_cb": self._on_error}
        if self.instance_id:
            conf["group.instance.id"] = self.instance_id
        return conf

    def _on_error(self, err):
        from confluent_kafka import KafkaError
        if err.fatal():
            self._failed = self._failed or KafkaRuntimeError(
                f"the Kafka consumer of {self.origin} (group {self.group!r}) failed: {err.str()}")
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._down_since = getattr(self, "_down_since", None) or time.monotonic()

    # -- partitions come and go -------------------------------------------------------
    def _on_assign(self, consumer, tps):
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition
        self._joined = True
        self._touch()
        if self._failed:
            return
        try:
            starts = []
            for tp in tps:
                p = tp.partition
                part = self._open(p)
                self.parts[p] = part
                starts.append(TopicPartition(self.source.topic, p,
                                             part.next_offset if part.snap_offset >= 0
                                             else OFFSET_BEGINNING))
            if self.exactly_once and tps:
                self._exactly_once_marks(consumer, tps)
            consumer.incremental_assign(starts)
            if tps:
                self.summary.rebalances += 1
                self.log(f"assigned partitions {sorted(tp.partition for tp in tps)} of "
                         f"{self.source.topic}; now holding {sorted(self.parts)}")
        except BaseException as exc:  # raised from consume() would lose context: keep it
            self._failed = self._failed or exc

    def _open(self, p) -> _Partition:
        loaded = self.store.load(self.source.topic, p, backend=self.backend) if self.store else None
        if loaded is None:
            self.log(f"partition {p}: no snapshot, starting a fresh model at its first message")
            return _Partition(p, self.new_runner(), 0)
        runner, offset, meta = loaded
        from streamlstm.io.filejob import RELAXABLE
        want = json.loads(json.dumps(self.run_meta))
        have = meta.get("run", {})
        # As for files (filejob.RELAXABLE): every row a strict policy ("error") let
        # through, a looser one would have treated the same - so a run stopped by a
        # bad message can be resumed with --on-bad-row skip.
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k)
                      and not (k in RELAXABLE and have.get(k) == "error"))
        if diff:
            path = self.store.path(self.source.topic, p)
            raise CheckpointError(
                f"{path}: this snapshot was written with other options ("
                + ", ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} now" for k in diff[:4])
                + "); rerun with the same options or use another --checkpoint directory")
        if self.policy is not None:
            runner.policy = self.policy
        self.log(f"partition {p}: resuming from its snapshot at offset {offset}")
        return _Partition(p, runner, offset, emit_from=offset, snap_offset=offset)

    def _exactly_once_marks(self, consumer, tps):
        """Rows below the group's committed offset had their forecasts committed in
        a transaction: replay them into the state, but do not send them again."""
        from confluent_kafka import TopicPartition
        committed = consumer.committed([TopicPartition(self.source.topic, tp.partition)
                                        for tp in tps], timeout=self.connect_timeout * 2)
        for c in committed:
            part = self.parts.get(c.partition)
            if part is not None and c.error is None and c.offset >= 0:
                part.emit_from = max(part.next_offset, c.offset)
                if c.offset > part.next_offset:
                    self.log(f"partition {c.partition}: replaying offsets {part.next_offset}.."
                             f"{c.offset - 1} into the state; their forecasts are already "
                             f"in a committed transaction")

    def _on_revoke(self, consumer, tps):
        self._touch()
        if self._failed:
            return
        try:
            gone = [tp.partition for tp in tps if tp.partition in self.parts]
            if gone:
                self._checkpoint(consumer, gone, reason="revoked")
                if not self._closing:
                    self.log(f"revoked partitions {sorted(gone)} of {self.source.topic}; their "
                             f"snapshots are up to date")
            for p in gone:
                self._retire(p)
            if gone and not self._closing:
                self.log(f"now holding {sorted(self.parts)}")
        except BaseException as exc:
            self._failed = self._failed or exc

    def _on_lost(self, consumer, tps):
        # The group gave them away already (our session expired): another worker
        # may be writing their snapshots now, so ours must not.
        self._touch()
        lost = [tp.partition for tp in tps if tp.partition in self.parts]
        for p in lost:
            self.parts.pop(p)
        if lost:
            self.log(f"lost partitions {sorted(lost)} (session expired); their new owner "
                     f"resumes them from their last snapshot")

    def _retire(self, p):
        part = self.parts.pop(p)
        self.summary.partitions[p] = self._describe(part)

    def _describe(self, part):
        r = part.runner
        return {"offset": part.next_offset, "messages": part.received, "rows_in": r.rows_in,
                "rows_forecast": r.rows_forecast, "series": r.n_series,
                "skipped": dict(r.skipped), "runner": r}

    def _touch(self):
        self._idle_since = time.monotonic()

    # -- snapshots --------------------------------------------------------------------
    def _checkpoint(self, consumer, partitions=None, reason="due"):
        """Flush the sink, snapshot the partitions that moved, commit their offsets."""
        from confluent_kafka import KafkaException, TopicPartition
        ps = sorted(self.parts if partitions is None else partitions)
        moved = [p for p in ps if self.parts[p].dirty]
        if not moved:
            return
        if self.sink is not None and not self.exactly_once:
            self.sink.flush()       # never snapshot past a forecast not yet on the broker
        if self.store is not None:
            for p in moved:
                part = self.parts[p]
                self.store.save(part.runner, self.source.topic, p, part.next_offset,
                                meta={"run": self.run_meta, "group": self.group})
                part.snap_offset = part.next_offset
                self.summary.snapshots += 1
        for p in moved:
            self.parts[p].dirty = False
        if self.store is not None and not self.exactly_once:
            offsets = [TopicPartition(self.source.topic, p, self.parts[p].next_offset) for p in moved]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                # Only for lag monitoring: the snapshot is what a new owner reads.
                self.log(f"offset commit failed ({exc.args[0].str()}); the snapshots hold the "
                         f"offsets, nothing is lost")
        self._since_ckpt = 0
        self._last_ckpt = time.monotonic()

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> WorkerSummary:
        """Run until ``max_idle`` / ``max_messages`` (or forever); returns the summary.

        Raises ``KafkaSetupError`` fast when the broker or a topic is missing,
        ``policy.DataError`` on a bad message under ``--on-bad-row error`` (no
        snapshot is written past the last good one), ``KafkaRuntimeError`` when
        the broker goes away."""
        from confluent_kafka import Consumer
        t0 = time.monotonic()
        topic_partitions(self.source, self.connect_timeout)
        if self.sink is not None:
            topic_partitions(self.sink.addr, self.connect_timeout)
        consumer = self._consumer = Consumer(self._consumer_conf())
        self._touch()
        self._since_ckpt, self._last_ckpt, self._down_since = 0, time.monotonic(), None
        ok = False
        old_handlers = self._catch_signals()
        try:
            consumer.subscribe([self.source.topic], on_assign=self._on_assign,
                               on_revoke=self._on_revoke, on_lost=self._on_lost)
            if self.progress is not None:
                self.progress.start(f"{self.source.topic} (group {self.group})", None, 0)
            self._loop(consumer, t0)
            if self.progress is not None:
                self.progress.finish()
            if self._failed:
                raise self._failed
            self._checkpoint(consumer, reason="end")
            ok = True
        finally:
            if not ok:
                # Leave every snapshot as it was: the next run replays from them.
                self._failed = self._failed or KafkaRuntimeError("worker failed")
                if self.sink is not None:
                    self.sink.abort()
            for p in list(self.parts):
                self.summary.partitions[p] = self._describe(self.parts[p])
            self.summary.held = sorted(self.parts)
            self.summary.seconds = time.monotonic() - t0
            self._closing = True
            try:
                consumer.close()    # leaves the group: revokes (nothing new to snapshot)
            finally:
                self._restore_signals(old_handlers)
        return self.summary

    # -- Ctrl-C / SIGTERM: finish the poll, snapshot, leave the group ------------------------
    _stop_signal = None

    def _catch_signals(self):
        """The first SIGINT or SIGTERM stops the worker cleanly after the current
        poll (flush, snapshot, commit, leave the group: its partitions move to the
        other workers at once); a second SIGINT interrupts at once (no snapshot)."""
        import signal
        old = {}

        def handler(signum, frame):
            if self._stop_signal and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name

        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, handler)
        except ValueError:   # not the main thread: leave signals alone
            for sig, h in old.items():
                signal.signal(sig, h)
            return {}
        return old

    @staticmethod
    def _restore_signals(old):
        import signal
        for sig, h in old.items():
            signal.signal(sig, h)

    def _loop(self, consumer, t0):
        from confluent_kafka import KafkaError
        while True:
            if self._failed:
                raise self._failed
            if self._stop_signal:
                self.summary.stopped_because = f"stopped by {self._stop_signal}"
                return
            if self.max_messages is not None and self.summary.messages >= self.max_messages:
                self.summary.stopped_because = f"read --max-messages {self.max_messages}"
                return
            want = self.batch_size
            if self.max_messages is not None:
                want = min(want, self.max_messages - self.summary.messages)
            msgs = consumer.consume(want, self.poll_timeout)
            if self._failed:
                raise self._failed
            now = time.monotonic()
            by_part = defaultdict(list)
            for m in msgs:
                err = m.error()
                if err is None:
                    by_part[m.partition()].append(m)
                elif err.code() == KafkaError._PARTITION_EOF:
                    continue
                else:
                    raise self._message_error(m, err)
            if by_part:
                self._down_since = None
                if self.summary.first_at is None:
                    self.summary.first_at = time.time()
                cpu0 = time.process_time()
                self._process(consumer, by_part)
                self.summary.busy_cpu_seconds += time.process_time() - cpu0
                self.summary.busy_seconds += time.monotonic() - now
                self.summary.last_at = time.time()
                self._touch()
                if self.progress is not None:
                    self.progress.update(self.summary.messages,
                                         sum(p.runner.n_series for p in self.parts.values()))
            else:
                self._check_health(consumer, now, t0)
                if (self.max_idle is not None and self._joined
                        and now - self._idle_since >= self.max_idle):
                    self.summary.stopped_because = f"no message for --max-idle {self.max_idle:g} s"
                    return
            if self._due(now):
                self._checkpoint(consumer)

    def _due(self, now):
        if self.checkpoint_every is not None and self._since_ckpt >= self.checkpoint_every:
            return True
        return (self.checkpoint_seconds is not None
                and now - self._last_ckpt >= self.checkpoint_seconds
                and any(p.dirty for p in self.parts.values()))

    def _message_error(self, m, err):
        from confluent_kafka import KafkaError
        where = f"{self.origin}, partition {m.partition()}"
        if err.code() == KafkaError._AUTO_OFFSET_RESET or err.code() == KafkaError.OFFSET_OUT_OF_RANGE:
            path = self.store.path(self.source.topic, m.partition()) if self.store else "its snapshot"
            return KafkaRuntimeError(
                f"{where}: the offset in {path} is not in the topic any more (the topic was "
                f"recreated, or retention deleted the messages): move that snapshot away to "
                f"restart the partition from scratch ({err.str()})")
        if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            return KafkaSetupError(f"topic {self.source.topic!r} disappeared from the broker at "
                                   f"{self.source.bootstrap} ({err.str()})")
        return KafkaRuntimeError(f"{where}: consumer error {err.str()}")

    def _check_health(self, consumer, now, t0):
        """No message: raise if the broker has been unreachable for too long, or if
        the group never let us join."""
        from confluent_kafka import KafkaException
        limit = max(self.connect_timeout * 3, self.session_timeout_ms / 1000 * 2)
        if self._down_since is not None and now - self._down_since > limit:
            try:
                consumer.list_topics(self.source.topic, timeout=self.connect_timeout)
                self._down_since = None
            except KafkaException as exc:
                raise KafkaRuntimeError(
                    f"lost the Kafka broker at {self.source.bootstrap} (topic "
                    f"{self.source.topic!r}) for {now - self._down_since:.0f} s "
                    f"({exc.args[0].str()}); the snapshots are consistent: rerun the same "
                    f"command when it is back") from None
        if not self._joined and now - t0 > self.join_timeout:
            raise KafkaRuntimeError(
                f"could not join consumer group {self.group!r} on {self.source.bootstrap} "
                f"within {self.join_timeout:g} s")

    def _process(self, consumer, by_part):
        """One poll's messages, micro-batched per partition: each partition's runner
        gets its messages in offset order (the forecaster batches them internally)."""
        from confluent_kafka import TopicPartition
        sink = self.sink
        if self.exactly_once:
            sink.begin()
        moved = []
        for p, ms in by_part.items():
            part = self.parts.get(p)
            if part is None:          # revoked while these were in flight: not ours now
                continue
            if ms[0].offset() < part.next_offset:
                # Already in the state (a fetch from before a seek): never twice.
                ms = [m for m in ms if m.offset() >= part.next_offset]
                if not ms:
                    continue
            batch = decode_messages(ms, self.fmt, self.origin, p, part.runner.time_kind)
            skipped_before = Counter(part.runner.skipped)
            fc = part.runner.process(batch)
            self.summary.skipped.update(part.runner.skipped - skipped_before)
            if sink is not None:
                if ms[0].offset() < part.emit_from:
                    from streamlstm.stream.batch import Forecasts
                    sel = batch.rows[fc.keep] >= part.emit_from
                    fc = Forecasts(batch, fc.keep[sel], fc.yhat[sel])
                sink.send(fc, p)
                self.summary.forecasts += len(fc)
            part.next_offset = ms[-1].offset() + 1
            part.dirty = True
            part.received += len(ms)
            self.summary.messages += len(ms)
            self._since_ckpt += len(ms)
            moved.append(p)
        if self.exactly_once and moved:
            sink.commit([TopicPartition(self.source.topic, p, self.parts[p].next_offset)
                         for p in moved], consumer.consumer_group_metadata())


# -- producing observations ---------------------------------------------------------------
def produce_frame(addr, frame, fmt=None, timeout=30.0, progress=None):
    """Send a long-format ``pandas.DataFrame`` (one observation per row, columns
    named by ``fmt``) to ``addr`` in row order, keyed by series id; returns the
    partition each row went to (``ndarray``), from the broker's delivery reports.

    For tests, benchmarks and feeding a topic from a file; floats travel with
    full precision, so a run over the topic sees exactly the frame's values."""
    from confluent_kafka import Producer
    if isinstance(addr, str):
        addr = KafkaAddress.parse(addr, "sink")
    fmt = fmt or MessageFormat()
    topic_partitions(addr, min(timeout, 5.0))
    n = len(frame)
    parts = np.full(n, -1, dtype=np.int64)
    failures = []

    def report(err, msg, r):
        if err is not None:
            failures.append(err)
        else:
            parts[r] = msg.partition()

    p = Producer({**_client_conf(addr.bootstrap, min(timeout, 10.0)), "linger.ms": 20,
                  "enable.idempotence": True, "acks": "all", "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1_000_000,
                  "message.timeout.ms": max(1000, int(timeout * 1000))})
    ids = frame[fmt.series].tolist()
    times = [_json_time(t) for t in frame[fmt.time].tolist()]
    ys = frame[fmt.target].astype(np.float64).tolist()
    feats = [frame[f].astype(np.float64).tolist() for f in fmt.features]
    for r in range(n):
        key, value = fmt.encode(ids[r], times[r], ys[r], [f[r] for f in feats])
        while True:
            try:
                p.produce(addr.topic, value, key, on_delivery=lambda e, m, r=r: report(e, m, r))
                break
            except BufferError:
                p.poll(0.05)
        if r % 10000 == 0:
            p.poll(0)
            if progress:
                progress(r)
    left = p.flush(timeout)
    if left or failures:
        why = failures[0].str() if failures else f"{left} messages still queued"
        raise KafkaRuntimeError(f"could not deliver {n} rows to {addr} within {timeout:g} s ({why})")
    return parts


# -- what `streamlstm run --source kafka://...` executes -------------------------------------
@dataclass
class KafkaOptions:
    """The Kafka-only options of ``streamlstm run``."""

    group: str | None = None
    sink: str | None = None             # kafka://HOST:PORT/TOPIC
    instance_id: str | None = None      # static membership
    max_idle: float | None = None
    max_messages: int | None = None
    exactly_once: bool = False
    session_timeout_ms: int = 10000
    connect_timeout: float = 5.0
    batch_size: int = 5000


@dataclass
class KafkaResult:
    summary: WorkerSummary
    runners: dict                       # partition -> StreamRunner, held at the end
    seconds: float
    sink: str | None = None


class KafkaJob:
    """A ``streamlstm run`` whose source is a Kafka topic: one ``KafkaWorker`` built
    from the run's ``filejob.JobConfig`` (model options, policy, ``--checkpoint``,
    ``--checkpoint-every``) and ``KafkaOptions``."""

    def __init__(self, cfg, kopts: KafkaOptions, progress=None, log=None):
        self.cfg, self.kopts = cfg, kopts
        self.progress = progress
        self.log = log or (lambda s: print(f"streamlstm: {s}", file=sys.stderr, flush=True))

    def _check(self):
        cfg, k = self.cfg, self.kopts
        src = KafkaAddress.parse(cfg.source, "--source")
        sink = KafkaAddress.parse(k.sink, "--sink") if k.sink else None
        if getattr(cfg, "replay", None):
            raise KafkaSetupError("--replay is not available with a Kafka source: each partition "
                                  "learns from its own messages; send the history into the topic "
                                  "first (it is replayed like live data), or start from a trained "
                                  "model with --init-from")
        if getattr(cfg, "out", None):
            raise KafkaSetupError(f"--out writes a file, which a Kafka worker (one of possibly "
                                  f"many) cannot resume exactly; send forecasts to a topic with "
                                  f"--sink kafka://{src.bootstrap}/TOPIC")
        if not k.group:
            raise KafkaSetupError("a Kafka source needs --group NAME: the consumer group whose "
                                  "workers share the topic's partitions")
        if k.exactly_once and sink is None:
            raise KafkaSetupError("--exactly-once needs --sink kafka://HOST:PORT/TOPIC")
        if sink is not None and sink.topic == src.topic and sink.bootstrap == src.bootstrap:
            raise KafkaSetupError(f"--sink {sink} is the source topic; forecasts need a topic "
                                  f"of their own")
        return src, sink

    def run(self) -> KafkaResult:
        cfg, k = self.cfg, self.kopts
        src, sink_addr = self._check()
        t0 = time.monotonic()
        store = PartitionStore(cfg.checkpoint) if cfg.checkpoint else None
        run_meta = cfg.result_config()
        # Broker and topics are checked before any producer or consumer exists.
        topic_partitions(src, k.connect_timeout)
        if sink_addr is not None:
            topic_partitions(sink_addr, k.connect_timeout)
        if store is None:
            self.log("no --checkpoint: partition state is not saved, a restarted worker "
                     "relearns each partition from its first message")
        sink = None
        if sink_addr is not None:
            txn_id = None
            if k.exactly_once:
                # A restarted worker with the same --instance-id fences (and aborts
                # the open transaction of) its killed predecessor at once.
                txn_id = f"streamlstm-{k.group}-{k.instance_id or uuid.uuid4().hex}"
            sink = ForecastSink(sink_addr, timeout=max(30.0, k.connect_timeout),
                                transactional_id=txn_id)
        from streamlstm.io.filejob import FileJob
        new_runner = FileJob(cfg).new_runner
        every_rows = getattr(cfg, "every_rows", None)
        every_seconds = getattr(cfg, "every_seconds", None)
        self.worker = KafkaWorker(
            src, k.group, new_runner, store=store, sink=sink,
            fmt=MessageFormat(cfg.columns.series, cfg.columns.time, cfg.columns.target,
                              tuple(cfg.columns.features)),
            checkpoint_every=every_rows, checkpoint_seconds=every_seconds,
            max_idle=k.max_idle, max_messages=k.max_messages, instance_id=k.instance_id,
            session_timeout_ms=k.session_timeout_ms, batch_size=k.batch_size,
            connect_timeout=k.connect_timeout, exactly_once=k.exactly_once,
            run_meta=run_meta, backend=cfg.backend, log=self.log, progress=self.progress,
            policy=cfg.policy)
        summary = self.worker.run()
        runners = {p: summary.partitions[p]["runner"] for p in summary.held}
        return KafkaResult(summary, runners, time.monotonic() - t0,
                           str(sink_addr) if sink_addr else None)


# -- `streamlstm run` glue (cli.py: @kafka_options on `run`, then `if dispatch(...)`) ----------
KAFKA_FLAGS = {"group": "--group", "sink": "--sink", "instance_id": "--instance-id",
               "max_idle": "--max-idle", "max_messages": "--max-messages",
               "exactly_once": "--exactly-once", "session_timeout": "--session-timeout"}


def kafka_options(f):
    """Decorator adding the Kafka options to ``streamlstm run``."""
    import click
    opts = [
        click.option("--group", metavar="NAME",
                     help="Kafka source: consumer group.  Every worker of one job uses the same "
                          "name (and the same --checkpoint): Kafka splits the topic's "
                          "partitions among them."),
        click.option("--sink", metavar="kafka://HOST:PORT/TOPIC",
                     help="Kafka source: send every forecast to this topic (key = series id, "
                          "JSON value with series_id, timestamp, y, yhat, partition, offset)."),
        click.option("--instance-id", metavar="ID",
                     help="Kafka source: static group membership (group.instance.id); a worker "
                          "restarted with the same id gets its partitions back without moving "
                          "the others'."),
        click.option("--max-idle", type=click.FloatRange(0, None, min_open=True),
                     metavar="SECONDS",
                     help="Kafka source: stop after SECONDS without a message [default: run "
                          "until Ctrl-C or SIGTERM]."),
        click.option("--max-messages", type=click.IntRange(1, None), metavar="N",
                     help="Kafka source: stop after N messages."),
        click.option("--exactly-once", is_flag=True,
                     help="Kafka source: send forecasts in Kafka transactions with the source "
                          "offsets, so a crash never duplicates one (read the sink with "
                          "isolation.level=read_committed)."),
        click.option("--session-timeout", type=click.FloatRange(1, 3600), metavar="SECONDS",
                     help="Kafka source: a worker silent this long is declared dead and its "
                          "partitions move to the others [default: 10]."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _given(o):
    return [flag for key, flag in KAFKA_FLAGS.items() if o.get(key) not in (None, False)]


def dispatch(cfg, o, progress=None) -> bool:
    """Run ``streamlstm run``'s Kafka mode when ``--source`` is ``kafka://...``
    (returns True when it did); with a file source, refuse Kafka-only options."""
    import click
    if not is_kafka_url(cfg.source):
        given = _given(o)
        if given:
            raise click.BadParameter(f"{', '.join(given)} only apply to a Kafka source "
                                     f"(--source kafka://HOST:PORT/TOPIC)", param_hint=given[0])
        return False
    from streamlstm.errors import BackendUnavailableError
    from streamlstm.stream.policy import DataError
    kopts = KafkaOptions(group=o.get("group"), sink=o.get("sink"), instance_id=o.get("instance_id"),
                         max_idle=o.get("max_idle"), max_messages=o.get("max_messages"),
                         exactly_once=bool(o.get("exactly_once")),
                         session_timeout_ms=int(1000 * (o.get("session_timeout") or 10.0)))
    job = KafkaJob(cfg, kopts, progress=progress,
                   log=lambda s: click.echo(f"streamlstm: {s}", err=True))
    try:
        res = job.run()
    except (DataError, InputError, CheckpointError, BackendUnavailableError,
            KafkaRuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("streamlstm."):
            raise click.ClickException(f"backend {cfg.backend!r} is not available in this build "
                                       f"({exc}); pass --backend reference") from None
        raise
    for line in summary_lines(res, cfg):
        click.echo(line, err=True)
    if res.summary.stopped_because.startswith("stopped by"):
        raise click.exceptions.Exit(130 if "SIGINT" in res.summary.stopped_because else 0)
    return True


def summary_lines(res, cfg):
    """The end of a Kafka run: what was read and sent, bad messages, and River
    metrics per partition plus all partitions together."""
    from streamlstm.stream.metrics import METRIC_NAMES
    s = res.summary
    out = [f"read {s.messages:,} messages of {s.source} (group {s.group}) in {s.seconds:.1f} s, "
           f"{s.busy_seconds:.1f} s of it busy ({s.messages / max(s.busy_seconds, 1e-9):,.0f} "
           f"messages/s); {s.stopped_because}"]
    if s.forecasts:
        out.append(f"sent {s.forecasts:,} forecasts to {res.sink}")
    if s.skipped:
        detail = ", ".join(f"{n:,} {reason}" for reason, n in sorted(s.skipped.items()))
        out.append(f"skipped {sum(s.skipped.values()):,} bad messages (--on-bad-row skip): "
                   f"{detail}")
    if not res.runners:
        out.append("this worker held no partition at the end")
        return out
    w = 24
    out.append(f"{'partition':{w}}" + "".join(f"{n:>12}" for n in METRIC_NAMES))
    tot = {n: 0.0 for n in METRIC_NAMES}
    scored = 0
    worst = []

    def row(label, vals):
        return (f"{label:{w}}" + f"{vals['MAE']:>12.4g}{vals['RMSE']:>12.4g}"
                f"{vals['SMAPE']:>11.3g}%")

    for p, r in res.runners.items():
        m = r.metrics.summary(n_worst=3)
        label = f"{p} ({s.partitions[p]['offset']:,} msgs, {r.n_series:,} series)"
        if m["scored"] == 0:
            out.append(f"{label:{w}}  no scored rows")
            continue
        out.append(row(label, m["overall"]))
        n = m["scored"]
        scored += n
        tot["MAE"] += n * m["overall"]["MAE"]
        tot["RMSE"] += n * m["overall"]["RMSE"] ** 2
        tot["SMAPE"] += n * m["overall"]["SMAPE"]
        worst += [(mae, r.ids[i], k) for i, mae, k in m["worst"]]
    if scored and len(res.runners) > 1:
        # Exact pooling of the partitions' overall metrics (means of per-row terms).
        out.append(row(f"all {scored:,} rows", {"MAE": tot["MAE"] / scored,
                                                 "RMSE": math.sqrt(tot["RMSE"] / scored),
                                                 "SMAPE": tot["SMAPE"] / scored}))
    if worst:
        worst.sort(key=lambda t: -t[0] if math.isfinite(t[0]) else math.inf)
        out.append("worst series by MAE: " + ", ".join(f"{sid} {mae:.4g} ({k:,} rows)"
                                                       for mae, sid, k in worst[:3]))
    if cfg.checkpoint:
        out.append(f"snapshots: {PartitionStore(cfg.checkpoint).path(KafkaAddress.parse(cfg.source).topic, 0).replace('partition-00000', 'partition-*')}")
    return out
