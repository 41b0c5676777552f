"""The data_quality SLO (docs/semantics.md §2): owner, routing and duplicate rules.

Owner and region are facts of the record itself; a duplicate depends on other
records. So a change is described by a :class:`QualityCheck` (made where the
record lives), annotated with the duplicate verdict by the domain index that
owns the record's company domain (:mod:`revleak.crm.domains`), and only then
assessed here into SLI events and leak changes.

Violations are re-evaluated only at the record's own changes: another record
closing does not end this one's duplicate violation; its next change does.
"""

from __future__ import annotations

from enum import Enum
from fractions import Fraction
from typing import NamedTuple

from revleak.crm.events import CrmObject
from revleak.crm.impact import impact_picos
from revleak.sli import LeakChange, SliEvent
from revleak.slo.catalog import Rule, Slo


class Half(Enum):
    """Which part of a check a verdict answers (a change of company domain needs two)."""

    WHOLE = "whole"
    LEAVE = "leave"  # the old domain's index: was the record a duplicate before?
    JOIN = "join"  # the new domain's index: is it a duplicate now?


class QualityCheck(NamedTuple):
    """A create, update, close or delete of an open record, as data_quality needs it."""

    time: int
    partition: int
    offset: int
    record_id: str
    object: CrmObject
    evaluated: bool  # a create/update of an open record (not the closing change)
    open_after: bool
    domain_before: str | None
    domain_after: str | None
    created_at_ms: int
    owner_missing_before: bool
    region_missing_before: bool
    owner_missing_after: bool
    region_missing_after: bool
    value_usd: float
    owner: str
    # Where the domain index holds the record, when created_at changed with this check.
    created_at_before_ms: int | None = None
    item: int = 0  # the change event's place in its message

    @property
    def order(self) -> tuple[int, int, int, int]:
        return (self.time, self.partition, self.offset, self.item)

    @property
    def splits(self) -> bool:
        """True when the record moves between two different indexed domains."""
        return (
            self.open_after
            and self.domain_before is not None
            and self.domain_after is not None
            and self.domain_before != self.domain_after
        )


class DuplicateVerdict(NamedTuple):
    check: QualityCheck
    half: Half
    duplicate_before: bool
    duplicate_after: bool

    @property
    def time(self) -> int:
        return self.check.time

    @property
    def order(self) -> tuple[int, int, int, int, int]:
        return (*self.check.order, 0 if self.half is Half.LEAVE else 1)


def assess(
    check: QualityCheck, *, duplicate_before: bool, duplicate_after: bool, slo: Slo
) -> tuple[list[SliEvent], list[LeakChange]]:
    """SLI events and leak changes of one change.

    One bad event per rule that becomes violated, one good event when no rule
    is violated after the change, nothing when a violation stays in place.
    """
    before = _violations(
        slo, check.owner_missing_before, check.region_missing_before, duplicate_before
    )
    after = (
        _violations(slo, check.owner_missing_after, check.region_missing_after, duplicate_after)
        if check.open_after
        else []
    )
    events: list[SliEvent] = []
    leaks: list[LeakChange] = []
    for rule in before:
        if rule not in after:
            leaks.append(
                LeakChange(
                    slo.name, check.time, check.record_id, rule, opened=False, owner=check.owner
                )
            )
    if not check.evaluated:
        return events, leaks
    for rule in after:
        if rule in before:
            continue
        weight = impact_picos(
            slo.impact(rule), value_usd=check.value_usd, win_probability=Fraction(1), days=0
        )
        events.append(SliEvent(slo.name, check.time, False, weight, check.record_id))
        leaks.append(
            LeakChange(
                slo.name,
                check.time,
                check.record_id,
                rule,
                opened=True,
                impact_picos=weight,
                owner=check.owner,
            )
        )
    if not after:
        events.append(SliEvent(slo.name, check.time, True, 0, check.record_id))
    return events, leaks


def _violations(slo: Slo, owner_missing: bool, region_missing: bool, duplicate: bool) -> list[Rule]:
    candidates = (
        (Rule.UNASSIGNED_OWNER, owner_missing),
        (Rule.DUPLICATE_SUSPECT, duplicate),
        (Rule.ROUTING_MISMATCH, region_missing),
    )
    return [rule for rule, violated in candidates if violated and slo.has_rule(rule)]
