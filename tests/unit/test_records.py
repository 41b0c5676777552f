"""revleak.crm.records: the per-record state machines of the CRM SLOs (docs/semantics.md §1–§2)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from harness import default_catalog
from hypothesis import given
from hypothesis import strategies as st

from revleak.crm.events import ChangeEvent, CrmObject, FieldValue, Op
from revleak.crm.records import RecordShard, ShardOutput
from revleak.sli import LeakChange, SliEvent
from revleak.slo.catalog import PICOS_PER_USD, Rule
from revleak.timefmt import DAY_MS, END_OF_TIME_MS, HOUR_MS, MINUTE_MS, parse_timestamp

CATALOG = default_catalog()
T = parse_timestamp("2026-03-02T10:00:00Z")
LEAD, OPP = CrmObject.LEAD, CrmObject.OPPORTUNITY
THIRTY_MIN = 30 * MINUTE_MS
WEEK = 7 * DAY_MS


def usd(amount: float | Fraction) -> int:
    return round(Fraction(amount) * PICOS_PER_USD)


def stale_opp_picos(value: float, probability: float, days: int) -> int:
    """docs/semantics.md §2: value · p · (1 − 2^(−d/14))."""
    return round(value * probability * (1 - 2 ** (-days / 14)) * PICOS_PER_USD)


@dataclass
class Log:
    """Change events with increasing offsets, as a decoder would number them."""

    events: list[ChangeEvent] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(
        self, op: Op, ts: int, record_id: str, obj: CrmObject = LEAD, **fields: FieldValue
    ) -> ChangeEvent:
        event = ChangeEvent(
            f"e{len(self.events)}", ts, obj, op, record_id, fields, 0, next(self.counter)
        )
        self.events.append(event)
        return event

    def create(
        self, ts: int, record_id: str, obj: CrmObject = LEAD, **fields: FieldValue
    ) -> ChangeEvent:
        defaults: dict[str, FieldValue] = {"owner": "ana", "region": "NA"}
        if obj is OPP:
            defaults |= {"stage": "Proposal", "next_step": "call"}
        return self.add(Op.CREATE, ts, record_id, obj, **(defaults | fields))

    def update(
        self, ts: int, record_id: str, obj: CrmObject = LEAD, **fields: FieldValue
    ) -> ChangeEvent:
        return self.add(Op.UPDATE, ts, record_id, obj, **fields)

    def touch(self, ts: int, record_id: str, obj: CrmObject = LEAD) -> ChangeEvent:
        return self.update(ts, record_id, obj, last_touch_at=ts)

    def delete(self, ts: int, record_id: str, obj: CrmObject = LEAD) -> ChangeEvent:
        return self.add(Op.DELETE, ts, record_id, obj)

    def run(self, watermark: int = END_OF_TIME_MS) -> ShardOutput:
        return RecordShard(CATALOG).advance(sorted(self.events, key=lambda e: e.order), watermark)


def sli(output: ShardOutput, slo: str) -> list[tuple[int, bool, int, str]]:
    return [
        (e.time, e.good, e.weight_picos, e.record_id) for e in output.sli_events if e.slo == slo
    ]


def leaks(output: ShardOutput, slo: str) -> list[tuple[int, str, Rule, bool]]:
    return [(c.time, c.record_id, c.rule, c.opened) for c in output.leaks if c.slo == slo]


# -- lead_response --------------------------------------------------------------------------


def test_a_lead_touched_exactly_at_30_minutes_is_good() -> None:
    log = Log()
    log.create(T, "L1")
    log.touch(T + THIRTY_MIN, "L1")
    out = log.run()
    assert sli(out, "lead_response") == [(T + THIRTY_MIN, True, 0, "L1")]
    assert leaks(out, "lead_response") == []


def test_a_lead_touched_one_millisecond_late_is_bad_at_the_deadline() -> None:
    log = Log()
    log.create(T, "L1", value_usd=8_000.0)
    log.touch(T + THIRTY_MIN + 1, "L1")
    out = log.run()
    assert sli(out, "lead_response") == [(T + THIRTY_MIN, False, usd(4_000), "L1")]
    assert leaks(out, "lead_response") == [
        (T + THIRTY_MIN, "L1", Rule.SLA_BREACH_UNTOUCHED, True),
        (T + THIRTY_MIN + 1, "L1", Rule.SLA_BREACH_UNTOUCHED, False),
    ]
    opened = next(c for c in out.leaks if c.opened)
    assert (opened.impact_picos, opened.owner) == (usd(4_000), "ana")


def test_an_untouched_lead_without_value_risks_half_the_average_deal() -> None:
    log = Log()
    log.create(T, "L1")
    assert sli(log.run(), "lead_response") == [(T + THIRTY_MIN, False, usd(7_500), "L1")]


def test_only_the_first_touch_counts() -> None:
    log = Log()
    log.create(T, "L1")
    log.touch(T + MINUTE_MS, "L1")
    log.touch(T + 2 * MINUTE_MS, "L1")
    log.touch(T + HOUR_MS, "L1")
    assert sli(log.run(), "lead_response") == [(T + MINUTE_MS, True, 0, "L1")]


def test_an_update_that_does_not_change_last_touch_at_is_no_touch() -> None:
    log = Log()
    log.create(T, "L1", last_touch_at=T)  # a create is not a touch
    log.update(T + MINUTE_MS, "L1", last_touch_at=T)  # the same value again
    log.update(T + 2 * MINUTE_MS, "L1", owner="bo")
    assert sli(log.run(), "lead_response") == [(T + THIRTY_MIN, False, usd(7_500), "L1")]


def test_a_deadline_fires_only_once_the_watermark_has_passed_it() -> None:
    log = Log()
    create = log.create(T, "L1")
    shard = RecordShard(CATALOG)
    assert sli(shard.advance([create], T + THIRTY_MIN), "lead_response") == []
    late = shard.advance([], T + THIRTY_MIN + 1)
    assert sli(late, "lead_response") == [(T + THIRTY_MIN, False, usd(7_500), "L1")]


def test_a_touch_that_arrived_before_the_deadline_fired_still_ends_the_violation() -> None:
    log = Log()
    log.create(T, "L1")
    log.touch(T + THIRTY_MIN + MINUTE_MS, "L1")
    out = log.run(watermark=T + THIRTY_MIN + 2 * MINUTE_MS)
    assert sli(out, "lead_response") == [(T + THIRTY_MIN, False, usd(7_500), "L1")]
    assert [(time, opened) for time, _, _, opened in leaks(out, "lead_response")] == [
        (T + THIRTY_MIN, True),
        (T + THIRTY_MIN + MINUTE_MS, False),
    ]


def test_a_deadline_fires_after_other_events_at_its_time_and_before_later_ones() -> None:
    log = Log()
    log.create(T, "L1")  # due at T + 30 min
    log.create(T + MINUTE_MS, "L2")
    log.create(T + 2 * MINUTE_MS, "L3")
    log.touch(T + THIRTY_MIN, "L2")
    log.touch(T + THIRTY_MIN + 1, "L3")
    out = log.run()
    assert [(time, good, record) for time, good, _, record in sli(out, "lead_response")] == [
        (T + THIRTY_MIN, True, "L2"),
        (T + THIRTY_MIN, False, "L1"),
        (T + THIRTY_MIN + 1, True, "L3"),
    ]


# -- deal_velocity --------------------------------------------------------------------------


def test_activity_within_seven_days_is_good_and_starts_the_next_interval() -> None:
    log = Log()
    log.create(T, "O1", OPP, value_usd=100_000.0)
    log.touch(T + WEEK, "O1", OPP)
    out = log.run()
    assert sli(out, "deal_velocity") == [
        (T + WEEK, True, 0, "O1"),
        (T + 2 * WEEK, False, stale_opp_picos(100_000, 0.45, 7), "O1"),
    ]


def test_after_a_bad_interval_the_next_activity_gives_no_event_and_starts_afresh() -> None:
    log = Log()
    log.create(T, "O1", OPP, value_usd=100_000.0)
    log.touch(T + 8 * DAY_MS, "O1", OPP)
    out = log.run()
    assert sli(out, "deal_velocity") == [
        (T + WEEK, False, stale_opp_picos(100_000, 0.45, 7), "O1"),
        (T + 15 * DAY_MS, False, stale_opp_picos(100_000, 0.45, 7), "O1"),
    ]
    assert leaks(out, "deal_velocity") == [
        (T + WEEK, "O1", Rule.STALE_OPP, True),
        (T + 8 * DAY_MS, "O1", Rule.STALE_OPP, False),
        (T + 15 * DAY_MS, "O1", Rule.STALE_OPP, True),
    ]


def test_a_stage_change_is_activity_but_days_count_from_the_last_touch() -> None:
    log = Log()
    log.create(T, "O1", OPP, value_usd=50_000.0)
    log.touch(T + DAY_MS, "O1", OPP)
    log.update(T + 3 * DAY_MS + 12 * HOUR_MS, "O1", OPP, stage="Negotiation")
    out = log.run()
    deadline = T + 10 * DAY_MS + 12 * HOUR_MS
    # 9.5 days since the touch: d is the whole days, 9, and p is the new stage's 0.65.
    assert sli(out, "deal_velocity") == [
        (T + DAY_MS, True, 0, "O1"),
        (T + 3 * DAY_MS + 12 * HOUR_MS, True, 0, "O1"),
        (deadline, False, stale_opp_picos(50_000, 0.65, 9), "O1"),
    ]


def test_without_a_touch_days_count_from_creation() -> None:
    log = Log()
    log.create(T, "O1", OPP, stage="Qualified", value_usd=10_000.0)
    log.update(T + 2 * DAY_MS, "O1", OPP, stage="Proposal")
    out = log.run()
    assert sli(out, "deal_velocity")[-1] == (
        T + 9 * DAY_MS,
        False,
        stale_opp_picos(10_000, 0.45, 9),
        "O1",
    )


def test_a_stage_change_that_only_changes_case_is_no_activity() -> None:
    log = Log()
    log.create(T, "O1", OPP, stage="Proposal")
    log.update(T + DAY_MS, "O1", OPP, stage="PROPOSAL")
    assert [good for _, good, _, _ in sli(log.run(), "deal_velocity")] == [False]


# -- next_step_hygiene ----------------------------------------------------------------------


def test_an_empty_next_step_set_within_a_day_is_good() -> None:
    log = Log()
    log.create(T, "O1", OPP, next_step="")
    log.update(T + DAY_MS, "O1", OPP, next_step="send pricing")
    assert sli(log.run(), "next_step_hygiene") == [(T + DAY_MS, True, 0, "O1")]


def test_an_emptied_next_step_starts_again_and_a_late_one_only_ends_the_violation() -> None:
    log = Log()
    log.create(T, "O1", OPP, next_step="call", value_usd=120_000.0)
    log.update(T + HOUR_MS, "O1", OPP, next_step=None)
    log.update(T + 2 * HOUR_MS, "O1", OPP, next_step="  ")  # still empty: no new start
    log.update(T + HOUR_MS + DAY_MS + 1, "O1", OPP, next_step="demo")
    log.update(T + 2 * DAY_MS, "O1", OPP, next_step="")
    out = log.run()
    assert sli(out, "next_step_hygiene") == [
        (T + HOUR_MS + DAY_MS, False, usd(30_000), "O1"),
        (T + 3 * DAY_MS, False, usd(30_000), "O1"),
    ]
    assert leaks(out, "next_step_hygiene") == [
        (T + HOUR_MS + DAY_MS, "O1", Rule.NO_NEXT_STEP, True),
        (T + HOUR_MS + DAY_MS + 1, "O1", Rule.NO_NEXT_STEP, False),
        (T + 3 * DAY_MS, "O1", Rule.NO_NEXT_STEP, True),
    ]


def test_a_lead_has_no_next_step_or_velocity_deadline() -> None:
    log = Log()
    log.create(T, "L1", next_step="")
    out = log.run()
    assert sli(out, "next_step_hygiene") == []
    assert sli(out, "deal_velocity") == []


# -- closing, deleting, upserts -------------------------------------------------------------


def test_closing_ends_every_violation_and_gives_no_event() -> None:
    log = Log()
    log.create(T, "O1", OPP, next_step="")
    log.update(T + 10 * DAY_MS, "O1", OPP, stage="Closed Won")
    log.touch(T + 11 * DAY_MS, "O1", OPP)
    out = log.run()
    assert [e.time for e in out.sli_events if e.slo != "data_quality"] == [T + DAY_MS, T + WEEK]
    assert sorted(leaks(out, "next_step_hygiene") + leaks(out, "deal_velocity")) == [
        (T + DAY_MS, "O1", Rule.NO_NEXT_STEP, True),
        (T + WEEK, "O1", Rule.STALE_OPP, True),
        (T + 10 * DAY_MS, "O1", Rule.NO_NEXT_STEP, False),
        (T + 10 * DAY_MS, "O1", Rule.STALE_OPP, False),
    ]
    closing = [c for c in out.checks if c.time == T + 10 * DAY_MS]
    assert [(c.evaluated, c.open_after) for c in closing] == [(False, False)]
    assert [c for c in out.checks if c.time > T + 10 * DAY_MS] == []


def test_a_lead_converted_before_its_deadline_never_breaches() -> None:
    log = Log()
    log.create(T, "L1")
    log.update(T + 10 * MINUTE_MS, "L1", stage="converted")
    assert sli(log.run(), "lead_response") == []


def test_a_deleted_record_fires_no_deadline_and_ignores_updates() -> None:
    log = Log()
    log.create(T, "L1")
    log.delete(T + MINUTE_MS, "L1")
    log.update(T + 2 * MINUTE_MS, "L1", owner="bo")
    log.touch(T + 3 * MINUTE_MS, "L1")
    shard = RecordShard(CATALOG)
    out = shard.advance(log.events, END_OF_TIME_MS)
    assert out.sli_events == []  # data_quality's events come from the checks, elsewhere
    assert out.leaks == []
    assert [(c.time, c.evaluated, c.open_after) for c in out.checks] == [
        (T, True, True),
        (T + MINUTE_MS, False, False),
    ]
    assert (shard.open_records, shard.closed_records) == (0, 1)


def test_a_create_after_a_delete_starts_a_fresh_record() -> None:
    log = Log()
    log.create(T, "L1")
    log.delete(T + MINUTE_MS, "L1")
    log.create(T + 2 * MINUTE_MS, "L1")
    assert sli(log.run(), "lead_response") == [
        (T + 2 * MINUTE_MS + THIRTY_MIN, False, usd(7_500), "L1")
    ]


def test_a_record_created_closed_never_gives_events() -> None:
    log = Log()
    log.create(T, "O1", OPP, stage="Closed Lost", owner="")
    log.update(T + DAY_MS, "O1", OPP, stage="Proposal")
    out = log.run()
    assert (out.sli_events, out.leaks, out.checks) == ([], [], [])


def test_an_update_before_the_create_is_an_upsert() -> None:
    log = Log()
    log.update(T, "L1", owner="ana", region="NA")
    log.touch(T + 40 * MINUTE_MS, "L1")
    out = log.run()
    assert sli(out, "lead_response") == [(T + THIRTY_MIN, False, usd(7_500), "L1")]
    first = out.checks[0]
    assert (first.time, first.evaluated, first.domain_before, first.owner_missing_before) == (
        T,
        True,
        None,
        False,
    )


def test_a_create_of_an_open_record_is_applied_as_an_update() -> None:
    log = Log()
    log.create(T, "L1")
    log.create(T + 10 * MINUTE_MS, "L1", last_touch_at=T + 10 * MINUTE_MS)
    assert sli(log.run(), "lead_response") == [(T + 10 * MINUTE_MS, True, 0, "L1")]


def test_a_lead_and_an_opportunity_with_one_id_are_two_records() -> None:
    log = Log()
    log.create(T, "X1", LEAD)
    log.create(T, "X1", OPP)
    log.touch(T + MINUTE_MS, "X1", LEAD)
    log.delete(T + 2 * MINUTE_MS, "X1", LEAD)
    shard = RecordShard(CATALOG)
    out = shard.advance(log.events, T + WEEK + 1)
    assert sli(out, "lead_response") == [(T + MINUTE_MS, True, 0, "X1")]
    assert sli(out, "deal_velocity") == [(T + WEEK, False, stale_opp_picos(15_000, 0.45, 7), "X1")]
    assert (shard.open_records, shard.closed_records) == (1, 1)


def test_an_unknown_stage_uses_the_win_probability_of_new() -> None:
    log = Log()
    log.create(T, "O1", OPP, stage="Discovery", value_usd=10_000.0)
    assert sli(log.run(), "deal_velocity") == [
        (T + WEEK, False, stale_opp_picos(10_000, 0.1, 7), "O1")
    ]


def test_a_value_cleared_to_null_falls_back_to_the_average_deal_size() -> None:
    log = Log()
    log.create(T, "L1", value_usd=2_000.0)
    log.update(T + MINUTE_MS, "L1", value_usd=None)
    assert sli(log.run(), "lead_response") == [(T + THIRTY_MIN, False, usd(7_500), "L1")]


# -- any chunking gives the same output -----------------------------------------------------

STEPS_MS = [
    0,
    0,
    1,
    MINUTE_MS,
    29 * MINUTE_MS,
    THIRTY_MIN,
    THIRTY_MIN + 1,
    HOUR_MS,
    DAY_MS - 1,
    DAY_MS,
    DAY_MS + 1,
    3 * DAY_MS,
    WEEK - 1,
    WEEK,
    WEEK + 1,
]
RECORDS = [(LEAD, "A"), (LEAD, "B"), (OPP, "A"), (OPP, "C"), (OPP, "D")]
CHOICES: dict[str, list[Any]] = {
    "owner": ["ana", "", None],
    "region": ["NA", "", None],
    "stage": [None, "New", "Proposal", "negotiation", "Closed Won", "Converted"],
    "next_step": ["call", "", None],
    "value_usd": [None, 0.0, 1_000.0, 120_000.0],
    "domain": ["acme.example", "gmail.com", None],
    "email": ["a@acme.example", None],
}


@st.composite
def change_logs(draw: st.DrawFn) -> list[ChangeEvent]:
    ts = T
    events = []
    for offset in range(draw(st.integers(min_value=1, max_value=30))):
        ts += draw(st.sampled_from(STEPS_MS))
        obj, record_id = draw(st.sampled_from(RECORDS))
        op = draw(st.sampled_from([Op.CREATE, Op.UPDATE, Op.UPDATE, Op.UPDATE, Op.DELETE]))
        fields: dict[str, FieldValue] = {}
        if op is not Op.DELETE:
            for name, values in CHOICES.items():
                if draw(st.integers(0, 3)) == 0:
                    fields[name] = draw(st.sampled_from(values))
            if draw(st.booleans()):
                fields["last_touch_at"] = draw(st.sampled_from([ts, ts - 1, None]))
        events.append(ChangeEvent(f"e{offset}", ts, obj, op, record_id, fields, 0, offset))
    return events


@st.composite
def chunkings(draw: st.DrawFn, events: list[ChangeEvent]) -> list[tuple[list[ChangeEvent], int]]:
    times = sorted({event.ts for event in events})
    cuts = sorted(draw(st.sets(st.sampled_from(times), max_size=8)))
    chunks: list[tuple[list[ChangeEvent], int]] = []
    start = 0
    for cut in cuts:
        end = next(i for i, event in enumerate(events) if event.ts >= cut)
        group = events[start:end]
        low = group[-1].ts + 1 if group else T
        watermark = draw(st.integers(min_value=min(low, cut), max_value=cut))
        chunks.append((group, watermark))
        start = end
    chunks.append((events[start:], END_OF_TIME_MS))
    return chunks


@given(data=st.data())
def test_any_chunking_with_watermarks_gives_the_same_sli_events_and_leaks(
    data: st.DataObject,
) -> None:
    events = data.draw(change_logs(), label="events")
    chunks = data.draw(chunkings(events), label="chunks")
    whole = RecordShard(CATALOG).advance(events, END_OF_TIME_MS)

    shard = RecordShard(CATALOG)
    sli_events: list[SliEvent] = []
    leak_changes: list[LeakChange] = []
    checks = []
    for group, watermark in chunks:
        out = shard.advance(group, watermark)
        assert all(e.time < watermark for e in out.sli_events)
        sli_events += out.sli_events
        leak_changes += out.leaks
        checks += out.checks
    assert sli_events == whole.sli_events
    assert leak_changes == whole.leaks
    assert checks == whole.checks


@given(events=change_logs())
def test_sli_events_and_leaks_come_out_in_time_order(events: list[ChangeEvent]) -> None:
    out = RecordShard(CATALOG).advance(events, END_OF_TIME_MS)
    assert [e.time for e in out.sli_events] == sorted(e.time for e in out.sli_events)
    assert [c.time for c in out.leaks] == sorted(c.time for c in out.leaks)
    # Every violation that opens was not already open; every one that ends was open.
    open_now: set[tuple[str, str, Rule]] = set()
    for change in out.leaks:
        key = (change.slo, change.record_id, change.rule)
        assert (key in open_now) != change.opened
        (open_now.add if change.opened else open_now.discard)(key)
