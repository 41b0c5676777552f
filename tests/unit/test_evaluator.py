"""revleak.slo.evaluator: one SLO's windows, burn rates, alert state machine and blast radius.

The property test compares the evaluator with a brute-force evaluator written from docs/semantics.md
§3–§4 alone: it visits every SLI event time and every minute boundary, recomputes every window
from scratch in exact arithmetic and fires/resolves each rule by the book.
"""

from __future__ import annotations

import dataclasses
import json
from bisect import bisect_right
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from harness import default_catalog
from hypothesis import given, settings
from hypothesis import strategies as st

from revleak.sli import LeakChange, SliEvent
from revleak.slo.alerts import AlertTransition, BudgetUpdate
from revleak.slo.catalog import (
    PICOS_PER_USD,
    AlertRule,
    BurnKind,
    Indicator,
    Rule,
    RuleImpact,
    Slo,
)
from revleak.slo.evaluator import SloEvaluator
from revleak.timefmt import DAY_MS, END_OF_TIME_MS, HOUR_MS, MINUTE_MS, parse_timestamp

CATALOG = default_catalog()
T0 = parse_timestamp("2026-03-02T00:00:00Z")
SEMANTICS = Path(__file__).resolve().parent.parent / "data" / "semantics"

Item = SliEvent | LeakChange


# A short period and short windows: old buckets are forgotten and dollars age out of the
# period within a few hours, which the 30-day defaults never show in a small test.
SHORT = Slo(
    name="short",
    display_name="short",
    description="",
    service="lead",
    indicator=Indicator.LEAD_RESPONSE,
    target=Fraction(9, 10),
    period_ms=3 * HOUR_MS,
    alert_rules=(
        AlertRule("page", 30 * MINUTE_MS, 5 * MINUTE_MS, Fraction(6)),
        AlertRule("ticket", 2 * HOUR_MS, 10 * MINUTE_MS, Fraction(2)),
    ),
    rules=(RuleImpact(Rule.SLA_BREACH_UNTOUCHED, Fraction(1, 2)),),
    threshold_ms=30 * MINUTE_MS,
    budget_share=Fraction(1, 10),
)


def evaluator_for(name: str, min_events: int = 0) -> SloEvaluator:
    slo = SHORT if name == "short" else CATALOG.by_name(name)
    slo = dataclasses.replace(slo, min_events=min_events)
    return SloEvaluator(slo, CATALOG.budget_usd(slo) if slo.is_revenue else None)


def run(
    evaluator: SloEvaluator, chunks: list[tuple[list[Item], int]]
) -> tuple[list[AlertTransition], list[BudgetUpdate], list[LeakChange]]:
    transitions: list[AlertTransition] = []
    budgets: list[BudgetUpdate] = []
    leaks: list[LeakChange] = []
    for items, watermark in chunks:
        out = evaluator.advance(items, watermark)
        transitions += out.transitions
        budgets += out.budget_updates
        leaks += out.leaks
    return transitions, budgets, leaks


# -- the brute-force evaluator -------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    at: int
    kind: BurnKind
    severity: str
    long_ms: int
    short_ms: int
    firing: bool
    burn_long: float
    burn_short: float
    budget_remaining: float
    at_risk_picos: int
    blast_radius: int


def of(transition: AlertTransition) -> Expected:
    return Expected(
        transition.at,
        transition.kind,
        transition.severity,
        transition.long_ms,
        transition.short_ms,
        transition.firing,
        transition.burn_long,
        transition.burn_short,
        transition.budget_remaining,
        transition.at_risk_picos,
        transition.blast_radius,
    )


class BruteForce:
    """docs/semantics.md §3–§4 read literally; slow and obvious."""

    def __init__(self, slo: Slo, budget_usd: Fraction | None, items: list[Item]) -> None:
        self.slo = slo
        self.budget = budget_usd
        self.events = sorted((i for i in items if isinstance(i, SliEvent)), key=lambda e: e.time)
        self.leaks = [i for i in items if isinstance(i, LeakChange)]
        self.times = [e.time for e in self.events]
        self.buckets = [e.time // MINUTE_MS for e in self.events]
        # Sums of the first i events (for speed only: each window is still two prefixes apart).
        self.prefix = [(0, 0, 0)]
        for e in self.events:
            total, bad, picos = self.prefix[-1]
            self.prefix.append(
                (total + 1, bad + (not e.good), picos + (0 if e.good else e.weight_picos))
            )
        self.cache: dict[Any, bool] = {}

    def window(self, t: int, window_ms: int) -> tuple[int, int, int]:
        """(total, bad, bad dollars in picos) of the events ≤ t in buckets (b(t) − w, b(t)]."""
        upto = bisect_right(self.times, t)  # events at or before t
        since = bisect_right(self.buckets, t // MINUTE_MS - window_ms // MINUTE_MS)
        if since >= upto:
            return 0, 0, 0
        high, low = self.prefix[upto], self.prefix[since]
        return high[0] - low[0], high[1] - low[1], high[2] - low[2]

    def burn(self, kind: BurnKind, sums: tuple[int, int, int], window_ms: int) -> Fraction:
        total, bad, picos = sums
        if kind is BurnKind.COUNT:
            return Fraction(0) if total == 0 else Fraction(bad, total) / (1 - self.slo.target)
        assert self.budget is not None
        return (Fraction(picos, PICOS_PER_USD) / self.budget) * Fraction(
            self.slo.period_ms, window_ms
        )

    def remaining(self, kind: BurnKind, period: tuple[int, int, int]) -> Fraction:
        total, bad, picos = period
        if kind is BurnKind.COUNT:
            return Fraction(1) if total == 0 else 1 - bad / ((1 - self.slo.target) * total)
        assert self.budget is not None
        return 1 - Fraction(picos, PICOS_PER_USD) / self.budget

    def fires(
        self,
        kind: BurnKind,
        rule: AlertRule,
        long: tuple[int, int, int],
        short: tuple[int, int, int],
    ) -> bool:
        key = (
            kind,
            rule.long_ms,
            rule.short_ms,
            rule.factor.numerator,
            rule.factor.denominator,
            long,
            short,
        )  # memo only: the same sums give the same answer
        if key not in self.cache:
            self.cache[key] = (
                self.burn(kind, long, rule.long_ms) > rule.factor
                and self.burn(kind, short, rule.short_ms) > rule.factor
                and (kind is BurnKind.USD or long[0] >= self.slo.min_events)
            )
        return self.cache[key]

    def blast_radius(self, t: int) -> int:
        return sum(1 if leak.opened else -1 for leak in self.leaks if leak.time <= t)

    def run(self, last_point: int) -> tuple[list[Expected], list[tuple[int, int]]]:
        if not self.events:
            return [], []
        first = self.times[0]
        first_boundary = -(-first // MINUTE_MS) * MINUTE_MS
        points = sorted(set(self.times) | set(range(first_boundary, last_point + 1, MINUTE_MS)))
        kinds = [BurnKind.COUNT] + ([BurnKind.USD] if self.budget is not None else [])
        rules = [(kind, rule) for kind in kinds for rule in self.slo.alert_rules]
        firing = dict.fromkeys(rules, False)
        transitions: list[Expected] = []
        budgets: list[tuple[int, int]] = []
        at_risk_before = 0
        sizes = (
            {self.slo.period_ms}
            | {r.long_ms for r in self.slo.alert_rules}
            | {r.short_ms for r in self.slo.alert_rules}
        )
        for t in points:
            sums = {window_ms: self.window(t, window_ms) for window_ms in sizes}
            period = sums[self.slo.period_ms]
            for kind, rule in rules:
                long, short = sums[rule.long_ms], sums[rule.short_ms]
                now = self.fires(kind, rule, long, short)
                if now == firing[(kind, rule)]:
                    continue
                firing[(kind, rule)] = now
                transitions.append(
                    Expected(
                        at=t,
                        kind=kind,
                        severity=rule.severity,
                        long_ms=rule.long_ms,
                        short_ms=rule.short_ms,
                        firing=now,
                        burn_long=float(self.burn(kind, long, rule.long_ms)),
                        burn_short=float(self.burn(kind, short, rule.short_ms)),
                        budget_remaining=float(self.remaining(kind, period)),
                        at_risk_picos=period[2],
                        blast_radius=self.blast_radius(t),
                    )
                )
            if period[2] != at_risk_before:
                at_risk_before = period[2]
                budgets.append((t, period[2]))
        assert not any(firing.values()), "every alert resolves once the windows are empty"
        return transitions, budgets


# -- random SLI streams --------------------------------------------------------------------

GAPS_MS = [
    0,
    0,
    30_000,
    MINUTE_MS,
    MINUTE_MS,
    5 * MINUTE_MS,
    5 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    6 * HOUR_MS,
    DAY_MS,
]
# Dollar weights at the edges of lead_response's usd thresholds (25, 125, 300, 1500 ...).
WEIGHTS_USD = [0, 25, 125, 300, 500, 1_500, 7_500, 20_000]


@st.composite
def sli_streams(draw: st.DrawFn, slo: str) -> list[Item]:
    count = draw(st.integers(min_value=0, max_value=25))
    bad_in_ten = draw(st.sampled_from([1, 5, 9, 10]))
    time = T0 + draw(st.sampled_from([0, 30_000, 59_999]))
    items: list[Item] = []
    open_records: list[str] = []
    for index in range(count):
        time += draw(st.sampled_from(GAPS_MS))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            if open_records and draw(st.booleans()):
                record = open_records.pop(draw(st.integers(0, len(open_records) - 1)))
                items.append(LeakChange(slo, time, record, Rule.SLA_BREACH_UNTOUCHED, False))
            else:
                open_records.append(f"r{index}")
                items.append(LeakChange(slo, time, f"r{index}", Rule.SLA_BREACH_UNTOUCHED, True))
            continue
        good = draw(st.integers(min_value=1, max_value=10)) > bad_in_ten
        weight = draw(st.sampled_from(WEIGHTS_USD)) * PICOS_PER_USD
        weight += draw(st.sampled_from([0, 0, 1, -1])) if weight else 0
        items.append(SliEvent(slo, time, good, weight, f"e{index}"))
    return items


@st.composite
def chunked(draw: st.DrawFn, items: list[Item]) -> list[tuple[list[Item], int]]:
    """Split at distinct times; each watermark is above its chunk and at most the next time."""
    times = sorted({item.time for item in items})
    cuts = sorted(draw(st.sets(st.sampled_from(times), max_size=6)) if times else set())
    groups: list[list[Item]] = []
    start = 0
    for cut in [*cuts, None]:
        end = (
            len(items)
            if cut is None
            else next(i for i, item in enumerate(items) if item.time >= cut)
        )
        if end > start or cut is None:
            groups.append(items[start:end])
        start = end
    chunks: list[tuple[list[Item], int]] = []
    floor = T0 - DAY_MS
    for index, group in enumerate(groups):
        upper = groups[index + 1][0].time if index + 1 < len(groups) else None
        low = (group[-1].time + 1) if group else floor
        high = upper if upper is not None else low + 6 * HOUR_MS
        if group and draw(st.booleans()):  # an advance with nothing new before this chunk
            chunks.append(([], draw(st.integers(min_value=floor, max_value=group[0].time))))
        watermark = draw(st.integers(min_value=low, max_value=max(low, high)))
        chunks.append((group, watermark))
        floor = watermark
    chunks.append(([], END_OF_TIME_MS))
    return chunks


# The brute force visits every minute: 2/5 of the profile's examples (80 in CI).
@settings(max_examples=settings.default.max_examples * 2 // 5)
@given(
    data=st.data(),
    slo=st.sampled_from(["lead_response", "data_quality", "deal_velocity", "short"]),
    min_events=st.sampled_from([0, 0, 1, 3, 6]),
)
def test_transitions_equal_a_brute_force_evaluator_for_any_chunking(
    data: st.DataObject, slo: str, min_events: int
) -> None:
    items = data.draw(sli_streams(slo), label="items")
    chunks = data.draw(chunked(items), label="chunks")
    evaluator = evaluator_for(slo, min_events)
    transitions, budgets, leaks = run(evaluator, chunks)

    sli_times = [item.time for item in items if isinstance(item, SliEvent)]
    # Points are evaluated below every watermark given; at the end of input, until every alert
    # window is empty (docs/semantics.md §4), not until the whole budget period has aged out.
    longest = max(rule.long_ms for rule in evaluator.slo.alert_rules)
    last_point = (max(sli_times) if sli_times else T0) + longest + MINUTE_MS
    last_point = max([last_point, *(watermark - 1 for _, watermark in chunks[:-1])])
    expected, expected_budgets = BruteForce(
        evaluator.slo, CATALOG.budget_usd(evaluator.slo), items
    ).run(last_point)

    assert [of(t) for t in transitions] == expected
    assert [(b.time, b.at_risk_picos) for b in budgets] == expected_budgets
    assert leaks == [item for item in items if isinstance(item, LeakChange)]


# -- examples ------------------------------------------------------------------------------


def example_01_items() -> list[Item]:
    """The SLI events and leaks of worked example 01 (two leads, one touched late)."""
    at = parse_timestamp
    return [
        SliEvent("lead_response", at("2026-03-02T10:20:00Z"), True, 0, "L2"),
        SliEvent("lead_response", at("2026-03-02T10:30:00Z"), False, 7_500 * PICOS_PER_USD, "L1"),
        LeakChange(
            "lead_response",
            at("2026-03-02T10:30:00Z"),
            "L1",
            Rule.SLA_BREACH_UNTOUCHED,
            opened=True,
            impact_picos=7_500 * PICOS_PER_USD,
        ),
        LeakChange(
            "lead_response",
            at("2026-03-02T10:45:00Z"),
            "L1",
            Rule.SLA_BREACH_UNTOUCHED,
            opened=False,
        ),
    ]


def test_worked_example_01_gives_its_alert_log() -> None:
    expected = [
        json.loads(line)
        for line in (SEMANTICS / "01-lead-response.alerts.jsonl").read_text().splitlines()
        if line.strip()
    ]
    transitions, _, _ = run(evaluator_for("lead_response"), [(example_01_items(), END_OF_TIME_MS)])
    # Within one time the evaluator already emits the log's order (kind, severity, window).
    assert [t.record() for t in transitions] == expected


def test_worked_example_01_fires_nothing_on_the_first_page_rule_for_count() -> None:
    # 1 bad of 2 burns 10×, below 14.4: the 1h/5m page rule stays quiet for count.
    transitions, _, _ = run(evaluator_for("lead_response"), [(example_01_items(), END_OF_TIME_MS)])
    assert not [t for t in transitions if t.kind is BurnKind.COUNT and t.long_ms == HOUR_MS]


def test_the_same_items_delivered_minute_by_minute_give_the_same_log() -> None:
    items = example_01_items()
    whole, _, _ = run(evaluator_for("lead_response"), [(items, END_OF_TIME_MS)])
    chunks = [([item], item.time + 1) for item in items[:1]]
    chunks += [(items[1:3], items[1].time + 1), (items[3:], items[3].time + 1)]
    chunks.append(([], END_OF_TIME_MS))
    stepped, _, _ = run(evaluator_for("lead_response"), chunks)
    assert stepped == whole


def test_nothing_is_evaluated_at_or_after_the_watermark() -> None:
    items = example_01_items()
    evaluator = evaluator_for("lead_response")
    out = evaluator.advance(items[:1], items[1].time)  # the bad event is not yet below W
    assert out.transitions == []
    out = evaluator.advance(items[1:3], items[1].time + 1)
    assert {t.at for t in out.transitions} == {items[1].time}


def test_min_events_keeps_a_single_bad_event_from_paging_on_count_only() -> None:
    bad = SliEvent("lead_response", T0, False, 7_500 * PICOS_PER_USD, "L1")
    quiet, _, _ = run(evaluator_for("lead_response", min_events=2), [([bad], END_OF_TIME_MS)])
    assert {t.kind for t in quiet} == {BurnKind.USD}
    loud, _, _ = run(evaluator_for("lead_response"), [([bad], END_OF_TIME_MS)])
    assert {t.kind for t in loud} == {BurnKind.COUNT, BurnKind.USD}


def test_min_events_counts_the_long_window_not_the_short() -> None:
    # Two bad events 30 min apart: the 1h window holds 2, the 5m window 1.
    events = [
        SliEvent("lead_response", T0, False, 0, "a"),
        SliEvent("lead_response", T0 + 30 * MINUTE_MS, False, 0, "b"),
    ]
    transitions, _, _ = run(
        evaluator_for("lead_response", min_events=2), [(events, END_OF_TIME_MS)]
    )
    first_page = [t for t in transitions if t.long_ms == HOUR_MS]
    assert first_page[0].at == T0 + 30 * MINUTE_MS
    assert first_page[0].firing


def test_a_non_revenue_slo_has_count_rules_only() -> None:
    slo = CATALOG.by_name("lead_response")
    evaluator = SloEvaluator(slo, None)
    bad = SliEvent("lead_response", T0, False, 7_500 * PICOS_PER_USD, "L1")
    transitions = evaluator.advance([bad], END_OF_TIME_MS).transitions
    assert transitions
    assert {t.kind for t in transitions} == {BurnKind.COUNT}


def test_every_alert_resolves_at_end_of_input() -> None:
    items = example_01_items()
    transitions, _, _ = run(evaluator_for("lead_response"), [(items, END_OF_TIME_MS)])
    state: dict[tuple[BurnKind, int], bool] = {}
    for transition in transitions:
        state[(transition.kind, transition.long_ms)] = transition.firing
    assert state
    assert not any(state.values())
    assert max(t.at for t in transitions) <= items[1].time + 3 * DAY_MS


def test_blast_radius_counts_open_leaks_at_each_transition() -> None:
    transitions, _, leaks = run(
        evaluator_for("lead_response"), [(example_01_items(), END_OF_TIME_MS)]
    )
    radius = {t.at: t.blast_radius for t in transitions}
    assert radius[parse_timestamp("2026-03-02T10:30:00Z")] == 1
    assert radius[parse_timestamp("2026-03-02T10:35:00Z")] == 1
    assert radius[parse_timestamp("2026-03-02T11:00:00Z")] == 0
    assert [leak.opened for leak in leaks] == [True, False]


def test_snapshot_reports_the_latest_point() -> None:
    evaluator = evaluator_for("lead_response")
    run(evaluator, [(example_01_items()[:3], parse_timestamp("2026-03-02T10:30:00.001Z"))])
    snapshot = evaluator.snapshot()
    assert snapshot.at == parse_timestamp("2026-03-02T10:30:00Z")
    assert (snapshot.good, snapshot.bad) == (1, 1)
    assert snapshot.bad_picos == 7_500 * PICOS_PER_USD
    assert snapshot.at_risk_picos == 7_500 * PICOS_PER_USD
    assert snapshot.blast_radius == 1
    assert snapshot.burn_rates[(BurnKind.COUNT, 6 * HOUR_MS)] == 10.0
    assert snapshot.burn_rates[(BurnKind.USD, HOUR_MS)] == 360.0
    assert snapshot.budget_remaining == {BurnKind.COUNT: -9.0, BurnKind.USD: 0.5}
    assert snapshot.firing == {"page": 3, "ticket": 4}


def test_snapshot_before_any_event_is_empty() -> None:
    snapshot = evaluator_for("data_quality").snapshot()
    assert (snapshot.good, snapshot.bad, snapshot.blast_radius, snapshot.at_risk_picos) == (
        0,
        0,
        0,
        0,
    )
    assert set(snapshot.burn_rates.values()) == {0.0}
    assert snapshot.budget_remaining == {BurnKind.COUNT: 1.0, BurnKind.USD: 1.0}
