"""The "Nakatomi Deal" story: the demo's event log, written to ``data/``.

Week one is a healthy funnel: leads are touched within minutes, deals move, the
odd hygiene slip is fixed. Then, on Tuesday 10 March, the big Nakatomi Plaza
deal in Negotiation has gone a full week without activity (STALE_OPP), and at
the evening holiday party a flood of webinar leads arrives that nobody touches
(SLA_BREACH_UNTOUCHED, each worth more than $10k). The revenue budget burns
through: SEV1, PAGE.

Regenerate with ``python -P -m revleak.loadtest.nakatomi data/`` (a test checks
the committed files are what this module writes).
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 3, 2, tzinfo=UTC)
OWNERS = [("holly", "NA"), ("ellis", "NA"), ("argyle", "NA"), ("powell", "EMEA"), ("karl", "EMEA")]
COMPANIES = [
    "initech",
    "globex",
    "umbrella",
    "hooli",
    "vandelay",
    "wonka",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "acme",
    "gringotts",
    "monarch",
    "oscorp",
]
NAKATOMI_ID = "O-NAKATOMI-PLAZA"
NAKATOMI_VALUE = 420_000
DEAL_VALUES = [25_000, 40_000, 18_000, 60_000, 35_000, 22_000, 50_000, 30_000]
FLOOD_LEADS = 80
FLOOD_VALUE = 30_000


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Story:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.events: list[tuple[datetime, int, dict[str, Any]]] = []
        self.rows: list[dict[str, str]] = []

    def emit(self, moment: datetime, obj: str, op: str, record_id: str, **fields: Any) -> None:
        event = {
            "event_id": f"ev-{len(self.events) + 1:05d}",
            "ts": _stamp(moment),
            "object": obj,
            "op": op,
            "record_id": record_id,
            "fields": fields,
        }
        self.events.append((moment, len(self.events), event))

    def lead(
        self,
        moment: datetime,
        number: int,
        *,
        touched_after: timedelta | None,
        owner: str,
        region: str,
        value: int,
        source: str,
        company: str,
        domain: str | None = None,
    ) -> str:
        record_id = f"L-{number:04d}"
        domain = domain or f"{company}-{number}.example"
        self.emit(
            moment,
            "lead",
            "create",
            record_id,
            name=f"Lead {number} ({company.title()})",
            email=f"contact{number}@{domain}",
            company=company.title(),
            source=source,
            owner=owner,
            region=region,
            stage="New",
            value_usd=value,
            created_at=_stamp(moment),
        )
        if touched_after is not None:
            touch = moment + touched_after
            self.emit(touch, "lead", "update", record_id, last_touch_at=_stamp(touch))
        return record_id


def story(seed: int = 1988) -> list[dict[str, Any]]:
    """The events of the story, in event-time order."""
    tale = _Story(seed)
    rng = tale.random
    number = 0
    opportunities: list[tuple[str, str]] = []

    # Open pipeline at the start of the week: eight deals with next steps.
    for index in range(8):
        owner, region = OWNERS[index % len(OWNERS)]
        moment = START + timedelta(days=0, hours=9, minutes=5 * index)
        record_id = f"O-{index + 1:04d}"
        company = COMPANIES[index]
        tale.emit(
            moment,
            "opportunity",
            "create",
            record_id,
            name=f"{company.title()} platform deal",
            owner=owner,
            region=region,
            stage=rng.choice(["Qualified", "Proposal"]),
            next_step="discovery call",
            value_usd=DEAL_VALUES[index],
            domain=f"{company}.example",
            created_at=_stamp(moment),
        )
        opportunities.append((record_id, owner))
    tale.emit(
        START + timedelta(hours=10),
        "opportunity",
        "create",
        NAKATOMI_ID,
        name="Nakatomi Plaza - global security renewal",
        owner="ellis",
        region="NA",
        stage="Negotiation",
        next_step="legal review",
        value_usd=NAKATOMI_VALUE,
        domain="nakatomi.example",
        created_at=_stamp(START + timedelta(hours=10)),
    )
    last_nakatomi_touch = START + timedelta(days=1, hours=15)
    tale.emit(
        last_nakatomi_touch,
        "opportunity",
        "update",
        NAKATOMI_ID,
        last_touch_at=_stamp(last_nakatomi_touch),
        next_step="send redlines to Takagi",
    )

    # Seven healthy days: leads answered in minutes, deals moving every day or two.
    for day in range(8):
        date = START + timedelta(days=day)
        if date.weekday() >= 5:
            continue
        for slot in range(12):
            number += 1
            owner, region = OWNERS[rng.randrange(len(OWNERS))]
            moment = date + timedelta(hours=9, minutes=40 * slot + rng.randrange(0, 30))
            tale.lead(
                moment,
                number,
                touched_after=timedelta(minutes=rng.randrange(3, 22)),
                owner=owner,
                region=region,
                value=rng.choice([5_000, 8_000, 12_000]),
                source=rng.choice(["web", "referral", "event"]),
                company=rng.choice(COMPANIES),
            )
            if rng.random() < 0.25:
                converted = moment + timedelta(hours=rng.randrange(2, 6))
                tale.emit(converted, "lead", "update", f"L-{number:04d}", stage="Converted")
        for record_id, _ in opportunities:
            moment = date + timedelta(hours=11, minutes=rng.randrange(0, 300))
            if rng.random() < 0.6:
                tale.emit(moment, "opportunity", "update", record_id, last_touch_at=_stamp(moment))
    # A hygiene slip on Wednesday, fixed Thursday afternoon (a small SEV4 on the way).
    slip = START + timedelta(days=2, hours=16)
    tale.emit(slip, "opportunity", "update", "O-0003", next_step="")
    fixed = slip + timedelta(hours=26)
    tale.emit(
        fixed,
        "opportunity",
        "update",
        "O-0003",
        next_step="pricing workshop",
        last_touch_at=_stamp(fixed),
    )
    # Two new leads without an owner on Friday, routed and answered within 20 minutes.
    for offset, minutes in ((0, 12), (1, 18)):
        number += 1
        moment = START + timedelta(days=4, hours=13, minutes=10 * offset)
        record_id = tale.lead(
            moment,
            number,
            touched_after=None,
            owner="",
            region="NA",
            value=3_000,
            source="web",
            company="initech",
        )
        later = moment + timedelta(minutes=minutes)
        tale.emit(later, "lead", "update", record_id, owner="argyle", last_touch_at=_stamp(later))

    # Tuesday 10 March. Nakatomi has had no activity since last Tuesday 15:00: it goes
    # stale at 15:00. At 18:00 the holiday-party webinar dumps its sign-ups into the CRM.
    party = START + timedelta(days=8, hours=18)
    for index in range(FLOOD_LEADS):
        number += 1
        owner, region = OWNERS[index % len(OWNERS)]
        moment = party + timedelta(seconds=27 * index)
        # Two sign-ups come from Nakatomi itself: duplicate suspects of each other.
        domain = "nakatomi.example" if index in (7, 41) else None
        tale.lead(
            moment,
            number,
            touched_after=None,
            owner=owner,
            region=region,
            value=FLOOD_VALUE,
            source="holiday-webinar",
            company=COMPANIES[index % 15],
            domain=domain,
        )
    # Business as usual elsewhere late that evening: one rep answers an old email.
    late_touch = party + timedelta(hours=4)
    tale.emit(late_touch, "opportunity", "update", "O-0001", last_touch_at=_stamp(late_touch))
    tale.events.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in tale.events]


def funnel_rows(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A funnel snapshot CSV of the story's first week (one row a record)."""
    cutoff = _stamp(START + timedelta(days=5))
    rows: dict[str, dict[str, str]] = {}
    for event in events:
        if event["ts"] >= cutoff:
            break
        fields = event["fields"]
        row = rows.setdefault(
            event["record_id"],
            {
                "record_id": event["record_id"],
                "type": "lead" if event["object"] == "lead" else "opp",
            },
        )
        for name, value in fields.items():
            row[name] = "" if value is None else str(value)
    return list(rows.values())


COLUMNS = [
    "record_id",
    "type",
    "name",
    "email",
    "domain",
    "company",
    "source",
    "region",
    "owner",
    "stage",
    "created_at",
    "last_touch_at",
    "next_step",
    "value_usd",
]


def write(directory: Path) -> None:
    events = story()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "nakatomi.jsonl").open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in funnel_rows(events):
        writer.writerow({column: row.get(column, "") for column in COLUMNS})
    (directory / "funnel-week1.csv").write_text(buffer.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "data"))
