"""A seeded stream of generic-JSON CRM change events for load tests and benchmarks.

One JSON object a line, the shape :mod:`revleak.connectors.generic_json` reads::

    {"event_id", "ts", "object": "lead"|"opportunity", "op": "create"|"update"|"delete",
     "record_id", "fields": {...}}

``records`` records are each created once (≈30 % opportunities) and receive the
other ``events − records`` changes as updates: mostly touches (an update setting
``last_touch_at`` to the event's time) and stage changes, some next-step edits, a
few owner/region/value/contact edits, and at a record's last change sometimes a
close (``Closed Won``/``Closed Lost``, a lead ``Converted``) or a delete. A small
share of leads is first touched only after 30 minutes, a small share of
opportunities goes quiet after its first hours (idle > 7 days when the span
allows), ~2 % of records are created without owner, ~1 % without region, ~60 %
carry a company domain (some shared by 2–3 records of the same object: duplicate
suspects), ~25 % have a free-mail address, ``value_usd`` is log-uniform in
1k–500k with ~8 % missing.

Event times increase over ``days``. Every record is created before its updates
(in the file and in event time). A fraction ``out_of_order`` of the updates
arrives behind the newest time already written, but by less than the 60 s
lateness (so it is accepted), and a fraction ``late`` arrives more than 60 s behind
(so it is dead-lettered as ``late``); a displaced update never predates its
record's creation.

When there are few events per record (fewer updates than leads) not every lead
can be touched: first touches of leads get up to 75 % of the updates, the rest
are spread over all records (opportunities three times as much as leads).

CLI: ``python -P -m revleak.loadtest.crm_stream --records 1000 --events 10000 --out FILE``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import random
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
ALLOWED_LATENESS_MS = 60_000

OPPORTUNITY_STAGES = ("New", "Qualified", "Proposal", "Negotiation", "Closed Won", "Closed Lost")
_OPEN_OPPORTUNITY_STAGES = OPPORTUNITY_STAGES[:4]

FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "proton.me")
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
SOURCES = ("web", "webinar", "referral", "event", "outbound", "partner", "ads")
OWNERS = tuple(
    f"{first}.{last}"
    for first in ("ana", "ben", "chen", "dara", "eli", "fay", "gus", "hana")
    for last in ("kim", "lopez", "novak", "okafor", "patel", "quinn")
)
FIRST_NAMES = (
    "alex", "blair", "casey", "devon", "emery", "finley", "gray", "harper", "indy", "jules",
    "kai", "logan", "morgan", "noel", "oakley", "parker", "quinn", "reese", "sage", "taylor",
)  # fmt: skip
LAST_NAMES = (
    "adams", "baker", "clark", "diaz", "evans", "fischer", "garcia", "hughes", "ito", "jones",
    "kowalski", "lee", "moreau", "nguyen", "olsen", "petrov", "rossi", "silva", "tanaka", "weber",
)  # fmt: skip
COMPANY_WORDS = (
    "acme", "apex", "blue", "bright", "cedar", "core", "delta", "echo", "fable", "globe",
    "harbor", "iron", "jade", "kite", "lumen", "maple", "nova", "orbit", "pine", "quartz",
    "river", "summit", "terra", "union", "vertex", "willow", "zenith",
)  # fmt: skip
COMPANY_SUFFIXES = ("labs", "systems", "works", "group", "tech", "foods", "health", "logistics")
NEXT_STEPS = (
    "discovery call", "send proposal", "pricing review", "security questionnaire",
    "demo for buyer", "legal review", "intro to champion", "follow-up email",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of what records look like and what updates do (kinds are relative weights)."""

    opportunity: float = 0.30  # share of records that are opportunities
    no_owner: float = 0.02  # records created without owner
    no_region: float = 0.01  # records created without region
    company_domain: float = 0.60  # records with a company domain (field or email)
    shared_domain: float = 0.12  # of those, share reusing a recent domain (2–3 per domain)
    free_mail: float = 0.25  # records with a free-mail email address
    no_value: float = 0.08  # records without value_usd
    no_next_step: float = 0.15  # opportunities created without a next step
    slow_lead: float = 0.04  # leads first touched only after 30 minutes
    stalled_opportunity: float = 0.03  # opportunities that go quiet after their first hours
    close: float = 0.25  # a record's last update closes (or converts) it ...
    delete: float = 0.01  # ... or deletes it
    # Update kinds (relative weights), apart from first touches and the final close/delete.
    touch: float = 0.55
    stage: float = 0.20
    next_step: float = 0.12
    owner: float = 0.025
    region: float = 0.015
    value: float = 0.04
    contact: float = 0.05


DEFAULT_MIX = Mix()
_KINDS = ("touch", "stage", "next_step", "owner", "region", "value", "contact")


def parse_time(text: str) -> int:
    """ISO-8601 (``Z`` or offset) to epoch milliseconds."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000


class _Clock:
    """Formats epoch milliseconds as ``2026-03-02T10:00:00.123Z``, caching the date part."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        day, rest = divmod(ms, DAY_MS)
        prefix = self._days.get(day)
        if prefix is None:
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)
            prefix = self._days[day] = moment.strftime("%Y-%m-%dT")
        hours, rest = divmod(rest, HOUR_MS)
        minutes, rest = divmod(rest, MINUTE_MS)
        seconds, millis = divmod(rest, 1000)
        return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def record_id(index: int, *, opportunity: bool) -> str:
    return f"{'O' if opportunity else 'L'}-{index:07d}"


class RecordFactory:
    """The fields of new records (text fields only; the caller adds ``created_at``).

    Shared with the benchmark harness so that state measurements see realistic records.
    """

    def __init__(self, rng: random.Random, mix: Mix = DEFAULT_MIX) -> None:
        self._rng = rng
        self._mix = mix
        # Recent company domains per object, as [domain, company, uses, most uses].
        self._recent: dict[bool, list[list[Any]]] = {False: [], True: []}
        self._serial = 0
        self._log_low = math.log(1_000)
        self._log_high = math.log(500_000)

    def value(self) -> float:
        return round(math.exp(self._rng.uniform(self._log_low, self._log_high)), 2)

    def _company(self, opportunity: bool) -> tuple[str, str]:
        rng = self._rng
        recent = self._recent[opportunity]
        if recent and rng.random() < self._mix.shared_domain:
            slot = recent[rng.randrange(len(recent))]
            slot[2] += 1
            if slot[2] >= slot[3]:  # used by as many records as it may be (2 or 3): retire it
                recent.remove(slot)
            return slot[0], slot[1]
        self._serial += 1
        word = COMPANY_WORDS[rng.randrange(len(COMPANY_WORDS))]
        suffix = COMPANY_SUFFIXES[rng.randrange(len(COMPANY_SUFFIXES))]
        domain = f"{word}{suffix}-{self._serial}.com"
        company = f"{word.title()} {suffix.title()} {self._serial}"
        recent.append([domain, company, 1, 2 + (rng.random() < 0.4)])
        if len(recent) > 64:
            recent.pop(0)
        return domain, company

    def fields(self, *, opportunity: bool) -> dict[str, Any]:
        rng, mix = self._rng, self._mix
        first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
        last = LAST_NAMES[rng.randrange(len(LAST_NAMES))]
        fields: dict[str, Any] = {}
        has_domain = rng.random() < mix.company_domain
        # Free mail on `free_mail` of all records: rarer with a company domain, the rest without.
        free_with_domain = min(mix.free_mail, 0.15)
        free_left = mix.free_mail - mix.company_domain * free_with_domain
        without = 1 - mix.company_domain
        free_without = min(1.0, free_left / without) if without > 0 else 0.0
        if has_domain:
            domain, company = self._company(opportunity)
            fields["company"] = company
            if rng.random() < free_with_domain:
                fields["domain"] = domain
                mailbox = FREE_MAIL[rng.randrange(len(FREE_MAIL))]
            elif rng.random() < 0.5:
                fields["domain"] = domain
                mailbox = domain
            else:
                mailbox = domain  # the company domain comes from the email alone
            fields["email"] = f"{first}.{last}@{mailbox}"
            fields["name"] = (
                f"{company} expansion" if opportunity else f"{first.title()} {last.title()}"
            )
        else:
            if rng.random() < free_without:
                fields["email"] = (
                    f"{first}.{last}{rng.randrange(100)}@"
                    + FREE_MAIL[rng.randrange(len(FREE_MAIL))]
                )
            fields["name"] = f"{first.title()} {last.title()}"
        fields["source"] = SOURCES[rng.randrange(len(SOURCES))]
        if rng.random() >= mix.no_region:
            fields["region"] = REGIONS[rng.randrange(len(REGIONS))]
        if rng.random() >= mix.no_owner:
            fields["owner"] = OWNERS[rng.randrange(len(OWNERS))]
        if opportunity:
            fields["stage"] = "New" if rng.random() < 0.6 else "Qualified"
            if rng.random() >= mix.no_next_step:
                fields["next_step"] = NEXT_STEPS[rng.randrange(len(NEXT_STEPS))]
        else:
            fields["stage"] = "New"
        if rng.random() >= mix.no_value:
            fields["value_usd"] = self.value()
        return fields


class _Record:
    """What the generator remembers of a record while it still has updates to come."""

    __slots__ = ("created", "first_touch", "has_next_step", "has_owner", "id", "object",
                 "opportunity", "position", "stage", "times")  # fmt: skip

    def __init__(
        self, index: int, opportunity: bool, fields: dict[str, Any], created: int, times: list[int]
    ) -> None:
        self.id = record_id(index, opportunity=opportunity)
        self.object = "opportunity" if opportunity else "lead"
        self.opportunity = opportunity
        self.stage = 0 if fields["stage"] == "New" else 1
        self.times = times
        self.position = 0
        self.created = created
        self.has_owner = "owner" in fields
        self.has_next_step = "next_step" in fields
        self.first_touch = False


class _Stream:
    """One run of :func:`generate` (its state, split into steps)."""

    def __init__(
        self, *, records: int, events: int, days: float, seed: int, out_of_order: float,
        late: float, start: str, mix: Mix,
    ) -> None:  # fmt: skip
        if records < 1 or events < records:
            raise ValueError("need at least one record and at least one event per record")
        if days <= 0:
            raise ValueError("days must be positive")
        if not (0 <= out_of_order <= 1 and 0 <= late <= 1 and out_of_order + late <= 1):
            raise ValueError("out_of_order and late are fractions whose sum is at most 1")
        self.records = records
        self.mix = mix
        self.rng = rng = random.Random(seed)
        self.factory = RecordFactory(random.Random(rng.random()), mix)
        self.clock = _Clock()
        self.t0 = parse_time(start)
        self.end = self.t0 + int(days * DAY_MS)
        self.creation_span = int(days * DAY_MS * 0.85)
        updates = events - records
        # The displaced share is of all events, but only updates are displaced.
        self.late_share = min(1.0, late * events / updates) if updates else 0.0
        self.early_share = (
            min(1.0 - self.late_share, out_of_order * events / updates) if updates else 0.0
        )
        weights = [getattr(mix, kind) for kind in _KINDS]
        self.kind_bounds = [sum(weights[: i + 1]) for i in range(len(weights))]
        self.closing = mix.close + mix.delete

        # Who is what, drawn up front so the update budget can be split exactly.
        self.is_opp = bytearray(records)
        self.slow = bytearray(records)
        self.weight = array("d", bytes(8 * records))
        fast_leads = 0
        for index in range(records):
            opportunity = rng.random() < mix.opportunity
            self.is_opp[index] = opportunity
            if opportunity:
                self.slow[index] = rng.random() < mix.stalled_opportunity
                self.weight[index] = 3.0 * (0.2 + rng.expovariate(1.0))
            else:
                self.slow[index] = rng.random() < mix.slow_lead
                fast_leads += not self.slow[index]
                self.weight[index] = 0.2 + rng.expovariate(1.0)
        self.first_touches = min(fast_leads, int(0.75 * updates))
        self.extra = updates - self.first_touches
        self.weight_left = math.fsum(self.weight)
        self.leads_left = fast_leads

        self.pending: list[tuple[int, int, _Record]] = []
        self.sequence = 0
        self.newest = self.t0  # the newest event time written so far
        self.serial = 0  # event ids

    def run(self) -> Iterator[bytes]:
        pending = self.pending
        for index in range(self.records):
            created = self.t0 + int(self.creation_span * (index + self.rng.random()) / self.records)
            while pending and pending[0][0] <= created:
                nominal, _, record = heapq.heappop(pending)
                yield self.update(record, nominal)
                self.queue_next(record)
            yield self.create(index, created)
        while pending:
            nominal, _, record = heapq.heappop(pending)
            yield self.update(record, nominal)
            self.queue_next(record)

    def line(self, ts: int, record: _Record, op: str, fields: dict[str, Any]) -> bytes:
        self.serial += 1
        return orjson.dumps(
            {
                "event_id": f"ev-{self.serial:09d}",
                "ts": self.clock(ts),
                "object": record.object,
                "op": op,
                "record_id": record.id,
                "fields": fields,
            }
        )

    def create(self, index: int, created: int) -> bytes:
        rng = self.rng
        opportunity = bool(self.is_opp[index])
        # This record's share of the updates: a first touch (fast leads, while the budget
        # lasts, by selection sampling) and its weight's share of the rest.
        first = False
        if not opportunity and not self.slow[index]:
            if self.leads_left and rng.random() * self.leads_left < self.first_touches:
                first = True
                self.first_touches -= 1
            self.leads_left -= 1
        weight = self.weight[index]
        share = self.extra * weight / self.weight_left if self.weight_left > 0 else self.extra
        count = int(share)
        count += rng.random() < share - count
        self.weight_left -= weight
        count = self.extra if index == self.records - 1 else min(count, self.extra)
        self.extra -= count
        times = _update_times(
            rng, created, self.end, count + first, first, bool(self.slow[index]), opportunity
        )
        fields = self.factory.fields(opportunity=opportunity)
        fields["created_at"] = self.clock(created)
        self.newest = max(self.newest, created)
        record = _Record(index, opportunity, fields, created, times)
        record.first_touch = first
        if times:
            self.sequence += 1
            heapq.heappush(self.pending, (times[0], self.sequence, record))
        return self.line(created, record, "create", fields)

    def queue_next(self, record: _Record) -> None:
        position = record.position + 1
        if position < len(record.times):
            record.position = position
            self.sequence += 1
            heapq.heappush(self.pending, (record.times[position], self.sequence, record))

    def displaced(self, record: _Record, nominal: int) -> int:
        """The update's event time: ``nominal``, or behind the newest time (out of order/late)."""
        rng = self.rng
        roll = rng.random()
        if roll < self.late_share:
            shifted = self.newest - ALLOWED_LATENESS_MS - rng.randint(1_000, 10 * MINUTE_MS)
        elif roll < self.late_share + self.early_share:
            shifted = self.newest - rng.randint(1, ALLOWED_LATENESS_MS - 5_000)
        else:
            return nominal
        return shifted if shifted > record.created else nominal

    def update(self, record: _Record, nominal: int) -> bytes:
        rng, mix = self.rng, self.mix
        ts = self.displaced(record, nominal)
        self.newest = max(self.newest, ts)
        stamp = self.clock(ts)
        position = record.position
        if position == 0 and record.first_touch:
            return self.line(ts, record, "update", {"last_touch_at": stamp})
        last = position == len(record.times) - 1
        if last and (record.opportunity or position > 0) and rng.random() < self.closing:
            if rng.random() < mix.delete / self.closing:
                return self.line(ts, record, "delete", {})
            if record.opportunity:
                stage = "Closed Won" if rng.random() < 0.4 else "Closed Lost"
            else:
                stage = "Converted"
            fields: dict[str, Any] = {"stage": stage}
            if rng.random() < 0.5:
                fields["last_touch_at"] = stamp
            return self.line(ts, record, "update", fields)
        return self.line(ts, record, "update", self.change(record, stamp))

    def change(self, record: _Record, stamp: str) -> dict[str, Any]:
        """The fields of an ordinary update, by the mix of update kinds."""
        rng = self.rng
        pick = rng.random() * self.kind_bounds[-1]
        kind = next(
            (name for name, bound in zip(_KINDS, self.kind_bounds, strict=True) if pick < bound),
            "touch",
        )
        if kind == "stage":
            if record.opportunity:
                record.stage = record.stage + 1 if record.stage < 3 else 2
                return {"stage": _OPEN_OPPORTUNITY_STAGES[record.stage]}
            if record.stage == 0:
                record.stage = 1
                return {"stage": "Qualified"}
        elif kind == "next_step" and record.opportunity:
            if record.has_next_step and rng.random() < 0.25:
                record.has_next_step = False
                return {"next_step": None}
            record.has_next_step = True
            return {"next_step": NEXT_STEPS[rng.randrange(len(NEXT_STEPS))]}
        elif kind == "owner":
            if record.has_owner and rng.random() < 0.1:
                record.has_owner = False
                return {"owner": None}
            record.has_owner = True
            return {"owner": OWNERS[rng.randrange(len(OWNERS))]}
        elif kind == "region":
            return {"region": REGIONS[rng.randrange(len(REGIONS))]}
        elif kind == "value":
            return {"value_usd": self.factory.value()}
        elif kind == "contact":
            first = FIRST_NAMES[rng.randrange(len(FIRST_NAMES))]
            fields = {
                "name": f"{first.title()} {LAST_NAMES[rng.randrange(len(LAST_NAMES))].title()}"
            }
            if rng.random() < 0.3:
                fields["source"] = SOURCES[rng.randrange(len(SOURCES))]
            return fields
        # A touch (also a lead's stage change once qualified, or its next-step edit).
        return {"last_touch_at": stamp}


def generate(
    *,
    records: int,
    events: int,
    days: float = 7.0,
    seed: int = 1,
    out_of_order: float = 0.01,
    late: float = 0.0,
    start: str = "2026-03-02T00:00:00Z",
    mix: Mix = DEFAULT_MIX,
) -> Iterator[bytes]:
    """Yield ``events`` encoded change events (no newline) about ``records`` records.

    Raises :class:`ValueError` at once (not on the first ``next``) for impossible sizes.
    """
    stream = _Stream(
        records=records, events=events, days=days, seed=seed, out_of_order=out_of_order,
        late=late, start=start, mix=mix,
    )  # fmt: skip
    return stream.run()


def _update_times(
    rng: random.Random,
    created: int,
    end: int,
    count: int,
    first_touch: bool,
    slow: bool,
    opportunity: bool,
) -> list[int]:
    """Increasing event times of a record's ``count`` updates, all in ``(created, end]``."""
    if count == 0:
        return []
    times: list[int] = []
    now = created
    if slow and opportunity:
        # Busy for its first hours, then idle to the end.
        horizon = min(end, created + 2 * HOUR_MS)
        return sorted(rng.randint(created + 1, max(created + 1, horizon)) for _ in range(count))
    if not opportunity:
        if first_touch:
            delay = min(int(rng.expovariate(1 / (6 * MINUTE_MS))), 28 * MINUTE_MS) + 1_000
        else:
            # The first update comes after the 30-minute deadline (slow leads, or no budget).
            delay = 31 * MINUTE_MS + int(rng.expovariate(1 / (4 * HOUR_MS)))
        now = min(end, created + delay)
        times.append(now)
    cap = 6 * DAY_MS  # gaps under 7 days, so only stalled opportunities go idle
    while len(times) < count:
        left = count - len(times)
        mean = max(1, (end - now) // (left + 1))
        step = min(int(rng.expovariate(1 / mean)) + 1, cap)
        if now + step > end:
            step = max(0, int((end - now) * rng.random()))
        now += step
        times.append(now)
    return times


def write(path: str | Path, **options: Any) -> int:
    """Write :func:`generate` ``(**options)`` to ``path``, one event a line; return the count."""
    count = 0
    with Path(path).open("wb", buffering=1 << 20) as out:
        chunk: list[bytes] = []
        for encoded in generate(**options):
            chunk.append(encoded)
            if len(chunk) >= 4096:
                out.write(b"\n".join(chunk) + b"\n")
                count += len(chunk)
                chunk = []
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
            count += len(chunk)
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m revleak.loadtest.crm_stream",
        description="Write a seeded stream of generic-JSON CRM change events.",
    )
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-of-order", type=float, default=0.01)
    parser.add_argument("--late", type=float, default=0.0)
    parser.add_argument("--start", default="2026-03-02T00:00:00Z")
    parser.add_argument("--out", help="output file (default: standard output)")
    args = parser.parse_args(argv)
    options = {
        "records": args.records,
        "events": args.events,
        "days": args.days,
        "seed": args.seed,
        "out_of_order": args.out_of_order,
        "late": args.late,
        "start": args.start,
    }
    if args.out:
        count = write(args.out, **options)
        print(f"wrote {count} events to {args.out}", file=sys.stderr)
    else:
        out = sys.stdout.buffer
        try:
            for encoded in generate(**options):
                out.write(encoded + b"\n")
            out.flush()
        except BrokenPipeError:  # e.g. piped into `head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
