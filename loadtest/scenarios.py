"""Load-test scenarios: the messages each one produces, the flow that reads them, and the
alert log the offline replay computes for the same messages.

CRM scenarios lay one incident over a healthy background, both streams of
:mod:`revleak.loadtest.crm_stream` (every lead touched in time, owners, regions and next
steps set, no company domain shared, opportunities closed at their last change). Each
incident burns one SLO:

- ``lead-flood``: a burst of leads nobody touches pages ``lead_response`` 30 minutes later;
- ``stale-pipeline``: a batch of opportunities with no activity after their creation pages
  ``deal_velocity`` 7 days later;
- ``duplicate-storm``: a bulk import whose leads share company domains two or three at a
  time pages ``data_quality``.

Telemetry scenarios are the chaos shop's (:mod:`revleak.loadtest.chaos`): half an hour
healthy, then the fault deployed through its GitOps repository, messages cut as
:mod:`revleak.loadtest.chaos_kafka` writes them. ``scale`` multiplies the records (CRM)
or the user journeys a minute (telemetry).
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import orjson
from bytewax.testing import run_main

from revleak.connectors.messages import Position
from revleak.connectors.otlp import decode_metrics, decode_spans
from revleak.crm.pipeline import ALERTS, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.live import bundled_slos
from revleak.dataflows.replay import replay
from revleak.dataflows.sinks import JsonLines, OutputSink
from revleak.dataflows.sources import MessagesSource
from revleak.loadtest import chaos, crm_stream
from revleak.loadtest.chaos_kafka import by_end_time, encode, trace_payloads
from revleak.loadtest.loadtest_replay import Outgoing, RecordedMessage
from revleak.slo.loader import load_catalog
from revleak.timefmt import DAY_MS, HOUR_MS, MINUTE_MS, format_timestamp, parse_timestamp

FlowKind = Literal["crm", "telemetry"]
SPANS_SOURCE, METRICS_SOURCE = "otlp_spans", "otlp_metrics"

# Healthy CRM traffic: nothing in it burns any SLO.
HEALTHY = crm_stream.Mix(
    no_owner=0, no_region=0, company_domain=0, free_mail=0.5, no_next_step=0, slow_lead=0,
    stalled_opportunity=0, close=1.0, delete=0, owner=0, region=0, next_step=0,
)  # fmt: skip
# Three changes a record: enough updates for every lead's first touch.
BACKGROUND_EVENTS_PER_RECORD = 3
INCIDENT_SPAN_MS = 15 * MINUTE_MS
CHAOS_MINUTES = 60
CHAOS_JOURNEYS_PER_MINUTE = 60
# The telemetry SLO each chaos fault burns.
_CHAOS_SLOS = {
    "oom": "saturation",
    "latency": "latency",
    "errors": "availability",
    "conversion": "conversion",
}


@dataclass(frozen=True, slots=True)
class Topics:
    changes: str = "crm.changes"
    spans: str = "otlp_spans"
    metrics: str = "otlp_metrics"


@dataclass(frozen=True, slots=True)
class Options:
    start_ms: int  # event time of the scenario's first minute
    scale: float = 1.0
    seed: int = 1
    topics: Topics = Topics()


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    flow: FlowKind
    slo: str  # the SLO whose pages the scenario is about
    description: str
    span_ms: int  # event time it covers
    build: Callable[[Options], list[Outgoing]]


# -- CRM ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Incident:
    after_ms: int  # from the scenario's start
    records: int  # at scale 1
    events_per_record: int  # 1: created and never changed again
    mix: crm_stream.Mix
    prefix: str  # of its record ids


@dataclass(frozen=True, slots=True)
class _Shape:
    span_ms: int
    incident: _Incident
    background_records: int = 3_000  # at scale 1
    # The background starts this late: what it creates cannot then breach a deadline as
    # long as its own span, whichever record its generator leaves without a change.
    background_after_ms: int = 0


def _changes(
    prefix: str, start_ms: int, span_ms: int, records: int, events: int, mix: crm_stream.Mix,
    seed: int,
) -> Iterator[tuple[int, bytes]]:  # fmt: skip
    """(event time, change) of a crm_stream stream; ``prefix`` keeps its ids apart."""
    for generated in crm_stream.generate(
        records=records, events=events, days=span_ms / DAY_MS, seed=seed, out_of_order=0,
        start=format_timestamp(start_ms), mix=mix,
    ):  # fmt: skip
        change = orjson.loads(generated)
        if not prefix:
            yield parse_timestamp(change["ts"]), generated
            continue
        change["record_id"] = f"{prefix}-{change['record_id']}"
        change["event_id"] = f"{prefix}-{change['event_id']}"
        yield parse_timestamp(change["ts"]), orjson.dumps(change)


def _crm(shape: _Shape) -> Callable[[Options], list[Outgoing]]:
    def build(options: Options) -> list[Outgoing]:
        incident = shape.incident
        records = max(1, round(shape.background_records * options.scale))
        burst = max(1, round(incident.records * options.scale))
        background = _changes(
            "", options.start_ms + shape.background_after_ms,
            shape.span_ms - shape.background_after_ms, records,
            records * BACKGROUND_EVENTS_PER_RECORD, HEALTHY, options.seed,
        )  # fmt: skip
        burning = _changes(
            incident.prefix, options.start_ms + incident.after_ms, INCIDENT_SPAN_MS, burst,
            burst * incident.events_per_record, incident.mix, options.seed + 1,
        )  # fmt: skip
        merged = heapq.merge(background, burning, key=lambda change: change[0])
        return [
            Outgoing(
                options.topics.changes,
                RecordedMessage(
                    partition=0,
                    offset=offset,
                    timestamp=ts,
                    key=orjson.loads(raw)["record_id"].encode(),
                    value=raw,
                ),
            )
            for offset, (ts, raw) in enumerate(merged)
        ]

    return build


# -- telemetry ----------------------------------------------------------------------------------


def _telemetry_message(topic: str, offset: int, payload: bytes, *, spans: bool) -> Outgoing:
    """A message stamped with its newest event time and counted as the flow counts it."""
    decode, source = (decode_spans, SPANS_SOURCE) if spans else (decode_metrics, METRICS_SOURCE)
    decoded = decode(payload, Position(source, 0, offset, False))
    newest = max((item.ts for item in decoded.items), default=0)
    message = RecordedMessage(partition=0, offset=offset, timestamp=newest, value=payload)
    return Outgoing(topic, message, events=len(decoded.items) + len(decoded.dead_letters))


def _chaos(name: str) -> Callable[[Options], list[Outgoing]]:
    def build(options: Options) -> list[Outgoing]:
        topics = options.topics
        outgoing: list[Outgoing] = []
        counts = {topics.spans: 0, topics.metrics: 0}

        def add(topic: str, payload: bytes, *, spans: bool) -> None:
            outgoing.append(_telemetry_message(topic, counts[topic], payload, spans=spans))
            counts[topic] += 1

        with tempfile.TemporaryDirectory(prefix="revleak-loadtest-") as scratch:
            repository = Path(scratch) / "deploy.git"
            chaos.seed_repository(repository, at_ms=options.start_ms)
            run = chaos.ChaosRun(
                chaos.SCENARIOS[name],
                repository,
                seed=options.seed,
                start_ms=options.start_ms,
                baseline_minutes=CHAOS_MINUTES // 2,
                journeys_per_minute=max(1, round(CHAOS_JOURNEYS_PER_MINUTE * options.scale)),
            )
            # In chaos_kafka's order: a minute's metric points, then its spans by end time.
            for minute in run.minutes(CHAOS_MINUTES):
                add(topics.metrics, encode(minute.metrics, "otlp_proto"), spans=False)
                for batch in by_end_time(minute.traces):
                    for payload in trace_payloads(batch, "otlp_proto"):
                        add(topics.spans, payload, spans=True)
        return outgoing

    return build


# -- the catalogue ------------------------------------------------------------------------------

_LEAD_FLOOD = _Shape(
    3 * HOUR_MS, _Incident(HOUR_MS, 300, 1, replace(HEALTHY, opportunity=0), "flood")
)
_STALE_PIPELINE = _Shape(
    8 * DAY_MS,
    _Incident(12 * HOUR_MS, 300, 1, replace(HEALTHY, opportunity=1), "stale"),
    background_after_ms=DAY_MS,
)
_DUPLICATE_STORM = _Shape(
    3 * HOUR_MS,
    _Incident(
        HOUR_MS, 300, BACKGROUND_EVENTS_PER_RECORD,
        replace(HEALTHY, opportunity=0, company_domain=1, shared_domain=1, free_mail=0), "import",
    ),
)  # fmt: skip

SCENARIOS: Mapping[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "lead-flood", "crm", "lead_response",
            "300 leads in 15 minutes that nobody touches, amid 3 hours of healthy changes",
            _LEAD_FLOOD.span_ms, _crm(_LEAD_FLOOD),
        ),
        Scenario(
            "stale-pipeline", "crm", "deal_velocity",
            "300 opportunities untouched after their creation, then 7 days of healthy changes",
            _STALE_PIPELINE.span_ms, _crm(_STALE_PIPELINE),
        ),
        Scenario(
            "duplicate-storm", "crm", "data_quality",
            "an import of 300 leads sharing company domains, amid 3 hours of healthy changes",
            _DUPLICATE_STORM.span_ms, _crm(_DUPLICATE_STORM),
        ),
        *(
            Scenario(
                f"chaos-{name}", "telemetry", _CHAOS_SLOS[name], chaos.SCENARIOS[name].description,
                CHAOS_MINUTES * MINUTE_MS, _chaos(name),
            )
            for name in _CHAOS_SLOS
        ),
    )
}  # fmt: skip


def default_start(scenario: Scenario, now_ms: int) -> int:
    """The minute that ends the scenario's event time at ``now_ms``: every page's time is
    then in Alertmanager's past, at whatever speed the scenario runs."""
    return (now_ms - scenario.span_ms) // MINUTE_MS * MINUTE_MS


# -- the expected alert log ---------------------------------------------------------------------


def expected_alert_log(
    scenario: Scenario, outgoing: list[Outgoing], topics: Topics, slos: Path | None, out: Path
) -> list[dict[str, Any]]:
    """The offline replay's alert log of ``outgoing`` (written to ``out`` as JSON lines):
    the CRM flow over a file of the changes, or the telemetry flow over the messages."""
    telemetry = scenario.flow == "telemetry"
    catalog = load_catalog(slos or bundled_slos(telemetry=telemetry))
    if telemetry:
        spans = [item.message.value for item in outgoing if item.topic == topics.spans]
        metrics = [item.message.value for item in outgoing if item.topic == topics.metrics]
        source = MessagesSource(
            [(spans, decode_spans, SPANS_SOURCE), (metrics, decode_metrics, METRICS_SOURCE)]
        )
        # The live flow's partitions: spans first, metrics second.
        config = FlowConfig(catalog=catalog, partitions=2, source=SPANS_SOURCE)
        flow = build_crm_flow(config, source, OutputSink({ALERTS: JsonLines(out)}))
        run_main(flow)  # type: ignore[no-untyped-call]
    else:
        changes = out.with_name(f"{out.stem}.input.jsonl")
        changes.write_bytes(b"".join(item.message.value + b"\n" for item in outgoing))
        try:
            replay(catalog=catalog, events=[changes], input_format="auto", alerts_out=out)
        finally:
            changes.unlink()
    return [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]
