"""The generic JSON change event: one object a line.

``{"event_id", "ts", "object": "lead"|"opportunity", "op": "create"|"update"|"delete",
"record_id", "fields": {...}}`` — an update carries only the changed fields, and
``null`` clears a field. The pydantic model below is the contract; anything it
rejects becomes a :class:`~revleak.deadletter.DeadLetter` with the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, Field, Strict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from revleak import deadletter
from revleak.crm.events import ChangeEvent, CrmObject, FieldValue, Op
from revleak.deadletter import DeadLetter
from revleak.timefmt import datetime_to_ms

MAX_LINE_BYTES = 1 << 20
MAX_TEXT_CHARS = 1024


def _instant(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO-8601 time such as 2026-03-02T10:30:00Z") from None
    if len(text.strip()) <= 10:
        raise ValueError("needs a time of day too, e.g. 2026-03-02T10:30:00Z")
    return datetime_to_ms(moment)


Text = Annotated[str, Strict(), Field(max_length=MAX_TEXT_CHARS)]
Instant = Annotated[str, Strict(), AfterValidator(_instant)]
Dollars = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class ChangeFields(TypedDict, total=False):
    name: Text | None
    email: Text | None
    domain: Text | None
    company: Text | None
    source: Text | None
    region: Text | None
    owner: Text | None
    stage: Text | None
    next_step: Text | None
    created_at: Instant | None
    last_touch_at: Instant | None
    value_usd: Dollars | None


class GenericChangeEvent(TypedDict):
    event_id: Annotated[str, Strict()]
    ts: Instant
    object: Literal["lead", "opportunity"]
    op: Literal["create", "update", "delete"]
    record_id: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    fields: NotRequired[ChangeFields]


_ADAPTER = TypeAdapter(GenericChangeEvent)
_OBJECTS = {"lead": CrmObject.LEAD, "opportunity": CrmObject.OPPORTUNITY}
_OPS = {"create": Op.CREATE, "update": Op.UPDATE, "delete": Op.DELETE}


def decode_change(
    raw: bytes, *, partition: int, offset: int, source: str, line_numbered: bool = True
) -> ChangeEvent | DeadLetter | None:
    """Decode one message; ``None`` for a blank line, which carries nothing.

    ``offset`` is the line number in a file (``line_numbered``) or the offset in a
    topic partition; it orders events of the same time.
    """
    line, topic_offset = (offset, None) if line_numbered else (None, offset)
    if len(raw) > MAX_LINE_BYTES:
        return DeadLetter.of(
            source=source,
            reason=deadletter.TOO_LARGE,
            detail=f"{len(raw)} bytes; a change event is at most {MAX_LINE_BYTES} bytes",
            partition=partition,
            raw=raw,
            line=line,
            offset=topic_offset,
        )
    if not raw.strip():
        return None
    try:
        data: Any = _ADAPTER.validate_json(raw)
    except ValidationError as error:
        reason, detail = explain(error)
        return DeadLetter.of(
            source=source,
            reason=reason,
            detail=detail,
            partition=partition,
            raw=raw,
            line=line,
            offset=topic_offset,
        )
    fields: dict[str, FieldValue] = data.get("fields", {})
    return ChangeEvent(
        event_id=data["event_id"],
        ts=data["ts"],
        object=_OBJECTS[data["object"]],
        op=_OPS[data["op"]],
        record_id=data["record_id"],
        fields=fields,
        partition=partition,
        offset=offset,
    )


def explain(error: ValidationError) -> tuple[str, str]:
    """A dead-letter reason and a one-line account of what is wrong."""
    problems = error.errors(include_url=False)
    first = problems[0]
    if first["type"] == "json_invalid":
        return deadletter.MALFORMED_JSON, f"not JSON: {first['msg'].removeprefix('Invalid JSON: ')}"
    if first["type"] in {"dict_type", "model_type"} and not first["loc"]:
        return deadletter.NOT_AN_OBJECT, "a change event is a JSON object"
    parts = []
    for problem in problems[:3]:
        where = ".".join(str(part) for part in problem["loc"]) or "event"
        parts.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return deadletter.INVALID_EVENT, "; ".join(parts) + more
