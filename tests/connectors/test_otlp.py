"""revleak.connectors.otlp and otlp_json: OTLP spans and metric points from Kafka messages,
in both encodings the OpenTelemetry Collector's Kafka exporter writes."""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1.metrics_pb2 import MetricsData
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind as SdkSpanKind
from opentelemetry.trace import StatusCode

from revleak.connectors.messages import Position
from revleak.connectors.otlp import (
    MAX_MESSAGE_BYTES,
    UNKNOWN_SERVICE,
    TelemetryDecoded,
    decode_metrics,
    decode_spans,
)
from revleak.connectors.otlp_json import encode_json, parse_metrics_json, parse_traces_json
from revleak.deadletter import INVALID_METRIC, INVALID_SPAN, MALFORMED_OTLP, TOO_LARGE
from revleak.telemetry.model import MetricPoint, Span, SpanKind

AT = Position("otlp_spans", 3, 1207, line_numbered=False)
T0 = 1_772_445_600_000_000_000  # 2026-03-02T10:00:00Z in ns
TRACE = bytes(range(16))
TRACE_HEX = TRACE.hex()


def value(item: Any) -> AnyValue:
    if isinstance(item, AnyValue):
        return item
    if isinstance(item, bool):
        return AnyValue(bool_value=item)
    if isinstance(item, int):
        return AnyValue(int_value=item)
    if isinstance(item, float):
        return AnyValue(double_value=item)
    if isinstance(item, bytes):
        return AnyValue(bytes_value=item)
    return AnyValue(string_value=item)


def pairs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=value(item)) for key, item in attributes.items()]


def span(
    number: int,
    *,
    parent: int | None = None,
    name: str = "GET /cart",
    kind: int = ProtoSpan.SPAN_KIND_SERVER,
    start_ms: int = 0,
    end_ms: int = 40,
    status: int = Status.STATUS_CODE_UNSET,
    trace_id: bytes = TRACE,
    span_id: bytes | None = None,
    **attributes: Any,
) -> ProtoSpan:
    return ProtoSpan(
        trace_id=trace_id,
        span_id=number.to_bytes(8, "big") if span_id is None else span_id,
        parent_span_id=b"" if parent is None else parent.to_bytes(8, "big"),
        name=name,
        kind=kind,
        start_time_unix_nano=T0 + start_ms * 1_000_000,
        end_time_unix_nano=T0 + end_ms * 1_000_000 if end_ms >= 0 else 0,
        status=Status(code=status),
        attributes=pairs({key.replace("__", "."): item for key, item in attributes.items()}),
    )


def traces(*resources: tuple[dict[str, Any], list[ProtoSpan]]) -> TracesData:
    """One resource (attributes, spans) after the other, each with one scope."""
    data = TracesData()
    for attributes, spans in resources:
        resource_spans = data.resource_spans.add()
        resource_spans.resource.attributes.extend(pairs(attributes))
        resource_spans.scope_spans.add().spans.extend(spans)
    return data


def alike(decoded: TelemetryDecoded[Any]) -> tuple[Any, ...]:
    """What decoding a message gave, but the original bytes its dead letter keeps."""
    letters = [(letter.reason, letter.detail) for letter in decoded.dead_letters]
    return (decoded.items, letters, decoded.rejected)


def both(message: TracesData) -> list[Span]:
    """The spans of ``message``, which both encodings must give alike."""
    from_proto = decode_spans(message.SerializeToString(), AT)
    assert alike(from_proto) == alike(decode_spans(encode_json(message), AT))
    assert from_proto.dead_letters == []
    return from_proto.items


def test_both_encodings_give_the_same_spans() -> None:
    odd_values = {
        "flag": True,
        "retries": -3,
        "ratio": 0.1,
        "blob": b"\x00\xff",
        "tags": AnyValue(array_value=ArrayValue(values=[value(1), value("a"), value(2.5)])),
        "owner": AnyValue(
            kvlist_value=KeyValueList(values=pairs({"team": "cart", "oncall": False}))
        ),
        "empty": AnyValue(),
    }
    message = traces(
        (
            {"service.name": "cart", "host.name": "h1"},
            [span(1), span(2, parent=1, kind=ProtoSpan.SPAN_KIND_CLIENT, end_ms=30, **odd_values)],
        ),
        ({"service.name": "checkout"}, [span(3, kind=9, name="pay")]),
    )
    root, child, other = both(message)
    assert root == Span(
        ts=T0 // 1_000_000 + 40,
        trace_id=TRACE_HEX,
        span_id="0000000000000001",
        parent_span_id="",
        service="cart",
        name="GET /cart",
        kind=SpanKind.SERVER,
        start_ns=T0,
        end_ns=T0 + 40_000_000,
        error=False,
        attributes=(("host.name", "h1"), ("service.name", "cart")),
        partition=3,
        offset=1207,
        item=0,
    )
    assert child.parent_span_id == root.span_id
    assert child.kind is SpanKind.CLIENT
    assert dict(child.attributes) == {
        "host.name": "h1",
        "service.name": "cart",
        "flag": "true",
        "retries": "-3",
        "ratio": "0.1",
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "tags": '[1,"a",2.5]',
        "owner": '{"team":"cart","oncall":false}',
        "empty": "",
    }
    assert list(child.attributes) == sorted(child.attributes)
    assert (other.service, other.kind, other.item) == ("checkout", SpanKind.UNSPECIFIED, 2)


def test_spans_recorded_by_the_sdk() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("revleak.tests")
    with tracer.start_as_current_span("POST /checkout", kind=SdkSpanKind.SERVER) as server:
        server.set_attribute("http.response.status_code", 503)
        with tracer.start_as_current_span("charge", kind=SdkSpanKind.CLIENT) as client:
            client.set_status(StatusCode.ERROR, "card declined")
        with tracer.start_as_current_span("GET /stock") as lookup:
            lookup.set_attribute("http.response.status_code", 404)
    provider.shutdown()

    decoded = {item.name: item for item in both(encode_spans(exporter.get_finished_spans()))}
    server, client, lookup = decoded["POST /checkout"], decoded["charge"], decoded["GET /stock"]
    assert {item.service for item in decoded.values()} == {"checkout"}
    assert client.parent_span_id == lookup.parent_span_id == server.span_id
    assert server.parent_span_id == ""
    assert (server.kind, client.kind, lookup.kind) == (
        SpanKind.SERVER,
        SpanKind.CLIENT,
        SpanKind.INTERNAL,
    )
    assert (server.error, client.error, lookup.error) == (True, True, False)
    assert server.attribute("telemetry.sdk.language") == "python"
    assert server.ts == server.end_ns // 1_000_000


@pytest.mark.parametrize(
    ("status", "attributes", "error"),
    [
        (Status.STATUS_CODE_ERROR, {}, True),
        (Status.STATUS_CODE_OK, {"http.response.status_code": 200}, False),
        (Status.STATUS_CODE_UNSET, {"http.response.status_code": 500}, True),
        (Status.STATUS_CODE_UNSET, {"http.response.status_code": 499}, False),
        (Status.STATUS_CODE_UNSET, {"http.status_code": "503"}, True),
        (Status.STATUS_CODE_UNSET, {"http.status_code": "404"}, False),
        (Status.STATUS_CODE_UNSET, {"http.response.status_code": 404}, False),
        (Status.STATUS_CODE_UNSET, {"http.response.status_code": "n/a"}, False),
    ],
)
def test_a_span_is_an_error_by_its_status_or_a_server_side_http_status(
    status: int, attributes: dict[str, Any], error: bool
) -> None:
    [decoded] = both(traces(({}, [span(1, status=status, **_dotted(attributes))])))
    assert decoded.error is error


def _dotted(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key.replace(".", "__"): item for key, item in attributes.items()}


def test_span_attributes_win_over_the_resource_and_a_service_is_never_empty() -> None:
    resource = {"deployment.environment": "prod", "feature_flag.new_checkout": "off"}
    [decoded] = both(traces((resource, [span(1, feature_flag__new_checkout="on")])))
    assert decoded.service == UNKNOWN_SERVICE
    assert decoded.attributes == (
        ("deployment.environment", "prod"),
        ("feature_flag.new_checkout", "on"),
    )


def test_invalid_spans_make_one_dead_letter_and_the_rest_is_read() -> None:
    message = traces(
        (
            {"service.name": "cart"},
            [
                span(1),
                span(2, trace_id=TRACE[:15]),
                span(3, span_id=b"\x01"),
                span(4, start_ms=50, end_ms=40),
                span(5, end_ms=-1),
                span(6),
            ],
        )
    )
    for raw in (message.SerializeToString(), encode_json(message)):
        decoded = decode_spans(raw, AT)
        assert [(item.span_id[-1], item.item) for item in decoded.items] == [("1", 0), ("6", 5)]
        assert decoded.rejected == 4
        [letter] = decoded.dead_letters
        assert (letter.reason, letter.partition, letter.offset) == (INVALID_SPAN, 3, 1207)
        assert letter.detail.startswith("4 of 6 spans invalid: span 1: trace id is 15 bytes")
        for part in ("span 2: span id is 1 bytes", "span 3: ends", "span 4: no end time"):
            assert part in letter.detail
        assert letter.original_bytes() == raw


def test_a_dead_letter_lists_ten_invalid_spans_and_counts_the_rest() -> None:
    decoded = decode_spans(
        traces(({}, [span(n, end_ms=-1) for n in range(25)])).SerializeToString(), AT
    )
    [letter] = decoded.dead_letters
    assert letter.detail.endswith("span 9: no end time; and 15 more")
    assert decoded.rejected == 25


def test_proto_detection_survives_a_length_byte_that_reads_as_a_brace() -> None:
    # The first resource is 123 bytes long: the message starts "\n{".
    for size in range(1, 200):
        message = traces(({"service.name": "x" * size}, [span(1)]))
        raw = message.SerializeToString()
        if raw[1:2] == b"{":
            break
    assert raw.startswith(b"\n{")
    [decoded] = decode_spans(raw, AT).items
    assert decoded.service == "x" * size


GARBAGE = [
    b"hello, world",
    b"\x00\x01\x02garbage",
    traces(({"service.name": "cart"}, [span(1)])).SerializeToString()[:-7],
    b'{"resourceSpans": [',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex"}]}]}]}',
    b'{"resourceSpans": {"scopeSpans": []}}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
    b"[1, 2, 3]",
]


@pytest.mark.parametrize("raw", GARBAGE)
def test_what_is_not_otlp_is_one_dead_letter_with_its_bytes(raw: bytes) -> None:
    decoded = decode_spans(raw, AT)
    assert decoded.items == []
    [letter] = decoded.dead_letters
    assert letter.reason == MALFORMED_OTLP
    assert letter.detail
    assert letter.original_bytes() == raw


def test_the_json_error_says_where() -> None:
    [letter] = decode_spans(GARBAGE[4], AT).dead_letters
    assert "resourceSpans[0].scopeSpans[0].spans[0].traceId" in letter.detail


def test_empty_and_oversized_messages() -> None:
    assert decode_spans(b"", AT) == TelemetryDecoded([], [])
    assert decode_spans(b" \n", AT) == TelemetryDecoded([], [])
    assert decode_spans(b"{}", AT) == TelemetryDecoded([], [])
    [letter] = decode_spans(b"{" + b" " * MAX_MESSAGE_BYTES, AT).dead_letters
    assert letter.reason == TOO_LARGE


def test_json_as_protobuf_allows_it_is_read_too() -> None:
    """Enum names, 64-bit numbers as JSON numbers, proto field names, unknown fields."""
    raw = orjson.dumps(
        {
            "resource_spans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"string_value": "cart"}}]
                    },
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": TRACE_HEX.upper(),
                                    "spanId": "0000000000000001",
                                    "name": "GET /cart",
                                    "kind": "SPAN_KIND_SERVER",
                                    "startTimeUnixNano": T0,
                                    "endTimeUnixNano": str(T0 + 40_000_000),
                                    "status": {"code": 2},
                                    "futureField": {"anything": [1]},
                                }
                            ]
                        }
                    ],
                }
            ]
        }
    )
    [decoded] = decode_spans(raw, AT).items
    assert (decoded.trace_id, decoded.kind, decoded.error) == (TRACE_HEX, SpanKind.SERVER, True)
    assert (decoded.service, decoded.end_ns - decoded.start_ns) == ("cart", 40_000_000)


def metrics() -> MetricsData:
    data = MetricsData()
    resource_metrics = data.resource_metrics.add()
    resource_metrics.resource.attributes.extend(pairs({"service.name": "cart"}))
    scope = resource_metrics.scope_metrics.add()
    memory = scope.metrics.add(name="container.memory.usage")
    memory.gauge.data_points.add(time_unix_nano=T0, as_double=0.75, attributes=pairs({"pod": "a"}))
    requests = scope.metrics.add(name="http.server.requests")
    requests.sum.aggregation_temporality = 2  # cumulative
    requests.sum.is_monotonic = True
    requests.sum.data_points.add(time_unix_nano=T0 + 60_000_000_000, as_int=1200)
    requests.sum.data_points.add(time_unix_nano=0, as_int=1)
    requests.sum.data_points.add(time_unix_nano=T0, as_double=math.nan)
    requests.sum.data_points.add(time_unix_nano=T0, flags=1)  # no recorded value
    kills = scope.metrics.add(name="container.oom_kills")
    kills.sum.aggregation_temporality = 1  # delta
    kills.sum.data_points.add(time_unix_nano=T0, as_int=0)
    latency = scope.metrics.add(name="http.server.duration")
    latency.histogram.data_points.add(time_unix_nano=T0, count=3, sum=1.5)
    return data


def test_gauge_and_sum_points_in_both_encodings() -> None:
    message = metrics()
    from_proto = decode_metrics(message.SerializeToString(), AT)
    assert alike(from_proto) == alike(decode_metrics(encode_json(message), AT))
    memory, requests, kills = from_proto.items
    base = {"service": "cart", "partition": 3, "offset": 1207}
    assert memory == MetricPoint(
        ts=T0 // 1_000_000,
        metric="container.memory.usage",
        value=0.75,
        attributes=(("pod", "a"), ("service.name", "cart")),
        item=0,
        **base,
    )
    assert requests == MetricPoint(
        ts=T0 // 1_000_000 + 60_000,
        metric="http.server.requests",
        value=1200.0,
        attributes=(("service.name", "cart"),),
        cumulative=True,
        item=1,
        **base,
    )
    assert (kills.metric, kills.value, kills.cumulative, kills.item) == (
        "container.oom_kills",
        0.0,
        False,
        5,
    )
    [letter] = from_proto.dead_letters
    assert (letter.reason, from_proto.rejected) == (INVALID_METRIC, 2)
    assert letter.detail == "2 of 6 points invalid: point 2: no time; point 3: value is nan"


def test_metrics_that_are_not_otlp() -> None:
    [letter] = decode_metrics(b"\xff\xfe", AT).dead_letters
    assert letter.reason == MALFORMED_OTLP
    with pytest.raises(ValueError, match="not OTLP/JSON MetricsData"):
        parse_metrics_json(b'{"resourceMetrics": 7}')


# Round trips over generated messages.

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
UINT64 = st.integers(0, (1 << 64) - 1)
SCALARS = st.one_of(
    TEXT.map(lambda text: AnyValue(string_value=text)),
    st.booleans().map(lambda flag: AnyValue(bool_value=flag)),
    st.integers(-(1 << 63), (1 << 63) - 1).map(lambda number: AnyValue(int_value=number)),
    st.floats(allow_nan=False).map(lambda number: AnyValue(double_value=number)),
    st.binary(max_size=6).map(lambda blob: AnyValue(bytes_value=blob)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(
            lambda items: AnyValue(array_value=ArrayValue(values=items))
        ),
        st.lists(st.tuples(TEXT, inner), max_size=3).map(
            lambda items: AnyValue(
                kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in items])
            )
        ),
    ),
    max_leaves=6,
)
ATTRIBUTES = st.lists(st.builds(KeyValue, key=TEXT, value=VALUES), max_size=4)


@st.composite
def generated_spans(draw: st.DrawFn) -> ProtoSpan:
    generated = ProtoSpan(
        trace_id=draw(st.sampled_from([TRACE, b"", b"\x07" * 3])),
        span_id=draw(st.binary(min_size=7, max_size=8)),
        parent_span_id=draw(st.binary(max_size=8)),
        name=draw(TEXT),
        kind=draw(st.integers(0, 6)),
        start_time_unix_nano=draw(UINT64),
        end_time_unix_nano=draw(UINT64),
        attributes=draw(ATTRIBUTES),
        status=Status(code=draw(st.integers(0, 2)), message=draw(TEXT)),
    )
    for link_trace in draw(st.lists(st.binary(max_size=16), max_size=2)):
        generated.links.add(trace_id=link_trace, span_id=draw(st.binary(max_size=8)))
    return generated


GENERATED_TRACES = st.lists(
    st.tuples(ATTRIBUTES, st.lists(generated_spans(), max_size=3)), max_size=3
).map(
    lambda resources: TracesData(
        resource_spans=[
            {"resource": {"attributes": attributes}, "scope_spans": [{"spans": spans}]}
            for attributes, spans in resources
        ]
    )
)


@given(GENERATED_TRACES)
def test_json_round_trips_and_decodes_as_protobuf_does(message: TracesData) -> None:
    encoded = encode_json(message)
    assert parse_traces_json(encoded) == message
    assert alike(decode_spans(encoded, AT)) == alike(decode_spans(message.SerializeToString(), AT))
