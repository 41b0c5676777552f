"""revleak.connectors.generic_json: one JSON change event a line, or a dead letter saying why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revleak.connectors.generic_json import MAX_LINE_BYTES, decode_change
from revleak.crm.events import ChangeEvent, CrmObject, Op
from revleak.deadletter import DeadLetter
from revleak.timefmt import parse_timestamp

TEN = parse_timestamp("2026-03-02T10:00:00Z")
BASE: dict[str, Any] = {
    "event_id": "e1",
    "ts": "2026-03-02T10:00:00Z",
    "object": "lead",
    "op": "create",
    "record_id": "L1",
}


def line(**changes: Any) -> bytes:
    event = {**BASE, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def decode(raw: bytes, *, offset: int = 7, line_numbered: bool = True) -> Any:
    return decode_change(raw, partition=3, offset=offset, source="crm", line_numbered=line_numbered)


def accepted(raw: bytes) -> ChangeEvent:
    result = decode(raw)
    assert isinstance(result, ChangeEvent), result
    return result


def rejected(raw: bytes, reason: str) -> DeadLetter:
    result = decode(raw)
    assert isinstance(result, DeadLetter), result
    assert result.reason == reason, result.detail
    assert result.source == "crm"
    assert result.partition == 3
    assert result.line == 7
    assert result.original_bytes() == raw
    return result


# -- valid events ---------------------------------------------------------------------------


def test_a_create_decodes_every_part() -> None:
    event = accepted(
        line(
            fields={
                "owner": "ana",
                "region": "NA",
                "value_usd": 2500.5,
                "created_at": "2026-03-02T09:00:00Z",
            }
        )
    )
    assert event == ChangeEvent(
        event_id="e1",
        ts=TEN,
        object=CrmObject.LEAD,
        op=Op.CREATE,
        record_id="L1",
        fields={
            "owner": "ana",
            "region": "NA",
            "value_usd": 2500.5,
            "created_at": parse_timestamp("2026-03-02T09:00:00Z"),
        },
        partition=3,
        offset=7,
    )
    assert event.order == (TEN, 3, 7, 0)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-03-02T10:00:00Z",
        "2026-03-02T10:00:00.000Z",
        "2026-03-02T11:00:00+01:00",
        "2026-03-02T04:30:00-05:30",
        "2026-03-02T10:00:00",
        "2026-03-02T10:00:00.000999Z",
    ],
)
def test_ts_with_z_an_offset_or_none_is_the_same_utc_instant(ts: str) -> None:
    assert accepted(line(ts=ts)).ts == TEN


def test_time_fields_become_milliseconds_and_null_clears_a_field() -> None:
    event = accepted(
        line(
            op="update",
            fields={
                "owner": None,
                "last_touch_at": "2026-03-02T12:00:00+02:00",
                "created_at": None,
                "value_usd": None,
            },
        )
    )
    assert event.fields == {
        "owner": None,
        "last_touch_at": TEN,
        "created_at": None,
        "value_usd": None,
    }


def test_an_update_carries_only_the_fields_it_changes() -> None:
    event = accepted(line(op="update", fields={"stage": "Proposal"}))
    assert event.op is Op.UPDATE
    assert event.fields == {"stage": "Proposal"}


def test_no_fields_is_an_empty_change() -> None:
    event = accepted(line(op="delete", object="opportunity"))
    assert event.op is Op.DELETE
    assert event.object is CrmObject.OPPORTUNITY
    assert event.fields == {}


def test_an_integer_value_is_a_number() -> None:
    assert accepted(line(fields={"value_usd": 120_000})).fields["value_usd"] == 120_000.0


def test_unicode_text_survives() -> None:
    assert accepted(line(fields={"owner": "Zoë 李"})).fields["owner"] == "Zoë 李"


def test_a_line_ending_is_not_part_of_the_event() -> None:
    assert accepted(line() + b"\r\n").record_id == "L1"


def test_an_offset_in_a_topic_is_not_a_line() -> None:
    letter = decode(b"garbage", offset=42, line_numbered=False)
    assert isinstance(letter, DeadLetter)
    assert (letter.line, letter.offset) == (None, 42)
    assert accepted(line()).offset == 7


@pytest.mark.parametrize("blank", [b"", b"   ", b"\n", b"\r\n", b" \t "])
def test_a_blank_line_carries_nothing(blank: bytes) -> None:
    assert decode(blank) is None


# -- dead letters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"not json", b"{", b'{"event_id": "e1", "ts":', b"nul", b'{"a": 1,}']
)
def test_garbage_and_truncated_json_are_malformed(raw: bytes) -> None:
    letter = rejected(raw, "malformed_json")
    assert letter.detail.startswith("not JSON: ")
    assert letter.original == raw.decode()


@pytest.mark.parametrize("raw", [b"[]", b'[{"event_id": "e1"}]', b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    letter = rejected(raw, "not_an_object")
    assert letter.detail == "a change event is a JSON object"


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"ts": 1_772_445_600_000}, "ts"),
        ({"ts": "2026-03-02"}, "ts"),
        ({"ts": "yesterday"}, "ts"),
        ({"ts": ...}, "ts"),
        ({"event_id": 1}, "event_id"),
        ({"object": "account"}, "object"),
        ({"op": "upsert"}, "op"),
        ({"record_id": ""}, "record_id"),
        ({"record_id": 5}, "record_id"),
        ({"fields": None}, "fields"),
        ({"fields": []}, "fields"),
        ({"fields": {"value_usd": "100"}}, "fields.value_usd"),
        ({"fields": {"value_usd": True}}, "fields.value_usd"),
        ({"fields": {"value_usd": -1}}, "fields.value_usd"),
        ({"fields": {"owner": 7}}, "fields.owner"),
        ({"fields": {"owner": "x" * 1025}}, "fields.owner"),
        ({"fields": {"created_at": "2026-03-02"}}, "fields.created_at"),
        ({"fields": {"last_touch_at": 0}}, "fields.last_touch_at"),
    ],
)
def test_wrong_shapes_are_invalid_events_naming_the_field(
    changes: dict[str, Any], where: str
) -> None:
    letter = rejected(line(**changes), "invalid_event")
    assert letter.detail.startswith(f"{where}: "), letter.detail


def test_a_date_without_time_asks_for_a_time_of_day() -> None:
    letter = rejected(line(ts="2026-03-02"), "invalid_event")
    assert "needs a time of day" in letter.detail


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_non_finite_value_is_an_invalid_event(literal: bytes) -> None:
    raw = line(fields={"value_usd": 0}).replace(b'"value_usd": 0', b'"value_usd": ' + literal)
    letter = rejected(raw, "invalid_event")
    assert letter.detail.startswith("fields.value_usd: ")


def test_several_problems_are_listed_and_counted() -> None:
    raw = json.dumps({"event_id": 1, "ts": 2, "object": 3, "op": 4, "record_id": 5}).encode()
    letter = rejected(raw, "invalid_event")
    assert letter.detail.count(";") == 2
    assert letter.detail.endswith("(and 2 more)")


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b'{"event_id": "e\xff1"}', b"\x80"])
def test_binary_bytes_are_kept_in_base64_and_round_trip(raw: bytes) -> None:
    letter = rejected(raw, "malformed_json")
    assert letter.original is None
    assert letter.original_base64 is not None
    assert "original_base64" in letter.record()


def test_a_line_over_the_size_limit_is_too_large() -> None:
    raw = b" " * (MAX_LINE_BYTES + 1)  # even blank: too large is decided first
    letter = rejected(raw, "too_large")
    assert str(MAX_LINE_BYTES) in letter.detail


def test_a_line_at_the_size_limit_is_decoded() -> None:
    raw = line()
    raw = raw + b" " * (MAX_LINE_BYTES - len(raw))
    assert accepted(raw).record_id == "L1"


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_an_event_a_dead_letter_or_nothing(raw: bytes) -> None:
    result = decode(raw)
    if result is None:
        assert not raw.strip()
    elif isinstance(result, DeadLetter):
        assert result.original_bytes() == raw
        assert result.reason in {"malformed_json", "not_an_object", "invalid_event"}
    else:
        assert isinstance(result, ChangeEvent)
