"""The state of one open CRM record, and its compact stored form.

A flow may hold millions of open records, so between events a record is kept
as one ``bytes`` value (fixed header plus five short strings, ~120 bytes)
rather than as a Python object with a dozen boxed ints (~550 bytes).
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
_HEADER = struct.Struct("<BB7qd5H")
_FLAG_LEAD = 1
_FLAG_NEXT_STEP = 2


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
    flags = (_FLAG_LEAD if record.is_lead else 0) | (_FLAG_NEXT_STEP if record.next_step_set else 0)
    phases = record.lead | record.velocity << 2 | record.next_step << 4
    header = _HEADER.pack(
        flags,
        phases,
        record.created_ms,
        record.created_at_ms,
        record.last_touch_field,
        record.last_touch_ms,
        record.activity_ms,
        record.empty_since_ms,
        record.armed_ms,
        record.value_usd,
        *(len(text) for text in texts),
    )
    return header + b"".join(texts)


def decode(data: bytes) -> Record:
    (
        flags,
        phases,
        created_ms,
        created_at_ms,
        last_touch_field,
        last_touch_ms,
        activity_ms,
        empty_since_ms,
        armed_ms,
        value_usd,
        *lengths,
    ) = _HEADER.unpack_from(data)
    texts: list[str] = []
    start = _HEADER.size
    for length in lengths:
        texts.append(data[start : start + length].decode())
        start += length
    owner, region, stage, domain_field, email_domain = texts
    return Record(
        is_lead=bool(flags & _FLAG_LEAD),
        created_ms=created_ms,
        created_at_ms=created_at_ms,
        owner=owner,
        region=region,
        stage=stage,
        domain_field=domain_field,
        email_domain=email_domain,
        next_step_set=bool(flags & _FLAG_NEXT_STEP),
        value_usd=value_usd,
        last_touch_field=last_touch_field,
        last_touch_ms=last_touch_ms,
        activity_ms=activity_ms,
        empty_since_ms=empty_since_ms,
        armed_ms=armed_ms,
        lead=_PHASES[phases & 3],
        velocity=_PHASES[phases >> 2 & 3],
        next_step=_PHASES[phases >> 4 & 3],
    )
