"""Deliberately naive reference implementation ("oracle") of docs/semantics, for tests only.

It replays a generic CRM change-event log (JSON lines) with the default CRM SLOs and returns the
SLI events, the counts and the final alert log that docs/semantics.md §1-§4 define. It is written
for obvious correctness, not speed: exact arithmetic (``fractions.Fraction``) throughout,
brute-force window sums, no incremental state in the alert evaluation. It shares no code with
the engine.

Interpretations of the specification that this oracle follows (they settle its ambiguities):

1. Lateness: lines are taken in file order; W = (max ts of accepted events so far) - allowed
   lateness; an event with ts < W is late (counted, dropped). Malformed lines never move W.
2. Accepted events are processed in (ts, line index) order.
3. All timing uses event times ``ts``: a record is created at its create event's ts; a touch is an
   update whose ``last_touch_at`` is non-null and differs (as an instant) from the stored value,
   and it happens at the update's ts. A create stores ``last_touch_at`` but is not a touch.
4. An update of an unknown record acts as a create; a delete of an unknown record does nothing.
5. A create of an open record is applied as an update; a create of a closed record starts a new
   record.
6. Stage null/""/missing is "New". Becoming Closed Won/Closed Lost/Converted, or being deleted,
   closes a record forever: no SLI event for the closing change, its violations end, its deadlines
   are cancelled, later updates are ignored. A record created closed never yields events.
7. lead_response: deadline created+30m; first touch <= deadline is good (at the touch); otherwise
   bad at the deadline and a violation until the first touch (no event).
8. deal_velocity: intervals start at creation and at every activity (touch or stage change); an
   activity <= start+7d is good (at the activity); otherwise bad at start+7d (STALE_OPP, p of the
   current stage, d = floor days since the last touch, or creation) and a violation until the next
   activity (no event), which starts a fresh interval.
9. next_step_hygiene: an empty next step at creation, or a change non-empty -> empty, starts a 24h
   deadline; setting it in time is good, otherwise bad at the deadline and a violation until set.
10. data_quality: every create and every update of an open record is evaluated; one bad event per
    newly violated rule, one good event (weight 0) when nothing is violated, nothing otherwise;
    violations are re-evaluated only at the record's own changes.
11. Deadlines fire at their time, after the events with the same ts.
12. Good events weigh 0 USD; impacts use the current value (15 000 when missing) and stage.
13. blast_radius at t = open (record x rule) violations after applying everything with time <= t.
14. Alerts per SLO, kind and rule over 1-minute buckets exactly as §3-§4, compared in exact
    arithmetic; count rules honour ``min_events``.

Evaluation points: the spec evaluates at every SLI event time and every minute boundary. A window
w at t holds the SLI events e with ``e.time <= t < (bucket(e) + w) * 1 min``, so every window (and
hence every firing condition) is constant between consecutive points of the set {SLI event times}
U {(bucket(e) + w) * 1 min for every event e and policy window w}; a transition can only happen at
such a point. The oracle evaluates exactly those points by default; ``exhaustive_points=True``
evaluates every minute boundary instead (skipping only points whose 3-day window is empty while
nothing fires, or whose window sums equal those of the last evaluated point) and is used by the
tests to check that the two agree.

Further choices where the text left one: records are keyed by (object, record_id); stage names
are trimmed and compared case-insensitively (also for win probabilities and stage changes);
owner/region/domain/email count as empty when null or blank after trimming; the email domain is
the part after its last "@"; ``last_touch_at`` values are compared as instants; sub-millisecond
digits are floored; a timestamp needs a time part (what ``datetime.fromisoformat`` accepts);
``fields: null``, NaN/Infinity anywhere in the line, and a ``value_usd`` that overflows a double
are malformed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

# --------------------------------------------------------------------------------------------
# Constants: the default SLOs, budgets and alert policy.
# --------------------------------------------------------------------------------------------

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
PERIOD_MS = 30 * DAY_MS

LEAD_RESPONSE = "lead_response"
DEAL_VELOCITY = "deal_velocity"
NEXT_STEP_HYGIENE = "next_step_hygiene"
DATA_QUALITY = "data_quality"
SLO_NAMES: tuple[str, ...] = (LEAD_RESPONSE, DEAL_VELOCITY, NEXT_STEP_HYGIENE, DATA_QUALITY)

TARGET: dict[str, Fraction] = {
    LEAD_RESPONSE: Fraction("0.95"),
    DEAL_VELOCITY: Fraction("0.90"),
    NEXT_STEP_HYGIENE: Fraction("0.99"),
    DATA_QUALITY: Fraction("0.99"),
}
BUDGET_SHARE: dict[str, Fraction] = {
    LEAD_RESPONSE: Fraction("0.30"),
    DEAL_VELOCITY: Fraction("0.40"),
    NEXT_STEP_HYGIENE: Fraction("0.20"),
    DATA_QUALITY: Fraction("0.10"),
}
MONTHLY_BUDGET_USD = Fraction(50_000)
AVERAGE_DEAL_USD = Fraction(15_000)

LEAD_RESPONSE_THRESHOLD_MS = 30 * MINUTE_MS
DEAL_VELOCITY_THRESHOLD_MS = 7 * DAY_MS
NEXT_STEP_THRESHOLD_MS = 24 * HOUR_MS
STALE_HALF_LIFE_DAYS = 14

SLA_BREACH_UNTOUCHED = "SLA_BREACH_UNTOUCHED"
STALE_OPP = "STALE_OPP"
NO_NEXT_STEP = "NO_NEXT_STEP"
UNASSIGNED_OWNER = "UNASSIGNED_OWNER"
DUPLICATE_SUSPECT = "DUPLICATE_SUSPECT"
ROUTING_MISMATCH = "ROUTING_MISMATCH"

# Dollar impact = value * factor (STALE_OPP has its own formula).
IMPACT_FACTOR: dict[str, Fraction] = {
    SLA_BREACH_UNTOUCHED: Fraction("0.5"),
    UNASSIGNED_OWNER: Fraction("1.0"),
    DUPLICATE_SUSPECT: Fraction("0.2"),
    NO_NEXT_STEP: Fraction("0.25"),
    ROUTING_MISMATCH: Fraction("0.1"),
}

# Keys are stage names trimmed and lower-cased; any other open stage has probability .10.
WIN_PROBABILITY: dict[str, Fraction] = {
    "new": Fraction("0.10"),
    "qualified": Fraction("0.25"),
    "proposal": Fraction("0.45"),
    "negotiation": Fraction("0.65"),
}
OTHER_STAGE_WIN_PROBABILITY = Fraction("0.10")
CLOSED_STAGES = frozenset({"closed won", "closed lost", "converted"})

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "mail.com",
        "yandex.com",
        "zoho.com",
    }
)


@dataclass(frozen=True)
class AlertRule:
    severity: str
    long_ms: int
    short_ms: int
    factor: Fraction


POLICY: tuple[AlertRule, ...] = (
    AlertRule("page", 1 * HOUR_MS, 5 * MINUTE_MS, Fraction("14.4")),
    AlertRule("page", 6 * HOUR_MS, 30 * MINUTE_MS, Fraction(6)),
    AlertRule("ticket", 1 * DAY_MS, 2 * HOUR_MS, Fraction(3)),
    AlertRule("ticket", 3 * DAY_MS, 6 * HOUR_MS, Fraction(1)),
)
POLICY_WINDOWS_MS: tuple[int, ...] = tuple(
    sorted({r.long_ms for r in POLICY} | {r.short_ms for r in POLICY})
)
KINDS: tuple[str, ...] = ("count", "usd")  # every default CRM SLO is a revenue SLO

STRING_FIELDS = (
    "name",
    "email",
    "domain",
    "company",
    "source",
    "region",
    "owner",
    "stage",
    "next_step",
)
TIME_FIELDS = ("created_at", "last_touch_at")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OracleResult:
    alerts: list[dict[str, Any]]
    malformed_lines: int
    late_events: int
    accepted_events: int
    sli_events_good_bad: dict[str, tuple[int, int]]
    sli_events: list[tuple[str, int, bool, float, str]]
    final_consumption: float


@dataclass(frozen=True)
class SliEvent:
    slo: str
    time: int
    good: bool
    weight: Fraction
    record_id: str


@dataclass(frozen=True)
class ViolationInterval:
    """A (record x rule) violation, open on [start, end); end None means never fixed."""

    slo: str
    rule: str
    record_uid: int
    start: int
    end: int | None


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    line_index: int
    ts: int
    obj: str
    op: str
    record_id: str
    # Only the known keys that were present; strings or None, times as epoch ms or None,
    # value_usd as an exact Fraction or None.
    fields: dict[str, Any]


class MalformedLineError(Exception):
    """A line that is not a valid event."""


def _reject_constant(name: str) -> Any:
    raise MalformedLineError(f"non-standard JSON constant {name}")


def parse_time_ms(value: object) -> int:
    """An ISO-8601 date-time string -> epoch milliseconds (no offset means UTC)."""
    if not isinstance(value, str):
        raise MalformedLineError("timestamp is not a string")
    if "T" not in value and " " not in value:
        raise MalformedLineError("timestamp has no time part")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MalformedLineError(f"bad timestamp {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    # Exact integer arithmetic, flooring sub-millisecond digits.
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros // 1000


def parse_line(line: str, line_index: int) -> Event:
    try:
        obj = json.loads(line, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedLineError("not JSON") from exc
    if not isinstance(obj, dict):
        raise MalformedLineError("not a JSON object")
    if not isinstance(obj.get("event_id"), str):
        raise MalformedLineError("event_id")
    ts = parse_time_ms(obj.get("ts"))
    if obj.get("object") not in ("lead", "opportunity"):
        raise MalformedLineError("object")
    if obj.get("op") not in ("create", "update", "delete"):
        raise MalformedLineError("op")
    record_id = obj.get("record_id")
    if not isinstance(record_id, str) or record_id == "":
        raise MalformedLineError("record_id")
    raw_fields = obj.get("fields", {})
    if not isinstance(raw_fields, dict):
        raise MalformedLineError("fields")
    fields: dict[str, Any] = {}
    for key in STRING_FIELDS:
        if key in raw_fields:
            value = raw_fields[key]
            if value is not None and not isinstance(value, str):
                raise MalformedLineError(key)
            fields[key] = value
    for key in TIME_FIELDS:
        if key in raw_fields:
            value = raw_fields[key]
            fields[key] = None if value is None else parse_time_ms(value)
    if "value_usd" in raw_fields:
        value = raw_fields["value_usd"]
        if value is None:
            fields["value_usd"] = None
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MalformedLineError("value_usd type")
            try:
                as_double = float(value)  # a huge JSON integer is not a finite double
            except OverflowError as exc:
                raise MalformedLineError("value_usd range") from exc
            if not math.isfinite(as_double) or value < 0:
                raise MalformedLineError("value_usd range")
            fields["value_usd"] = Fraction(value)
    return Event(line_index, ts, obj["object"], obj["op"], record_id, fields)


# --------------------------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------------------------


def is_empty(value: str | None) -> bool:
    return value is None or value.strip() == ""


def stage_key(fields: dict[str, Any]) -> str:
    """The stage, trimmed and lower-cased; missing/null/blank is "new"."""
    stage = fields.get("stage")
    if is_empty(stage):
        return "new"
    return str(stage).strip().lower()


def is_closed_stage(fields: dict[str, Any]) -> bool:
    return stage_key(fields) in CLOSED_STAGES


def win_probability(fields: dict[str, Any]) -> Fraction:
    return WIN_PROBABILITY.get(stage_key(fields), OTHER_STAGE_WIN_PROBABILITY)


def deal_value(fields: dict[str, Any]) -> Fraction:
    value = fields.get("value_usd")
    return AVERAGE_DEAL_USD if value is None else Fraction(value)


def company_domain(fields: dict[str, Any]) -> str:
    domain = fields.get("domain")
    if not is_empty(domain):
        return str(domain).strip().lower()
    email = fields.get("email")
    if is_empty(email):
        return ""
    email = str(email).strip().lower()
    if "@" not in email:
        return ""
    return email.rsplit("@", 1)[1].strip()


# --------------------------------------------------------------------------------------------
# Record processing (SLI events and violations)
# --------------------------------------------------------------------------------------------


@dataclass
class Record:
    uid: int
    obj: str
    record_id: str
    created_ms: int
    fields: dict[str, Any]
    closed: bool = False
    last_touch_ms: int | None = None  # event time of the last touch
    lr_deadline: int | None = None
    dv_deadline: int | None = None
    ns_deadline: int | None = None
    # (slo, rule) -> start time of each open violation
    violations: dict[tuple[str, str], int] = field(default_factory=dict)

    def dq_order(self) -> tuple[int, str]:
        created_at = self.fields.get("created_at")
        return (self.created_ms if created_at is None else created_at, self.record_id)


class Engine:
    """Applies accepted events (already in (ts, line) order) and fires deadlines."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], Record] = {}
        self.sli: list[SliEvent] = []
        self.violations: list[ViolationInterval] = []
        self._next_uid = 0

    # ---- bookkeeping ----

    def emit(self, rec: Record, slo: str, time: int, good: bool, weight: Fraction) -> None:
        self.sli.append(SliEvent(slo, time, good, weight, rec.record_id))

    def emit_bad(self, rec: Record, slo: str, rule: str, time: int, impact: Fraction) -> None:
        self.emit(rec, slo, time, False, impact)
        rec.violations[(slo, rule)] = time

    def end_violation(self, rec: Record, slo: str, rule: str, time: int) -> None:
        start = rec.violations.pop((slo, rule))
        self.violations.append(ViolationInterval(slo, rule, rec.uid, start, time))

    def has_violation(self, rec: Record, slo: str, rule: str) -> bool:
        return (slo, rule) in rec.violations

    # ---- deadlines ----

    def pending_deadlines(self) -> list[tuple[int, int, str]]:
        pending: list[tuple[int, int, str]] = []
        for rec in self.records.values():
            if rec.closed:
                continue
            for slo, deadline in (
                (LEAD_RESPONSE, rec.lr_deadline),
                (DEAL_VELOCITY, rec.dv_deadline),
                (NEXT_STEP_HYGIENE, rec.ns_deadline),
            ):
                if deadline is not None:
                    pending.append((deadline, rec.uid, slo))
        return sorted(pending)

    def fire_deadlines_before(self, limit: int | None) -> None:
        """Fire every pending deadline with time < limit (all of them when limit is None)."""
        while True:
            pending = self.pending_deadlines()
            if not pending:
                return
            deadline, uid, slo = pending[0]
            if limit is not None and deadline >= limit:
                return
            rec = next(r for r in self.records.values() if r.uid == uid)
            self.fire(rec, slo, deadline)

    def fire(self, rec: Record, slo: str, time: int) -> None:
        value = deal_value(rec.fields)
        if slo == LEAD_RESPONSE:
            rec.lr_deadline = None
            impact = value * IMPACT_FACTOR[SLA_BREACH_UNTOUCHED]
            self.emit_bad(rec, slo, SLA_BREACH_UNTOUCHED, time, impact)
        elif slo == DEAL_VELOCITY:
            rec.dv_deadline = None
            since = rec.created_ms if rec.last_touch_ms is None else rec.last_touch_ms
            days = (time - since) // DAY_MS
            decay = Fraction(2.0 ** (-days / STALE_HALF_LIFE_DAYS))
            impact = value * win_probability(rec.fields) * (1 - decay)
            self.emit_bad(rec, slo, STALE_OPP, time, impact)
        elif slo == NEXT_STEP_HYGIENE:
            rec.ns_deadline = None
            impact = value * IMPACT_FACTOR[NO_NEXT_STEP]
            self.emit_bad(rec, slo, NO_NEXT_STEP, time, impact)
        else:
            raise AssertionError(slo)

    # ---- events ----

    def apply(self, ev: Event) -> None:
        self.fire_deadlines_before(ev.ts)
        rec = self.records.get((ev.obj, ev.record_id))
        if rec is None or rec.closed:
            if ev.op == "delete":
                return  # delete of an unknown or closed record: nothing
            if rec is not None and ev.op == "update":
                return  # update of a closed record: ignored
            self.create(ev)  # create, or update of an unknown record (upsert)
        elif ev.op == "delete":
            self.close(rec, ev.ts)
        else:
            self.update(rec, ev)  # update, or create of an open record

    def create(self, ev: Event) -> None:
        rec = Record(self._next_uid, ev.obj, ev.record_id, ev.ts, dict(ev.fields))
        self._next_uid += 1
        self.records[(ev.obj, ev.record_id)] = rec
        if is_closed_stage(rec.fields):
            rec.closed = True
            return
        if rec.obj == "lead":
            rec.lr_deadline = ev.ts + LEAD_RESPONSE_THRESHOLD_MS
        else:
            rec.dv_deadline = ev.ts + DEAL_VELOCITY_THRESHOLD_MS
            if is_empty(rec.fields.get("next_step")):
                rec.ns_deadline = ev.ts + NEXT_STEP_THRESHOLD_MS
        self.evaluate_data_quality(rec, ev.ts)

    def close(self, rec: Record, time: int) -> None:
        rec.closed = True
        rec.lr_deadline = rec.dv_deadline = rec.ns_deadline = None
        for slo, rule in sorted(rec.violations):
            self.end_violation(rec, slo, rule, time)

    def update(self, rec: Record, ev: Event) -> None:
        old = rec.fields
        new = {**old, **ev.fields}
        if is_closed_stage(new):
            self.close(rec, ev.ts)
            return
        new_touch = ev.fields.get("last_touch_at")
        touched = new_touch is not None and new_touch != old.get("last_touch_at")
        stage_changed = stage_key(new) != stage_key(old)
        next_step_was_empty = is_empty(old.get("next_step"))
        next_step_is_empty = is_empty(new.get("next_step"))
        rec.fields = new
        t = ev.ts

        if touched:
            rec.last_touch_ms = t
            if rec.obj == "lead":
                if rec.lr_deadline is not None:
                    rec.lr_deadline = None
                    self.emit(rec, LEAD_RESPONSE, t, True, Fraction(0))
                elif self.has_violation(rec, LEAD_RESPONSE, SLA_BREACH_UNTOUCHED):
                    self.end_violation(rec, LEAD_RESPONSE, SLA_BREACH_UNTOUCHED, t)

        if rec.obj == "opportunity":
            if touched or stage_changed:  # an activity
                if self.has_violation(rec, DEAL_VELOCITY, STALE_OPP):
                    self.end_violation(rec, DEAL_VELOCITY, STALE_OPP, t)
                elif rec.dv_deadline is not None:
                    self.emit(rec, DEAL_VELOCITY, t, True, Fraction(0))
                rec.dv_deadline = t + DEAL_VELOCITY_THRESHOLD_MS
            if next_step_was_empty and not next_step_is_empty:
                if rec.ns_deadline is not None:
                    rec.ns_deadline = None
                    self.emit(rec, NEXT_STEP_HYGIENE, t, True, Fraction(0))
                elif self.has_violation(rec, NEXT_STEP_HYGIENE, NO_NEXT_STEP):
                    self.end_violation(rec, NEXT_STEP_HYGIENE, NO_NEXT_STEP, t)
            elif not next_step_was_empty and next_step_is_empty:
                rec.ns_deadline = t + NEXT_STEP_THRESHOLD_MS

        self.evaluate_data_quality(rec, t)

    def evaluate_data_quality(self, rec: Record, t: int) -> None:
        after: set[str] = set()
        if is_empty(rec.fields.get("owner")):
            after.add(UNASSIGNED_OWNER)
        if is_empty(rec.fields.get("region")):
            after.add(ROUTING_MISMATCH)
        domain = company_domain(rec.fields)
        if domain and domain not in FREE_MAIL_DOMAINS:
            for other in self.records.values():
                if (
                    other is not rec
                    and not other.closed
                    and other.obj == rec.obj
                    and company_domain(other.fields) == domain
                    and other.dq_order() < rec.dq_order()
                ):
                    after.add(DUPLICATE_SUSPECT)
        before = {rule for (slo, rule) in rec.violations if slo == DATA_QUALITY}
        value = deal_value(rec.fields)
        for rule in sorted(after - before):
            self.emit_bad(rec, DATA_QUALITY, rule, t, value * IMPACT_FACTOR[rule])
        for rule in sorted(before - after):
            self.end_violation(rec, DATA_QUALITY, rule, t)
        if not after:
            self.emit(rec, DATA_QUALITY, t, True, Fraction(0))

    def finish(self) -> None:
        """End of input: the watermark goes to +inf, every pending deadline fires."""
        self.fire_deadlines_before(None)
        for rec in self.records.values():
            for (slo, rule), start in sorted(rec.violations.items()):
                self.violations.append(ViolationInterval(slo, rule, rec.uid, start, None))
            rec.violations.clear()


# --------------------------------------------------------------------------------------------
# Windows, burn rates and alerts
# --------------------------------------------------------------------------------------------


def bucket(t: int) -> int:
    return t // MINUTE_MS


@dataclass(frozen=True)
class WindowSums:
    total: int
    bad: int
    usd: Fraction


def in_window(e: SliEvent, t: int, window_ms: int) -> bool:
    """Whether a window w evaluated at t holds e: time <= t and bucket in (b(t) - w, b(t)]."""
    width = window_ms // MINUTE_MS
    return e.time <= t and bucket(t) - width < bucket(e.time) <= bucket(t)


def window_sums(events: list[SliEvent], t: int, window_ms: int) -> WindowSums:
    """Brute force: count and sum the SLI events that the window holds."""
    inside = [e for e in events if in_window(e, t, window_ms)]
    bad = [e for e in inside if not e.good]
    return WindowSums(len(inside), len(bad), sum((e.weight for e in bad), Fraction(0)))


def count_burn(slo: str, sums: WindowSums) -> Fraction:
    if sums.total == 0:
        return Fraction(0)
    return Fraction(sums.bad, sums.total) / (1 - TARGET[slo])


def slo_budget_usd(slo: str) -> Fraction:
    return MONTHLY_BUDGET_USD * BUDGET_SHARE[slo]


def usd_burn(slo: str, sums: WindowSums, window_ms: int) -> Fraction:
    return sums.usd / slo_budget_usd(slo) * Fraction(PERIOD_MS, window_ms)


def burn(slo: str, kind: str, sums: WindowSums, window_ms: int) -> Fraction:
    return count_burn(slo, sums) if kind == "count" else usd_burn(slo, sums, window_ms)


def budget_remaining(slo: str, kind: str, period: WindowSums) -> Fraction:
    if kind == "count":
        if period.total == 0:
            return Fraction(1)
        return 1 - Fraction(period.bad) / ((1 - TARGET[slo]) * period.total)
    return 1 - period.usd / slo_budget_usd(slo)


def blast_radius(violations: list[ViolationInterval], slo: str, t: int) -> int:
    return sum(
        1 for v in violations if v.slo == slo and v.start <= t and (v.end is None or t < v.end)
    )


def format_window(ms: int) -> str:
    if ms % DAY_MS == 0:
        return f"{ms // DAY_MS}d"
    if ms % HOUR_MS == 0:
        return f"{ms // HOUR_MS}h"
    return f"{ms // MINUTE_MS}m"


def format_time(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{ms % 1000:03d}Z"
    )


def change_points(events: list[SliEvent]) -> list[int]:
    """Every point where some policy window gains or loses an event (see module docstring)."""
    points = {e.time for e in events}
    for e in events:
        for window_ms in POLICY_WINDOWS_MS:
            points.add((bucket(e.time) + window_ms // MINUTE_MS) * MINUTE_MS)
    return sorted(points)


def all_minute_points(events: list[SliEvent]) -> list[int]:
    """The spec's points: every SLI event time and every minute boundary until all resolve."""
    first = min(e.time for e in events)
    last_bucket = max(bucket(e.time) for e in events)
    longest = max(POLICY_WINDOWS_MS) // MINUTE_MS
    minutes = range(-(-first // MINUTE_MS), last_bucket + longest + 6)
    return sorted({e.time for e in events} | {k * MINUTE_MS for k in minutes})


def evaluate_alerts(
    slo: str,
    events: list[SliEvent],
    violations: list[ViolationInterval],
    min_events: int,
    exhaustive_points: bool,
) -> list[dict[str, Any]]:
    if not events:
        return []
    longest = max(POLICY_WINDOWS_MS)
    points = all_minute_points(events) if exhaustive_points else change_points(events)
    firing: dict[tuple[str, int], bool] = {
        (kind, i): False for kind in KINDS for i in range(len(POLICY))
    }
    transitions: list[dict[str, Any]] = []
    previous: dict[int, WindowSums] | None = None
    for t in points:
        # Shortcuts that cannot change the outcome: the firing conditions depend only on the
        # window sums, so (a) with an empty 3-day window every burn rate is 0 and nothing can
        # fire, nor resolve while nothing fires; (b) after an evaluation every rule's state
        # equals its condition, so the same sums as at the last evaluated point change nothing.
        recent = [e for e in events if in_window(e, t, longest)]
        if not recent and not any(firing.values()):
            continue
        sums = {w: window_sums(recent, t, w) for w in POLICY_WINDOWS_MS}
        if sums == previous:
            continue
        previous = sums
        for kind in KINDS:
            for i, rule in enumerate(POLICY):
                long_sums, short_sums = sums[rule.long_ms], sums[rule.short_ms]
                burn_long = burn(slo, kind, long_sums, rule.long_ms)
                burn_short = burn(slo, kind, short_sums, rule.short_ms)
                condition = burn_long > rule.factor and burn_short > rule.factor
                if kind == "count" and min_events > 0 and long_sums.total < min_events:
                    condition = False
                if condition == firing[(kind, i)]:
                    continue
                firing[(kind, i)] = condition
                period = window_sums(events, t, PERIOD_MS)
                transitions.append(
                    {
                        "slo": slo,
                        "severity": rule.severity,
                        "kind": kind,
                        "long_window": format_window(rule.long_ms),
                        "short_window": format_window(rule.short_ms),
                        "state": "firing" if condition else "resolved",
                        "at": format_time(t),
                        "burn_long": float(burn_long),
                        "burn_short": float(burn_short),
                        "budget_remaining": float(budget_remaining(slo, kind, period)),
                        "at_risk_usd": float(period.usd),
                        "blast_radius": blast_radius(violations, slo, t),
                        "_at_ms": t,
                        "_long_ms": rule.long_ms,
                    }
                )
    assert not any(firing.values()), "every alert must resolve once all windows are empty"
    return transitions


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def replay(
    lines: list[str],
    *,
    allowed_lateness_ms: int = 60_000,
    min_events: dict[str, int] | None = None,
    exhaustive_points: bool = False,
) -> OracleResult:
    """Replay a generic CRM event log with the default CRM SLOs (see the module docstring)."""
    min_events = dict(min_events or {})
    unknown = set(min_events) - set(SLO_NAMES)
    if unknown:
        raise ValueError(f"unknown SLOs in min_events: {sorted(unknown)}")

    # 1. Validation and lateness, in file order.
    malformed = late = 0
    accepted: list[Event] = []
    max_ts: int | None = None
    for index, line in enumerate(lines):
        if line.strip() == "":
            continue
        try:
            ev = parse_line(line, index)
        except MalformedLineError:
            malformed += 1
            continue
        if max_ts is not None and ev.ts < max_ts - allowed_lateness_ms:
            late += 1
            continue
        max_ts = ev.ts if max_ts is None else max(max_ts, ev.ts)
        accepted.append(ev)

    # 2. Apply accepted events in (ts, line) order; deadlines fire in between and at the end.
    engine = Engine()
    for ev in sorted(accepted, key=lambda e: (e.ts, e.line_index)):
        engine.apply(ev)
    engine.finish()
    sli = engine.sli

    # 3. Alerts, per SLO.
    alerts: list[dict[str, Any]] = []
    for slo in SLO_NAMES:
        alerts += evaluate_alerts(
            slo,
            [e for e in sli if e.slo == slo],
            engine.violations,
            min_events.get(slo, 0),
            exhaustive_points,
        )
    alerts.sort(key=lambda a: (a["_at_ms"], a["slo"], a["kind"], a["severity"], a["_long_ms"]))
    for alert in alerts:
        del alert["_at_ms"], alert["_long_ms"]

    # 4. Counts and consumption.
    good_bad = {
        slo: (
            sum(1 for e in sli if e.slo == slo and e.good),
            sum(1 for e in sli if e.slo == slo and not e.good),
        )
        for slo in SLO_NAMES
    }
    if sli:
        last = max(e.time for e in sli)
        at_risk = sum((e.weight for e in sli if in_window(e, last, PERIOD_MS)), Fraction(0))
        consumption = float(at_risk / MONTHLY_BUDGET_USD)
    else:
        consumption = 0.0
    sli_tuples = sorted(
        ((e.slo, e.time, e.good, float(e.weight), e.record_id) for e in sli),
        key=lambda x: (x[1], x[0], x[4], x[2], x[3]),
    )
    return OracleResult(
        alerts=alerts,
        malformed_lines=malformed,
        late_events=late,
        accepted_events=len(accepted),
        sli_events_good_bad=good_bad,
        sli_events=sli_tuples,
        final_consumption=consumption,
    )
