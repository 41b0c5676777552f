"""revleak.ordering: event-time order across parallel senders, whatever the delivery order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revleak.ordering import NEVER, OrderedMerge, OrderViolationError, Tick, TickWriter
from revleak.timefmt import END_OF_TIME_MS

Item = tuple[int, str, int]  # (time, sender, index): unique, ordered by time first


def merge_of(senders: list[str]) -> OrderedMerge[Item]:
    return OrderedMerge(senders, time_of=lambda item: item[0], order_of=lambda item: item)


def deliver(merge: OrderedMerge[Item], ticks: list[Tick[Item]]) -> list[tuple[list[Item], int]]:
    releases = []
    for tick in ticks:
        merge.receive(tick)
        released = merge.release()
        if released is not None:
            releases.append(released)
    return releases


@st.composite
def tick_streams(draw: st.DrawFn) -> dict[str, list[Tick[Item]]]:
    """Per sender, ticks in sequence: watermarks never fall, items never precede the sender's
    previous watermark, and the last tick ends the input."""
    senders = draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=4, unique=True))
    streams: dict[str, list[Tick[Item]]] = {}
    for sender in senders:
        watermark = draw(st.integers(min_value=0, max_value=50))
        ticks: list[Tick[Item]] = []
        count = draw(st.integers(min_value=0, max_value=6))
        for seq in range(count + 1):
            times = draw(
                st.lists(st.integers(min_value=watermark, max_value=watermark + 40), max_size=4)
            )
            items = tuple((time, sender, seq * 10 + i) for i, time in enumerate(times))
            if seq == count:
                watermark = END_OF_TIME_MS
            else:
                watermark += draw(st.integers(min_value=0, max_value=30))
            ticks.append(Tick(sender, seq, watermark, items))
        streams[sender] = ticks
    return streams


def check_releases(releases: list[tuple[list[Item], int]]) -> list[Item]:
    previous = NEVER
    released: list[Item] = []
    for items, watermark in releases:
        assert watermark > previous
        assert items == sorted(items)
        assert all(previous <= item[0] < watermark for item in items)
        previous = watermark
        released += items
    return released


@given(streams=tick_streams(), seed=st.integers(min_value=0, max_value=2**32))
def test_any_delivery_order_releases_every_item_once_in_order(
    streams: dict[str, list[Tick[Item]]], seed: int
) -> None:
    rng = random.Random(seed)
    everything = sorted(item for ticks in streams.values() for tick in ticks for item in tick.items)

    # In sequence per sender, senders interleaved at random.
    queues = [list(ticks) for ticks in streams.values()]
    in_sequence: list[Tick[Item]] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        in_sequence.append(queue.pop(0))
    # Any permutation at all, ticks of one sender included.
    shuffled = [tick for ticks in streams.values() for tick in ticks]
    rng.shuffle(shuffled)

    outcomes = []
    for order in (in_sequence, shuffled):
        merge = merge_of(list(streams))
        releases = deliver(merge, order)
        outcomes.append(check_releases(releases))
        assert merge.watermark >= END_OF_TIME_MS
        assert merge.pending == 0
        assert releases[-1][1] == END_OF_TIME_MS
    assert outcomes[0] == outcomes[1] == everything


@given(streams=tick_streams(), seed=st.integers(min_value=0, max_value=2**32))
def test_the_released_watermark_is_the_slowest_senders_promise(
    streams: dict[str, list[Tick[Item]]], seed: int
) -> None:
    ticks = [tick for sender_ticks in streams.values() for tick in sender_ticks]
    random.Random(seed).shuffle(ticks)
    merge = merge_of(list(streams))
    delivered: set[tuple[str, int]] = set()
    for tick in ticks:
        merge.receive(tick)
        delivered.add((tick.sender, tick.seq))
        promises = []
        for sender, sender_ticks in streams.items():
            # Only the unbroken run of ticks from seq 0 counts: a later tick waits its turn.
            run = 0
            while (sender, run) in delivered:
                run += 1
            promises.append(sender_ticks[run - 1].watermark if run else NEVER)
        released = merge.release()
        if released is not None:
            assert released[1] == min(promises)
        else:
            assert merge.watermark >= min(promises)


def test_items_are_held_until_every_sender_has_passed_them() -> None:
    merge = merge_of(["a", "b"])
    merge.receive(Tick("a", 0, 100, ((50, "a", 0), (10, "a", 1))))
    assert merge.release() is None  # b has promised nothing yet
    merge.receive(Tick("b", 0, 20, ((30, "b", 0), (15, "b", 1))))
    assert merge.release() == ([(10, "a", 1), (15, "b", 1)], 20)
    assert merge.pending == 2
    merge.receive(Tick("b", 1, 50, ()))
    assert merge.release() == ([(30, "b", 0)], 50)  # 50 itself is not below the watermark
    assert merge.release() is None
    merge.receive(Tick("b", 2, END_OF_TIME_MS, ()))
    assert merge.release() == ([(50, "a", 0)], 100)
    assert merge.watermark < END_OF_TIME_MS
    merge.receive(Tick("a", 1, END_OF_TIME_MS, ()))
    assert merge.release() == ([], END_OF_TIME_MS)
    assert merge.watermark >= END_OF_TIME_MS


def test_a_tick_ahead_of_its_sequence_waits_for_the_missing_one() -> None:
    merge = merge_of(["a"])
    merge.receive(Tick("a", 1, 200, ((150, "a", 1),)))
    assert merge.release() is None
    merge.receive(Tick("a", 0, 100, ((50, "a", 0),)))
    assert merge.release() == ([(50, "a", 0), (150, "a", 1)], 200)


def test_an_item_behind_the_released_watermark_is_an_order_violation() -> None:
    merge = merge_of(["a", "b"])
    merge.receive(Tick("a", 0, 100, ()))
    merge.receive(Tick("b", 0, 100, ()))
    assert merge.release() == ([], 100)
    merge.receive(Tick("a", 1, 150, ((100, "a", 0),)))  # at the watermark: fine
    with pytest.raises(OrderViolationError, match="behind watermark 100"):
        merge.receive(Tick("b", 1, 150, ((99, "b", 0),)))


def test_a_tick_from_an_unknown_sender_is_refused() -> None:
    merge = merge_of(["a"])
    with pytest.raises(ValueError, match="unexpected sender 'z'"):
        merge.receive(Tick("z", 0, 1, ()))


def test_a_merge_needs_a_sender() -> None:
    with pytest.raises(ValueError, match="at least one sender"):
        merge_of([])


def test_a_watermark_never_moves_back() -> None:
    merge = merge_of(["a"])
    merge.receive(Tick("a", 0, 100, ()))
    assert merge.release() == ([], 100)
    merge.receive(Tick("a", 1, 40, ((120, "a", 0),)))
    assert merge.release() is None
    assert merge.watermark == 100


# -- TickWriter -----------------------------------------------------------------------------


def test_a_moving_watermark_is_sent_to_every_destination() -> None:
    writer: TickWriter[int] = TickWriter("s", ["x", "y"])
    assert writer.write(10, {}) == [("x", Tick("s", 0, 10)), ("y", Tick("s", 0, 10))]
    assert writer.write(20, {"y": [5]}) == [("x", Tick("s", 1, 20)), ("y", Tick("s", 1, 20, (5,)))]


def test_a_still_watermark_is_sent_only_where_items_wait() -> None:
    writer: TickWriter[int] = TickWriter("s", ["x", "y"])
    writer.write(10, {})
    assert writer.write(10, {}) == []
    assert writer.write(10, {"y": [1, 2], "x": []}) == [("y", Tick("s", 1, 10, (1, 2)))]
    assert writer.write(5, {"x": [3]}) == [("x", Tick("s", 1, 5, (3,)))]
    assert writer.write(11, {}) == [("x", Tick("s", 2, 11)), ("y", Tick("s", 2, 11))]


def test_items_for_an_unknown_destination_are_refused() -> None:
    writer: TickWriter[int] = TickWriter("s", ["x"])
    with pytest.raises(ValueError, match=r"unknown destinations \['z'\]"):
        writer.write(10, {"z": [1]})


@given(
    batches=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5),
            st.lists(st.tuples(st.sampled_from("xy"), st.integers(0, 30)), max_size=5),
        ),
        max_size=8,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_writer_and_a_merge_keep_order_through_any_shuffle(
    batches: list[tuple[int, list[tuple[str, int]]]], seed: int
) -> None:
    """Items written with rising watermarks arrive in order at each destination."""
    writer: TickWriter[Item] = TickWriter("s", ["x", "y"])
    sent: list[tuple[object, Tick[Item]]] = []
    watermark = 0
    written: dict[str, list[Item]] = {"x": [], "y": []}
    for index, (step, items) in enumerate(batches):
        by_destination: dict[object, list[Item]] = {}
        for position, (destination, offset) in enumerate(items):
            item = (watermark + offset, "s", index * 10 + position)
            by_destination.setdefault(destination, []).append(item)
            written[destination].append(item)
        watermark += step
        sent += writer.write(watermark, by_destination)
    sent += writer.write(END_OF_TIME_MS, {})
    random.Random(seed).shuffle(sent)
    for destination in ("x", "y"):
        merge = merge_of(["s"])
        ticks = [tick for to, tick in sent if to == destination]
        released = check_releases(deliver(merge, ticks))
        assert released == sorted(written[destination])
        assert merge.watermark >= END_OF_TIME_MS


def test_a_refused_write_uses_up_no_sequence_number() -> None:
    writer: TickWriter[int] = TickWriter("s", ["x"])
    with pytest.raises(ValueError, match="unknown destinations"):
        writer.write(10, {"x": [1], "z": [2]})
    assert writer.write(10, {"x": [1]}) == [("x", Tick("s", 0, 10, (1,)))]


def test_an_idle_sender_stops_holding_the_watermark_back() -> None:
    merge = merge_of(["a", "b"])
    merge.receive(Tick("a", 0, 100, ((50, "a", 0),)))
    merge.receive(Tick("b", 0, 20, ((10, "b", 0),)))
    assert merge.release() == ([(10, "b", 0)], 20)
    merge.receive(Tick("b", 1, 20, (), idle=True))
    assert merge.release() == ([(50, "a", 0)], 100)
    assert merge.take_late() == []


def test_every_sender_idle_releases_what_they_promised() -> None:
    merge = merge_of(["a", "b"])
    merge.receive(Tick("a", 0, 100, ((50, "a", 0),), idle=True))
    merge.receive(Tick("b", 0, 20, (), idle=True))
    assert merge.release() == ([(50, "a", 0)], 100)


def test_a_sender_back_from_idle_is_late_until_it_catches_up() -> None:
    merge = merge_of(["a", "b"])
    merge.receive(Tick("a", 0, 100, ()))
    merge.receive(Tick("b", 0, 20, (), idle=True))
    assert merge.release() == ([], 100)
    # b resumes behind the watermark that moved on without it: its old items are late,
    # and it holds the watermark back again until it catches up.
    merge.receive(Tick("b", 1, 60, ((30, "b", 0), (110, "b", 1))))
    assert merge.take_late() == [(30, "b", 0)]
    merge.receive(Tick("a", 1, 200, ((150, "a", 1),)))
    assert merge.release() is None
    merge.receive(Tick("b", 2, 90, ((95, "b", 2),)))
    assert merge.take_late() == [(95, "b", 2)]
    merge.receive(Tick("b", 3, 180, ((120, "b", 3),)))
    assert merge.release() == ([(110, "b", 1), (120, "b", 3), (150, "a", 1)], 180)
    assert merge.take_late() == []


def test_an_active_sender_behind_the_watermark_is_still_a_bug() -> None:
    merge = merge_of(["a"])
    merge.receive(Tick("a", 0, 100, ()))
    merge.release()
    with pytest.raises(OrderViolationError):
        merge.receive(Tick("a", 1, 120, ((90, "a", 0),)))
