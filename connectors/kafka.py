"""Kafka plumbing shared by the live flow, the replay and the tools: topics, reading a
partition to its end, and the records revleak writes (alerts, dead letters).

Reads detect a partition's end with ``enable.partition.eof`` instead of asking
for the high watermark, which some Kafka-protocol brokers do not report.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from revleak.deadletter import DeadLetter
from revleak.slo.alerts import AlertTransition
from revleak.timefmt import format_timestamp

# A dead letter keeps at most this much of the original inline: a 10 MB poison
# message stays readable at its source offset, and the DLQ stays under Kafka's
# default message size.
DLQ_ORIGINAL_BYTES = 256 * 1024
# A broker appends what a dead writer's socket still held within milliseconds on a LAN.
SETTLE_QUIET_S = 0.5
READ_TIMEOUT_S = 30.0


def client_config(brokers: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"bootstrap.servers": brokers, **(extra or {})}


def topic_partitions(brokers: str, topic: str, *, timeout_s: float = 10.0) -> int:
    """How many partitions ``topic`` has; an error when it does not exist."""
    metadata = AdminClient(client_config(brokers)).list_topics(topic, timeout=timeout_s)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        reason = found.error.str() if found is not None and found.error else "no partitions"
        raise RuntimeError(f"Kafka topic {topic!r} on {brokers} is not usable: {reason}")
    return len(found.partitions)


def ensure_topics(
    brokers: str, topics: Mapping[str, int], *, timeout_s: float = 30.0
) -> None:
    """Create the topics (name → partitions) that do not exist yet."""
    admin = AdminClient(client_config(brokers))
    existing = admin.list_topics(timeout=timeout_s).topics
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=1)
        for name, partitions in topics.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as error:  # confluent-kafka raises KafkaException with a code
            code = error.args[0].code() if error.args and hasattr(error.args[0], "code") else None
            if code != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create Kafka topic {name!r}: {error}") from error


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def settled_end(
    brokers: str,
    topic: str,
    partition: int,
    *,
    quiet_s: float = SETTLE_QUIET_S,
    timeout_s: float = READ_TIMEOUT_S,
) -> int:
    """The partition's end offset once it has stopped moving for ``quiet_s``.

    A writer killed a moment ago may still have produce requests in its closed socket's
    buffer, which the broker appends a few milliseconds later: whoever counts what that
    writer left must wait for them, or it counts short.
    """
    consumer = Consumer({**client_config(brokers), "group.id": "revleak-reader"})
    try:
        deadline = time.monotonic() + timeout_s
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout_s)
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            _, now = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout_s)
            if now == end:
                return int(end)
            end = now
        return int(end)
    finally:
        consumer.close()


def read_partition(
    brokers: str,
    topic: str,
    partition: int,
    *,
    start: int = OFFSET_BEGINNING,
    timeout_s: float = READ_TIMEOUT_S,
) -> Iterator[Message]:
    """Every message of one partition from ``start`` to its current end."""
    consumer = Consumer(
        {
            **client_config(brokers),
            "group.id": "revleak-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return
                raise RuntimeError(f"reading {topic}[{partition}]: {error}")
            deadline = time.monotonic() + timeout_s
            _, stamp = message.timestamp()
            yield Message(
                partition=partition,
                offset=message.offset() or 0,
                key=message.key(),
                value=message.value() or b"",
                timestamp_ms=stamp,
            )
        raise TimeoutError(f"no end of {topic}[{partition}] within {timeout_s} s")
    finally:
        consumer.close()


def read_topic(brokers: str, topic: str) -> list[Message]:
    """Every message of every partition, partition by partition."""
    return [
        message
        for partition in range(topic_partitions(brokers, topic))
        for message in read_partition(brokers, topic, partition)
    ]


def fetch_value(brokers: str, topic: str, partition: int, offset: int) -> bytes | None:
    """The value of one message, or None when it is gone (retention) or not there yet."""
    for message in read_partition(brokers, topic, partition, start=offset, timeout_s=10.0):
        return message.value if message.offset == offset else None
    return None


def alert_message(transition: AlertTransition) -> tuple[bytes, bytes]:
    """An alert-log record as a Kafka message, keyed by SLO."""
    return transition.slo.encode(), orjson.dumps(transition.record())


def dead_letter_message(
    letter: DeadLetter, *, topic: str, original: bytes | None, received_at_ms: int
) -> tuple[bytes, bytes]:
    """A dead letter for ``revleak.dlq``: reason, where it came from, and its bytes.

    Keyed by topic/partition/offset: a consumer can drop the repeats a restart may
    write (dead letters are delivered at least once).
    """
    raw = original if original is not None else letter.original_bytes()
    record: dict[str, Any] = {
        "reason": letter.reason,
        "detail": letter.detail,
        "source": letter.source,
        "topic": topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "event_time": letter.event_time,
        "received_at": format_timestamp(received_at_ms),
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    kept = raw[:DLQ_ORIGINAL_BYTES]
    try:
        record["original"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        record["original_base64"] = base64.b64encode(kept).decode("ascii")
    record["truncated"] = len(kept) < len(raw)
    key = f"{topic}/{letter.partition}/{letter.offset}".encode()
    return key, orjson.dumps(record)


def producer(brokers: str, extra: Mapping[str, str] | None = None) -> Producer:
    return Producer(
        {
            **client_config(brokers, extra),
            # Alerts must not be reordered or doubled by the client's own retries.
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
