"""revleak.dataflows.embedded: the CRM flow in process, fed change by change."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from examples import assert_alert_logs_match, events_path, expected_alerts, read_json_lines
from harness import default_catalog

from revleak.connectors.live_memory import InMemoryLiveState
from revleak.dataflows.embedded import ALERTS_FILE, DEAD_LETTERS_FILE, EmbeddedFlow
from revleak.loadtest.story import StoryFeed
from revleak.paging import Page, RuleKey
from revleak.timefmt import parse_timestamp

pytestmark = pytest.mark.slow

LEAD = "lead_response"
WAIT_S = 20.0


class Pages:
    """Every page state the flow hands over, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.states: list[Page] = []

    def add(self, pages: list[Page]) -> None:
        with self._lock:
            self.states.extend(pages)

    def latest(self) -> dict[RuleKey, Page]:
        with self._lock:
            return {page.key: page for page in self.states}


def change(event_id: str, ts: str, op: str, record_id: str, **fields: Any) -> bytes:
    event = {"event_id": event_id, "ts": ts, "object": "lead", "op": op, "record_id": record_id}
    return json.dumps({**event, "fields": fields}).encode()


def created(event_id: str, ts: str, record_id: str) -> bytes:
    return change(event_id, ts, "create", record_id, owner="ana", region="NA", created_at=ts)


def touched(event_id: str, ts: str, record_id: str) -> bytes:
    return change(event_id, ts, "update", record_id, last_touch_at=ts)


def wait_until(condition: Callable[[], bool], what: str, flow: EmbeddedFlow) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert flow.error is None, flow.error
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.02)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[EmbeddedFlow, Pages, InMemoryLiveState]]:
    pages = Pages()
    live = InMemoryLiveState()
    flow = EmbeddedFlow(default_catalog(), on_pages=pages.add, live=live, folder=tmp_path)
    flow.start()
    try:
        yield flow, pages, live
    finally:
        flow.close()
    assert flow.error is None


def firing_pages(pages: Pages) -> list[Page]:
    return [
        page
        for page in pages.latest().values()
        if page.firing and page.key.slo == LEAD and page.key.severity == "page"
    ]


def test_an_untouched_lead_pages_at_once_and_resolves_once_touched(
    running: tuple[EmbeddedFlow, Pages, InMemoryLiveState],
) -> None:
    flow, pages, live = running
    for raw in (
        created("a", "2026-03-02T10:00:00Z", "L1"),
        created("b", "2026-03-02T10:10:00Z", "L2"),
        touched("c", "2026-03-02T10:20:00Z", "L2"),
    ):
        flow.put(raw)
    time.sleep(0.3)
    assert pages.latest() == {}  # L1's half hour is not over

    # A change past L1's deadline: the early lane evaluates it as soon as it arrives.
    started = time.monotonic()
    flow.put(created("d", "2026-03-02T10:32:00Z", "L3"))
    wait_until(lambda: bool(firing_pages(pages)), "a firing page", flow)
    assert time.monotonic() - started < 5.0
    fired = firing_pages(pages)
    assert {page.starts_at for page in fired} == {parse_timestamp("2026-03-02T10:30:00Z")}

    # The final lane is a minute behind (allowed lateness): then L1 is in the blast radius.
    wait_until(lambda: bool(live.blast_radius(LEAD)), "L1 in the blast radius", flow)
    (entry,) = live.blast_radius(LEAD)
    assert (entry.record_id, entry.rule, entry.impact_usd) == ("L1", "SLA_BREACH_UNTOUCHED", 7500.0)
    incident = live.incident()
    assert incident is not None
    assert incident["blast_radius"][LEAD] == 1

    # L1 and L3 are touched; healthy leads keep event time moving past the windows.
    flow.put(touched("e", "2026-03-02T10:40:00Z", "L3"))
    flow.put(touched("f", "2026-03-02T10:45:00Z", "L1"))
    for minute in range(50, 80, 5):
        ts = f"2026-03-02T{10 + minute // 60}:{minute % 60:02d}:00Z"
        flow.put(created(f"g{minute}", ts, f"H{minute}"))
        flow.put(touched(f"h{minute}", ts.replace(":00Z", ":30Z"), f"H{minute}"))
    wait_until(lambda: live.blast_radius(LEAD) == [], "L1 out of the blast radius", flow)
    wait_until(lambda: not firing_pages(pages), "every page resolved", flow)
    for page in pages.latest().values():
        if page.key in {fire.key for fire in fired}:
            assert page.ends_at is not None
            assert page.ends_at <= parse_timestamp("2026-03-02T11:00:00Z")


def test_the_alert_log_and_dead_letters_are_the_replays(
    running: tuple[EmbeddedFlow, Pages, InMemoryLiveState], tmp_path: Path
) -> None:
    flow, _, _ = running
    lines = events_path("01-lead-response").read_bytes().splitlines()
    flow.put(lines[0])
    flow.put(b"{not json")
    for line in lines[1:]:
        flow.put(line)
    flow.close()
    assert flow.error is None
    alerts = read_json_lines(tmp_path / ALERTS_FILE)
    assert_alert_logs_match(alerts, expected_alerts("01-lead-response"))
    (letter,) = read_json_lines(tmp_path / DEAD_LETTERS_FILE)
    assert (letter["reason"], letter["original"]) == ("malformed_json", "{not json")
    with pytest.raises(RuntimeError, match="closed"):
        flow.put(lines[0])


def test_a_failing_pages_callback_does_not_stop_the_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = InMemoryLiveState()
    calls: list[int] = []

    def refuse(pages: list[Page]) -> None:
        calls.append(len(pages))
        raise ConnectionError("nobody listens")

    flow = EmbeddedFlow(default_catalog(), on_pages=refuse, live=live)
    flow.start()
    flow.put(created("a", "2026-03-02T10:00:00Z", "L1"))
    flow.put(created("b", "2026-03-02T10:32:00Z", "L2"))
    wait_until(lambda: bool(calls), "pages handed over", flow)
    wait_until(lambda: bool(live.blast_radius(LEAD)), "the flow still going", flow)
    flow.close()
    assert flow.error is None
    assert "pages callback failed" in caplog.text


def test_the_nakatomi_story_fed_by_the_story_clock_reaches_sev1(
    running: tuple[EmbeddedFlow, Pages, InMemoryLiveState],
) -> None:
    """The demo's wiring: the story clock feeds the flow, all at once up to the flood."""
    flow, pages, live = running
    story = Path(__file__).resolve().parents[2] / "data" / "nakatomi.jsonl"
    end = parse_timestamp("2026-03-10T23:00:00Z")
    feed = StoryFeed(story, flow.put, speed=1e9, fast_until_ms=end, stop_at_ms=end)
    feed.run(threading.Event())
    assert feed.now_ms() == end

    def sev1() -> bool:
        incident = live.incident()
        return incident is not None and incident["severity"] == "SEV1"

    wait_until(sev1, "SEV1", flow)
    assert len(live.blast_radius(LEAD, None)) > 50
    # The flood's pages fired that evening (and the short windows have drained since).
    paged = {page.key for page in pages.states if page.firing and page.key.severity == "page"}
    assert {key.slo for key in paged} >= {LEAD}
