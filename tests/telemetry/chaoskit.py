"""Chaos scenarios run in process: the shop's OTLP, decoded, through the telemetry stages."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from harness import FlowOutputs, run_pipeline

from revleak.connectors.messages import Position
from revleak.connectors.otlp import decode_metrics, decode_spans
from revleak.crm.pipeline import DecodedBatch, FlowConfig
from revleak.loadtest.chaos import SCENARIOS, ChaosRun, seed_repository
from revleak.slo.catalog import SloCatalog

T0 = 1_800_000_000_000
# The SLO each scenario's fault burns first, whose page must name the injected cause.
PAGED_SLO = {"latency": "latency", "errors": "availability", "oom": "saturation",
             "conversion": "conversion"}  # fmt: skip
COMPARED = ("cause", "cause_service", "cause_attribute", "cause_value", "previous_version")


class Outcome(NamedTuple):
    scenario: str
    seed: int
    paged: bool
    top: dict[str, str]  # the annotations of the page's root cause

    @property
    def expected(self) -> dict[str, str]:
        wanted = SCENARIOS[self.scenario].expected.annotations()
        return {key: wanted[key] for key in COMPARED if key in wanted}

    @property
    def named_the_cause(self) -> bool:
        return {key: self.top.get(key) for key in self.expected} == self.expected


def run_scenario(
    catalog: SloCatalog,
    scenario: str,
    seed: int,
    folder: Path,
    *,
    baseline_minutes: int = 12,
    fault_minutes: int = 10,
    journeys_per_minute: int = 30,
) -> FlowOutputs:
    bare = folder / f"{scenario}-{seed}.git"
    seed_repository(bare, at_ms=T0)
    run = ChaosRun(
        SCENARIOS[scenario],
        bare,
        seed=seed,
        start_ms=T0,
        baseline_minutes=baseline_minutes,
        journeys_per_minute=journeys_per_minute,
    )
    items: list[tuple[object, bytes]] = []
    for offset, minute in enumerate(run.minutes(baseline_minutes + fault_minutes)):
        spans = decode_spans(minute.traces.SerializeToString(), Position("otlp_spans", 0, offset))
        points = decode_metrics(
            minute.metrics.SerializeToString(), Position("otlp_metrics", 1, offset)
        )
        items.extend((span, b"") for span in spans.items)
        items.extend((point, b"") for point in points.items)
    # One input partition in event-time order, as Kafka would deliver a steady producer.
    items.sort(key=lambda item: item[0].order)  # type: ignore[attr-defined]
    batches = [DecodedBatch(0, tuple(items[at : at + 2000])) for at in range(0, len(items), 2000)]
    config = FlowConfig(catalog=catalog, shards=2, paging=True, source="otlp_spans")
    return run_pipeline(config, [[*batches, DecodedBatch(0, (), end=True)]])


def outcome(catalog: SloCatalog, scenario: str, seed: int, folder: Path) -> Outcome:
    outputs = run_scenario(catalog, scenario, seed, folder)
    slo = PAGED_SLO[scenario]
    paged = any(a.slo == slo and a.firing and a.severity == "page" for a in outputs.alerts)
    causes = [c for c in outputs.root_causes if c.slo == slo and c.severity == "page"]
    return Outcome(scenario, seed, paged, causes[0].annotations() if causes else {})
