"""Spans and metric points → SLI events (docs/semantics.md §2, telemetry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from telemetrykit import T0, point, request

from revleak.sli import SliEvent
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog, parse_catalog
from revleak.telemetry.model import SpanKind, TelemetryItem
from revleak.telemetry.sli import ConversionCount, ConversionJudge, TelemetryShard

SLOS = Path(__file__).resolve().parents[2] / "slos" / "telemetry.yaml"
MINUTE = 60_000


@pytest.fixture(scope="module")
def catalog() -> SloCatalog:
    return load_catalog(SLOS)


def events_of(catalog: SloCatalog, items: list[TelemetryItem], watermark: int) -> list[SliEvent]:
    return TelemetryShard(catalog).advance(items, watermark).sli_events


def test_a_failed_request_is_bad_for_availability_and_a_slow_one_for_latency(
    catalog: SloCatalog,
) -> None:
    events = events_of(
        catalog,
        [
            request(T0 + 1, 1),
            request(T0 + 2, 2, error=True),
            request(T0 + 3, 3, duration_ms=501),
            request(T0 + 4, 4, duration_ms=500),
        ],
        T0 + 10,
    )
    availability = [(e.time, e.good) for e in events if e.slo == "availability"]
    latency = [(e.time, e.good) for e in events if e.slo == "latency"]
    assert availability == [(T0 + 1, True), (T0 + 2, False), (T0 + 3, True), (T0 + 4, True)]
    assert latency == [(T0 + 1, True), (T0 + 2, True), (T0 + 3, False), (T0 + 4, True)]


def test_only_requests_count_client_and_internal_children_do_not(catalog: SloCatalog) -> None:
    root = request(T0 + 5, 1, kind=SpanKind.INTERNAL)  # a root of any kind is a request
    child = request(T0 + 4, 1, kind=SpanKind.CLIENT, parent=root.span_id, error=True, span="c1")
    inner = request(T0 + 4, 1, kind=SpanKind.INTERNAL, parent=root.span_id, span="i1")
    events = events_of(catalog, [inner, child, root], T0 + 10)
    assert [(e.slo, e.record_id) for e in events] == [
        ("availability", root.span_id),
        ("latency", root.span_id),
    ]


def test_latency_overrides_pick_the_first_matching_operation() -> None:
    text = SLOS.read_text().replace(
        'overrides: []   # e.g. [{service: search, name: "GET /export", threshold: 5s}]',
        'overrides: [{service: cart, name: "export", threshold: 2s}]',
    )
    catalog = parse_catalog(text)
    events = events_of(
        catalog,
        [
            request(T0 + 1, 1, name="GET /export", duration_ms=1500),
            request(T0 + 2, 2, duration_ms=600),
        ],
        T0 + 10,
    )
    assert [(e.good) for e in events if e.slo == "latency"] == [True, False]


def test_saturation_judges_each_instance_minute_once_the_watermark_passes_it(
    catalog: SloCatalog,
) -> None:
    shard = TelemetryShard(catalog)
    limit, usage = "process.memory.limit", "process.memory.usage"
    first = shard.advance(
        [
            point(T0 + 1_000, limit, 1000.0),
            point(T0 + 2_000, usage, 850.0),
            point(T0 + 3_000, limit, 1000.0, host="inv-2"),
            point(T0 + 4_000, usage, 950.0, host="inv-2"),
        ],
        T0 + MINUTE - 1,
    )
    assert first.sli_events == []  # the minute is not over before the watermark passes it
    second = shard.advance([point(T0 + MINUTE + 5, usage, 100.0)], T0 + MINUTE + 10)
    judged = {(e.record_id.split("/")[1], e.good, e.time) for e in second.sli_events}
    assert judged == {("inv-1", True, T0 + MINUTE - 1), ("inv-2", False, T0 + MINUTE - 1)}


def test_an_oom_kill_makes_the_minute_bad_whether_the_count_is_cumulative_or_a_delta(
    catalog: SloCatalog,
) -> None:
    shard = TelemetryShard(catalog)
    oom = "process.oom_kills"
    items = [
        point(T0 + 1_000, oom, 3.0, cumulative=True),  # first point: a starting total
        point(T0 + MINUTE + 1_000, oom, 3.0, cumulative=True),
        point(T0 + 2 * MINUTE + 1_000, oom, 4.0, cumulative=True),
        point(T0 + 3 * MINUTE + 1_000, oom, 1.0, host="inv-2"),
    ]
    events = shard.advance(items, T0 + 4 * MINUTE).sli_events
    assert [(e.record_id.split("/")[1], e.good) for e in events] == [
        ("inv-1", True),
        ("inv-1", True),
        ("inv-1", False),
        ("inv-2", False),
    ]


def test_conversion_counts_starts_and_successful_completions_per_minute(
    catalog: SloCatalog,
) -> None:
    shard = TelemetryShard(catalog)
    output = shard.advance(
        [
            request(T0 + 1, 1),
            request(T0 + 2, 1, service="checkout", name="POST /checkout", span="k1"),
            request(T0 + 3, 2),
            request(T0 + 4, 2, service="checkout", name="POST /checkout", error=True, span="k2"),
            request(T0 + MINUTE + 1, 3),
        ],
        T0 + MINUTE + 2,
    )
    assert output.conversions == [ConversionCount("conversion", T0 + MINUTE - 1, 2, 1)]


def test_a_minute_converting_below_objective_times_the_baseline_is_bad() -> None:
    text = SLOS.read_text().replace("minBaselineStarts: 200", "minBaselineStarts: 50")
    judge = ConversionJudge(parse_catalog(text).by_name("conversion"))
    minute = [T0 + k * MINUTE + MINUTE - 1 for k in range(4)]
    # Until 50 journeys are known there is no baseline: minutes are good.
    warm = judge.judge([ConversionCount("conversion", minute[0], 60, 42)])
    assert [e.good for e in warm] == [True]
    # Baseline 42/60 = 0.7, objective 0.8: bad below 0.56; the shards' counts add up.
    # Then the baseline is (42 + 23)/(60 + 40) = 0.65: bad below 0.52.
    split = judge.judge(
        [
            ConversionCount("conversion", minute[1], 30, 17),
            ConversionCount("conversion", minute[1], 10, 6),
            ConversionCount("conversion", minute[2], 40, 20),
        ]
    )
    assert [(e.time, e.good) for e in split] == [(minute[1], True), (minute[2], False)]
    # The bad minute does not drag the baseline down.
    assert [e.good for e in judge.judge([ConversionCount("conversion", minute[3], 100, 57)])] == [
        True
    ]


def test_a_minute_without_journeys_gives_no_event(catalog: SloCatalog) -> None:
    judge = ConversionJudge(catalog.by_name("conversion"))
    assert judge.judge([ConversionCount("conversion", T0 + MINUTE - 1, 0, 0)]) == []
