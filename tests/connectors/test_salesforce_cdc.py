"""revleak.connectors.salesforce_cdc: Change Data Capture events become change events.

The fixture tests/data/vendors/salesforce-cdc.jsonl follows the message shapes of
Salesforce's documentation (see tests/data/vendors/README.md), one message a line.
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
from revleak.connectors.generic_json import MAX_LINE_BYTES, MAX_TEXT_CHARS
from revleak.connectors.mapping import default_mapping, parse_mapping
from revleak.connectors.messages import Decoded, Position
from revleak.connectors.salesforce_cdc import decode_salesforce
from revleak.crm.events import ChangeEvent, CrmObject, Op
from revleak.deadletter import GAP, DeadLetter
from revleak.timefmt import parse_timestamp

FIXTURE = ROOT / "tests" / "data" / "vendors" / "salesforce-cdc.jsonl"
LINES = FIXTURE.read_bytes().splitlines()

USER, USER2 = "0055f000005mc66AAA", "0055f000005mc77AAA"
L1, L2, L3 = "00Q5f000005bwLFEAY", "00Q5f000005bwLGEAY", "00Q5f000005bwLHEAY"
O1, O2, O3 = "0065f00000UloqAAAR", "0065f00000UloqBAAR", "0065f00000UloqVAAR"
KEY = "00006948-0ac9-7da3-edb3-ea0e31b2"  # + 4 digits: the fixture's transaction keys


def at(text: str) -> int:
    return parse_timestamp(text)


def decode(raw: bytes, line: int = 1, **kwargs: Any) -> Decoded:
    return decode_salesforce(raw, Position("crm", 2, line), **kwargs)


def message(line: int) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(LINES[line - 1])
    return decoded


def event(
    line: int,
    key: str,
    record_id: str,
    ts: str,
    obj: CrmObject,
    op: Op,
    *,
    item: int = 0,
    seq: int = 1,
    **fields: Any,
) -> ChangeEvent:
    return ChangeEvent(
        event_id=f"{key}:{seq}:{record_id}",
        ts=at(ts),
        object=obj,
        op=op,
        record_id=record_id,
        fields=fields,
        partition=2,
        offset=line,
        item=item,
    )


LEAD, OPP = CrmObject.LEAD, CrmObject.OPPORTUNITY
CREATE, UPDATE, DELETE = Op.CREATE, Op.UPDATE, Op.DELETE
CONVERSION = "00006948-0ac9-7da3-edb3-ea0e31b2334a"

# Every event of the fixture, by line (lines 4, 9 and 10 are accounts and contacts, line 19
# changes only unmapped fields: they give nothing; 15, 17 and 18 are dead letters).
EXPECTED: dict[int, list[ChangeEvent]] = {
    1: [
        event(1, KEY + "0001", L1, "2026-03-02T09:00:00Z", LEAD, CREATE,
              name="Ada Lovelace", owner=USER, email="ada@analytical-engines.example",
              company="Analytical Engines Ltd", domain="analytical-engines.example",
              source="Web", stage="New", region="EMEA",
              created_at=at("2026-03-02T09:00:00Z")),
    ],
    2: [
        event(2, KEY + "0002", L2, "2026-03-02T09:05:00Z", LEAD, CREATE,
              name="Grace Hopper", owner=USER, email="grace@cobol-systems.example",
              company="Cobol Systems", domain=None, source="Partner Referral", stage="New",
              region=None, created_at=at("2026-03-02T09:05:00Z")),
    ],
    3: [
        event(3, KEY + "0003", L3, "2026-03-02T09:06:00Z", LEAD, CREATE,
              name="Katherine Johnson", owner=None, email="kj@langley-orbital.example",
              company="Langley Orbital", domain="langley-orbital.example", source="Trade Show",
              stage="Qualified", region="AMER", created_at=at("2026-03-02T09:06:00Z")),
    ],
    5: [
        event(5, KEY + "0005", L1, "2026-03-02T09:10:00Z", LEAD, UPDATE, owner=USER2),
        event(5, KEY + "0005", L3, "2026-03-02T09:10:00Z", LEAD, UPDATE, item=1, owner=USER2),
    ],
    6: [
        event(6, KEY + "0006", L2, "2026-03-02T09:12:00Z", LEAD, UPDATE, email=None,
              region="AMER"),
    ],
    7: [
        event(7, KEY + "0007", O1, "2026-03-02T10:00:00Z", OPP, CREATE,
              name="Analytical Engines - 40 looms", owner=USER, stage="New",
              value_usd=48000.0, created_at=at("2026-03-02T10:00:00Z"), region="EMEA"),
    ],
    8: [
        event(8, KEY + "0008", O2, "2026-03-02T10:05:00Z", OPP, CREATE,
              name="Cobol Systems - mainframe refresh", owner=USER2, stage="Qualified",
              value_usd=120000.5, next_step="Demo with the CFO",
              created_at=at("2026-03-02T10:05:00Z"), region="AMER"),
    ],
    11: [
        event(11, CONVERSION, O3, "2026-03-02T11:00:00Z", OPP, CREATE, seq=3,
              name="Analytical Engines Ltd-", owner=USER2, stage="New", value_usd=None,
              next_step=None, created_at=at("2026-03-02T11:00:00Z"), region="EMEA"),
    ],
    12: [
        event(12, CONVERSION, L1, "2026-03-02T11:00:01Z", LEAD, UPDATE, seq=4,
              stage="Converted"),
    ],
    13: [event(13, KEY + "0013", L3, "2026-03-02T12:00:00Z", LEAD, DELETE)],
    14: [
        event(14, KEY + "0014", L3, "2026-03-02T12:30:00Z", LEAD, CREATE,
              name="Katherine Johnson", owner=USER2, email="kj@langley-orbital.example",
              company="Langley Orbital", domain="langley-orbital.example", source="Trade Show",
              stage="Qualified", region="AMER", created_at=at("2026-03-02T09:06:00Z")),
    ],
    16: [event(16, KEY + "0016", L2, "2026-03-02T13:05:00Z", LEAD, DELETE)],
    20: [event(20, KEY + "0020", O2, "2026-03-04T15:00:00Z", OPP, UPDATE, stage="Proposal")],
    21: [event(21, KEY + "0021", O2, "2026-03-13T10:00:00Z", OPP, UPDATE, stage="Closed Won")],
}  # fmt: skip
UNKNOWN = "unknown_entity"
DEAD: dict[int, str] = {4: UNKNOWN, 9: UNKNOWN, 10: UNKNOWN, 15: GAP, 17: GAP, 18: "invalid_event"}


# -- the fixture -----------------------------------------------------------------------------


def test_every_fixture_message_decodes_to_exactly_the_expected_events() -> None:
    assert len(LINES) == 21
    for line, raw in enumerate(LINES, start=1):
        events, dead_letters = decode(raw, line)
        assert events == EXPECTED.get(line, []), f"line {line}"
        assert [letter.reason for letter in dead_letters] == (
            [DEAD[line]] if line in DEAD else []
        ), f"line {line}"


def test_cometd_pubsub_and_bare_payloads_decode_alike() -> None:
    cometd = message(1)
    payload = cometd["data"]["payload"]
    shapes = [
        cometd,
        {"replayId": 101, "payload": payload},
        {"schema": "IeRuaY6cbI_HsV8Rv1Mc5g", "payload": payload, "event": {"replayId": 101}},
        payload,
    ]
    decoded = [decode(json.dumps(shape).encode()) for shape in shapes]
    assert all(result == decoded[0] for result in decoded)
    assert decoded[0].events[0].fields["name"] == "Ada Lovelace"


def test_a_merged_change_gives_one_event_per_record_in_order() -> None:
    events = decode(LINES[4], 5).events
    assert [(e.record_id, e.item, e.offset) for e in events] == [(L1, 0, 5), (L3, 1, 5)]
    assert events[0].fields == events[1].fields == {"owner": USER2}
    assert events[0].fields is not events[1].fields


def test_an_update_carries_changed_fields_and_clears_nulled_ones() -> None:
    (update,) = decode(LINES[5], 6).events
    # Name.LastName changed alone: the full name is unknown, so name is left alone;
    # LastModifiedDate is not mapped; Email is in nulledFields.
    assert update.fields == {"email": None, "region": "AMER"}


def test_a_compound_name_changes_when_all_its_parts_change() -> None:
    data = message(6)
    header = data["ChangeEventHeader"]
    header["changedFields"] = ["Name.FirstName", "Name.LastName", "LastModifiedDate"]
    header["nulledFields"] = []
    data["Name"] = {"Salutation": None, "FirstName": "Grace", "LastName": "Hopper-Murray"}
    (update,) = decode(json.dumps(data).encode()).events
    assert update.fields == {"name": "Grace Hopper-Murray"}
    header["nulledFields"] = ["Name.FirstName"]
    (update,) = decode(json.dumps(data).encode()).events
    assert update.fields == {"name": "Hopper-Murray"}


def test_a_lead_conversion_makes_the_lead_converted() -> None:
    (update,) = decode(LINES[11], 12).events
    assert update.fields == {"stage": "Converted"}
    # Whatever the org calls its converted status, IsConverted decides.
    data = message(12)
    data["Status"] = "Qualified (converted)"
    (update,) = decode(json.dumps(data).encode()).events
    assert update.fields == {"stage": "Converted"}


def test_an_undelete_is_a_create_with_the_record_fields() -> None:
    (restored,) = decode(LINES[13], 14).events
    assert restored.op is Op.CREATE
    assert restored.fields["owner"] == USER2
    assert restored.fields["created_at"] == at("2026-03-02T09:06:00Z")


def test_a_gap_event_is_one_dead_letter_naming_the_records() -> None:
    raw = LINES[14]
    events, (letter,) = decode(raw, 15)
    assert events == []
    assert letter.reason == GAP == "gap"
    assert L2 in letter.detail
    assert "re-read" in letter.detail
    assert (letter.source, letter.partition, letter.line) == ("crm", 2, 15)
    assert letter.original_bytes() == raw
    for change in ("GAP_CREATE", "GAP_UNDELETE"):
        data = message(15)
        data["data"]["payload"]["ChangeEventHeader"]["changeType"] = change
        data["data"]["payload"]["ChangeEventHeader"]["recordIds"] = [L1, L2]
        events, (letter,) = decode(json.dumps(data).encode())
        assert (events, letter.reason) == ([], GAP)
        assert change in letter.detail
        assert f"{L1}, {L2}" in letter.detail


def test_a_gap_delete_is_a_delete_and_an_overflow_a_gap() -> None:
    (deleted,) = decode(LINES[15], 16).events
    assert (deleted.op, deleted.record_id, deleted.fields) == (Op.DELETE, L2, {})
    events, (letter,) = decode(LINES[16], 17)
    assert events == []
    assert letter.reason == GAP
    assert "GAP_OVERFLOW for Opportunity" in letter.detail


def test_a_wildcard_record_id_is_invalid() -> None:
    events, (letter,) = decode(LINES[17], 18)
    assert events == []
    assert letter.reason == "invalid_event"
    assert "'00Q*'" in letter.detail


def test_unmapped_objects_are_dead_letters_and_unmapped_changes_give_nothing() -> None:
    for line in (4, 9, 10):
        (letter,) = decode(LINES[line - 1], line).dead_letters
        assert letter.reason == UNKNOWN
        assert "Lead, Opportunity" in letter.detail
    assert decode(LINES[18], 19) == Decoded([], [])
    # A gap event of an unmapped object is about an unknown entity too.
    data = message(15)
    data["data"]["payload"]["ChangeEventHeader"]["entityName"] = "Account"
    assert [d.reason for d in decode(json.dumps(data).encode()).dead_letters] == [UNKNOWN]


def test_event_ids_fall_back_to_the_replay_id() -> None:
    data = message(1)
    del data["data"]["payload"]["ChangeEventHeader"]["transactionKey"]
    (created,) = decode(json.dumps(data).encode()).events
    assert created.event_id == f"101:{L1}"
    del data["data"]["event"]
    _, (letter,) = decode(json.dumps(data).encode())
    assert "transactionKey" in letter.detail


def test_pubsub_bitmaps_must_be_decoded_first() -> None:
    data = message(12)
    data["ChangeEventHeader"]["changedFields"] = ["0x08F81000"]
    _, (letter,) = decode(json.dumps(data).encode())
    assert letter.reason == "invalid_event"
    assert "bitmaps" in letter.detail
    assert "'0x08F81000'" in letter.detail


# -- bad messages ----------------------------------------------------------------------------


def rejected(raw: bytes, reason: str) -> DeadLetter:
    events, dead_letters = decode(raw, 9)
    assert events == []
    (letter,) = dead_letters
    assert letter.reason == reason, letter.detail
    assert (letter.source, letter.partition, letter.line) == ("crm", 2, 9)
    assert letter.original_bytes() == raw
    return letter


def with_header(**changes: Any) -> bytes:
    data = message(1)
    data["data"]["payload"]["ChangeEventHeader"].update(changes)
    return json.dumps(data).encode()


def with_body(**changes: Any) -> bytes:
    data = message(1)
    data["data"]["payload"].update(changes)
    return json.dumps(data).encode()


def test_bad_messages_are_dead_letters_saying_why() -> None:
    assert "not JSON" in rejected(b'{"data": ', "malformed_json").detail
    rejected(b"\xff\xfe{}", "malformed_json")
    rejected(b'["ChangeEventHeader"]', "not_an_object")
    assert "no ChangeEventHeader" in rejected(b'{"data": {"event": {}}}', "invalid_event").detail
    assert "no ChangeEventHeader" in rejected(b'{"event_id": "e1"}', "invalid_event").detail
    letter = rejected(with_header(changeType="SNAPSHOT"), "invalid_event")
    assert "ChangeEventHeader.changeType" in letter.detail
    letter = rejected(with_header(commitTimestamp="1772442000000"), "invalid_event")
    assert "ChangeEventHeader.commitTimestamp" in letter.detail
    assert "recordIds is empty" in rejected(with_header(recordIds=[]), "invalid_event").detail
    letter = rejected(with_body(Email="x" * (MAX_TEXT_CHARS + 1)), "invalid_event")
    assert letter.detail.startswith("Email: ")
    letter = rejected(with_body(CreatedDate="yesterday"), "invalid_event")
    assert "CreatedDate: expected a time" in letter.detail
    letter = rejected(with_body(Name="Ada Lovelace"), "invalid_event")
    assert "Name: expected a compound field" in letter.detail
    header_not_object = message(1)
    header_not_object["data"]["payload"]["ChangeEventHeader"] = "CREATE"
    assert (
        "is not an object"
        in rejected(json.dumps(header_not_object).encode(), "invalid_event").detail
    )


def test_a_diff_of_a_mapped_field_is_invalid() -> None:
    data = message(20)
    payload = data["data"]["payload"]
    payload["ChangeEventHeader"]["changedFields"].append("NextStep")
    payload["ChangeEventHeader"]["diffFields"] = ["NextStep"]
    payload["NextStep"] = "@@ -1,4 +1,4 @@"
    assert "diff" in rejected(json.dumps(data).encode(), "invalid_event").detail


def test_size_limit_and_blank_lines() -> None:
    assert decode(b"   ") == Decoded([], [])
    assert "bytes" in rejected(b" " * (MAX_LINE_BYTES + 1), "too_large").detail


# -- mappings --------------------------------------------------------------------------------

CUSTOM = """
apiVersion: revleak/v1
kind: SourceMapping
metadata: {name: acme-salesforce}
spec:
  source: salesforce
  objects:
    Lead:
      object: lead
      fields:
        Address: {field: region, join: [Country]}
        Last_Touch__c: last_touch_at
        LastActivityDate: last_touch_at
        Status: stage
"""


def test_a_custom_mapping_chooses_objects_fields_and_converters() -> None:
    mapping = parse_mapping(CUSTOM)
    data = message(2)
    data["payload"]["Address"] = {"City": "Arlington", "Country": "United States"}
    data["payload"]["LastActivityDate"] = "2026-03-02"
    (created,) = decode(json.dumps(data).encode(), mapping=mapping).events
    assert created.fields == {
        "region": "United States",
        "last_touch_at": at("2026-03-02T00:00:00Z"),
        "stage": "Open - Not Contacted",
    }
    touched = message(1)
    touched["data"]["payload"]["ChangeEventHeader"].update(
        changeType="UPDATE", changedFields=["Last_Touch__c", "LastModifiedDate"]
    )
    touched["data"]["payload"]["Last_Touch__c"] = "2026-03-02T09:20:00.000Z"
    (update,) = decode(json.dumps(touched).encode(), mapping=mapping).events
    assert update.fields == {"last_touch_at": at("2026-03-02T09:20:00Z")}
    # Opportunity is not in this mapping.
    unmapped = decode(LINES[6], 7, mapping=mapping)
    assert unmapped.events == []
    assert [letter.reason for letter in unmapped.dead_letters] == [UNKNOWN]


def test_a_hubspot_mapping_is_refused() -> None:
    with pytest.raises(ValueError, match="not salesforce"):
        decode(LINES[0], mapping=default_mapping("hubspot"))


def test_the_salesforce_format_decodes_with_the_default_mapping() -> None:
    assert decoder_for(Format.SALESFORCE)(LINES[0], Position("crm", 2, 1)) == decode(LINES[0], 1)
    assert decoder_for(Format.AUTO)(LINES[4], Position("crm", 2, 5)) == decode(LINES[4], 5)


# -- the same alerts as generic JSON ---------------------------------------------------------


def test_replaying_the_fixture_gives_the_alerts_of_its_generic_json() -> None:
    vendor, generic = replay_vendor_and_generic(LINES, decode_salesforce, batch_size=7)
    alerts = [alert.record() for alert in vendor.alerts]
    assert {(alert["slo"], alert["kind"]) for alert in alerts} == {
        (slo, kind)
        for slo in ("lead_response", "deal_velocity", "next_step_hygiene", "data_quality")
        for kind in ("count", "usd")
    }
    assert alerts == [alert.record() for alert in generic.alerts]
    assert [letter.reason for letter in vendor.dead_letters] == [
        UNKNOWN, UNKNOWN, UNKNOWN, GAP, GAP, "invalid_event"
    ]
    assert generic.dead_letters == []
