"""Forecasts to a Kafka topic (``--sink kafka://HOST:PORT/TOPIC``).

Sink messages, one per forecast row: key = series id, value = JSON
``{"series_id", "timestamp", "y", "yhat", "yhat_h2", ..., "partition",
"offset"}``: the timestamp exactly as it came in, the observed ``y`` (``null``
when missing), the forecasts made *before* ``y`` was seen (with intervals also
``"yhat_lo", "yhat_hi", "yhat_lo_h2", ...``, as the CLI's columns), and where
the observation sits in the source topic.
"""
from __future__ import annotations

import json
import math

import numpy as np

from streamlstm.io.kafka.address import KafkaAddress, KafkaRuntimeError, client_conf
from streamlstm.stream.batch import forecast_columns


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
        conf = {**client_conf(addr.bootstrap, min(timeout, 10.0)),
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
        cols = forecast_columns(fc.yhat, fc.lo, fc.hi)
        nums = np.column_stack([b.y[keep]] + [c for _, c in cols]).tolist()  # floats, exact
        head = (json.dumps(self.series_name) + ": %s, " + json.dumps(self.time_name)
                + ': %s, "y": %s, ')
        tail = ", ".join(f'"{name}": %s' for name, _ in cols)
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


def _json_float(v):
    """A float as ``json.dumps`` writes it, with NaN/inf as ``null``."""
    return repr(v) if math.isfinite(v) else "null"
