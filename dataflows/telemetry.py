"""The telemetry SLO dataflow (docs/semantics.md §2, telemetry) on Bytewax.

It is the CRM flow's graph (:mod:`revleak.dataflows.crm`) over spans and metric points:
the shards hold traces and metric series and make the SLI events, the SLO, incident and
pager stages are the same code, and the analysis stage explains each page::

    input ─> sequence[partition] ─> records[shard] ─> slos[otel SLO] ─> incident ─> pager
                                        └─spans, points─> analysis <─transitions─┘
                                                             └─> root causes (and the pager)

Live mode is ``revleak run telemetry`` (:mod:`revleak.dataflows.live`). Files of OTLP/JSON
lines (what the Collector's file exporter writes: traces and metrics, one message a line)
replay with Bytewax's runner, from any folder but the repository root::

    python -m bytewax.run "revleak.dataflows.telemetry:replay_flow('slos/telemetry.yaml', \\
        'otlp.jsonl', alerts_out='alerts.jsonl', root_causes_out='root-causes.jsonl')"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from revleak.connectors.otlp import decode_json_line, decode_metrics, decode_spans
from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, ROOT_CAUSES, DecodedBatch, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.kafka_source import TopicInput
from revleak.dataflows.sinks import json_lines_sink
from revleak.dataflows.sources import ChangeLogSource
from revleak.observe import Observer
from revleak.slo.loader import load_catalog

SPANS = "otlp_spans"
METRICS = "otlp_metrics"
# Event times one batch of spans may span, in any order (a Collector exports a few seconds
# of them at once): the early lane, which pages on arrival, waits that long.
BATCH_SPREAD_MS = 15_000


def build_telemetry_flow(
    config: FlowConfig,
    source: Source[DecodedBatch],
    sink: Sink[tuple[str, Any]],
    observer: Observer | None = None,
    *,
    durable: bool = False,
) -> Dataflow:
    """The flow; ``config``'s catalog must hold telemetry SLOs."""
    if not config.reads_telemetry:
        raise ValueError("a telemetry flow needs a catalog of telemetry SLOs (otel.*)")
    return build_crm_flow(config, source, sink, observer, durable=durable, name="revleak_telemetry")


def otlp_topics(spans_topic: str, metrics_topic: str) -> list[TopicInput]:
    """The Kafka topics of spans and of metric points, each with its decoder."""
    return [
        TopicInput(spans_topic, decode_spans, SPANS),
        TopicInput(metrics_topic, decode_metrics, METRICS),
    ]


def replay_flow(
    slos: str,
    *otlp_files: str,
    alerts_out: str = "alerts.jsonl",
    root_causes_out: str = "root-causes.jsonl",
    dlq_out: str | None = None,
    shards: int = 8,
) -> Dataflow:
    """A replay of OTLP/JSON-lines files (one partition each) for ``python -m bytewax.run``."""
    paths = [Path(path) for path in otlp_files]
    config = FlowConfig(
        catalog=load_catalog(slos), partitions=len(paths), shards=shards, source=SPANS
    )
    sink = json_lines_sink(
        {ALERTS: alerts_out, ROOT_CAUSES: root_causes_out, DEAD_LETTERS: dlq_out}
    )
    source = ChangeLogSource(paths, source=SPANS, decoder=decode_json_line)
    return build_telemetry_flow(config, source, sink)
