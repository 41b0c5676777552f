"""CRM write-backs on a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from revleak.connectors import kafka
from revleak.remediation.executors.base import ExecutionError, Executors
from revleak.remediation.executors.crm import KafkaCrmCommands
from revleak.remediation.model import CrmWrite


def reassign(record_id: str, owner: str, command_id: str) -> CrmWrite:
    return CrmWrite(
        command_id=command_id,
        record_id=record_id,
        object="lead",
        op="update",
        fields={"owner": owner},
        reason="rapid-response: reassign",
    )


Published = tuple[int, int, bytes, dict[str, object], bytes]


def consume(brokers: str, topic: str, partitions: int) -> list[Published]:
    """(partition, offset, key, headers, value) of every message, to each partition's end."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    found: list[Published] = []
    ended: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(ended) < partitions and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                ended.add(message.partition() or 0)
                continue
            headers: dict[str, object] = dict(message.headers() or [])
            found.append(
                (
                    message.partition() or 0,
                    message.offset() or 0,
                    message.key() or b"",
                    headers,
                    message.value() or b"",
                )
            )
    finally:
        consumer.close()
    assert len(ended) == partitions, "did not reach the end of every partition"
    return found


@pytest.mark.services
def test_commands_are_published_keyed_by_record_with_their_id(kafka_brokers: str) -> None:
    topic = f"crm.commands.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(kafka_brokers, {topic: 3})
    sink = KafkaCrmCommands(kafka_brokers, topic)
    commands = [
        reassign("L-0075", "ellis", "INC-1:reassign:L-0075"),
        reassign("L-0076", "argyle", "INC-1:reassign:L-0076"),
        reassign("L-0075", "holly", "INC-1:undo:L-0075"),
    ]
    references = [sink.send(command) for command in commands]
    sink.close()

    messages = consume(kafka_brokers, topic, 3)
    assert len(messages) == 3
    by_reference = {f"{topic}/{p}/{offset}": (key, h, v) for p, offset, key, h, v in messages}
    assert set(by_reference) == set(references)
    for command, reference in zip(commands, references, strict=True):
        key, headers, value = by_reference[reference]
        assert key == command.record_id.encode()
        assert headers == {"command_id": command.command_id.encode()}
        assert CrmWrite.model_validate_json(value) == command
        assert json.loads(value)["kind"] == "crm"
    # One record, one partition: its commands keep their order.
    first, last = (reference.split("/") for reference in (references[0], references[2]))
    assert first[1] == last[1]
    assert int(first[2]) < int(last[2])


@pytest.mark.services
def test_executors_return_the_offset_as_reference(kafka_brokers: str) -> None:
    topic = f"crm.commands.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(kafka_brokers, {topic: 1})
    sink = KafkaCrmCommands(kafka_brokers, topic)
    executors = Executors(crm=sink)
    result = executors.execute(reassign("L-0001", "karl", "INC-2:reassign:L-0001"))
    assert result.ref == f"{topic}/0/0"
    assert result.detail == "update lead L-0001"
    assert executors.describe()["crm"] == f"Kafka topic {topic} on {kafka_brokers}"
    sink.close()


def test_an_unreachable_broker_fails_within_the_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = KafkaCrmCommands(f"127.0.0.1:{port}", timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(ExecutionError, match="INC-3:reassign:L-0002"):
        sink.send(reassign("L-0002", "powell", "INC-3:reassign:L-0002"))
    assert time.monotonic() - started < 5
    sink.close()
