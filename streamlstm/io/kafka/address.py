"""Where a Kafka topic is and how to reach it: ``kafka://HOST:PORT/TOPIC``
addresses, the client settings every producer and consumer of this package
shares, the topic probe that turns an unreachable broker or a missing topic
into a fast, clear error, and the two Kafka errors.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from streamlstm.errors import InputError, StreamlstmError

SCHEME = "kafka://"


class KafkaSetupError(InputError):
    """The broker cannot be reached, a topic does not exist, or an address is bad."""


class KafkaRuntimeError(StreamlstmError, RuntimeError):
    """The broker went away, or refused something, while a worker was running."""


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


def client_conf(bootstrap: str, timeout: float) -> dict:
    """Settings shared by every client: connect within ``timeout`` seconds, retry
    a lost broker every second at most, log through ``quiet_logger``."""
    ms = max(1000, int(timeout * 1000))
    return {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": ms,
            "socket.timeout.ms": max(ms, 10000), "reconnect.backoff.max.ms": 1000,
            "logger": quiet_logger()}


def quiet_logger():
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
        client = Consumer({**client_conf(addr.bootstrap, timeout), "group.id": "streamlstm-probe"})
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
            raise KafkaSetupError(
                f"topic {addr.topic!r} does not exist on the Kafka broker at {addr.bootstrap}"
                f"{_topics_there(client, timeout)}; create it first, e.g. kafka-topics.sh "
                f"--bootstrap-server {addr.bootstrap} --create --topic {addr.topic} "
                f"--partitions 8, or fix the name")
        return len(t.partitions)
    finally:
        if own:
            client.close()


def _topics_there(client, timeout):
    """`` (topics there: a, b)`` - what a missing topic's message lists instead."""
    from confluent_kafka import KafkaException
    try:
        others = sorted(n for n in client.list_topics(timeout=timeout).topics
                        if not n.startswith("__"))
    except KafkaException:
        others = []
    return f" (topics there: {', '.join(others[:20])})" if others else " (it has no topics)"
