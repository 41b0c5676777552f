"""revleak.connectors.hubspot: webhook batches become change events, event by event.

The fixture tests/data/vendors/hubspot-webhooks.jsonl follows the payloads of HubSpot's
Webhooks API documentation (see tests/data/vendors/README.md), one delivery a line.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from harness import (
    ROOT,
    replay_vendor_and_generic,
)

from revleak.connectors.formats import Format, decoder_for
from revleak.connectors.generic_json import MAX_LINE_BYTES
from revleak.connectors.hubspot import decode_hubspot
from revleak.connectors.mapping import default_mapping, parse_mapping
from revleak.connectors.messages import Decoded, Position
from revleak.crm.events import ChangeEvent, CrmObject, Op
from revleak.deadletter import DeadLetter
from revleak.timefmt import parse_timestamp

FIXTURE = ROOT / "tests" / "data" / "vendors" / "hubspot-webhooks.jsonl"
LINES = FIXTURE.read_bytes().splitlines()
LEAD, OPP = CrmObject.LEAD, CrmObject.OPPORTUNITY
CREATE, UPDATE, DELETE = Op.CREATE, Op.UPDATE, Op.DELETE


def at(text: str) -> int:
    return parse_timestamp(text)


def decode(raw: bytes, line: int = 1, **kwargs: Any) -> Decoded:
    return decode_hubspot(raw, Position("crm", 1, line), **kwargs)


def batch(line: int) -> Any:
    return json.loads(LINES[line - 1])


def ev(
    line: int,
    item: int,
    event_id: int,
    record_id: int,
    ts: str,
    obj: CrmObject,
    op: Op,
    **fields: Any,
) -> ChangeEvent:
    return ChangeEvent(
        event_id=str(event_id),
        ts=at(ts),
        object=obj,
        op=op,
        record_id=str(record_id),
        fields=fields,
        partition=1,
        offset=line,
        item=item,
    )


T1, T2, T3, T4 = (f"2026-03-02T09:0{minute}:00Z" for minute in (0, 3, 5, 6))
EXPECTED: dict[int, list[ChangeEvent]] = {
    # contact.creation, then one propertyChange a property at the same instant (firstname
    # is not mapped): the properties are folded into the create.
    1: [
        ev(1, 0, 3029365601, 101, T1, LEAD, CREATE, email="ada@analytical-engines.example",
           company="Analytical Engines Ltd", domain="analytical-engines.example", stage="New",
           owner="882761034", region="United Kingdom", source="ORGANIC_SEARCH",
           created_at=at(T1)),
    ],
    2: [
        ev(2, 0, 3029365611, 102, T2, LEAD, CREATE, email="grace@cobol-systems.example",
           stage="Qualified", created_at=at(T2)),
    ],
    3: [
        ev(3, 0, 3029365615, 9001, T3, OPP, CREATE, name="Analytical Engines - 40 looms",
           value_usd=48000.0, stage="New", owner="882761034", created_at=at(T3)),
    ],
    4: [
        ev(4, 0, 3029365621, 9002, T4, OPP, CREATE, name="Cobol Systems - mainframe refresh",
           value_usd=120000.5, stage="Qualified", owner="882761035",
           next_step="Demo with the CFO", created_at=at(T4)),
    ],
    5: [
        ev(5, 0, 3029365628, 101, "2026-03-02T09:20:00Z", LEAD, UPDATE,
           last_touch_at=at("2026-03-02T09:20:00Z")),
    ],
    6: [ev(6, 0, 3029365629, 102, "2026-03-02T09:40:00Z", LEAD, UPDATE, owner="882761035")],
    7: [
        ev(7, 0, 3029365631, 9002, "2026-03-02T10:00:00Z", OPP, UPDATE, stage="Proposal"),
        ev(7, 1, 3029365632, 102, "2026-03-02T10:00:00Z", LEAD, UPDATE, region="Germany"),
    ],
    # 8: contact.merge, deal.associationChange, company.creation, lastname: nothing.
    9: [ev(9, 0, 3029365637, 102, "2026-03-02T11:00:00Z", LEAD, DELETE)],
    10: [ev(10, 0, 3029365639, 102, "2026-03-02T11:30:00Z", LEAD, CREATE)],
    11: [ev(11, 0, 3029365640, 9002, "2026-03-04T15:00:00Z", OPP, UPDATE, stage="Negotiation")],
    12: [ev(12, 0, 3029365641, 9001, "2026-03-05T09:00:00Z", OPP, UPDATE, value_usd=None)],
    13: [ev(13, 0, 3029365642, 9002, "2026-03-13T10:00:00Z", OPP, DELETE)],
}  # fmt: skip


def test_every_fixture_batch_decodes_to_exactly_the_expected_events() -> None:
    assert len(LINES) == 13
    for line, raw in enumerate(LINES, start=1):
        events, dead_letters = decode(raw, line)
        assert events == EXPECTED.get(line, []), f"line {line}"
        assert [letter.reason for letter in dead_letters] == (
            {7: ["invalid_event"], 8: ["unknown_entity"]}.get(line, [])
        ), f"line {line}"


def test_one_bad_event_is_one_dead_letter_and_the_rest_decode() -> None:
    raw = LINES[6]
    events, (letter,) = decode(raw, 7)
    assert [change.item for change in events] == [0, 1]
    assert letter.reason == "invalid_event"
    assert letter.detail == "event [1] of the batch: objectId: Input should be a valid integer"
    assert (letter.source, letter.partition, letter.line) == ("crm", 1, 7)
    assert letter.original_bytes() == raw


def test_each_bad_event_is_named_by_its_place_and_field() -> None:
    good = batch(5)[0]
    events = [
        good,
        {**good, "occurredAt": None},
        "contact.creation",
        {key: value for key, value in good.items() if key != "propertyName"},
        {**good, "subscriptionType": "object.propertyChange"},
        {**good, "propertyName": "notes_last_contacted", "propertyValue": "last week"},
        {**good, "eventId": 7, "objectId": 102},
    ]
    decoded, letters = decode(json.dumps(events).encode())
    assert [(change.record_id, change.item) for change in decoded] == [("101", 0), ("102", 1)]
    assert [letter.detail for letter in letters] == [
        "event [1] of the batch: occurredAt: Input should be a valid integer",
        "event [2] of the batch: a webhook event is a JSON object",
        "event [3] of the batch: propertyName: required by contact.propertyChange",
        "event [4] of the batch: objectTypeId: required by object.propertyChange",
        "event [5] of the batch: propertyValue of notes_last_contacted: expected a time "
        "(epoch milliseconds, a date such as 2026-03-02 or an ISO-8601 time such as "
        "2026-03-02T10:30:00Z), got 'last week'",
    ]


def test_a_single_event_object_is_a_batch_of_one() -> None:
    (change,) = decode(LINES[5], 6).events
    assert change == decode(json.dumps([batch(6)]).encode(), 6).events[0]


def test_unmapped_objects_are_dead_letters_and_unmapped_changes_give_nothing() -> None:
    (letter,) = decode(LINES[7], 8).dead_letters
    assert letter.reason == "unknown_entity"
    template = batch(5)[0]
    for subscription in ("company.creation", "ticket.propertyChange", "conversation.creation"):
        events, dead_letters = decode(
            json.dumps({**template, "subscriptionType": subscription}).encode()
        )
        assert events == []
        assert [letter.reason for letter in dead_letters] == ["unknown_entity"], subscription
        assert subscription in dead_letters[0].detail
    for subscription in ("contact.merge", "contact.associationChange", "contact.privacyDeletion"):
        assert decode(json.dumps({**template, "subscriptionType": subscription}).encode()) == (
            Decoded([], [])
        ), subscription
    assert decode(json.dumps({**template, "propertyName": "firstname"}).encode()) == (
        Decoded([], [])
    )


def test_deletion_and_restore() -> None:
    (deleted,) = decode(LINES[8], 9).events  # privacyDeletion comes with it: no second event
    assert (deleted.op, deleted.fields) == (Op.DELETE, {})
    (restored,) = decode(LINES[9], 10).events
    assert (restored.op, restored.record_id, restored.fields) == (Op.CREATE, "102", {})


def test_generic_object_subscriptions_use_the_object_type_id() -> None:
    (change,) = decode(LINES[10], 11).events
    assert (change.object, change.fields) == (OPP, {"stage": "Negotiation"})
    contact = {**batch(11)[0], "objectTypeId": "0-1", "propertyName": "country"}
    (change,) = decode(json.dumps([contact]).encode()).events
    assert (change.object, change.fields) == (LEAD, {"region": "contractsent"})
    company = {**batch(11)[0], "objectTypeId": "0-2"}
    (letter,) = decode(json.dumps([company]).encode()).dead_letters
    assert letter.reason == "unknown_entity"
    assert "'0-2'" in letter.detail


def test_values_are_converted_and_mapped() -> None:
    template = batch(3)[2]  # deal amount
    cases = [
        ("amount", "1250.75", {"value_usd": 1250.75}),
        ("amount", "", {"value_usd": None}),
        ("dealstage", "closedwon", {"stage": "Closed Won"}),
        ("dealstage", "custom-stage-17", {"stage": "custom-stage-17"}),
        ("hs_next_step", "", {"next_step": None}),
        ("createdate", "1772442300000", {"created_at": 1772442300000}),
        ("notes_last_contacted", None, {"last_touch_at": None}),
    ]
    for name, value, fields in cases:
        element = {**template, "propertyName": name, "propertyValue": value}
        (change,) = decode(json.dumps([element]).encode()).events
        assert change.fields == fields, name
    for value in ("-5", "lots", "NaN"):
        element = {**template, "propertyValue": value}
        _, (letter,) = decode(json.dumps([element]).encode())
        assert letter.detail.startswith("event [0] of the batch: propertyValue of amount: ")


def test_sensitive_data_properties_give_nothing() -> None:
    element = {**batch(1)[1], "propertyValue": "REDACTED", "isSensitive": True}
    assert decode(json.dumps([element]).encode()) == Decoded([], [])


def rejected(raw: bytes, reason: str) -> DeadLetter:
    events, dead_letters = decode(raw, 4)
    assert events == []
    (letter,) = dead_letters
    assert letter.reason == reason, letter.detail
    assert (letter.partition, letter.line, letter.original_bytes()) == (1, 4, raw)
    return letter


def test_bad_messages_are_dead_letters() -> None:
    rejected(b"[{", "malformed_json")
    assert "JSON array" in rejected(b'"contact.creation"', "not_an_object").detail
    rejected(b"42", "not_an_object")
    rejected(b"[" + b" " * MAX_LINE_BYTES + b"]", "too_large")
    assert decode(b"[]") == Decoded([], [])
    assert decode(b"\n") == Decoded([], [])


def test_a_custom_mapping() -> None:
    mapping = parse_mapping(
        """
apiVersion: revleak/v1
kind: SourceMapping
metadata: {name: acme-hubspot}
spec:
  source: hubspot
  objects:
    company:
      object: lead
      fields:
        is_public: {field: stage, convert: flag, value: Qualified}
        hs_lastmodifieddate: last_touch_at
"""
    )
    template = batch(5)[0]
    flag = {**template, "subscriptionType": "company.propertyChange", "propertyName": "is_public"}
    (change,) = decode(json.dumps([{**flag, "propertyValue": "true"}]).encode(), mapping=mapping)[0]
    assert (change.object, change.fields) == (LEAD, {"stage": "Qualified"})
    assert decode(json.dumps([{**flag, "propertyValue": "false"}]).encode(), mapping=mapping) == (
        Decoded([], [])
    )
    # Contacts are not mapped here.
    assert [d.reason for d in decode(LINES[4], mapping=mapping).dead_letters] == ["unknown_entity"]
    with pytest.raises(ValueError, match="not hubspot"):
        decode(LINES[4], mapping=default_mapping("salesforce"))


def test_the_hubspot_format_decodes_with_the_default_mapping() -> None:
    assert decoder_for(Format.HUBSPOT)(LINES[0], Position("crm", 1, 1)) == decode(LINES[0], 1)
    assert decoder_for(Format.AUTO)(LINES[5], Position("crm", 1, 6)) == decode(LINES[5], 6)


# -- the same alerts as generic JSON ---------------------------------------------------------


def test_replaying_the_fixture_gives_the_alerts_of_its_generic_json() -> None:
    vendor, generic = replay_vendor_and_generic(LINES, decode_hubspot, batch_size=5)
    alerts = [alert.record() for alert in vendor.alerts]
    assert {(alert["slo"], alert["kind"]) for alert in alerts} == {
        (slo, kind)
        for slo in ("lead_response", "deal_velocity", "next_step_hygiene", "data_quality")
        for kind in ("count", "usd")
    }
    assert alerts == [alert.record() for alert in generic.alerts]
    assert [letter.reason for letter in vendor.dead_letters] == ["invalid_event", "unknown_entity"]
    assert generic.dead_letters == []


def test_a_creation_takes_the_properties_of_its_instant_from_the_same_batch_only() -> None:
    def hook(event_id: int, kind: str, at: int, **extra: object) -> dict[str, object]:
        return {
            "eventId": event_id,
            "subscriptionType": kind,
            "objectId": 7,
            "occurredAt": at,
            **extra,
        }

    batch = [
        hook(
            2, "contact.propertyChange", 1000, propertyName="hubspot_owner_id", propertyValue="42"
        ),
        hook(1, "contact.creation", 1000),
        hook(3, "contact.propertyChange", 1000, propertyName="country", propertyValue="Peru"),
        hook(4, "contact.propertyChange", 2000, propertyName="country", propertyValue="Chile"),
    ]
    events, dead = decode_hubspot(json.dumps(batch).encode(), Position("crm", 0, 1))
    assert dead == []
    assert [(e.op, e.ts, dict(e.fields), e.item) for e in events] == [
        (CREATE, 1000, {"owner": "42", "region": "Peru"}, 0),
        (UPDATE, 2000, {"region": "Chile"}, 1),
    ]
    later, _ = decode_hubspot(
        json.dumps(
            [hook(5, "contact.propertyChange", 1000, propertyName="country", propertyValue="Peru")]
        ).encode(),
        Position("crm", 0, 2),
    )
    assert [e.op for e in later] == [UPDATE]  # another delivery: not folded
