"""What a CRM message decodes into, and where it came from (shared by every decoder)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from revleak import deadletter
from revleak.connectors.generic_json import MAX_LINE_BYTES
from revleak.crm.events import ChangeEvent
from revleak.deadletter import DeadLetter


class Decoded(NamedTuple):
    events: list[ChangeEvent]
    dead_letters: list[DeadLetter]


class Position(NamedTuple):
    """Where a message is: its partition, and its line (files) or offset (topics)."""

    source: str
    partition: int
    offset: int
    line_numbered: bool = True

    def dead_letter(self, raw: bytes, reason: str, detail: str) -> DeadLetter:
        return DeadLetter.of(
            source=self.source,
            reason=reason,
            detail=detail,
            partition=self.partition,
            raw=raw,
            line=self.offset if self.line_numbered else None,
            offset=None if self.line_numbered else self.offset,
        )


Decoder = Callable[[bytes, Position], Decoded]


NOTHING = Decoded([], [])


def parse_json(raw: bytes, position: Position, *, what: str) -> tuple[Any, Decoded | None]:
    """A message's JSON, or what to return instead: nothing for a blank line, a dead
    letter for one too large or not JSON. ``what`` names the message in the reason."""
    if len(raw) > MAX_LINE_BYTES:
        detail = f"{len(raw)} bytes; {what} is at most {MAX_LINE_BYTES} bytes"
        return None, Decoded([], [position.dead_letter(raw, deadletter.TOO_LARGE, detail)])
    if not raw.strip():
        return None, NOTHING
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as error:
        detail = f"not JSON: {error}"
        return None, Decoded([], [position.dead_letter(raw, deadletter.MALFORMED_JSON, detail)])
