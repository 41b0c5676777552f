"""Received OTLP payloads onto Kafka, unchanged.

The topics and the message shape are those of the OpenTelemetry Collector's Kafka exporter:
spans on ``otlp_spans`` and metrics on ``otlp_metrics``, one export request a message, no
key, in the encoding it came in (named by a ``content-type`` header), so that the flows read
what a receiver forwarded exactly as what a Collector wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from enum import StrEnum

from confluent_kafka import KafkaError, KafkaException, Message

from revleak.connectors import kafka

SPANS_TOPIC = "otlp_spans"
METRICS_TOPIC = "otlp_metrics"
CONTENT_TYPE_HEADER = "content-type"
POLL_S = 0.1


class Signal(StrEnum):
    TRACES = "traces"
    METRICS = "metrics"


class Encoding(StrEnum):
    """An OTLP payload's encoding, as its media type."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class ForwardError(Exception):
    """A payload did not reach Kafka. ``too_large``: the producer or the broker refuses its
    size, so sending it again cannot help."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class OtlpForwarder:
    """Produces each payload and waits for the broker's acknowledgement.

    Safe to share between threads: a thread of its own serves the delivery reports, and
    each ``forward`` waits for its own. The producer is idempotent, so its own retries
    never double a payload.
    """

    def __init__(
        self,
        brokers: str,
        *,
        spans_topic: str = SPANS_TOPIC,
        metrics_topic: str = METRICS_TOPIC,
        timeout_s: float = 10.0,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self._brokers = brokers
        self._topics = {Signal.TRACES: spans_topic, Signal.METRICS: metrics_topic}
        self._timeout_s = timeout_s
        # librdkafka fails a delivery itself at this point, so a forward never waits longer.
        settings = {"message.timeout.ms": str(max(1, round(timeout_s * 1000))), **(config or {})}
        self._producer = kafka.producer(brokers, settings)
        self._closed = threading.Event()
        self._reports = threading.Thread(
            target=self._serve_reports, name="revleak-otlp-forward", daemon=True
        )
        self._reports.start()

    def forward(self, signal: Signal, payload: bytes, encoding: Encoding) -> None:
        """Put ``payload`` on the signal's topic; ForwardError when Kafka has not taken it."""
        if self._closed.is_set():
            raise ForwardError("the forwarder is closed")
        topic = self._topics[signal]
        delivered = threading.Event()
        failures: list[KafkaError] = []

        def report(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(error)
            delivered.set()

        try:
            self._producer.produce(
                topic,
                value=payload,
                headers=[(CONTENT_TYPE_HEADER, encoding.value.encode())],
                on_delivery=report,
            )
        except BufferError as error:
            raise ForwardError(f"the producer's queue for {topic} is full: {error}") from None
        except KafkaException as error:
            raise self._refused(topic, len(payload), error.args[0]) from None
        # A little past the message timeout, so that a failed delivery is reported.
        if not delivered.wait(self._timeout_s + 1.0):
            raise ForwardError(
                f"no acknowledgement from {self._brokers} for {topic} within {self._timeout_s:g} s"
            )
        if failures:
            raise self._refused(topic, len(payload), failures[0])

    def _refused(self, topic: str, size: int, error: object) -> ForwardError:
        too_large = isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE
        text = error.str() if isinstance(error, KafkaError) else str(error)
        return ForwardError(f"Kafka refused {size} bytes for {topic}: {text}", too_large=too_large)

    def flush(self, timeout_s: float) -> int:
        """Wait for what is queued to be delivered; how many messages are still queued."""
        return int(self._producer.flush(timeout_s))

    def close(self) -> None:
        """Deliver what is still queued (bounded by the timeout) and stop."""
        if self._closed.is_set():
            return
        self._producer.flush(self._timeout_s)
        self._closed.set()
        self._reports.join(timeout=self._timeout_s)

    def _serve_reports(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(POLL_S)
