"""Live outputs: the alert log and dead letters to Kafka, pages to Alertmanager, the
blast radius and incident summary to Redis.

Delivery after a crash:

- **Alert log** (``revleak.alerts``, one partition, in log order): exactly once.
  The resume state is the number of records written (the producer is flushed
  before it is reported); on restore the partition counts what the topic holds
  and skips that many of the records the flow writes again.
- **Dead letters** (``revleak.dlq``): at least once, keyed by source
  topic/partition/offset so a reader can drop repeats.
- **Pages**: the pager re-sends every page it knows after a restore; Alertmanager
  keys alerts by their labels, so a page is never doubled and none is lost.
- **Live state**: the first update after a restore replaces Redis' content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bytewax.outputs import StatefulSinkPartition

from revleak.connectors import kafka
from revleak.connectors.alertmanager import AlertmanagerSender
from revleak.connectors.redis_state import RedisLiveState
from revleak.deadletter import DeadLetter
from revleak.paging import Page
from revleak.slo.alerts import AlertTransition
from revleak.slo.incident import LiveUpdate

logger = logging.getLogger(__name__)

ALERTS_PARTITION = 0
FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class KafkaAlertLog:
    brokers: str
    topic: str

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:
        return _KafkaAlertLog(self.brokers, self.topic, resume)


class _KafkaAlertLog(StatefulSinkPartition[AlertTransition, int]):
    def __init__(self, brokers: str, topic: str, written: int | None) -> None:
        self._producer = kafka.producer(brokers)
        self._topic = topic
        self._written = written or 0
        self._skip = 0
        if written is not None:
            held = sum(1 for _ in kafka.read_partition(brokers, topic, ALERTS_PARTITION))
            # Records past the snapshot reached the topic before the crash: the flow
            # writes them again, in the same order, and they are skipped.
            self._skip = max(0, held - written)

    def write_batch(self, values: list[AlertTransition]) -> None:
        for transition in values:
            self._written += 1
            if self._skip:
                self._skip -= 1
                continue
            key, value = kafka.alert_message(transition)
            self._producer.produce(self._topic, value, key, partition=ALERTS_PARTITION)
        self._producer.poll(0)

    def snapshot(self) -> int:
        if self._producer.flush(FLUSH_TIMEOUT_S):
            raise RuntimeError(f"alert records not acknowledged by Kafka ({self._topic})")
        return self._written

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class KafkaDeadLetters:
    brokers: str
    topic: str
    source_topic: str

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:  # noqa: ARG002
        return _KafkaDeadLetters(self.brokers, self.topic, self.source_topic)


class _KafkaDeadLetters(StatefulSinkPartition[DeadLetter, None]):
    def __init__(self, brokers: str, topic: str, source_topic: str) -> None:
        self._brokers = brokers
        self._producer = kafka.producer(brokers)
        self._topic = topic
        self._source_topic = source_topic

    def write_batch(self, values: list[DeadLetter]) -> None:
        now = int(time.time() * 1000)
        for letter in values:
            original = None
            if letter.original is None and letter.original_base64 is None:
                # Judged late downstream, away from the bytes: copy them from the source.
                original = self._original(letter)
            key, value = kafka.dead_letter_message(
                letter, topic=self._source_topic, original=original, received_at_ms=now
            )
            self._producer.produce(self._topic, value, key)
        self._producer.poll(0)

    def _original(self, letter: DeadLetter) -> bytes | None:
        if letter.offset is None:
            return None
        try:
            return kafka.fetch_value(
                self._brokers, self._source_topic, letter.partition, letter.offset
            )
        except (RuntimeError, TimeoutError) as error:
            logger.warning("original of a dead letter not copied: %s", error)
            return None

    def snapshot(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)


@dataclass(frozen=True, slots=True)
class AlertmanagerPages:
    url: str
    resend_interval_s: float = 60.0
    runbook_base_url: str | None = None
    fixpack_base_url: str | None = None
    min_firing_s: float = 15.0
    close_timeout_s: float = 30.0
    on_delivered: Callable[[Sequence[Page], float], None] | None = field(
        default=None, compare=False
    )

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:  # noqa: ARG002
        options: dict[str, Any] = {}
        if self.runbook_base_url:
            options["runbook_base_url"] = self.runbook_base_url
        if self.fixpack_base_url:
            options["fixpack_base_url"] = self.fixpack_base_url
        sender = AlertmanagerSender(
            self.url,
            resend_interval_s=self.resend_interval_s,
            min_firing_s=self.min_firing_s,
            on_delivered=self.on_delivered,
            **options,
        )
        return _Pages(sender, self.close_timeout_s)


class _Pages(StatefulSinkPartition[tuple[Page, ...], None]):
    def __init__(self, sender: AlertmanagerSender, close_timeout_s: float) -> None:
        self._sender = sender
        self._close_timeout_s = close_timeout_s

    def write_batch(self, values: list[tuple[Page, ...]]) -> None:
        self._sender.submit([page for pages in values for page in pages])

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._sender.close(self._close_timeout_s)


@dataclass(frozen=True, slots=True)
class RedisLive:
    url: str
    prefix: str = "revleak"

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:  # noqa: ARG002
        return _Live(RedisLiveState(self.url, prefix=self.prefix))


class _Live(StatefulSinkPartition[LiveUpdate, None]):
    def __init__(self, state: RedisLiveState) -> None:
        self._state = state

    def write_batch(self, values: list[LiveUpdate]) -> None:
        self._state.apply(values)

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._state.close()
