"""CRM write-backs: published on Kafka ``crm.commands`` for the CRM's connector to apply.

Delivery is at least once: a send that times out may still land later, and a retry of the
same command publishes it again. Consumers drop repeats by the ``command_id`` header.
"""

from __future__ import annotations

import threading
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from revleak.connectors import kafka
from revleak.remediation.executors.base import ExecutionError
from revleak.remediation.model import CrmWrite

COMMANDS_TOPIC = "crm.commands"
COMMAND_ID_HEADER = "command_id"


class CrmCommandSink(Protocol):
    def send(self, command: CrmWrite) -> str:
        """Carry out or hand over ``command``; a reference to where it went."""
        ...


class KafkaCrmCommands:
    """Publishes each write-back, keyed by record (one partition keeps a record's order),
    and waits for the broker's acknowledgement."""

    def __init__(
        self, brokers: str, topic: str = COMMANDS_TOPIC, *, timeout_s: float = 10.0
    ) -> None:
        self._brokers = brokers
        self._topic = topic
        self._timeout_s = timeout_s
        # librdkafka fails the delivery itself at this point, so a send never waits longer.
        self._producer = kafka.producer(
            brokers, {"message.timeout.ms": str(max(1, round(timeout_s * 1000)))}
        )
        # One send in flight: flush() serves every pending delivery report, and a report
        # must reach its own sender before that sender reads it.
        self._lock = threading.Lock()

    def send(self, command: CrmWrite) -> str:
        outcome: list[tuple[KafkaError | None, Message]] = []
        with self._lock:
            try:
                self._producer.produce(
                    self._topic,
                    value=command.model_dump_json().encode(),
                    key=command.record_id.encode(),
                    headers=[(COMMAND_ID_HEADER, command.command_id.encode())],
                    on_delivery=lambda error, message: outcome.append((error, message)),
                )
            except (BufferError, KafkaException) as error:
                raise ExecutionError(
                    f"cannot publish CRM command {command.command_id} on {self._topic}: {error}"
                ) from error
            # A little past the message timeout, so the failed delivery report is served.
            self._producer.flush(self._timeout_s + 1.0)
        if not outcome:
            raise ExecutionError(
                f"no acknowledgement for CRM command {command.command_id} from {self._brokers} "
                f"within {self._timeout_s:g} s"
            )
        failure, message = outcome[0]
        if failure is not None:
            raise ExecutionError(
                f"Kafka refused CRM command {command.command_id} on {self._topic}: {failure.str()}"
            )
        return f"{message.topic()}/{message.partition()}/{message.offset()}"

    def close(self) -> None:
        """Deliver what is still queued (bounded by the timeout)."""
        with self._lock:
            self._producer.flush(self._timeout_s)

    def __str__(self) -> str:
        return f"Kafka topic {self._topic} on {self._brokers}"
