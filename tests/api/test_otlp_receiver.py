"""OTLP/HTTP receiver: payloads checked, then forwarded unchanged to a real Kafka-protocol
broker (Tansu) and read back from it."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import orjson
import pytest
from apikit import OPERATOR, TOKENS, VIEWER
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pydantic import BaseModel

from revleak.api.config import TokenGrant
from revleak.api.routes import otlp
from revleak.connectors import kafka
from revleak.connectors.otlp_json import encode_json

PROTOBUF = {"Content-Type": "application/x-protobuf", "Authorization": OPERATOR}
JSON = {"Content-Type": "application/json", "Authorization": OPERATOR}
T0 = 1_772_445_600_000_000_000


class ReceiverSettings(BaseModel):
    """The API settings the receiver reads, and the tokens the auth dependency reads."""

    api_tokens: dict[str, TokenGrant]
    brokers: str | None = None
    otlp_spans_topic: str = "otlp_spans"
    otlp_metrics_topic: str = "otlp_metrics"


def receiver(settings: ReceiverSettings) -> FastAPI:
    app = FastAPI()
    app.state.settings = settings
    app.include_router(otlp.router)
    return app


def export_traces(*span_ids: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(
        key="service.name", value=AnyValue(string_value="checkout")
    )
    for number, span_id in enumerate(span_ids):
        resource_spans.scope_spans.add().spans.add(
            trace_id=bytes(range(16)),
            span_id=span_id,
            name="POST /checkout",
            start_time_unix_nano=T0,
            end_time_unix_nano=T0 + (number + 1) * 1_000_000,
        )
    return request


def export_metrics() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="memory")
    metric.gauge.data_points.add(
        time_unix_nano=T0, as_double=0.5, attributes=[KeyValue(key="pod", value=AnyValue())]
    )
    return request


class Received(NamedTuple):
    key: bytes | None
    content_type: bytes
    value: bytes


def read_back(brokers: str, topic: str) -> list[Received]:
    """Every message of the topic's one partition, to its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    found: list[Received] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                return found
            headers = dict(message.headers() or [])
            found.append(Received(message.key(), headers["content-type"], message.value() or b""))
    finally:
        consumer.close()
    raise AssertionError(f"no end of {topic} within 20 s")


class Running(NamedTuple):
    client: TestClient
    brokers: str
    spans_topic: str
    metrics_topic: str


@pytest.fixture
def running(kafka_brokers: str) -> Iterator[Running]:
    suffix = uuid.uuid4().hex[:8]
    spans_topic, metrics_topic = f"otlp_spans.{suffix}", f"otlp_metrics.{suffix}"
    kafka.ensure_topics(kafka_brokers, {spans_topic: 1, metrics_topic: 1})
    settings = ReceiverSettings(
        api_tokens=TOKENS,
        brokers=kafka_brokers,
        otlp_spans_topic=spans_topic,
        otlp_metrics_topic=metrics_topic,
    )
    with TestClient(receiver(settings)) as client:
        yield Running(client, kafka_brokers, spans_topic, metrics_topic)


@pytest.mark.services
def test_payloads_reach_kafka_unchanged_and_bad_ones_do_not(running: Running) -> None:
    client = running.client
    valid = export_traces(b"\x01" * 8, b"\x02" * 8)
    proto = valid.SerializeToString()
    answer = client.post("/v1/traces", content=proto, headers=PROTOBUF)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(answer.content) == ExportTraceServiceResponse()

    # One span of three has a short span id: it is refused, the message still goes on.
    partly = encode_json(export_traces(b"\x03" * 8, b"\x04", b"\x05" * 8))
    answer = client.post("/v1/traces", content=partly, headers=JSON)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    partial = answer.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert "span 1: span id is 1 bytes, not 8" in partial["errorMessage"]

    compressed = gzip.compress(proto)
    answer = client.post(
        "/v1/traces", content=compressed, headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 200

    answer = client.post("/v1/traces", content=b"\x00garbage", headers=PROTOBUF)
    assert answer.status_code == 400
    refusal = Status.FromString(answer.content)
    assert refusal.code == 3  # INVALID_ARGUMENT
    assert "not OTLP" in refusal.message
    answer = client.post("/v1/traces", content=b'{"resourceSpans": 1}', headers=JSON)
    assert answer.status_code == 400
    assert "resourceSpans" in answer.json()["message"]
    answer = client.post(
        "/v1/traces", content=b"not gzip", headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert answer.status_code == 400
    assert "gzip" in Status.FromString(answer.content).message
    answer = client.post(
        "/v1/traces", content=proto, headers={**PROTOBUF, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 415
    assert client.post("/v1/traces", content=proto).status_code == 401
    answer = client.post("/v1/traces", content=proto, headers={**PROTOBUF, "Authorization": VIEWER})
    assert answer.status_code == 403

    metrics = export_metrics().SerializeToString()
    answer = client.post(
        "/v1/metrics",
        content=gzip.compress(metrics),
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200
    assert ExportMetricsServiceResponse.FromString(answer.content) == ExportMetricsServiceResponse()
    metrics_json = encode_json(export_metrics())
    answer = client.post("/v1/metrics", content=metrics_json, headers=JSON)
    assert (answer.status_code, answer.json()) == (200, {})

    assert read_back(running.brokers, running.spans_topic) == [
        Received(None, b"application/x-protobuf", proto),
        Received(None, b"application/json", partly),
        Received(None, b"application/x-protobuf", proto),
    ]
    assert read_back(running.brokers, running.metrics_topic) == [
        Received(None, b"application/x-protobuf", metrics),
        Received(None, b"application/json", metrics_json),
    ]


def test_without_kafka_the_payload_is_checked_then_refused_as_unavailable() -> None:
    with TestClient(receiver(ReceiverSettings(api_tokens=TOKENS))) as client:
        proto = export_traces(b"\x01" * 8).SerializeToString()
        answer = client.post("/v1/traces", content=proto, headers=PROTOBUF)
        assert answer.status_code == 503
        assert Status.FromString(answer.content).code == 14  # UNAVAILABLE
        assert "REVLEAK_BROKERS" in Status.FromString(answer.content).message
        answer = client.post("/v1/traces", content=b"\x00", headers=PROTOBUF)
        assert answer.status_code == 400
        answer = client.post("/v1/metrics", content=b"{}", headers=JSON)
        assert answer.status_code == 503
        assert orjson.loads(answer.content)["code"] == 14
