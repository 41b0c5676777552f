"""revleak's own traces and metrics, sent over OTLP/HTTP with the OpenTelemetry SDK.

Off unless ``REVLEAK_SELF_TELEMETRY_ENABLED=true``. The providers made here are never
installed as OpenTelemetry's global ones: the API and the flows hand them to what they
instrument, so two apps (or two tests) in one process never share or leak telemetry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version
from urllib.parse import urlsplit

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from revleak import conventions as names
from revleak.observe import Observer
from revleak.slo.evaluator import SloSnapshot
from revleak.slo.incident import IncidentSnapshot

API_SERVICE_NAME = "revleak-api"
FLOW_SERVICE_NAME = "revleak-flow"

# Probes and scrapes would drown the requests worth tracing. "metrics" also matches the
# OTLP receiver's /v1/metrics and "v1/traces" its span path: what other services send
# there is their telemetry, and tracing it would make revleak's own exports, pointed at
# itself, produce a span for every export.
EXCLUDED_URLS = "healthz,readyz,metrics,v1/traces"

TRACES_PATH = "v1/traces"
METRICS_PATH = "v1/metrics"
PARTITION = "partition"


class SelfTelemetrySettings(BaseSettings):
    """``REVLEAK_SELF_TELEMETRY_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="REVLEAK_SELF_TELEMETRY_", extra="ignore")

    enabled: bool = False
    endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL (http://127.0.0.1:4318); /v1/traces and /v1/metrics "
        "are appended. Unset: the standard OTEL_EXPORTER_OTLP_* variables decide.",
    )
    # Often carries a bearer token: kept out of the settings' repr, hence out of logs.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    service_name: str | None = Field(
        default=None, min_length=1, description="Unset: revleak-api or revleak-flow"
    )
    export_interval_s: float = Field(default=10.0, gt=0)
    # Bounds how long a stopping process waits for an unreachable endpoint, per signal.
    export_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("endpoint must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("endpoint is a base URL: no query or fragment")
        return endpoint


@dataclass
class SelfTelemetry:
    """Providers, tracer and meter of one service; ``shutdown`` exports what is pending."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    tracer: Tracer
    meter: Meter
    _stopped: bool = field(default=False, init=False)

    def shutdown(self) -> None:
        """Flush pending spans and a last collection of metrics; later calls do nothing."""
        if self._stopped:
            return
        self._stopped = True
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def start_self_telemetry(
    settings: SelfTelemetrySettings, service_name: str = API_SERVICE_NAME
) -> SelfTelemetry | None:
    """Providers exporting to ``settings.endpoint``, or None when disabled.

    ``service_name`` is the caller's default; ``settings.service_name`` overrides it.
    """
    if not settings.enabled:
        return None
    release = version("revleak")
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and a per-process service.instance.id,
    # which keeps the cumulative counters of a flow's processes apart.
    resource = Resource.create(
        {SERVICE_NAME: settings.service_name or service_name, SERVICE_VERSION: release}
    )
    interval_ms = settings.export_interval_s * 1000
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=_signal_url(settings.endpoint, TRACES_PATH),
                headers=settings.headers,
                timeout=settings.export_timeout_s,
            ),
            schedule_delay_millis=interval_ms,
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(
            endpoint=_signal_url(settings.endpoint, METRICS_PATH),
            headers=settings.headers,
            timeout=settings.export_timeout_s,
        ),
        export_interval_millis=interval_ms,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return SelfTelemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer("revleak", release),
        meter=meter_provider.get_meter("revleak", release),
    )


def _signal_url(base: str | None, path: str) -> str | None:
    # None lets the exporter read OTEL_EXPORTER_OTLP_{TRACES,METRICS,}_ENDPOINT itself.
    return None if base is None else f"{base.rstrip('/')}/{path}"


def instrument_app(app: FastAPI, telemetry: SelfTelemetry) -> None:
    """A SERVER span and the HTTP server metrics for every request but probes and scrapes."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        excluded_urls=EXCLUDED_URLS,
        # The per-message ASGI send/receive spans say nothing the SERVER span does not.
        exclude_spans=["receive", "send"],
    )


class TelemetryObserver:
    """An :class:`~revleak.observe.Observer` that forwards every call to ``inner`` and
    counts input events, SLI events and dead letters as OpenTelemetry metrics.

    Snapshots (burn rates, budgets, the incident) are only forwarded: they are state,
    which ``inner`` (the Prometheus observer) already serves at scrape time.
    """

    def __init__(self, inner: Observer, telemetry: SelfTelemetry) -> None:
        self._inner = inner
        meter = telemetry.meter
        self._events = meter.create_counter(
            "revleak.events", unit="{event}", description="Input events by source and outcome"
        )
        self._sli_events = meter.create_counter(
            "revleak.sli_events", unit="{event}", description="SLI events by SLO and outcome"
        )
        self._sli_weight = meter.create_counter(
            "revleak.sli_weight", unit="USD", description="Dollar weight of SLI events"
        )
        self._dead_letters = meter.create_counter(
            "revleak.dead_letters", unit="{event}", description="Dead letters by source, reason"
        )
        self._watermark_lag = meter.create_gauge(
            "revleak.watermark_lag",
            unit="ms",
            description="Newest event time minus the watermark, per input partition",
        )
        self._alert_corrections = meter.create_counter(
            "revleak.alert_corrections",
            unit="{page}",
            description="Pages changed because the final alert log disagreed with early ones",
        )

    def events(self, source: str, outcome: str, count: int) -> None:
        self._inner.events(source, outcome, count)
        self._events.add(count, {names.SOURCE: source, names.OUTCOME: outcome})

    def dead_letter(self, source: str, reason: str) -> None:
        self._inner.dead_letter(source, reason)
        self._dead_letters.add(1, {names.SOURCE: source, names.REASON: reason})

    def watermark_lag(self, source: str, partition: int, lag_ms: int) -> None:
        self._inner.watermark_lag(source, partition, lag_ms)
        self._watermark_lag.set(lag_ms, {names.SOURCE: source, PARTITION: partition})

    def sli_events(self, slo: str, good: int, bad: int, good_usd: float, bad_usd: float) -> None:
        self._inner.sli_events(slo, good, bad, good_usd, bad_usd)
        for outcome, count, usd in ((names.GOOD, good, good_usd), (names.BAD, bad, bad_usd)):
            attributes = {names.SLO: slo, names.OUTCOME: outcome}
            self._sli_events.add(count, attributes)
            self._sli_weight.add(usd, attributes)

    def record_state(self, shard: str, open_records: int, closed_records: int) -> None:
        self._inner.record_state(shard, open_records, closed_records)

    def slo_snapshot(self, snapshot: SloSnapshot) -> None:
        self._inner.slo_snapshot(snapshot)

    def incident_snapshot(self, snapshot: IncidentSnapshot) -> None:
        self._inner.incident_snapshot(snapshot)

    def alert_corrections(self, count: int) -> None:
        self._inner.alert_corrections(count)
        self._alert_corrections.add(count)

    def requests(self, service: str, outcome: str, count: int) -> None:
        self._inner.requests(service, outcome, count)

    def root_cause(self, slo: str, cause: str, service: str) -> None:
        self._inner.root_cause(slo, cause, service)
