"""Event-time deadlines of many records, in little memory.

A record is filed once, under the minute of its earliest pending deadline
(8 bytes a record instead of a heap tuple per deadline). When its minute comes,
the owner recomputes what is actually due (deadlines move on every touch) and
files it again if something is still pending later.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from revleak.timefmt import MINUTE_MS


class DeadlineWheel:
    def __init__(self) -> None:
        self._buckets: dict[int, list[str]] = {}
        self._minutes: list[int] = []

    def file(self, record_id: str, due_ms: int) -> None:
        minute = due_ms // MINUTE_MS
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = []
            heapq.heappush(self._minutes, minute)
        bucket.append(record_id)

    def take_through(self, minute: int) -> Iterator[tuple[int, str]]:
        """Remove and yield ``(minute, record)`` filed at or before ``minute``, earliest first."""
        while self._minutes and self._minutes[0] <= minute:
            taken = heapq.heappop(self._minutes)
            for record in self._buckets.pop(taken):
                yield taken, record

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())
