"""Replay inputs: change-event logs (JSON lines), funnel CSV snapshots, messages in memory.

Each file is one partition. A partition emits :class:`DecodedBatch` values
(decoded in the partition, so bad lines keep their place) and a final batch
marked ``end``: end of input is the watermark +∞ of docs/semantics.md §1. The
resume state is the byte offset and line number, so a recovered run continues
where the snapshot was taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from revleak.connectors.csv_import import read_funnel
from revleak.connectors.formats import decode_generic
from revleak.connectors.messages import Position
from revleak.crm.pipeline import DecodedBatch
from revleak.dataflows.kafka_source import MessageDecoder, collect_decoded

Progress = Callable[[int], None]
ResumeState = tuple[int, int]  # (byte offset, lines read)


class _ChangeLogPartition(StatefulSourcePartition[DecodedBatch, ResumeState]):
    def __init__(
        self,
        path: Path,
        partition: int,
        *,
        source: str,
        decoder: MessageDecoder,
        batch_size: int,
        resume: ResumeState | None,
        progress: Progress | None,
    ) -> None:
        self._file = path.open("rb")
        self._partition = partition
        self._source = source
        self._decoder = decoder
        self._batch_size = batch_size
        self._progress = progress
        self._offset, self._line = resume or (0, 0)
        self._file.seek(self._offset)
        self._done = False

    def next_batch(self) -> list[DecodedBatch]:
        if self._done:
            raise StopIteration
        items: list[Any] = []
        for _ in range(self._batch_size):
            line = self._file.readline()
            if not line:
                self._done = True
                break
            self._line += 1
            raw = line.rstrip(b"\r\n")
            position = Position(self._source, self._partition, self._line)
            collect_decoded(items, self._decoder, raw, position)
        read_to = self._file.tell()
        if self._progress is not None:
            self._progress(read_to - self._offset)
        self._offset = read_to
        return [DecodedBatch(self._partition, tuple(items), end=self._done)]

    def snapshot(self) -> ResumeState:
        return (self._offset, self._line)

    def close(self) -> None:
        self._file.close()


class ChangeLogSource(FixedPartitionedSource[DecodedBatch, ResumeState]):
    """Messages, one per line (generic JSON CRM changes by default, or OTLP/JSON with
    :func:`~revleak.connectors.otlp.decode_json_line`); one partition per file."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        source: str = "crm",
        decoder: MessageDecoder = decode_generic,
        batch_size: int = 2000,
        progress: Progress | None = None,
    ) -> None:
        self._paths = [Path(path) for path in paths]
        self._source = source
        self._decoder = decoder
        self._batch_size = batch_size
        self._progress = progress

    def list_parts(self) -> list[str]:
        return [str(index) for index in range(len(self._paths))]

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: ResumeState | None
    ) -> _ChangeLogPartition:
        partition = int(for_part)
        return _ChangeLogPartition(
            self._paths[partition],
            partition,
            source=self._source,
            decoder=self._decoder,
            batch_size=self._batch_size,
            resume=resume_state,
            progress=self._progress,
        )


class _FunnelPartition(StatefulSourcePartition[DecodedBatch, int]):
    def __init__(
        self,
        batches: list[DecodedBatch],
        resume: int | None,
        progress: Progress | None,
        size: int,
    ) -> None:
        self._batches = batches
        self._next = resume or 0
        self._progress = progress
        self._size = size

    def next_batch(self) -> list[DecodedBatch]:
        if self._next >= len(self._batches):
            raise StopIteration
        batch = self._batches[self._next]
        self._next += 1
        if self._progress is not None and self._next == len(self._batches):
            self._progress(self._size)
        return [batch]

    def snapshot(self) -> int:
        return self._next


class FunnelCsvSource(FixedPartitionedSource[DecodedBatch, int]):
    """A funnel snapshot CSV, replayed in time order (docs/semantics.md §2)."""

    def __init__(
        self,
        path: str | Path,
        *,
        source: str = "crm",
        batch_size: int = 2000,
        progress: Progress | None = None,
    ) -> None:
        self._path = Path(path)
        self._source = source
        self._batch_size = batch_size
        self._progress = progress

    def list_parts(self) -> list[str]:
        return ["0"]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FunnelPartition:
        data = self._path.read_bytes()
        items = read_funnel(data, partition=0, source=self._source)
        size = self._batch_size
        batches = [
            DecodedBatch(0, tuple(items[start : start + size]))
            for start in range(0, len(items), size)
        ]
        batches.append(DecodedBatch(0, (), end=True))
        return _FunnelPartition(batches, resume_state, self._progress, len(data))


class _MessagesPartition(StatefulSourcePartition[DecodedBatch, int]):
    def __init__(
        self,
        messages: Sequence[bytes],
        partition: int,
        *,
        source: str,
        decoder: MessageDecoder,
        batch_size: int,
        start: int,
    ) -> None:
        self._messages = messages
        self._partition = partition
        self._source = source
        self._decoder = decoder
        self._batch_size = batch_size
        self._next = start
        self._done = False

    def next_batch(self) -> list[DecodedBatch]:
        if self._done:
            raise StopIteration
        items: list[Any] = []
        stop = min(self._next + self._batch_size, len(self._messages))
        for offset in range(self._next, stop):
            position = Position(self._source, self._partition, offset, line_numbered=False)
            collect_decoded(items, self._decoder, self._messages[offset], position)
        self._next = stop
        self._done = stop == len(self._messages)
        return [DecodedBatch(self._partition, tuple(items), end=self._done, line_numbered=False)]

    def snapshot(self) -> int:
        return self._next


class MessagesSource(FixedPartitionedSource[DecodedBatch, int]):
    """Messages held in memory, one list per partition, decoded in the partition like a
    topic's (benchmarks replay OTLP payloads this way, without a broker)."""

    def __init__(
        self,
        partitions: Sequence[tuple[Sequence[bytes], MessageDecoder, str]],
        *,
        batch_size: int = 20,
    ) -> None:
        self._partitions = partitions
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [str(index) for index in range(len(self._partitions))]

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _MessagesPartition:
        partition = int(for_part)
        messages, decoder, source = self._partitions[partition]
        return _MessagesPartition(
            messages,
            partition,
            source=source,
            decoder=decoder,
            batch_size=self._batch_size,
            start=resume_state or 0,
        )
