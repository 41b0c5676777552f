"""Live mode: the CRM or telemetry flow over Kafka topics, for as long as it runs.

Changes come from ``crm.changes`` (spans and metric points from ``otlp_spans`` and
``otlp_metrics``, and the root causes of their pages go to ``revleak.root_causes``); the
alert log goes to ``revleak.alerts``, dead letters to ``revleak.dlq``, pages to
Alertmanager, the blast radius and the incident to Redis, and metrics to ``/metrics``.
With a recovery folder the stages are snapshotted every ``snapshot_interval_s``
(Bytewax's epoch), and a restarted flow resumes from the last snapshot.

Several processes form one flow with ``process_id``/``addresses`` (Bytewax's
``-i``/``-a``); each process serves its own metrics port (the configured one
plus its process id).
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from prometheus_client import CollectorRegistry, start_http_server

from revleak.connectors import kafka
from revleak.connectors.formats import Format, decoder_for
from revleak.connectors.mapping import load_mapping
from revleak.connectors.metrics import PrometheusObserver
from revleak.connectors.self_telemetry import (
    FLOW_SERVICE_NAME,
    SelfTelemetry,
    SelfTelemetrySettings,
    TelemetryObserver,
    start_self_telemetry,
)
from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, LIVE, PAGES, ROOT_CAUSES, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.kafka_source import KafkaTopicsSource, TopicInput
from revleak.dataflows.live_sinks import (
    AlertmanagerPages,
    KafkaAlertLog,
    KafkaDeadLetters,
    RedisLive,
    RootCauseLog,
)
from revleak.dataflows.sinks import OutputSink, Target
from revleak.dataflows.telemetry import BATCH_SPREAD_MS, otlp_topics
from revleak.observe import NullObserver, Observer
from revleak.settings import LiveSettings
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog

logger = logging.getLogger(__name__)

# A stopping flow delivers pending pages for this long (what it cannot deliver is
# delivered by the next start, which re-sends every known page).
STOP_TIMEOUT_S = 5.0


def bundled_slos(*, telemetry: bool = False) -> Path:
    name = "telemetry.yaml" if telemetry else "crm.yaml"
    return Path(str(resources.files("revleak.slos") / name))


def live_flow(
    settings: LiveSettings,
    observer: PrometheusObserver | None = None,
    *,
    telemetry: bool = False,
    self_telemetry: SelfTelemetry | None = None,
) -> tuple[Dataflow, SloCatalog]:
    """The CRM flow over ``changes_topic``, or with ``telemetry`` the telemetry flow over
    ``spans_topic`` and ``metrics_topic``."""
    catalog = load_catalog(settings.slos or bundled_slos(telemetry=telemetry))
    brokers = settings.brokers
    inputs = _telemetry_inputs(settings) if telemetry else _crm_inputs(settings)
    alerts_topic = settings.telemetry_alerts_topic if telemetry else settings.alerts_topic
    redis_prefix = settings.telemetry_redis_prefix if telemetry else settings.redis_prefix
    if settings.create_topics:
        kafka.ensure_topics(
            brokers,
            {
                **{topic.topic: 1 for topic in inputs},
                alerts_topic: 1,
                settings.dlq_topic: 1,
                **({settings.root_causes_topic: 1} if telemetry else {}),
            },
        )
    paging = settings.alertmanager_url is not None
    source = KafkaTopicsSource(
        brokers,
        inputs,
        tail=True,
        idle_timeout_s=settings.idle_timeout_s,
        batch_size=settings.batch_size,
    )
    sources = source.sources()
    config = FlowConfig(
        catalog=catalog,
        partitions=len(sources),
        partition_sources=sources,
        shards=settings.shards,
        allowed_lateness_ms=settings.allowed_lateness_ms,
        early_lateness_ms=BATCH_SPREAD_MS if telemetry else 0,
        source=inputs[0].source,
        paging=paging,
        early_pages=paging and settings.early_pages,
        live_view=settings.redis_url is not None,
    )
    targets: dict[str, Target | None] = {
        ALERTS: KafkaAlertLog(brokers, alerts_topic, restarted=has_recovery_state(settings)),
        DEAD_LETTERS: KafkaDeadLetters(brokers, settings.dlq_topic, source.layout()),
        PAGES: None,
        LIVE: None,
        ROOT_CAUSES: (
            RootCauseLog(brokers, settings.root_causes_topic, settings.redis_url, redis_prefix)
            if telemetry
            else None
        ),
    }
    if settings.alertmanager_url is not None:
        targets[PAGES] = AlertmanagerPages(
            settings.alertmanager_url,
            resend_interval_s=settings.resend_interval_s,
            runbook_base_url=settings.runbook_base_url,
            fixpack_base_url=settings.fixpack_base_url,
            close_timeout_s=STOP_TIMEOUT_S,
            catalog=catalog,
            journal=(
                settings.recovery_dir / "pages-accepted.json" if settings.recovery_dir else None
            ),
            on_delivered=observer.pages_delivered if observer is not None else None,
        )
    if settings.redis_url is not None:
        targets[LIVE] = RedisLive(settings.redis_url, redis_prefix)
    flow_observer: Observer | None = observer
    if self_telemetry is not None:
        flow_observer = TelemetryObserver(observer or NullObserver(), self_telemetry)
    flow = build_crm_flow(
        config,
        source,
        OutputSink(targets),
        flow_observer,
        durable=settings.recovery_dir is not None,
        name="revleak_telemetry" if telemetry else "revleak_crm",
    )
    return flow, catalog


def _crm_inputs(settings: LiveSettings) -> list[TopicInput]:
    decoder = decoder_for(
        Format(settings.input_format), [load_mapping(path) for path in settings.mappings]
    )
    return [TopicInput(settings.changes_topic, decoder, "crm")]


def _telemetry_inputs(settings: LiveSettings) -> list[TopicInput]:
    return otlp_topics(settings.spans_topic, settings.metrics_topic)


def run_live(
    settings: LiveSettings,
    *,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    telemetry: bool = False,
) -> None:
    """Run until stopped (Ctrl-C or SIGTERM)."""
    registry = CollectorRegistry()
    catalog = load_catalog(settings.slos or bundled_slos(telemetry=telemetry))
    sources = ["otlp_spans", "otlp_metrics"] if telemetry else ["crm"]
    observer = PrometheusObserver(registry, slos=catalog.names, sources=sources)
    if settings.metrics_port is not None:
        port = settings.metrics_port + (process_id or 0) if settings.metrics_port else 0
        start_http_server(port, addr=settings.metrics_host, registry=registry)
    self_telemetry = start_self_telemetry(SelfTelemetrySettings(), FLOW_SERVICE_NAME)
    try:
        flow, _ = live_flow(settings, observer, telemetry=telemetry, self_telemetry=self_telemetry)
        cli_main(  # type: ignore[no-untyped-call]
            flow,
            workers_per_process=settings.workers,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
            recovery_config=recovery_config(settings, processes=len(addresses or [None])),
        )
    finally:
        if self_telemetry is not None:
            self_telemetry.shutdown()


def has_recovery_state(settings: LiveSettings) -> bool:
    """Whether the flow resumes the recovery folder of an earlier run."""
    folder = settings.recovery_dir
    return folder is not None and folder.exists() and any(folder.glob("*.sqlite3"))


def recovery_config(settings: LiveSettings, *, processes: int) -> Any:
    """The recovery database, created on first use with one partition per worker."""
    folder = settings.recovery_dir
    if folder is None:
        return None
    if not has_recovery_state(settings):
        # Built aside and renamed into place: a crash while creating it must not leave a
        # half-made database that no restart can resume from.
        building = folder.with_name(f"{folder.name}.{os.getpid()}.building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        init_db_dir(building, settings.workers * processes)  # type: ignore[no-untyped-call]
        if folder.exists():
            for leftover in folder.iterdir():
                leftover.unlink()
            folder.rmdir()
        os.replace(building, folder)
    return RecoveryConfig(str(folder))  # type: ignore[no-untyped-call]
