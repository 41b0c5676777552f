"""Root causes of telemetry pages: which traces to analyse, and against which baseline.

When a telemetry SLO starts firing, the traces (and metric points) of its firing window are
analysed against the baseline window just before it (:mod:`revleak.telemetry.analysis`).
The firing window is the firing rule's long window, capped at :data:`WINDOW_CAP_MS` so that
a slow-burn ticket does not keep days of spans; the baseline is the SLO's
``analysisBaseline`` before it. One explanation per SLO and episode: from its first firing
rule until every rule of it has resolved, and once more when the episode escalates from a
ticket to a page (the page's window holds more of the fault).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import Indicator, Slo, SloCatalog
from revleak.telemetry.analysis import (
    Candidate,
    CauseKind,
    SaturationMetrics,
    analyse,
    conversion_predicate,
    errors_predicate,
    latency_predicate,
)
from revleak.telemetry.model import MetricPoint, Span, TelemetryItem
from revleak.telemetry.sli import is_request
from revleak.timefmt import HOUR_MS, MINUTE_MS, format_duration, format_timestamp

WINDOW_CAP_MS = HOUR_MS
PAGE = "page"
CANDIDATES = 5


class RootCause(NamedTuple):
    """The ranked causes of one SLO's page, found when it started firing at ``time``."""

    slo: str
    severity: str
    long_window: str
    time: int
    window_start: int
    baseline_start: int
    traces: int
    bad_traces: int
    candidates: tuple[Candidate, ...]

    @property
    def order(self) -> tuple[int, str]:
        return (self.time, self.slo)

    def annotations(self) -> dict[str, str]:
        """What the page carries: the top candidate (nothing when none was found)."""
        return self.candidates[0].annotations() if self.candidates else {}

    def record(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "severity": self.severity,
            "long_window": self.long_window,
            "at": format_timestamp(self.time),
            "window_start": format_timestamp(self.window_start),
            "baseline_start": format_timestamp(self.baseline_start),
            "traces": self.traces,
            "bad_traces": self.bad_traces,
            "candidates": [
                {"rank": rank, **candidate.annotations(), "evidence": list(candidate.evidence)}
                for rank, candidate in enumerate(self.candidates, start=1)
            ],
        }


class Explainer:
    def __init__(self, catalog: SloCatalog) -> None:
        self._slos = {slo.name: slo for slo in catalog.telemetry_slos}
        self._keep_ms = max(
            (
                min(rule.long_ms, WINDOW_CAP_MS) + slo.telemetry_settings.analysis_baseline_ms
                for slo in self._slos.values()
                for rule in slo.alert_rules
            ),
            default=0,
        )
        self._spans: dict[int, list[Span]] = defaultdict(list)  # by minute
        self._points: dict[int, list[MetricPoint]] = defaultdict(list)
        self._firing: dict[str, set[tuple[str, str, int]]] = defaultdict(set)
        self._explained: dict[str, str] = {}  # SLO → severity of its episode's explanation

    def add(self, items: Sequence[TelemetryItem]) -> None:
        for item in items:
            minute = item.ts // MINUTE_MS
            if isinstance(item, Span):
                self._spans[minute].append(item)
            else:
                self._points[minute].append(item)

    def forget_before(self, watermark: int) -> None:
        """Drop what no future firing window or baseline can reach."""
        oldest = (watermark - self._keep_ms) // MINUTE_MS - 1
        for store in (self._spans, self._points):
            for minute in [minute for minute in store if minute < oldest]:
                del store[minute]

    def transition(self, transition: AlertTransition) -> RootCause | None:
        """The explanation to attach when ``transition`` starts an episode of its SLO."""
        slo = self._slos.get(transition.slo)
        if slo is None:
            return None
        rule = (transition.severity, transition.kind.value, transition.long_ms)
        firing = self._firing[slo.name]
        if not transition.firing:
            firing.discard(rule)
            if not firing:
                self._explained.pop(slo.name, None)
            return None
        firing.add(rule)
        explained = self._explained.get(slo.name)
        if explained in (PAGE, transition.severity):
            return None
        self._explained[slo.name] = transition.severity
        return self._explain(slo, transition)

    def _explain(self, slo: Slo, transition: AlertTransition) -> RootCause:
        end = transition.at
        window_start = end - min(transition.long_ms, WINDOW_CAP_MS)
        baseline_start = window_start - slo.telemetry_settings.analysis_baseline_ms
        window = self._between(self._spans, window_start, end)
        baseline = self._between(self._spans, baseline_start, window_start)
        points = self._between(self._points, window_start, end)
        bad_trace = _bad_trace(slo)
        settings = slo.telemetry_settings
        candidates = analyse(
            window,
            baseline,
            bad_trace,
            metrics=points,
            saturation=SaturationMetrics(
                usage=settings.usage_metric,
                limit=settings.limit_metric,
                oom_kills=settings.oom_metric,
            ),
            limit=CANDIDATES,
        )
        if slo.indicator is Indicator.SATURATION:
            # The page is about memory: a measured memory cause outranks what the traces say.
            candidates.sort(key=lambda candidate: candidate.cause is not CauseKind.MEMORY)
        traces: dict[str, list[Span]] = defaultdict(list)
        for span in window:
            traces[span.trace_id].append(span)
        return RootCause(
            slo=slo.name,
            severity=transition.severity,
            long_window=format_duration(transition.long_ms),
            time=end,
            window_start=window_start,
            baseline_start=baseline_start,
            traces=len(traces),
            bad_traces=sum(1 for spans in traces.values() if bad_trace(spans)),
            candidates=tuple(candidates),
        )

    @staticmethod
    def _between(store: dict[int, list[Any]], start: int, end: int) -> list[Any]:
        """Items with ``start < time <= end``."""
        found: list[Any] = []
        for minute in range(start // MINUTE_MS, end // MINUTE_MS + 1):
            found.extend(item for item in store.get(minute, ()) if start < item.ts <= end)
        return found


def _bad_trace(slo: Slo) -> Callable[[Sequence[Span]], bool]:
    settings = slo.telemetry_settings
    if slo.indicator is Indicator.LATENCY:
        return latency_predicate(
            lambda span: slo.latency_threshold_ms(span.service, span.name) * 1_000_000
        )
    if slo.indicator is Indicator.CONVERSION:
        return conversion_predicate(
            lambda span: (
                is_request(span) and settings.conversion_start.matches(span.service, span.name)
            ),
            lambda span: (
                is_request(span)
                and not span.error
                and settings.conversion_done.matches(span.service, span.name)
            ),
        )
    return errors_predicate()
