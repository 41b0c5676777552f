"""Event-time values: integer milliseconds since the Unix epoch, UTC.

Everything in revleak keeps time as ``int`` milliseconds so that windows,
deadlines and comparisons are exact; text forms exist only at the edges.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Larger than any real event time, smaller than overflow in every arithmetic we do:
# the watermark of an input that has ended.
END_OF_TIME_MS = 1 << 62

_UNITS_MS = {"d": DAY_MS, "h": HOUR_MS, "m": MINUTE_MS, "s": 1000}
_PARSED_UNITS_MS = {**_UNITS_MS, "ms": 1}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|[dhms])\s*$")


def datetime_to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return delta.days * DAY_MS + delta.seconds * 1000 + delta.microseconds // 1000


def parse_timestamp(text: str) -> int:
    """Parse an ISO-8601 timestamp (``Z`` or an offset; none means UTC).

    >>> parse_timestamp("2026-03-02T10:30:00.123Z")
    1772447400123
    """
    return datetime_to_ms(datetime.fromisoformat(text.strip()))


def format_timestamp(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``.

    >>> format_timestamp(1772447400123)
    '2026-03-02T10:30:00.123Z'
    """
    seconds, millis = divmod(ms, 1000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def parse_duration(text: str) -> int:
    """A duration such as ``5m``, ``1h``, ``30d``, ``90s`` or ``250ms`` in milliseconds.

    >>> parse_duration("6h")
    21600000
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 5m, 1h, 7d, 90s or 250ms")
    amount, unit = match.groups()
    value = int(amount) * _PARSED_UNITS_MS[unit]
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def format_duration(ms: int) -> str:
    """The shortest exact form: ``format_duration(3 * DAY_MS) == '3d'``."""
    for unit, size in _UNITS_MS.items():
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
