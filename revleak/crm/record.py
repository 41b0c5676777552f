"""The state of one open CRM record, and its compact stored form.

A flow may hold millions of open records, so between events a record is kept
as one ``bytes`` value — a 22-byte header, the times that are not implied by
others, five short strings: about 80 bytes of payload — rather than as a Python
object with a dozen boxed ints (about 550 bytes).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

NO_TIME = -(1 << 62)


class Phase(IntEnum):
    """Where a record stands against one deadline-based SLO."""

    IDLE = 0  # nothing pending: met, not applicable, or not started
    AWAITING = 1  # a deadline is pending
    BREACHED = 2  # the deadline passed: a leak is open until the record is fixed


@dataclass(slots=True)
class Record:
    is_lead: bool
    created_ms: int
    created_at_ms: int
    owner: str = ""
    region: str = ""
    stage: str = ""
    domain_field: str = ""
    email_domain: str = ""
    next_step_set: bool = False
    value_usd: float = math.nan
    last_touch_field: int = NO_TIME
    last_touch_ms: int = NO_TIME
    activity_ms: int = NO_TIME
    empty_since_ms: int = NO_TIME
    armed_ms: int = NO_TIME
    lead: Phase = Phase.IDLE
    velocity: Phase = Phase.IDLE
    next_step: Phase = Phase.IDLE

    def company_domain(self, free_mail: frozenset[str]) -> str | None:
        """The domain used for duplicate detection, or None when there is none to compare."""
        domain = self.domain_field or self.email_domain
        if not domain or domain in free_mail:
            return None
        return domain

    def value_or(self, default: float) -> float:
        return default if math.isnan(self.value_usd) else self.value_usd

    @property
    def last_touch_or_created(self) -> int:
        return self.last_touch_ms if self.last_touch_ms != NO_TIME else self.created_ms


_PHASES = (Phase.IDLE, Phase.AWAITING, Phase.BREACHED)
# flags, phases, time codes, value, and the byte lengths of the five strings.
_HEADER = struct.Struct("<BBHd5H")
_TIMES = [struct.Struct("<" + "q" * count) for count in range(8)]
_FLAG_LEAD = 1
_FLAG_NEXT_STEP = 2
# Most of a record's times are absent or repeat another (created_at is the creation,
# the touch field is the touch time, activity is the last touch): each gets a 2-bit code
# and only the others are stored.
_ABSENT, _AS_CREATED, _AS_TOUCH, _STORED = range(4)


def encode(record: Record) -> bytes:
    texts = [
        text.encode()
        for text in (
            record.owner,
            record.region,
            record.stage,
            record.domain_field,
            record.email_domain,
        )
    ]
    created, touch = record.created_ms, record.last_touch_ms
    stored = [created]
    codes = 0
    for position, moment in enumerate(
        (
            touch,
            record.created_at_ms,
            record.last_touch_field,
            record.activity_ms,
            record.empty_since_ms,
            record.armed_ms,
        )
    ):
        if moment == NO_TIME:
            code = _ABSENT
        elif moment == created:
            code = _AS_CREATED
        elif position and moment == touch:
            code = _AS_TOUCH
        else:
            code = _STORED
            stored.append(moment)
        codes |= code << 2 * position
    flags = (_FLAG_LEAD if record.is_lead else 0) | (_FLAG_NEXT_STEP if record.next_step_set else 0)
    phases = record.lead | record.velocity << 2 | record.next_step << 4
    header = _HEADER.pack(flags, phases, codes, record.value_usd, *(len(text) for text in texts))
    return header + _TIMES[len(stored)].pack(*stored) + b"".join(texts)


def decode(data: bytes) -> Record:
    flags, phases, codes, value_usd, *lengths = _HEADER.unpack_from(data)
    count = 1 + sum(1 for position in range(6) if codes >> 2 * position & 3 == _STORED)
    stored = iter(_TIMES[count].unpack_from(data, _HEADER.size))
    created = next(stored)
    moments = [NO_TIME] * 6
    for position in range(6):
        code = codes >> 2 * position & 3
        if code == _AS_CREATED:
            moments[position] = created
        elif code == _AS_TOUCH:
            moments[position] = moments[0]
        elif code == _STORED:
            moments[position] = next(stored)
    touch, created_at, touch_field, activity, empty_since, armed = moments
    texts: list[str] = []
    start = _HEADER.size + 8 * count
    for length in lengths:
        texts.append(data[start : start + length].decode())
        start += length
    owner, region, stage, domain_field, email_domain = texts
    return Record(
        is_lead=bool(flags & _FLAG_LEAD),
        created_ms=created,
        created_at_ms=created_at,
        owner=owner,
        region=region,
        stage=stage,
        domain_field=domain_field,
        email_domain=email_domain,
        next_step_set=bool(flags & _FLAG_NEXT_STEP),
        value_usd=value_usd,
        last_touch_field=touch_field,
        last_touch_ms=touch,
        activity_ms=activity,
        empty_since_ms=empty_since,
        armed_ms=armed,
        lead=_PHASES[phases & 3],
        velocity=_PHASES[phases >> 2 & 3],
        next_step=_PHASES[phases >> 4 & 3],
    )
