"""The load-test report's numbers, on hand-made samples: rates, lag, percentiles, and pages
matched by (slo, severity, long_window, startsAt)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from revleak.loadtest.loadtest_report import (
    LagSample,
    PageKey,
    Report,
    RunRecord,
    Sighting,
    build_report,
    compare_pages,
    firing_keys,
    page_latencies,
    write_report,
)
from revleak.timefmt import MINUTE_MS, format_timestamp

T0 = 1_800_000_000_000  # event time of the first message, ms
WALL = 1_000.0  # wall time the run started, s
LATENESS_MS = 60_000


def transition(
    slo: str, at_ms: int, *, state: str = "firing", severity: str = "page", kind: str = "usd",
    long_window: str = "1h",
) -> dict[str, Any]:  # fmt: skip
    return {
        "slo": slo,
        "severity": severity,
        "kind": kind,
        "long_window": long_window,
        "short_window": "5m",
        "state": state,
        "at": format_timestamp(at_ms),
    }


def key(slo: str, at_ms: int, *, severity: str = "page", long_window: str = "1h") -> PageKey:
    return PageKey(slo, severity, long_window, at_ms)


def run_record(**changes: Any) -> RunRecord:
    """Ten messages a minute of event time apart, sent 0.1 s apart from WALL; 1,000 events."""
    fields: dict[str, Any] = {
        "scenario": "hand-made",
        "description": "ten messages",
        "slo": "lead_response",
        "flow": "crm",
        "speed": "max",
        "started_at": WALL,
        "finished_at": WALL + 2.0,
        "event_times": [T0 + index * MINUTE_MS for index in range(10)],
        "sent_at": [WALL + index * 0.1 for index in range(10)],
        "events": 1_000,
        "samples": [
            LagSample(WALL + 1.0, 600, 100),
            LagSample(WALL + 2.0, 1_000, 700),
            LagSample(WALL + 4.0, 1_000, 1_000),
            LagSample(WALL + 5.0, 1_000, 1_000),
        ],
        "sightings": [],
        "alert_log": [],
        "expected_log": [],
        "reach_ms": T0 + 9 * MINUTE_MS,
        "allowed_lateness_ms": LATENESS_MS,
    }
    return RunRecord(**{**fields, **changes})


def test_rates_count_from_the_first_message_to_the_acknowledgement_and_to_catching_up() -> None:
    throughput = build_report(run_record()).throughput
    assert throughput.produced_per_second == pytest.approx(500.0)  # 1,000 events in 2 s
    assert throughput.processed_seconds == pytest.approx(4.0)  # the first sample caught up
    assert throughput.processed_per_second == pytest.approx(250.0)


def test_a_flow_that_never_catches_up_is_rated_on_its_last_sample() -> None:
    samples = [LagSample(WALL + 1.0, 1_000, 300), LagSample(WALL + 3.0, 1_000, 900)]
    throughput = build_report(run_record(samples=samples)).throughput
    assert throughput.processed_events == 900
    assert throughput.processed_per_second == pytest.approx(300.0)


def test_lag_is_input_minus_processed_over_time_never_below_zero() -> None:
    samples = [
        LagSample(WALL + 0.5, 10, 12),  # read before the producer heard of the write
        LagSample(WALL + 1.0, 600, 100),
        LagSample(WALL + 2.0, 1_000, 700),
    ]
    lag = build_report(run_record(samples=samples)).lag
    assert lag.samples == [(0.5, 0), (1.0, 500), (2.0, 300)]
    assert (lag.highest, lag.last) == (500, 300)


def test_latency_runs_from_the_first_message_reaching_the_pages_start() -> None:
    # Out of order: the running maximum decides when the input first reached a time.
    event_times = [T0, T0 + 3 * MINUTE_MS, T0 + MINUTE_MS, T0 + 5 * MINUTE_MS]
    sent_at = [WALL, WALL + 1.0, WALL + 2.0, WALL + 3.0]
    sightings = [
        Sighting(key("a", T0 + 2 * MINUTE_MS), WALL + 1.5),  # due at the 2nd message
        Sighting(key("b", T0 + MINUTE_MS), WALL + 1.25),  # also the 2nd, not the 3rd
        Sighting(key("c", T0 + 5 * MINUTE_MS), WALL + 3.75),
        Sighting(key("d", T0 + 9 * MINUTE_MS), WALL + 9.0),  # beyond the input: no trigger
    ]
    assert page_latencies(event_times, sent_at, sightings) == [
        (key("b", T0 + MINUTE_MS), 0.25),
        (key("a", T0 + 2 * MINUTE_MS), 0.5),
        (key("c", T0 + 5 * MINUTE_MS), 0.75),
    ]


def test_percentiles_are_nearest_rank() -> None:
    # 100 pages: page i (1-based) took i hundredths of a second.
    event_times = [T0 + index * MINUTE_MS for index in range(100)]
    sent_at = [WALL + index for index in range(100)]
    sightings = [
        Sighting(key("s", T0 + index * MINUTE_MS), WALL + index + (index + 1) / 100)
        for index in range(100)
    ]
    expected = [transition("s", T0 + index * MINUTE_MS) for index in range(100)]
    record = run_record(
        event_times=event_times,
        sent_at=sent_at,
        sightings=sightings,
        expected_log=expected,
        reach_ms=T0 + 99 * MINUTE_MS,
    )
    latency = build_report(record).latency
    assert latency.count == 100
    assert [page.seconds for page in latency.pages] == sorted(
        page.seconds for page in latency.pages
    )
    assert latency.p50 == pytest.approx(0.50)
    assert latency.p95 == pytest.approx(0.95)
    assert latency.p99 == pytest.approx(0.99)
    # Fewer than 100: p99 is the highest.
    assert build_report(replace(record, sightings=sightings[:3])).latency.p99 == pytest.approx(0.03)


def test_pages_match_by_slo_severity_long_window_and_start() -> None:
    at = T0 + 2 * MINUTE_MS
    expected_log = [
        transition("lead_response", at),
        transition("lead_response", at, kind="count"),  # the same page for this comparison
        transition("lead_response", at, severity="ticket", long_window="1d"),
        transition("lead_response", at + MINUTE_MS, state="resolved"),  # not a page
        transition("data_quality", at + MINUTE_MS),
        transition("data_quality", T0 + 20 * MINUTE_MS),  # after the input's end
    ]
    received = {
        key("lead_response", at),
        key("lead_response", at, severity="ticket", long_window="6h"),  # another window
        key("lead_response", at + 1),  # another start
        key("data_quality", T0 + 20 * MINUTE_MS),  # fired after all: matched, not expected
    }
    expected = firing_keys(expected_log)
    assert len(expected) == 4
    comparison = compare_pages(expected, received, reach_ms=T0 + 9 * MINUTE_MS)
    assert (comparison.expected, comparison.received, comparison.matched) == (3, 4, 2)
    assert [(ref.slo, ref.long_window) for ref in comparison.missing] == [
        ("data_quality", "1h"),
        ("lead_response", "1d"),
    ]
    assert [(ref.slo, ref.long_window, ref.starts_at) for ref in comparison.unexpected] == [
        ("lead_response", "1h", format_timestamp(at + 1)),
        ("lead_response", "6h", format_timestamp(at)),
    ]


def test_the_alert_log_is_expected_only_behind_the_final_watermark() -> None:
    reach = T0 + 9 * MINUTE_MS
    early = transition("lead_response", reach - LATENESS_MS - 1)
    late = transition("lead_response", reach - LATENESS_MS)  # the final lane has not got there
    record = run_record(
        expected_log=[early, late],
        alert_log=[early],
        sightings=[
            Sighting(PageKey.of_transition(early), WALL + 1.0),
            Sighting(PageKey.of_transition(late), WALL + 1.0),
        ],
    )
    pages = build_report(record).pages
    assert (pages.alert_log.expected, pages.alert_log.received, pages.alert_log.missing) == (
        1,
        1,
        [],
    )
    assert (pages.alertmanager.expected, pages.alertmanager.received) == (2, 2)


def test_the_report_is_written_as_json_markdown_and_figures(tmp_path: Path) -> None:
    at = T0 + 2 * MINUTE_MS
    record = run_record(
        expected_log=[transition("lead_response", at)],
        alert_log=[transition("lead_response", at)],
        sightings=[Sighting(key("lead_response", at), WALL + 0.5)],
    )
    report = build_report(record)
    written = write_report(report, tmp_path / "report")
    assert sorted(path.name for path in written) == [
        "lag.png",
        "latency.png",
        "report.json",
        "report.md",
    ]
    assert Report.model_validate(json.loads((tmp_path / "report" / "report.json").read_text())) == (
        report
    )
    for figure in ("lag.png", "latency.png"):
        assert (tmp_path / "report" / figure).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| pages at Alertmanager: received / expected | 1 / 1 |" in markdown
    assert "![Consumer lag over time](lag.png)" in markdown
