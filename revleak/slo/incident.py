"""The revenue incident: budget consumption, paging state, severity (docs/semantics.md §3).

Consumption is the dollars at risk over each revenue SLO's trailing period,
summed, over the monthly budget. Severity looks at consumption and at the open
leaks (the blast radius of every SLO): no open leak means no incident.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Any

from revleak.sli import LeakChange
from revleak.slo.alerts import AlertTransition, BudgetUpdate
from revleak.slo.catalog import PICOS_PER_USD, Rule, SloCatalog
from revleak.timefmt import format_duration, format_timestamp


class PagingState(IntEnum):
    OK = 0
    WARN = 1
    PAGE = 2


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    warn_from: Fraction = Fraction(1, 4)
    page_above: Fraction = Fraction(1, 2)
    sev1_above: Fraction = Fraction(2)
    sev2_above: Fraction = Fraction(1)
    sev3_above: Fraction = Fraction(1, 2)
    big_leak_usd: Fraction = Fraction(10_000)
    sev1_big_leaks_above: int = 50

    def paging_state(self, consumption: Fraction) -> PagingState:
        if consumption > self.page_above:
            return PagingState.PAGE
        if consumption >= self.warn_from:
            return PagingState.WARN
        return PagingState.OK

    def severity(self, consumption: Fraction, open_leaks: int, big_leaks: int) -> int:
        """1 (worst) to 4, or 0 when no leak is open."""
        if open_leaks == 0:
            return 0
        if consumption > self.sev1_above or big_leaks > self.sev1_big_leaks_above:
            return 1
        if consumption > self.sev2_above:
            return 2
        if consumption > self.sev3_above:
            return 3
        return 4


def severity_name(severity: int) -> str:
    return f"SEV{severity}" if severity else "none"


@dataclass(frozen=True, slots=True)
class Leak:
    slo: str
    record_id: str
    rule: Rule
    impact_picos: int
    owner: str
    since: int = 0  # event time of the bad event that opened it

    @property
    def impact_usd(self) -> float:
        return self.impact_picos / PICOS_PER_USD

    @property
    def key(self) -> LeakKey:
        return (self.slo, self.record_id, self.rule)


LeakKey = tuple[str, str, Rule]  # (slo, record_id, rule): one entry of an SLO's blast radius


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: int
    event: str
    summary: str
    severity: int
    paging_state: PagingState
    consumption: float
    top_leaks: tuple[Leak, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "at": format_timestamp(self.at),
            "event": self.event,
            "summary": self.summary,
            "severity": severity_name(self.severity),
            "paging_state": self.paging_state.name,
            "consumption": self.consumption,
            "top_leaks": [
                {
                    "slo": leak.slo,
                    "record_id": leak.record_id,
                    "rule": leak.rule.value,
                    "impact_usd": leak.impact_usd,
                    "owner": leak.owner,
                }
                for leak in self.top_leaks
            ],
        }


@dataclass(frozen=True, slots=True)
class IncidentSnapshot:
    at: int
    consumption: float
    paging_state: PagingState
    severity: int
    open_leaks: int
    big_leaks: int
    at_risk_picos: dict[str, int]
    peak_severity: int
    peak_paging_state: PagingState
    pages: int
    tickets: int
    # Ranking every open leak is not free: filled only for a final report.
    top_leaks: tuple[Leak, ...] = ()
    top_owners: tuple[OwnerExposure, ...] = ()


@dataclass(frozen=True, slots=True)
class OwnerExposure:
    owner: str
    leaks: int
    impact_picos: int

    @property
    def impact_usd(self) -> float:
        return self.impact_picos / PICOS_PER_USD


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """What a live view (Redis, a war room) needs to follow the incident.

    ``opened`` and ``closed`` are the net blast-radius changes since the previous
    update and ``alerts`` the alert transitions since then; a ``full`` update instead
    lists every open leak in ``opened`` and every firing alert in ``alerts``, and
    replaces whatever the view held (the first update after a start or restore).
    """

    at: int
    opened: tuple[Leak, ...]
    closed: tuple[LeakKey, ...]
    alerts: tuple[AlertTransition, ...]
    summary: IncidentSnapshot
    full: bool = False


@dataclass(slots=True)
class IncidentOutput:
    alerts: list[AlertTransition] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)


IncidentItem = LeakChange | BudgetUpdate | AlertTransition


class IncidentTracker:
    def __init__(
        self, catalog: SloCatalog, policy: IncidentPolicy | None = None, top: int = 5
    ) -> None:
        self._policy = policy or IncidentPolicy()
        self._budget_picos = catalog.revenue.monthly_budget_usd * PICOS_PER_USD
        self._revenue_slos = frozenset(slo.name for slo in catalog.slos if slo.is_revenue)
        self._big_picos = self._policy.big_leak_usd * PICOS_PER_USD
        self._top = top
        self._at_risk: dict[str, int] = {}
        self._consumption = Fraction(0)
        self._leaks: dict[LeakKey, Leak] = {}
        # Blast-radius entries changed since the last live update (None: send everything).
        self._dirty: set[LeakKey] | None = None
        self._firing: dict[tuple[str, str, str, int], AlertTransition] = {}
        self._big_leaks = 0
        self._severity = 0
        self._paging = PagingState.OK
        self._peak_severity = 0
        self._peak_paging = PagingState.OK
        self._pages = self._tickets = 0
        self._at = -(1 << 62)

    def advance(self, items: Sequence[IncidentItem]) -> IncidentOutput:
        """Apply items (sorted by their ``order``) and report what changed, in order."""
        out = IncidentOutput()
        index, count = 0, len(items)
        while index < count:
            time = items[index].time
            transitions: list[AlertTransition] = []
            while index < count and items[index].time == time:
                item = items[index]
                if isinstance(item, AlertTransition):
                    transitions.append(item)
                else:
                    self._apply(item)
                index += 1
            self._at = time
            self._reassess(time, out)
            for transition in transitions:
                self._record_alert(transition, out)
        return out

    def _apply(self, item: LeakChange | BudgetUpdate) -> None:
        if isinstance(item, BudgetUpdate):
            if item.slo in self._revenue_slos:
                total = sum(self._at_risk.get(slo, 0) for slo in self._revenue_slos)
                total += item.at_risk_picos - self._at_risk.get(item.slo, 0)
                self._consumption = Fraction(total) / self._budget_picos
            self._at_risk[item.slo] = item.at_risk_picos
        elif isinstance(item, LeakChange):
            key = (item.slo, item.record_id, item.rule)
            if self._dirty is not None:
                self._dirty.add(key)
            previous = self._leaks.pop(key, None)
            if previous is not None and previous.impact_picos >= self._big_picos:
                self._big_leaks -= 1
            if item.opened:
                leak = Leak(
                    item.slo, item.record_id, item.rule, item.impact_picos, item.owner, item.time
                )
                self._leaks[key] = leak
                if leak.impact_picos >= self._big_picos:
                    self._big_leaks += 1

    def _record_alert(self, item: AlertTransition, out: IncidentOutput) -> None:
        out.alerts.append(item)
        rule = (item.slo, item.kind.value, item.severity, item.long_ms)
        if item.firing:
            self._firing[rule] = item
        else:
            self._firing.pop(rule, None)
        if item.firing:
            if item.severity == "page":
                self._pages += 1
            else:
                self._tickets += 1
        verb = "fires" if item.firing else "resolves"
        out.timeline.append(
            self._entry(
                item.at,
                f"{item.severity}-{item.state}",
                f"{item.severity} {verb}: {item.slo} {item.kind.value} burn "
                f"{format_duration(item.long_ms)}/{format_duration(item.short_ms)} at "
                f"{item.burn_long:.1f}×/{item.burn_short:.1f}×, blast radius "
                f"{item.blast_radius}",
            )
        )

    def _reassess(self, time: int, out: IncidentOutput) -> None:
        consumption = self._consumption
        paging = self._policy.paging_state(consumption)
        severity = self._policy.severity(consumption, len(self._leaks), self._big_leaks)
        paging_changed = paging != self._paging
        worse = severity and (not self._severity or severity < self._severity)
        severity_changed = severity != self._severity
        # Both are settled before either is reported: every entry shows the state after `time`.
        self._paging = paging
        self._severity = severity
        if paging_changed:
            self._peak_paging = max(self._peak_paging, paging)
            out.timeline.append(
                self._entry(
                    time,
                    "paging",
                    f"paging state {paging.name}: "
                    f"{float(consumption):.0%} of the monthly revenue budget at risk",
                )
            )
        if severity_changed:
            if severity and (not self._peak_severity or severity < self._peak_severity):
                self._peak_severity = severity
            summary = (
                f"{severity_name(severity)}: {len(self._leaks)} open leaks "
                f"({self._big_leaks} ≥ ${float(self._policy.big_leak_usd):,.0f}), "
                f"{float(consumption):.0%} of the budget at risk"
                if severity
                else "resolved: no open leak"
            )
            out.timeline.append(self._entry(time, "severity", summary, with_leaks=bool(worse)))

    def _entry(
        self, at: int, event: str, summary: str, *, with_leaks: bool = False
    ) -> TimelineEntry:
        return TimelineEntry(
            at=at,
            event=event,
            summary=summary,
            severity=self._severity,
            paging_state=self._paging,
            consumption=float(self._consumption),
            top_leaks=self.top_leaks() if with_leaks else (),
        )

    def top_leaks(self, count: int | None = None) -> tuple[Leak, ...]:
        return tuple(
            heapq.nsmallest(
                count or self._top,
                self._leaks.values(),
                key=lambda leak: (-leak.impact_picos, leak.record_id, leak.slo, leak.rule.value),
            )
        )

    def top_owners(self, count: int = 5) -> tuple[OwnerExposure, ...]:
        totals: dict[str, list[int]] = {}
        for leak in self._leaks.values():
            entry = totals.setdefault(leak.owner, [0, 0])
            entry[0] += 1
            entry[1] += leak.impact_picos
        ranked = sorted(totals.items(), key=lambda item: (-item[1][1], item[0]))
        return tuple(OwnerExposure(owner, n, picos) for owner, (n, picos) in ranked[:count])

    def live_update(self, alerts: Sequence[AlertTransition] = ()) -> LiveUpdate:
        """The changes since the previous call; everything on the first call."""
        summary = self.snapshot(detail=True)
        if self._dirty is None:
            firing = tuple(sorted(self._firing.values(), key=_alert_order))
            update = LiveUpdate(self._at, tuple(self._leaks.values()), (), firing, summary, True)
        else:
            dirty = sorted(self._dirty, key=_leak_key_order)
            update = LiveUpdate(
                self._at,
                tuple(self._leaks[key] for key in dirty if key in self._leaks),
                tuple(key for key in dirty if key not in self._leaks),
                tuple(alerts),
                summary,
            )
        self._dirty = set()
        return update

    def restart_live_view(self) -> None:
        """The next live update lists everything (the view may have missed changes)."""
        self._dirty = None

    def snapshot(self, *, detail: bool = False) -> IncidentSnapshot:
        return IncidentSnapshot(
            at=self._at,
            consumption=float(self._consumption),
            paging_state=self._paging,
            severity=self._severity,
            open_leaks=len(self._leaks),
            big_leaks=self._big_leaks,
            at_risk_picos=dict(self._at_risk),
            peak_severity=self._peak_severity,
            peak_paging_state=self._peak_paging,
            pages=self._pages,
            tickets=self._tickets,
            top_leaks=self.top_leaks(10) if detail else (),
            top_owners=self.top_owners() if detail else (),
        )


def _leak_key_order(key: LeakKey) -> tuple[str, str, str]:
    slo, record_id, rule = key
    return (slo, record_id, rule.value)


def _alert_order(alert: AlertTransition) -> tuple[int, int, str, str, str, int]:
    return alert.order
