"""One SLO over event time: windows, burn rates, alert state machine, blast radius.

Evaluation points (docs/semantics.md §4) are every distinct SLI event time and every
minute boundary. Between two events of the same minute no window loses a
bucket, and at a boundary a window changes only if the bucket it drops held
events; so the evaluator visits event times plus the boundaries
``bucket + window`` of non-empty buckets — exactly the points where a rule's
state can change — and gets the same transitions as visiting every minute.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from revleak.sli import LeakChange, SliEvent
from revleak.slo.alerts import AlertTransition, BudgetUpdate
from revleak.slo.burn import (
    CountThreshold,
    UsdThreshold,
    count_budget_remaining,
    count_burn,
    usd_budget_remaining,
    usd_burn,
)
from revleak.slo.catalog import AlertRule, BurnKind, Slo
from revleak.slo.windows import BucketSeries, WindowSums
from revleak.timefmt import END_OF_TIME_MS, MINUTE_MS

_NEVER = -(1 << 62)


@dataclass(slots=True)
class _RuleState:
    kind: BurnKind
    rule: AlertRule
    count_threshold: CountThreshold
    usd_long: UsdThreshold | None
    usd_short: UsdThreshold | None
    firing: bool = False

    @property
    def long_minutes(self) -> int:
        return self.rule.long_ms // MINUTE_MS

    @property
    def short_minutes(self) -> int:
        return self.rule.short_ms // MINUTE_MS


@dataclass(slots=True)
class EvaluatorOutput:
    transitions: list[AlertTransition] = field(default_factory=list)
    budget_updates: list[BudgetUpdate] = field(default_factory=list)
    leaks: list[LeakChange] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SloSnapshot:
    """The latest state of one SLO, for metrics and summaries."""

    slo: str
    at: int
    burn_rates: dict[tuple[BurnKind, int], float]
    budget_remaining: dict[BurnKind, float]
    at_risk_picos: int
    blast_radius: int
    firing: dict[str, int]
    good: int
    bad: int
    bad_picos: int


class SloEvaluator:
    def __init__(self, slo: Slo, budget_usd: Fraction | None) -> None:
        self.slo = slo
        self._budget_usd = budget_usd
        self._period_minutes = slo.period_ms // MINUTE_MS
        self._series = BucketSeries(retain_minutes=self._period_minutes)
        self._window_minutes = sorted(
            {rule.long_ms // MINUTE_MS for rule in slo.alert_rules}
            | {rule.short_ms // MINUTE_MS for rule in slo.alert_rules}
            | {self._period_minutes}
        )
        kinds = [BurnKind.COUNT] + ([BurnKind.USD] if budget_usd is not None else [])
        self._rules = [
            _RuleState(
                kind=kind,
                rule=rule,
                count_threshold=CountThreshold.of(rule.factor, slo.target),
                usd_long=self._usd_threshold(rule.factor, rule.long_ms),
                usd_short=self._usd_threshold(rule.factor, rule.short_ms),
            )
            for kind in kinds
            for rule in slo.alert_rules
        ]
        self._boundaries: list[int] = []
        # Cumulative sums where each window starts, for the bucket last evaluated.
        self._starts_bucket = _NEVER
        self._starts: dict[int, tuple[int, int, int]] = {}
        self._added_good = self._added_bad = False
        self._longest_alert_ms = max(rule.long_ms for rule in slo.alert_rules)
        self._last_sli_bucket_end = _NEVER
        self._blast_radius = 0
        self._at_risk_reported = 0
        self._last_point = _NEVER
        self._good = self._bad = self._bad_picos = 0
        self._out = EvaluatorOutput()

    def _usd_threshold(self, factor: Fraction, window_ms: int) -> UsdThreshold | None:
        if self._budget_usd is None:
            return None
        return UsdThreshold.of(factor, self._budget_usd, self.slo.period_ms, window_ms)

    def advance(self, items: Sequence[SliEvent | LeakChange], watermark: int) -> EvaluatorOutput:
        """Apply ``items`` (time order, all before ``watermark``); evaluate the points before it."""
        self._out = EvaluatorOutput()
        index, count = 0, len(items)
        while index < count:
            time = items[index].time
            self._evaluate_boundaries_before(time)
            saw_sli = False
            while index < count and items[index].time == time:
                item = items[index]
                if isinstance(item, SliEvent):
                    self._count(item)
                    saw_sli = True
                else:
                    self._blast_radius += 1 if item.opened else -1
                    self._out.leaks.append(item)
                index += 1
            at_boundary = False
            while self._boundaries and self._boundaries[0] == time:
                heapq.heappop(self._boundaries)
                at_boundary = True
            if saw_sli or at_boundary:
                self._evaluate(time, boundary=at_boundary)
        if watermark >= END_OF_TIME_MS:
            # End of input: go on until every alert window is empty (so every alert
            # resolves), and stop there rather than ageing out the whole budget period.
            watermark = self._last_sli_bucket_end + self._longest_alert_ms + MINUTE_MS
        self._evaluate_boundaries_before(watermark)
        return self._out

    def _count(self, event: SliEvent) -> None:
        if event.good:
            self._good += 1
            self._added_good = True
        else:
            self._bad += 1
            self._bad_picos += event.weight_picos
            self._added_bad = True
        if self._series.add(event.time, good=event.good, weight_picos=event.weight_picos):
            bucket_start = event.time - event.time % MINUTE_MS
            self._last_sli_bucket_end = bucket_start + MINUTE_MS
            for minutes in self._window_minutes:
                heapq.heappush(self._boundaries, bucket_start + minutes * MINUTE_MS)

    def _evaluate_boundaries_before(self, time: int) -> None:
        while self._boundaries and self._boundaries[0] < time:
            boundary = heapq.heappop(self._boundaries)
            while self._boundaries and self._boundaries[0] == boundary:
                heapq.heappop(self._boundaries)
            self._evaluate(boundary, boundary=True)

    def _sums(self, time: int) -> dict[int, WindowSums]:
        bucket = time // MINUTE_MS
        return {minutes: self._series.window(bucket, minutes) for minutes in self._window_minutes}

    def _evaluate(self, time: int, *, boundary: bool) -> None:
        """Evaluate the rules at ``time``, with integer sums only (this is the hot path).

        At a boundary a window may have lost a bucket: every rule is evaluated. At an event
        time the windows only gained events since the last point, and a burn rate moves one
        way then: good events can only lower a count burn, bad events only raise it, and a
        dollar burn only rises. Rules that cannot change state are skipped.
        """
        self._last_point = time
        bucket = time // MINUTE_MS
        if bucket != self._starts_bucket:
            self._starts_bucket = bucket
            self._starts = {
                minutes: self._series.through(bucket - minutes) for minutes in self._window_minutes
            }
        starts = self._starts
        total, bad, picos = self._series.cumulative()
        added_good, added_bad = self._added_good, self._added_bad
        self._added_good = self._added_bad = False
        min_events = self.slo.min_events
        for state in self._rules:
            long_total, long_bad, long_picos = starts[state.long_minutes]
            short_total, short_bad, short_picos = starts[state.short_minutes]
            if state.kind is BurnKind.COUNT:
                if not boundary and not (
                    added_good if state.firing else added_bad or (min_events and added_good)
                ):
                    continue
                threshold = state.count_threshold
                firing = (
                    threshold.exceeded(bad - long_bad, total - long_total)
                    and threshold.exceeded(bad - short_bad, total - short_total)
                    and total - long_total >= min_events
                )
            else:
                if not boundary and (state.firing or not added_bad):
                    continue
                assert state.usd_long is not None
                assert state.usd_short is not None
                firing = state.usd_long.exceeded(picos - long_picos) and state.usd_short.exceeded(
                    picos - short_picos
                )
            if firing != state.firing:
                state.firing = firing
                self._out.transitions.append(self._transition(state, time))
        at_risk = picos - starts[self._period_minutes][2]
        if at_risk != self._at_risk_reported:
            self._at_risk_reported = at_risk
            self._out.budget_updates.append(BudgetUpdate(self.slo.name, time, at_risk))

    def _transition(self, state: _RuleState, time: int) -> AlertTransition:
        rule = state.rule
        sums = self._sums(time)
        return AlertTransition(
            slo=self.slo.name,
            severity=rule.severity,
            kind=state.kind,
            long_ms=rule.long_ms,
            short_ms=rule.short_ms,
            firing=state.firing,
            at=time,
            burn_long=float(self._burn(state.kind, sums[rule.long_ms // MINUTE_MS], rule.long_ms)),
            burn_short=float(
                self._burn(state.kind, sums[rule.short_ms // MINUTE_MS], rule.short_ms)
            ),
            budget_remaining=float(self._remaining(state.kind, sums[self._period_minutes])),
            at_risk_picos=sums[self._period_minutes].bad_picos,
            blast_radius=self._blast_radius,
        )

    def _burn(self, kind: BurnKind, sums: WindowSums, window_ms: int) -> Fraction:
        if kind is BurnKind.COUNT:
            return count_burn(sums, self.slo.target)
        assert self._budget_usd is not None
        return usd_burn(sums.bad_picos, self._budget_usd, self.slo.period_ms, window_ms)

    def _remaining(self, kind: BurnKind, period: WindowSums) -> Fraction:
        if kind is BurnKind.COUNT:
            return count_budget_remaining(period, self.slo.target)
        assert self._budget_usd is not None
        return usd_budget_remaining(period.bad_picos, self._budget_usd)

    def snapshot(self) -> SloSnapshot:
        """State at the latest evaluation point."""
        time = self._last_point
        sums = (
            self._sums(time) if time != _NEVER else {m: WindowSums() for m in self._window_minutes}
        )
        kinds = list(dict.fromkeys(state.kind for state in self._rules))
        firing: dict[str, int] = {}
        for state in self._rules:
            firing[state.rule.severity] = firing.get(state.rule.severity, 0) + int(state.firing)
        return SloSnapshot(
            slo=self.slo.name,
            at=time,
            burn_rates={
                (kind, minutes * MINUTE_MS): float(
                    self._burn(kind, sums[minutes], minutes * MINUTE_MS)
                )
                for kind in kinds
                for minutes in self._window_minutes
            },
            budget_remaining={
                kind: float(self._remaining(kind, sums[self._period_minutes])) for kind in kinds
            },
            at_risk_picos=sums[self._period_minutes].bad_picos,
            blast_radius=self._blast_radius,
            firing=firing,
            good=self._good,
            bad=self._bad,
            bad_picos=self._bad_picos,
        )
