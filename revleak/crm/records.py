"""Per-record state machines of the CRM SLOs (docs/semantics.md §1–§2).

A :class:`RecordShard` owns the records of one slice of the record-id space.
It is driven in event-time order: :meth:`RecordShard.advance` takes the
changes whose time is below the watermark, sorted, and fires every deadline
below the watermark in between them — a deadline ``d`` fires after the events
at ``d`` (an event exactly at the deadline is on time) and before later ones.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from revleak.crm import record as codec
from revleak.crm.deadlines import DeadlineWheel
from revleak.crm.events import ChangeEvent, CrmObject, FieldValue, Op
from revleak.crm.impact import impact_picos, whole_days
from revleak.crm.quality import QualityCheck
from revleak.crm.record import NO_TIME, Phase, Record
from revleak.sli import LeakChange, SliEvent
from revleak.slo.catalog import Indicator, Rule, Slo, SloCatalog
from revleak.timefmt import MINUTE_MS


@dataclass(slots=True)
class ShardOutput:
    sli_events: list[SliEvent] = field(default_factory=list)
    leaks: list[LeakChange] = field(default_factory=list)
    checks: list[QualityCheck] = field(default_factory=list)


class RecordShard:
    def __init__(self, catalog: SloCatalog) -> None:
        revenue = catalog.revenue
        self._revenue = revenue
        self._default_value = float(revenue.average_deal_size_usd)
        self._lead_slo = catalog.for_indicator(Indicator.LEAD_RESPONSE)
        self._velocity_slo = catalog.for_indicator(Indicator.DEAL_VELOCITY)
        self._next_step_slo = catalog.for_indicator(Indicator.NEXT_STEP_HYGIENE)
        self._quality_slo = catalog.for_indicator(Indicator.DATA_QUALITY)
        self._records: dict[str, bytes] = {}
        self._closed: set[str] = set()
        self._wheel = DeadlineWheel()
        self._due: list[tuple[int, str]] = []
        self._watermark = NO_TIME
        self._out = ShardOutput()

    @property
    def open_records(self) -> int:
        return len(self._records)

    @property
    def closed_records(self) -> int:
        return len(self._closed)

    def advance(self, events: Iterable[ChangeEvent], watermark: int) -> ShardOutput:
        """Apply ``events`` (sorted by ``order``, all before ``watermark``) and fire deadlines."""
        self._watermark = watermark
        self._out = ShardOutput()
        self._collect_due(watermark)
        for event in events:
            self._fire_before(event.ts)
            self._apply(event)
        self._fire_before(watermark)
        return self._out

    # -- deadlines --------------------------------------------------------------------------

    def _collect_due(self, watermark: int) -> None:
        for minute, key in list(self._wheel.take_through((watermark - 1) // MINUTE_MS)):
            data = self._records.get(key)
            if data is None:
                continue
            record = codec.decode(data)
            if record.armed_ms // MINUTE_MS != minute:
                continue  # superseded by an earlier filing of the same record
            pending = self._pending(record)
            if record.armed_ms < watermark and all(due < watermark for due, _ in pending):
                # The usual case. An armed time below the watermark reads as unarmed (see
                # _schedule), so the record need not be written back.
                for due, _ in pending:
                    heapq.heappush(self._due, (due, key))
                continue
            record.armed_ms = NO_TIME
            self._schedule(key, record)
            self._records[key] = codec.encode(record)

    def _fire_before(self, time: int) -> None:
        while self._due and self._due[0][0] < time:
            due, key = heapq.heappop(self._due)
            data = self._records.get(key)
            if data is None:
                continue
            record = codec.decode(data)
            if self._fire(_record_id(key), record, due):
                self._schedule(key, record)
                self._records[key] = codec.encode(record)

    def _pending(self, record: Record) -> list[tuple[int, Slo]]:
        pending: list[tuple[int, Slo]] = []
        if record.lead is Phase.AWAITING and self._lead_slo is not None:
            pending.append((record.created_ms + _threshold(self._lead_slo), self._lead_slo))
        if record.velocity is Phase.AWAITING and self._velocity_slo is not None:
            pending.append(
                (record.activity_ms + _threshold(self._velocity_slo), self._velocity_slo)
            )
        if record.next_step is Phase.AWAITING and self._next_step_slo is not None:
            pending.append(
                (record.empty_since_ms + _threshold(self._next_step_slo), self._next_step_slo)
            )
        return pending

    def _schedule(self, key: str, record: Record) -> None:
        # Every deadline below the watermark is queued now (a met one must not hide the
        # next); the earliest later one is filed in the wheel, which re-schedules on its turn.
        later = NO_TIME
        for due, _ in self._pending(record):
            if due < self._watermark:
                heapq.heappush(self._due, (due, key))
            elif later == NO_TIME or due < later:
                later = due
        armed = record.armed_ms
        if later != NO_TIME and (armed == NO_TIME or armed < self._watermark or later < armed):
            self._wheel.file(key, later)
            record.armed_ms = later

    def _fire(self, record_id: str, record: Record, due: int) -> bool:
        fired = False
        for time, slo in self._pending(record):
            if time != due:
                continue
            fired = True
            if slo.indicator is Indicator.LEAD_RESPONSE:
                record.lead = Phase.BREACHED
                rule = Rule.SLA_BREACH_UNTOUCHED
            elif slo.indicator is Indicator.DEAL_VELOCITY:
                record.velocity = Phase.BREACHED
                rule = Rule.STALE_OPP
            else:
                record.next_step = Phase.BREACHED
                rule = Rule.NO_NEXT_STEP
            weight = impact_picos(
                slo.impact(rule),
                value_usd=record.value_or(self._default_value),
                win_probability=self._revenue.probability(record.stage or "New"),
                days=whole_days(record.last_touch_or_created, due),
            )
            self._out.sli_events.append(SliEvent(slo.name, due, False, weight, record_id))
            self._out.leaks.append(
                LeakChange(
                    slo.name,
                    due,
                    record_id,
                    rule,
                    opened=True,
                    impact_picos=weight,
                    owner=record.owner,
                )
            )
        return fired

    # -- changes ----------------------------------------------------------------------------

    def _apply(self, event: ChangeEvent) -> None:
        key = _key(event)
        data = self._records.get(key)
        if event.op is Op.DELETE:
            if data is not None:
                self._close(event, key, codec.decode(data))
            return
        if data is not None:
            self._update(event, key, codec.decode(data))
        elif event.op is Op.CREATE or key not in self._closed:
            self._create(event, key)

    def _create(self, event: ChangeEvent, key: str) -> None:
        record = Record(
            is_lead=event.object is CrmObject.LEAD, created_ms=event.ts, created_at_ms=event.ts
        )
        _apply_fields(record, event.fields)  # a create is neither a touch nor an activity
        self._closed.discard(key)
        if self._revenue.is_closed(record.stage or "New"):
            self._closed.add(key)
            return
        if record.is_lead:
            if self._lead_slo is not None:
                record.lead = Phase.AWAITING
        else:
            record.activity_ms = event.ts
            if self._velocity_slo is not None:
                record.velocity = Phase.AWAITING
            if not record.next_step_set and self._next_step_slo is not None:
                record.next_step = Phase.AWAITING
                record.empty_since_ms = event.ts
        self._check(event, before=None, after=self._facts(record))
        self._schedule(key, record)
        self._records[key] = codec.encode(record)

    def _update(self, event: ChangeEvent, key: str, record: Record) -> None:
        before = self._facts(record)
        touched, stage_changed, next_step_changed = _apply_fields(record, event.fields)
        if stage_changed and self._revenue.is_closed(record.stage):
            self._close(event, key, record, before=before)
            return
        time = event.ts
        reschedule = False
        if touched:
            record.last_touch_ms = time
        if record.is_lead:
            if touched and self._lead_slo is not None:
                self._meet(record, "lead", self._lead_slo, Rule.SLA_BREACH_UNTOUCHED, event)
        else:
            if (touched or stage_changed) and self._velocity_slo is not None:
                self._meet(record, "velocity", self._velocity_slo, Rule.STALE_OPP, event)
                record.velocity = Phase.AWAITING
                record.activity_ms = time
                reschedule = True
            if next_step_changed and self._next_step_slo is not None:
                if record.next_step_set:
                    self._meet(record, "next_step", self._next_step_slo, Rule.NO_NEXT_STEP, event)
                else:
                    record.next_step = Phase.AWAITING
                    record.empty_since_ms = time
                    reschedule = True
        self._check(event, before=before, after=self._facts(record))
        if reschedule:
            self._schedule(key, record)
        self._records[key] = codec.encode(record)

    def _meet(self, record: Record, phase: str, slo: Slo, rule: Rule, event: ChangeEvent) -> None:
        """The record did what ``slo`` waits for: good if in time, else its leak closes."""
        current: Phase = getattr(record, phase)
        if current is Phase.AWAITING:
            self._out.sli_events.append(SliEvent(slo.name, event.ts, True, 0, event.record_id))
        elif current is Phase.BREACHED:
            self._out.leaks.append(
                LeakChange(
                    slo.name, event.ts, event.record_id, rule, opened=False, owner=record.owner
                )
            )
        setattr(record, phase, Phase.IDLE)

    def _close(
        self, event: ChangeEvent, key: str, record: Record, before: _Facts | None = None
    ) -> None:
        open_leaks = (
            (record.lead, self._lead_slo, Rule.SLA_BREACH_UNTOUCHED),
            (record.velocity, self._velocity_slo, Rule.STALE_OPP),
            (record.next_step, self._next_step_slo, Rule.NO_NEXT_STEP),
        )
        for phase, slo, rule in open_leaks:
            if phase is Phase.BREACHED and slo is not None:
                self._out.leaks.append(
                    LeakChange(
                        slo.name, event.ts, event.record_id, rule, opened=False, owner=record.owner
                    )
                )
        self._check(event, before=before or self._facts(record), after=None)
        del self._records[key]
        self._closed.add(key)

    def _facts(self, record: Record) -> _Facts:
        return _Facts(
            domain=record.company_domain(self._revenue.free_mail_domains),
            owner_missing=not record.owner,
            region_missing=not record.region,
            created_at_ms=record.created_at_ms,
            value_usd=record.value_or(self._default_value),
            owner=record.owner,
        )

    def _check(self, event: ChangeEvent, *, before: _Facts | None, after: _Facts | None) -> None:
        if self._quality_slo is None:
            return
        current = after if after is not None else before
        assert current is not None
        self._out.checks.append(
            QualityCheck(
                time=event.ts,
                partition=event.partition,
                offset=event.offset,
                record_id=event.record_id,
                object=event.object,
                evaluated=after is not None,
                open_after=after is not None,
                domain_before=before.domain if before is not None else None,
                domain_after=after.domain if after is not None else None,
                created_at_ms=current.created_at_ms,
                owner_missing_before=before is not None and before.owner_missing,
                region_missing_before=before is not None and before.region_missing,
                owner_missing_after=after is not None and after.owner_missing,
                region_missing_after=after is not None and after.region_missing,
                value_usd=current.value_usd,
                owner=current.owner,
                created_at_before_ms=before.created_at_ms if before is not None else None,
                item=event.item,
            )
        )


class _Facts(NamedTuple):
    """What data_quality needs to know of a record at one moment."""

    domain: str | None
    owner_missing: bool
    region_missing: bool
    created_at_ms: int
    value_usd: float
    owner: str


def _key(event: ChangeEvent) -> str:
    """Records are identified by object and id: a lead and an opportunity may share an id."""
    return ("l:" if event.object is CrmObject.LEAD else "o:") + event.record_id


def _record_id(key: str) -> str:
    return key[2:]


def _threshold(slo: Slo) -> int:
    assert slo.threshold_ms is not None
    return slo.threshold_ms


def _text(value: FieldValue) -> str:
    return value.strip() if isinstance(value, str) else ""


def _stage_key(stage: str) -> str:
    return stage.casefold() or "new"


def _apply_fields(record: Record, fields: Mapping[str, FieldValue]) -> tuple[bool, bool, bool]:
    """Apply a change's fields; say whether it touched, changed stage, emptied/set next step."""
    touched = stage_changed = next_step_changed = False
    for name, value in fields.items():
        if name == "owner":
            record.owner = _text(value)
        elif name == "region":
            record.region = _text(value)
        elif name == "stage":
            stage = _text(value)
            stage_changed = _stage_key(stage) != _stage_key(record.stage)
            record.stage = stage
        elif name == "domain":
            record.domain_field = _text(value).casefold()
        elif name == "email":
            address = _text(value)
            record.email_domain = (
                address.rpartition("@")[2].strip().casefold() if "@" in address else ""
            )
        elif name == "next_step":
            present = bool(_text(value))
            next_step_changed = present != record.next_step_set
            record.next_step_set = present
        elif name == "value_usd":
            record.value_usd = float(value) if isinstance(value, int | float) else math.nan
        elif name == "created_at":
            record.created_at_ms = value if isinstance(value, int) else record.created_ms
        elif name == "last_touch_at":
            if isinstance(value, int):
                touched = value != record.last_touch_field
                record.last_touch_field = value
            else:
                record.last_touch_field = NO_TIME
    return touched, stage_changed, next_step_changed
