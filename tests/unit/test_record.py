"""revleak.crm.record: the compact stored form of an open CRM record."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given
from hypothesis import strategies as st

from revleak.crm.record import NO_TIME, Phase, Record, decode, encode
from revleak.timefmt import parse_timestamp

T = parse_timestamp("2026-03-02T10:00:00Z")
times = st.one_of(st.just(NO_TIME), st.integers(min_value=-(2**62), max_value=2**62))
texts = st.text(max_size=40)
values = st.one_of(st.just(math.nan), st.floats(allow_nan=False), st.just(0.0), st.just(-0.0))
phases = st.sampled_from(Phase)
records = st.builds(
    Record,
    is_lead=st.booleans(),
    created_ms=times,
    created_at_ms=times,
    owner=texts,
    region=texts,
    stage=texts,
    domain_field=texts,
    email_domain=texts,
    next_step_set=st.booleans(),
    value_usd=values,
    last_touch_field=times,
    last_touch_ms=times,
    activity_ms=times,
    empty_since_ms=times,
    armed_ms=times,
    lead=phases,
    velocity=phases,
    next_step=phases,
)


def same(a: Record, b: Record) -> bool:
    """Equal, with NaN equal to NaN and −0.0 told apart from 0.0."""
    left, right = dataclasses.asdict(a), dataclasses.asdict(b)
    left_value, right_value = left.pop("value_usd"), right.pop("value_usd")
    return left == right and repr(left_value) == repr(right_value)


@given(records)
def test_decode_inverts_encode(record: Record) -> None:
    decoded = decode(encode(record))
    assert same(decoded, record)
    assert all(
        isinstance(getattr(decoded, name), Phase) for name in ("lead", "velocity", "next_step")
    )


def test_a_missing_value_survives_as_nan() -> None:
    decoded = decode(encode(Record(is_lead=True, created_ms=T, created_at_ms=T)))
    assert math.isnan(decoded.value_usd)
    assert decoded.value_or(15_000.0) == 15_000.0
    assert decoded.last_touch_or_created == T


def test_unicode_text_round_trips() -> None:
    record = Record(
        is_lead=False,
        created_ms=T,
        created_at_ms=T,
        owner="Zoë 李 🚀",
        stage="Négociation",
        domain_field="bücher.example",
    )
    assert same(decode(encode(record)), record)


def test_a_typical_record_takes_under_160_bytes() -> None:
    record = Record(
        is_lead=False,
        created_ms=T,
        created_at_ms=T - 86_400_000,
        owner="holly.gennaro",
        region="EMEA",
        stage="Negotiation",
        domain_field="nakatomi.example",
        email_domain="nakatomi.example",
        next_step_set=True,
        value_usd=120_000.0,
        last_touch_field=T,
        last_touch_ms=T,
        activity_ms=T,
        empty_since_ms=NO_TIME,
        armed_ms=T + 7 * 86_400_000,
        lead=Phase.IDLE,
        velocity=Phase.AWAITING,
        next_step=Phase.BREACHED,
    )
    data = encode(record)
    assert len(data) < 160
    assert same(decode(data), record)


def test_last_touch_or_created_prefers_the_touch() -> None:
    record = Record(is_lead=True, created_ms=T, created_at_ms=T, last_touch_ms=T + 5)
    assert record.last_touch_or_created == T + 5
