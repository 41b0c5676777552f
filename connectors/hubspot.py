"""HubSpot webhook events (Webhooks API v3): one delivered batch a line.

HubSpot POSTs a JSON array of events (a batch of up to 100); a single event
object is read as a batch of one. Each event is read on its own: a bad one is one
dead letter (``invalid_event``, naming its place in the batch and the field) and
the others still decode. An event is ``{eventId, subscriptionId, portalId, appId,
occurredAt, subscriptionType, attemptNumber, objectId, changeSource, ...}``, with
``propertyName`` and ``propertyValue`` for property changes; generic subscriptions
(``object.propertyChange``) name the object type in ``objectTypeId``.

At ``occurredAt``, for ``objectId``:

- ``*.creation`` and ``*.restore``: a create. HubSpot sends a new record's first
  properties as separate property changes at the same ``occurredAt``; those in the
  same batch are folded into the create, so the record is not judged (owner,
  region, ...) while it still looks empty;
- ``*.propertyChange``: an update of the one property, when the mapping lists it
  (a Sensitive Data property, whose value is ``REDACTED``, gives nothing);
- ``*.deletion``: a delete;
- anything else (``merge``, ``associationChange``, ``contact.privacyDeletion``, which
  comes with a ``contact.deletion`` anyway, ...): nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from revleak import deadletter
from revleak.connectors.generic_json import explain
from revleak.connectors.mapping import (
    ObjectMapping,
    SourceMapping,
    ValueProblemError,
    mapping_for,
)
from revleak.connectors.messages import Decoded, Position, parse_json
from revleak.crm.events import ChangeEvent, FieldValue, Op
from revleak.deadletter import DeadLetter

_OPS = {
    "creation": Op.CREATE,
    "restore": Op.CREATE,
    "propertyChange": Op.UPDATE,
    "deletion": Op.DELETE,
}
GENERIC_OBJECT = "object"  # generic subscriptions: object.creation, object.propertyChange, ...


class WebhookEvent(BaseModel):
    """The fields revleak reads from one webhook event (others are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, alias_generator=to_camel)

    event_id: int
    subscription_type: str = Field(min_length=1)
    object_id: int = Field(ge=0)
    occurred_at: int = Field(ge=0)
    object_type_id: str | None = None
    property_name: str | None = None
    property_value: str | int | float | bool | None = None
    is_sensitive: bool = False


_EVENT = TypeAdapter(WebhookEvent)


class _InvalidError(Exception):
    """One event of a batch that cannot be used (the argument says why)."""

    reason = deadletter.INVALID_EVENT


class _UnknownEntityError(_InvalidError):
    reason = deadletter.UNKNOWN_ENTITY


def decode_hubspot(raw: bytes, position: Position, mapping: SourceMapping | None = None) -> Decoded:
    """Decode one batch; ``mapping`` defaults to the bundled ``hubspot`` mapping."""
    mapping = mapping_for("hubspot", mapping)
    data, rejected = parse_json(raw, position, what="a webhook batch")
    if rejected is not None:
        return rejected
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        detail = "a HubSpot webhook message is a JSON array of events (or one event object)"
        return Decoded([], [position.dead_letter(raw, deadletter.NOT_AN_OBJECT, detail)])
    events: list[ChangeEvent] = []
    dead_letters: list[DeadLetter] = []
    for index, element in enumerate(data):
        try:
            event = _decode(element, mapping)
        except _InvalidError as error:
            detail = f"event [{index}] of the batch: {error}"
            dead_letters.append(position.dead_letter(raw, error.reason, detail))
            continue
        if event is not None:
            events.append(event)
    return Decoded(
        [
            event._replace(partition=position.partition, offset=position.offset, item=item)
            for item, event in enumerate(_fold_into_creations(events))
        ],
        dead_letters,
    )


def _fold_into_creations(events: list[ChangeEvent]) -> list[ChangeEvent]:
    """Property changes of a record at the instant it is created become part of the create."""
    creations = {
        (event.object, event.record_id, event.ts): place
        for place, event in enumerate(events)
        if event.op is Op.CREATE
    }
    folded = list(events)
    kept: list[ChangeEvent] = []
    for event in events:
        place = creations.get((event.object, event.record_id, event.ts))
        if event.op is Op.UPDATE and place is not None:
            creation = folded[place]
            folded[place] = creation._replace(fields={**creation.fields, **event.fields})
    for place, event in enumerate(events):
        if event.op is Op.UPDATE and (event.object, event.record_id, event.ts) in creations:
            continue
        kept.append(folded[place])
    return kept


def _decode(element: Any, mapping: SourceMapping) -> ChangeEvent | None:
    if not isinstance(element, dict):
        raise _InvalidError("a webhook event is a JSON object")
    try:
        event = _EVENT.validate_python(element)
    except ValidationError as error:
        raise _InvalidError(explain(error)[1]) from None
    kind, _, action = event.subscription_type.rpartition(".")
    if kind == GENERIC_OBJECT:
        if event.object_type_id is None:
            raise _InvalidError(f"objectTypeId: required by {event.subscription_type}")
        obj = mapping.object_with_type_id(event.object_type_id)
        unknown = f"objectTypeId {event.object_type_id!r}"
    else:
        obj = mapping.object_named(kind)
        unknown = f"object {kind!r}"
    if obj is None:
        raise _UnknownEntityError(
            f"{unknown} of {event.subscription_type} is not in the hubspot mapping"
        )
    op = _OPS.get(action)
    if op is None:
        return None  # a change of a mapped object that no SLO looks at (merge, privacy…)
    fields: dict[str, FieldValue] = {}
    if op is Op.UPDATE:
        change = _property(event, obj)
        if change is None:
            return None
        name, value = change
        fields[name] = value
    return ChangeEvent(
        event_id=str(event.event_id),
        ts=event.occurred_at,
        object=obj.crm_object,
        op=op,
        record_id=str(event.object_id),
        fields=fields,
    )


def _property(event: WebhookEvent, obj: ObjectMapping) -> tuple[str, FieldValue] | None:
    if event.property_name is None:
        raise _InvalidError(f"propertyName: required by {event.subscription_type}")
    if event.is_sensitive or event.property_name not in obj.fields:
        return None
    try:
        return obj.convert(event.property_name, event.property_value)
    except ValueProblemError as error:
        raise _InvalidError(f"propertyValue of {error}") from None
