"""Message logs recorded from Kafka, produced back at a chosen speed, and a run measured
against a live flow while they are.

A log file holds one JSON object a line, one per message: ``partition``, ``offset`` (where
it was read), ``timestamp`` (ms; the message's Kafka timestamp, or for a scenario the
newest event time in it), ``key`` (base64 or null) and ``value`` (base64). Producing a log
keeps its order, keys and partitions; the gaps between timestamps pace it, divided by the
speed (``None``: as fast as the producer goes). The produced messages get fresh Kafka
timestamps: old ones could fall under the topic's retention at once.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Producer
from confluent_kafka import Message as KafkaMessage
from prometheus_client.parser import text_string_to_metric_families
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
)

from revleak import conventions as names
from revleak.connectors import kafka
from revleak.loadtest.loadtest_report import LagSample, PageKey, Sighting, firing_keys

Speed = float | None  # event-time multiplier; None: as fast as possible
Progress = Callable[[int], None]
TopicPartitionKey = tuple[str, int]

FLUSH_TIMEOUT_S = 60.0
# The producer's queue, when full, is served this long at a time, at most QUEUE_RETRIES times.
QUEUE_WAIT_S = 0.1
QUEUE_RETRIES = 600
# Longest single wait while pacing: delivery reports keep being served meanwhile.
PACING_WAIT_S = 0.05
HTTP_TIMEOUT_S = 5.0


class LogFormatError(ValueError):
    """A log file line that is not a recorded message."""


class RecordedMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    timestamp: int
    key: bytes | None = None
    value: bytes

    @field_validator("key", "value", mode="before")
    @classmethod
    def _from_base64(cls, data: object) -> object:
        # JSON carries bytes as base64 text; Python callers pass bytes as they are.
        return base64.b64decode(data, validate=True) if isinstance(data, str) else data

    @field_serializer("key", "value")
    def _to_base64(self, data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode("ascii")


def read_log(path: Path) -> list[RecordedMessage]:
    messages = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                messages.append(RecordedMessage.model_validate_json(line))
            except ValidationError as error:
                raise LogFormatError(f"{path}:{number}: not a recorded message: {error}") from None
    return messages


def write_log(path: Path, messages: Sequence[RecordedMessage]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for message in messages:
            out.write(message.model_dump_json() + "\n")


def record(
    brokers: str,
    topic: str,
    output: Path,
    *,
    from_offset: int | None = None,
    max_messages: int | None = None,
) -> int:
    """Every partition of ``topic`` from ``from_offset`` (default: its beginning) to its
    current end, at most ``max_messages`` a partition, into ``output``; the count.

    The file is in timestamp order (then partition, offset), the order they were written.
    """
    start = OFFSET_BEGINNING if from_offset is None else from_offset
    messages: list[RecordedMessage] = []
    for partition in range(kafka.topic_partitions(brokers, topic)):
        # Closed at once when --max stops early: it holds a consumer.
        reader = cast(
            "Generator[kafka.Message, None, None]",
            kafka.read_partition(brokers, topic, partition, start=start),
        )
        with contextlib.closing(reader):
            messages.extend(
                RecordedMessage(
                    partition=message.partition,
                    offset=message.offset,
                    timestamp=message.timestamp_ms,
                    key=message.key,
                    value=message.value,
                )
                for message in itertools.islice(reader, max_messages)
            )
    messages.sort(key=lambda message: (message.timestamp, message.partition, message.offset))
    write_log(output, messages)
    return len(messages)


# -- producing --------------------------------------------------------------------------------


def parse_speed(text: str) -> Speed:
    """``max`` or a positive multiplier of the recorded pace (``1``, ``100``, ``0.5``)."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"speed {text!r} is neither max nor a positive number")
    return value


def speed_label(speed: Speed) -> str:
    return "max" if speed is None else f"{speed:g}×"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to produce to ``topic``, and how many input events the flow counts for it."""

    topic: str
    message: RecordedMessage
    events: int = 1


@dataclass(frozen=True, slots=True)
class Produced:
    started_at: float  # wall time
    finished_at: float  # wall time every message had been acknowledged
    sent_at: list[float]  # wall time each message was handed to the producer
    size: int  # bytes of keys and values


def ensure_partitions(brokers: str, outgoing: Sequence[Outgoing]) -> None:
    """Create missing topics with the partitions the messages need; refuse smaller ones."""
    needed: dict[str, int] = {}
    for item in outgoing:
        needed[item.topic] = max(needed.get(item.topic, 1), item.message.partition + 1)
    kafka.ensure_topics(brokers, needed)
    for topic, partitions in needed.items():
        found = kafka.topic_partitions(brokers, topic)
        if found < partitions:
            raise ValueError(f"topic {topic!r} has {found} partitions, the log needs {partitions}")


class _Pacer:
    """Holds each message back until the wall clock has caught up with its timestamp."""

    def __init__(self, speed: Speed) -> None:
        self._speed = speed
        self._began = time.monotonic()
        self._first: int | None = None
        self._newest = 0

    def wait(self, timestamp: int, producer: Producer) -> None:
        if self._speed is None:
            return
        if self._first is None:
            self._first = self._newest = timestamp
        # Never back in time: a message older than one already sent goes at once.
        self._newest = max(self._newest, timestamp)
        due = self._began + (self._newest - self._first) / 1000 / self._speed
        while (left := due - time.monotonic()) > 0:
            producer.poll(min(left, PACING_WAIT_S))


class Replayer:
    """A producer for replays, counting what the broker has acknowledged of each partition:
    the end offset of the topic as far as these messages go."""

    def __init__(self, brokers: str) -> None:
        self.brokers = brokers
        self._producer = kafka.producer(brokers, {"queue.buffering.max.messages": "500000"})
        self._lock = threading.Lock()
        self._acknowledged: dict[TopicPartitionKey, int] = {}
        self._failures: list[str] = []

    def acknowledged(self) -> dict[TopicPartitionKey, int]:
        """Messages acknowledged so far, by (topic, partition); any thread may ask."""
        with self._lock:
            return dict(self._acknowledged)

    def _delivered(self, error: KafkaError | None, message: KafkaMessage) -> None:
        if error is not None:
            self._failures.append(str(error))
            return
        where = (str(message.topic()), int(message.partition() or 0))
        with self._lock:
            self._acknowledged[where] = self._acknowledged.get(where, 0) + 1

    def produce(
        self, outgoing: Sequence[Outgoing], *, speed: Speed, progress: Progress | None = None
    ) -> Produced:
        """Produce ``outgoing`` in order at ``speed``; returns once all were acknowledged."""
        ensure_partitions(self.brokers, outgoing)
        producer = self._producer
        pacer = _Pacer(speed)
        started = time.time()
        sent_at: list[float] = []
        size = 0
        for item in outgoing:
            message = item.message
            pacer.wait(message.timestamp, producer)
            _send(producer, item, self._delivered)
            sent_at.append(time.time())
            size += len(message.value) + len(message.key or b"")
            if progress is not None:
                progress(1)
        left = producer.flush(FLUSH_TIMEOUT_S)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} messages unacknowledged"
            raise RuntimeError(f"producing to {self.brokers} failed: {reason}")
        return Produced(started, time.time(), sent_at, size)


def _send(
    producer: Producer,
    item: Outgoing,
    delivered: Callable[[KafkaError | None, KafkaMessage], None],
) -> None:
    message = item.message
    for _ in range(QUEUE_RETRIES):
        try:
            producer.produce(
                item.topic,
                value=message.value,
                key=message.key,
                partition=message.partition,
                on_delivery=delivered,
            )
        except BufferError:  # the client's queue is full: let it drain
            producer.poll(QUEUE_WAIT_S)
        else:
            producer.poll(0)
            return
    raise RuntimeError(f"the producer's queue stayed full; {item.topic} not written")


# -- measuring a run against a live flow ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowUnderTest:
    """Where the flow reads, pages and reports: Kafka, Alertmanager, its ``/metrics``."""

    brokers: str
    alertmanager_url: str
    metrics_url: str
    alerts_topic: str


@dataclass(frozen=True, slots=True)
class Timeouts:
    startup_s: float = 60.0  # for the flow to answer and read the first message
    drain_s: float = 120.0  # after the last message, for the flow to finish what is due
    # Pages still missing once the flow has caught up are given up after this long without a
    # new one: longer than the 15 s a flow holds a resolve, which delays the page's next fire.
    quiet_s: float = 20.0
    sample_interval_s: float = 0.25


@dataclass(frozen=True, slots=True)
class Measured:
    ready_at: float  # wall time the flow was seen to have counted the first message
    produced: Produced  # every message after the first
    samples: list[LagSample]
    sightings: list[Sighting]
    alert_log: list[dict[str, Any]]


class _AlertmanagerAlert(BaseModel):
    labels: dict[str, str]
    startsAt: datetime  # noqa: N815 (Alertmanager's field names)
    updatedAt: datetime  # noqa: N815


_ALERTS = TypeAdapter(list[_AlertmanagerAlert])


def alertmanager_pages(client: httpx.Client, url: str) -> list[Sighting]:
    """The burn-rate alerts Alertmanager holds (resolved ones it no longer lists)."""
    response = client.get(f"{url.rstrip('/')}/api/v2/alerts", timeout=HTTP_TIMEOUT_S)
    response.raise_for_status()
    sightings = []
    for alert in _ALERTS.validate_json(response.content):
        labels = alert.labels
        if labels.get("alertname") != "SLOBurnRate":
            continue
        key = PageKey(
            labels.get("slo", ""),
            labels.get("severity", ""),
            labels.get("long_window", ""),
            round(alert.startsAt.timestamp() * 1000),
        )
        sightings.append(Sighting(key, alert.updatedAt.timestamp()))
    return sightings


def processed_events(client: httpx.Client, metrics_url: str) -> int:
    """Input events the flow has counted: ``revleak_events_total``, every source and outcome."""
    response = client.get(metrics_url, timeout=HTTP_TIMEOUT_S)
    response.raise_for_status()
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name == names.EVENTS:
            total += sum(s.value for s in family.samples if s.name == f"{names.EVENTS}_total")
    return int(total)


def input_reach(outgoing: Sequence[Outgoing]) -> int:
    """The newest timestamp every input partition has reached: the flow's watermark moves
    with the slowest partition."""
    newest: dict[TopicPartitionKey, int] = {}
    for item in outgoing:
        where = (item.topic, item.message.partition)
        newest[where] = max(newest.get(where, item.message.timestamp), item.message.timestamp)
    return min(newest.values())


class _InputEvents:
    """Input events in the topics, from how many messages of each partition the broker
    has acknowledged: running totals of the events the flow counts for them."""

    def __init__(self, outgoing: Sequence[Outgoing]) -> None:
        self._totals: dict[TopicPartitionKey, list[int]] = {}
        for item in outgoing:
            totals = self._totals.setdefault((item.topic, item.message.partition), [0])
            totals.append(totals[-1] + item.events)

    def written(self, acknowledged: Mapping[TopicPartitionKey, int]) -> int:
        return sum(
            totals[min(acknowledged.get(where, 0), len(totals) - 1)]
            for where, totals in self._totals.items()
        )


@dataclass(slots=True)
class _Monitor:
    """Samples lag and looks at Alertmanager every ``interval_s``, in a thread of its own."""

    flow: FlowUnderTest
    replayer: Replayer
    inputs: _InputEvents
    base_processed: int
    seen_before: set[PageKey]
    interval_s: float
    samples: list[LagSample] = field(default_factory=list)
    first_seen: dict[PageKey, float] = field(default_factory=dict)
    last_new_page: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _failure: list[BaseException] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="loadtest-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._failure:
            raise self._failure[0]

    def caught_up(self, events: int) -> bool:
        return bool(self.samples) and self.samples[-1].processed >= events

    def _run(self) -> None:
        try:
            with httpx.Client() as client:
                while True:
                    self._look(client)
                    if self._stop.wait(self.interval_s):
                        self._look(client)  # what the last moments brought
                        return
        except BaseException as error:  # re-raised by stop(), in the caller's thread
            self._failure.append(error)

    def _look(self, client: httpx.Client) -> None:
        # A busy flow or Alertmanager may answer late: a missed look is a missing sample.
        with contextlib.suppress(httpx.HTTPError):
            for sighting in alertmanager_pages(client, self.flow.alertmanager_url):
                if sighting.key not in self.seen_before and sighting.key not in self.first_seen:
                    self.first_seen[sighting.key] = sighting.accepted_at
                    self.last_new_page = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            # Processed first: the input counted afterwards is never short of it.
            processed = processed_events(client, self.flow.metrics_url) - self.base_processed
            written = self.inputs.written(self.replayer.acknowledged())
            self.samples.append(LagSample(time.time(), written, processed))


def _log_ends(brokers: str, topic: str) -> dict[int, int]:
    """The next offset of each partition of the alert-log topic (read, not asked for: not
    every Kafka-protocol broker reports a partition's end)."""
    kafka.ensure_topics(brokers, {topic: 1})
    ends = {}
    for partition in range(kafka.topic_partitions(brokers, topic)):
        ends[partition] = OFFSET_BEGINNING
        for message in kafka.read_partition(brokers, topic, partition):
            ends[partition] = message.offset + 1
    return ends


def read_alert_log(brokers: str, topic: str, starts: Mapping[int, int]) -> list[dict[str, Any]]:
    """The alert-log records after ``starts`` (partition → offset)."""
    return [
        orjson.loads(message.value)
        for partition, start in starts.items()
        for message in kafka.read_partition(brokers, topic, partition, start=start)
    ]


def write_alert_log(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))


def _poll_until(condition: Callable[[], bool], timeout_s: float, interval_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


def _processed_once_answering(client: httpx.Client, metrics_url: str, timeout_s: float) -> int:
    answer: list[int] = []

    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            answer.append(processed_events(client, metrics_url))
        return bool(answer)

    if not _poll_until(answers, timeout_s, 0.2):
        raise RuntimeError(f"the flow's metrics at {metrics_url} did not answer in {timeout_s} s")
    return answer[-1]


def _send_first(
    client: httpx.Client, replayer: Replayer, first: Outgoing, metrics_url: str, timeout_s: float
) -> tuple[int, float]:
    """Produce the first message alone: the flow's count before it, and the wall time the
    flow was seen to have counted it."""
    before = _processed_once_answering(client, metrics_url, timeout_s)
    replayer.produce([first], speed=None)

    def counted() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return processed_events(client, metrics_url) > before
        return False

    if not _poll_until(counted, timeout_s, 0.02):
        raise RuntimeError(
            f"the flow counted nothing of the first message in {timeout_s:g} s: "
            f"is it reading {first.topic} from {replayer.brokers}?"
        )
    return before, time.time()


def measure(
    flow: FlowUnderTest,
    outgoing: Sequence[Outgoing],
    *,
    speed: Speed,
    expected_log: Sequence[Mapping[str, Any]],
    allowed_lateness_ms: int,
    timeouts: Timeouts = Timeouts(),
    progress: Progress | None = None,
) -> Measured:
    """Produce ``outgoing`` into the running flow at ``speed`` and watch it work.

    The first message goes alone, and the run's clock starts once the flow has counted
    it: a flow still starting, or a producer still connecting, is not measured. After the
    last message the run waits (at most ``drain_s``) until the flow has counted every
    event, Alertmanager holds every page of the replay's log within the input's reach (or
    has shown no new page for ``quiet_s``), and the alert-log topic has every firing the
    final lane can have logged.
    """
    if not outgoing:
        raise ValueError("nothing to produce")
    reach = input_reach(outgoing)
    wanted_pages = {key for key in firing_keys(expected_log) if key.starts_at <= reach}
    wanted_log = {key for key in wanted_pages if key.starts_at < reach - allowed_lateness_ms}
    log_starts = _log_ends(flow.brokers, flow.alerts_topic)
    replayer = Replayer(flow.brokers)
    with httpx.Client() as client:
        seen_before = {s.key for s in alertmanager_pages(client, flow.alertmanager_url)}
        before, ready_at = _send_first(
            client, replayer, outgoing[0], flow.metrics_url, timeouts.startup_s
        )
    if progress is not None:
        progress(1)
    monitor = _Monitor(
        flow, replayer, _InputEvents(outgoing), before, seen_before, timeouts.sample_interval_s
    )
    events = sum(item.events for item in outgoing)
    logged: list[dict[str, Any]] = []

    def done() -> bool:
        if not monitor.caught_up(events):
            return False
        waiting = time.monotonic() - monitor.last_new_page < timeouts.quiet_s
        if waiting and not wanted_pages <= set(monitor.first_seen):
            return False
        logged[:] = read_alert_log(flow.brokers, flow.alerts_topic, log_starts)
        return wanted_log <= firing_keys(logged)

    monitor.start()
    try:
        produced = replayer.produce(outgoing[1:], speed=speed, progress=progress)
        complete = _poll_until(done, timeouts.drain_s, max(timeouts.sample_interval_s, 0.5))
    finally:
        monitor.stop()
    if not complete:
        logged[:] = read_alert_log(flow.brokers, flow.alerts_topic, log_starts)
    return Measured(
        ready_at=ready_at,
        produced=produced,
        samples=monitor.samples,
        sightings=[Sighting(key, at) for key, at in monitor.first_seen.items()],
        alert_log=logged,
    )
