"""The flow's outputs: each one is a sink partition with a target of its own.

Every output (alert log, timeline, dead letters, pages, live state, root causes) is one
partition, so it is written by one worker in the order the flow produced it.
Outputs without a target are dropped. Files are written as JSON lines; their
resume state is the number of bytes written, so a recovered run truncates what
came after the snapshot and goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from typing_extensions import override

from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, LIVE, PAGES, ROOT_CAUSES, TIMELINE

# Bytewax maps part_fn's index into the partitions sorted by name.
OUTPUTS = tuple(sorted((ALERTS, TIMELINE, DEAD_LETTERS, PAGES, LIVE, ROOT_CAUSES)))


class Target(Protocol):
    """Where one output goes; opened once, in the worker that owns the output."""

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]: ...


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


class _JsonLinesPartition(StatefulSinkPartition[Any, int]):
    def __init__(self, path: Path, resume: int | None) -> None:
        self._written = resume or 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume is None:
            self._file: IO[bytes] = path.open("wb")
        else:
            self._file = path.open("r+b")
            self._file.truncate(resume)
            self._file.seek(resume)

    def write_batch(self, values: list[Any]) -> None:
        data = "".join(json_line(value.record()) for value in values).encode("utf-8")
        self._file.write(data)
        self._file.flush()
        self._written += len(data)

    def snapshot(self) -> int:
        return self._written

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class JsonLines:
    path: Path

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:
        return _JsonLinesPartition(self.path, resume)


class _Dropped(StatefulSinkPartition[Any, None]):
    def write_batch(self, values: list[Any]) -> None:
        pass

    def snapshot(self) -> None:
        return None


class OutputSink(FixedPartitionedSink[Any, Any]):
    """Sends each output to its target; drops the outputs without one."""

    def __init__(self, targets: dict[str, Target | None]) -> None:
        unknown = set(targets) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown outputs {sorted(unknown)}")
        self._targets = targets

    def list_parts(self) -> list[str]:
        return list(OUTPUTS)

    def part_fn(self, item_key: str) -> int:
        return OUTPUTS.index(item_key)

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: Any
    ) -> StatefulSinkPartition[Any, Any]:
        target = self._targets.get(for_part)
        return _Dropped() if target is None else target.open(resume_state)


def json_lines_sink(paths: dict[str, str | Path | None]) -> OutputSink:
    """Writes each output whose path is given as JSON lines; drops the others."""
    return OutputSink({key: JsonLines(Path(path)) if path else None for key, path in paths.items()})
