"""revleak.crm.domains: the duplicate index (DUPLICATE_SUSPECT, docs/semantics.md §2)."""

from __future__ import annotations

from typing import Any

from harness import default_catalog
from hypothesis import given
from hypothesis import strategies as st

from revleak.crm.domains import DomainIndex, index_key, routes
from revleak.crm.events import ChangeEvent, CrmObject, Op
from revleak.crm.pipeline import stable_shard
from revleak.crm.quality import DuplicateVerdict, Half, QualityCheck, assess
from revleak.crm.record import Record
from revleak.crm.records import RecordShard
from revleak.slo.catalog import Rule
from revleak.timefmt import DAY_MS, END_OF_TIME_MS, MINUTE_MS, parse_timestamp

CATALOG = default_catalog()
QUALITY = CATALOG.by_name("data_quality")
T = parse_timestamp("2026-03-02T10:00:00Z")
LEAD, OPP = CrmObject.LEAD, CrmObject.OPPORTUNITY


def check(
    record_id: str,
    *,
    before: str | None = None,
    after: str | None = None,
    created: int = T,
    time: int = T,
    obj: CrmObject = LEAD,
    open_after: bool = True,
    evaluated: bool = True,
    offset: int = 0,
) -> QualityCheck:
    return QualityCheck(
        time=time,
        partition=0,
        offset=offset,
        record_id=record_id,
        object=obj,
        evaluated=evaluated,
        open_after=open_after,
        domain_before=before,
        domain_after=after,
        created_at_ms=created,
        owner_missing_before=False,
        region_missing_before=False,
        owner_missing_after=False,
        region_missing_after=False,
        value_usd=10_000.0,
        owner="ana",
    )


def place(index: DomainIndex, item: QualityCheck) -> tuple[bool, bool]:
    """Send a check through the index the way the pipeline routes it."""
    verdicts = index.advance(
        [(item, half) for _, half in sorted(routes(item), key=lambda r: r[1] is not Half.LEAVE)]
    )
    if len(verdicts) == 2:
        leave, join = verdicts
        return leave.duplicate_before, join.duplicate_after
    (verdict,) = verdicts
    return verdict.duplicate_before, verdict.duplicate_after


# -- routing --------------------------------------------------------------------------------


def test_index_keys_separate_objects() -> None:
    assert index_key(LEAD, "acme.example") == "lead@acme.example"
    assert index_key(OPP, "acme.example") == "opportunity@acme.example"


def test_a_record_with_a_domain_goes_to_its_domain() -> None:
    assert routes(check("L1", after="acme.example")) == [("lead@acme.example", Half.WHOLE)]
    assert routes(check("L1", before="acme.example", after="acme.example")) == [
        ("lead@acme.example", Half.WHOLE)
    ]


def test_a_record_without_domain_still_passes_through_keyed_by_itself() -> None:
    assert routes(check("L1")) == [("record:L1", Half.WHOLE)]


def test_a_closing_record_leaves_its_old_domain() -> None:
    closing = check(
        "L1", before="acme.example", after="acme.example", open_after=False, evaluated=False
    )
    assert not closing.splits
    assert routes(closing) == [("lead@acme.example", Half.WHOLE)]


def test_a_domain_change_is_split_into_leave_and_join_halves() -> None:
    moving = check("L1", before="acme.example", after="initech.example")
    assert moving.splits
    assert routes(moving) == [
        ("lead@acme.example", Half.LEAVE),
        ("lead@initech.example", Half.JOIN),
    ]
    leave = DuplicateVerdict(moving, Half.LEAVE, False, False)
    join = DuplicateVerdict(moving, Half.JOIN, False, False)
    assert leave.order < join.order


def test_gaining_or_losing_a_domain_is_no_split() -> None:
    assert routes(check("L1", after="acme.example"))[0][1] is Half.WHOLE
    assert routes(check("L1", before="acme.example")) == [("lead@acme.example", Half.WHOLE)]


# -- duplicate detection --------------------------------------------------------------------


def test_the_record_created_later_is_the_duplicate() -> None:
    index = DomainIndex()
    assert place(index, check("B", after="acme.example", created=T)) == (False, False)
    assert place(index, check("A", after="acme.example", created=T + 1)) == (False, True)
    assert index.members == 2


def test_equal_creation_times_are_ordered_by_record_id() -> None:
    index = DomainIndex()
    assert place(index, check("B", after="acme.example")) == (False, False)
    assert place(index, check("A", after="acme.example")) == (False, False)
    assert place(index, check("C", after="acme.example")) == (False, True)


def test_the_earlier_record_arriving_later_is_not_the_duplicate() -> None:
    index = DomainIndex()
    assert place(index, check("L2", after="acme.example", created=T + MINUTE_MS)) == (False, False)
    assert place(index, check("L1", after="acme.example", created=T, time=T + 2 * MINUTE_MS)) == (
        False,
        False,
    )
    # L2 becomes a duplicate only at its own next change.
    assert place(
        index,
        check(
            "L2",
            before="acme.example",
            after="acme.example",
            created=T + MINUTE_MS,
            time=T + 3 * MINUTE_MS,
        ),
    ) == (False, True)


def test_a_lead_and_an_opportunity_of_one_domain_are_not_duplicates() -> None:
    index = DomainIndex()
    assert place(index, check("L1", after="acme.example", obj=LEAD)) == (False, False)
    assert place(index, check("O1", after="acme.example", obj=OPP, created=T + 1)) == (False, False)


def test_a_duplicate_stays_flagged_until_its_own_next_change() -> None:
    index = DomainIndex()
    place(index, check("A", after="acme.example"))
    place(index, check("B", after="acme.example"))
    closing = check(
        "A", before="acme.example", open_after=False, evaluated=False, time=T + MINUTE_MS
    )
    assert place(index, closing) == (False, False)
    assert place(
        index, check("B", before="acme.example", after="acme.example", time=T + 2 * MINUTE_MS)
    ) == (True, False)
    assert index.members == 1


def test_moving_to_another_domain_reports_before_from_the_old_and_after_from_the_new() -> None:
    index = DomainIndex()
    place(index, check("A", after="acme.example"))
    place(index, check("B", after="acme.example"))
    place(index, check("C", after="initech.example", created=T - 1))
    moving = check("B", before="acme.example", after="initech.example", time=T + MINUTE_MS)
    assert place(index, moving) == (True, True)  # was A's duplicate, now C's
    back = check("B", before="initech.example", after="acme.example", time=T + 2 * MINUTE_MS)
    assert place(index, back) == (True, True)
    alone = check("B", before="acme.example", after="globex.example", time=T + 3 * MINUTE_MS)
    assert place(index, alone) == (True, False)
    assert index.members == 3


def test_losing_the_domain_removes_the_record_from_the_index() -> None:
    index = DomainIndex()
    place(index, check("A", after="acme.example"))
    place(index, check("B", after="acme.example"))
    assert place(index, check("B", before="acme.example", time=T + 1)) == (True, False)
    assert index.members == 1
    assert place(index, check("C", after="acme.example")) == (False, True)


# -- company domain and free mail (from the record shard) -----------------------------------


def test_company_domain_prefers_the_domain_field_and_skips_free_mail() -> None:
    free = CATALOG.revenue.free_mail_domains
    assert (
        Record(
            True, T, T, domain_field="acme.example", email_domain="initech.example"
        ).company_domain(free)
        == "acme.example"
    )
    assert Record(True, T, T, email_domain="initech.example").company_domain(free) == (
        "initech.example"
    )
    assert Record(True, T, T, email_domain="gmail.com").company_domain(free) is None
    assert (
        Record(True, T, T, domain_field="gmail.com", email_domain="acme.example").company_domain(
            free
        )
        is None
    )
    assert Record(True, T, T).company_domain(free) is None


def shard_checks(*creates: dict[str, Any]) -> list[QualityCheck]:
    events = [
        ChangeEvent(f"e{i}", T + i, LEAD, Op.CREATE, f"L{i}", fields, 0, i)
        for i, fields in enumerate(creates)
    ]
    return RecordShard(CATALOG).advance(events, END_OF_TIME_MS).checks


def test_free_mail_addresses_are_never_duplicates() -> None:
    checks = shard_checks(
        {"email": "a@gmail.com"},
        {"email": "b@GMail.com "},
        {"email": "c@acme.example"},
        {"domain": " ACME.example "},
    )
    assert [c.domain_after for c in checks] == [None, None, "acme.example", "acme.example"]
    index = DomainIndex()
    assert [place(index, c)[1] for c in checks] == [False, False, False, True]


def test_a_duplicate_opens_and_closes_a_leak_through_assess() -> None:
    index = DomainIndex()
    first = check("A", after="acme.example")
    second = check("B", after="acme.example")
    place(index, first)
    before, after = place(index, second)
    events, leaks = assess(second, duplicate_before=before, duplicate_after=after, slo=QUALITY)
    assert [(e.good, e.weight_picos) for e in events] == [(False, 2_000 * 10**12)]
    assert [(c.rule, c.opened) for c in leaks] == [(Rule.DUPLICATE_SUSPECT, True)]
    moved = check("B", before="acme.example", after="initech.example", time=T + 1)
    before, after = place(index, moved)
    events, leaks = assess(moved, duplicate_before=before, duplicate_after=after, slo=QUALITY)
    assert [e.good for e in events] == [True]
    assert [(c.rule, c.opened) for c in leaks] == [(Rule.DUPLICATE_SUSPECT, False)]


def quality_log(*events: ChangeEvent) -> tuple[list[tuple[bool, str]], DomainIndex]:
    """Checks from a record shard, through one index partition, assessed: (good, record)."""
    index = DomainIndex()
    outcomes = []
    for item in RecordShard(CATALOG).advance(list(events), END_OF_TIME_MS).checks:
        before, after = place(index, item)
        sli_events, _ = assess(item, duplicate_before=before, duplicate_after=after, slo=QUALITY)
        outcomes += [(event.good, event.record_id) for event in sli_events]
    return outcomes, index


def lead_change(offset: int, op: Op, record_id: str, **fields: Any) -> ChangeEvent:
    return ChangeEvent(f"e{offset}", T + offset, LEAD, op, record_id, fields, 0, offset)


def test_a_changed_created_at_moves_the_record_in_the_duplicate_order() -> None:
    base = {"owner": "ana", "region": "NA", "domain": "acme.example"}
    outcomes, index = quality_log(
        lead_change(1, Op.CREATE, "B", created_at=T, **base),
        lead_change(2, Op.CREATE, "A", created_at=T + 5 * MINUTE_MS, **base),  # B's duplicate
        lead_change(3, Op.UPDATE, "A", created_at=T - MINUTE_MS),  # now the earliest: fixed
        lead_change(4, Op.UPDATE, "B", owner="bo"),  # B is now A's duplicate
        lead_change(5, Op.UPDATE, "A", owner="cy"),  # A stays clean
    )
    assert outcomes == [(True, "B"), (False, "A"), (True, "A"), (False, "B"), (True, "A")]
    assert index.members == 2


def test_a_duplicate_that_closes_leaves_the_index() -> None:
    base = {"owner": "ana", "region": "NA", "email": "x@acme.example"}
    outcomes, index = quality_log(
        lead_change(1, Op.CREATE, "A", **base),
        lead_change(2, Op.CREATE, "B", **base),
        lead_change(3, Op.UPDATE, "A", stage="Converted"),
        lead_change(4, Op.UPDATE, "B", owner="bo"),  # its own change ends its violation
        lead_change(5, Op.DELETE, "B"),
    )
    assert outcomes == [(True, "A"), (False, "B"), (True, "B")]
    assert index.members == 0


# -- against a brute-force model ------------------------------------------------------------

KEYS = [(LEAD, "A"), (LEAD, "B"), (LEAD, "C"), (OPP, "A"), (OPP, "B")]


@st.composite
def domain_logs(draw: st.DrawFn) -> list[ChangeEvent]:
    events = []
    time = T
    for offset in range(draw(st.integers(min_value=1, max_value=25))):
        time += draw(st.sampled_from([0, 1, MINUTE_MS]))
        obj, record_id = draw(st.sampled_from(KEYS))
        op = draw(st.sampled_from([Op.CREATE, Op.CREATE, Op.UPDATE, Op.UPDATE, Op.DELETE]))
        fields: dict[str, Any] = {}
        choices: dict[str, list[Any]] = {
            "domain": ["acme.example", "initech.example", "gmail.com", "", None],
            "email": ["x@acme.example", "y@Initech.example", "z@gmail.com", None],
            "created_at": [None, T - DAY_MS, T, T + MINUTE_MS],
            "stage": ["New", "Closed Won"],
        }
        for name, values in choices.items():
            if draw(st.integers(0, 2)) == 0:
                fields[name] = draw(st.sampled_from(values))
        events.append(ChangeEvent(f"e{offset}", time, obj, op, record_id, fields, 0, offset))
    return events


@given(events=domain_logs(), partitions=st.sampled_from([1, 3]))
def test_verdicts_equal_a_brute_force_scan_of_open_records(
    events: list[ChangeEvent], partitions: int
) -> None:
    indexes = [DomainIndex() for _ in range(partitions)]
    # The model: every open record with a company domain, and its last duplicate verdict.
    members: dict[tuple[CrmObject, str], tuple[str, int, bool]] = {}
    for item in RecordShard(CATALOG).advance(events, END_OF_TIME_MS).checks:
        verdicts = [
            indexes[stable_shard(key, partitions)].advance([(item, half)])[0]
            for key, half in sorted(routes(item), key=lambda r: r[1] is not Half.LEAVE)
        ]
        got_before = verdicts[0].duplicate_before
        got_after = verdicts[-1].duplicate_after

        key = (item.object, item.record_id)
        previous = members.pop(key, None)
        expected_before = previous[2] if previous is not None else False
        expected_after = False
        if item.open_after and item.domain_after is not None:
            expected_after = any(
                other_obj is item.object
                and domain == item.domain_after
                and (created, other_id) < (item.created_at_ms, item.record_id)
                for (other_obj, other_id), (domain, created, _) in members.items()
            )
            members[key] = (item.domain_after, item.created_at_ms, expected_after)
        assert (got_before, got_after) == (expected_before, expected_after), item
    assert sum(index.members for index in indexes) == len(members)
