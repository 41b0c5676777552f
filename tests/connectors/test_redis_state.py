"""revleak.connectors.redis_state: the live incident state in a real Redis (docs/live-state.md)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from revleak.connectors.redis_state import BlastEntry, LiveKeys, RedisLiveState
from revleak.loadtest import services
from revleak.sli import LeakChange
from revleak.slo.alerts import AlertTransition, BudgetUpdate
from revleak.slo.catalog import PICOS_PER_USD, BurnKind, Rule
from revleak.slo.incident import (
    IncidentItem,
    IncidentSnapshot,
    IncidentTracker,
    Leak,
    LeakKey,
    LiveUpdate,
    OwnerExposure,
    PagingState,
    severity_name,
)
from revleak.slo.loader import load_catalog
from revleak.timefmt import HOUR_MS, MINUTE_MS, format_timestamp, parse_timestamp

pytestmark = pytest.mark.services

SLOS = Path(__file__).resolve().parents[2] / "slos" / "crm.yaml"
T = parse_timestamp("2026-03-02T10:00:00Z")
LEAD, VELOCITY = "lead_response", "deal_velocity"
KEYS = LiveKeys("revleak")


def usd(amount: float) -> int:
    return round(Fraction(amount) * PICOS_PER_USD)


def leak(
    record: str,
    impact_usd: float,
    *,
    slo: str = LEAD,
    rule: Rule = Rule.SLA_BREACH_UNTOUCHED,
    owner: str = "ana",
    since: int = T,
) -> Leak:
    return Leak(slo, record, rule, usd(impact_usd), owner, since)


def key(record: str, *, slo: str = LEAD, rule: Rule = Rule.SLA_BREACH_UNTOUCHED) -> LeakKey:
    return (slo, record, rule)


def snapshot(at: int = T, **changes: Any) -> IncidentSnapshot:
    values: dict[str, Any] = {
        "at": at,
        "consumption": 0.0,
        "paging_state": PagingState.OK,
        "severity": 4,
        "open_leaks": 0,
        "big_leaks": 0,
        "at_risk_picos": {},
        "peak_severity": 4,
        "peak_paging_state": PagingState.OK,
        "pages": 0,
        "tickets": 0,
    }
    values.update(changes)
    return IncidentSnapshot(**values)


def update(
    opened: tuple[Leak, ...] = (),
    closed: tuple[LeakKey, ...] = (),
    alerts: tuple[AlertTransition, ...] = (),
    *,
    at: int = T,
    full: bool = False,
    summary: IncidentSnapshot | None = None,
) -> LiveUpdate:
    return LiveUpdate(at, opened, closed, alerts, summary or snapshot(at), full=full)


def alert(
    firing: bool,
    *,
    slo: str = LEAD,
    severity: str = "page",
    long_ms: int = HOUR_MS,
    short_ms: int = 5 * MINUTE_MS,
    at: int = T,
) -> AlertTransition:
    return AlertTransition(
        slo, severity, BurnKind.USD, long_ms, short_ms, firing, at, 20.0, 30.0, 0.4, usd(900), 3
    )


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def keys_of(url: str, prefix: str = "revleak") -> set[str]:
    with client(url) as raw:
        return {name.decode() for name in raw.keys(f"{prefix}:*")}


def records(entries: list[BlastEntry]) -> list[tuple[str, str, float, str]]:
    return [(entry.slo, entry.record_id, entry.impact_usd, entry.owner) for entry in entries]


def next_message(pubsub: Any, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            return dict(orjson.loads(message["data"]))
    raise AssertionError("no announcement on the changes channel")


@contextlib.contextmanager
def redis_on_port(port: int, folder: Path) -> Iterator[str]:
    """A private Redis on a chosen port, so that a later one can take over its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                services.require("redis-server"),
                *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(folder)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    service = services.Service("redis", process, log, port)

    def ready() -> bool:
        with client(f"redis://127.0.0.1:{port}/0") as probe:
            try:
                return bool(probe.ping())
            except redis.ConnectionError:
                return False

    try:
        services.wait_until(ready, service)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        service.stop()


# -- the blast radius ------------------------------------------------------------------


def test_a_full_update_then_deltas_keep_each_slo_ranked_by_impact(redis_url: str) -> None:
    with RedisLiveState(redis_url) as state:
        state.apply(
            [
                update(
                    (
                        leak("L1", 4_000),
                        leak("L2", 9_500, owner="bo", since=T - MINUTE_MS),
                        leak("O1", 60_000, slo=VELOCITY, rule=Rule.STALE_OPP, owner="cy"),
                    ),
                    full=True,
                )
            ]
        )
        assert records(state.blast_radius(LEAD)) == [
            (LEAD, "L2", 9_500.0, "bo"),
            (LEAD, "L1", 4_000.0, "ana"),
        ]
        first = state.blast_radius(LEAD, 1)[0]
        assert first == BlastEntry(
            slo=LEAD,
            record_id="L2",
            rule="SLA_BREACH_UNTOUCHED",
            impact_usd=9_500.0,
            owner="bo",
            since=format_timestamp(T - MINUTE_MS),
        )
        assert state.open_slos() == [VELOCITY, LEAD]

        # A new leak, and an impact that grew: the ranking follows.
        state.apply([update((leak("L1", 12_000), leak("L3", 500)), at=T + MINUTE_MS)])
        assert records(state.blast_radius(LEAD)) == [
            (LEAD, "L1", 12_000.0, "ana"),
            (LEAD, "L2", 9_500.0, "bo"),
            (LEAD, "L3", 500.0, "ana"),
        ]
        assert records(state.blast_radius(LEAD, limit=2)) == records(state.blast_radius(LEAD))[:2]
        assert records(state.blast_radius(VELOCITY)) == [(VELOCITY, "O1", 60_000.0, "cy")]

    with client(redis_url) as raw:
        assert raw.zrange(KEYS.by_impact(LEAD), 0, -1, withscores=True) == [
            (b"L3|SLA_BREACH_UNTOUCHED", 500.0),
            (b"L2|SLA_BREACH_UNTOUCHED", 9_500.0),
            (b"L1|SLA_BREACH_UNTOUCHED", 12_000.0),
        ]
        stored = orjson.loads(raw.hget(KEYS.blast(LEAD), "L1|SLA_BREACH_UNTOUCHED") or b"")
        assert stored == {
            "slo": LEAD,
            "record_id": "L1",
            "rule": "SLA_BREACH_UNTOUCHED",
            "impact_usd": 12_000.0,
            "owner": "ana",
            "since": format_timestamp(T),
        }


def test_a_record_that_breaks_two_rules_is_two_entries(redis_url: str) -> None:
    quality = "data_quality"
    with RedisLiveState(redis_url) as state:
        state.apply(
            [
                update(
                    (
                        leak("L1", 100, slo=quality, rule=Rule.UNASSIGNED_OWNER),
                        leak("L1", 200, slo=quality, rule=Rule.ROUTING_MISMATCH),
                    ),
                    full=True,
                )
            ]
        )
        state.apply([update(closed=(key("L1", slo=quality, rule=Rule.ROUTING_MISMATCH),))])
        assert [(e.record_id, e.rule) for e in state.blast_radius(quality)] == [
            ("L1", "UNASSIGNED_OWNER")
        ]


def test_closing_every_leak_of_an_slo_leaves_no_key_for_it(redis_url: str) -> None:
    with RedisLiveState(redis_url) as state:
        state.apply([update((leak("L1", 10), leak("L2", 20)), full=True)])
        assert keys_of(redis_url) == {
            KEYS.blast(LEAD),
            KEYS.by_impact(LEAD),
            KEYS.slos,
            KEYS.incident,
            KEYS.epoch,
        }
        state.apply([update(closed=(key("L1"),))])
        assert [entry.record_id for entry in state.blast_radius(LEAD)] == ["L2"]
        state.apply([update(closed=(key("L2"),), summary=snapshot(severity=0))])
        assert state.blast_radius(LEAD) == []
        assert state.open_slos() == []
        # What stays is one summary and one epoch, whatever came and went before.
        assert keys_of(redis_url) == {KEYS.incident, KEYS.epoch}

        for round_ in range(20):
            records_ = tuple(leak(f"R{round_}-{n}", 10 + n) for n in range(5))
            state.apply([update(records_)])
            state.apply([update(closed=tuple(key(r.record_id) for r in records_))])
        assert keys_of(redis_url) == {KEYS.incident, KEYS.epoch}


def test_a_full_update_replaces_what_an_earlier_writer_left(redis_url: str) -> None:
    with RedisLiveState(redis_url) as before:
        before.apply(
            [
                update(
                    (leak("L1", 10), leak("O1", 20, slo=VELOCITY, rule=Rule.STALE_OPP)),
                    full=True,
                ),
                update((leak("L2", 30),), at=T + 1),
            ]
        )
    # The restored flow's first update lists what is open now; nothing else may survive.
    with RedisLiveState(redis_url) as after:
        nxt = "next_step_hygiene"
        after.apply(
            [update((leak("L2", 35), leak("O2", 5, slo=nxt, rule=Rule.NO_NEXT_STEP)), full=True)]
        )
        assert records(after.blast_radius(LEAD)) == [(LEAD, "L2", 35.0, "ana")]
        assert after.blast_radius(VELOCITY) == []
        assert after.open_slos() == [LEAD, nxt]
        assert KEYS.blast(VELOCITY) not in keys_of(redis_url)
        assert KEYS.by_impact(VELOCITY) not in keys_of(redis_url)

        # Within one writer too, a full update is a replacement, not a merge.
        after.apply([update((leak("O3", 1, slo=VELOCITY, rule=Rule.STALE_OPP),), full=True)])
        assert after.open_slos() == [VELOCITY]
        assert keys_of(redis_url) == {
            KEYS.blast(VELOCITY),
            KEYS.by_impact(VELOCITY),
            KEYS.slos,
            KEYS.incident,
            KEYS.epoch,
        }


def test_a_large_blast_radius_is_written_whole(redis_url: str) -> None:
    leaks = tuple(leak(f"L{n:05d}", 1 + n % 997, owner=f"o{n % 7}") for n in range(2_500))
    with RedisLiveState(redis_url) as state:
        state.apply([update(leaks, full=True)])
        every = state.blast_radius(LEAD, None)
        assert len(every) == 2_500
        assert [entry.impact_usd for entry in every] == sorted(
            (entry.impact_usd for entry in every), reverse=True
        )
        state.apply([update(closed=tuple(key(one.record_id) for one in leaks[:2_000]))])
        assert len(state.blast_radius(LEAD, None)) == 500


# -- the summary and the alerts ---------------------------------------------------------


def test_the_summary_is_what_a_war_room_shows(redis_url: str) -> None:
    leaks = (
        leak("L1", 12_000, owner="ana"),
        leak("L2", 3_000, owner="bo"),
        leak("O1", 20_000, slo=VELOCITY, rule=Rule.STALE_OPP, owner="bo"),
    )
    summary = snapshot(
        at=T + HOUR_MS,
        consumption=1.25,
        paging_state=PagingState.PAGE,
        severity=2,
        open_leaks=3,
        big_leaks=2,
        at_risk_picos={LEAD: usd(15_000), VELOCITY: usd(47_500), "next_step_hygiene": 0},
        peak_severity=1,
        peak_paging_state=PagingState.PAGE,
        pages=2,
        tickets=1,
        top_leaks=(leaks[2], leaks[0], leaks[1]),
        top_owners=(OwnerExposure("bo", 2, usd(23_000)), OwnerExposure("ana", 1, usd(12_000))),
    )
    with RedisLiveState(redis_url, top=2) as state:
        assert state.incident() is None
        state.apply([update(leaks, full=True, at=T + HOUR_MS, summary=summary)])
        assert state.incident() == {
            "at": format_timestamp(T + HOUR_MS),
            "severity": "SEV2",
            "consumption": 1.25,
            "paging_state": "PAGE",
            "open_leaks": 3,
            "big_leaks": 2,
            "peak_severity": "SEV1",
            "peak_paging_state": "PAGE",
            "pages": 2,
            "tickets": 1,
            "firing_alerts": 0,
            "at_risk_usd": {VELOCITY: 47_500.0, LEAD: 15_000.0, "next_step_hygiene": 0.0},
            "blast_radius": {VELOCITY: 1, LEAD: 2, "next_step_hygiene": 0},
            "top_causes": [
                {
                    "slo": VELOCITY,
                    "record_id": "O1",
                    "rule": "STALE_OPP",
                    "impact_usd": 20_000.0,
                    "owner": "bo",
                    "since": format_timestamp(T),
                },
                {
                    "slo": LEAD,
                    "record_id": "L1",
                    "rule": "SLA_BREACH_UNTOUCHED",
                    "impact_usd": 12_000.0,
                    "owner": "ana",
                    "since": format_timestamp(T),
                },
            ],
            "top_owners": [
                {"owner": "bo", "leaks": 2, "impact_usd": 23_000.0},
                {"owner": "ana", "leaks": 1, "impact_usd": 12_000.0},
            ],
        }


def test_a_summary_without_rankings_is_ranked_from_the_open_leaks(redis_url: str) -> None:
    with RedisLiveState(redis_url, top=3) as state:
        state.apply(
            [
                update(
                    (leak("L1", 5, owner="ana"), leak("L2", 7, owner="bo"), leak("L3", 1)),
                    full=True,
                )
            ]
        )
        incident = state.incident()
        assert incident is not None
        assert [cause["record_id"] for cause in incident["top_causes"]] == ["L2", "L1", "L3"]
        assert incident["top_owners"] == [
            {"owner": "bo", "leaks": 1, "impact_usd": 7.0},
            {"owner": "ana", "leaks": 2, "impact_usd": 6.0},
        ]


def test_firing_alerts_are_kept_until_they_resolve(redis_url: str) -> None:
    fast = alert(True)
    slow = alert(True, severity="ticket", long_ms=24 * HOUR_MS, short_ms=2 * HOUR_MS, at=T + 1)
    with RedisLiveState(redis_url) as state:
        assert state.firing_alerts() == []
        state.apply([update(full=True)])
        state.apply([update(alerts=(fast, slow), at=T + 1)])
        assert state.firing_alerts() == [fast.record(), slow.record()]
        with client(redis_url) as raw:
            assert set(raw.hkeys(KEYS.alerts)) == {
                b"lead_response|page|usd|1h/5m",
                b"lead_response|ticket|usd|1d/2h",
            }
        incident = state.incident()
        assert incident is not None
        assert incident["firing_alerts"] == 2

        # Resolving and firing again within one update ends firing, with the later record.
        again = alert(True, at=T + 3)
        state.apply([update(alerts=(alert(False, at=T + 2), again), at=T + 3)])
        assert state.firing_alerts() == [again.record(), slow.record()]

        state.apply([update(alerts=(alert(False, at=T + 4),), at=T + 4)])
        assert state.firing_alerts() == [slow.record()]
        state.apply(
            [
                update(
                    alerts=(
                        alert(
                            False,
                            severity="ticket",
                            long_ms=24 * HOUR_MS,
                            short_ms=2 * HOUR_MS,
                            at=T + 5,
                        ),
                    ),
                    at=T + 5,
                )
            ]
        )
        assert state.firing_alerts() == []
        assert KEYS.alerts not in keys_of(redis_url)


def test_a_full_update_replaces_the_firing_alerts(redis_url: str) -> None:
    early = alert(True, at=T)
    late = alert(True, severity="ticket", long_ms=24 * HOUR_MS, short_ms=2 * HOUR_MS, at=T + 10)
    with RedisLiveState(redis_url) as before:
        before.apply([update(alerts=(early,), full=True), update(alerts=(late,))])
        assert len(before.firing_alerts()) == 2
    # A restored flow's first update lists what fires at its snapshot: only that is kept.
    with RedisLiveState(redis_url) as after:
        after.apply([update(alerts=(early,), full=True, at=T + 5)])
        assert after.firing_alerts() == [early.record()]
        incident = after.incident()
        assert incident is not None
        assert incident["firing_alerts"] == 1
        with client(redis_url) as raw:
            raw.flushdb()
        after.apply([update(at=T + 6)])
        assert after.firing_alerts() == [early.record()]


def test_subscribers_hear_of_every_applied_update(redis_url: str) -> None:
    with client(redis_url) as raw, raw.pubsub() as pubsub:
        pubsub.subscribe(KEYS.changes)
        assert pubsub.get_message(timeout=5.0) is not None  # the subscription itself
        with RedisLiveState(redis_url) as state:
            state.apply(
                [
                    update(
                        (leak("L1", 10), leak("O1", 5, slo=VELOCITY, rule=Rule.STALE_OPP)),
                        full=True,
                    ),
                    update(
                        (leak("L2", 3),),
                        (key("L1"),),
                        (alert(True, at=T + 1),),
                        at=T + 1,
                        summary=snapshot(
                            T + 1, severity=3, paging_state=PagingState.WARN, consumption=0.3
                        ),
                    ),
                ]
            )
            first, second = next_message(pubsub), next_message(pubsub)
            assert first == {
                "at": format_timestamp(T),
                "full": True,
                "opened": 2,
                "closed": 0,
                "alerts": 0,
                "slos": [VELOCITY, LEAD],
                "severity": "SEV4",
                "paging_state": "OK",
                "epoch": first["epoch"],
            }
            with client(redis_url) as reader:
                assert reader.get(KEYS.epoch) == first["epoch"].encode()
            assert second == {
                "at": format_timestamp(T + 1),
                "full": False,
                "opened": 1,
                "closed": 1,
                "alerts": 1,
                "slos": [LEAD],
                "severity": "SEV3",
                "paging_state": "WARN",
                "epoch": first["epoch"],
            }


# -- restarts and outages ---------------------------------------------------------------


def full_picture(state: RedisLiveState) -> tuple[Any, ...]:
    return (
        records(state.blast_radius(LEAD, None)),
        records(state.blast_radius(VELOCITY, None)),
        state.open_slos(),
        state.firing_alerts(),
        state.incident(),
    )


def test_a_flushed_redis_is_rewritten_from_the_mirror_on_the_next_apply(redis_url: str) -> None:
    with (
        RedisLiveState(redis_url) as state,
        client(redis_url) as raw,
        raw.pubsub() as pubsub,
    ):
        state.apply(
            [
                update(
                    (leak("L1", 10), leak("O1", 5, slo=VELOCITY, rule=Rule.STALE_OPP)), full=True
                ),
                update((leak("L2", 30),), alerts=(alert(True, at=T + 1),), at=T + 1),
            ]
        )
        raw.flushdb()
        pubsub.subscribe(KEYS.changes)
        pubsub.get_message(timeout=5.0)
        state.apply([update((leak("L3", 1),), (key("L1"),), at=T + 2)])
        assert not state.stale
        assert records(state.blast_radius(LEAD)) == [
            (LEAD, "L2", 30.0, "ana"),
            (LEAD, "L3", 1.0, "ana"),
        ]
        assert records(state.blast_radius(VELOCITY)) == [(VELOCITY, "O1", 5.0, "ana")]
        assert state.firing_alerts() == [alert(True, at=T + 1).record()]
        assert next_message(pubsub)["full"] is True

        # The rewrite is exactly what the deltas alone would have produced.
        with RedisLiveState(redis_url, prefix="reference") as reference:
            reference.apply(
                [
                    update(
                        (leak("L1", 10), leak("O1", 5, slo=VELOCITY, rule=Rule.STALE_OPP)),
                        full=True,
                    ),
                    update((leak("L2", 30),), alerts=(alert(True, at=T + 1),), at=T + 1),
                    update((leak("L3", 1),), (key("L1"),), at=T + 2),
                ]
            )
            assert full_picture(reference) == full_picture(state)


def test_an_unreachable_redis_never_stops_the_stream(tmp_path: Path) -> None:
    port = services.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    now = [0.0]
    with RedisLiveState(url, timeout_s=0.5, retry_backoff_s=5.0, clock=lambda: now[0]) as state:
        started = time.monotonic()
        state.apply([update((leak("L1", 10),), full=True)])
        state.apply([update((leak("L2", 20),), alerts=(alert(True),), at=T + 1)])
        assert time.monotonic() - started < 5.0
        assert state.stale
        assert not state.resync()

        with redis_on_port(port, tmp_path / "redis"):
            # Still inside the backoff: the stream goes on without trying.
            now[0] = 1.0
            state.apply([update((leak("L3", 30),), at=T + 2)])
            assert state.stale
            assert keys_of(url) == set()

            # Past it, the next update rewrites everything that happened meanwhile.
            now[0] = 100.0
            state.apply([update(closed=(key("L1"),), at=T + 3)])
            assert not state.stale
            assert records(state.blast_radius(LEAD)) == [
                (LEAD, "L3", 30.0, "ana"),
                (LEAD, "L2", 20.0, "ana"),
            ]
            assert state.firing_alerts() == [alert(True).record()]
            incident = state.incident()
            assert incident is not None
            assert incident["at"] == format_timestamp(T + 3)


def test_a_redis_restart_that_lost_everything_is_caught_up(tmp_path: Path) -> None:
    port = services.free_port()
    with redis_on_port(port, tmp_path / "first") as url:
        state = RedisLiveState(url, timeout_s=0.5, retry_backoff_s=0.0)
        state.apply([update((leak("L1", 10), leak("L2", 20)), full=True)])
        assert not state.stale
    # Down: updates keep coming and none of them raises.
    state.apply([update((leak("L3", 30),), (key("L1"),), at=T + 1)])
    state.apply([update(alerts=(alert(True, at=T + 2),), at=T + 2)])
    assert state.stale
    with pytest.raises(redis.ConnectionError):
        state.incident()
    # Back, empty: a quiet stream catches up through resync, a busy one on its next update.
    with redis_on_port(port, tmp_path / "second") as url:
        assert keys_of(url) == set()
        assert state.resync()
        assert records(state.blast_radius(LEAD)) == [
            (LEAD, "L3", 30.0, "ana"),
            (LEAD, "L2", 20.0, "ana"),
        ]
        assert state.firing_alerts() == [alert(True, at=T + 2).record()]
    with redis_on_port(port, tmp_path / "third") as url:
        state.apply([update((leak("L4", 1),), at=T + 3)])
        assert not state.stale
        assert [entry.record_id for entry in state.blast_radius(LEAD)] == ["L3", "L2", "L4"]
        state.close()


# -- the contract with the incident tracker --------------------------------------------


def test_the_store_follows_the_incident_tracker(redis_url: str) -> None:
    catalog = load_catalog(SLOS)

    def opened(record: str, amount: float, time_: int, owner: str = "ana") -> LeakChange:
        return LeakChange(LEAD, time_, record, Rule.SLA_BREACH_UNTOUCHED, True, usd(amount), owner)

    def closed(record: str, time_: int) -> LeakChange:
        return LeakChange(LEAD, time_, record, Rule.SLA_BREACH_UNTOUCHED, False)

    def step(tracker: IncidentTracker, items: list[IncidentItem]) -> LiveUpdate:
        output = tracker.advance(sorted(items, key=lambda item: item.order))
        return tracker.live_update(output.alerts)

    def check(state: RedisLiveState, tracker: IncidentTracker) -> None:
        expected = tracker.top_leaks(1_000)
        assert [(e.record_id, e.impact_usd, e.owner) for e in state.blast_radius(LEAD, None)] == [
            (one.record_id, one.impact_usd, one.owner) for one in expected
        ]
        incident = state.incident()
        final = tracker.snapshot()
        assert incident is not None
        assert incident["severity"] == severity_name(final.severity)
        assert incident["paging_state"] == final.paging_state.name
        assert incident["consumption"] == pytest.approx(final.consumption)
        assert incident["open_leaks"] == final.open_leaks == len(expected)
        assert incident["blast_radius"][LEAD] == len(expected)
        assert [cause["record_id"] for cause in incident["top_causes"]] == [
            one.record_id for one in tracker.top_leaks(10)
        ]

    tracker = IncidentTracker(catalog)
    with RedisLiveState(redis_url) as state:
        first = step(
            tracker,
            [
                opened("L1", 12_000, T),
                opened("L2", 4_000, T, owner="bo"),
                BudgetUpdate(LEAD, T, usd(16_000)),
            ],
        )
        assert first.full
        state.apply([first])
        check(state, tracker)

        fire = alert(True, at=T + MINUTE_MS)
        second = step(
            tracker,
            [
                closed("L1", T + MINUTE_MS),
                opened("L3", 30_000, T + MINUTE_MS, owner="cy"),
                BudgetUpdate(LEAD, T + MINUTE_MS, usd(40_000)),
                fire,
            ],
        )
        assert not second.full
        state.apply([second])
        check(state, tracker)
        assert state.firing_alerts() == [fire.record()]
        incident = state.incident()
        assert incident is not None
        assert incident["paging_state"] == "PAGE"
        assert incident["top_owners"][0] == {"owner": "cy", "leaks": 1, "impact_usd": 30_000.0}

        # A restored stage sends everything again, to a writer in a new process.
        tracker.restart_live_view()
        third = step(tracker, [closed("L2", T + 2 * MINUTE_MS)])
        assert third.full
    with RedisLiveState(redis_url) as restarted:
        restarted.apply([third])
        check(restarted, tracker)
        assert restarted.firing_alerts() == [fire.record()]

        fourth = step(
            tracker,
            [closed("L3", T + 3 * MINUTE_MS), BudgetUpdate(LEAD, T + 3 * MINUTE_MS, 0)],
        )
        restarted.apply([fourth])
        check(restarted, tracker)
        assert restarted.open_slos() == []
        assert keys_of(redis_url) == {KEYS.incident, KEYS.epoch, KEYS.alerts}
