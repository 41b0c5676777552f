"""Funnel snapshot CSV → change events (docs/semantics.md §2).

A row (``type`` lead or opp) becomes a create event at ``created_at`` carrying
every column but ``last_touch_at`` and, when ``last_touch_at`` is set and not
earlier, a touch at ``last_touch_at``. The events are returned in time order
(rows in file order on ties, a row's create before its touch). A row that
cannot be used becomes a dead letter with its line number and original text.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from typing import Any

from revleak.connectors.generic_json import MAX_TEXT_CHARS
from revleak.crm.events import TEXT_FIELDS, ChangeEvent, CrmObject, FieldValue, Op
from revleak.deadletter import INVALID_HEADER, INVALID_ROW, DeadLetter
from revleak.timefmt import parse_timestamp

ID_COLUMNS = ("record_id", "id")
TYPES = {"lead": CrmObject.LEAD, "opp": CrmObject.OPPORTUNITY, "opportunity": CrmObject.OPPORTUNITY}

FunnelItem = tuple[ChangeEvent, bytes] | DeadLetter


class _RowError(ValueError):
    pass


def read_funnel(data: bytes, *, partition: int = 0, source: str = "crm") -> list[FunnelItem]:
    """Dead letters first (in line order), then the events in replay order."""
    # Undecodable bytes survive as surrogates, so the original bytes of a bad row can be
    # dead-lettered; only CR and LF end a line (newline=""), as in RFC 4180.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    raw_lines: list[str] = []
    reader = csv.reader(_recording(io.StringIO(text, newline=""), raw_lines))
    dead: list[FunnelItem] = []
    events: list[tuple[ChangeEvent, bytes]] = []
    header: list[str] | None = None
    next_start = 1
    for row in reader:
        raw = "".join(raw_lines).rstrip("\r\n").encode("utf-8", errors="surrogateescape")
        raw_lines.clear()
        line, next_start = next_start, reader.line_num + 1  # a row is located by its first line
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip().casefold() for cell in row]
            missing = _missing_columns(header)
            if missing:
                dead.append(
                    _dead(
                        source,
                        partition,
                        line,
                        raw,
                        INVALID_HEADER,
                        f"the header lacks {', '.join(missing)}",
                    )
                )
                return dead
            continue
        try:
            events.extend((event, raw) for event in _row_events(header, row, partition, line))
        except _RowError as error:
            dead.append(_dead(source, partition, line, raw, INVALID_ROW, str(error)))
    if header is None:
        dead.append(_dead(source, partition, 0, data[:200], INVALID_HEADER, "the file is empty"))
    events.sort(key=lambda pair: (pair[0].ts, pair[0].offset))
    return [*dead, *events]


def _recording(lines: Iterable[str], into: list[str]) -> Iterator[str]:
    for line in lines:
        into.append(line)
        yield line


def _missing_columns(header: list[str]) -> list[str]:
    missing = []
    if not any(column in header for column in ID_COLUMNS):
        missing.append("record_id")
    missing.extend(column for column in ("type", "created_at") if column not in header)
    return missing


def _row_events(header: list[str], row: list[str], partition: int, line: int) -> list[ChangeEvent]:
    if len(row) != len(header):
        raise _RowError(f"has {len(row)} cells, the header has {len(header)}")
    cells = {column: cell.strip() for column, cell in zip(header, row, strict=True)}
    for column, cell in cells.items():
        if not _is_utf8(cell):
            raise _RowError(f"{column} is not valid UTF-8")
        if len(cell) > MAX_TEXT_CHARS:
            raise _RowError(f"{column} is longer than {MAX_TEXT_CHARS} characters")
    record_id = next((cells[c] for c in ID_COLUMNS if cells.get(c)), "")
    if not record_id:
        raise _RowError("record_id is empty")
    kind = TYPES.get(cells["type"].casefold())
    if kind is None:
        raise _RowError(f"type {cells['type']!r} is neither lead nor opp")
    created = _time(cells, "created_at")
    if created is None:
        raise _RowError("created_at is empty")
    touched = _time(cells, "last_touch_at")
    fields: dict[str, FieldValue] = {
        name: cells[name] or None for name in TEXT_FIELDS if name in cells
    }
    fields["created_at"] = created
    if "value_usd" in cells:
        fields["value_usd"] = _dollars(cells["value_usd"])
    events = [
        ChangeEvent(
            event_id=f"csv:{line}:create",
            ts=created,
            object=kind,
            op=Op.CREATE,
            record_id=record_id,
            fields=fields,
            partition=partition,
            offset=2 * line,
        )
    ]
    if touched is not None and touched >= created:
        events.append(
            ChangeEvent(
                event_id=f"csv:{line}:touch",
                ts=touched,
                object=kind,
                op=Op.UPDATE,
                record_id=record_id,
                fields={"last_touch_at": touched},
                partition=partition,
                offset=2 * line + 1,
            )
        )
    return events


def _time(cells: dict[str, str], column: str) -> int | None:
    text = cells.get(column, "")
    if not text:
        return None
    try:
        if len(text) <= 10:
            raise ValueError
        return parse_timestamp(text)
    except ValueError:
        raise _RowError(f"{column} {text!r} is not an ISO-8601 time") from None


def _dollars(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _RowError(f"value_usd {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _RowError(f"value_usd {text!r} must be a finite amount ≥ 0")
    return value


def _dead(source: str, partition: int, line: int, raw: Any, reason: str, detail: str) -> DeadLetter:
    return DeadLetter.of(
        source=source,
        reason=reason,
        detail=detail,
        partition=partition,
        line=line,
        raw=bytes(raw),
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
