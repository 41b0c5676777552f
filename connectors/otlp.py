"""OTLP messages from Kafka (``otlp_spans``, ``otlp_metrics``) become spans and metric points.

The OpenTelemetry Collector's Kafka exporter writes one ``TracesData`` or ``MetricsData`` a
message, as binary protobuf (``otlp_proto``) or as OTLP/JSON (``otlp_json``). Each message
says which: OTLP/JSON is an object, so its first non-blank byte is ``{``; anything else is
protobuf. (A protobuf message starts with a newline byte, its first field's tag, and its
length byte may happen to be ``{``: a message that looks like JSON but does not parse as
JSON is therefore tried as protobuf when it starts with a newline.)

Mapping (docs/semantics.md §1–2): a span's event time is its end, in ms; its service is the
resource's ``service.name``; its attributes are the resource's merged with its own (its own
win), values as text; it is an error when its status is ERROR or its HTTP response status
is 500 or more. A gauge or sum point (histograms and summaries carry no SLI here) gives a
metric point at its time.

Bad input never stops a run. A payload that is not OTLP gives one dead letter
``malformed_otlp``; invalid spans (points) give one dead letter ``invalid_span``
(``invalid_metric``) for their message, naming each, and the rest of it is still read.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
from google.protobuf.descriptor_pb2 import FieldDescriptorProto, FileDescriptorProto
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    DataPointFlags,
    MetricsData,
)
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData

from revleak import deadletter
from revleak.connectors.messages import Position
from revleak.connectors.otlp_json import hex_id, parse_metrics_json, parse_traces_json
from revleak.deadletter import DeadLetter
from revleak.gcpause import cyclic_gc_paused
from revleak.telemetry.model import Attributes, MetricPoint, Span, SpanKind

MAX_MESSAGE_BYTES = 16 << 20
UNKNOWN_SERVICE = "unknown_service"
SERVICE_NAME = "service.name"
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
# A dead letter names this many invalid items of its message, then counts the rest.
LISTED_PROBLEMS = 10
# Distinct encoded attributes kept parsed (a few hundred bytes each) before starting over.
ATTRIBUTES_REMEMBERED = 1 << 16

_STATUS_ERROR = Status.STATUS_CODE_ERROR
_CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
# A staleness marker: the series ended, there is no measurement to read.
_NO_RECORDED_VALUE = DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_KINDS = {kind.value: kind for kind in SpanKind}
_NS_PER_MS = 1_000_000
_INT64 = 1 << 63
_UINT64 = 1 << 64
_FIRST_CONTENT = re.compile(rb"[^ \t\r\n]")
_NUMBER = re.compile(r"\s*[0-9]+(?:\.[0-9]*)?\s*")
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
_ATTRIBUTES_SEEN: dict[bytes, tuple[str, str]] = {}

ItemT = TypeVar("ItemT", Span, MetricPoint)
ReadT = TypeVar("ReadT")


class TelemetryDecoded(NamedTuple, Generic[ItemT]):
    """What one message holds: its usable items and at most one dead letter.

    ``rejected`` counts the items that went to the dead letter as invalid; a message that
    is not OTLP at all (``malformed_otlp``, ``too_large``) has none to count.
    """

    items: list[ItemT]
    dead_letters: list[DeadLetter]
    rejected: int = 0


def decode_spans(raw: bytes, position: Position) -> TelemetryDecoded[Span]:
    """The spans of one ``otlp_spans`` message, ``item`` numbering every span of it."""
    return _decode(raw, position, _SPANS)


def decode_metrics(raw: bytes, position: Position) -> TelemetryDecoded[MetricPoint]:
    """The gauge and sum points of one ``otlp_metrics`` message, ``item`` numbering them."""
    return _decode(raw, position, _METRICS)


_METRICS_KEY = re.compile(rb'"resource_?[mM]etrics"\s*:')


def decode_json_line(
    raw: bytes, position: Position
) -> TelemetryDecoded[Span] | TelemetryDecoded[MetricPoint]:
    """One line of an OTLP/JSON file, traces or metrics (the Collector's file exporter
    writes both kinds into one file, one message a line): told apart by their top key."""
    if _METRICS_KEY.search(raw[:256]):
        return decode_metrics(raw, position)
    return decode_spans(raw, position)


class _MalformedError(Exception):
    """The message is not OTLP."""


class _Found(Generic[ItemT]):
    """The usable items of a message and what is wrong with the others."""

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.items: list[ItemT] = []
        self.problems: list[str] = []
        self.count = 0  # items seen, used or not: the next one's number

    def add(self, built: ItemT | str) -> None:
        """Keep an item, or note what is wrong with it."""
        if isinstance(built, str):
            self.problems.append(f"{self.noun} {self.count}: {built}")
        else:
            self.items.append(built)
        self.count += 1


@dataclass(frozen=True)
class _Signal(Generic[ItemT]):
    noun: str
    invalid_reason: str
    lean_message: type[Message]  # see _lean_messages
    proto_items: Callable[[Any, Position], _Found[ItemT]]  # reads a lean message
    json_items: Callable[[dict[str, Any], Position], _Found[ItemT]]
    # The strict parser: it says what is wrong, and reads what the fast path leaves to it.
    from_json: Callable[[bytes], Message]


def _decode(raw: bytes, position: Position, signal: _Signal[ItemT]) -> TelemetryDecoded[ItemT]:
    if len(raw) > MAX_MESSAGE_BYTES:
        detail = f"{len(raw)} bytes; an OTLP message is at most {MAX_MESSAGE_BYTES} bytes"
        return TelemetryDecoded([], [position.dead_letter(raw, deadletter.TOO_LARGE, detail)])
    first = _FIRST_CONTENT.search(raw)
    if first is None:
        return TelemetryDecoded([], [])
    read = _from_json if raw[first.start()] == ord("{") else _from_proto
    try:
        with cyclic_gc_paused():
            found = read(raw, position, signal)
    except _MalformedError as error:
        letter = position.dead_letter(raw, deadletter.MALFORMED_OTLP, str(error))
        return TelemetryDecoded([], [letter])
    if not found.problems:
        return TelemetryDecoded(found.items, [])
    listed = "; ".join(found.problems[:LISTED_PROBLEMS])
    unlisted = len(found.problems) - LISTED_PROBLEMS
    more = f"; and {unlisted} more" if unlisted > 0 else ""
    detail = f"{len(found.problems)} of {found.count} {signal.noun}s invalid: {listed}{more}"
    letter = position.dead_letter(raw, signal.invalid_reason, detail)
    return TelemetryDecoded(found.items, [letter], len(found.problems))


def _from_proto(raw: bytes, position: Position, signal: _Signal[ItemT]) -> _Found[ItemT]:
    try:
        message = signal.lean_message.FromString(raw)
        # Bytes that are not protobuf at all may still parse, as fields the message does
        # not have; an OTLP message that is not empty holds a field of its own.
        if not message.ListFields():
            name = message.DESCRIPTOR.name
            raise _MalformedError(f"not OTLP/protobuf: {len(raw)} bytes without a {name} field")
        # Attributes are parsed as they are read: they may be what is malformed.
        return signal.proto_items(message, position)
    except DecodeError as error:
        raise _MalformedError(f"not OTLP/JSON nor OTLP/protobuf: {error}") from None


def _from_json(raw: bytes, position: Position, signal: _Signal[ItemT]) -> _Found[ItemT]:
    found = _fast_json(raw, position, signal)
    if found is not None:
        return found
    try:
        message = signal.from_json(raw)
    except ValueError as error:
        raise _MalformedError(str(error)) from None
    lean = signal.lean_message.FromString(message.SerializeToString())
    return signal.proto_items(lean, position)


def _fast_json(raw: bytes, position: Position, signal: _Signal[ItemT]) -> _Found[ItemT] | None:
    """The items, read straight from the parsed JSON; None when it is not in the shapes
    read here, for the strict parser to say what is wrong or to read what protobuf's JSON
    mapping also allows (enum names, numbers as text)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if raw.startswith(b"\n"):
            try:
                return _from_proto(raw, position, signal)
            except _MalformedError:
                pass
        raise _MalformedError(f"not JSON: {error}") from None
    try:
        return signal.json_items(data, position)
    except (AttributeError, TypeError, ValueError, RecursionError):
        return None


# Resources, attributes, the error verdict: shared by both encodings.


class _Resource(NamedTuple):
    service: str
    attributes: dict[str, str]
    sorted_attributes: Attributes  # for a span or point without attributes of its own


def _resource(attributes: Iterable[tuple[str, str]]) -> _Resource:
    merged = dict(attributes)
    service = merged.get(SERVICE_NAME) or UNKNOWN_SERVICE
    return _Resource(service, merged, tuple(sorted(merged.items())))


def _merge(resource: _Resource, own: list[tuple[str, str]]) -> tuple[dict[str, str], Attributes]:
    if not own:
        return resource.attributes, resource.sorted_attributes
    merged = resource.attributes.copy()
    merged.update(own)
    return merged, tuple(sorted(merged.items()))


def _http_failure(attributes: dict[str, str]) -> bool:
    for key in HTTP_STATUS_KEYS:
        text = attributes.get(key)
        if text is not None and _NUMBER.fullmatch(text) and float(text) >= 500:
            return True
    return False


def _span(
    resource: _Resource,
    *,
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: bytes,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    status_code: int,
    own: list[tuple[str, str]],
    position: Position,
    item: int,
) -> Span | str:
    """The span, or what is wrong with it."""
    if len(trace_id) != TRACE_ID_BYTES:
        return f"trace id is {len(trace_id)} bytes, not {TRACE_ID_BYTES}"
    if len(span_id) != SPAN_ID_BYTES:
        return f"span id is {len(span_id)} bytes, not {SPAN_ID_BYTES}"
    if end_ns == 0:
        return "no end time"
    if end_ns < start_ns:
        return f"ends ({end_ns} ns) before it starts ({start_ns} ns)"
    merged, attributes = _merge(resource, own)
    return Span(
        ts=end_ns // _NS_PER_MS,
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent_span_id=parent_span_id.hex(),
        service=resource.service,
        name=name,
        kind=_KINDS.get(kind, SpanKind.UNSPECIFIED),
        start_ns=start_ns,
        end_ns=end_ns,
        error=status_code == _STATUS_ERROR or _http_failure(merged),
        attributes=attributes,
        partition=position.partition,
        offset=position.offset,
        item=item,
    )


def _point(
    resource: _Resource,
    *,
    metric: str,
    time_ns: int,
    value: float | None,
    cumulative: bool,
    own: list[tuple[str, str]],
    position: Position,
    item: int,
) -> MetricPoint | str:
    """The point, or what is wrong with it."""
    if time_ns == 0:
        return "no time"
    if value is None:
        return "no value"
    if not math.isfinite(value):
        return f"value is {value}"
    _, attributes = _merge(resource, own)
    return MetricPoint(
        ts=time_ns // _NS_PER_MS,
        metric=metric,
        service=resource.service,
        value=value,
        attributes=attributes,
        cumulative=cumulative,
        partition=position.partition,
        offset=position.offset,
        item=item,
    )


def _compact_json(value: Any) -> str:
    return orjson.dumps(value).decode()


# otlp_proto


def _proto_spans(data: Any, position: Position) -> _Found[Span]:
    found: _Found[Span] = _Found("span")
    for resource_spans in data.resource_spans:
        resource = _resource(_proto_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.add(
                    _span(
                        resource,
                        trace_id=span.trace_id,
                        span_id=span.span_id,
                        parent_span_id=span.parent_span_id,
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        own=_proto_attributes(span.attributes),
                        position=position,
                        item=found.count,
                    )
                )
    return found


def _proto_points(data: Any, position: Position) -> _Found[MetricPoint]:
    found: _Found[MetricPoint] = _Found("point")
    for resource_metrics in data.resource_metrics:
        resource = _resource(_proto_attributes(resource_metrics.resource.attributes))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                shape = metric.WhichOneof("data")
                if shape == "gauge":
                    points, cumulative = metric.gauge.data_points, False
                elif shape == "sum":
                    points = metric.sum.data_points
                    cumulative = metric.sum.aggregation_temporality == _CUMULATIVE
                else:
                    continue
                for point in points:
                    if point.flags & _NO_RECORDED_VALUE:
                        found.count += 1
                        continue
                    shown = point.WhichOneof("value")
                    found.add(
                        _point(
                            resource,
                            metric=metric.name,
                            time_ns=point.time_unix_nano,
                            value=None if shown is None else float(getattr(point, shown)),
                            cumulative=cumulative,
                            own=_proto_attributes(point.attributes),
                            position=position,
                            item=found.count,
                        )
                    )
    return found


def _proto_attributes(encoded: Iterable[bytes]) -> list[tuple[str, str]]:
    """Attributes from the bytes of each ``KeyValue``: most repeat from span to span, and
    each distinct one is parsed once."""
    pairs = []
    for entry in encoded:
        pair = _ATTRIBUTES_SEEN.get(entry)
        if pair is None:
            if len(_ATTRIBUTES_SEEN) >= ATTRIBUTES_REMEMBERED:
                _ATTRIBUTES_SEEN.clear()
            parsed = KeyValue.FromString(entry)
            pair = _ATTRIBUTES_SEEN[entry] = (parsed.key, _proto_text(parsed.value))
        pairs.append(pair)
    return pairs


def _proto_text(value: AnyValue) -> str:
    shown = value.WhichOneof("value")
    if shown == "string_value":
        return value.string_value
    if shown is None:
        return ""
    if shown == "bool_value":
        return "true" if value.bool_value else "false"
    if shown == "int_value":
        return str(value.int_value)
    if shown == "double_value":
        return repr(value.double_value)
    if shown == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return _compact_json(_proto_native(value))


def _proto_native(value: AnyValue) -> Any:
    shown = value.WhichOneof("value")
    if shown == "array_value":
        return [_proto_native(item) for item in value.array_value.values]
    if shown == "kvlist_value":
        return {pair.key: _proto_native(pair.value) for pair in value.kvlist_value.values}
    if shown == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None if shown is None else getattr(value, shown)


# otlp_json: read straight from the parsed JSON, keys in lowerCamelCase or as the proto names
# (protobuf's JSON parser accepts both; ``a.get(camel) or a.get(snake)`` is right because a
# false value is the field's default either way). Whatever does not have the shape the spec
# gives raises AttributeError, TypeError or ValueError, and the strict parser takes over.


def _json_spans(data: dict[str, Any], position: Position) -> _Found[Span]:
    found: _Found[Span] = _Found("span")
    for resource_spans in _json_list(data, "resourceSpans", "resource_spans"):
        resource = _json_resource(resource_spans)
        for scope_spans in _json_list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _json_list(scope_spans, "spans", "spans"):
                found.add(
                    _span(
                        resource,
                        trace_id=_json_id(span.get("traceId") or span.get("trace_id")),
                        span_id=_json_id(span.get("spanId") or span.get("span_id")),
                        parent_span_id=_json_id(
                            span.get("parentSpanId") or span.get("parent_span_id")
                        ),
                        name=_json_string(span.get("name")),
                        kind=_json_enum(span.get("kind")),
                        start_ns=_json_uint64(
                            span.get("startTimeUnixNano") or span.get("start_time_unix_nano")
                        ),
                        end_ns=_json_uint64(
                            span.get("endTimeUnixNano") or span.get("end_time_unix_nano")
                        ),
                        status_code=_json_enum(_json_object(span.get("status")).get("code")),
                        own=_json_attributes(span),
                        position=position,
                        item=found.count,
                    )
                )
    return found


def _json_points(data: dict[str, Any], position: Position) -> _Found[MetricPoint]:
    found: _Found[MetricPoint] = _Found("point")
    for resource_metrics in _json_list(data, "resourceMetrics", "resource_metrics"):
        resource = _json_resource(resource_metrics)
        for scope_metrics in _json_list(resource_metrics, "scopeMetrics", "scope_metrics"):
            for metric in _json_list(scope_metrics, "metrics", "metrics"):
                name = _json_string(metric.get("name"))
                if (gauge := metric.get("gauge")) is not None:
                    shape, cumulative = _json_object(gauge), False
                elif (total := metric.get("sum")) is not None:
                    shape = _json_object(total)
                    temporality = shape.get("aggregationTemporality") or shape.get(
                        "aggregation_temporality"
                    )
                    cumulative = _json_enum(temporality) == _CUMULATIVE
                else:
                    continue
                for point in _json_list(shape, "dataPoints", "data_points"):
                    if _json_uint64(point.get("flags")) & _NO_RECORDED_VALUE:
                        found.count += 1
                        continue
                    found.add(
                        _point(
                            resource,
                            metric=name,
                            time_ns=_json_uint64(
                                point.get("timeUnixNano") or point.get("time_unix_nano")
                            ),
                            value=_json_value(point),
                            cumulative=cumulative,
                            own=_json_attributes(point),
                            position=position,
                            item=found.count,
                        )
                    )
    return found


def _json_list(data: dict[str, Any], camel: str, snake: str) -> list[dict[str, Any]]:
    found = data.get(camel) or data.get(snake)
    if found is None:
        return []
    if type(found) is not list:
        raise TypeError(f"{camel} is not a list")
    return found


def _json_object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return value


def _json_resource(owner: dict[str, Any]) -> _Resource:
    return _resource(_json_attributes(_json_object(owner.get("resource"))))


def _json_attributes(owner: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for pair in _json_list(owner, "attributes", "attributes"):
        key = pair.get("key")
        value = pair.get("value")
        # Most keys and values are strings: read those without a call.
        text = value.get("stringValue") if type(value) is dict else None
        pairs.append(
            (
                key if type(key) is str else _json_string(key),
                text if type(text) is str else _json_text(value),
            )
        )
    return pairs


def _json_string(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _json_id(value: Any) -> bytes:
    return b"" if value is None else hex_id(_json_string(value), "id")


def _json_enum(value: Any) -> int:
    # Enum names are valid protobuf JSON too: the strict parser reads those.
    if value is None:
        return 0
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _json_uint64(value: Any) -> int:
    if value is None:
        return 0
    number = _json_integer(value)
    if not 0 <= number < _UINT64:
        raise ValueError("out of range")
    return number


def _json_int64(value: Any) -> int:
    number = _json_integer(value)
    if not -_INT64 <= number < _INT64:
        raise ValueError("out of range")
    return number


def _json_integer(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii():
        return int(value)
    raise TypeError("not an integer")


def _json_double(value: Any) -> float:
    if type(value) in (int, float) or value in _NON_FINITE:
        return float(value)
    raise TypeError("not a number")


def _json_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not a boolean")
    return value


def _json_bytes(value: Any) -> str:
    """Base64 as the proto path writes it (the strict parser reads other alphabets)."""
    decoded = base64.b64decode(_json_string(value), validate=True)
    return base64.b64encode(decoded).decode("ascii")


def _json_value(point: dict[str, Any]) -> float | None:
    # 0 is a value here, not the absence of one.
    number = point.get("asDouble", point.get("as_double"))
    if number is not None:
        return _json_double(number)
    number = point.get("asInt", point.get("as_int"))
    return None if number is None else float(_json_int64(number))


def _json_text(value: Any) -> str:
    for key, inner in _json_object(value).items():
        render = _JSON_TEXT.get(key)
        if render is not None:
            return render(inner)
    return ""


def _json_native(value: Any) -> Any:
    for key, inner in _json_object(value).items():
        read = _JSON_NATIVE.get(key)
        if read is not None:
            return read(inner)
    return None


def _json_array(value: Any) -> list[Any]:
    return [_json_native(item) for item in _json_list(_json_object(value), "values", "values")]


def _json_kvlist(value: Any) -> dict[str, Any]:
    return {
        _json_string(pair.get("key")): _json_native(pair.get("value"))
        for pair in _json_list(_json_object(value), "values", "values")
    }


def _camel_and_snake(
    readers: dict[str, Callable[[Any], ReadT]],
) -> dict[str, Callable[[Any], ReadT]]:
    """The same readers under each AnyValue key's lowerCamelCase and proto name."""
    snake = {re.sub(r"([A-Z])", r"_\1", key).lower(): read for key, read in readers.items()}
    return {**readers, **snake}


_JSON_TEXT: dict[str, Callable[[Any], str]] = _camel_and_snake(
    {
        "stringValue": _json_string,
        "boolValue": lambda value: "true" if _json_bool(value) else "false",
        "intValue": lambda value: str(_json_int64(value)),
        "doubleValue": lambda value: repr(_json_double(value)),
        "bytesValue": _json_bytes,
        "arrayValue": lambda value: _compact_json(_json_array(value)),
        "kvlistValue": lambda value: _compact_json(_json_kvlist(value)),
    }
)
_JSON_NATIVE: dict[str, Callable[[Any], Any]] = _camel_and_snake(
    {
        "stringValue": _json_string,
        "boolValue": _json_bool,
        "intValue": _json_int64,
        "doubleValue": _json_double,
        "bytesValue": _json_bytes,
        "arrayValue": _json_array,
        "kvlistValue": _json_kvlist,
    }
)


def _lean_messages() -> tuple[type[Message], type[Message]]:
    """``TracesData`` and ``MetricsData`` as the wire has them, but with the attributes of
    resources, spans and number points as the bytes of each ``KeyValue``.

    Reading a parsed protobuf field from Python costs far more than parsing it, and the
    attributes are most of a span; as bytes, a repeated attribute is one dictionary look-up
    (``_proto_attributes``). A message field and a bytes field are the same on the wire.
    """
    pool = DescriptorPool()
    pool.Add(_file_proto(common_pb2, set()))
    pool.Add(_file_proto(resource_pb2, {"Resource"}))
    pool.Add(_file_proto(trace_pb2, {"Span"}))
    pool.Add(_file_proto(metrics_pb2, {"NumberDataPoint"}))
    return (
        GetMessageClass(pool.FindMessageTypeByName(TracesData.DESCRIPTOR.full_name)),
        GetMessageClass(pool.FindMessageTypeByName(MetricsData.DESCRIPTOR.full_name)),
    )


def _file_proto(module: Any, attributes_as_bytes: set[str]) -> FileDescriptorProto:
    """The .proto file of ``module`` with the attributes of the named messages as bytes."""
    file = FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(file)
    for message in file.message_type:
        if message.name in attributes_as_bytes:
            for field in message.field:
                if field.name == "attributes":
                    field.type = FieldDescriptorProto.TYPE_BYTES
                    field.ClearField("type_name")
    return file


_LEAN_TRACES, _LEAN_METRICS = _lean_messages()

_SPANS: _Signal[Span] = _Signal(
    noun="span",
    invalid_reason=deadletter.INVALID_SPAN,
    lean_message=_LEAN_TRACES,
    proto_items=_proto_spans,
    json_items=_json_spans,
    from_json=parse_traces_json,
)
_METRICS: _Signal[MetricPoint] = _Signal(
    noun="point",
    invalid_reason=deadletter.INVALID_METRIC,
    lean_message=_LEAN_METRICS,
    proto_items=_proto_points,
    json_items=_json_points,
    from_json=parse_metrics_json,
)
