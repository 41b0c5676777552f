"""Telemetry throughput: spans per second per worker through decode, SLIs, windows, burn
rates, alerts and root-cause analysis; and the time to analyse a window of 100k spans.

Part f) of ``make bench`` (its section of docs/BENCHMARKS.md); on its own,
``python -P -m revleak.loadtest.telemetry_bench [--quick]``. The input is the chaos shop's
``latency`` scenario (OpenTelemetry SDK, :mod:`revleak.loadtest.chaos`), generated first and
not counted: half the minutes healthy, then payment 2.5.0, so the run pages and explains.

a) decode: ``otlp_proto`` and ``otlp_json`` messages of the run into spans (one process);
b) the telemetry flow on Bytewax, 1 worker, messages in memory (no broker): spans ÷ the
   run's seconds from building the flow to the end of input, every stage included;
c) analysis: :func:`revleak.telemetry.analysis.analyse` on a window of the fault's spans
   against as many baseline spans, the predicate of the latency SLO.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bytewax.testing import run_main

from revleak.connectors.messages import Position
from revleak.connectors.otlp import decode_metrics, decode_spans
from revleak.connectors.otlp_json import encode_json
from revleak.crm.pipeline import ALERTS, ROOT_CAUSES, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.sinks import OutputSink, Target
from revleak.dataflows.sources import MessagesSource
from revleak.loadtest.chaos import SCENARIOS, ChaosRun, seed_repository
from revleak.loadtest.chaos_kafka import by_end_time, trace_payloads
from revleak.loadtest.figures import met, paragraph_lines, whole, write_section
from revleak.slo.loader import load_catalog
from revleak.telemetry.analysis import analyse, latency_predicate
from revleak.telemetry.model import Span

MODULE = "revleak.loadtest.telemetry_bench"
SECTION = "## Telemetry: decode, SLIs and root causes"
TARGET_SPANS_PER_SECOND = 50_000  # per worker, decode + SLI + analysis
START_MS = 1_800_000_000_000
SEED = 1
SHARDS = 8
LATENCY_THRESHOLD_NS = 500 * 1_000_000  # the bundled latency SLO's threshold


@dataclass(frozen=True, slots=True)
class Plan:
    minutes: int
    journeys_per_minute: int
    analysis_spans: int


FULL = Plan(minutes=40, journeys_per_minute=1_500, analysis_spans=100_000)
QUICK = Plan(minutes=12, journeys_per_minute=150, analysis_spans=2_000)


@dataclass(frozen=True, slots=True)
class Results:
    plan: Plan
    spans: int
    metric_points: int
    proto_messages: int
    proto_bytes: int
    json_bytes: int
    generation_seconds: float
    proto_decode_seconds: float
    json_decode_seconds: float
    flow_seconds: float
    pages: int
    root_causes: int
    top_cause: str
    analysis_window: int
    analysis_baseline: int
    analysis_seconds: float
    analysis_top: str


class _Counting:
    """A sink target that keeps what it is given (the flow's alert log, its root causes)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def open(self, resume: Any) -> Any:  # noqa: ARG002
        from bytewax.outputs import StatefulSinkPartition  # noqa: PLC0415

        values = self.values

        class _Partition(StatefulSinkPartition[Any, None]):
            def write_batch(self, batch: list[Any]) -> None:
                values.extend(batch)

            def snapshot(self) -> None:
                return None

        return _Partition()


def _generate(plan: Plan, scratch: Path) -> tuple[list[bytes], list[bytes], int]:
    """The run's span and metric messages (``otlp_proto``), and its first faulty minute."""
    repository = scratch / "deploy.git"
    seed_repository(repository, at_ms=START_MS)
    run = ChaosRun(
        SCENARIOS["latency"],
        repository,
        seed=SEED,
        start_ms=START_MS,
        baseline_minutes=plan.minutes // 2,
        journeys_per_minute=plan.journeys_per_minute,
    )
    spans: list[bytes] = []
    metrics: list[bytes] = []
    for minute in run.minutes(plan.minutes):
        metrics.append(minute.metrics.SerializeToString())
        for batch in by_end_time(minute.traces):
            spans.extend(trace_payloads(batch, "otlp_proto"))
    return spans, metrics, run.inject_at_ms


def _decode_all(messages: Sequence[bytes]) -> tuple[list[Span], float]:
    gc.collect()
    started = time.perf_counter()
    found: list[Span] = []
    for offset, raw in enumerate(messages):
        found.extend(decode_spans(raw, Position("otlp_spans", 0, offset, False)).items)
    return found, time.perf_counter() - started


def _flow(spans: list[bytes], metrics: list[bytes]) -> tuple[float, list[Any], list[Any]]:
    catalog = load_catalog(Path(__file__).resolve().parent.parent / "slos" / "telemetry.yaml")
    config = FlowConfig(
        catalog=catalog, partitions=2, shards=SHARDS, paging=True, source="otlp_spans"
    )
    alerts, causes = _Counting(), _Counting()
    targets: dict[str, Target | None] = {ALERTS: alerts, ROOT_CAUSES: causes}
    source = MessagesSource(
        [(spans, decode_spans, "otlp_spans"), (metrics, decode_metrics, "otlp_metrics")]
    )
    gc.collect()
    started = time.perf_counter()
    flow = build_crm_flow(config, source, OutputSink(targets), name="telemetry_bench")
    run_main(flow)  # type: ignore[no-untyped-call]
    return time.perf_counter() - started, alerts.values, causes.values


def run(scratch: Path, *, plan: Plan) -> Results:
    began = time.perf_counter()
    spans, metrics, fault_ms = _generate(plan, scratch)
    generation = time.perf_counter() - began
    decoded, proto_seconds = _decode_all(spans)
    as_json = [encode_json(_parsed(raw)) for raw in spans]
    _, json_seconds = _decode_all(as_json)
    points = sum(
        len(decode_metrics(raw, Position("otlp_metrics", 1, offset, False)).items)
        for offset, raw in enumerate(metrics)
    )
    flow_seconds, alerts, causes = _flow(spans, metrics)
    pages = [a for a in alerts if a.firing and a.severity == "page"]
    top = causes[-1].candidates[0].summary if causes and causes[-1].candidates else "none"

    before = [span for span in decoded if span.ts < fault_ms][-plan.analysis_spans :]
    after = [span for span in decoded if span.ts >= fault_ms][: plan.analysis_spans]
    slow = latency_predicate(lambda _: LATENCY_THRESHOLD_NS)
    gc.collect()
    started = time.perf_counter()
    ranked = analyse(after, before, slow)
    analysis_seconds = time.perf_counter() - started
    return Results(
        plan=plan,
        spans=len(decoded),
        metric_points=points,
        proto_messages=len(spans),
        proto_bytes=sum(map(len, spans)),
        json_bytes=sum(map(len, as_json)),
        generation_seconds=generation,
        proto_decode_seconds=proto_seconds,
        json_decode_seconds=json_seconds,
        flow_seconds=flow_seconds,
        pages=len(pages),
        root_causes=len(causes),
        top_cause=top,
        analysis_window=len(after),
        analysis_baseline=len(before),
        analysis_seconds=analysis_seconds,
        analysis_top=ranked[0].summary if ranked else "none",
    )


def _parsed(raw: bytes) -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: PLC0415
        ExportTraceServiceRequest,
    )

    return ExportTraceServiceRequest.FromString(raw)


def render_section(results: Results) -> list[str]:
    """The section of docs/BENCHMARKS.md, as lines."""
    spans = results.spans
    flow_rate = spans / results.flow_seconds
    proto_rate = spans / results.proto_decode_seconds
    json_rate = spans / results.json_decode_seconds
    target = f"≥ {whole(TARGET_SPANS_PER_SECOND)} per worker"
    rows = [
        ("a) decode `otlp_proto`: spans/s", whole(proto_rate), "", ""),
        ("a) decode `otlp_json`: spans/s", whole(json_rate), "", ""),
        (
            "b) flow, 1 worker, decode + SLIs + burn rates + alerts + analysis: spans/s",
            whole(flow_rate),
            target,
            met(flow_rate >= TARGET_SPANS_PER_SECOND),
        ),
        ("b) pages fired, root-cause analyses", f"{results.pages}, {results.root_causes}", "", ""),
        (
            f"c) analysis of {whole(results.analysis_window)} spans against "
            f"{whole(results.analysis_baseline)}: seconds",
            f"{results.analysis_seconds:.2f}",
            "",
            "",
        ),
    ]
    plan = results.plan
    paragraphs = [
        "| measurement | result | target | met |\n|---|---:|---|---|\n"
        + "\n".join(f"| {name} | {value} | {goal} | {ok} |" for name, value, goal, ok in rows),
        f"Target: {target}, through decode, SLIs and analysis. The flow decodes every message "
        f"in its input partition, then runs the same stages as the CRM flow (sequencer, "
        f"{SHARDS} shards, four SLOs, incident, pager, analysis) in one Python thread: "
        f"{whole(flow_rate)} spans/s, of which decoding alone would allow {whole(proto_rate)}.",
        f"The flow's last root cause: {results.top_cause}. The analysis of c) ranks first: "
        f"{results.analysis_top}.",
        "### Details",
        f"- Input: `python -P -m {MODULE}`; the chaos shop's `latency` scenario, seed {SEED}, "
        f"{plan.minutes} simulated minutes ({plan.minutes // 2} healthy) at "
        f"{whole(plan.journeys_per_minute)} journeys a minute: {whole(spans)} spans in "
        f"{whole(results.proto_messages)} `otlp_proto` messages "
        f"({results.proto_bytes / 2**20:.1f} MiB; as `otlp_json` "
        f"{results.json_bytes / 2**20:.1f} MiB) and {whole(results.metric_points)} metric "
        f"points, generated with the OpenTelemetry SDK in {results.generation_seconds:.1f} s "
        "(not counted).\n"
        "- b) runs `bytewax.testing.run_main` (1 worker) over the messages in memory, two "
        "input partitions (spans, metrics), the bundled `slos/telemetry.yaml`; seconds from "
        "the flow's start to the end of input, every deadline fired.\n"
        "- c) window: the first spans of the fault; baseline: the last spans before it; the "
        "latency SLO's predicate (a request over 500 ms).",
    ]
    return [SECTION, "", *paragraph_lines(paragraphs), ""]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -P -m {MODULE}",
        description="Benchmark the telemetry flow and update its section of docs/BENCHMARKS.md.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (~10 s)")
    parser.add_argument("--output", type=Path, default=Path("docs/BENCHMARKS.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="revleak-telemetry-bench-") as scratch:
        results = run(Path(scratch), plan=QUICK if args.quick else FULL)
    write_section(args.output, SECTION, render_section(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
