"""CRM change events as the engine sees them, whatever their source format."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple


class CrmObject(StrEnum):
    LEAD = "lead"
    OPPORTUNITY = "opportunity"


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


# Field values after decoding: text, event time in ms (created_at, last_touch_at),
# dollars (value_usd), or None for "empty".
FieldValue = str | int | float | None

TEXT_FIELDS = (
    "name",
    "email",
    "domain",
    "company",
    "source",
    "region",
    "owner",
    "stage",
    "next_step",
)


class ChangeEvent(NamedTuple):
    """One accepted change of one CRM record.

    ``fields`` holds only what the change carries (an update carries only the
    changed fields). ``partition`` and ``offset`` locate the message in its input,
    ``item`` the event within a message that carries several (a Salesforce change of
    many records, a HubSpot batch); together they break ties between events of the
    same time, so every run orders them
    the same way.
    """

    event_id: str
    ts: int
    object: CrmObject
    op: Op
    record_id: str
    fields: Mapping[str, FieldValue]
    partition: int = 0
    offset: int = 0
    item: int = 0

    @property
    def order(self) -> tuple[int, int, int, int]:
        return (self.ts, self.partition, self.offset, self.item)
