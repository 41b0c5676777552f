"""The telemetry SLOs through the same pipeline stages as the CRM ones, with root causes.

A synthetic shop: 90 minutes of journeys (cart → checkout → payment); from minute 60 the
payment service runs version 2.5.0, which fails a third of its requests. The availability
SLO must page, the page must be explained by that version (with the version to roll back
to), and nothing may depend on the number of shards or the order of delivery.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from harness import FlowOutputs, run_pipeline
from prometheus_client import CollectorRegistry
from telemetrykit import T0, request

from revleak.connectors.metrics import PrometheusObserver
from revleak.crm.pipeline import DEAD_LETTERS, DecodedBatch, FlowConfig, build_stage
from revleak.ordering import NEVER, Tick
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog
from revleak.telemetry.model import MetricPoint, Span

SLOS = Path(__file__).resolve().parents[2] / "slos" / "telemetry.yaml"
MINUTES = 90
FAULT_AT = 60
JOURNEYS = 40


def journeys(seed: int) -> list[Span]:
    rng = random.Random(seed)
    spans: list[Span] = []
    for minute in range(MINUTES):
        version = "2.5.0" if minute >= FAULT_AT else "2.4.0"
        for j in range(JOURNEYS):
            trace = minute * JOURNEYS + j + 1
            end = T0 + minute * 60_000 + j * 1_400 + 900
            failed = version == "2.5.0" and rng.random() < 1 / 3
            host = f"pay-{rng.randrange(3)}"
            payment = request(
                end - 300,
                trace,
                service="payment",
                name="POST /pay",
                duration_ms=80 + rng.randrange(40),
                error=failed,
                parent="b" * 16,
                span="c" * 16,
                attributes=(("host.name", host), ("service.version", version)),
            )
            checkout = request(
                end - 100,
                trace,
                service="checkout",
                name="POST /checkout",
                duration_ms=200,
                error=failed,
                parent="a" * 16,
                span="b" * 16,
                attributes=(("service.version", "1.0.0"),),
            )
            cart = request(end, trace, duration_ms=300, error=failed, span="a" * 16)
            spans.extend([payment, checkout, cart])
    return spans


def batches(spans: list[Span], size: int) -> list[DecodedBatch]:
    ordered = sorted(spans, key=lambda span: span.order)
    items = tuple((span, b"") for span in ordered)
    return [
        *(DecodedBatch(0, items[start : start + size]) for start in range(0, len(items), size)),
        DecodedBatch(0, (), end=True),
    ]


@pytest.fixture(scope="module")
def catalog() -> SloCatalog:
    return load_catalog(SLOS)


@pytest.fixture(scope="module")
def outputs(catalog: SloCatalog) -> FlowOutputs:
    config = FlowConfig(catalog=catalog, shards=4, paging=True, source="otlp_spans")
    return run_pipeline(config, [batches(journeys(7), 500)])


def test_the_faulty_release_pages_on_availability_and_conversion(outputs: FlowOutputs) -> None:
    # Failed checkouts are lost sales too; latency stays fine.
    fired = [a for a in outputs.alerts if a.firing and a.severity == "page"]
    assert {alert.slo for alert in fired} == {"availability", "conversion"}
    assert min(alert.at for alert in fired) > T0 + FAULT_AT * 60_000


def test_the_page_is_explained_by_the_release_with_the_version_to_roll_back_to(
    outputs: FlowOutputs,
) -> None:
    page = next(c for c in outputs.root_causes if c.slo == "availability" and c.severity == "page")
    top = page.annotations()
    assert top["cause"] == "version"
    assert top["cause_service"] == "payment"
    assert top["cause_value"] == "2.5.0"
    assert top["previous_version"] == "2.4.0"
    assert page.bad_traces >= 10
    assert page.record()["candidates"][0]["rank"] == 1


def test_the_pages_alertmanager_holds_carry_the_root_cause(outputs: FlowOutputs) -> None:
    explained = [page for page in outputs.pages if page.firing and page.explanation]
    assert explained
    assert all(dict(page.explanation)["cause_service"] == "payment" for page in explained)
    resolved = [page for page in outputs.pages if not page.firing]
    assert resolved  # every page resolves at the end of input, still explained
    assert all(dict(page.explanation).get("cause") == "version" for page in resolved)


@pytest.mark.parametrize(("shards", "seed", "size"), [(1, None, 5000), (8, 3, 97)])
def test_alerts_and_root_causes_do_not_depend_on_shards_or_delivery_order(
    catalog: SloCatalog, outputs: FlowOutputs, shards: int, seed: int | None, size: int
) -> None:
    config = FlowConfig(catalog=catalog, shards=shards, paging=True, source="otlp_spans")
    other = run_pipeline(config, [batches(journeys(7), size)], seed=seed)
    assert [a.record() for a in other.alerts] == [a.record() for a in outputs.alerts]
    assert [c.record() for c in other.root_causes] == [c.record() for c in outputs.root_causes]


def test_late_spans_of_one_message_make_one_dead_letter_with_its_bytes_once(
    catalog: SloCatalog,
) -> None:
    config = FlowConfig(catalog=catalog, shards=2, source="otlp_spans")
    sequencer = build_stage(config, config.input_key(0))
    message = b"one OTLP message"
    spans = [
        request(T0 + 120_000, 1)._replace(offset=7),
        request(T0 + 1_000, 2)._replace(offset=7),
        request(T0 + 2_000, 3)._replace(offset=7),
    ]
    sent = sequencer.receive(
        DecodedBatch(0, tuple((span, message) for span in spans), line_numbered=False)
    )
    [letter] = [item for destination, item in sent if destination == DEAD_LETTERS]
    assert letter.reason == "late"
    assert letter.offset == 7
    assert letter.original_bytes() == message
    assert letter.detail.startswith("2 of the message's items are behind the watermark")
    assert f"span {spans[1].span_id} (cart POST /cart)" in letter.detail


def test_requests_and_root_causes_are_counted_per_service(catalog: SloCatalog) -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(registry, slos=catalog.names, sources=["otlp_spans"])
    config = FlowConfig(catalog=catalog, shards=2, paging=True, source="otlp_spans")
    run_pipeline(config, [batches(journeys(7), 2000)], observer=observer)

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return found if found is not None else 0.0

    requests = MINUTES * JOURNEYS
    total = sum(
        value("revleak_requests_total", service="payment", outcome=outcome)
        for outcome in ("ok", "error", "slow")
    )
    assert total == requests
    failed = value("revleak_requests_total", service="payment", outcome="error")
    assert 0.2 * (MINUTES - FAULT_AT) * JOURNEYS < failed < 0.5 * (MINUTES - FAULT_AT) * JOURNEYS
    assert value("revleak_requests_total", service="cart", outcome="slow") == 0
    assert (
        value("revleak_root_causes_total", slo="availability", cause="version", service="payment")
        >= 1
    )


def test_an_input_back_from_idle_behind_the_watermark_is_late_under_its_own_source(
    catalog: SloCatalog,
) -> None:
    config = FlowConfig(
        catalog=catalog,
        partitions=2,
        shards=1,
        source="otlp_spans",
        partition_sources=("otlp_spans", "otlp_metrics"),
    )
    shard = build_stage(config, config.record_keys[0])
    shard.receive(Tick("p1", 0, NEVER, (), idle=True))
    shard.receive(Tick("p0", 0, T0 + 60_000, (request(T0 + 59_000, 1),)))
    behind = MetricPoint(
        T0 + 1_000, "process.memory.usage", "inventory", 1.0, partition=1, offset=3
    )
    sent = shard.receive(Tick("p1", 1, T0 + 2_000, (behind,)))
    [letter] = [item for destination, item in sent if destination == DEAD_LETTERS]
    assert (letter.source, letter.reason, letter.partition, letter.offset) == (
        "otlp_metrics",
        "late",
        1,
        3,
    )
