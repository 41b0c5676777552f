"""The API's own Prometheus metrics (``/metrics``), on a registry of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

NAMESPACE = "revleak_api"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Histogram(
            "request_duration_seconds",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            namespace=NAMESPACE,
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.webhooks = Counter(
            "webhook_notifications",
            "Alertmanager notifications received, by outcome",
            ["outcome"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.changes = Counter(
            "changes",
            "Incident and fix-pack run changes announced, by type and change",
            ["type", "change"],
            namespace=NAMESPACE,
            registry=registry,
        )

    def announced(self, event: Mapping[str, Any]) -> None:
        self.changes.labels(str(event.get("type", "")), str(event.get("change", "run"))).inc()
