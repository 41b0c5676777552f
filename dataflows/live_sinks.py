"""Live outputs: the alert log and dead letters to Kafka, pages to Alertmanager, the
blast radius and incident summary to Redis.

Delivery after a crash:

- **Alert log** (``revleak.alerts``, one partition, in log order): exactly once.
  The resume state is the number of records written (the producer is flushed
  before it is reported); on restore the partition counts what the topic holds
  and skips that many of the records the flow writes again.
- **Dead letters** (``revleak.dlq``): at least once, keyed by source
  topic/partition/offset so a reader can drop repeats.
- **Pages**: exactly once per state. Every page state is numbered by the pager;
  the sink's snapshot holds the states not yet accepted by Alertmanager and the
  firing pages (which need their re-sends), and a journal beside the recovery
  database records the newest state Alertmanager accepted for each page. On
  restore the sink submits its snapshot again, and drops every state, replayed or
  not, older than one Alertmanager already has.
- **Live state**: the first update after a restore replaces Redis' content.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import StatefulSinkPartition

from revleak.connectors import kafka
from revleak.connectors.alertmanager import AlertmanagerSender, Fingerprint, fingerprint
from revleak.connectors.redis_state import RedisLiveState
from revleak.deadletter import DeadLetter
from revleak.paging import Page
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import SloCatalog
from revleak.slo.incident import LiveUpdate
from revleak.telemetry.explain import RootCause

logger = logging.getLogger(__name__)

ALERTS_PARTITION = 0
FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class KafkaAlertLog:
    """``restarted``: the flow resumes a recovery folder of an earlier run. Without a
    snapshot of this sink yet (killed before its first epoch ended), that run may still
    have written records: the flow writes them again from the first, and they are skipped."""

    brokers: str
    topic: str
    restarted: bool = False

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:
        if resume is None and self.restarted:
            resume = 0
        return _KafkaAlertLog(self.brokers, self.topic, resume)


class _KafkaAlertLog(StatefulSinkPartition[AlertTransition, int]):
    def __init__(self, brokers: str, topic: str, written: int | None) -> None:
        self._producer = kafka.producer(brokers)
        self._topic = topic
        self._written = written or 0
        self._skip = 0
        if written is not None:
            # Records past the snapshot reached the topic before the crash (some of them
            # maybe just after it): the flow writes them again, in the same order, and
            # they are skipped.
            kafka.settled_end(brokers, topic, ALERTS_PARTITION)
            held = sum(1 for _ in kafka.read_partition(brokers, topic, ALERTS_PARTITION))
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
    """Dead letters to ``topic``. ``sources`` is the (topic, topic partition) each input
    partition of the flow reads (:meth:`KafkaTopicsSource.layout`): a dead letter names
    where its message really is."""

    brokers: str
    topic: str
    sources: tuple[tuple[str, int], ...]

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:  # noqa: ARG002
        return _KafkaDeadLetters(self.brokers, self.topic, self.sources)


class _KafkaDeadLetters(StatefulSinkPartition[DeadLetter, None]):
    def __init__(self, brokers: str, topic: str, sources: tuple[tuple[str, int], ...]) -> None:
        self._brokers = brokers
        self._producer = kafka.producer(brokers)
        self._topic = topic
        self._sources = sources

    def write_batch(self, values: list[DeadLetter]) -> None:
        now = int(time.time() * 1000)
        for judged in values:
            source_topic, partition = self._sources[judged.partition]
            letter = judged.model_copy(update={"partition": partition})
            original = None
            if letter.original is None and letter.original_base64 is None:
                # Judged late downstream, away from the bytes: copy them from the source.
                original = self._original(source_topic, letter)
            key, value = kafka.dead_letter_message(
                letter, topic=source_topic, original=original, received_at_ms=now
            )
            self._producer.produce(self._topic, value, key)
        self._producer.poll(0)

    def _original(self, source_topic: str, letter: DeadLetter) -> bytes | None:
        if letter.offset is None:
            return None
        try:
            return kafka.fetch_value(self._brokers, source_topic, letter.partition, letter.offset)
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
    journal: Path | None = None  # where accepted states are recorded (with recovery)
    catalog: SloCatalog | None = field(default=None, compare=False)  # for burn_factor
    on_delivered: Callable[[Sequence[Page], float], None] | None = field(
        default=None, compare=False
    )

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:
        options: dict[str, Any] = {}
        if self.runbook_base_url:
            options["runbook_base_url"] = self.runbook_base_url
        if self.fixpack_base_url:
            options["fixpack_base_url"] = self.fixpack_base_url
        pages = _Pages(self.journal, self.on_delivered, self.close_timeout_s)
        pages.start(
            AlertmanagerSender(
                self.url,
                resend_interval_s=self.resend_interval_s,
                min_firing_s=self.min_firing_s,
                on_delivered=pages.delivered,
                catalog=self.catalog,
                **options,
            ),
            resume or [],
        )
        return pages


class _Pages(StatefulSinkPartition[tuple[Page, ...], list[Page]]):
    def __init__(
        self,
        journal: Path | None,
        on_delivered: Callable[[Sequence[Page], float], None] | None,
        close_timeout_s: float,
    ) -> None:
        self._journal = journal
        self._on_delivered = on_delivered
        self._close_timeout_s = close_timeout_s
        self._lock = threading.Lock()
        self._accepted: dict[Fingerprint, int] = _read_journal(journal)
        self._submitted: dict[Fingerprint, Page] = {}
        self._undelivered: dict[tuple[Fingerprint, int], Page] = {}
        self._sender: AlertmanagerSender | None = None

    def start(self, sender: AlertmanagerSender, resumed: list[Page]) -> None:
        self._sender = sender
        self._submit(sorted(resumed, key=_seq_of))

    def write_batch(self, values: list[tuple[Page, ...]]) -> None:
        self._submit([page for pages in values for page in pages])

    def _submit(self, pages: list[Page]) -> None:
        assert self._sender is not None
        fresh: list[Page] = []
        with self._lock:
            for page in pages:
                key = fingerprint(page)
                newest = max(
                    self._accepted.get(key, 0),
                    self._submitted[key].seq if key in self._submitted else 0,
                )
                # The same firing state again is a re-send (harmless, and needed after a
                # restart); anything else Alertmanager has already moved past.
                if page.seq < newest or (page.seq == newest and not page.firing):
                    continue
                self._submitted[key] = page
                self._undelivered[(key, page.seq)] = page
                fresh.append(page)
        if fresh:
            self._sender.submit(fresh)

    def delivered(self, pages: Sequence[Page], wall_time_s: float) -> None:
        """Called on the sender's thread after Alertmanager accepted ``pages``."""
        with self._lock:
            for page in pages:
                key = fingerprint(page)
                if page.seq > self._accepted.get(key, 0):
                    self._accepted[key] = page.seq
                for done in [k for k in self._undelivered if k[0] == key and k[1] <= page.seq]:
                    del self._undelivered[done]
            if self._journal is not None:
                _write_journal(self._journal, self._accepted)
        if self._on_delivered is not None:
            self._on_delivered(pages, wall_time_s)

    def snapshot(self) -> list[Page]:
        with self._lock:
            kept = {
                (key, page.seq): page for key, page in self._submitted.items() if page.firing
            }
            kept.update(self._undelivered)
        return sorted(kept.values(), key=_seq_of)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close(self._close_timeout_s)


def _seq_of(page: Page) -> int:
    return page.seq


def _read_journal(journal: Path | None) -> dict[Fingerprint, int]:
    if journal is None or not journal.exists():
        return {}
    entries = orjson.loads(journal.read_bytes())
    return {
        tuple((name, value) for name, value in entry["labels"]): int(entry["seq"])
        for entry in entries
    }


def _write_journal(journal: Path, accepted: dict[Fingerprint, int]) -> None:
    # Written whole and renamed into place: a crash leaves the old journal or the new.
    entries = [{"labels": list(key), "seq": seq} for key, seq in sorted(accepted.items())]
    partial = journal.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(entries))
    os.replace(partial, journal)


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


@dataclass(frozen=True, slots=True)
class RootCauseLog:
    """Root causes of telemetry pages: JSON records on a Kafka topic (at least once, keyed
    by SLO) and, with Redis, the latest one per SLO in the live state."""

    brokers: str
    topic: str
    redis_url: str | None = None
    redis_prefix: str = "revleak"

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:  # noqa: ARG002
        live = RedisLiveState(self.redis_url, prefix=self.redis_prefix) if self.redis_url else None
        return _RootCauses(kafka.producer(self.brokers), self.topic, live)


class _RootCauses(StatefulSinkPartition[RootCause, None]):
    def __init__(self, producer: Any, topic: str, live: RedisLiveState | None) -> None:
        self._producer = producer
        self._topic = topic
        self._live = live

    def write_batch(self, values: list[RootCause]) -> None:
        for cause in values:
            record = cause.record()
            self._producer.produce(self._topic, orjson.dumps(record), cause.slo.encode("utf-8"))
            if self._live is not None:
                self._live.record_root_cause(cause.slo, record)
        self._producer.poll(0)

    def snapshot(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)
        if self._live is not None:
            self._live.close()
