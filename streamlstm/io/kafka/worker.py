"""The Kafka worker: one consumer in a consumer group, one exact state per
assigned partition.

State: the partition is the unit
--------------------------------
Each source partition has its own ``StreamRunner`` (model, id -> slot map,
metrics, policy bookkeeping), fed that partition's messages in offset order -
so a partition's forecasts are those of a Parquet run over the same rows, bit
for bit, however polls are batched.  Its snapshot (``--checkpoint DIR``, one
file per partition, ``store.PartitionStore``) holds the runner and the offset
of the next message to read, written together atomically, so DIR may be shared
storage that every worker of a group can read.

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
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from streamlstm.errors import CheckpointError
from streamlstm.io.kafka.address import (KafkaRuntimeError, KafkaSetupError, client_conf,
                                         topic_partitions)
from streamlstm.io.kafka.codec import MessageFormat, decode_messages
from streamlstm.stream.batch import Forecasts


@dataclass
class PartitionState:
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
        self.parts: dict[int, PartitionState] = {}
        self.summary = WorkerSummary(str(source), group)
        self._failed = None           # first error raised inside a rebalance callback
        self._closing = False
        self._joined = False
        self._consumer = None

    # -- consumer configuration ------------------------------------------------------
    def _consumer_conf(self):
        conf = {**client_conf(self.source.bootstrap, self.connect_timeout),
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

    def _open(self, p) -> PartitionState:
        """Partition ``p`` as its snapshot left it, or a fresh model at offset 0."""
        loaded = self.store.load(self.source.topic, p, backend=self.backend) if self.store else None
        if loaded is None:
            self.log(f"partition {p}: no snapshot, starting a fresh model at its first message")
            return PartitionState(p, self.new_runner(), 0)
        runner, offset, meta = loaded
        self._check_options(p, meta.get("run", {}))
        if self.policy is not None:
            runner.policy = self.policy
        self.log(f"partition {p}: resuming from its snapshot at offset {offset}")
        return PartitionState(p, runner, offset, emit_from=offset, snap_offset=offset)

    def _check_options(self, p, have):
        """Refuse partition ``p``'s snapshot when it was written with other model
        options (``have``, its ``run`` metadata): it would silently mix two models."""
        from streamlstm.io.filejob import LEGACY, RELAXABLE
        want = json.loads(json.dumps(self.run_meta))
        # a snapshot from before an option was written with what it implies now
        have = {**{k: v for k, v in LEGACY.items() if k in want}, **have}
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
        t0 = time.monotonic()
        consumer = self._connect()
        ok = False
        old_handlers = self._catch_signals()
        try:
            self._consume(consumer, t0)
            ok = True
        finally:
            self._finish(consumer, ok, t0, old_handlers)
        return self.summary

    def _connect(self):
        """Probe both topics (fast, clear errors), then a consumer, not yet subscribed."""
        from confluent_kafka import Consumer
        topic_partitions(self.source, self.connect_timeout)
        if self.sink is not None:
            topic_partitions(self.sink.addr, self.connect_timeout)
        consumer = self._consumer = Consumer(self._consumer_conf())
        self._touch()
        self._since_ckpt, self._last_ckpt, self._down_since = 0, time.monotonic(), None
        return consumer

    def _consume(self, consumer, t0):
        """Join the group, run the loop until a stop, then snapshot what moved."""
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

    def _finish(self, consumer, ok, t0, old_handlers):
        """Record what is held and leave the group, whether the run ended well or not."""
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
        """Poll, process, snapshot when due - until a stop, whose reason goes in
        the summary."""
        while True:
            if self._failed:
                raise self._failed
            stop = self._stop_reason()
            if stop:
                self.summary.stopped_because = stop
                return
            now, by_part = self._poll(consumer)
            if by_part:
                self._work(consumer, by_part, now)
            else:
                self._check_health(consumer, now, t0)
                if (self.max_idle is not None and self._joined
                        and now - self._idle_since >= self.max_idle):
                    self.summary.stopped_because = f"no message for --max-idle {self.max_idle:g} s"
                    return
            if self._due(now):
                self._checkpoint(consumer)

    def _stop_reason(self):
        """Why the loop stops before its next poll (a signal, --max-messages), or None."""
        if self._stop_signal:
            return f"stopped by {self._stop_signal}"
        if self.max_messages is not None and self.summary.messages >= self.max_messages:
            return f"read --max-messages {self.max_messages}"
        return None

    def _poll(self, consumer):
        """``(time of the poll's return, {partition: messages in offset order})``;
        end-of-partition events are dropped, any other error raised."""
        from confluent_kafka import KafkaError
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
        return now, by_part

    def _work(self, consumer, by_part, now):
        """Process one poll's messages, timing it (busy time) for the summary."""
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
        if self.exactly_once:
            self.sink.begin()
        moved = [p for p, ms in by_part.items() if self._process_partition(p, ms)]
        if self.exactly_once and moved:
            self.sink.commit([TopicPartition(self.source.topic, p, self.parts[p].next_offset)
                              for p in moved], consumer.consumer_group_metadata())

    def _process_partition(self, p, ms) -> bool:
        """Partition ``p``'s messages ``ms`` into its runner, forecasts to the sink;
        False when none of them was new to this worker's state."""
        part = self.parts.get(p)
        if part is None:          # revoked while these were in flight: not ours now
            return False
        if ms[0].offset() < part.next_offset:
            # Already in the state (a fetch from before a seek): never twice.
            ms = [m for m in ms if m.offset() >= part.next_offset]
            if not ms:
                return False
        batch = decode_messages(ms, self.fmt, self.origin, p, part.runner.time_kind)
        skipped_before = Counter(part.runner.skipped)
        fc = part.runner.process(batch)
        self.summary.skipped.update(part.runner.skipped - skipped_before)
        if self.sink is not None:
            if ms[0].offset() < part.emit_from:
                # Exactly-once replay: a committed transaction already holds these.
                sel = batch.rows[fc.keep] >= part.emit_from
                fc = Forecasts(batch, fc.keep[sel], fc.yhat[sel],
                               *(None if a is None else a[sel] for a in (fc.lo, fc.hi)))
            self.sink.send(fc, p)
            self.summary.forecasts += len(fc)
        part.next_offset = ms[-1].offset() + 1
        part.dirty = True
        part.received += len(ms)
        self.summary.messages += len(ms)
        self._since_ckpt += len(ms)
        return True
