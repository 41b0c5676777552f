"""CRM message formats: which decoder a message needs, and what it decodes into.

A message can carry several changes (a Salesforce change event for many
records, a HubSpot webhook batch) and be partly bad, so every decoder returns
the change events it could read and a dead letter for each part it could not.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

from revleak import deadletter
from revleak.connectors.generic_json import decode_change
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


class Format(StrEnum):
    GENERIC = "generic"
    AUTO = "auto"  # detected per message


NOTHING = Decoded([], [])


def decode_generic(raw: bytes, position: Position) -> Decoded:
    decoded = decode_change(
        raw,
        partition=position.partition,
        offset=position.offset,
        source=position.source,
        line_numbered=position.line_numbered,
    )
    if decoded is None:
        return NOTHING
    if isinstance(decoded, ChangeEvent):
        return Decoded([decoded], [])
    return Decoded([], [decoded])


def sniff(raw: bytes) -> Format | None:
    """The format of a message from its first bytes, without parsing it."""
    head = raw.lstrip()[:1]
    if head == b"{":
        return Format.GENERIC
    return None


def decode_auto(raw: bytes, position: Position) -> Decoded:
    if not raw.strip():
        return NOTHING
    found = sniff(raw)
    if found is None:
        return Decoded(
            [],
            [position.dead_letter(raw, deadletter.UNKNOWN_FORMAT, "not a known CRM message")],
        )
    return decoder_for(found)(raw, position)


_DECODERS: dict[Format, Decoder] = {
    Format.GENERIC: decode_generic,
    Format.AUTO: decode_auto,
}


def decoder_for(fmt: Format) -> Decoder:
    return _DECODERS[fmt]
