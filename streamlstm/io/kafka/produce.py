"""Observations into a Kafka topic, one message each in the format of
``streamlstm.io.kafka.codec``: ``produce_frame`` sends a long-format frame."""
from __future__ import annotations

import numpy as np

from streamlstm.io.kafka.address import (KafkaAddress, KafkaRuntimeError, client_conf,
                                         topic_partitions)
from streamlstm.io.kafka.codec import MessageFormat


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

    p = Producer({**client_conf(addr.bootstrap, min(timeout, 10.0)), "linger.ms": 20,
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
