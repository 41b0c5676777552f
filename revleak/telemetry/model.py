"""Spans and metric points as the engine sees them, whatever the OTLP encoding.

Both carry ``ts`` (event time in ms: a span's end, a point's time), ``partition`` and
``offset`` (where the message sits in its input) and ``item`` (its place in the message),
so they pass the same lateness and watermark stage as CRM changes and every run orders
them the same way.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

Attributes = tuple[tuple[str, str], ...]  # sorted by key; values as text


class SpanKind(IntEnum):
    """OTLP ``Span.SpanKind``."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class Span(NamedTuple):
    """One finished span.

    ``error`` is the SLI's verdict: status ERROR, or an HTTP response status ≥ 500.
    ``attributes`` merges the resource's attributes with the span's (the span's win),
    so ``service.version``, ``deployment.environment`` and ``host.name`` sit beside
    ``feature_flag.*`` and ``http.route``.
    """

    ts: int
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    service: str
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    error: bool
    attributes: Attributes = ()
    partition: int = 0
    offset: int = 0
    item: int = 0

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def order(self) -> tuple[int, int, int, int]:
        return (self.ts, self.partition, self.offset, self.item)

    def attribute(self, key: str) -> str | None:
        for name, value in self.attributes:
            if name == key:
                return value
        return None


class MetricPoint(NamedTuple):
    """One data point of a gauge or sum (histograms and summaries carry no SLI here).

    ``cumulative`` is true for a sum with cumulative temporality: its value is a running
    total, and what happened in a minute is the increase over the previous point.
    """

    ts: int
    metric: str
    service: str
    value: float
    attributes: Attributes = ()
    cumulative: bool = False
    partition: int = 0
    offset: int = 0
    item: int = 0

    @property
    def order(self) -> tuple[int, int, int, int]:
        return (self.ts, self.partition, self.offset, self.item)

    def attribute(self, key: str) -> str | None:
        for name, value in self.attributes:
            if name == key:
                return value
        return None


TelemetryItem = Span | MetricPoint
