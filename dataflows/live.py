"""Live mode: the CRM flow over a Kafka topic, for as long as it runs.

Changes come from ``crm.changes``; the alert log goes to ``revleak.alerts``,
dead letters to ``revleak.dlq``, pages to Alertmanager, the blast radius and the
incident to Redis, and metrics to ``/metrics``. With a recovery folder the
stages are snapshotted every ``snapshot_interval_s`` (Bytewax's epoch), and a
restarted flow resumes from the last snapshot.

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
from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, LIVE, PAGES, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.kafka_source import KafkaChangeSource
from revleak.dataflows.live_sinks import (
    AlertmanagerPages,
    KafkaAlertLog,
    KafkaDeadLetters,
    RedisLive,
)
from revleak.dataflows.sinks import OutputSink, Target
from revleak.settings import LiveSettings
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog

logger = logging.getLogger(__name__)

# A stopping flow delivers pending pages for this long (what it cannot deliver is
# delivered by the next start, which re-sends every known page).
STOP_TIMEOUT_S = 5.0


def bundled_slos() -> Path:
    return Path(str(resources.files("revleak.slos") / "crm.yaml"))


def live_flow(
    settings: LiveSettings, observer: PrometheusObserver | None = None
) -> tuple[Dataflow, SloCatalog]:
    catalog = load_catalog(settings.slos or bundled_slos())
    decoder = decoder_for(
        Format(settings.input_format), [load_mapping(path) for path in settings.mappings]
    )
    brokers = settings.brokers
    if settings.create_topics:
        kafka.ensure_topics(
            brokers, {settings.changes_topic: 1, settings.alerts_topic: 1, settings.dlq_topic: 1}
        )
    paging = settings.alertmanager_url is not None
    config = FlowConfig(
        catalog=catalog,
        partitions=kafka.topic_partitions(brokers, settings.changes_topic),
        shards=settings.shards,
        allowed_lateness_ms=settings.allowed_lateness_ms,
        paging=paging,
        early_pages=paging and settings.early_pages,
        live_view=settings.redis_url is not None,
    )
    source = KafkaChangeSource(
        brokers,
        settings.changes_topic,
        decoder=decoder,
        tail=True,
        idle_timeout_s=settings.idle_timeout_s,
        batch_size=settings.batch_size,
    )
    targets: dict[str, Target | None] = {
        ALERTS: KafkaAlertLog(brokers, settings.alerts_topic),
        DEAD_LETTERS: KafkaDeadLetters(brokers, settings.dlq_topic, settings.changes_topic),
        PAGES: None,
        LIVE: None,
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
        targets[LIVE] = RedisLive(settings.redis_url, settings.redis_prefix)
    flow = build_crm_flow(
        config,
        source,
        OutputSink(targets),
        observer,
        durable=settings.recovery_dir is not None,
    )
    return flow, catalog


def run_live(
    settings: LiveSettings,
    *,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> None:
    """Run until stopped (Ctrl-C or SIGTERM)."""
    registry = CollectorRegistry()
    catalog = load_catalog(settings.slos or bundled_slos())
    observer = PrometheusObserver(registry, slos=catalog.names, sources=["crm"])
    if settings.metrics_port is not None:
        port = settings.metrics_port + (process_id or 0) if settings.metrics_port else 0
        start_http_server(port, addr=settings.metrics_host, registry=registry)
    flow, _ = live_flow(settings, observer)
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=settings.workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
        recovery_config=recovery_config(settings, processes=len(addresses or [None])),
    )


def recovery_config(settings: LiveSettings, *, processes: int) -> Any:
    """The recovery database, created on first use with one partition per worker."""
    folder = settings.recovery_dir
    if folder is None:
        return None
    if not folder.exists() or not any(folder.glob("*.sqlite3")):
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
