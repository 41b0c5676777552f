"""revleak.connectors.live_memory: the live state in process, held to what Redis holds."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import orjson
import pytest
import redis
from harness import decode_batches, default_catalog, run_pipeline

from revleak.connectors.live_memory import BlastEntry, InMemoryLiveState
from revleak.connectors.redis_state import LiveKeys, RedisLiveState
from revleak.crm.pipeline import FlowConfig
from revleak.loadtest import soak
from revleak.ordering import NEVER
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import PICOS_PER_USD, BurnKind, Rule
from revleak.slo.incident import IncidentSnapshot, Leak, LiveUpdate, PagingState
from revleak.timefmt import HOUR_MS, MINUTE_MS, format_timestamp, parse_timestamp

T = parse_timestamp("2026-03-02T10:00:00Z")
LEAD, VELOCITY, QUALITY = "lead_response", "deal_velocity", "data_quality"
SLO_RULES = {
    LEAD: (Rule.SLA_BREACH_UNTOUCHED,),
    VELOCITY: (Rule.STALE_OPP,),
    QUALITY: (Rule.UNASSIGNED_OWNER, Rule.ROUTING_MISMATCH),
}
WINDOWS = {"page": (HOUR_MS, 5 * MINUTE_MS), "ticket": (24 * HOUR_MS, 2 * HOUR_MS)}


def usd(amount: float) -> int:
    return round(Fraction(amount) * PICOS_PER_USD)


def snapshot(at: int, open_leaks: int = 0, **changes: Any) -> IncidentSnapshot:
    values: dict[str, Any] = {
        "at": at,
        "consumption": 0.0,
        "paging_state": PagingState.OK,
        "severity": 4 if open_leaks else 0,
        "open_leaks": open_leaks,
        "big_leaks": 0,
        "at_risk_picos": {},
        "peak_severity": 4,
        "peak_paging_state": PagingState.OK,
        "pages": 0,
        "tickets": 0,
    }
    values.update(changes)
    return IncidentSnapshot(**values)


def leak(record: str, impact_usd: float, *, slo: str = LEAD, owner: str = "ana") -> Leak:
    return Leak(slo, record, SLO_RULES[slo][0], usd(impact_usd), owner, T)


def alert(firing: bool, at: int, *, slo: str = LEAD, severity: str = "page") -> AlertTransition:
    long_ms, short_ms = WINDOWS[severity]
    return AlertTransition(
        slo, severity, BurnKind.USD, long_ms, short_ms, firing, at, 20.0, 30.0, 0.4, usd(900), 3
    )


def story_updates() -> list[LiveUpdate]:
    """What the incident stage sends a live view over the Nakatomi story, change by change."""
    config = FlowConfig(catalog=default_catalog(), live_view=True)
    updates = run_pipeline(config, [decode_batches(soak.story_lines(), batch_size=1)]).live
    assert len(updates) > 200
    return updates


def random_updates(seed: int, count: int = 120) -> list[LiveUpdate]:
    """Leaks opening, re-valued and closing with many equal impacts; alerts firing and
    resolving; an occasional full update in the middle (a restored flow)."""
    rng = random.Random(seed)
    open_now: dict[tuple[str, str, Rule], Leak] = {}
    firing: dict[tuple[str, str], AlertTransition] = {}
    updates: list[LiveUpdate] = []
    for step in range(count):
        at = T + step * MINUTE_MS
        opened: list[Leak] = []
        closed: list[tuple[str, str, Rule]] = []
        for _ in range(rng.randrange(0, 6)):
            slo = rng.choice(list(SLO_RULES))
            rule = rng.choice(SLO_RULES[slo])
            record = f"R{rng.randrange(40):02d}"
            if (slo, record, rule) in open_now and rng.random() < 0.5:
                if (slo, record, rule) not in closed:
                    closed.append((slo, record, rule))
                    opened = [o for o in opened if o.key != (slo, record, rule)]
                continue
            made = Leak(
                slo,
                record,
                rule,
                usd(rng.choice([100, 250, 250, 250, 1_000, 7_500.5])),
                rng.choice(["ana", "bo", "cy"]),
                at - rng.randrange(3) * MINUTE_MS,
            )
            if made.key in closed:
                closed.remove(made.key)
            opened = [o for o in opened if o.key != made.key] + [made]
        for key in closed:
            open_now.pop(key, None)
        for made in opened:
            open_now[made.key] = made
        alerts: list[AlertTransition] = []
        if rng.random() < 0.3:
            slo, severity = rng.choice(list(SLO_RULES)), rng.choice(list(WINDOWS))
            now_firing = (slo, severity) not in firing
            transition = alert(now_firing, at, slo=slo, severity=severity)
            alerts.append(transition)
            if now_firing:
                firing[(slo, severity)] = transition
            else:
                del firing[(slo, severity)]
        summary = snapshot(
            at,
            len(open_now),
            at_risk_picos={slo: usd(step * 10) for slo in (LEAD, VELOCITY)},
            pages=len(firing),
        )
        if step and rng.random() < 0.05:
            update = LiveUpdate(
                at, tuple(open_now.values()), (), tuple(firing.values()), summary, full=True
            )
        else:
            update = LiveUpdate(at, tuple(opened), tuple(closed), tuple(alerts), summary)
        updates.append(update)
    return updates


def picture(state: InMemoryLiveState | RedisLiveState, slos: list[str]) -> tuple[Any, ...]:
    return (
        {slo: state.blast_radius(slo, None) for slo in slos},
        {slo: state.blast_radius(slo, 3) for slo in slos},
        state.incident(),
        state.firing_alerts(),
        state.open_slos(),
    )


@pytest.fixture
def announcements(redis_url: str) -> Iterator[list[dict[str, Any]]]:
    """Every message published on the Redis changes channel, in order."""
    heard: list[dict[str, Any]] = []
    with redis.Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        pubsub.subscribe(LiveKeys("revleak").changes)
        assert pubsub.get_message(timeout=5.0) is not None  # the subscription itself
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    heard.append(orjson.loads(message["data"]))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        yield heard
        stop.set()
        listener.join(5)


def wait_for_count(heard: list[dict[str, Any]], count: int) -> None:
    deadline = time.monotonic() + 10
    while len(heard) < count:
        assert time.monotonic() < deadline, f"{len(heard)} of {count} announcements"
        time.sleep(0.01)


def same_epochs(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Both announce a new epoch at the same updates and keep it until the next one."""
    pairs = {(mine["epoch"], theirs["epoch"]) for mine, theirs in zip(ours, theirs, strict=True)}
    assert len({mine for mine, _ in pairs}) == len(pairs) == len({r for _, r in pairs})


def without_epoch(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in message.items() if k != "epoch"} for message in messages]


# -- the same updates into Redis and into memory --------------------------------------------


@pytest.mark.services
@pytest.mark.slow
def test_the_storys_updates_read_back_as_from_redis(
    redis_url: str, announcements: list[dict[str, Any]]
) -> None:
    slos = list(default_catalog().names)
    updates = story_updates()
    memory = InMemoryLiveState()
    ours: list[dict[str, Any]] = []
    memory.subscribe(ours.append)
    alerts_seen = 0
    with RedisLiveState(redis_url) as stored:
        for index, update in enumerate(updates):
            memory.apply([update])
            stored.apply([update])
            alerts_seen = max(alerts_seen, len(memory.firing_alerts()))
            if index % 10 == 0 or index == len(updates) - 1:
                assert picture(memory, slos) == picture(stored, slos), index
        wait_for_count(announcements, len(ours))
    assert any(memory.blast_radius(slo, None) for slo in slos)
    assert alerts_seen > 0
    assert without_epoch(ours) == without_epoch(announcements)
    same_epochs(ours, announcements)


@pytest.mark.services
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_updates_with_equal_impacts_read_back_as_from_redis(
    redis_url: str, announcements: list[dict[str, Any]], seed: int
) -> None:
    slos = list(SLO_RULES)
    updates = random_updates(seed)
    assert sum(update.full for update in updates) >= 1
    memory = InMemoryLiveState(top=4)
    ours: list[dict[str, Any]] = []
    memory.subscribe(ours.append)
    with RedisLiveState(redis_url, top=4) as stored:
        for index, update in enumerate(updates):
            memory.apply([update])
            stored.apply([update])
            assert picture(memory, slos) == picture(stored, slos), index
        wait_for_count(announcements, len(ours))
    assert without_epoch(ours) == without_epoch(announcements)
    same_epochs(ours, announcements)


# -- in memory alone ----------------------------------------------------------------------


def test_nothing_is_there_before_the_first_update() -> None:
    state = InMemoryLiveState()
    assert state.incident() is None
    assert state.blast_radius(LEAD) == []
    assert state.firing_alerts() == []
    assert state.open_slos() == []


def test_updates_sent_before_the_first_event_are_skipped() -> None:
    """The incident stage reports as soon as its watermark moves, even with nothing seen
    yet: at no time, with nothing in it. No reader or subscriber hears of it."""
    state = InMemoryLiveState()
    heard: list[dict[str, Any]] = []
    state.subscribe(heard.append)
    state.apply([LiveUpdate(NEVER, (), (), (), snapshot(NEVER), full=True)])
    assert heard == []
    assert state.incident() is None
    state.apply([LiveUpdate(T, (leak("L1", 10),), (), (), snapshot(T, 1))])
    assert [(message["full"], message["opened"]) for message in heard] == [(True, 1)]


def test_equal_impacts_come_in_descending_field_order_and_limits_cut_the_ranking() -> None:
    state = InMemoryLiveState()
    state.apply(
        [
            LiveUpdate(
                T,
                (leak("L1", 250), leak("L3", 250), leak("L2", 900), leak("L10", 250)),
                (),
                (),
                snapshot(T, 4),
            )
        ]
    )
    # Fields compare as text: "L1|…" sorts after "L10|…" ("|" is after "0").
    assert [entry.record_id for entry in state.blast_radius(LEAD)] == ["L2", "L3", "L1", "L10"]
    assert [entry.record_id for entry in state.blast_radius(LEAD, 2)] == ["L2", "L3"]
    assert state.blast_radius(LEAD, 0) == []
    assert state.blast_radius(LEAD, 1) == [
        BlastEntry(
            slo=LEAD,
            record_id="L2",
            rule="SLA_BREACH_UNTOUCHED",
            impact_usd=900.0,
            owner="ana",
            since=format_timestamp(T),
        )
    ]


def test_subscribers_hear_each_update_and_can_leave() -> None:
    state = InMemoryLiveState()
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    leave = state.subscribe(first.append)
    state.subscribe(second.append)
    state.apply(
        [LiveUpdate(T, (leak("L1", 10), leak("O1", 5, slo=VELOCITY)), (), (), snapshot(T, 2))]
    )
    state.apply(
        [
            LiveUpdate(T + 1, (leak("L2", 3),), ((LEAD, "L1", Rule.SLA_BREACH_UNTOUCHED),),
                       (alert(True, T + 1),), snapshot(T + 1, 2)),
        ]
    )  # fmt: skip
    leave()
    state.apply([LiveUpdate(T + 2, (), (), (), snapshot(T + 2, 2))])
    epoch = first[0]["epoch"]
    assert first == [
        {"at": format_timestamp(T), "full": True, "opened": 2, "closed": 0, "alerts": 0,
         "slos": [VELOCITY, LEAD], "severity": "SEV4", "paging_state": "OK", "epoch": epoch},
        {"at": format_timestamp(T + 1), "full": False, "opened": 1, "closed": 1, "alerts": 1,
         "slos": [LEAD], "severity": "SEV4", "paging_state": "OK", "epoch": epoch},
    ]  # fmt: skip
    assert second[:2] == first
    assert len(second) == 3
    assert second[2]["slos"] == []
    assert second[2]["epoch"] == epoch

    # A full update starts a new epoch.
    state.apply([LiveUpdate(T + 3, (), (), (), snapshot(T + 3), full=True)])
    assert second[3]["full"] is True
    assert second[3]["epoch"] != epoch
    assert second[3]["slos"] == [VELOCITY, LEAD]


def test_a_failing_subscriber_stops_neither_the_updates_nor_the_others() -> None:
    state = InMemoryLiveState()
    heard: list[dict[str, Any]] = []

    def broken(message: dict[str, Any]) -> None:
        raise RuntimeError("war room went away")

    state.subscribe(broken)
    state.subscribe(heard.append)
    state.apply([LiveUpdate(T, (leak("L1", 10),), (), (), snapshot(T, 1))])
    assert len(heard) == 1
    assert [entry.record_id for entry in state.blast_radius(LEAD)] == ["L1"]


def test_a_subscriber_that_reads_on_receipt_sees_the_update_it_hears_of() -> None:
    state = InMemoryLiveState()
    seen: list[tuple[str, list[str]]] = []

    def read(message: dict[str, Any]) -> None:
        incident = state.incident()
        assert incident is not None
        seen.append((message["at"], [entry.record_id for entry in state.blast_radius(LEAD)]))
        assert incident["at"] >= message["at"]

    state.subscribe(read)
    state.apply(
        [
            LiveUpdate(T, (leak("L1", 10),), (), (), snapshot(T, 1)),
            LiveUpdate(T + 1, (leak("L2", 20),), (), (), snapshot(T + 1, 2)),
        ]
    )
    assert seen == [(format_timestamp(T), ["L1"]), (format_timestamp(T + 1), ["L2", "L1"])]


def test_readers_never_see_half_an_update() -> None:
    """Each update moves a leak from one SLO to the other; the summary counts both. A
    reader racing the writer must always find the same total in one incident document."""
    state = InMemoryLiveState()
    records = [f"L{n}" for n in range(50)]
    state.apply([LiveUpdate(T, tuple(leak(r, 10) for r in records), (), (), snapshot(T, 50))])
    done = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not done.is_set():
            incident = state.incident()
            assert incident is not None
            total = sum(incident["blast_radius"].values())
            if total != 50 or incident["open_leaks"] != 50:
                problems.append(f"{incident['blast_radius']} / {incident['open_leaks']}")

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    rng = random.Random(7)
    where = dict.fromkeys(records, LEAD)
    for step in range(1, 2_000):
        record = rng.choice(records)
        source = where[record]
        target = VELOCITY if source == LEAD else LEAD
        where[record] = target
        moved = Leak(target, record, SLO_RULES[target][0], usd(10), "ana", T)
        gone = (source, record, SLO_RULES[source][0])
        state.apply([LiveUpdate(T + step, (moved,), (gone,), (), snapshot(T + step, 50))])
    done.set()
    for thread in readers:
        thread.join(10)
    assert problems == []
    assert len(state.blast_radius(LEAD, None)) + len(state.blast_radius(VELOCITY, None)) == 50
