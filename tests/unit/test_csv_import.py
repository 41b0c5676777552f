"""revleak.connectors.csv_import: a funnel snapshot CSV becomes create and touch events."""

from __future__ import annotations

import pytest
from harness import default_catalog

from revleak.connectors.csv_import import read_funnel
from revleak.crm.events import ChangeEvent, CrmObject, Op
from revleak.crm.records import RecordShard
from revleak.deadletter import DeadLetter
from revleak.timefmt import END_OF_TIME_MS, parse_timestamp

HEADER = "record_id,type,name,owner,region,stage,created_at,last_touch_at,next_step,value_usd"


def at(text: str) -> int:
    return parse_timestamp(f"2026-03-02T{text}Z")


def funnel(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def split(data: bytes) -> tuple[list[DeadLetter], list[ChangeEvent]]:
    """Dead letters and events; the dead letters come first."""
    items = read_funnel(data)
    dead = [item for item in items if isinstance(item, DeadLetter)]
    assert all(isinstance(item, DeadLetter) for item in items[: len(dead)])
    events = [item[0] for item in items[len(dead) :] if not isinstance(item, DeadLetter)]
    return dead, events


def events_of(data: bytes) -> list[ChangeEvent]:
    dead, events = split(data)
    assert dead == [], dead
    return events


# -- events ---------------------------------------------------------------------------------


def test_a_row_becomes_a_create_with_every_column_but_last_touch_at() -> None:
    (create,) = events_of(funnel("L1,lead,Ann,ana,NA,New,2026-03-02T10:00:00Z,,,8000"))
    assert create.op is Op.CREATE
    assert create.object is CrmObject.LEAD
    assert (create.record_id, create.ts) == ("L1", at("10:00:00"))
    assert create.fields == {
        "name": "Ann",
        "owner": "ana",
        "region": "NA",
        "stage": "New",
        "created_at": at("10:00:00"),
        "next_step": None,
        "value_usd": 8000.0,
    }


def test_a_touch_follows_at_last_touch_at() -> None:
    create, touch = events_of(
        funnel("O1,opp,Deal,bo,EMEA,Proposal,2026-03-02T10:00:00Z,2026-03-02T10:20:00Z,call,1")
    )
    assert (create.op, create.ts) == (Op.CREATE, at("10:00:00"))
    assert "last_touch_at" not in create.fields
    assert (touch.op, touch.ts, touch.object) == (Op.UPDATE, at("10:20:00"), CrmObject.OPPORTUNITY)
    assert touch.fields == {"last_touch_at": at("10:20:00")}
    assert touch.record_id == "O1"


def test_a_touch_at_the_creation_time_comes_after_the_create() -> None:
    create, touch = events_of(funnel("L1,lead,,,,,2026-03-02T10:00:00Z,2026-03-02T10:00:00Z,,"))
    assert (create.op, touch.op) == (Op.CREATE, Op.UPDATE)
    assert create.ts == touch.ts
    assert create.order < touch.order


def test_a_touch_earlier_than_creation_is_dropped() -> None:
    (create,) = events_of(funnel("L1,lead,,,,,2026-03-02T10:00:00Z,2026-03-02T09:59:59.999Z,,"))
    assert create.op is Op.CREATE


def test_rows_are_replayed_in_time_order_and_in_file_order_on_ties() -> None:
    events = events_of(
        funnel(
            "L3,lead,,,,,2026-03-02T12:00:00Z,,,",
            "L1,lead,,,,,2026-03-02T10:00:00Z,2026-03-02T11:00:00Z,,",
            "L2,lead,,,,,2026-03-02T11:00:00Z,2026-03-02T11:00:00Z,,",
            "L4,lead,,,,,2026-03-02T11:00:00Z,,,",
        )
    )
    assert [(e.record_id, e.op.value, e.ts) for e in events] == [
        ("L1", "create", at("10:00:00")),
        ("L1", "update", at("11:00:00")),  # line 3's touch before line 4's rows
        ("L2", "create", at("11:00:00")),
        ("L2", "update", at("11:00:00")),
        ("L4", "create", at("11:00:00")),
        ("L3", "create", at("12:00:00")),
    ]
    assert [e.order for e in events] == sorted(e.order for e in events)


def test_the_id_column_is_an_alias_of_record_id() -> None:
    (create,) = events_of(funnel("L9,lead,2026-03-02T10:00:00Z", header="id,type,created_at"))
    assert create.record_id == "L9"


@pytest.mark.parametrize(
    ("cell", "kind"),
    [
        ("lead", CrmObject.LEAD),
        ("LEAD", CrmObject.LEAD),
        (" Lead ", CrmObject.LEAD),
        ("opp", CrmObject.OPPORTUNITY),
        ("Opp", CrmObject.OPPORTUNITY),
        ("opportunity", CrmObject.OPPORTUNITY),
        ("Opportunity", CrmObject.OPPORTUNITY),
    ],
)
def test_type_is_case_insensitive(cell: str, kind: CrmObject) -> None:
    (create,) = events_of(
        funnel(f"X1,{cell},2026-03-02T10:00:00Z", header="record_id,type,created_at")
    )
    assert create.object is kind


def test_header_names_are_trimmed_and_case_insensitive_and_a_bom_is_ignored() -> None:
    data = "\ufeff Record_ID ,TYPE,Created_At\nL1,lead,2026-03-02T10:00:00Z\n".encode()
    (create,) = events_of(data)
    assert create.record_id == "L1"


def test_times_with_offsets_and_without_are_utc() -> None:
    events = events_of(
        funnel(
            "L1,lead,,,,,2026-03-02T11:00:00+01:00,2026-03-02T10:30:00,,",
            header=HEADER,
        )
    )
    assert [e.ts for e in events] == [at("10:00:00"), at("10:30:00")]


def test_blank_lines_are_skipped_but_counted() -> None:
    data = b"record_id,type,created_at\n\nL1,lead,2026-03-02T10:00:00Z\n,,\n\nL2,lead,bad\n"
    dead, events = split(data)
    assert [e.event_id for e in events] == ["csv:3:create"]
    assert [(d.line, d.original) for d in dead] == [(6, "L2,lead,bad")]


def test_quoted_cells_with_commas_and_newlines_keep_the_lines_that_follow_right() -> None:
    data = (
        b"record_id,type,created_at,name\n"
        b'L1,lead,2026-03-02T10:00:00Z,"Smith, Ann"\n'
        b'L2,lead,2026-03-02T10:01:00Z,"two\nlines"\n'
        b'L3,lead,2026-03-02T10:02:00Z,"three\r\nmore\nlines"\n'
        b"L4,lead,nope,D\n"
    )
    dead, events = split(data)
    assert [e.fields["name"] for e in events] == [
        "Smith, Ann",
        "two\nlines",
        "three\r\nmore\nlines",
    ]
    assert [(d.line, d.original) for d in dead] == [(8, "L4,lead,nope,D")]


def test_a_dead_multi_line_row_keeps_its_original_text() -> None:
    data = b'record_id,type,created_at,name\nL1,nope,2026-03-02T10:00:00Z,"a\nb"\n'
    (letter,) = read_funnel(data)
    assert isinstance(letter, DeadLetter)
    assert letter.original == 'L1,nope,2026-03-02T10:00:00Z,"a\nb"'


def test_a_dead_multi_line_row_is_located_at_its_first_line() -> None:
    data = b'record_id,type,created_at,name\nL1,nope,2026-03-02T10:00:00Z,"a\nb"\n'
    (letter,) = read_funnel(data)
    assert isinstance(letter, DeadLetter)
    assert letter.line == 2


# -- dead letters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "detail"),
    [
        ("L2,account,,,,,2026-03-02T10:00:00Z,,,", "type 'account' is neither lead nor opp"),
        ("L2,lead,,,,,2026-03-02,,,", "created_at '2026-03-02' is not an ISO-8601 time"),
        ("L2,lead,,,,,yesterday,,,", "created_at 'yesterday' is not an ISO-8601 time"),
        ("L2,lead,,,,,,,,", "created_at is empty"),
        ("L2,lead,,,,,2026-03-02T10:00:00Z,soon,,", "last_touch_at 'soon' is not an ISO-8601"),
        ("L2,lead,,,,,2026-03-02T10:00:00Z,,,abc", "value_usd 'abc' is not a number"),
        ("L2,lead,,,,,2026-03-02T10:00:00Z,,,-5", "value_usd '-5' must be a finite amount"),
        ("L2,lead,,,,,2026-03-02T10:00:00Z,,,nan", "value_usd 'nan' must be a finite amount"),
        ("L2,lead,,,,,2026-03-02T10:00:00Z,,,inf", "value_usd 'inf' must be a finite amount"),
        ("L2,lead,2026-03-02T10:00:00Z", "has 3 cells, the header has 10"),
        ("L2,lead,,,,,2026-03-02T10:00:00Z,,,1,extra", "has 11 cells, the header has 10"),
        (",lead,,,,,2026-03-02T10:00:00Z,,,", "record_id is empty"),
        ("  ,lead,,,,,2026-03-02T10:00:00Z,,,", "record_id is empty"),
    ],
)
def test_a_bad_row_is_a_dead_letter_and_good_rows_still_count(row: str, detail: str) -> None:
    data = funnel(
        "L1,lead,,,,,2026-03-02T09:00:00Z,,,",
        row,
        "L3,lead,,,,,2026-03-02T11:00:00Z,,,",
    )
    dead, events = split(data)
    assert len(dead) == 1
    letter = dead[0]
    assert (letter.reason, letter.line, letter.original) == ("invalid_row", 3, row)
    assert letter.detail.startswith(detail), letter.detail
    assert letter.source == "crm"
    assert [e.record_id for e in events] == ["L1", "L3"]
    assert [e.event_id for e in events] == ["csv:2:create", "csv:4:create"]


def test_dead_letters_come_first_in_line_order() -> None:
    items = read_funnel(
        funnel(
            "L1,lead,,,,,2026-03-02T12:00:00Z,,,",
            "L2,x,,,,,2026-03-02T10:00:00Z,,,",
            "L3,lead,,,,,bad,,,",
        )
    )
    assert [type(item).__name__ for item in items] == ["DeadLetter", "DeadLetter", "tuple"]
    assert [item.line for item in items[:2] if isinstance(item, DeadLetter)] == [3, 4]


def test_an_event_carries_its_original_row() -> None:
    row = "L1,lead,Ann,ana,NA,New,2026-03-02T10:00:00Z,2026-03-02T10:05:00Z,,"
    items = read_funnel(funnel(row))
    assert [raw for item in items if not isinstance(item, DeadLetter) for raw in [item[1]]] == [
        row.encode(),
        row.encode(),
    ]


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("type,created_at,name", "record_id"),
        ("record_id,created_at", "type"),
        ("id,type", "created_at"),
        ("name,owner", "record_id, type, created_at"),
    ],
)
def test_missing_header_columns_give_one_invalid_header_dead_letter(
    header: str, missing: str
) -> None:
    items = read_funnel(funnel("L1,lead,2026-03-02T10:00:00Z", "L2,lead,x", header=header))
    assert len(items) == 1
    (letter,) = items
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.line, letter.original) == ("invalid_header", 1, header)
    assert letter.detail == f"the header lacks {missing}"


def test_an_empty_file_is_an_invalid_header() -> None:
    for data in (b"", b"\n\n"):
        (letter,) = read_funnel(data)
        assert isinstance(letter, DeadLetter)
        assert (letter.reason, letter.detail) == ("invalid_header", "the file is empty")


def test_partition_and_source_are_carried() -> None:
    data = b"record_id,type,created_at\nL1,lead,2026-03-02T10:00:00Z\nL2,lead,x\n"
    letter, (event, _) = read_funnel(data, partition=4, source="funnel")
    assert isinstance(letter, DeadLetter)
    assert (letter.partition, letter.source) == (4, "funnel")
    assert event.partition == 4


# -- product bugs ---------------------------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0c", "\x1e"])
def test_a_unicode_line_separator_in_a_cell_is_text(separator: str) -> None:
    data = funnel(f"L1,lead,A{separator}B,,,,2026-03-02T10:00:00Z,,,").replace(b"\r", b"")
    (create,) = events_of(data)
    assert create.fields["name"] == f"A{separator}B"


def test_a_quoted_unicode_line_separator_does_not_shift_later_line_numbers() -> None:
    data = (
        'record_id,type,created_at,name\nL1,lead,2026-03-02T10:00:00Z,"A\u2028B"\nL2,lead,bad,C\n'
    ).encode()
    dead, _ = split(data)
    assert [d.line for d in dead] == [3]


def apply(data: bytes) -> None:
    events = [item[0] for item in read_funnel(data) if not isinstance(item, DeadLetter)]
    RecordShard(default_catalog()).advance(events, END_OF_TIME_MS)


def test_every_accepted_row_can_be_applied_even_with_invalid_utf8() -> None:
    apply(b"record_id,type,created_at,owner\nL1,lead,2026-03-02T10:00:00Z,an\xffa\n")


def test_every_accepted_row_can_be_applied_even_with_a_huge_cell() -> None:
    apply(b"record_id,type,created_at,owner\nL1,lead,2026-03-02T10:00:00Z," + b"x" * 70_000 + b"\n")
