"""Messages from Kafka topics, one flow input partition per topic partition.

Each partition decodes its own messages (so a bad one keeps its place among the
good) and emits :class:`DecodedBatch` values whose offsets are topic offsets.

- **Replay** (``tail=False``): read from the start offsets to the partition's end
  at the time it is reached, then emit the end of input (watermark +∞).
- **Live** (``tail=True``): keep reading. A partition that has read everything
  there is says so once (the early lane then evaluates its newest millisecond);
  one with nothing new for ``idle_timeout_s`` of wall time says so once, and stops
  holding the watermark back until it has messages again (docs/semantics.md §1).

The resume state is the next offset to read, so a recovered run goes on from
the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from typing_extensions import override

from revleak.connectors.kafka import client_config, topic_partitions
from revleak.connectors.messages import Position
from revleak.crm.pipeline import DecodedBatch

# With nothing to read, look again this much later rather than spin.
IDLE_POLL = timedelta(milliseconds=20)
Progress = Callable[[int], None]


class DecodedMessage(Protocol):
    """What a decoder makes of one message: its items first, its dead letters second
    (:class:`~revleak.connectors.messages.Decoded` for CRM changes,
    :class:`~revleak.connectors.otlp.TelemetryDecoded` for spans and metric points)."""

    def __getitem__(self, index: int, /) -> Any: ...


MessageDecoder = Callable[[bytes, Position], DecodedMessage]


def collect_decoded(
    items: list[Any], decoder: MessageDecoder, raw: bytes, position: Position
) -> None:
    """Append what ``raw`` decodes into: its dead letters, then each item with the bytes of
    its message (a batch's items, in input order, as :class:`DecodedBatch` holds them)."""
    decoded = decoder(raw, position)
    items.extend(decoded[1])
    items.extend((item, raw) for item in decoded[0])


class _KafkaPartition(StatefulSourcePartition[DecodedBatch, int]):
    def __init__(
        self,
        consumer: Consumer,
        partition: int,
        start: int,
        *,
        source: str,
        decoder: MessageDecoder,
        batch_size: int,
        tail: bool,
        idle_timeout_s: float,
        progress: Progress | None,
    ) -> None:
        self._consumer = consumer
        self._partition = partition
        self._source = source
        self._decoder = decoder
        self._batch_size = batch_size
        self._tail = tail
        self._idle_timeout_s = idle_timeout_s
        self._progress = progress
        self._next_offset = start  # OFFSET_BEGINNING until a message is read
        self._last_message = time.monotonic()
        self._idle = False
        self._caught_up = True
        self._done = False
        self._awake_at: datetime | None = None

    def next_batch(self) -> list[DecodedBatch]:
        if self._done:
            raise StopIteration
        self._awake_at = None
        messages = self._consumer.consume(self._batch_size, 0)
        items: list[Any] = []
        size = 0
        end = False
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    end = not self._tail
                    continue
                raise RuntimeError(f"Kafka partition {self._partition}: {error}")
            raw = message.value() or b""
            size += len(raw)
            offset = message.offset() or 0  # always set on a message without error
            position = Position(self._source, self._partition, offset, line_numbered=False)
            collect_decoded(items, self._decoder, raw, position)
            self._next_offset = offset + 1
        if self._progress is not None and size:
            self._progress(size)
        now = time.monotonic()
        if messages and any(message.error() is None for message in messages):
            self._last_message = now
            self._idle = False
        if end:
            self._done = True
            return [DecodedBatch(self._partition, tuple(items), end=True, line_numbered=False)]
        if items:
            self._caught_up = False
            return [DecodedBatch(self._partition, tuple(items), line_numbered=False)]
        if not messages:
            self._awake_at = _utc_now() + IDLE_POLL
            if self._tail and not self._caught_up:
                self._caught_up = True
                return [DecodedBatch(self._partition, (), line_numbered=False, caught_up=True)]
        if self._tail and not self._idle and now - self._last_message >= self._idle_timeout_s:
            self._idle = True
            return [DecodedBatch(self._partition, (), line_numbered=False, idle=True)]
        return []

    def next_awake(self) -> datetime | None:
        return self._awake_at

    def snapshot(self) -> int:
        return self._next_offset

    def close(self) -> None:
        self._consumer.close()


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TopicInput:
    """One topic a flow reads, the decoder of its messages and the source name its dead
    letters and metrics carry."""

    topic: str
    decoder: MessageDecoder
    source: str


class KafkaTopicsSource(FixedPartitionedSource[DecodedBatch, int]):
    """Messages from one or more topics: the flow's input partitions are the first topic's
    partitions, then the next topic's, and so on (a telemetry flow reads spans and metric
    points). ``start_offsets`` (input partition → offset) says where to begin."""

    def __init__(
        self,
        brokers: str,
        topics: Sequence[TopicInput],
        *,
        tail: bool,
        start_offsets: Mapping[int, int] | None = None,
        idle_timeout_s: float = 30.0,
        batch_size: int = 2000,
        client: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._brokers = brokers
        self._topics = tuple(topics)
        self._tail = tail
        self._start_offsets = dict(start_offsets or {})
        self._idle_timeout_s = idle_timeout_s
        self._batch_size = batch_size
        self._client = dict(client or {})
        self._progress = progress
        self._layout: list[tuple[TopicInput, int]] | None = None

    def _partitions(self) -> list[tuple[TopicInput, int]]:
        """(topic, topic partition) of every input partition, in input partition order."""
        if self._layout is None:
            self._layout = [
                (topic, partition)
                for topic in self._topics
                for partition in range(topic_partitions(self._brokers, topic.topic))
            ]
        return self._layout

    def layout(self) -> tuple[tuple[str, int], ...]:
        """The (topic, topic partition) of every input partition, in input partition order."""
        return tuple((topic.topic, partition) for topic, partition in self._partitions())

    def sources(self) -> tuple[str, ...]:
        """The source name of every input partition, in input partition order."""
        return tuple(topic.source for topic, _ in self._partitions())

    def list_parts(self) -> list[str]:
        return [str(index) for index in range(len(self._partitions()))]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaPartition:
        index = int(for_part)
        topic, partition = self._partitions()[index]
        start = (
            resume_state
            if resume_state is not None
            else self._start_offsets.get(index, OFFSET_BEGINNING)
        )
        consumer = Consumer(
            {
                **client_config(self._brokers, self._client),
                # Partitions are assigned, never balanced by a group: the group id is
                # only a name, and offsets live in the flow's snapshots.
                "group.id": f"revleak-{topic.topic}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                # A live page waits for the fetch: do not let the broker sit on it for
                # librdkafka's default half second when little is arriving.
                "fetch.wait.max.ms": 20 if self._tail else 500,
            }
        )
        consumer.assign([TopicPartition(topic.topic, partition, start)])
        return _KafkaPartition(
            consumer,
            index,
            start,
            source=topic.source,
            decoder=topic.decoder,
            batch_size=self._batch_size,
            tail=self._tail,
            idle_timeout_s=self._idle_timeout_s,
            progress=self._progress,
        )


class KafkaChangeSource(KafkaTopicsSource):
    """CRM messages from ``topic``; ``start_offsets`` (partition → offset) where to begin."""

    def __init__(
        self,
        brokers: str,
        topic: str,
        *,
        decoder: MessageDecoder,
        tail: bool,
        source: str = "crm",
        start_offsets: Mapping[int, int] | None = None,
        idle_timeout_s: float = 30.0,
        batch_size: int = 2000,
        client: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(
            brokers,
            [TopicInput(topic, decoder, source)],
            tail=tail,
            start_offsets=start_offsets,
            idle_timeout_s=idle_timeout_s,
            batch_size=batch_size,
            client=client,
            progress=progress,
        )
