"""What ``streamlstm run --source kafka://...`` executes: ``KafkaJob`` checks the
run's options, probes the topics, builds a ``worker.KafkaWorker`` from the run's
``filejob.JobConfig`` and ``KafkaOptions``, and returns a ``KafkaResult``.

How state, snapshots, delivery and scale-out work: ``streamlstm.io.kafka.worker``;
the message formats: ``codec`` (source) and ``sink``.  The command-line side
(options, dispatch, summary) is ``streamlstm.cli.kafka``.
"""
from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass

from streamlstm.io.kafka.address import KafkaAddress, KafkaSetupError, topic_partitions
from streamlstm.io.kafka.codec import MessageFormat
from streamlstm.io.kafka.sink import ForecastSink
from streamlstm.io.kafka.store import PartitionStore
from streamlstm.io.kafka.worker import KafkaWorker, WorkerSummary


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
        sink = self._sink(sink_addr) if sink_addr is not None else None
        from streamlstm.io.filejob import FileJob
        new_runner = FileJob(cfg).new_runner
        every_rows = getattr(cfg, "every_rows", None)
        every_seconds = getattr(cfg, "every_seconds", None)
        self.worker = KafkaWorker(
            src, k.group, new_runner, store=store, sink=sink, fmt=MessageFormat.of(cfg.columns),
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

    def _sink(self, addr) -> ForecastSink:
        k = self.kopts
        txn_id = None
        if k.exactly_once:
            # A restarted worker with the same --instance-id fences (and aborts
            # the open transaction of) its killed predecessor at once.
            txn_id = f"streamlstm-{k.group}-{k.instance_id or uuid.uuid4().hex}"
        return ForecastSink(addr, timeout=max(30.0, k.connect_timeout), transactional_id=txn_id)
