"""Pages: early evaluation, correction to the final alert log (docs/semantics.md §4)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from examples import EXAMPLES, events_path
from harness import decode_batches, default_catalog, run_pipeline

from revleak.crm.pipeline import DecodedBatch, FlowConfig
from revleak.loadtest.crm_stream import generate
from revleak.observe import NullObserver
from revleak.paging import EARLY, FINAL, AlertBook, PagerFeed, RuleKey
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import BurnKind

HOUR = 3_600_000
DEADLINE = 1_772_447_400_000  # 2026-03-02T10:30:00Z


def transition(at: int, *, firing: bool, slo: str = "lead_response") -> AlertTransition:
    return AlertTransition(
        slo=slo,
        severity="page",
        kind=BurnKind.COUNT,
        long_ms=HOUR,
        short_ms=300_000,
        firing=firing,
        at=at,
        burn_long=20.0,
        burn_short=30.0,
        budget_remaining=0.5,
        at_risk_picos=0,
        blast_radius=3,
    )


def early(*transitions: AlertTransition, watermark: int | None = None) -> PagerFeed:
    """The early lane's feed; its watermark is just past its newest transition by default."""
    if watermark is None:
        watermark = max(t.at for t in transitions) + 1
    return PagerFeed(EARLY, 0, transitions, watermark)


def final(*transitions: AlertTransition, watermark: int) -> PagerFeed:
    return PagerFeed(FINAL, 0, transitions, watermark)


def test_an_early_fire_pages_at_once_and_the_log_confirming_it_changes_nothing() -> None:
    book = AlertBook(default_catalog())
    [page] = book.receive(early(transition(1_000, firing=True)))
    assert page.firing
    assert page.starts_at == 1_000
    assert page.labels() == {
        "alertname": "SLOBurnRate",
        "slo": "lead_response",
        "severity": "page",
        "kind": "count",
        "long_window": "1h",
        "short_window": "5m",
        "service": "lead",
    }
    assert book.receive(final(transition(1_000, firing=True), watermark=2_000)) == []
    [resolved] = book.receive(early(transition(5_000, firing=False)))
    assert resolved.ends_at == 5_000
    assert resolved.starts_at == 1_000
    assert book.receive(final(transition(5_000, firing=False), watermark=9_000)) == []
    assert book.corrections == 0


def test_an_early_fire_the_log_never_makes_is_resolved_when_the_log_gets_there() -> None:
    book = AlertBook(default_catalog())
    book.receive(early(transition(1_000, firing=True), watermark=2_000))
    assert book.receive(final(watermark=999)) == []  # the log has not reached it yet
    [correction] = book.receive(final(watermark=1_500))
    assert not correction.firing
    assert correction.ends_at == 1_500
    assert book.corrections == 1
    # The early lane resolving later is old news: nothing more is sent.
    assert book.receive(early(transition(3_000, firing=False), watermark=3_001)) == []
    assert book.receive(final(watermark=4_000)) == []
    assert book.corrections == 1


def test_a_fire_only_the_log_sees_is_sent_late_and_counted() -> None:
    book = AlertBook(default_catalog())
    book.receive(early(watermark=3_000))  # evaluated past 2 000 without firing
    [late] = book.receive(final(transition(2_000, firing=True), watermark=2_500))
    assert late.firing
    assert late.starts_at == 2_000
    assert book.corrections == 1
    # The resolve brings Alertmanager back to what both evaluations say: no correction.
    [resolved] = book.receive(final(transition(6_000, firing=False), watermark=6_500))
    assert resolved.ends_at == 6_000
    assert book.corrections == 1


def test_when_the_early_lane_is_behind_the_log_leads_without_a_correction() -> None:
    book = AlertBook(default_catalog())
    book.receive(early(watermark=500))
    [fired] = book.receive(final(transition(2_000, firing=True), watermark=2_500))
    assert fired.starts_at == 2_000
    # The early lane gets there too and agrees: nothing changes.
    assert book.receive(early(transition(2_000, firing=True))) == []
    assert book.corrections == 0


def test_once_both_agree_again_the_early_lane_leads() -> None:
    book = AlertBook(default_catalog())
    book.receive(early(watermark=2_600))
    book.receive(final(transition(2_000, firing=True), watermark=2_500))  # late fire
    book.receive(early(transition(3_000, firing=True)))  # the early lane fires too
    assert book.receive(final(watermark=3_500)) == []  # both firing at 3 500
    [resolved] = book.receive(early(transition(8_000, firing=False)))
    assert resolved.ends_at == 8_000
    assert book.corrections == 1


def test_without_an_early_lane_pages_follow_the_log_and_nothing_is_a_correction() -> None:
    book = AlertBook(default_catalog(), early_lane=False)
    [fired] = book.receive(final(transition(2_000, firing=True), watermark=2_500))
    [resolved] = book.receive(final(transition(6_000, firing=False), watermark=6_500))
    assert (fired.firing, resolved.firing) == (True, False)
    assert book.corrections == 0


def paged_config(*, early_pages: bool) -> FlowConfig:
    return FlowConfig(catalog=default_catalog(), shards=4, paging=True, early_pages=early_pages)


def fired_rules(alerts: list[AlertTransition]) -> set[RuleKey]:
    return {
        RuleKey(a.slo, a.kind.value, a.severity, a.long_ms, a.short_ms)
        for a in alerts
        if a.firing
    }


@pytest.mark.parametrize("name", EXAMPLES)
def test_in_order_input_pages_exactly_what_the_log_fires_with_no_correction(name: str) -> None:
    lines = events_path(name).read_bytes().splitlines()
    config = paged_config(early_pages=True)
    outputs = run_pipeline(config, [decode_batches(lines)], seed=7)
    plain = run_pipeline(replace(config, paging=False, early_pages=False), [decode_batches(lines)])
    assert [a.record() for a in outputs.alerts] == [a.record() for a in plain.alerts]
    fires = [page.key for page in outputs.pages if page.firing]
    assert set(fires) == fired_rules(outputs.alerts)
    assert all(not page.firing for page in _latest(outputs.pages).values())


def test_out_of_order_input_is_corrected_to_the_final_log() -> None:
    # A busy day where 5 % of the updates arrive out of order, within the allowed lateness.
    lines = list(generate(records=400, events=4_000, days=1.0, seed=5, out_of_order=0.05))
    observer = CountingObserver()
    early = run_pipeline(
        paged_config(early_pages=True), [decode_batches(lines, batch_size=7)], seed=11,
        observer=observer,
    )  # fmt: skip
    log_only = run_pipeline(paged_config(early_pages=False), [decode_batches(lines)])
    assert [a.record() for a in early.alerts] == [a.record() for a in log_only.alerts]
    assert fired_rules(early.alerts)
    assert fired_rules(early.alerts) <= {page.key for page in early.pages if page.firing}
    assert all(not page.firing for page in _latest(early.pages).values())
    # Pages never lag the log: every rule the log fires was paged no later than the log says.
    first_page = {}
    for page in early.pages:
        if page.firing:
            first_page.setdefault(page.key, page.starts_at)
    for alert in early.alerts:
        key = RuleKey(alert.slo, alert.kind.value, alert.severity, alert.long_ms, alert.short_ms)
        if alert.firing:
            assert first_page[key] <= alert.at or observer.corrections


def test_a_touch_arriving_after_a_later_event_pages_early_then_is_corrected() -> None:
    """The lead is touched 10 s before its deadline, but that touch arrives after an event
    30 s past the deadline: on arrival the lead looks breached and the rule fires; the
    log (60 s of allowed lateness) counts the touch in time and never fires."""
    lines = [
        b'{"event_id":"a","ts":"2026-03-02T10:00:00Z","object":"lead","op":"create",'
        b'"record_id":"L1","fields":{"owner":"ana","region":"NA",'
        b'"created_at":"2026-03-02T10:00:00Z"}}',
        b'{"event_id":"b","ts":"2026-03-02T10:30:30Z","object":"lead","op":"create",'
        b'"record_id":"L2","fields":{"owner":"ana","region":"NA",'
        b'"created_at":"2026-03-02T10:30:30Z"}}',
        b'{"event_id":"c","ts":"2026-03-02T10:29:50Z","object":"lead","op":"update",'
        b'"record_id":"L1","fields":{"last_touch_at":"2026-03-02T10:29:50Z"}}',
        b'{"event_id":"d","ts":"2026-03-02T10:40:00Z","object":"lead","op":"update",'
        b'"record_id":"L2","fields":{"last_touch_at":"2026-03-02T10:40:00Z"}}',
    ]
    observer = CountingObserver()
    outputs = run_pipeline(
        paged_config(early_pages=True), [decode_batches(lines, batch_size=1)],
        observer=observer,
    )  # fmt: skip
    lead_pages = [page for page in outputs.pages if page.key.slo == "lead_response"]
    early_fires = [page for page in lead_pages if page.firing]
    assert early_fires, "the early lane pages on what has arrived"
    assert all(page.starts_at == DEADLINE for page in early_fires)
    assert not any(alert.firing and alert.slo == "lead_response" for alert in outputs.alerts)
    assert all(not page.firing for page in _latest(lead_pages).values())
    # Rules whose short window empties before the log gets there resolve on their own;
    # the others are resolved by a correction.
    assert 0 < observer.corrections <= len(early_fires)


class CountingObserver(NullObserver):
    def __init__(self) -> None:
        self.corrections = 0

    def alert_corrections(self, count: int) -> None:
        self.corrections += count


def _latest(pages: list) -> dict[RuleKey, object]:
    latest = {}
    for page in pages:
        latest[page.key] = page
    return latest


def test_the_early_lane_keeps_every_event_of_a_busy_millisecond() -> None:
    """Seven clean changes per millisecond: none may look late to the early lane (a dropped
    create would make its record's updates look ownerless and page falsely)."""
    lines = []
    for index in range(700):
        ts = f"2026-03-02T10:00:00.{index // 7:03d}Z"
        record = f"L{index // 2}"
        fields = (
            f'{{"owner":"ana","region":"NA","domain":"d{index}.example","created_at":"{ts}"}}'
            if index % 2 == 0
            else f'{{"last_touch_at":"{ts}"}}'  # a touch: only what changed
        )
        op = "create" if index % 2 == 0 else "update"
        lines.append(
            (
                f'{{"event_id":"e{index}","ts":"{ts}","object":"lead","op":"{op}",'
                f'"record_id":"{record}","fields":{fields}}}'
            ).encode()
        )
    observer = CountingObserver()
    outputs = run_pipeline(
        paged_config(early_pages=True), [decode_batches(lines, batch_size=50)], observer=observer
    )
    assert outputs.dead_letters == []
    assert [page for page in outputs.pages if page.key.slo == "data_quality"] == []
    assert observer.corrections == 0


def test_a_caught_up_partition_lets_the_early_lane_page_on_its_newest_event() -> None:
    ownerless = (
        b'{"event_id":"a","ts":"2026-03-02T10:00:00Z","object":"lead","op":"create",'
        b'"record_id":"L1","fields":{"region":"NA","created_at":"2026-03-02T10:00:00Z"}}'
    )
    [batch, _end] = decode_batches([ownerless])
    config = paged_config(early_pages=True)
    waiting = run_pipeline(config, [[batch]])
    assert waiting.pages == []  # another event at that millisecond could still come
    caught_up = run_pipeline(config, [[batch, DecodedBatch(0, (), caught_up=True)]])
    assert {page.key.slo for page in caught_up.pages if page.firing} == {"data_quality"}
    assert caught_up.alerts == []  # the log still waits for the allowed lateness


def test_a_change_arriving_after_its_millisecond_was_evaluated_still_counts_early() -> None:
    ts = "2026-03-02T10:00:00Z"
    create = (
        f'{{"event_id":"a","ts":"{ts}","object":"lead","op":"create","record_id":"L1",'
        f'"fields":{{"owner":"ana","region":"NA","created_at":"{ts}"}}}}'
    ).encode()
    ownerless = (
        f'{{"event_id":"b","ts":"{ts}","object":"lead","op":"create","record_id":"L2",'
        f'"fields":{{"region":"NA","created_at":"{ts}"}}}}'
    ).encode()
    [first, _] = decode_batches([create])
    [second, _] = decode_batches([create, ownerless])
    straggler = DecodedBatch(0, second.items[1:])
    caught_up = DecodedBatch(0, (), caught_up=True)
    feed = [first, caught_up, straggler, caught_up]
    outputs = run_pipeline(paged_config(early_pages=True), [feed])
    assert {page.key.slo for page in outputs.pages if page.firing} == {"data_quality"}
