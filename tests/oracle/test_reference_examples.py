"""The oracle must reproduce the worked examples of docs/semantics.md exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .reference import SLO_NAMES, format_time, replay

DATA = Path(__file__).resolve().parent.parent / "data" / "semantics"
EXAMPLES = sorted(p.name.removesuffix(".events.jsonl") for p in DATA.glob("*.events.jsonl"))
EXACT_KEYS = ("slo", "kind", "severity", "long_window", "short_window", "state", "at")
NUMERIC_KEYS = ("burn_long", "burn_short", "budget_remaining", "at_risk_usd")
ALERT_KEYS = {*EXACT_KEYS, *NUMERIC_KEYS, "blast_radius"}


def _lines(name: str) -> list[str]:
    return (DATA / f"{name}.events.jsonl").read_text().splitlines()


def _expected_alerts(name: str) -> list[dict[str, Any]]:
    text = (DATA / f"{name}.alerts.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9)


def test_examples_found() -> None:
    assert len(EXAMPLES) == 3


@pytest.mark.parametrize("name", EXAMPLES)
def test_alert_log_matches(name: str) -> None:
    actual = replay(_lines(name)).alerts
    expected = _expected_alerts(name)
    assert len(actual) == len(expected), [(a["slo"], a["kind"], a["at"]) for a in actual]
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert set(got) == ALERT_KEYS
        for key in (*EXACT_KEYS, "blast_radius"):
            assert got[key] == want[key], (index, key, got, want)
        assert isinstance(got["blast_radius"], int)
        for key in NUMERIC_KEYS:
            assert isinstance(got[key], float)
            assert _close(got[key], want[key]), (index, key, got, want)


@pytest.mark.parametrize("name", EXAMPLES)
def test_summary_matches(name: str) -> None:
    result = replay(_lines(name))
    expected = json.loads((DATA / f"{name}.summary.json").read_text())
    assert result.malformed_lines == expected["malformed_lines"]
    assert result.late_events == expected["late_events"]
    assert result.accepted_events == expected["accepted_events"]
    assert set(result.sli_events_good_bad) == set(SLO_NAMES)
    assert {k: list(v) for k, v in result.sli_events_good_bad.items()} == expected[
        "sli_events_good_bad"
    ]
    good = sum(1 for e in result.sli_events if e[2])
    assert good == sum(v[0] for v in result.sli_events_good_bad.values())
    assert len(result.sli_events) == sum(sum(v) for v in result.sli_events_good_bad.values())


def test_example_details() -> None:
    """Spot checks of SLI events and consumption that the summaries do not pin down."""
    one = replay(_lines("01-lead-response"))
    lead = [e for e in one.sli_events if e[0] == "lead_response"]
    t0 = 1772445600000  # 2026-03-02T10:00:00Z
    assert lead == [
        ("lead_response", t0 + 20 * 60_000, True, 0.0, "L2"),
        ("lead_response", t0 + 30 * 60_000, False, 7500.0, "L1"),
    ]
    assert _close(one.final_consumption, 7500 / 50_000)

    two = replay(_lines("02-deal-velocity-next-step"))
    assert _close(two.final_consumption, (30_000 + 22845.67106744929) / 50_000)

    three = replay(_lines("03-data-quality-late-malformed"))
    dq_bad = sorted(e[3] for e in three.sli_events if e[0] == "data_quality" and not e[2])
    assert dq_bad == [600.0, 3000.0]
    assert _close(three.final_consumption, (3600 + 500) / 50_000)


@pytest.mark.parametrize("name", EXAMPLES)
def test_exhaustive_points_agree_on_examples(name: str) -> None:
    """Evaluating every minute boundary gives the same alert log as the change points."""
    lines = _lines(name)
    assert replay(lines, exhaustive_points=True).alerts == replay(lines).alerts


def test_min_events_guards_count_rules_only() -> None:
    name = "01-lead-response"
    guarded = replay(_lines(name), min_events={"lead_response": 3}).alerts
    assert guarded
    assert all(a["kind"] == "usd" for a in guarded)
    assert [a for a in replay(_lines(name)).alerts if a["kind"] == "usd"] == guarded


# ---- a small random cross-check of the evaluation-point reduction ----------------------------

_T0 = 1772445600000


@st.composite
def _event_logs(draw: st.DrawFn) -> list[str]:
    lines = []
    n = draw(st.integers(min_value=1, max_value=12))
    for i in range(n):
        obj = draw(st.sampled_from(["lead", "opportunity"]))
        fields: dict[str, Any] = {}
        if draw(st.booleans()):
            fields["owner"] = draw(st.sampled_from(["", "ana", None]))
        if draw(st.booleans()):
            fields["region"] = draw(st.sampled_from(["", "NA"]))
        if draw(st.booleans()):
            fields["email"] = draw(st.sampled_from(["a@x.example", "b@gmail.com"]))
        if draw(st.booleans()):
            fields["next_step"] = draw(st.sampled_from(["", "call", None]))
        if draw(st.booleans()):
            fields["stage"] = draw(st.sampled_from(["Qualified", "Proposal", "Closed Won"]))
        if draw(st.booleans()):
            fields["value_usd"] = draw(st.integers(min_value=0, max_value=100_000))
        ts = _T0 + draw(st.integers(min_value=0, max_value=8 * 3_600_000))
        if draw(st.booleans()):
            fields["last_touch_at"] = f"2026-03-02T{draw(st.integers(0, 23)):02d}:00:00Z"
        seconds = (ts - _T0) // 1000
        lines.append(
            json.dumps(
                {
                    "event_id": str(i),
                    "ts": f"2026-03-02T{10 + seconds // 3600:02d}:"
                    f"{seconds // 60 % 60:02d}:{seconds % 60:02d}Z",
                    "object": obj,
                    "op": draw(st.sampled_from(["create", "update", "update", "delete"])),
                    "record_id": draw(st.sampled_from(["R1", "R2", "R3"])),
                    "fields": fields,
                }
            )
        )
    return lines


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_event_logs())
def test_exhaustive_points_agree_on_random_logs(lines: list[str]) -> None:
    result = replay(lines, allowed_lateness_ms=10**12)
    assert replay(lines, allowed_lateness_ms=10**12, exhaustive_points=True) == result
    for alerts in (result.alerts,):
        for slo in SLO_NAMES:
            states: dict[tuple[str, str, str], str] = {}
            for a in alerts:
                if a["slo"] == slo:
                    key = (a["kind"], a["severity"], a["long_window"])
                    assert states.get(key, "resolved") != a["state"]
                    states[key] = a["state"]
            assert all(s == "resolved" for s in states.values())


# ---- spot checks of the interpretations the oracle encodes -----------------------------------

_MIN = 60_000


def _ev(minute: float, op: str, rid: str, obj: str = "lead", **fields: Any) -> str:
    ms = _T0 + round(minute * _MIN)
    stamp = format_time(ms)
    return json.dumps(
        {
            "event_id": f"{rid}{minute}",
            "ts": stamp,
            "object": obj,
            "op": op,
            "record_id": rid,
            "fields": {"owner": "ana", "region": "NA", **fields},
        }
    )


def _slo_events(lines: list[str], slo: str) -> list[tuple[int, bool, float, str]]:
    return [(e[1] - _T0, e[2], e[3], e[4]) for e in replay(lines).sli_events if e[0] == slo]


def test_touch_exactly_at_deadline_is_on_time() -> None:
    lines = [_ev(0, "create", "L1"), _ev(30, "update", "L1", last_touch_at="2026-03-02T10:30:00Z")]
    assert _slo_events(lines, "lead_response") == [(30 * _MIN, True, 0.0, "L1")]


def test_upsert_and_recreate_after_close() -> None:
    lines = [
        _ev(0, "update", "L1", last_touch_at="2026-03-02T10:00:00Z"),  # upsert, not a touch
        _ev(5, "update", "L1", last_touch_at="2026-03-02T10:00:00Z"),  # same value: no touch
        _ev(10, "delete", "L1"),
        _ev(11, "update", "L1", last_touch_at="2026-03-02T10:11:00Z"),  # closed: ignored
        _ev(20, "create", "L1"),  # brand-new record, deadline at 50
        _ev(70, "delete", "L9"),  # unknown: nothing
    ]
    result = replay(lines)
    assert result.accepted_events == 6
    assert _slo_events(lines, "lead_response") == [(50 * _MIN, False, 7500.0, "L1")]
    assert result.sli_events_good_bad["data_quality"] == (3, 0)


def test_stage_change_is_a_deal_activity_and_closing_gives_nothing() -> None:
    day = 24 * 60
    lines = [
        _ev(0, "create", "O1", "opportunity", stage="Qualified", next_step="x", value_usd=1000),
        _ev(3 * day, "update", "O1", "opportunity", stage="Proposal"),
        _ev(11 * day, "update", "O1", "opportunity", stage="Negotiation"),
        _ev(12 * day, "update", "O1", "opportunity", stage="closed lost "),
    ]
    velocity = _slo_events(lines, "deal_velocity")
    impact = 1000 * 0.45 * (1 - 2 ** (-10 / 14))  # never touched: days since creation
    assert velocity[0] == (3 * day * _MIN, True, 0.0, "O1")
    assert velocity[1][:2] == (10 * day * _MIN, False)
    assert math.isclose(velocity[1][2], impact)
    assert len(velocity) == 2
    assert replay(lines).sli_events_good_bad["data_quality"] == (3, 0)


def test_malformed_blank_and_late_lines() -> None:
    good = _ev(0, "create", "L1")
    bad_value = json.loads(good)
    bad_value["fields"]["value_usd"] = "10"
    no_offset = json.loads(good)
    no_offset["ts"] = "2026-03-02T10:00:00"
    lines = [
        good,
        "   ",
        json.dumps(bad_value),
        json.dumps({**json.loads(good), "op": "upsert"}),
        json.dumps({**json.loads(good), "record_id": ""}),
        json.dumps(no_offset),
        _ev(10, "create", "L2"),
        _ev(8.9, "create", "L3"),  # older than 10:10 - 60 s: late
        _ev(9, "create", "L4"),  # exactly at the watermark: not late
    ]
    result = replay(lines)
    assert (result.malformed_lines, result.late_events, result.accepted_events) == (3, 1, 4)
