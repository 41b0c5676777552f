"""A chaos run produced to Kafka as the OpenTelemetry Collector's Kafka exporter writes it.

Spans go to one topic and metrics to another, each message an ``ExportTraceServiceRequest``
or ``ExportMetricsServiceRequest`` in ``otlp_proto`` (binary protobuf) or ``otlp_json``.
A minute whose spans would make a message over MAX_MESSAGE_BYTES is split into several.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import KafkaError, Message, Producer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from revleak.connectors import kafka
from revleak.connectors.otlp_json import encode_json
from revleak.loadtest.chaos import ChaosRun
from revleak.loadtest.shop import Deployment, ShopMinute
from revleak.timefmt import MINUTE_MS

Encoding = Literal["otlp_proto", "otlp_json"]
ENCODINGS: tuple[Encoding, ...] = ("otlp_proto", "otlp_json")
CONTENT_TYPES: dict[Encoding, bytes] = {
    "otlp_proto": b"application/x-protobuf",
    "otlp_json": b"application/json",
}
Headers = list[tuple[str, str | bytes | None]]
# Kafka's default limit is 1 MB a message, headers and framing included.
MAX_MESSAGE_BYTES = 900_000
EXPORT_INTERVAL_MS = 10_000  # spans of this much time per message, as a Collector batches
FLUSH_TIMEOUT_S = 60.0
# A full producer queue is waited out this long at a time, at most QUEUE_RETRIES times.
QUEUE_WAIT_S = 0.5
QUEUE_RETRIES = 120


@dataclass(slots=True)
class ChaosReport:
    """What a run produced."""

    minutes: int = 0
    spans: int = 0
    metric_points: int = 0
    span_messages: int = 0
    metric_messages: int = 0
    first_ms: int | None = None
    end_ms: int | None = None
    injected_at_ms: int | None = None
    deployment: Deployment | None = None  # what ran in the last minute
    sync_errors: list[str] = field(default_factory=list)


def encode(
    message: ExportTraceServiceRequest | ExportMetricsServiceRequest, encoding: Encoding
) -> bytes:
    return encode_json(message) if encoding == "otlp_json" else message.SerializeToString()


def trace_payloads(
    request: ExportTraceServiceRequest,
    encoding: Encoding,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Iterator[bytes]:
    """``request`` encoded, split by halves into requests of at most ``max_bytes`` each
    (a single span larger than that still goes alone)."""
    payload = encode(request, encoding)
    count = span_count(request)
    if len(payload) <= max_bytes or count <= 1:
        yield payload
        return
    yield from trace_payloads(spans_between(request, 0, count // 2), encoding, max_bytes)
    yield from trace_payloads(spans_between(request, count // 2, count), encoding, max_bytes)


def by_end_time(
    request: ExportTraceServiceRequest, slice_ms: int = EXPORT_INTERVAL_MS
) -> Iterator[ExportTraceServiceRequest]:
    """``request`` cut into the requests a Collector's batching would send: the spans that
    ended in each ``slice_ms``, in time order. A whole simulated minute in one message would
    span more than the flow's allowed lateness, and its earliest spans would arrive late."""
    slice_ns = slice_ms * 1_000_000
    ends = sorted(
        {
            span.end_time_unix_nano // slice_ns
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        }
    )
    for index in ends:
        part = ExportTraceServiceRequest()
        for resource in request.resource_spans:
            kept_resource = None
            for scope in resource.scope_spans:
                spans = [s for s in scope.spans if s.end_time_unix_nano // slice_ns == index]
                if not spans:
                    continue
                if kept_resource is None:
                    kept_resource = part.resource_spans.add(
                        resource=resource.resource, schema_url=resource.schema_url
                    )
                kept_resource.scope_spans.add(
                    scope=scope.scope, schema_url=scope.schema_url, spans=spans
                )
        yield part


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(
        len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
    )


def spans_between(
    request: ExportTraceServiceRequest, start: int, stop: int
) -> ExportTraceServiceRequest:
    """The spans ``start`` to ``stop`` (in message order), each under its resource and scope."""
    part = ExportTraceServiceRequest()
    position = 0
    for resource in request.resource_spans:
        kept_resource = None
        for scope in resource.scope_spans:
            low, high = max(start - position, 0), min(stop - position, len(scope.spans))
            position += len(scope.spans)
            if low >= high:
                continue
            if kept_resource is None:
                kept_resource = part.resource_spans.add(
                    resource=resource.resource, schema_url=resource.schema_url
                )
            kept_resource.scope_spans.add(
                scope=scope.scope, schema_url=scope.schema_url, spans=scope.spans[low:high]
            )
    return part


def produce(
    run: ChaosRun,
    minutes: int,
    *,
    brokers: str,
    encoding: Encoding = "otlp_proto",
    spans_topic: str = "otlp_spans",
    metrics_topic: str = "otlp_metrics",
    speed: float | None = None,
    on_minute: Callable[[ShopMinute], None] | None = None,
) -> ChaosReport:
    """Simulate ``minutes`` minutes of ``run`` into Kafka; flushed when it returns.

    ``speed`` paces the run at that many simulated minutes per wall second (None: as fast
    as possible). ``on_minute`` sees each minute once it is handed to the producer.
    """
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive")
    kafka.ensure_topics(brokers, {spans_topic: 1, metrics_topic: 1})
    producer = kafka.producer(brokers)
    failures: list[str] = []
    headers: Headers = [("content-type", CONTENT_TYPES[encoding])]

    def delivered(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            failures.append(str(error))

    def send(topic: str, payload: bytes) -> None:
        _send(producer, topic, payload, headers, delivered)

    report = ChaosReport()
    began = time.monotonic()
    for shop_minute in run.minutes(minutes):
        # Metric points are read during the minute, most spans end after them: in this
        # order neither topic runs ahead of the other by more than the allowed lateness.
        send(metrics_topic, encode(shop_minute.metrics, encoding))
        report.metric_messages += 1
        for batch in by_end_time(shop_minute.traces):
            for payload in trace_payloads(batch, encoding):
                send(spans_topic, payload)
                report.span_messages += 1
        _count(report, shop_minute)
        if on_minute is not None:
            on_minute(shop_minute)
        if speed is not None:
            _wait(producer, began + report.minutes / speed)
    left = producer.flush(FLUSH_TIMEOUT_S)
    if left or failures:
        reason = failures[0] if failures else f"{left} messages not delivered in time"
        raise RuntimeError(f"producing the chaos run to {brokers} failed: {reason}")
    report.injected_at_ms = run.injected_at_ms
    return report


def _count(report: ChaosReport, shop_minute: ShopMinute) -> None:
    report.minutes += 1
    report.spans += shop_minute.spans
    report.metric_points += shop_minute.metric_points
    if report.first_ms is None:
        report.first_ms = shop_minute.start_ms
    report.end_ms = shop_minute.start_ms + MINUTE_MS
    report.deployment = shop_minute.deployment
    if shop_minute.sync_error is not None:
        report.sync_errors.append(shop_minute.sync_error)


def _send(
    producer: Producer,
    topic: str,
    payload: bytes,
    headers: Headers,
    delivered: Callable[[KafkaError | None, Message], None],
) -> None:
    for _ in range(QUEUE_RETRIES):
        try:
            producer.produce(topic, value=payload, headers=headers, on_delivery=delivered)
        except BufferError:
            producer.poll(QUEUE_WAIT_S)
        else:
            producer.poll(0)
            return
    raise RuntimeError(f"the Kafka producer's queue stayed full; {topic} not written")


def _wait(producer: Producer, until: float) -> None:
    """Serve delivery reports until the monotonic time ``until``."""
    while (left := until - time.monotonic()) > 0:
        producer.poll(min(left, QUEUE_WAIT_S))
