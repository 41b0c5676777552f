"""``revleak chaos`` into a real Kafka broker, in both OTLP encodings, and minute splitting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from typer.testing import CliRunner

from revleak.cli import app
from revleak.connectors import kafka
from revleak.connectors.otlp_json import parse_metrics_json, parse_traces_json
from revleak.loadtest.chaos import seed_repository
from revleak.loadtest.chaos_kafka import trace_payloads
from revleak.loadtest.shop import Shop

START = "2026-03-02T10:00:00Z"
START_MS = 1_772_445_600_000


def chaos(*args: str) -> str:
    done = CliRunner().invoke(app, ["chaos", *args], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert done.exit_code == 0, done.output
    return done.output


def summary_count(output: str, row: str) -> tuple[int, int]:
    """(items, messages) of a summary row such as ``spans │ 1,234 in 3 messages``."""
    match = re.search(rf"{row}\s*│\s*([\d,]+) in ([\d,]+) messages", output)
    assert match, output
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


def spans_in(data: TracesData) -> int:
    return sum(
        len(scope.spans) for resource in data.resource_spans for scope in resource.scope_spans
    )


def points_in(data: MetricsData) -> int:
    return sum(
        len(metric.gauge.data_points) + len(metric.sum.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    )


@pytest.mark.services
def test_chaos_errors_writes_otlp_proto_and_json_that_parse_back(
    kafka_brokers: str, tmp_path: Path
) -> None:
    read: dict[str, tuple[list[TracesData], list[MetricsData]]] = {}
    for encoding in ("otlp_proto", "otlp_json"):
        spans_topic, metrics_topic = f"chaos-spans-{encoding}", f"chaos-metrics-{encoding}"
        output = chaos(
            "errors",
            "--brokers",
            kafka_brokers,
            "--encoding",
            encoding,
            "--repository",
            str(tmp_path / f"{encoding}.git"),
            "--init",
            "--minutes",
            "3",
            "--baseline-minutes",
            "1",
            "--start",
            START,
            "--spans-topic",
            spans_topic,
            "--metrics-topic",
            metrics_topic,
        )
        assert "2026-03-02T10:01:00.000Z: Enable feature flag new_reservation" in output
        assert (
            "flag: inventory POST /reserve, feature_flag.new_reservation = on (was off)" in output
        )
        span_messages = [m.value for m in kafka.read_topic(kafka_brokers, spans_topic)]
        metric_messages = [m.value for m in kafka.read_topic(kafka_brokers, metrics_topic)]
        if encoding == "otlp_json":
            traces = [parse_traces_json(raw) for raw in span_messages]
            metrics = [parse_metrics_json(raw) for raw in metric_messages]
        else:
            traces = [TracesData.FromString(raw) for raw in span_messages]
            metrics = [MetricsData.FromString(raw) for raw in metric_messages]
        spans, messages = summary_count(output, "spans")
        assert (sum(map(spans_in, traces)), len(traces)) == (spans, messages)
        points, messages = summary_count(output, "metric points")
        assert (
            (sum(map(points_in, metrics)), len(metrics))
            == (points, messages)
            == (
                points,
                3,
            )
        )
        read[encoding] = (traces, metrics)
    # The same seed and start: both encodings carry the very same telemetry.
    assert read["otlp_json"] == read["otlp_proto"]


def test_a_minute_too_large_for_one_message_is_split(tmp_path: Path) -> None:
    bare = tmp_path / "deploy.git"
    seed_repository(bare, at_ms=START_MS)
    request = Shop(bare, seed=1, start_ms=START_MS, journeys_per_minute=100).minute().traces
    whole = request.SerializeToString()
    for encoding in ("otlp_proto", "otlp_json"):
        parts = list(trace_payloads(request, encoding, max_bytes=len(whole) // 5))
        assert len(parts) > 5
        assert all(len(part) <= len(whole) // 5 for part in parts)
        decoded = [
            parse_traces_json(part) if encoding == "otlp_json" else TracesData.FromString(part)
            for part in parts
        ]
        spans = [
            (resource.resource, scope.scope, span)
            for data in decoded
            for resource in data.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        expected = [
            (resource.resource, scope.scope, span)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        assert spans == expected
    assert list(trace_payloads(request, "otlp_proto")) == [whole]
