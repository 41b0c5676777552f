"""The CRM SLO dataflow (docs/semantics.md §1–§4) on Bytewax.

Each stage of :mod:`revleak.crm.pipeline` is one keyed step; messages carry
watermarks, so deadlines fire in event time and results do not depend on the
number of workers or the batch size::

    input ─> sequence[partition] ─> records[shard] ─┬─> slos[timed SLO] ─┐
                                                    └─> domains[shard] ──┴─> slos[data_quality]
                                                                            └─> incident ─> sink

A telemetry flow's record shards hold traces and metric series; its analysis stage gets
their spans and points and the incident's transitions, and explains each page (root
causes, also fed to the pager)::

    records[shard] ─> analysis <─ incident

With paging on, the incident stage also feeds the pager stage, which decides
what Alertmanager must hold; with early pages, every stage also runs an early
lane (keys ``early:…``) whose incident stage feeds the pager as well.

Run a replay with ``revleak replay``, or with Bytewax's runner (from any folder but
the repository root: the runner puts its folder first on ``sys.path``)::

    python -m bytewax.run "revleak.dataflows.crm:replay_flow('crm.yaml', 'events.jsonl')" -w 2
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from revleak.crm.pipeline import (
    ALERTS,
    ANALYSIS,
    DOMAINS,
    PAGER,
    PAGER_FEED,
    SLO,
    DecodedBatch,
    FlowConfig,
    build_stage,
)
from revleak.dataflows.sinks import json_lines_sink
from revleak.dataflows.sources import ChangeLogSource
from revleak.dataflows.stages import select, stage
from revleak.observe import NullObserver, Observer
from revleak.slo.loader import load_catalog


def build_crm_flow(
    config: FlowConfig,
    source: Source[DecodedBatch],
    sink: Sink[tuple[str, Any]],
    observer: Observer | None = None,
    *,
    durable: bool = False,
    name: str = "revleak_crm",
) -> Dataflow:
    """The flow; ``durable`` when it runs with Bytewax recovery (stages are snapshotted)."""
    watcher = observer or NullObserver()

    def factory(key: str) -> Any:
        return build_stage(config, key, watcher)

    def keyed_stage(step_id: str, up: Any) -> Any:
        return stage(step_id, up, factory, watcher, durable)

    lanes = [config, config.early_lane()] if config.early_pages else [config]

    def address_batch(batch: DecodedBatch) -> list[tuple[str, tuple[str, DecodedBatch]]]:
        return [
            (key, (key, batch)) for key in (lane.input_key(batch.partition) for lane in lanes)
        ]

    flow = Dataflow(name)
    batches = op.input("input", flow, source)
    sequenced = keyed_stage("sequence", op.flat_map("address_input", batches, address_batch))
    records = keyed_stage("records", sequenced.messages)
    domains = keyed_stage("domains", select("to_domains", records.messages, DOMAINS))
    slos = keyed_stage(
        "slos",
        op.merge("slo_inputs", select("to_slos", records.messages, SLO), domains.messages),
    )
    incident = keyed_stage("incident", slos.messages)
    outputs = op.merge("all_outputs", sequenced.outputs, records.outputs, incident.outputs)
    if config.analysis_keys:
        analysis = keyed_stage(
            "analysis",
            op.merge(
                "analysis_inputs",
                select("to_analysis", records.messages, ANALYSIS),
                incident.messages,
            ),
        )
        outputs = op.merge("with_root_causes", outputs, analysis.outputs)
    if config.paging:
        feeds = op.branch("pager_feeds", outputs, _is_pager_feed)
        pager = keyed_stage("pager", op.map("to_pager", feeds.trues, _address_pager))
        outputs = op.merge("with_pages", feeds.falses, pager.outputs)
    op.output("outputs", outputs, sink)
    return flow


def _is_pager_feed(output: tuple[str, Any]) -> bool:
    return output[0] == PAGER_FEED


def _address_pager(output: tuple[str, Any]) -> tuple[str, tuple[str, Any]]:
    return PAGER, (PAGER, output[1])


def replay_flow(
    slos: str, *events: str, alerts_out: str = "alerts.jsonl", shards: int = 8
) -> Dataflow:
    """A replay of JSON-lines files for ``python -m bytewax.run``."""
    paths: Sequence[Path] = [Path(path) for path in events]
    config = FlowConfig(catalog=load_catalog(slos), partitions=len(paths), shards=shards)
    sink = json_lines_sink({ALERTS: alerts_out})
    return build_crm_flow(config, ChangeLogSource(paths), sink)
