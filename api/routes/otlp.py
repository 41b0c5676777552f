"""OTLP/HTTP: ``POST /v1/traces`` and ``POST /v1/metrics`` put what senders export on Kafka.

As OTLP/HTTP specifies: the body is an export request in binary protobuf
(``Content-Type: application/x-protobuf``) or OTLP/JSON (``application/json``), optionally
gzip-compressed (``Content-Encoding: gzip``). It is decoded to check it, then forwarded
unchanged to ``otlp_spans`` / ``otlp_metrics``, where the flows read it as they read what an
OpenTelemetry Collector writes. The answer is an export response in the request's encoding;
its partial success counts the spans (points) that are invalid and says why. Errors found in
the payload, or in reaching Kafka, are answered with a ``google.rpc.Status`` in the request's
encoding. Senders need the operator role, as for Alertmanager's webhook.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from google.protobuf.message import Message
from google.rpc.code_pb2 import INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from revleak import deadletter
from revleak.api.auth import require
from revleak.connectors.messages import Position
from revleak.connectors.otlp import (
    MAX_MESSAGE_BYTES,
    TelemetryDecoded,
    decode_metrics,
    decode_spans,
)
from revleak.connectors.otlp_forward import Encoding, ForwardError, OtlpForwarder, Signal
from revleak.connectors.otlp_json import encode_json
from revleak.remediation.model import Role

SOURCE = "otlp_http"
_RECEIVED = Position(SOURCE, partition=0, offset=0, line_numbered=False)


class OtlpSettings(Protocol):
    """What the receiver reads of the API's settings."""

    brokers: str | None
    otlp_spans_topic: str
    otlp_metrics_topic: str


class _RefusalError(Exception):
    """A request answered with an error status and a ``google.rpc.Status``."""

    def __init__(self, http_status: int, rpc_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.rpc_code = rpc_code


_creating = threading.Lock()


def otlp_forwarder(request: Request) -> OtlpForwarder | None:
    """The app's forwarder, made on first use; None when no Kafka is configured."""
    state = request.app.state
    with _creating:
        forwarder: OtlpForwarder | None = getattr(state, "otlp_forwarder", None)
        settings: OtlpSettings = state.settings
        if forwarder is None and settings.brokers:
            forwarder = state.otlp_forwarder = OtlpForwarder(
                settings.brokers,
                spans_topic=settings.otlp_spans_topic,
                metrics_topic=settings.otlp_metrics_topic,
            )
    return forwarder


def payload_encoding(request: Request) -> Encoding:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        return Encoding(media_type)
    except ValueError:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="Content-Type must be application/x-protobuf or application/json, "
            f"not {media_type or 'missing'}",
        ) from None


ForwarderDep = Annotated[OtlpForwarder | None, Depends(otlp_forwarder)]
EncodingDep = Annotated[Encoding, Depends(payload_encoding)]


@asynccontextmanager
async def _close_forwarder(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        forwarder: OtlpForwarder | None = getattr(app.state, "otlp_forwarder", None)
        if forwarder is not None:
            await run_in_threadpool(forwarder.close)
            # Its last reference: the Kafka client goes with it.
            del app.state.otlp_forwarder


router = APIRouter(
    tags=["otlp"],
    lifespan=_close_forwarder,
    # Before the body is looked at: who sends, then in which encoding.
    dependencies=[Depends(require(Role.OPERATOR))],
)


@router.post("/v1/traces")
async def export_traces(
    request: Request, encoding: EncodingDep, forwarder: ForwarderDep
) -> Response:
    """An OTLP/HTTP ``ExportTraceServiceRequest``."""
    return await _receive(request, encoding, forwarder, Signal.TRACES)


@router.post("/v1/metrics")
async def export_metrics(
    request: Request, encoding: EncodingDep, forwarder: ForwarderDep
) -> Response:
    """An OTLP/HTTP ``ExportMetricsServiceRequest``."""
    return await _receive(request, encoding, forwarder, Signal.METRICS)


async def _receive(
    request: Request, encoding: Encoding, forwarder: OtlpForwarder | None, signal: Signal
) -> Response:
    content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if content_encoding not in _DECOMPRESS:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Encoding must be gzip or identity, not {content_encoding}",
        )
    body = await request.body()
    try:
        # Reading a large payload takes a while: not on the event loop.
        answer = await run_in_threadpool(
            _accept, body, _DECOMPRESS[content_encoding], encoding, forwarder, signal
        )
    except _RefusalError as refusal:
        rpc_status = Status(code=refusal.rpc_code, message=str(refusal))
        return _encoded(rpc_status, encoding, refusal.http_status)
    return _encoded(answer, encoding, status.HTTP_200_OK)


def _accept(
    body: bytes,
    decompress: Callable[[bytes], bytes],
    encoding: Encoding,
    forwarder: OtlpForwarder | None,
    signal: Signal,
) -> Message:
    """Check the payload, forward it, and say what was refused of it."""
    payload = decompress(body)
    decoded = _DECODERS[signal](payload, _RECEIVED)
    for letter in decoded.dead_letters:
        if letter.reason == deadletter.TOO_LARGE:
            raise _RefusalError(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, RESOURCE_EXHAUSTED, letter.detail
            )
        if letter.reason == deadletter.MALFORMED_OTLP:
            raise _RefusalError(status.HTTP_400_BAD_REQUEST, INVALID_ARGUMENT, letter.detail)
    if forwarder is None:
        raise _RefusalError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "no Kafka brokers are configured (REVLEAK_BROKERS): telemetry cannot be taken in",
        )
    try:
        forwarder.forward(signal, payload, encoding)
    except ForwardError as error:
        if error.too_large:
            raise _RefusalError(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, RESOURCE_EXHAUSTED, str(error)
            ) from None
        raise _RefusalError(status.HTTP_503_SERVICE_UNAVAILABLE, UNAVAILABLE, str(error)) from None
    refused = "; ".join(letter.detail for letter in decoded.dead_letters)
    return _ANSWERS[signal](decoded.rejected, refused)


def _gunzip(body: bytes) -> bytes:
    """The decompressed body, cut one byte past the largest payload: a few kilobytes of
    gzip can hold gigabytes."""
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        payload = stream.decompress(body, MAX_MESSAGE_BYTES + 1)
    except zlib.error as error:
        raise _RefusalError(
            status.HTTP_400_BAD_REQUEST, INVALID_ARGUMENT, f"not gzip: {error}"
        ) from None
    if len(payload) <= MAX_MESSAGE_BYTES and not stream.eof:
        raise _RefusalError(
            status.HTTP_400_BAD_REQUEST, INVALID_ARGUMENT, "the gzip stream is cut short"
        )
    return payload


def _identity(body: bytes) -> bytes:
    return body


def _traces_answer(rejected: int, message: str) -> Message:
    if not rejected:
        return ExportTraceServiceResponse()
    partial = ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
    return ExportTraceServiceResponse(partial_success=partial)


def _metrics_answer(rejected: int, message: str) -> Message:
    if not rejected:
        return ExportMetricsServiceResponse()
    partial = ExportMetricsPartialSuccess(rejected_data_points=rejected, error_message=message)
    return ExportMetricsServiceResponse(partial_success=partial)


def _encoded(message: Message, encoding: Encoding, http_status: int) -> Response:
    body = encode_json(message) if encoding is Encoding.JSON else message.SerializeToString()
    return Response(body, status_code=http_status, media_type=encoding.value)


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {"gzip": _gunzip, "identity": _identity}
_DECODERS: dict[Signal, Callable[[bytes, Position], TelemetryDecoded[Any]]] = {
    Signal.TRACES: decode_spans,
    Signal.METRICS: decode_metrics,
}
_ANSWERS: dict[Signal, Callable[[int, str], Message]] = {
    Signal.TRACES: _traces_answer,
    Signal.METRICS: _metrics_answer,
}
