"""Kafka source and sink against a real broker (tansu, see kafka_broker.py).

What these tests hold (issue 7):
* forecasts through Kafka equal those of the same rows read from Parquet, one
  Parquet run per partition's rows, bit for bit;
* kill -9 of a worker mid-stream, then a restart: every observation changed the
  state exactly once (final snapshots equal an uninterrupted run's), forecasts
  arrived at least once with identical duplicates - or exactly once with
  ``exactly_once``;
* two workers in one group split the partitions; one is killed, the other
  takes its partitions over from their snapshots - same final state;
* bad messages get the Parquet path's policy, with topic/partition/offset;
* an unreachable broker or a missing topic fails in seconds, naming both.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from kafka_broker import free_port, kafka_broker  # noqa: F401 - the fixture
from streamlstm.core import checkpoint as ckpt
from streamlstm.errors import CheckpointError
from streamlstm.io.filejob import JobConfig
from streamlstm.io.kafka.address import KafkaAddress, KafkaSetupError, topic_partitions
from streamlstm.io.kafka.codec import MessageFormat, decode_messages
from streamlstm.io.kafka.job import KafkaJob, KafkaOptions
from streamlstm.io.kafka.produce import produce_frame
from streamlstm.io.kafka.store import PartitionStore
from streamlstm.stream.policy import DataError, Policy
from streamlstm.io.files import Columns, open_source
from streamlstm.stream.runner import StreamRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ("temp",)
SESSION_MS = 3000      # tansu's JoinGroup waits session.timeout.ms / 2: keep it short


# -- data and configuration -----------------------------------------------------------------
def make_frame(n_series=16, steps=30, seed=0, nan_every=17):
    """Long-format sensor rows in time order: daily-ish cycles, noise, a feature,
    some missing targets."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2024-03-01")
    rows = []
    for k in range(steps):
        for s in range(n_series):
            v = 10 + s + 3 * np.sin(2 * np.pi * k / 12 + s) + rng.normal(0, 0.3)
            if (k * n_series + s) % nan_every == 5:
                v = np.nan
            rows.append((f"sensor-{s:03d}", t0 + pd.Timedelta(hours=k), v,
                         20 + rng.normal(0, 2)))
    return pd.DataFrame(rows, columns=["series_id", "timestamp", "value", "temp"])


MODEL = dict(hidden_size=4, k1=3, k2=5, seed=1)
BACKEND = "reference"      # no JIT compile in each worker process


def job_config(source, checkpoint=None, every_rows=None, horizon=2, on_bad_row="error",
               coverage=None):
    return JobConfig(source=source, columns=Columns(features=FEATURES), checkpoint=checkpoint,
                     every_rows=every_rows, every_seconds=None, horizon=horizon,
                     coverage=coverage, backend=BACKEND, model=dict(MODEL),
                     policy=Policy(on_bad_row=on_bad_row))


def run_job(broker, topic, group, sink=None, checkpoint=None, every_rows=None, horizon=2,
            on_bad_row="error", **kw):
    cfg = job_config(broker.url(topic), checkpoint, every_rows, horizon, on_bad_row)
    kopts = KafkaOptions(group=group, sink=broker.url(sink) if sink else None,
                         session_timeout_ms=SESSION_MS, **{"max_idle": 1.0, **kw})
    return KafkaJob(cfg, kopts, log=lambda s: None).run()


def parquet_reference(frame, parts, n_partitions, tmp_path, horizon=2, batch_rows=37,
                      coverage=None):
    """The same rows read from Parquet, one run per partition's rows: per partition
    the forecast table (with ``coverage``: then the bands' columns) and the runner
    (its final state)."""
    cfg = job_config("unused", horizon=horizon, coverage=coverage)
    out = {}
    for p in range(n_partitions):
        sub = frame[parts == p].reset_index(drop=True)
        path = tmp_path / f"partition-{p}.parquet"
        sub.to_parquet(path, index=False)
        runner = StreamRunner(cfg.make_model(), cfg.policy, cfg.metrics_window)
        yhat = []
        for batch in open_source(str(path), cfg.columns).batches(batch_rows=batch_rows):
            fc = runner.process(batch)
            yhat.append(fc.yhat if coverage is None else np.hstack([fc.yhat, fc.lo, fc.hi]))
        out[p] = (sub, np.concatenate(yhat), runner)
    return out


def sink_frame(broker, topic, n_partitions=2, isolation="read_committed"):
    msgs = broker.read_topic(topic, n_partitions, isolation=isolation)
    rows = [json.loads(m.value()) for m in msgs]
    for m, r in zip(msgs, rows):
        assert m.key().decode() == r["series_id"]        # keyed by series id
    return pd.DataFrame(rows)


def state_of(path):
    """A snapshot's state, minus where it sits (position) and run bookkeeping."""
    meta, arrays = ckpt.read(path)
    meta = json.loads(json.dumps(meta))
    meta.get("extra", {}).pop("position", None)
    meta.get("extra", {}).pop("meta", None)
    return meta, arrays


def assert_same_state(path_a, path_b):
    ma, aa = state_of(path_a)
    mb, ab = state_of(path_b)
    assert ma == mb
    assert sorted(aa) == sorted(ab)
    for k in aa:
        assert aa[k].dtype == ab[k].dtype and aa[k].shape == ab[k].shape, k
        assert aa[k].tobytes() == ab[k].tobytes(), f"array {k!r} differs"


def write_reference_snapshots(ref, directory, topic):
    store = PartitionStore(directory)
    for p, (sub, _, runner) in ref.items():
        store.save(runner, topic, p, len(sub), meta={})
    return store


def bits(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64)).view(np.int64)


def assert_forecasts_equal(sink_rows, ref, horizon=2):
    """Sink rows of each partition (deduplicated by (series_id, timestamp), which
    must carry identical values) equal the Parquet run's forecasts, bit for bit."""
    cols = ["yhat"] + [f"yhat_h{j}" for j in range(2, horizon + 1)]
    if next(iter(ref.values()))[1].shape[1] > horizon:     # a reference with bands
        cols += [f"yhat_lo{t}" for t in [""] + [f"_h{j}" for j in range(2, horizon + 1)]]
        cols += [f"yhat_hi{t}" for t in [""] + [f"_h{j}" for j in range(2, horizon + 1)]]
    for p, (sub, yhat, _) in ref.items():
        got = sink_rows[sink_rows["partition"] == p]
        # A duplicate after a crash is the same forecast again: identical values.
        dup = got.duplicated(["series_id", "timestamp"], keep=False)
        if dup.any():
            g = got[dup].groupby(["series_id", "timestamp"])
            for c in ["y", *cols, "offset"]:
                assert (g[c].nunique(dropna=False) == 1).all(), c
        got = got.drop_duplicates(["series_id", "timestamp"]).sort_values("offset")
        assert got["offset"].tolist() == list(range(len(sub)))
        assert got["series_id"].tolist() == sub["series_id"].tolist()
        assert pd.to_datetime(got["timestamp"]).tolist() == sub["timestamp"].tolist()
        assert np.array_equal(bits(got["y"].astype(float)), bits(sub["value"]))
        for j, c in enumerate(cols):
            assert np.array_equal(bits(got[c].astype(float)), bits(yhat[:, j])), (p, c)


# -- no broker needed ---------------------------------------------------------------------
def test_address_parsing_names_what_is_wrong():
    a = KafkaAddress.parse("kafka://10.0.0.1:9092,10.0.0.2:9093/sensor.raw")
    assert (a.bootstrap, a.topic) == ("10.0.0.1:9092,10.0.0.2:9093", "sensor.raw")
    assert str(a) == "kafka://10.0.0.1:9092,10.0.0.2:9093/sensor.raw"
    for bad, words in [("sensors.parquet", "kafka://HOST:PORT/TOPIC"),
                       ("kafka://127.0.0.1:9092", "names no topic"),
                       ("kafka://127.0.0.1:9092/a/b", "names no topic"),
                       ("kafka://127.0.0.1/t", "HOST:PORT"),
                       ("kafka://127.0.0.1:99999/t", "HOST:PORT"),
                       ("kafka://127.0.0.1:9092/bad topic", "not a legal")]:
        with pytest.raises(KafkaSetupError, match=words):
            KafkaAddress.parse(bad, "--source")


class FakeMessage:
    def __init__(self, offset, key, value):
        self._o, self._k = offset, key
        self._v = value if isinstance(value, (bytes, type(None))) else json.dumps(value).encode()

    def offset(self):
        return self._o

    def key(self):
        return self._k

    def value(self):
        return self._v


def test_encode_decode_round_trip_is_exact():
    fmt = MessageFormat(features=("a", "b"))
    vals = [0.1 + 0.2, 1e-310, -3.0000000000000004, float("nan"), 7.0]
    ts = pd.date_range("2024-01-01", periods=5, freq="37s")
    msgs = []
    for r, v in enumerate(vals):
        k, payload = fmt.encode(f"s{r % 2}", ts[r].isoformat(), v, [v / 3 if v == v else 1.0, r])
        msgs.append(FakeMessage(100 + r, k, payload))
    b = decode_messages(msgs, fmt, "kafka://h:1/t", 3)
    assert b.ids.tolist() == ["s0", "s1", "s0", "s1", "s0"]
    assert np.array_equal(bits(b.y), bits(vals))          # NaN travels as null
    assert b.X[0, 0] == vals[0] / 3 and b.X[3, 1] == 3.0
    assert b.time_kind == "datetime" and b.time.tolist() == ts.as_unit("ns").asi8.tolist()
    assert b.rows.tolist() == [100, 101, 102, 103, 104] and not b.problems
    assert b.where(2) == "kafka://h:1/t, partition 3, offset 102"
    k, payload = fmt.encode("s0", 5, float("nan"), [1.0, 2.0])
    assert json.loads(payload)["value"] is None
    # Integer timestamps and numbers written as strings read as the Parquet path reads them.
    b = decode_messages([FakeMessage(0, b"x", {"series_id": "x", "timestamp": 5, "value": "2.5",
                                               "a": True, "b": 1})], fmt, "o", 0)
    assert b.time_kind == "int" and b.time.tolist() == [5] and b.y.tolist() == [2.5]
    assert b.X.tolist() == [[1.0, 1.0]]


def test_bad_messages_are_located_and_follow_the_policy():
    fmt = MessageFormat(features=("temp",))
    good = {"series_id": "a", "value": 1.0, "temp": 2.0}
    msgs = [FakeMessage(10, b"a", {**good, "timestamp": 1}),
            FakeMessage(11, b"a", b"{not json"),
            FakeMessage(12, b"a", {**good, "timestamp": 2, "value": "abc"}),
            FakeMessage(13, b"b", {**good, "timestamp": 3}),                 # key != series id
            FakeMessage(14, b"a", {"series_id": "a", "timestamp": 4, "temp": 1.0}),  # no value
            FakeMessage(15, b"a", {**good, "timestamp": 5, "temp": None}),   # non-finite feature
            FakeMessage(16, b"a", {**good, "timestamp": 5}),
            FakeMessage(17, b"a", {**good, "timestamp": 5}),                 # duplicate time
            FakeMessage(18, b"a", {**good, "timestamp": "noon"}),
            FakeMessage(19, b"a", [1, 2]),
            FakeMessage(20, None, {"value": 1.0, "timestamp": 9, "temp": 0.0}),  # no id at all
            FakeMessage(21, b"c", {"value": 1.0, "timestamp": 9, "temp": 0.0})]  # id from key
    origin = "kafka://127.0.0.1:9/sensors"
    batch = decode_messages(msgs, fmt, origin, 4)
    cfg = job_config(origin, horizon=1)
    runner = StreamRunner(cfg.make_model(), Policy(on_bad_row="error"))
    with pytest.raises(DataError) as e:
        runner.process(batch)
    msg = str(e.value)
    assert "kafka://127.0.0.1:9/sensors, partition 4, offset 11" in msg
    assert "--on-bad-row skip" in msg
    assert runner.rows_in == 0 and runner.n_series == 0          # rejected: nothing changed

    runner = StreamRunner(cfg.make_model(), Policy(on_bad_row="skip"))
    fc = runner.process(decode_messages(msgs, fmt, origin, 4))
    assert batch.rows[fc.keep].tolist() == [10, 16, 21]
    assert runner.skipped == Counter({"unreadable message": 2, "not a number": 1,
                                      "key differs from series id": 1, "missing field": 1,
                                      "non-finite feature": 1, "duplicate timestamp": 1,
                                      "unreadable timestamp": 1, "missing series id": 1})
    assert runner.ids == ["a", "c"]


# -- fast, clear setup errors -----------------------------------------------------------------
def test_unreachable_broker_fails_fast_naming_the_address():
    port = free_port()                          # nothing listens there
    cfg = job_config(f"kafka://127.0.0.1:{port}/sensors")
    t0 = time.monotonic()
    with pytest.raises(KafkaSetupError) as e:
        KafkaJob(cfg, KafkaOptions(group="g", connect_timeout=2.0), log=lambda s: None).run()
    assert time.monotonic() - t0 < 8
    assert f"127.0.0.1:{port}" in str(e.value) and "'sensors'" in str(e.value)


def test_missing_topics_fail_fast_naming_them(kafka_broker, tmp_path):
    b = kafka_broker
    there = b.create_topic(b.new_name("there"), 1)
    t0 = time.monotonic()
    with pytest.raises(KafkaSetupError) as e:
        topic_partitions(KafkaAddress.parse(b.url("no-such-topic")), timeout=3)
    assert "'no-such-topic' does not exist" in str(e.value) and b.bootstrap in str(e.value)
    assert there in str(e.value)                      # lists what is there
    with pytest.raises(KafkaSetupError, match="'no-such-sink'"):
        run_job(b, there, b.new_name("g"), sink="no-such-sink", checkpoint=str(tmp_path))
    assert time.monotonic() - t0 < 10
    assert not os.listdir(tmp_path)                   # nothing was touched
    with pytest.raises(KafkaSetupError, match="--group"):
        run_job(b, there, None)


def test_losing_the_broker_mid_run_is_a_clear_error_not_a_hang(tmp_path):
    from kafka_broker import TansuBroker
    b = TansuBroker().start()                 # a broker of its own, to kill
    try:
        src, out = b.create_topic("s", 2), b.create_topic("o", 1)
        produce_frame(b.url(src), make_frame(n_series=4, steps=5), MessageFormat(features=FEATURES))
        cfg = job_config(b.url(src), str(tmp_path / "ck"))
        job = KafkaJob(cfg, KafkaOptions(group="g", sink=b.url(out), session_timeout_ms=SESSION_MS,
                                         connect_timeout=1.0), log=lambda s: None)
        got = {}

        def work():
            try:
                job.run()
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                got["error"], got["at"] = exc, time.monotonic()

        th = threading.Thread(target=work)
        th.start()
        deadline = time.monotonic() + 30
        while not getattr(getattr(job, "worker", None), "summary", None) or \
                job.worker.summary.messages < 20:
            assert time.monotonic() < deadline and th.is_alive()
            time.sleep(0.05)
        killed = time.monotonic()
        b.proc.kill()
        th.join(60)
        assert not th.is_alive()
    finally:
        b.stop()
    assert got["at"] - killed < 20
    msg = str(got["error"])
    assert f"lost the Kafka broker at {b.bootstrap}" in msg and "rerun the same command" in msg


# -- through the broker: Kafka = Parquet per partition, bit for bit ------------------------------
def test_forecasts_through_kafka_equal_parquet_per_partition(kafka_broker, tmp_path):
    b = kafka_broker
    src, out = b.create_topic(b.new_name("src"), 3), b.create_topic(b.new_name("out"), 2)
    frame = make_frame(n_series=16, steps=30)
    parts = produce_frame(b.url(src), frame, MessageFormat(features=FEATURES))
    assert set(parts.tolist()) == {0, 1, 2}
    ck = tmp_path / "ck"
    res = run_job(b, src, b.new_name("g"), sink=out, checkpoint=str(ck), every_rows=97,
                  batch_size=64)
    s = res.summary
    assert s.messages == s.forecasts == len(frame) and not s.skipped
    assert s.stopped_because.startswith("no message for --max-idle")
    ref = parquet_reference(frame, parts, 3, tmp_path)
    rows = sink_frame(b, out)
    assert len(rows) == len(frame)                     # a clean run sends no duplicate
    assert_forecasts_equal(rows, ref)
    # The final per-partition snapshots hold the Parquet runs' state and the offsets.
    refdir = write_reference_snapshots(ref, tmp_path / "ref", src)
    store = PartitionStore(ck)
    assert store.partitions(src) == [0, 1, 2]
    for p in range(3):
        assert_same_state(store.path(src, p), refdir.path(src, p))
        _, offset, _ = store.load(src, p)
        assert offset == int((parts == p).sum())


def test_restart_seeks_to_the_snapshot_offset_not_the_group_offset(kafka_broker, tmp_path):
    from confluent_kafka import Consumer, TopicPartition
    b = kafka_broker
    src, out = b.create_topic(b.new_name("src"), 2), b.create_topic(b.new_name("out"), 2)
    frame = make_frame(n_series=8, steps=25, seed=3)
    parts = produce_frame(b.url(src), frame, MessageFormat(features=FEATURES))
    ck, group = str(tmp_path / "ck"), b.new_name("g")
    first = run_job(b, src, group, sink=out, checkpoint=ck, every_rows=40, batch_size=30,
                    max_messages=77)
    assert first.summary.messages == 77
    assert first.summary.stopped_because == "read --max-messages 77"
    store = PartitionStore(ck)
    held = sum(store.load(src, p)[1] for p in store.partitions(src))
    assert held == 77                           # a clean stop snapshots where it stopped
    # Move the group's committed offsets somewhere wrong: the snapshots decide.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(src, p, 1) for p in range(2)], asynchronous=False)
    c.close()
    # (The second run is a static member: --instance-id.)
    second = run_job(b, src, group, sink=out, checkpoint=ck, every_rows=40, batch_size=30,
                     instance_id="worker-1")
    assert second.summary.messages == len(frame) - 77
    ref = parquet_reference(frame, parts, 2, tmp_path)
    rows = sink_frame(b, out)
    assert len(rows) == len(frame)              # stop/resume: not one forecast twice
    assert_forecasts_equal(rows, ref)
    refdir = write_reference_snapshots(ref, tmp_path / "ref", src)
    for p in range(2):
        assert_same_state(store.path(src, p), refdir.path(src, p))
    # Snapshots written with other model options are refused, not mixed in.
    with pytest.raises(CheckpointError, match="horizon: 2 there, 3 now"):
        run_job(b, src, b.new_name("g"), checkpoint=ck, horizon=3)


def test_bad_messages_skipped_and_counted_or_stop_the_run(kafka_broker, tmp_path):
    from confluent_kafka import Producer
    b = kafka_broker
    src, out = b.create_topic(b.new_name("src"), 2), b.create_topic(b.new_name("out"), 2)
    fmt = MessageFormat(features=FEATURES)
    pr = Producer({"bootstrap.servers": b.bootstrap})

    def send(partition, key, value):
        pr.produce(src, value if isinstance(value, bytes) else json.dumps(value).encode(),
                   key, partition=partition)

    for t in range(6):
        for p, sid in ((0, "a"), (1, "b")):
            send(p, sid.encode(), fmt.encode(sid, t, float(t), [1.0])[1])
    send(1, b"b", b"\xff not json")                                   # offset 6 of partition 1
    send(1, b"b", {"series_id": "b", "timestamp": 9, "value": "high", "temp": 1.0})
    send(0, b"a", {"series_id": "a", "timestamp": 2, "value": 1.0, "temp": 1.0})  # out of order
    assert pr.flush(10) == 0
    del pr
    ck = str(tmp_path / "ck")
    # --on-bad-row error: stops at the first bad message, named, and no snapshot is written
    # past the last good batch.
    with pytest.raises(DataError) as e:
        run_job(b, src, b.new_name("g"), checkpoint=ck, every_rows=4, batch_size=4)
    msg = str(e.value)
    # Both partitions go bad at offset 6 (not JSON in 1, out of order in 0).
    assert f"{b.url(src)}, partition " in msg and ", offset 6" in msg
    store = PartitionStore(ck)
    before = snapshot_offsets(store, src)
    assert all(v <= 6 for v in before.values())       # nothing past the bad message
    # Rerun with --on-bad-row skip on the same snapshots (a strict policy may be
    # relaxed): bad messages dropped and counted by reason, the rest forecast.
    res = run_job(b, src, b.new_name("g"), sink=out, checkpoint=ck, on_bad_row="skip")
    assert res.summary.skipped == Counter({"unreadable message": 1, "not a number": 1,
                                           "out-of-order timestamp": 1})
    assert res.summary.messages == 15 - sum(before.values())
    assert res.summary.forecasts == 12 - sum(before.values())
    runners = res.runners
    assert sum(sum(r.skipped.values()) for r in runners.values()) == 3   # kept in the snapshots
    assert sum(r.rows_forecast for r in runners.values()) == 12
    rows = sink_frame(b, out)
    assert len(rows) == 12 - sum(before.values()) and set(rows["offset"]) <= set(range(6))


# -- kill -9 and takeover: separate worker processes ------------------------------------------
WORKER = """
import json, sys
from streamlstm.io.filejob import JobConfig
from streamlstm.io.kafka.job import KafkaJob, KafkaOptions
from streamlstm.io.files import Columns
a = json.loads(sys.argv[1])
cfg = JobConfig(source=a["source"], columns=Columns(features=tuple(a["features"])),
                checkpoint=a["checkpoint"], every_rows=a["every_rows"], every_seconds=None,
                horizon=a["horizon"], backend=a["backend"], model=a["model"])
res = KafkaJob(cfg, KafkaOptions(**a["kafka"])).run()
print(json.dumps({"messages": res.summary.messages, "partitions": sorted(res.runners)}))
"""


_running = []


@pytest.fixture(autouse=True)
def _no_stray_workers():
    yield
    while _running:
        w = _running.pop()
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(10)


class Worker:
    """``KafkaJob`` in its own process (so it can be killed for real); its status
    lines (stderr) are collected for the test to synchronise on."""

    def __init__(self, broker, src, checkpoint, every_rows, **kafka):
        _running.append(self)
        args = {"source": broker.url(src), "features": list(FEATURES), "checkpoint": checkpoint,
                "every_rows": every_rows, "horizon": 2, "model": MODEL, "backend": BACKEND,
                "kafka": {"session_timeout_ms": SESSION_MS, **kafka}}
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(args)], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, needle, timeout=60.0, after=0):
        """Index of the first status line from ``after`` on containing ``needle``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for i in range(after, len(self.lines)):
                if needle in self.lines[i]:
                    return i
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"worker never said {needle!r}; it said:\n" + "\n".join(self.lines))

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout=120.0):
        # stderr is the reader thread's (communicate() would close it under the
        # thread's feet); stdout holds one short JSON line, well within a pipe's buffer
        self.proc.wait(timeout)
        self._reader.join(5)
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        assert self.proc.returncode == 0, "\n".join(self.lines)
        return json.loads(out.strip().splitlines()[-1])


def wait_for_snapshot(worker, store, topic, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and worker.proc.poll() is None:
        if store.partitions(topic):
            return
        time.sleep(0.002)
    time.sleep(0.2)
    raise AssertionError("no snapshot was written; the worker said:\n" + "\n".join(worker.lines))


def snapshot_offsets(store, topic):
    return {p: store.load(topic, p)[1] for p in store.partitions(topic)}


def check_final(b, store, src, out, frame, parts, n_partitions, tmp_path, exactly_once=False):
    """Final snapshots = the uninterrupted (Parquet) runs' state; forecasts =
    theirs, with identical duplicates only (none with exactly-once)."""
    ref = parquet_reference(frame, parts, n_partitions, tmp_path)
    refdir = write_reference_snapshots(ref, tmp_path / "ref", src)
    for p in range(n_partitions):
        assert_same_state(store.path(src, p), refdir.path(src, p))
        assert store.load(src, p)[1] == int((parts == p).sum())
    rows = sink_frame(b, out)
    if exactly_once:
        assert len(rows) == len(frame)
    assert len(rows) >= len(frame)
    assert_forecasts_equal(rows, ref)
    return rows


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_kill9_mid_stream_then_restart_counts_every_observation_once(kafka_broker, tmp_path,
                                                                     exactly_once):
    b = kafka_broker
    src, out = b.create_topic(b.new_name("src"), 4), b.create_topic(b.new_name("out"), 2)
    frame = make_frame(n_series=24, steps=40, seed=5)
    parts = produce_frame(b.url(src), frame, MessageFormat(features=FEATURES))
    ck, group = str(tmp_path / "ck"), b.new_name("g")
    kw = dict(group=group, sink=b.url(out), max_idle=3.0, batch_size=40,
              exactly_once=exactly_once)
    store = PartitionStore(ck)
    w = Worker(b, src, ck, 120, **kw)
    wait_for_snapshot(w, store, src)
    w.kill()                                   # mid-stream: snapshots lag what it processed
    held = snapshot_offsets(store, src)
    assert 0 < sum(held.values()) < len(frame)
    sent_before = len(sink_frame(b, out))
    w2 = Worker(b, src, ck, 120, **kw)
    done = w2.finish()
    assert sorted(done["partitions"]) == [0, 1, 2, 3]
    assert done["messages"] == len(frame) - sum(held.values())   # replayed from the snapshots
    rows = check_final(b, store, src, out, frame, parts, 4, tmp_path, exactly_once)
    if exactly_once:
        assert any("already in a committed transaction" in line for line in w2.lines) or \
            sent_before == sum(held.values())
    else:
        assert sent_before >= sum(held.values())
        assert len(rows) == len(frame) + sent_before - sum(held.values())


def test_two_workers_split_partitions_and_one_takes_over_from_snapshots(kafka_broker, tmp_path):
    b = kafka_broker
    src, out = b.create_topic(b.new_name("src"), 4), b.create_topic(b.new_name("out"), 2)
    frame = make_frame(n_series=24, steps=45, seed=9)
    fmt = MessageFormat(features=FEATURES)
    thirds = np.array_split(np.arange(len(frame)), 3)
    parts = np.empty(len(frame), dtype=np.int64)
    parts[thirds[0]] = produce_frame(b.url(src), frame.iloc[thirds[0]], fmt)
    ck, group = str(tmp_path / "ck"), b.new_name("g")
    kw = dict(group=group, sink=b.url(out), max_idle=7.0, batch_size=50)
    store = PartitionStore(ck)
    a = Worker(b, src, ck, 60, **kw)
    a.wait_for("now holding [0, 1, 2, 3]")
    c = Worker(b, src, ck, 60, **kw)
    c.wait_for("assigned partitions")
    i = a.wait_for("revoked partitions")        # cooperative: A hands over only what C gets
    a_held = sorted(set(range(4)) - set(json.loads(a.lines[i].split("partitions ")[1].split("]")[0]
                                                   + "]")))
    assert 0 < len(a_held) < 4
    parts[thirds[1]] = produce_frame(b.url(src), frame.iloc[thirds[1]], fmt)
    # Let A learn (and snapshot) some of the second third, then kill it mid-stream.
    first = {p: int((parts[thirds[0]] == p).sum()) for p in range(4)}
    expect = {p: int((parts[np.concatenate(thirds[:2])] == p).sum()) for p in range(4)}
    end = time.monotonic() + 60
    while time.monotonic() < end:
        offs = snapshot_offsets(store, src)
        if all(offs.get(p, 0) > first[p] for p in a_held):
            break
        time.sleep(0.01)
    a.kill()
    at_kill = snapshot_offsets(store, src)
    # A's snapshots hold some of the second third of each of its partitions (A may
    # have caught up with all of it), never an offset past what was sent there.
    assert all(first[p] < at_kill[p] <= expect[p] for p in a_held), (at_kill, first, expect)
    mark = len(c.lines)
    parts[thirds[2]] = produce_frame(b.url(src), frame.iloc[thirds[2]], fmt)
    # C takes A's partitions over from A's snapshots once A's session expires.
    c.wait_for("now holding [0, 1, 2, 3]", timeout=60, after=mark)
    resumed = {int(line.split("partition ")[1].split(":")[0]): int(line.split("offset ")[1])
               for line in c.lines[mark:] if "resuming from its snapshot" in line}
    assert resumed == {p: at_kill[p] for p in a_held}
    done = c.finish()
    assert done["partitions"] == [0, 1, 2, 3]
    check_final(b, store, src, out, frame, parts, 4, tmp_path)


# -- the command line ---------------------------------------------------------------------------
def cli_args(b, src, *extra):
    return ["run", "--source", b.url(src), "--features", ",".join(FEATURES), "--horizon", "2",
            "--backend", BACKEND, "--hidden-size", str(MODEL["hidden_size"]),
            "--k1", str(MODEL["k1"]), "--k2", str(MODEL["k2"]), "--seed", str(MODEL["seed"]),
            "--session-timeout", str(SESSION_MS / 1000), *extra]


def test_cli_runs_a_kafka_source_into_a_kafka_sink(kafka_broker, tmp_path):
    from click.testing import CliRunner
    from streamlstm.cli.app import main
    b = kafka_broker
    src, out = b.create_topic(b.new_name("src"), 2), b.create_topic(b.new_name("out"), 2)
    frame = make_frame(n_series=6, steps=12, seed=2)
    parts = produce_frame(b.url(src), frame, MessageFormat(features=FEATURES))
    ck = str(tmp_path / "ck")
    r = CliRunner().invoke(main, cli_args(b, src, "--group", b.new_name("g"), "--sink",
                                          b.url(out), "--checkpoint", ck,
                                          "--checkpoint-every", "25", "--max-idle", "1"))
    assert r.exit_code == 0, r.output
    assert f"read {len(frame)} messages of {b.url(src)}" in r.output
    assert f"sent {len(frame)} forecasts to {b.url(out)}" in r.output
    assert "all " in r.output and "MAE" in r.output and "partition-*.ckpt" in r.output
    assert "90% intervals, after the first 20% of scored forecasts:" in r.output
    assert "+2: coverage " in r.output
    # --coverage 0.9 (the default): the sink carries the bands, as the CLI's columns
    assert_forecasts_equal(sink_frame(b, out), parquet_reference(frame, parts, 2, tmp_path,
                                                                 coverage=0.9))
    # Kafka-only options with a file source are refused; so is --out with a Kafka source.
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    r = CliRunner().invoke(main, ["run", "--source", str(path), "--group", "g"])
    assert r.exit_code == 2 and "--group only apply to a Kafka source" in r.output
    r = CliRunner().invoke(main, cli_args(b, src, "--group", "g", "--out", "f.parquet"))
    assert r.exit_code == 1 and "--sink kafka://" in r.output


def test_cli_errors_are_one_line_and_fast(kafka_broker):
    from click.testing import CliRunner
    from streamlstm.cli.app import main
    port = free_port()
    t0 = time.monotonic()
    r = CliRunner().invoke(main, ["run", "--source", f"kafka://127.0.0.1:{port}/sensors",
                                  "--group", "g", "--no-plot"])
    assert r.exit_code == 1 and time.monotonic() - t0 < 15
    assert r.output.startswith("Error: cannot reach the Kafka broker at 127.0.0.1:")
    r = CliRunner().invoke(main, ["run", "--source", kafka_broker.url("absent"), "--group", "g"])
    assert r.exit_code == 1 and "Error: topic 'absent' does not exist" in r.output
    r = CliRunner().invoke(main, ["run", "--source", "kafka://127.0.0.1/sensors", "--group", "g"])
    assert r.exit_code == 1 and "HOST:PORT" in r.output


def test_sigterm_stops_a_cli_kafka_worker_like_ctrl_c(kafka_broker, tmp_path):
    """SIGTERM (systemd, Docker, Kubernetes) to `streamlstm run --source kafka://`:
    the worker finishes its poll, snapshots every partition, leaves the group,
    prints its summary and exits 143 (128 + SIGTERM)."""
    b = kafka_broker
    src = b.create_topic(b.new_name("src"), 2)
    frame = make_frame(n_series=6, steps=12, seed=5)
    produce_frame(b.url(src), frame, MessageFormat(features=FEATURES))
    ck = tmp_path / "ck"
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlstm",
                             *cli_args(b, src, "--group", b.new_name("g"), "--checkpoint",
                                       str(ck), "--checkpoint-every", "20", "--max-idle", "120",
                                       "--no-plot")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        store = PartitionStore(str(ck))
        end = time.monotonic() + 120
        # Reading has begun (a first snapshot), then the worker sits idle on the topic:
        # stop it; its final snapshots must hold every message.
        while time.monotonic() < end and proc.poll() is None and not store.partitions(src):
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert sum(store.load(src, p)[1] for p in store.partitions(src)) == len(frame)
