"""revleak.slo.windows: sliding windows over 1-minute buckets (docs/semantics.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revleak.slo.windows import BucketSeries, WindowSums
from revleak.timefmt import MINUTE_MS


@dataclass(frozen=True)
class Event:
    time: int
    good: bool
    weight: int


def brute_force(events: list[Event], end_bucket: int, minutes: int) -> WindowSums:
    """Sum the events whose bucket lies in (end − minutes, end], from scratch."""
    inside = [e for e in events if end_bucket - minutes < e.time // MINUTE_MS <= end_bucket]
    bad = [e for e in inside if not e.good]
    return WindowSums(total=len(inside), bad=len(bad), bad_picos=sum(e.weight for e in bad))


@st.composite
def event_histories(draw: st.DrawFn, max_gap_minutes: int = 5) -> list[Event]:
    """Events in time order; gaps in ms so that several events share a bucket or a time."""
    count = draw(st.integers(min_value=0, max_value=40))
    time = draw(st.integers(min_value=0, max_value=10 * MINUTE_MS))
    events = []
    for _ in range(count):
        time += draw(
            st.one_of(
                st.just(0),
                st.integers(min_value=1, max_value=MINUTE_MS),
                st.integers(min_value=1, max_value=max_gap_minutes).map(lambda m: m * MINUTE_MS),
            )
        )
        events.append(
            Event(time, draw(st.booleans()), draw(st.integers(min_value=0, max_value=10**15)))
        )
    return events


def fill(series: BucketSeries, events: list[Event]) -> None:
    for event in events:
        series.add(event.time, good=event.good, weight_picos=event.weight)


def test_window_sums_count_good_as_total_minus_bad() -> None:
    assert WindowSums(total=5, bad=2, bad_picos=7).good == 3
    assert WindowSums() == WindowSums(0, 0, 0)


def test_a_window_is_open_at_its_start_and_closed_at_its_end() -> None:
    series = BucketSeries(retain_minutes=100)
    series.add(10 * MINUTE_MS, good=False, weight_picos=5)  # bucket 10
    series.add(12 * MINUTE_MS + 59_999, good=True, weight_picos=9)  # bucket 12
    assert series.window(12, 2) == WindowSums(total=1, bad=0, bad_picos=0)  # (10, 12]
    assert series.window(12, 3) == WindowSums(total=2, bad=1, bad_picos=5)  # (9, 12]
    assert series.window(10, 1) == WindowSums(total=1, bad=1, bad_picos=5)
    assert series.window(9, 100) == WindowSums()
    assert series.window(15, 6) == WindowSums(total=2, bad=1, bad_picos=5)  # (9, 15]
    assert series.window(15, 5) == WindowSums(total=1, bad=0, bad_picos=0)  # (10, 15]
    assert series.window(15, 3) == WindowSums()  # (12, 15]


def test_good_events_carry_no_dollars_at_risk() -> None:
    series = BucketSeries(retain_minutes=10)
    series.add(0, good=True, weight_picos=1_000)
    assert series.window(0, 1) == WindowSums(total=1, bad=0, bad_picos=0)


def test_add_says_whether_it_opened_a_new_bucket() -> None:
    series = BucketSeries(retain_minutes=10)
    assert series.add(5, good=True, weight_picos=0)
    assert not series.add(MINUTE_MS - 1, good=False, weight_picos=0)
    assert series.add(MINUTE_MS, good=True, weight_picos=0)
    assert series.nonempty_buckets() == 2


def test_an_event_in_an_earlier_bucket_is_refused() -> None:
    series = BucketSeries(retain_minutes=10)
    series.add(5 * MINUTE_MS, good=True, weight_picos=0)
    with pytest.raises(ValueError, match="time order"):
        series.add(4 * MINUTE_MS + 59_999, good=False, weight_picos=1)
    assert series.window(5, 10) == WindowSums(total=1, bad=0, bad_picos=0)


@given(
    events=event_histories(),
    ends=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=8),
    sizes=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=8),
)
def test_windows_equal_a_brute_force_sum(
    events: list[Event], ends: list[int], sizes: list[int]
) -> None:
    series = BucketSeries(retain_minutes=10**6)
    fill(series, events)
    last = events[-1].time // MINUTE_MS if events else 0
    for extra in ends:
        for minutes in sizes:
            end = last + extra
            assert series.window(end, minutes) == brute_force(events, end, minutes)


@given(
    events=event_histories(),
    probes=st.integers(min_value=0, max_value=5),
    sizes=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=5),
)
def test_windows_are_exact_after_every_add(
    events: list[Event], probes: int, sizes: list[int]
) -> None:
    series = BucketSeries(retain_minutes=10**6)
    for index, event in enumerate(events):
        series.add(event.time, good=event.good, weight_picos=event.weight)
        seen = events[: index + 1]
        for extra in range(probes):
            end = event.time // MINUTE_MS + extra
            for minutes in sizes:
                assert series.window(end, minutes) == brute_force(seen, end, minutes)


@given(
    events=event_histories(max_gap_minutes=4),
    retain=st.integers(min_value=1, max_value=6),
    data=st.data(),
)
def test_forgetting_old_buckets_keeps_windows_within_retention_exact(
    events: list[Event], retain: int, data: st.DataObject
) -> None:
    series = BucketSeries(retain_minutes=retain)
    for index, event in enumerate(events):
        series.add(event.time, good=event.good, weight_picos=event.weight)
        seen = events[: index + 1]
        end = event.time // MINUTE_MS + data.draw(st.integers(min_value=0, max_value=2 * retain))
        minutes = data.draw(st.integers(min_value=1, max_value=retain))
        assert series.window(end, minutes) == brute_force(seen, end, minutes)
    # Old buckets really are forgotten (in chunks), so memory stays bounded ...
    assert series.nonempty_buckets() <= 2 * retain
    # ... and the running totals still count everything ever added.
    everything = brute_force(events, events[-1].time // MINUTE_MS if events else 0, 10**9)
    assert series.cumulative() == (everything.total, everything.bad, everything.bad_picos)


def test_forgetting_happens_and_keeps_the_retained_window_exact() -> None:
    series = BucketSeries(retain_minutes=3)
    events = [Event(minute * MINUTE_MS, minute % 3 == 0, minute) for minute in range(100)]
    fill(series, events)
    assert series.nonempty_buckets() < 10
    for minutes in (1, 2, 3):
        assert series.window(99, minutes) == brute_force(events, 99, minutes)
        assert series.window(100, minutes) == brute_force(events, 100, minutes)
