"""revleak.timefmt: event time as integer milliseconds, and durations (docs/semantics.md §1)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revleak.timefmt import (
    DAY_MS,
    END_OF_TIME_MS,
    HOUR_MS,
    MINUTE_MS,
    datetime_to_ms,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_2200_MS = int((datetime(2200, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) * 1000
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 31), timezones=offsets
)


def exact_floor_ms(moment: datetime) -> int:
    """The model: whole milliseconds since the epoch, floored."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(milliseconds=1)


# -- timestamps -----------------------------------------------------------------------------


def test_the_documented_example_parses_and_formats() -> None:
    assert parse_timestamp("2026-03-02T10:30:00.123Z") == 1_772_447_400_123
    assert format_timestamp(1_772_447_400_123) == "2026-03-02T10:30:00.123Z"


def test_the_epoch_is_zero() -> None:
    assert parse_timestamp("1970-01-01T00:00:00Z") == 0
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"


@given(st.integers(min_value=0, max_value=YEAR_2200_MS))
def test_format_then_parse_gives_back_the_same_millisecond(ms: int) -> None:
    text = format_timestamp(ms)
    assert ISO_Z.match(text), text
    assert parse_timestamp(text) == ms


@given(moments)
def test_parse_of_any_offset_is_the_exact_instant_floored_to_the_millisecond(
    moment: datetime,
) -> None:
    assert parse_timestamp(moment.isoformat()) == exact_floor_ms(moment)
    assert datetime_to_ms(moment) == exact_floor_ms(moment)


@given(moments)
def test_formatting_is_utc_whatever_the_input_offset(moment: datetime) -> None:
    ms = parse_timestamp(moment.isoformat())
    expected = moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)
    assert format_timestamp(ms) == expected.strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{expected.microsecond // 1000:03d}Z"
    )


def test_an_offset_names_the_same_instant_as_its_utc_form() -> None:
    utc = parse_timestamp("2026-03-02T10:30:00.000Z")
    assert parse_timestamp("2026-03-02T12:30:00.000+02:00") == utc
    assert parse_timestamp("2026-03-02T05:00:00-05:30") == utc
    assert parse_timestamp("2026-03-02T10:30:00+00:00") == utc


def test_a_time_without_offset_is_utc() -> None:
    assert parse_timestamp("2026-03-02T10:30:00") == parse_timestamp("2026-03-02T10:30:00Z")
    assert datetime_to_ms(datetime(2026, 3, 2, 10, 30)) == parse_timestamp("2026-03-02T10:30:00Z")


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_timestamp("  2026-03-02T10:30:00Z\n") == parse_timestamp("2026-03-02T10:30:00Z")


def test_sub_millisecond_digits_are_floored_not_rounded() -> None:
    assert parse_timestamp("2026-03-02T10:30:00.123999Z") == parse_timestamp(
        "2026-03-02T10:30:00.123Z"
    )
    assert parse_timestamp("2026-03-02T10:30:00.000999Z") % 1000 == 0
    # Before the epoch "floored" means towards minus infinity.
    assert parse_timestamp("1969-12-31T23:59:59.9995Z") == -1


def test_an_unparseable_timestamp_raises_value_error() -> None:
    with pytest.raises(ValueError, match="isoformat"):
        parse_timestamp("yesterday")


def test_the_end_of_time_is_beyond_any_real_event_time() -> None:
    assert END_OF_TIME_MS > YEAR_2200_MS * 1000
    assert END_OF_TIME_MS + 400 * DAY_MS < 2**63  # still no int64 overflow downstream


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5m", 5 * MINUTE_MS),
        ("1h", HOUR_MS),
        ("3d", 3 * DAY_MS),
        ("90s", 90_000),
        ("30d", 30 * DAY_MS),
        (" 6h ", 6 * HOUR_MS),
        ("7 d", 7 * DAY_MS),
        ("250ms", 250),
    ],
)
def test_parse_duration_of_valid_text(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "1.5h", "-5m", "5M", "1w", "5m5s", "h1"])
def test_parse_duration_rejects_malformed_text_with_an_example_of_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration like 5m, 1h, .* or 250ms") as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("text", ["0m", "0s", "0d"])
def test_parse_duration_rejects_zero(text: str) -> None:
    with pytest.raises(ValueError, match="must be longer than zero"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (3 * DAY_MS, "3d"),
        (HOUR_MS, "1h"),
        (60 * MINUTE_MS, "1h"),
        (90 * MINUTE_MS, "90m"),
        (90_000, "90s"),
        (5 * MINUTE_MS, "5m"),
        (1_500, "1500ms"),
    ],
)
def test_format_duration_uses_the_largest_exact_unit(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@given(st.integers(min_value=1, max_value=10**7))
def test_duration_round_trips_through_its_shortest_form(seconds: int) -> None:
    ms = seconds * 1000
    assert parse_duration(format_duration(ms)) == ms
