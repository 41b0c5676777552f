"""revleak.crm.quality: data_quality's SLI events and leaks of one change (docs/semantics.md §2)."""

from __future__ import annotations

import dataclasses

from harness import default_catalog

from revleak.crm.events import CrmObject
from revleak.crm.quality import QualityCheck, assess
from revleak.sli import LeakChange, SliEvent
from revleak.slo.catalog import PICOS_PER_USD, Rule
from revleak.timefmt import parse_timestamp

QUALITY = default_catalog().by_name("data_quality")
T = parse_timestamp("2026-03-02T10:00:00Z")
VALUE = 20_000.0  # impacts: owner ×1 = 20 000, duplicate ×0.2 = 4 000, region ×0.1 = 2 000


def change(
    *,
    owner: tuple[bool, bool] = (False, False),
    region: tuple[bool, bool] = (False, False),
    evaluated: bool = True,
    open_after: bool = True,
) -> QualityCheck:
    """A change; ``owner``/``region`` say whether the field was missing (before, after)."""
    return QualityCheck(
        time=T,
        partition=0,
        offset=1,
        record_id="L1",
        object=CrmObject.LEAD,
        evaluated=evaluated,
        open_after=open_after,
        domain_before=None,
        domain_after=None,
        created_at_ms=T,
        owner_missing_before=owner[0],
        region_missing_before=region[0],
        owner_missing_after=owner[1],
        region_missing_after=region[1],
        value_usd=VALUE,
        owner="" if owner[1] else "ana",
    )


def run(
    item: QualityCheck, duplicate: tuple[bool, bool] = (False, False)
) -> tuple[list[SliEvent], list[LeakChange]]:
    return assess(item, duplicate_before=duplicate[0], duplicate_after=duplicate[1], slo=QUALITY)


def bad(weight_usd: float) -> SliEvent:
    return SliEvent("data_quality", T, False, round(weight_usd * PICOS_PER_USD), "L1")


def leak(rule: Rule, opened: bool, weight_usd: float = 0, owner: str = "") -> LeakChange:
    return LeakChange(
        "data_quality", T, "L1", rule, opened, round(weight_usd * PICOS_PER_USD), owner
    )


GOOD = SliEvent("data_quality", T, True, 0, "L1")


def test_a_clean_change_is_one_good_event() -> None:
    assert run(change()) == ([GOOD], [])


def test_each_newly_violated_rule_is_one_bad_event_weighted_by_its_impact() -> None:
    events, leaks = run(change(owner=(False, True), region=(False, True)), duplicate=(False, True))
    assert events == [bad(20_000), bad(4_000), bad(2_000)]
    assert leaks == [
        leak(Rule.UNASSIGNED_OWNER, True, 20_000),
        leak(Rule.DUPLICATE_SUSPECT, True, 4_000),
        leak(Rule.ROUTING_MISMATCH, True, 2_000),
    ]


def test_a_violation_that_stays_gives_no_event() -> None:
    assert run(change(owner=(True, True))) == ([], [])
    assert run(change(), duplicate=(True, True)) == ([], [])


def test_a_new_violation_beside_one_that_stays_gives_one_bad_event() -> None:
    events, leaks = run(change(owner=(True, True), region=(False, True)))
    assert events == [bad(2_000)]
    assert leaks == [leak(Rule.ROUTING_MISMATCH, True, 2_000)]


def test_fixing_one_of_two_violations_ends_it_but_gives_no_good_event() -> None:
    events, leaks = run(change(owner=(True, False), region=(True, True)))
    assert events == []
    assert leaks == [leak(Rule.UNASSIGNED_OWNER, False, owner="ana")]


def test_fixing_the_last_violation_gives_a_good_event() -> None:
    events, leaks = run(change(owner=(True, False)), duplicate=(True, False))
    assert events == [GOOD]
    assert leaks == [
        leak(Rule.UNASSIGNED_OWNER, False, owner="ana"),
        leak(Rule.DUPLICATE_SUSPECT, False, owner="ana"),
    ]


def test_closing_ends_the_violations_and_gives_no_event() -> None:
    closing = change(owner=(True, True), region=(True, False), evaluated=False, open_after=False)
    events, leaks = run(closing, duplicate=(True, False))
    assert events == []
    assert [(c.rule, c.opened) for c in leaks] == [
        (Rule.UNASSIGNED_OWNER, False),
        (Rule.DUPLICATE_SUSPECT, False),
        (Rule.ROUTING_MISMATCH, False),
    ]


def test_closing_a_clean_record_gives_nothing() -> None:
    assert run(change(evaluated=False, open_after=False)) == ([], [])


def test_a_rule_the_slo_does_not_configure_is_never_violated() -> None:
    owner_only = dataclasses.replace(
        QUALITY, rules=tuple(r for r in QUALITY.rules if r.rule is Rule.UNASSIGNED_OWNER)
    )
    events, leaks = assess(
        change(region=(False, True)), duplicate_before=False, duplicate_after=True, slo=owner_only
    )
    assert events == [GOOD]
    assert leaks == []


def test_check_order_is_time_partition_offset() -> None:
    assert change().order == (T, 0, 1, 0)
