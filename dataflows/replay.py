"""Replay mode: run the CRM flow over files, or a Kafka topic read from given
offsets to its end, and report what happened."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bytewax.run import cli_main
from prometheus_client import CollectorRegistry

from revleak import conventions as names
from revleak.connectors.formats import Format, decoder_for
from revleak.connectors.kafka import topic_partitions
from revleak.connectors.mapping import SourceMapping
from revleak.connectors.metrics import PrometheusObserver
from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, PAGES, TIMELINE, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.kafka_source import KafkaChangeSource
from revleak.dataflows.live_sinks import AlertmanagerPages
from revleak.dataflows.sinks import JsonLines, OutputSink
from revleak.dataflows.sources import ChangeLogSource, FunnelCsvSource
from revleak.slo.catalog import SloCatalog
from revleak.slo.evaluator import SloSnapshot
from revleak.slo.incident import IncidentSnapshot

CSV = "csv"
INPUT_FORMATS = (*(fmt.value for fmt in Format), CSV)


@dataclass(frozen=True, slots=True)
class KafkaInput:
    """A topic read from ``start_offsets`` (partition → offset; default: the beginning)."""

    brokers: str
    topic: str
    start_offsets: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    accepted: int
    late: int
    dead_letters: int
    open_records: int
    closed_records: int
    slos: dict[str, SloSnapshot]
    incident: IncidentSnapshot | None
    timeline: list[dict[str, Any]]
    seconds: float

    @property
    def events(self) -> int:
        return self.accepted + self.late + self.dead_letters


def replay(
    *,
    catalog: SloCatalog,
    events: Sequence[Path] = (),
    kafka: KafkaInput | None = None,
    input_format: str = Format.GENERIC,
    mappings: Sequence[SourceMapping] = (),
    alerts_out: Path,
    metrics_out: Path | None = None,
    dlq_out: Path | None = None,
    timeline_out: Path | None = None,
    workers: int = 1,
    shards: int = 8,
    batch_size: int = 2000,
    allowed_lateness_ms: int = 60_000,
    alertmanager: AlertmanagerPages | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Run the flow over ``events`` or ``kafka`` to the end (the watermark reaches +∞).

    ``input_format`` is ``csv`` (one funnel snapshot) or a message format of
    :class:`~revleak.connectors.formats.Format`, one message a line (or a Kafka
    message); ``mappings`` replace the bundled field mappings of Salesforce and
    HubSpot. With ``alertmanager``, the alert log is also paged as it is written.
    """
    if (kafka is None) == (not events):
        raise ValueError("replay either event files or a Kafka topic")
    if input_format == CSV and (kafka is not None or len(events) != 1):
        raise ValueError("a CSV replay takes exactly one funnel file")
    source: Any
    if kafka is not None:
        partitions = topic_partitions(kafka.brokers, kafka.topic)
        source = KafkaChangeSource(
            kafka.brokers,
            kafka.topic,
            decoder=decoder_for(Format(input_format), mappings),
            tail=False,
            start_offsets=kafka.start_offsets,
            batch_size=batch_size,
            progress=progress,
        )
    elif input_format == CSV:
        partitions = 1
        source = FunnelCsvSource(events[0], batch_size=batch_size, progress=progress)
    else:
        partitions = len(events)
        source = ChangeLogSource(
            events,
            decoder=decoder_for(Format(input_format), mappings),
            batch_size=batch_size,
            progress=progress,
        )
    config = FlowConfig(
        catalog=catalog,
        partitions=partitions,
        shards=shards,
        allowed_lateness_ms=allowed_lateness_ms,
        paging=alertmanager is not None,
    )
    observer = PrometheusObserver(CollectorRegistry(), slos=catalog.names, sources=[config.source])
    with tempfile.TemporaryDirectory(prefix="revleak-replay-") as scratch:
        timeline_path = timeline_out or Path(scratch) / "timeline.jsonl"
        sink = OutputSink(
            {
                ALERTS: JsonLines(alerts_out),
                TIMELINE: JsonLines(timeline_path),
                DEAD_LETTERS: JsonLines(dlq_out) if dlq_out else None,
                PAGES: alertmanager,
            }
        )
        flow = build_crm_flow(config, source, sink, observer)
        started = time.perf_counter()
        _run(flow, workers)
        seconds = time.perf_counter() - started
        timeline = _read_json_lines(timeline_path)
    if metrics_out is not None:
        observer.write_exposition(metrics_out)
    slos, incident = observer.snapshots()
    open_records, closed_records = observer.record_counts()
    registry = observer.registry

    def events_with(outcome: str) -> int:
        value = registry.get_sample_value(
            f"{names.EVENTS}_total", {names.SOURCE: config.source, names.OUTCOME: outcome}
        )
        return int(value or 0)

    return ReplayReport(
        accepted=events_with(names.ACCEPTED),
        late=events_with(names.LATE),
        dead_letters=events_with(names.DEAD_LETTER),
        open_records=open_records,
        closed_records=closed_records,
        slos=slos,
        incident=incident,
        timeline=timeline,
        seconds=seconds,
    )


def _run(flow: Any, workers: int) -> None:
    """Run in a worker thread so the caller's thread stays free (for a progress bar)."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            cli_main(flow, workers_per_process=workers)  # type: ignore[no-untyped-call]
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, name="revleak-replay", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
