"""Salesforce Change Data Capture events: one message a line, any of its JSON shapes.

A message is the event payload (``ChangeEventHeader`` and the record fields), the
payload wrapped as ``{"payload": {...}}`` (as Pub/Sub API clients print it, with
``replayId`` beside it) or a CometD message ``{"data": {"schema", "payload",
"event": {"replayId"}}, "channel"}``. Pub/Sub API delivers ``changedFields``,
``nulledFields`` and ``diffFields`` as bitmaps of the Avro schema: they must be
decoded to field names (Salesforce's ChangeEventHeaderUtility does it) first.

One event is made for each id in ``recordIds`` (Salesforce merges the same change
of several records into one message), at ``commitTimestamp``:

- ``CREATE`` and ``UNDELETE`` (a restored record carries its fields): a create with
  every mapped field of the body;
- ``UPDATE``: an update with the mapped fields named in ``changedFields`` that the
  body carries, and those in ``nulledFields`` cleared; an update of unmapped fields
  only gives nothing;
- ``DELETE`` and ``GAP_DELETE``: a delete;
- other gap events and ``GAP_OVERFLOW`` carry no field values: one dead letter with
  reason ``gap`` names the records to re-read from Salesforce.

Objects the mapping does not list give nothing (the /data/ChangeEvents channel
carries every object), and a bad message is one dead letter.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from revleak import deadletter
from revleak.connectors.generic_json import MAX_TEXT_CHARS, explain
from revleak.connectors.mapping import (
    ObjectMapping,
    SourceMapping,
    ValueProblemError,
    mapping_for,
    put,
)
from revleak.connectors.messages import Decoded, Position, parse_json
from revleak.crm.events import ChangeEvent, FieldValue, Op

# Dead-letter reason of a gap event: the change happened, but its values must be read
# from Salesforce. (To be added to revleak.deadletter.REASONS.)

HEADER = "ChangeEventHeader"
ChangeType = Literal[
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
]
_OPS: dict[str, Op] = {
    "CREATE": Op.CREATE,
    "UNDELETE": Op.CREATE,
    "UPDATE": Op.UPDATE,
    "DELETE": Op.DELETE,
    "GAP_DELETE": Op.DELETE,
}
_BITMAP = re.compile(r"^([0-9]+-)?0x[0-9A-Fa-f]+$")
_SKIP: Any = object()  # a change that leaves a field alone


class ChangeEventHeader(BaseModel):
    """The header fields revleak reads (others, such as changeOrigin, are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, alias_generator=to_camel)

    entity_name: str = Field(min_length=1)
    record_ids: list[str]
    change_type: ChangeType
    commit_timestamp: int = Field(ge=0)
    transaction_key: str | None = None
    sequence_number: int | None = None
    changed_fields: list[str] = Field(default_factory=list)
    nulled_fields: list[str] = Field(default_factory=list)
    diff_fields: list[str] = Field(default_factory=list)


_HEADER = TypeAdapter(ChangeEventHeader)


class _InvalidError(Exception):
    """A message that is JSON but not a usable change event (the argument says why)."""


def decode_salesforce(
    raw: bytes, position: Position, mapping: SourceMapping | None = None
) -> Decoded:
    """Decode one message; ``mapping`` defaults to the bundled ``salesforce`` mapping."""
    mapping = mapping_for("salesforce", mapping)
    data, rejected = parse_json(raw, position, what="a change event")
    if rejected is not None:
        return rejected
    if not isinstance(data, dict):
        detail = "a Salesforce change event is a JSON object"
        return Decoded([], [position.dead_letter(raw, deadletter.NOT_AN_OBJECT, detail)])
    try:
        return _decode(data, raw, position, mapping)
    except _InvalidError as error:
        return Decoded([], [position.dead_letter(raw, deadletter.INVALID_EVENT, str(error))])


def _decode(
    data: dict[str, Any], raw: bytes, position: Position, mapping: SourceMapping
) -> Decoded:
    payload, replay_id = _unwrap(data)
    if not isinstance(payload[HEADER], dict):
        raise _InvalidError(f"{HEADER} is not an object")
    try:
        header = _HEADER.validate_python(payload[HEADER])
    except ValidationError as error:
        raise _InvalidError(f"{HEADER}.{explain(error)[1]}") from None
    obj = mapping.object_named(header.entity_name)
    if obj is None:
        detail = (
            f"entity {header.entity_name!r} is not in the salesforce mapping "
            f"(it maps {', '.join(sorted(mapping.spec.objects))})"
        )
        return Decoded([], [position.dead_letter(raw, deadletter.UNKNOWN_ENTITY, detail)])
    ids = header.record_ids
    change = header.change_type
    if change.startswith("GAP_") and change != "GAP_DELETE":
        return Decoded([], [position.dead_letter(raw, deadletter.GAP, _gap_detail(header))])
    if not ids:
        raise _InvalidError(f"{HEADER}.recordIds is empty")
    for record_id in ids:
        if "*" in record_id:
            raise _InvalidError(
                f"{HEADER}.recordIds: {record_id!r} stands for every {header.entity_name} "
                "record (a field type conversion); re-read them from Salesforce"
            )
        if not 0 < len(record_id) <= MAX_TEXT_CHARS:
            raise _InvalidError(
                f"{HEADER}.recordIds: a record id is 1 to {MAX_TEXT_CHARS} characters"
            )
    if header.transaction_key is not None and header.sequence_number is not None:
        prefix = f"{header.transaction_key}:{header.sequence_number}"
    elif replay_id is not None:
        prefix = str(replay_id)
    else:
        raise _InvalidError(f"{HEADER} needs transactionKey and sequenceNumber (or a replayId)")
    op = _OPS[change]
    body = {name: value for name, value in payload.items() if name != HEADER}
    try:
        if op is Op.CREATE:
            fields = _created(body, obj)
        elif op is Op.UPDATE:
            fields = _updated(header, body, obj)
            if not fields:
                return Decoded([], [])
        else:
            fields = {}
    except ValueProblemError as error:
        raise _InvalidError(str(error)) from None
    events = [
        ChangeEvent(
            event_id=f"{prefix}:{record_id}",
            ts=header.commit_timestamp,
            object=obj.crm_object,
            op=op,
            record_id=record_id,
            fields=dict(fields),
            partition=position.partition,
            offset=position.offset,
            item=item,
        )
        for item, record_id in enumerate(ids)
    ]
    return Decoded(events, [])


def _unwrap(data: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The payload (the object holding ChangeEventHeader) and the replay id, if any."""
    if HEADER in data:
        return data, None
    outer: Any = data
    if isinstance(data.get("data"), dict) and "payload" in data["data"]:
        outer = data["data"]  # CometD: {"data": {"payload", "event"}, "channel"}
    payload = outer.get("payload")
    if isinstance(payload, dict) and HEADER in payload:
        event = outer.get("event")
        replay_id = outer.get("replayId")
        if replay_id is None and isinstance(event, dict):
            replay_id = event.get("replayId")
        return payload, replay_id
    raise _InvalidError(
        f'no {HEADER}: expected a change event payload, {{"payload": {{...}}}} or a CometD '
        f'message {{"data": {{"payload": {{...}}}}}}'
    )


def _gap_detail(header: ChangeEventHeader) -> str:
    entity = header.entity_name
    if header.change_type == "GAP_OVERFLOW":
        return (
            f"GAP_OVERFLOW for {entity} (transaction {header.transaction_key}): more than "
            f"100,000 changes in one transaction; re-read the {entity} records it changed "
            "from Salesforce"
        )
    return (
        f"{header.change_type} for {entity} {', '.join(header.record_ids) or '(no ids)'}: "
        "no field values; re-read these records from Salesforce"
    )


def _created(body: dict[str, Any], obj: ObjectMapping) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for source in obj.fields:
        if source in body:
            result = obj.convert(source, body[source])
            if result is not None:
                put(fields, *result)
    return fields


def _updated(
    header: ChangeEventHeader, body: dict[str, Any], obj: ObjectMapping
) -> dict[str, FieldValue]:
    for name in (*header.changed_fields, *header.nulled_fields, *header.diff_fields):
        if _BITMAP.match(name):
            raise _InvalidError(
                f"{HEADER}.changedFields holds Pub/Sub API bitmaps such as {name!r}: decode "
                "them to field names with the event schema first"
            )
    nulled = set(header.nulled_fields)
    changed = set(header.changed_fields) | nulled
    diff = set(header.diff_fields)
    fields: dict[str, FieldValue] = {}
    for source, rule in obj.fields.items():
        if rule.join is not None:
            value = _compound_change(source, rule.join, body, changed, nulled)
        elif source not in changed:
            value = _SKIP
        elif source in diff:
            raise _InvalidError(
                f"{source} is sent as a diff (diffFields), not its value; map another field"
            )
        elif source in nulled:
            value = None
        else:
            value = body.get(source, _SKIP)
        if value is _SKIP:
            continue
        result = obj.convert(source, value)
        if result is not None:
            put(fields, *result)
    return fields


def _compound_change(
    source: str,
    components: tuple[str, ...],
    body: dict[str, Any],
    changed: set[str],
    nulled: set[str],
) -> Any:
    """The new value of a compound field when every joined component changed.

    ``changedFields`` names components as ``Name.LastName``, and the body then carries
    only those: when some components changed and others did not, the joined value is
    unknown and nothing is set (:data:`_SKIP`).
    """
    paths = [f"{source}.{component}" for component in components]
    if source not in changed and not all(path in changed for path in paths):
        return _SKIP
    if source in nulled or all(path in nulled for path in paths):
        return None
    compound = body.get(source, _SKIP)
    if not isinstance(compound, dict):
        return compound  # missing (_SKIP), or the converter explains what is wrong
    return {
        component: None if path in nulled else compound.get(component)
        for component, path in zip(components, paths, strict=True)
    }
