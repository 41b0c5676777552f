"""revleak.crm.deadlines: records filed under the minute of their earliest deadline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from revleak.crm.deadlines import DeadlineWheel
from revleak.timefmt import MINUTE_MS


def test_records_come_out_by_minute_then_in_filing_order() -> None:
    wheel = DeadlineWheel()
    wheel.file("b", 5 * MINUTE_MS + 10)
    wheel.file("a", 2 * MINUTE_MS)
    wheel.file("c", 5 * MINUTE_MS)
    wheel.file("d", 9 * MINUTE_MS)
    assert len(wheel) == 4
    assert list(wheel.take_through(5)) == [(2, "a"), (5, "b"), (5, "c")]
    assert len(wheel) == 1
    assert list(wheel.take_through(8)) == []
    assert list(wheel.take_through(9)) == [(9, "d")]
    assert len(wheel) == 0


def test_a_minute_is_the_floor_of_the_deadline() -> None:
    wheel = DeadlineWheel()
    wheel.file("x", 3 * MINUTE_MS - 1)
    assert list(wheel.take_through(1)) == []
    assert list(wheel.take_through(2)) == [(2, "x")]


def test_a_record_may_be_filed_twice_and_comes_out_twice() -> None:
    wheel = DeadlineWheel()
    wheel.file("x", MINUTE_MS)
    wheel.file("x", MINUTE_MS + 5)
    wheel.file("x", 4 * MINUTE_MS)
    assert list(wheel.take_through(10)) == [(1, "x"), (1, "x"), (4, "x")]


def test_filing_after_taking_a_minute_starts_it_again() -> None:
    wheel = DeadlineWheel()
    wheel.file("x", MINUTE_MS)
    assert list(wheel.take_through(1)) == [(1, "x")]
    wheel.file("y", MINUTE_MS)
    assert list(wheel.take_through(1)) == [(1, "y")]


@given(
    filings=st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 100 * MINUTE_MS))),
    cuts=st.lists(st.integers(min_value=-1, max_value=110), max_size=5),
)
def test_taking_through_minutes_yields_each_filing_once_in_minute_order(
    filings: list[tuple[str, int]], cuts: list[int]
) -> None:
    wheel = DeadlineWheel()
    for record, due in filings:
        wheel.file(record, due)
    taken: list[tuple[int, str]] = []
    for cut in [*sorted(cuts), 1_000]:
        batch = list(wheel.take_through(cut))
        assert all(minute <= cut for minute, _ in batch)
        taken += batch
    expected = sorted(
        ((due // MINUTE_MS, record) for record, due in filings), key=lambda pair: pair[0]
    )  # stable: filing order within a minute
    assert taken == expected
    assert len(wheel) == 0
