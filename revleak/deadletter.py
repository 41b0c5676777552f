"""Dead letters: input that could not be used, kept with the reason and the original bytes."""

from __future__ import annotations

import base64
from typing import Any

from pydantic import BaseModel, ConfigDict

# Why input was rejected (the ``reason`` of a dead letter).
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
INVALID_EVENT = "invalid_event"
TOO_LARGE = "too_large"
LATE = "late"
INVALID_ROW = "invalid_row"
INVALID_HEADER = "invalid_header"
UNKNOWN_FORMAT = "unknown_format"
UNKNOWN_ENTITY = "unknown_entity"  # a CRM object the source's field mapping does not map
GAP = "gap"  # Salesforce lost changes: the records must be re-read from the CRM
MALFORMED_OTLP = "malformed_otlp"  # neither OTLP/protobuf nor OTLP/JSON
INVALID_SPAN = "invalid_span"  # bad ids or times; the message's other spans are used
INVALID_METRIC = "invalid_metric"  # no time or no finite value; the other points are used
REASONS = (
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    INVALID_EVENT,
    TOO_LARGE,
    LATE,
    INVALID_ROW,
    INVALID_HEADER,
    UNKNOWN_FORMAT,
    UNKNOWN_ENTITY,
    GAP,
    MALFORMED_OTLP,
    INVALID_SPAN,
    INVALID_METRIC,
)


class DeadLetter(BaseModel):
    """One rejected input record. ``original`` holds the text when it is valid UTF-8,
    otherwise ``original_base64`` holds the bytes; either way nothing is lost.
    ``line`` locates it in a file, ``offset`` in a partition of a topic."""

    model_config = ConfigDict(frozen=True)

    source: str
    reason: str
    detail: str
    partition: int = 0
    line: int | None = None
    offset: int | None = None
    original: str | None = None
    original_base64: str | None = None
    event_time: str | None = None

    @classmethod
    def of(
        cls,
        *,
        source: str,
        reason: str,
        detail: str,
        partition: int,
        raw: bytes,
        line: int | None = None,
        offset: int | None = None,
        event_time: str | None = None,
    ) -> DeadLetter:
        try:
            text: str | None = raw.decode("utf-8")
            encoded = None
        except UnicodeDecodeError:
            text, encoded = None, base64.b64encode(raw).decode("ascii")
        return cls(
            source=source,
            reason=reason,
            detail=detail,
            partition=partition,
            line=line,
            offset=offset,
            original=text,
            original_base64=encoded,
            event_time=event_time,
        )

    def original_bytes(self) -> bytes:
        if self.original is not None:
            return self.original.encode("utf-8")
        return base64.b64decode(self.original_base64 or "")

    def record(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)
