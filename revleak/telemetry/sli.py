"""Spans and metric points → SLI events (docs/semantics.md §2, telemetry).

A :class:`TelemetryShard` holds the spans of the traces and the metric series hashed to it
and turns what the watermark has released into SLI events, in event-time order:

- ``otel.availability``: a request (server, consumer or root span) is bad when it failed;
- ``otel.latency``: a request is bad when it took longer than its threshold;
- ``otel.saturation``: an instance-minute is bad when memory ÷ limit went over the ratio or
  the OOM-kill count went up; judged when the watermark passes the minute;
- ``otel.conversion``: per minute, the shard counts journeys started and completed (requests
  matching the SLO's start and done patterns, a completion only when it succeeded); the
  SLO stage adds up every shard's counts and :class:`ConversionJudge` judges the minute.

Per-minute events are stamped at the minute's last millisecond, in its own bucket.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from revleak.conventions import ERROR, OK, SLOW
from revleak.sli import SliEvent
from revleak.slo.catalog import Indicator, Slo, SloCatalog
from revleak.telemetry.model import MetricPoint, Span, SpanKind, TelemetryItem
from revleak.timefmt import MINUTE_MS

_REQUEST_KINDS = frozenset({SpanKind.SERVER, SpanKind.CONSUMER})
INSTANCE_KEYS = ("service.instance.id", "host.name", "k8s.pod.name")


def is_request(span: Span) -> bool:
    """A span that stands for a request a service served: what availability and latency count."""
    return span.kind in _REQUEST_KINDS or not span.parent_span_id


def instance_of(point: MetricPoint) -> str:
    for key in INSTANCE_KEYS:
        value = point.attribute(key)
        if value:
            return value
    return ""


def minute_end(time: int) -> int:
    return time - time % MINUTE_MS + MINUTE_MS - 1


class ConversionCount(NamedTuple):
    """One shard's journeys started and completed in the minute ending at ``time``."""

    slo: str
    time: int
    starts: int
    dones: int


@dataclass(slots=True)
class _Instance:
    """One instance's memory in the minute being filled."""

    limit: float | None = None  # the newest limit, kept across minutes
    oom_total: float | None = None  # the newest cumulative OOM-kill count
    minute: int | None = None  # end of the minute being filled
    peak_ratio: float = 0.0
    oom_kills: float = 0.0


class _Route(NamedTuple):
    """What a request of one operation counts for: (SLO, latency threshold in ns or None
    for availability) and (conversion SLO, starts a journey, completes one when it succeeds)."""

    requests: tuple[tuple[str, int | None], ...]
    journeys: tuple[tuple[str, bool, bool], ...]


# Operations remembered per shard before the memo starts over (span names can be many).
ROUTES_REMEMBERED = 1 << 14


@dataclass(slots=True)
class ShardOutput:
    sli_events: list[SliEvent] = field(default_factory=list)
    conversions: list[ConversionCount] = field(default_factory=list)
    # Requests per (service, outcome): ok, error, or slow (over the first latency SLO's
    # threshold), for per-service rate, errors and duration.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


class TelemetryShard:
    def __init__(self, catalog: SloCatalog) -> None:
        slos = catalog.telemetry_slos
        requests = (Indicator.AVAILABILITY, Indicator.LATENCY)
        self._requests = [s for s in slos if s.indicator in requests]
        self._saturation = [s for s in slos if s.indicator is Indicator.SATURATION]
        self._conversion = [s for s in slos if s.indicator is Indicator.CONVERSION]
        self._instances: dict[tuple[str, str, str], _Instance] = {}  # (slo, service, instance)
        self._journeys: dict[tuple[str, int], list[int]] = {}  # (slo, minute end) → [starts, dones]
        self._first_open: int | None = None  # the end of the earliest minute being filled
        self._routes: dict[tuple[str, str], _Route] = {}  # (service, name) → what it counts for

    def __getstate__(self) -> dict[str, Any]:
        # The memo is rebuilt on demand; a snapshot need not carry it.
        return {**self.__dict__, "_routes": {}}

    @property
    def open_records(self) -> int:
        return len(self._instances)

    @property
    def closed_records(self) -> int:
        return 0

    def advance(self, items: list[TelemetryItem], watermark: int) -> ShardOutput:
        """Items released below ``watermark``, in order; what they and the passing of the
        watermark produce."""
        output = ShardOutput()
        for item in items:
            self._close_minutes(item.ts, output)
            if isinstance(item, Span):
                self._span(item, output)
            else:
                self._point(item)
        self._close_minutes(watermark, output)
        return output

    def _span(self, span: Span, output: ShardOutput) -> None:
        if not is_request(span):
            return  # a client or internal span is part of a request counted elsewhere
        route = self._routes.get((span.service, span.name))
        if route is None:
            route = self._route(span.service, span.name)
        events = output.sli_events
        outcome = ERROR if span.error else OK
        for slo, threshold_ns in route.requests:
            if threshold_ns is None:
                good = not span.error
            else:
                good = span.duration_ns <= threshold_ns
                if not good and outcome == OK:
                    outcome = SLOW
            events.append(SliEvent(slo, span.ts, good, 0, span.span_id))
        output.requests[(span.service, outcome)] += 1
        for slo, starts, completes in route.journeys:
            done = completes and not span.error
            if starts or done:
                end = minute_end(span.ts)
                counts = self._journeys.setdefault((slo, end), [0, 0])
                counts[0] += starts
                counts[1] += done
                self._opened(end)

    def _route(self, service: str, name: str) -> _Route:
        if len(self._routes) >= ROUTES_REMEMBERED:
            self._routes.clear()
        requests = tuple(
            (
                slo.name,
                None
                if slo.indicator is Indicator.AVAILABILITY
                else slo.latency_threshold_ms(service, name) * 1_000_000,
            )
            for slo in self._requests
            if slo.telemetry_settings.watches(service)
        )
        journeys = tuple(
            (
                slo.name,
                slo.telemetry_settings.conversion_start.matches(service, name),
                slo.telemetry_settings.conversion_done.matches(service, name),
            )
            for slo in self._conversion
            if slo.telemetry_settings.watches(service)
        )
        route = self._routes[(service, name)] = _Route(requests, journeys)
        return route

    def _point(self, point: MetricPoint) -> None:
        for slo in self._saturation:
            settings = slo.telemetry_settings
            if not settings.watches(point.service) or point.metric not in (
                settings.usage_metric,
                settings.limit_metric,
                settings.oom_metric,
            ):
                continue
            key = (slo.name, point.service, instance_of(point))
            state = self._instances.get(key)
            if state is None:
                state = self._instances[key] = _Instance()
            if state.minute is None:
                state.minute = minute_end(point.ts)
                self._opened(state.minute)
            if point.metric == settings.limit_metric:
                state.limit = point.value
            elif point.metric == settings.usage_metric:
                if state.limit:
                    state.peak_ratio = max(state.peak_ratio, point.value / state.limit)
            elif point.cumulative:
                if state.oom_total is not None and point.value > state.oom_total:
                    state.oom_kills += point.value - state.oom_total
                state.oom_total = point.value
            else:
                state.oom_kills += max(point.value, 0.0)

    def _opened(self, end: int) -> None:
        if self._first_open is None or end < self._first_open:
            self._first_open = end

    def _close_minutes(self, before: int, output: ShardOutput) -> None:
        """Judge every minute that ends before ``before``: nothing more can arrive in it."""
        if self._first_open is None or self._first_open >= before:
            return
        for (slo, service, instance), state in self._instances.items():
            if state.minute is None or state.minute >= before:
                continue
            ratio = _ratio(self._saturation, slo)
            good = state.peak_ratio <= ratio and state.oom_kills == 0
            record = f"{service}/{instance}/{state.minute}"
            output.sli_events.append(SliEvent(slo, state.minute, good, 0, record))
            state.minute, state.peak_ratio, state.oom_kills = None, 0.0, 0.0
        closed = [key for key in self._journeys if key[1] < before]
        for key in sorted(closed, key=lambda key: (key[1], key[0])):
            starts, dones = self._journeys.pop(key)
            output.conversions.append(ConversionCount(key[0], key[1], starts, dones))
        still_open = [end for _, end in self._journeys] + [
            state.minute for state in self._instances.values() if state.minute is not None
        ]
        self._first_open = min(still_open, default=None)


class ConversionJudge:
    """Judges each minute of one conversion SLO against the baseline of the good minutes
    before it (``baseline_window`` of them), or ``initial_baseline`` until enough journeys
    have been seen. A minute with no journey started gives no event."""

    def __init__(self, slo: Slo) -> None:
        self._slo = slo
        self._settings = slo.telemetry_settings
        self._history: deque[tuple[int, int, int]] = deque()  # good minutes: (end, starts, dones)
        self._starts = 0
        self._dones = 0

    def judge(self, counts: list[ConversionCount]) -> list[SliEvent]:
        """Every shard's counts of the minutes the watermark passed, in time order."""
        by_minute: dict[int, list[int]] = {}
        for count in counts:
            totals = by_minute.setdefault(count.time, [0, 0])
            totals[0] += count.starts
            totals[1] += count.dones
        events: list[SliEvent] = []
        for minute, (starts, dones) in sorted(by_minute.items()):
            self._forget_before(minute - self._settings.baseline_window_ms)
            if starts == 0:
                continue
            baseline = self._baseline()
            good = baseline is None or Fraction(dones, starts) >= (
                self._settings.conversion_objective * baseline
            )
            events.append(SliEvent(self._slo.name, minute, good, 0, f"minute/{minute}"))
            if good:
                self._history.append((minute, starts, dones))
                self._starts += starts
                self._dones += dones
        return events

    def _baseline(self) -> Fraction | None:
        if self._starts >= self._settings.min_baseline_starts:
            return Fraction(min(self._dones, self._starts), self._starts)
        return self._settings.initial_baseline

    def _forget_before(self, time: int) -> None:
        while self._history and self._history[0][0] <= time:
            _, starts, dones = self._history.popleft()
            self._starts -= starts
            self._dones -= dones


def _ratio(slos: list[Slo], name: str) -> float:
    for slo in slos:
        if slo.name == name:
            return float(slo.telemetry_settings.saturation_ratio)
    raise KeyError(name)
