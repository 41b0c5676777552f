"""revleak.slo.incident: consumption, paging state, severity and the timeline
(docs/semantics.md §3)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from harness import default_catalog
from hypothesis import given
from hypothesis import strategies as st

from revleak.sli import LeakChange
from revleak.slo.alerts import AlertTransition, BudgetUpdate
from revleak.slo.catalog import PICOS_PER_USD, BurnKind, Rule
from revleak.slo.incident import (
    IncidentItem,
    IncidentPolicy,
    IncidentTracker,
    PagingState,
    severity_name,
)
from revleak.timefmt import HOUR_MS, MINUTE_MS, parse_timestamp

CATALOG = default_catalog()
T = parse_timestamp("2026-03-02T10:00:00Z")
POLICY = IncidentPolicy()
BUDGET_USD = 50_000


def usd(amount: float | Fraction) -> int:
    return round(Fraction(amount) * PICOS_PER_USD)


def opened(
    record: str,
    impact_usd: float,
    *,
    time: int = T,
    slo: str = "lead_response",
    rule: Rule = Rule.SLA_BREACH_UNTOUCHED,
    owner: str = "ana",
) -> LeakChange:
    return LeakChange(slo, time, record, rule, True, usd(impact_usd), owner)


def closed(
    record: str,
    *,
    time: int = T,
    slo: str = "lead_response",
    rule: Rule = Rule.SLA_BREACH_UNTOUCHED,
) -> LeakChange:
    return LeakChange(slo, time, record, rule, False)


def at_risk(slo: str, amount_usd: float, *, time: int = T) -> BudgetUpdate:
    return BudgetUpdate(slo, time, usd(amount_usd))


def alert(severity: str, firing: bool, *, time: int = T) -> AlertTransition:
    return AlertTransition(
        "lead_response",
        severity,
        BurnKind.USD,
        HOUR_MS,
        5 * MINUTE_MS,
        firing,
        time,
        360.0,
        4320.0,
        0.5,
        usd(7_500),
        1,
    )


def ordered(items: list[IncidentItem]) -> list[IncidentItem]:
    return sorted(items, key=lambda item: item.order)


# -- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumption", "state"),
    [
        (Fraction(0), PagingState.OK),
        (Fraction(1, 4) - Fraction(1, 10**12), PagingState.OK),
        (Fraction(1, 4), PagingState.WARN),
        (Fraction(2, 5), PagingState.WARN),
        (Fraction(1, 2), PagingState.WARN),
        (Fraction(1, 2) + Fraction(1, 10**12), PagingState.PAGE),
        (Fraction(3), PagingState.PAGE),
    ],
)
def test_paging_is_ok_below_a_quarter_warn_to_a_half_and_page_above(
    consumption: Fraction, state: PagingState
) -> None:
    assert POLICY.paging_state(consumption) is state


@pytest.mark.parametrize(
    ("consumption", "open_leaks", "big_leaks", "severity"),
    [
        (Fraction(5), 0, 0, 0),  # no open leak: no incident, whatever the consumption
        (Fraction(0), 1, 0, 4),
        (Fraction(1, 2), 1, 0, 4),
        (Fraction(1, 2) + Fraction(1, 10**9), 1, 0, 3),
        (Fraction(1), 1, 0, 3),
        (Fraction(1) + Fraction(1, 10**9), 1, 0, 2),
        (Fraction(2), 1, 0, 2),
        (Fraction(2) + Fraction(1, 10**9), 1, 0, 1),
        (Fraction(0), 50, 50, 4),
        (Fraction(0), 51, 51, 1),
        (Fraction(3, 4), 60, 51, 1),
    ],
)
def test_severity_ladder(
    consumption: Fraction, open_leaks: int, big_leaks: int, severity: int
) -> None:
    assert POLICY.severity(consumption, open_leaks, big_leaks) == severity


def test_severity_names() -> None:
    assert [severity_name(s) for s in range(5)] == ["none", "SEV1", "SEV2", "SEV3", "SEV4"]


# -- tracker --------------------------------------------------------------------------------


def test_the_first_open_leak_starts_a_sev4_with_its_top_leaks() -> None:
    tracker = IncidentTracker(CATALOG)
    out = tracker.advance([opened("L1", 7_500)])
    assert [(e.event, e.severity, e.at) for e in out.timeline] == [("severity", 4, T)]
    assert out.timeline[0].summary.startswith("SEV4: 1 open leaks")
    assert [leak.record_id for leak in out.timeline[0].top_leaks] == ["L1"]
    assert out.alerts == []


def test_consumption_is_the_revenue_at_risk_over_the_monthly_budget() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance(ordered([opened("L1", 7_500), at_risk("lead_response", 7_500)]))
    assert tracker.snapshot().consumption == 0.15
    out = tracker.advance([at_risk("next_step_hygiene", 5_000, time=T + 1)])
    assert tracker.snapshot().consumption == 0.25
    assert [(e.event, e.paging_state) for e in out.timeline] == [("paging", PagingState.WARN)]
    out = tracker.advance([at_risk("lead_response", 20_000, time=T + 2)])
    assert tracker.snapshot().consumption == 0.5
    assert out.timeline == []  # 0.5 is still WARN, and still SEV4
    out = tracker.advance([at_risk("lead_response", 20_001, time=T + 3)])
    assert [(e.event, e.paging_state) for e in out.timeline] == [
        ("paging", PagingState.PAGE),
        ("severity", PagingState.PAGE),
    ]
    assert out.timeline[1].severity == 3
    assert tracker.snapshot().severity == 3


def test_every_entry_of_one_instant_carries_the_state_after_it() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance([opened("L1", 7_500)])
    out = tracker.advance([at_risk("lead_response", 30_000, time=T + 1)])  # 0.6: PAGE and SEV3
    assert [(e.event, e.severity, e.paging_state) for e in out.timeline] == [
        ("paging", 3, PagingState.PAGE),
        ("severity", 3, PagingState.PAGE),
    ]


def test_budget_updates_of_a_non_revenue_slo_do_not_count() -> None:
    slos = tuple(
        dataclasses.replace(slo, budget_share=None) if slo.name == "data_quality" else slo
        for slo in CATALOG.slos
    )
    tracker = IncidentTracker(dataclasses.replace(CATALOG, slos=slos))
    tracker.advance([at_risk("data_quality", 40_000), at_risk("lead_response", 10_000)])
    assert tracker.snapshot().consumption == 0.2


def test_alerts_follow_the_reassessment_of_their_time_and_are_counted() -> None:
    tracker = IncidentTracker(CATALOG)
    out = tracker.advance(
        ordered(
            [
                alert("page", True),
                opened("L1", 7_500),
                at_risk("lead_response", 7_500),
                alert("ticket", True),
                alert("page", False, time=T + MINUTE_MS),
            ]
        )
    )
    assert [e.event for e in out.timeline] == [
        "severity",
        "page-firing",
        "ticket-firing",
        "page-resolved",
    ]
    assert out.timeline[1].summary == (
        "page fires: lead_response usd burn 1h/5m at 360.0×/4320.0×, blast radius 1"
    )
    assert len(out.alerts) == 3
    snapshot = tracker.snapshot()
    assert (snapshot.pages, snapshot.tickets) == (1, 1)


def test_closing_every_leak_resolves_the_incident() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance([opened("L1", 100), opened("L2", 100)])
    out = tracker.advance([closed("L1", time=T + 1)])
    assert out.timeline == []
    out = tracker.advance([closed("L2", time=T + 2)])
    assert [(e.event, e.severity, e.summary) for e in out.timeline] == [
        ("severity", 0, "resolved: no open leak")
    ]
    assert out.timeline[0].top_leaks == ()
    snapshot = tracker.snapshot()
    assert (snapshot.severity, snapshot.peak_severity, snapshot.open_leaks) == (0, 4, 0)


def test_more_than_fifty_big_leaks_is_sev1_whatever_the_consumption() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance([opened(f"L{i:02}", 10_000) for i in range(50)])
    assert tracker.snapshot().severity == 4
    tracker.advance([opened("small", 9_999.99, time=T + 1)])
    assert tracker.snapshot().severity == 4
    out = tracker.advance([opened("L50", 10_000, time=T + 2)])
    assert tracker.snapshot().severity == 1
    assert (tracker.snapshot().big_leaks, tracker.snapshot().open_leaks) == (51, 52)
    assert len(out.timeline[0].top_leaks) == 5
    tracker.advance([opened("L50", 10, time=T + 3)])  # re-opened smaller: no longer big
    assert tracker.snapshot().big_leaks == 50
    assert tracker.snapshot().severity == 4


def test_top_leaks_rank_by_impact_then_record_slo_and_rule() -> None:
    tracker = IncidentTracker(CATALOG, top=4)
    tracker.advance(
        [
            opened("B", 500),
            opened("A", 500, slo="next_step_hygiene", rule=Rule.NO_NEXT_STEP),
            opened("A", 500),
            opened("C", 9_000),
            opened("D", 1),
            opened("A", 500, slo="data_quality", rule=Rule.UNASSIGNED_OWNER),
        ]
    )
    assert [(leak.record_id, leak.slo) for leak in tracker.top_leaks()] == [
        ("C", "lead_response"),
        ("A", "data_quality"),
        ("A", "lead_response"),
        ("A", "next_step_hygiene"),
    ]
    assert tracker.top_leaks()[0].impact_usd == 9_000


def test_a_severity_that_gets_better_carries_no_leaks() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance(ordered([opened("L1", 7_500), at_risk("lead_response", 60_000)]))
    assert tracker.snapshot().severity == 2
    out = tracker.advance([at_risk("lead_response", 1_000, time=T + 1)])
    severity = [e for e in out.timeline if e.event == "severity"]
    assert [(e.severity, e.top_leaks) for e in severity] == [(4, ())]
    assert tracker.snapshot().peak_severity == 2
    assert tracker.snapshot().peak_paging_state is PagingState.PAGE


def test_timeline_records_have_the_documented_shape() -> None:
    tracker = IncidentTracker(CATALOG)
    out = tracker.advance([opened("L1", 7_500, owner="holly")])
    assert out.timeline[0].record() == {
        "at": "2026-03-02T10:00:00.000Z",
        "event": "severity",
        "summary": "SEV4: 1 open leaks (0 ≥ $10,000), 0% of the budget at risk",
        "severity": "SEV4",
        "paging_state": "OK",
        "consumption": 0.0,
        "top_leaks": [
            {
                "slo": "lead_response",
                "record_id": "L1",
                "rule": "SLA_BREACH_UNTOUCHED",
                "impact_usd": 7_500.0,
                "owner": "holly",
            }
        ],
    }


# -- against a brute-force model ------------------------------------------------------------

SLOS = ["lead_response", "deal_velocity", "next_step_hygiene", "data_quality"]


@st.composite
def incident_steps(draw: st.DrawFn) -> list[list[IncidentItem]]:
    steps: list[list[IncidentItem]] = []
    time = T
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        time += draw(st.sampled_from([0, 1, MINUTE_MS]))
        items: list[IncidentItem] = []
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            slo = draw(st.sampled_from(SLOS))
            if draw(st.booleans()):
                items.append(
                    BudgetUpdate(
                        slo,
                        time,
                        usd(
                            draw(
                                st.sampled_from(
                                    [0, 5_000, 12_500, 12_500.000001, 25_000, 50_000, 100_000]
                                )
                            )
                        ),
                    )
                )
            else:
                items.append(
                    LeakChange(
                        slo,
                        time,
                        draw(st.sampled_from("ABC")),
                        Rule.UNASSIGNED_OWNER,
                        draw(st.booleans()),
                        usd(draw(st.sampled_from([0, 9_999, 10_000]))),
                        "o",
                    )
                )
        steps.append(ordered(items))
    return steps


@given(steps=incident_steps())
def test_the_tracker_agrees_with_a_brute_force_model(steps: list[list[IncidentItem]]) -> None:
    tracker = IncidentTracker(CATALOG)
    latest: dict[str, int] = {}
    open_leaks: dict[tuple[str, str], int] = {}
    paging, severity = PagingState.OK, 0
    for items in steps:
        out = tracker.advance(items)
        for item in items:
            if isinstance(item, BudgetUpdate):
                latest[item.slo] = item.at_risk_picos
            elif isinstance(item, LeakChange):
                open_leaks.pop((item.slo, item.record_id), None)
                if item.opened:
                    open_leaks[(item.slo, item.record_id)] = item.impact_picos
        consumption = Fraction(sum(latest.values()), BUDGET_USD * PICOS_PER_USD)
        big = sum(1 for impact in open_leaks.values() if impact >= usd(10_000))
        expected_paging = POLICY.paging_state(consumption)
        expected_severity = POLICY.severity(consumption, len(open_leaks), big)
        snapshot = tracker.snapshot()
        assert snapshot.consumption == float(consumption)
        assert (snapshot.open_leaks, snapshot.big_leaks) == (len(open_leaks), big)
        assert (snapshot.paging_state, snapshot.severity) == (expected_paging, expected_severity)
        events = [entry.event for entry in out.timeline]
        if items:
            assert ("paging" in events) == (expected_paging != paging)
            assert ("severity" in events) == (expected_severity != severity)
        else:
            assert events == []
        paging, severity = expected_paging, expected_severity


def test_live_updates_are_full_first_then_net_changes() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance(ordered([opened("L1", 10_000), opened("L2", 20_000), alert("page", True)]))
    first = tracker.live_update()
    assert first.full
    assert {leak.record_id for leak in first.opened} == {"L1", "L2"}
    assert [a.firing for a in first.alerts] == [True]
    # Opened then closed within one step is no change at all.
    step = [closed("L1", time=T + 1), opened("L3", 5_000, time=T + 1), closed("L3", time=T + 2)]
    tracker.advance(ordered(step))
    delta = tracker.live_update()
    assert not delta.full
    assert delta.opened == ()
    assert delta.closed == (("lead_response", "L1", Rule.SLA_BREACH_UNTOUCHED),
                            ("lead_response", "L3", Rule.SLA_BREACH_UNTOUCHED))  # fmt: skip
    assert delta.summary.open_leaks == 1


def test_after_a_restore_the_first_live_update_lists_what_fires_then() -> None:
    tracker = IncidentTracker(CATALOG)
    tracker.advance(ordered([opened("L1", 10_000), alert("page", True), alert("ticket", True)]))
    tracker.live_update()
    tracker.advance([alert("page", False, time=T + MINUTE_MS)])
    tracker.restart_live_view()
    full = tracker.live_update()
    assert full.full
    assert [(a.severity, a.firing) for a in full.alerts] == [("ticket", True)]
    assert [leak.since for leak in full.opened] == [T]
