"""Hypothesis strategies: CRM change-event logs that stress docs/semantics.md's corners.

Steps between events favour the thresholds (30 m, 24 h, 7 d) and the same
millisecond, so deadlines are met exactly at, just before and just after their
time; a share of events arrive out of order, some beyond the allowed lateness;
a few lines are garbage.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STEPS_S = [
    0,
    0,
    1,
    30,
    60,
    299,
    300,
    1799,
    1800,
    1801,
    3600,
    7200,
    86_399,
    86_400,
    90_000,
    259_200,
    604_799,
    604_800,
    604_801,
    700_000,
]
OWNERS = ["ana", "bo", "", None, "  "]
REGIONS = ["NA", "EMEA", "", None]
STAGES = [
    None,
    "",
    "New",
    "Qualified",
    "Proposal",
    "negotiation",
    "Negotiation",
    "Discovery",
    "Closed Won",
    "Converted",
    "closed lost",
]
DOMAINS = ["acme.example", "ACME.example ", "initech.example", "gmail.com", "", None]
EMAILS = ["a@acme.example", "b@initech.example", "c@gmail.com", "nobody", "", None]
NEXT_STEPS = ["call back", "", " ", None]
VALUES = [None, 0, 1000, 2500.5, 120_000, 2_400_000]


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@st.composite
def _fields(draw: st.DrawFn, moment: datetime, create: bool) -> dict[str, object]:
    fields: dict[str, object] = {}
    choices = {
        "owner": OWNERS,
        "region": REGIONS,
        "stage": STAGES,
        "domain": DOMAINS,
        "email": EMAILS,
        "next_step": NEXT_STEPS,
        "value_usd": VALUES,
    }
    for name, values in choices.items():
        if draw(st.booleans() if not create else st.sampled_from([True, True, False])):
            fields[name] = draw(st.sampled_from(values))
    if create and draw(st.booleans()):
        back = draw(st.sampled_from([0, 0, 60, 86_400]))
        fields["created_at"] = _stamp(moment - timedelta(seconds=back))
    if draw(st.sampled_from([False, True, True] if not create else [False, False, True])):
        touch = draw(st.sampled_from([0, 0, 0, -30, -86_400]))
        fields["last_touch_at"] = (
            _stamp(moment + timedelta(seconds=touch)) if touch > -86_400 else None
        )
    return fields


@st.composite
def event_logs(draw: st.DrawFn, max_events: int = 40) -> list[bytes]:
    records = draw(
        st.lists(
            st.tuples(st.sampled_from(["lead", "opportunity"]), st.sampled_from("ABCDEF")),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    count = draw(st.integers(min_value=1, max_value=max_events))
    moment = BASE
    lines: list[bytes] = []
    for index in range(count):
        moment += timedelta(seconds=draw(st.sampled_from(STEPS_S)))
        stamp_at = moment
        if draw(st.integers(0, 9)) == 0:  # out of order: within or beyond the lateness
            stamp_at = moment - timedelta(seconds=draw(st.sampled_from([1, 30, 59, 60, 61, 600])))
        if draw(st.integers(0, 24)) == 0:
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            b"not json",
                            b'{"event_id": 1}',
                            b"[]",
                            b'{"ts": "2026-03-02"}',
                            b"\xff\xfe",
                        ]
                    )
                )
            )
            continue
        obj, letter = draw(st.sampled_from(records))
        op = draw(st.sampled_from(["create", "create", "update", "update", "update", "delete"]))
        event: dict[str, object] = {
            "event_id": f"e{index}",
            "ts": _stamp(stamp_at),
            "object": obj,
            "op": op,
            "record_id": f"{obj[0].upper()}{letter}",
        }
        if op != "delete" or draw(st.booleans()):
            event["fields"] = draw(_fields(stamp_at, op == "create"))
        lines.append(json.dumps(event).encode())
    return lines
