"""Hand-made spans and metric points for the telemetry tests."""

from __future__ import annotations

from revleak.telemetry.model import Attributes, MetricPoint, Span, SpanKind

T0 = 1_800_000_000_000  # a minute boundary
MS = 1_000_000


def request(
    at: int,
    trace: int,
    *,
    service: str = "cart",
    name: str = "POST /cart",
    duration_ms: int = 50,
    error: bool = False,
    parent: str = "",
    kind: SpanKind = SpanKind.SERVER,
    attributes: Attributes = (),
    span: str | None = None,
) -> Span:
    return Span(
        ts=at,
        trace_id=f"{trace:032x}",
        span_id=span or f"{trace:012x}{len(name):04x}",
        parent_span_id=parent,
        service=service,
        name=name,
        kind=kind,
        start_ns=(at - duration_ms) * MS,
        end_ns=at * MS,
        error=error,
        attributes=attributes,
        offset=trace,
    )


def point(
    at: int,
    metric: str,
    value: float,
    *,
    service: str = "inventory",
    host: str = "inv-1",
    cumulative: bool = False,
) -> MetricPoint:
    return MetricPoint(
        ts=at,
        metric=metric,
        service=service,
        value=value,
        attributes=(("host.name", host),),
        cumulative=cumulative,
    )
