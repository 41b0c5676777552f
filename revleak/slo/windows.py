"""Sliding windows over event time on 1-minute buckets (docs/semantics.md §3).

A window of ``w`` evaluated at time ``t`` covers the SLI events whose bucket
``floor(t / 1 min)`` lies in ``(b(t) − w/1 min, b(t)]`` and that happened at or
before ``t``. Events arrive in time order, so cumulative sums per non-empty
bucket answer any window exactly with two binary searches.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from revleak.timefmt import MINUTE_MS


@dataclass(frozen=True, slots=True)
class WindowSums:
    total: int = 0
    bad: int = 0
    bad_picos: int = 0

    @property
    def good(self) -> int:
        return self.total - self.bad


class BucketSeries:
    """Cumulative good/bad counts and bad dollars, per non-empty bucket, in time order."""

    def __init__(self, retain_minutes: int) -> None:
        self._retain = retain_minutes
        self._buckets: list[int] = []
        self._total: list[int] = []
        self._bad: list[int] = []
        self._picos: list[int] = []
        self._base = (0, 0, 0)  # cumulative sums of the buckets already forgotten

    def add(self, time_ms: int, *, good: bool, weight_picos: int) -> bool:
        """Count one SLI event; say whether it opened a new bucket."""
        bucket = time_ms // MINUTE_MS
        opened = not self._buckets or self._buckets[-1] != bucket
        if opened:
            if self._buckets and bucket < self._buckets[-1]:
                raise ValueError("SLI events must be added in time order")
            self._forget_before(bucket - self._retain)
            self._buckets.append(bucket)
            last = (self._total[-1], self._bad[-1], self._picos[-1]) if self._total else self._base
            self._total.append(last[0])
            self._bad.append(last[1])
            self._picos.append(last[2])
        self._total[-1] += 1
        if not good:
            self._bad[-1] += 1
            self._picos[-1] += weight_picos
        return opened

    def cumulative(self) -> tuple[int, int, int]:
        """Total, bad and bad picos of every event added so far (forgotten ones included)."""
        if not self._total:
            return self._base
        return self._total[-1], self._bad[-1], self._picos[-1]

    def window(self, end_bucket: int, minutes: int) -> WindowSums:
        """Sums over the buckets in ``(end_bucket − minutes, end_bucket]``."""
        total, bad, picos = self.through(end_bucket)
        first_total, first_bad, first_picos = self.through(end_bucket - minutes)
        return WindowSums(total - first_total, bad - first_bad, picos - first_picos)

    def through(self, bucket: int) -> tuple[int, int, int]:
        """Cumulative sums of the buckets up to and including ``bucket``."""
        index = bisect_right(self._buckets, bucket) - 1
        if index < 0:
            return self._base
        return self._total[index], self._bad[index], self._picos[index]

    def _forget_before(self, bucket: int) -> None:
        cut = bisect_right(self._buckets, bucket - 1)
        if cut == 0 or cut < len(self._buckets) // 2:
            return  # forget in chunks so that appends stay amortised O(1)
        self._base = (self._total[cut - 1], self._bad[cut - 1], self._picos[cut - 1])
        del self._buckets[:cut], self._total[:cut], self._bad[:cut], self._picos[:cut]

    def nonempty_buckets(self) -> int:
        return len(self._buckets)
