"""revleak.loadtest.story: the story fed in time order at a chosen pace, and its clock."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from revleak.connectors.generic_json import decode_change
from revleak.crm.events import ChangeEvent
from revleak.loadtest.story import TOUCH_AFTER_MS, StoryFeed
from revleak.timefmt import MINUTE_MS, format_timestamp, parse_timestamp

T = parse_timestamp("2026-03-02T09:00:00Z")
HOURS = 60 * MINUTE_MS


def event(event_id: str, at: int, record_id: str = "L1") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ts": format_timestamp(at),
        "object": "lead",
        "op": "create" if event_id.endswith("c") else "update",
        "record_id": record_id,
        "fields": {"owner": "ana", "region": "NA", "created_at": format_timestamp(at)},
    }


def ignore(raw: bytes) -> None:
    """A sink for tests that only watch the clock."""


def story_file(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    path = tmp_path / "story.jsonl"
    path.write_text("".join(json.dumps(one) + "\n" for one in events) + "\n")
    return path


class Recorder:
    """The sink: what was fed, when (wall) and at what story time."""

    def __init__(self) -> None:
        self.feed: StoryFeed | None = None
        self.fed: list[tuple[dict[str, Any], float, int]] = []

    def __call__(self, raw: bytes) -> None:
        assert self.feed is not None
        self.fed.append((json.loads(raw), time.monotonic(), self.feed.now_ms()))

    @property
    def ids(self) -> list[str]:
        return [one["event_id"] for one, _, _ in self.fed]

    @property
    def times(self) -> list[int]:
        return [parse_timestamp(one["ts"]) for one, _, _ in self.fed]


def run_feed(path: Path, **options: Any) -> tuple[StoryFeed, Recorder, float]:
    recorder = Recorder()
    feed = StoryFeed(path, recorder, **options)
    recorder.feed = feed
    started = time.monotonic()
    feed.run(threading.Event())
    return feed, recorder, time.monotonic() - started


def test_story_then_background_in_time_order_deterministic_and_bounded(tmp_path: Path) -> None:
    # Out of order in the file on purpose: the feed sorts by event time.
    path = story_file(
        tmp_path,
        [event("s2c", T + 20 * MINUTE_MS, "L2"), event("s1c", T), event("s3u", T + 25 * MINUTE_MS)],
    )
    stop_at = T + 25 * MINUTE_MS + 33 * MINUTE_MS
    options = {"speed": 600_000.0, "keep_alive_every_ms": 10 * MINUTE_MS, "stop_at_ms": stop_at}
    feed, first, seconds = run_feed(path, **options)
    assert seconds < 5.0
    assert first.times == sorted(first.times)
    assert first.ids == [
        "s1c", "s2c", "s3u",
        "bg-000001-create", "bg-000001-touch",
        "bg-000002-create", "bg-000002-touch",
        "bg-000003-create", "bg-000003-touch",
    ]  # fmt: skip
    background = first.times[3:]
    last = T + 25 * MINUTE_MS
    assert background == [
        last + 10 * MINUTE_MS, last + 10 * MINUTE_MS + TOUCH_AFTER_MS,
        last + 20 * MINUTE_MS, last + 20 * MINUTE_MS + TOUCH_AFTER_MS,
        last + 30 * MINUTE_MS, last + 30 * MINUTE_MS + TOUCH_AFTER_MS,
    ]  # fmt: skip
    assert feed.now_ms() == stop_at
    # Nothing is fed before its time on the story clock.
    assert all(
        story_time >= ts for (_, _, story_time), ts in zip(first.fed, first.times, strict=True)
    )

    _, second, _ = run_feed(path, **options)
    assert [one for one, _, _ in second.fed] == [one for one, _, _ in first.fed]


def test_background_leads_are_healthy_change_events(tmp_path: Path) -> None:
    path = story_file(tmp_path, [event("s1c", T)])
    _, fed, _ = run_feed(
        path, speed=1e7, keep_alive_every_ms=MINUTE_MS, stop_at_ms=T + 5 * MINUTE_MS
    )
    decoded = [
        decode_change(json.dumps(one).encode(), partition=0, offset=n, source="crm")
        for n, (one, _, _) in enumerate(fed.fed)
    ]
    assert all(isinstance(change, ChangeEvent) for change in decoded)
    background = [one for one, _, _ in fed.fed[1:]]
    created = {one["record_id"]: one for one in background if one["op"] == "create"}
    assert len(created) == 5
    assert len({one["fields"]["domain"] for one in created.values()}) == 5  # no duplicates
    touches = [one for one in background if one["op"] == "update"]
    for touch in touches:
        made = parse_timestamp(created[touch["record_id"]]["ts"])
        assert parse_timestamp(touch["fields"]["last_touch_at"]) - made == TOUCH_AFTER_MS


def test_fast_until_then_paced_by_speed(tmp_path: Path) -> None:
    quiet_week = [event(f"q{n}c", T + n * MINUTE_MS, f"Q{n}") for n in range(50)]
    flood = [event(f"f{n}c", T + HOURS + n * 10 * MINUTE_MS, f"F{n}") for n in range(4)]
    path = story_file(tmp_path, quiet_week + flood)
    # 10 event minutes take 100 ms of wall time.
    _, fed, seconds = run_feed(
        path,
        speed=6_000.0,
        fast_until_ms=T + HOURS,
        stop_at_ms=T + HOURS + 30 * MINUTE_MS,
    )
    walls = [wall for _, wall, _ in fed.fed]
    assert len(walls) == 54
    assert walls[49] - walls[0] < 0.5  # the quiet week all at once
    # The paced clock starts after the quiet week: no flood event comes before its time,
    # nor (allowing for a busy machine) long after it.
    for index, due_s in zip(range(50, 54), (0.0, 0.1, 0.2, 0.3), strict=True):
        assert due_s <= walls[index] - walls[49] < due_s + 1.0, (index, walls[index] - walls[49])
    assert 0.3 <= seconds < 3.0


def test_the_clock_never_goes_backwards_and_a_new_speed_keeps_it_continuous(
    tmp_path: Path,
) -> None:
    path = story_file(tmp_path, [event("s1c", T), event("s2c", T + 24 * HOURS, "L2")])
    feed = StoryFeed(path, ignore, speed=60_000.0)
    stop = threading.Event()
    runner = threading.Thread(target=feed.run, args=(stop,))
    runner.start()
    readings: list[int] = []
    try:
        for _ in range(20):
            readings.append(feed.now_ms())
            time.sleep(0.005)
        before = feed.now_ms()
        feed.set_speed(60.0)
        after = feed.now_ms()
        assert 0 <= after - before < 60_000 * 0.5  # no jump: continuous through the change
        time.sleep(0.1)
        slow = feed.now_ms() - after
        assert slow < 60 * 2_000  # a minute a second now, not 1000 minutes
        readings.append(feed.now_ms())
    finally:
        stop.set()
        runner.join(2)
    assert not runner.is_alive()
    assert readings == sorted(readings)
    assert readings[-1] > T
    frozen = feed.now_ms()
    time.sleep(0.05)
    assert feed.now_ms() == frozen  # a stopped feed's clock stands still
    with pytest.raises(ValueError, match="positive"):
        feed.set_speed(0)


def test_injected_changes_take_their_place_by_time(tmp_path: Path) -> None:
    path = story_file(tmp_path, [event("s1c", T), event("s2c", T + 10 * MINUTE_MS, "L2")])
    recorder = Recorder()
    feed = StoryFeed(path, recorder, speed=60_000.0, stop_at_ms=T + 10 * MINUTE_MS + 30 * 1000)
    recorder.feed = feed
    feed.inject(json.dumps(event("w1u", T + 5 * MINUTE_MS)).encode())
    feed.inject(json.dumps(event("w0u", T - MINUTE_MS)).encode())  # already past: at once
    feed.run(threading.Event())
    assert recorder.ids == ["w0u", "s1c", "w1u", "s2c"]
    with pytest.raises(ValueError, match="ts"):
        feed.inject(b'{"no": "time"}')


def test_a_stop_ends_a_long_wait_at_once(tmp_path: Path) -> None:
    path = story_file(tmp_path, [event("s1c", T), event("s2c", T + 24 * HOURS, "L2")])
    recorder = Recorder()
    feed = StoryFeed(path, recorder, speed=1.0)
    recorder.feed = feed
    stop = threading.Event()
    runner = threading.Thread(target=feed.run, args=(stop,))
    runner.start()
    time.sleep(0.2)
    started = time.monotonic()
    stop.set()
    runner.join(2)
    assert not runner.is_alive()
    assert time.monotonic() - started < 1.0
    assert recorder.ids == ["s1c"]


def test_a_story_needs_events_and_a_positive_speed(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no change events"):
        StoryFeed(empty, ignore, speed=1.0)
    with pytest.raises(ValueError, match="positive"):
        StoryFeed(story_file(tmp_path, [event("s1c", T)]), ignore, speed=0.0)
