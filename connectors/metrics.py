"""Prometheus metrics of a flow: counters as things happen, gauges from snapshots.

Gauges that mirror state (burn rate per window, budget remaining, paging
state) are not set from many places: the stages hand their latest snapshot to
:class:`PrometheusObserver`, and a collector reads it at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from revleak import conventions as names
from revleak.deadletter import REASONS
from revleak.paging import Page
from revleak.slo.catalog import PICOS_PER_USD
from revleak.slo.evaluator import SloSnapshot
from revleak.slo.incident import IncidentSnapshot
from revleak.timefmt import format_duration


class PrometheusObserver:
    """An :class:`~revleak.observe.Observer` that keeps Prometheus metrics in ``registry``."""

    def __init__(
        self, registry: CollectorRegistry, *, slos: Sequence[str] = (), sources: Sequence[str] = ()
    ) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._slos: dict[str, SloSnapshot] = {}
        self._incident: IncidentSnapshot | None = None
        self._lags: dict[tuple[str, int], int] = {}
        self._records: dict[str, tuple[int, int]] = {}
        self._sli_events = Counter(
            names.SLI_EVENTS,
            "SLI events by SLO and outcome",
            [names.SLO, names.OUTCOME],
            registry=registry,
        )
        self._sli_weight = Counter(
            names.SLI_WEIGHT_USD,
            "Dollar weight of SLI events by SLO and outcome",
            [names.SLO, names.OUTCOME],
            registry=registry,
        )
        self._events = Counter(
            names.EVENTS,
            "Input events by source and outcome (accepted, late, dead_letter)",
            [names.SOURCE, names.OUTCOME],
            registry=registry,
        )
        self._late = Counter(
            names.LATE_EVENTS,
            "Events older than the watermark, dead-lettered",
            [names.SOURCE],
            registry=registry,
        )
        self._dead = Counter(
            names.DEAD_LETTERS,
            "Dead-lettered input by source and reason",
            [names.SOURCE, names.REASON],
            registry=registry,
        )
        self._corrections = Counter(
            names.ALERT_CORRECTIONS,
            "Pages changed because the final alert log disagreed with the early evaluation",
            registry=registry,
        )
        self._event_to_page = Histogram(
            names.EVENT_TO_PAGE,
            "Wall time Alertmanager accepted a firing page minus the event time it fired at",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self._requests = Counter(
            names.REQUESTS,
            "Telemetry requests (server, consumer and root spans) by service and outcome "
            "(ok, error, slow: over its latency threshold)",
            [names.SERVICE, names.OUTCOME],
            registry=registry,
        )
        self._root_causes = Counter(
            names.ROOT_CAUSES,
            "Root-cause analyses of telemetry pages by SLO and top cause",
            [names.SLO, names.CAUSE, names.SERVICE],
            registry=registry,
        )
        registry.register(_SnapshotCollector(self))
        # Known series exist from the start (at 0) and in a fixed order, whichever
        # worker thread reports first.
        for slo in slos:
            for outcome in (names.GOOD, names.BAD):
                self._sli_events.labels(slo, outcome)
                self._sli_weight.labels(slo, outcome)
        for source in sources:
            for outcome in names.EVENT_OUTCOMES:
                self._events.labels(source, outcome)
            self._late.labels(source)
            for reason in REASONS:
                self._dead.labels(source, reason)

    # Observer

    def events(self, source: str, outcome: str, count: int) -> None:
        self._events.labels(source, outcome).inc(count)
        if outcome == names.LATE:
            self._late.labels(source).inc(count)

    def dead_letter(self, source: str, reason: str) -> None:
        self._dead.labels(source, reason).inc()

    def watermark_lag(self, source: str, partition: int, lag_ms: int) -> None:
        with self._lock:
            self._lags[(source, partition)] = lag_ms

    def sli_events(self, slo: str, good: int, bad: int, good_usd: float, bad_usd: float) -> None:
        self._sli_events.labels(slo, names.GOOD).inc(good)
        self._sli_events.labels(slo, names.BAD).inc(bad)
        self._sli_weight.labels(slo, names.GOOD).inc(good_usd)
        self._sli_weight.labels(slo, names.BAD).inc(bad_usd)

    def record_state(self, shard: str, open_records: int, closed_records: int) -> None:
        with self._lock:
            self._records[shard] = (open_records, closed_records)

    def slo_snapshot(self, snapshot: SloSnapshot) -> None:
        with self._lock:
            self._slos[snapshot.slo] = snapshot

    def alert_corrections(self, count: int) -> None:
        self._corrections.inc(count)

    def requests(self, service: str, outcome: str, count: int) -> None:
        self._requests.labels(service, outcome).inc(count)

    def root_cause(self, slo: str, cause: str, service: str) -> None:
        self._root_causes.labels(slo, cause, service).inc()

    def pages_delivered(self, pages: Sequence[Page], wall_time_s: float) -> None:
        """Called by the Alertmanager sender; meaningful when event time is wall time."""
        for page in pages:
            if page.firing:
                self._event_to_page.observe(max(0.0, wall_time_s - page.starts_at / 1000))

    def incident_snapshot(self, snapshot: IncidentSnapshot) -> None:
        with self._lock:
            self._incident = snapshot

    # Reading back

    def snapshots(self) -> tuple[dict[str, SloSnapshot], IncidentSnapshot | None]:
        with self._lock:
            return dict(self._slos), self._incident

    def lags(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._lags)

    def record_counts(self) -> tuple[int, int]:
        """Open and closed records held, over every record shard of this process."""
        with self._lock:
            counts = list(self._records.values())
        return sum(open_ for open_, _ in counts), sum(closed for _, closed in counts)

    def write_exposition(self, path: str | Path) -> None:
        Path(path).write_bytes(generate_latest(self.registry))


class _SnapshotCollector(Collector):
    def __init__(self, observer: PrometheusObserver) -> None:
        self._observer = observer

    def collect(self) -> Iterator[Metric]:
        slos, incident = self._observer.snapshots()
        burn = GaugeMetricFamily(
            names.BURN_RATE,
            "Burn rate over a window, at the watermark",
            labels=[names.SLO, names.KIND, names.WINDOW],
        )
        remaining = GaugeMetricFamily(
            names.ERROR_BUDGET_REMAINING,
            "Error budget left over the SLO period",
            labels=[names.SLO, names.KIND],
        )
        at_risk = GaugeMetricFamily(
            names.REVENUE_AT_RISK, "Dollars of bad events over the SLO period", labels=[names.SLO]
        )
        firing = GaugeMetricFamily(
            names.ALERTS_FIRING, "Burn-rate rules firing", labels=[names.SLO, names.SEVERITY]
        )
        for name in sorted(slos):
            snapshot = slos[name]
            for (kind, window_ms), value in sorted(snapshot.burn_rates.items()):
                burn.add_metric([name, kind.value, format_duration(window_ms)], value)
            for kind, value in sorted(snapshot.budget_remaining.items()):
                remaining.add_metric([name, kind.value], value)
            at_risk.add_metric([name], snapshot.at_risk_picos / PICOS_PER_USD)
            for severity, count in sorted(snapshot.firing.items()):
                firing.add_metric([name, severity], count)
        yield from (burn, remaining, at_risk, firing)
        consumption = GaugeMetricFamily(
            names.BUDGET_CONSUMPTION, "Dollars at risk over the monthly revenue budget"
        )
        paging = GaugeMetricFamily(names.PAGING_STATE, "0 OK, 1 WARN, 2 PAGE")
        severity_gauge = GaugeMetricFamily(
            names.INCIDENT_SEVERITY, "Incident severity 1 (worst) to 4; 0 when none"
        )
        if incident is not None:
            consumption.add_metric([], incident.consumption)
            paging.add_metric([], int(incident.paging_state))
            severity_gauge.add_metric([], incident.severity)
        yield from (consumption, paging, severity_gauge)
        lag = GaugeMetricFamily(
            names.WATERMARK_LAG,
            "Newest event time minus the watermark, per source",
            labels=[names.SOURCE],
        )
        worst: dict[str, int] = {}
        for (source, _), value in self._observer.lags().items():
            worst[source] = max(worst.get(source, 0), value)
        for source, value in sorted(worst.items()):
            lag.add_metric([source], value / 1000)
        yield lag
        open_records, closed_records = self._observer.record_counts()
        yield GaugeMetricFamily(
            names.OPEN_RECORDS, "Open CRM records held in state", value=open_records
        )
        yield GaugeMetricFamily(
            names.CLOSED_RECORDS,
            "Closed or deleted records remembered so later updates are ignored",
            value=closed_records,
        )
