"""revleak.connectors.self_telemetry: revleak's own spans and metrics, exported over OTLP/HTTP
to a real HTTP server in this process and decoded from the protobuf it received."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from revleak.connectors.metrics import PrometheusObserver
from revleak.connectors.self_telemetry import (
    FLOW_SERVICE_NAME,
    SelfTelemetrySettings,
    TelemetryObserver,
    instrument_app,
    start_self_telemetry,
)

TOKEN = "Bearer s3cret-collector-token"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Collector:
    url: str
    received: list[Received] = field(default_factory=list)

    def bodies(self, path: str) -> list[bytes]:
        return [request.body for request in self.received if request.path == path]

    def spans(self) -> list[tuple[dict[str, str], Span]]:
        found = []
        for body in self.bodies("/v1/traces"):
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found += [(resource, span) for span in scope_spans.spans]
        return found

    def metrics(self) -> list[tuple[dict[str, str], Metric]]:
        found = []
        for body in self.bodies("/v1/metrics"):
            for resource_metrics in ExportMetricsServiceRequest.FromString(body).resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    found += [(resource, metric) for metric in scope_metrics.metrics]
        return found


def attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    """OTLP key-values as text, whatever their value's type."""
    result = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        result[pair.key] = str(getattr(value, kind)) if kind else ""
    return result


def points(
    metrics: list[tuple[dict[str, str], Metric]], name: str
) -> dict[frozenset[tuple[str, str]], float]:
    """The data points of a sum or gauge by their attributes (cumulative, so the last wins)."""
    found: dict[frozenset[tuple[str, str]], float] = {}
    for _, metric in metrics:
        if metric.name != name:
            continue
        data = metric.sum if metric.HasField("sum") else metric.gauge
        for point in data.data_points:
            value = point.as_int if point.HasField("as_int") else point.as_double
            found[frozenset(attributes(point.attributes).items())] = value
    return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    """An OTLP/HTTP receiver that keeps every POST and answers 200 with an empty message."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            # Header names are case-insensitive: kept lower-cased.
            headers = {name.lower(): value for name, value in self.headers.items()}
            received.append(Received(self.path, headers, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Collector(f"http://127.0.0.1:{server.server_port}", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_self_telemetry_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENABLED", "ENDPOINT", "HEADERS", "SERVICE_NAME", "EXPORT_INTERVAL_S"):
        monkeypatch.delenv(f"REVLEAK_SELF_TELEMETRY_{name}", raising=False)


def test_disabled_by_default_exports_nothing(collector: Collector) -> None:
    assert start_self_telemetry(SelfTelemetrySettings()) is None
    assert start_self_telemetry(SelfTelemetrySettings(endpoint=collector.url)) is None
    assert collector.received == []


def test_endpoint_must_be_an_http_base_url() -> None:
    for endpoint in ("127.0.0.1:4318", "ftp://collector", "http://collector:4318/?x=1"):
        with pytest.raises(ValidationError):
            SelfTelemetrySettings(endpoint=endpoint)


def test_headers_stay_out_of_the_settings_repr() -> None:
    assert "s3cret" not in repr(SelfTelemetrySettings(headers={"Authorization": TOKEN}))


def test_an_instrumented_app_exports_a_server_span_per_route(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVLEAK_SELF_TELEMETRY_ENABLED", "true")
    monkeypatch.setenv("REVLEAK_SELF_TELEMETRY_ENDPOINT", collector.url + "/")
    monkeypatch.setenv("REVLEAK_SELF_TELEMETRY_HEADERS", f'{{"Authorization": "{TOKEN}"}}')
    monkeypatch.setenv("REVLEAK_SELF_TELEMETRY_SERVICE_NAME", "revleak-api-eu")
    monkeypatch.setenv("REVLEAK_SELF_TELEMETRY_EXPORT_INTERVAL_S", "60")
    telemetry = start_self_telemetry(SelfTelemetrySettings())
    assert telemetry is not None
    app = FastAPI()

    @app.get("/incidents/{incident_id}")
    def incident(incident_id: str) -> dict[str, str]:
        return {"id": incident_id}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    instrument_app(app, telemetry)
    with TestClient(app) as client:
        assert client.get("/incidents/INC-7").json() == {"id": "INC-7"}
        assert client.get("/healthz").status_code == 200
    telemetry.shutdown()
    telemetry.shutdown()  # a second stop (lifespan, then exit) is harmless

    assert {request.path for request in collector.received} == {"/v1/traces", "/v1/metrics"}
    assert all(request.headers["authorization"] == TOKEN for request in collector.received)
    spans = collector.spans()
    assert [span.name for _, span in spans] == ["GET /incidents/{incident_id}"]
    resource, span = spans[0]
    assert span.kind == Span.SPAN_KIND_SERVER
    assert resource["service.name"] == "revleak-api-eu"
    assert attributes(span.attributes)["http.route"] == "/incidents/{incident_id}"
    assert any(metric.name.startswith("http.server.") for _, metric in collector.metrics())


def test_telemetry_observer_forwards_and_exports_counts(collector: Collector) -> None:
    settings = SelfTelemetrySettings(enabled=True, endpoint=collector.url, export_interval_s=60)
    telemetry = start_self_telemetry(settings, FLOW_SERVICE_NAME)
    assert telemetry is not None
    registry = CollectorRegistry()
    observer = TelemetryObserver(PrometheusObserver(registry), telemetry)

    observer.events("crm", "accepted", 5)
    observer.events("crm", "late", 1)
    observer.dead_letter("crm", "late")
    observer.sli_events("lead_response", good=3, bad=1, good_usd=0.0, bad_usd=20000.0)
    observer.sli_events("lead_response", good=1, bad=0, good_usd=0.0, bad_usd=0.0)
    observer.watermark_lag("crm", 0, 1500)
    observer.watermark_lag("crm", 0, 900)
    observer.alert_corrections(2)
    telemetry.shutdown()

    def prometheus(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert prometheus("revleak_events_total", source="crm", outcome="accepted") == 5
    assert prometheus("revleak_late_events_total", source="crm") == 1
    assert prometheus("revleak_sli_events_total", slo="lead_response", outcome="good") == 4
    assert prometheus("revleak_alert_corrections_total") == 2

    metrics = collector.metrics()
    assert {resource["service.name"] for resource, _ in metrics} == {FLOW_SERVICE_NAME}
    assert points(metrics, "revleak.events") == {
        frozenset({("source", "crm"), ("outcome", "accepted")}): 5,
        frozenset({("source", "crm"), ("outcome", "late")}): 1,
    }
    assert points(metrics, "revleak.sli_events") == {
        frozenset({("slo", "lead_response"), ("outcome", "good")}): 4,
        frozenset({("slo", "lead_response"), ("outcome", "bad")}): 1,
    }
    assert points(metrics, "revleak.sli_weight")[
        frozenset({("slo", "lead_response"), ("outcome", "bad")})
    ] == pytest.approx(20000.0)
    assert points(metrics, "revleak.dead_letters") == {
        frozenset({("source", "crm"), ("reason", "late")}): 1
    }
    assert points(metrics, "revleak.watermark_lag") == {
        frozenset({("source", "crm"), ("partition", "0")}): 900
    }
    assert points(metrics, "revleak.alert_corrections") == {frozenset(): 2}
