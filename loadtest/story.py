"""The story told at a watchable pace, with a clock that says where in it we are.

:class:`StoryFeed` hands the events of a story file (generic change events, one a line)
to a sink in event-time order: all at once up to ``fast_until_ms`` (the quiet week before
the incident), then at ``speed`` event milliseconds per wall millisecond. Changes made
during the story, such as a CRM write-back, are injected and take their place by their own
time. After the file's last event, healthy background traffic keeps event time moving, so
windows drain and alerts can resolve.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from revleak.loadtest.nakatomi import OWNERS
from revleak.timefmt import MINUTE_MS, format_timestamp, parse_timestamp

# A background lead is touched this long after it is created: well within any lead SLA.
TOUCH_AFTER_MS = 2 * MINUTE_MS
BACKGROUND_VALUE_USD = 5_000
# Longest wall time between looks at the stop event, the speed and injected changes.
MAX_WAIT_S = 0.05

Sink = Callable[[bytes], None]


class _Change(NamedTuple):
    """A change waiting to be fed; ``rank`` orders changes of the same millisecond."""

    ts: int
    rank: int
    seq: int
    raw: bytes


STORY, INJECTED, BACKGROUND = 0, 1, 2


class StoryFeed:
    """Feeds a story file's change events to ``sink`` in event-time order, paced.

    ``now_ms`` is the story clock: the event time of the latest change fed while fast,
    then event time advancing at ``speed`` with the wall clock. It never goes backwards,
    stops at ``stop_at_ms``, and stands still once :meth:`run` has returned.
    """

    def __init__(
        self,
        events: Path,
        sink: Sink,
        *,
        speed: float,
        fast_until_ms: int | None = None,
        keep_alive_every_ms: int = 60_000,
        stop_at_ms: int | None = None,
    ) -> None:
        _check_speed(speed)
        if keep_alive_every_ms <= 0:
            raise ValueError(f"keep_alive_every_ms must be positive, not {keep_alive_every_ms}")
        self._sink = sink
        self._fast_until = fast_until_ms
        self._every = keep_alive_every_ms
        self._stop_at = stop_at_ms
        self._seq = itertools.count()
        self._story = _read_story(events, self._seq)
        if not self._story:
            raise ValueError(f"{events} holds no change events")
        self._next_story = 0
        self._pending: list[_Change] = []  # injected and background changes
        self._next_background = 0
        self._next_tick = self._story[-1].ts + keep_alive_every_ms
        self._background_create: _Change | None = None  # the next background lead, queued

        self._cond = threading.Condition()
        self._speed = speed
        self._anchor_event = self._story[0].ts
        self._anchor_wall: float | None = None  # None: the clock only moves with the changes
        self._floor = self._anchor_event

    # -- the clock -------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The current story (event) time; never goes backwards."""
        with self._cond:
            return self._now()

    def set_speed(self, speed: float) -> None:
        """Event milliseconds per wall millisecond from now on (60: a minute a second)."""
        _check_speed(speed)
        with self._cond:
            if self._anchor_wall is not None:
                self._anchor_event, self._anchor_wall = self._now(), time.monotonic()
            self._speed = speed
            self._cond.notify_all()

    def _now(self) -> int:
        value = self._anchor_event
        if self._anchor_wall is not None:
            value += int((time.monotonic() - self._anchor_wall) * 1000 * self._speed)
        if self._stop_at is not None:
            value = min(value, self._stop_at)
        self._floor = max(self._floor, value)
        return self._floor

    # -- feeding ---------------------------------------------------------------------------

    def inject(self, raw: bytes) -> None:
        """Feed a change that is not in the story, in order with it, by its own ``ts``."""
        ts = _event_time(raw)
        with self._cond:
            heapq.heappush(self._pending, _Change(ts, INJECTED, next(self._seq), raw))
            self._cond.notify_all()

    def run(self, stop: threading.Event) -> None:
        """Feed until ``stop`` is set or the clock reaches ``stop_at_ms``; once."""
        try:
            while not stop.is_set():
                with self._cond:
                    due = self._take_due()
                    if isinstance(due, float):
                        # Bounded: a stop, a new speed or an earlier change is seen soon.
                        self._cond.wait(due)
                        continue
                if due is None:
                    return
                self._sink(due.raw)
        finally:
            with self._cond:
                self._anchor_event, self._anchor_wall = self._now(), None

    # The lock is held from here on.

    def _take_due(self) -> _Change | float | None:
        """The next change if it is due, else how long to wait; None at ``stop_at_ms``."""
        change = self._peek()
        if self._stop_at is not None and change.ts > self._stop_at:
            if not self._reached(self._stop_at):
                return self._wait_for(self._stop_at)
            self._anchor_event = max(self._anchor_event, self._stop_at)
            return None
        if not self._reached(change.ts):
            return self._wait_for(change.ts)
        self._pop(change)
        if self._anchor_wall is None:
            self._anchor_event = max(self._anchor_event, change.ts)
        return change

    def _reached(self, ts: int) -> bool:
        """Whether the clock has reached ``ts``; starts the paced clock where fast ends."""
        if self._anchor_wall is None:
            if self._fast_until is not None and ts < self._fast_until:
                return True
            if self._fast_until is not None:
                self._anchor_event = max(self._anchor_event, self._fast_until)
            self._anchor_wall = time.monotonic()
        return self._now() >= ts

    def _wait_for(self, ts: int) -> float:
        return min(MAX_WAIT_S, (ts - self._now()) / self._speed / 1000)

    def _peek(self) -> _Change:
        if self._next_story < len(self._story):
            story = self._story[self._next_story]
            return min(story, self._pending[0]) if self._pending else story
        if self._background_create is None:
            # The story has ended: the next background lead waits in line like any change.
            create, touch = _background_lead(self._next_background, self._next_tick)
            self._background_create = _Change(self._next_tick, BACKGROUND, next(self._seq), create)
            heapq.heappush(self._pending, self._background_create)
            touched_at = self._next_tick + TOUCH_AFTER_MS
            heapq.heappush(self._pending, _Change(touched_at, BACKGROUND, next(self._seq), touch))
            self._next_background += 1
            self._next_tick += self._every
        return self._pending[0]

    def _pop(self, change: _Change) -> None:
        if change.rank == STORY:
            self._next_story += 1
            return
        heapq.heappop(self._pending)
        if change is self._background_create:
            self._background_create = None


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise ValueError(f"speed must be positive, not {speed}")


def _event_time(raw: bytes) -> int:
    try:
        data: Any = orjson.loads(raw)
        return parse_timestamp(data["ts"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a change event with a ts: {raw[:200]!r}") from error


def _read_story(path: Path, seq: itertools.count[int]) -> list[_Change]:
    changes = []
    with path.open("rb") as lines:
        for line in lines:
            raw = line.strip()
            if raw:
                changes.append(_Change(_event_time(raw), STORY, next(seq), raw))
    return sorted(changes)


def _background_lead(number: int, at: int) -> tuple[bytes, bytes]:
    """A healthy lead: created at ``at``, first touched ``TOUCH_AFTER_MS`` later."""
    record_id = f"L-BG-{number + 1:06d}"
    owner, region = OWNERS[number % len(OWNERS)]
    domain = f"background-{number + 1}.example"
    create = {
        "event_id": f"bg-{number + 1:06d}-create",
        "ts": format_timestamp(at),
        "object": "lead",
        "op": "create",
        "record_id": record_id,
        "fields": {
            "name": f"Background lead {number + 1}",
            "email": f"contact@{domain}",
            "domain": domain,
            "company": f"Background {number + 1}",
            "source": "web",
            "owner": owner,
            "region": region,
            "stage": "New",
            "value_usd": BACKGROUND_VALUE_USD,
            "created_at": format_timestamp(at),
        },
    }
    touched_at = format_timestamp(at + TOUCH_AFTER_MS)
    touch = {
        "event_id": f"bg-{number + 1:06d}-touch",
        "ts": touched_at,
        "object": "lead",
        "op": "update",
        "record_id": record_id,
        "fields": {"last_touch_at": touched_at},
    }
    return orjson.dumps(create), orjson.dumps(touch)
