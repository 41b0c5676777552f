"""OTLP/JSON: the JSON mapping of OTLP messages, as OpenTelemetry specifies it.

It is protobuf's JSON mapping (lowerCamelCase keys, 64-bit integers as decimal strings,
other bytes as base64) with two differences: trace and span ids are hex strings, not base64,
and enums are written as integers. A receiver ignores fields it does not know.

``encode_json`` writes any OTLP message (``TracesData``, ``MetricsData``, an export request);
``parse_traces_json`` and ``parse_metrics_json`` read one strictly, every field checked.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Protocol, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

# The bytes fields written in hex: spans', links' and exemplars' (and log records') ids.
ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})

MessageT = TypeVar("MessageT", bound=Message)
Rewrite = Callable[[str, str], str]


class MessageDescriptor(Protocol):
    """What the id rewrite reads of a message's descriptor (pure-Python or upb)."""

    def __hash__(self) -> int: ...

    @property
    def full_name(self) -> str: ...

    @property
    def fields(self) -> Sequence[FieldShape]: ...


class FieldShape(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def json_name(self) -> str: ...

    @property
    def message_type(self) -> MessageDescriptor | None: ...


def encode_json(message: Message) -> bytes:
    """``message`` in OTLP/JSON: ids in lowercase hex, enums as integers."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)
    _rewrite_ids(data, message.DESCRIPTOR, _base64_to_hex, "")
    return orjson.dumps(data)


def parse_traces_json(raw: bytes) -> TracesData:
    """An OTLP/JSON ``TracesData`` (or ``ExportTraceServiceRequest``, the same JSON).

    Raises ValueError saying what is wrong when ``raw`` is not one.
    """
    return _parse(raw, TracesData())


def parse_metrics_json(raw: bytes) -> MetricsData:
    """An OTLP/JSON ``MetricsData`` (or ``ExportMetricsServiceRequest``, the same JSON).

    Raises ValueError saying what is wrong when ``raw`` is not one.
    """
    return _parse(raw, MetricsData())


def _parse(raw: bytes, message: MessageT) -> MessageT:
    what = message.DESCRIPTOR.name
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"OTLP/JSON {what} is a JSON object, not {type(data).__name__}")
    _rewrite_ids(data, message.DESCRIPTOR, _hex_to_base64, "")
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise ValueError(f"not OTLP/JSON {what}: {error}") from None
    except RecursionError:
        raise ValueError(f"not OTLP/JSON {what}: values nested too deeply") from None
    return message


def _rewrite_ids(data: Any, descriptor: MessageDescriptor, rewrite: Rewrite, path: str) -> None:
    """Rewrite the id fields of ``data`` (a message's JSON object) in place.

    Walks only into fields whose messages can hold ids, so attribute values, which nest
    freely, are never visited. What does not have the expected shape is left for the
    protobuf parser to report.
    """
    if not isinstance(data, dict):
        return
    fields = _fields_by_key(descriptor)
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            continue
        where = f"{path}.{key}" if path else key
        if field.message_type is not None:
            if not _holds_ids(field.message_type):
                continue
            # Repeated or not: a list where one message belongs is the parser's to report.
            if isinstance(value, list):
                for index, item in enumerate(value):
                    _rewrite_ids(item, field.message_type, rewrite, f"{where}[{index}]")
            else:
                _rewrite_ids(value, field.message_type, rewrite, where)
        elif field.name in ID_FIELDS and isinstance(value, str):
            data[key] = rewrite(value, where)


@cache
def _fields_by_key(descriptor: MessageDescriptor) -> dict[str, FieldShape]:
    """Fields by the keys that may name them: the JSON name and the proto name."""
    fields: dict[str, FieldShape] = {}
    for field in descriptor.fields:
        fields[field.name] = field
        fields[field.json_name] = field
    return fields


@cache
def _holds_ids(descriptor: MessageDescriptor) -> bool:
    return _reaches_ids(descriptor, frozenset())


def _reaches_ids(descriptor: MessageDescriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in seen:
        return False
    seen = seen | {descriptor.full_name}
    for field in descriptor.fields:
        if field.message_type is None:
            if field.name in ID_FIELDS:
                return True
        elif _reaches_ids(field.message_type, seen):
            return True
    return False


def _base64_to_hex(text: str, _: str) -> str:
    return base64.b64decode(text).hex()


def _hex_to_base64(text: str, where: str) -> str:
    return base64.b64encode(hex_id(text, where)).decode("ascii")


def hex_id(text: str, where: str) -> bytes:
    """The bytes of an id written in hex (either case); ValueError naming ``where`` if not."""
    try:
        decoded = bytes.fromhex(text)
    except ValueError:
        decoded = None
    # bytes.fromhex skips spaces between bytes, which an id must not have.
    if decoded is None or 2 * len(decoded) != len(text):
        raise ValueError(f"{where}: {text[:80]!r} is not a hex string")
    return decoded
