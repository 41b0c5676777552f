"""Replay outputs: the alert log, the incident timeline and dead letters, as JSON lines.

Each output is one sink partition, so its lines are written by one worker in
the order the flow produced them. The resume state is the number of bytes
written: a recovered run truncates what came after the snapshot and goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, TIMELINE

# Bytewax maps part_fn's index into the partitions sorted by name.
OUTPUTS = tuple(sorted((ALERTS, TIMELINE, DEAD_LETTERS)))


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


class _JsonLinesPartition(StatefulSinkPartition[Any, int]):
    def __init__(self, path: Path | None, resume: int | None) -> None:
        self._file: IO[bytes] | None = None
        self._written = resume or 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if resume is None:
                self._file = path.open("wb")
            else:
                self._file = path.open("r+b")
                self._file.truncate(resume)
                self._file.seek(resume)

    def write_batch(self, values: list[Any]) -> None:
        if self._file is None:
            return
        data = "".join(json_line(value.record()) for value in values).encode("utf-8")
        self._file.write(data)
        self._file.flush()
        self._written += len(data)

    def snapshot(self) -> int:
        return self._written

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class JsonLinesSink(FixedPartitionedSink[Any, int]):
    """Writes each output whose path is given; drops the others."""

    def __init__(self, paths: dict[str, str | Path | None]) -> None:
        unknown = set(paths) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}")
        self._paths = {key: Path(path) if path else None for key, path in paths.items()}

    def list_parts(self) -> list[str]:
        return list(OUTPUTS)

    def part_fn(self, item_key: str) -> int:
        return OUTPUTS.index(item_key)

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _JsonLinesPartition:
        return _JsonLinesPartition(self._paths.get(for_part), resume_state)
