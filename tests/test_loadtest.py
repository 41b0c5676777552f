"""The load generator (revleak.loadtest.crm_stream) and the benchmark harness (bench)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from harness import DEFAULT_SLOS, replay_lines

from revleak.connectors.generic_json import decode_change
from revleak.crm.events import ChangeEvent, Op
from revleak.crm.records import RecordShard
from revleak.loadtest import bench, crm_stream
from revleak.slo.loader import load_catalog

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LATENESS_MS = 60_000
CLOSED = {"Closed Won", "Closed Lost", "Converted"}


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    """5,000 records, 40,000 events: ~7 updates a record, 2 % out of order, 0.5 % late."""
    return list(
        crm_stream.generate(records=5_000, events=40_000, seed=7, out_of_order=0.02, late=0.005)
    )


@pytest.fixture(scope="module")
def decoded(stream: list[bytes]) -> list[ChangeEvent]:
    events = []
    for offset, raw in enumerate(stream, start=1):
        event = decode_change(raw, partition=0, offset=offset, source="crm")
        assert isinstance(event, ChangeEvent), (offset, raw, event)
        events.append(event)
    return events


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    options = {"records": 300, "events": 2_000, "out_of_order": 0.05, "late": 0.01}
    first = b"\n".join(crm_stream.generate(seed=3, **options))
    assert first == b"\n".join(crm_stream.generate(seed=3, **options))
    assert first != b"\n".join(crm_stream.generate(seed=4, **options))


def test_counts_and_shape(stream: list[bytes]) -> None:
    assert len(stream) == 40_000
    keys = {"event_id", "ts", "object", "op", "record_id", "fields"}
    ids = set()
    for raw in stream:
        assert not raw.endswith(b"\n")
        data = orjson.loads(raw)
        assert set(data) == keys
        assert STAMP.match(data["ts"])
        for name in ("created_at", "last_touch_at"):
            if data["fields"].get(name) is not None:
                assert STAMP.match(data["fields"][name])
        ids.add(data["event_id"])
    assert len(ids) == len(stream)


def test_every_line_decodes_to_a_change_event(decoded: list[ChangeEvent]) -> None:
    # The fixture asserts it (out-of-order and late lines included); check it ran in full.
    assert len(decoded) == 40_000


def test_creates_come_before_updates_of_each_record(decoded: list[ChangeEvent]) -> None:
    created: dict[tuple[str, str], int] = {}
    closed: set[tuple[str, str]] = set()
    for event in decoded:
        key = (event.object.value, event.record_id)
        if event.op is Op.CREATE:
            assert key not in created, f"{key} created twice"
            created[key] = event.ts
            continue
        assert key in created, f"{event.op} of {key} before its create"
        assert event.ts >= created[key], f"{key} changed before it was created"
        assert key not in closed, f"{key} changed after it was closed"
        if event.op is Op.DELETE or event.fields.get("stage") in CLOSED:
            closed.add(key)
    assert len(created) == 5_000


def test_out_of_order_and_late_shares(decoded: list[ChangeEvent]) -> None:
    newest = decoded[0].ts
    early = late = 0
    for event in decoded:
        if event.ts < newest - LATENESS_MS:
            late += 1
        elif event.ts < newest:
            early += 1
        newest = max(newest, event.ts)
    assert 0.015 * 40_000 <= early <= 0.025 * 40_000
    assert 0.003 * 40_000 <= late <= 0.007 * 40_000
    # The rest of the stream runs forward in time over the span.
    start = crm_stream.parse_time("2026-03-02T00:00:00Z")
    assert all(start <= event.ts <= start + 7 * crm_stream.DAY_MS for event in decoded)


def test_no_displacement_means_time_order() -> None:
    lines = crm_stream.generate(records=500, events=3_000, out_of_order=0.0, late=0.0)
    times = [orjson.loads(raw)["ts"] for raw in lines]
    assert times == sorted(times)


def test_mix_is_roughly_what_was_asked(decoded: list[ChangeEvent]) -> None:
    creates = [event for event in decoded if event.op is Op.CREATE]
    updates = [event for event in decoded if event.op is Op.UPDATE]
    deletes = [event for event in decoded if event.op is Op.DELETE]
    n = len(creates)
    share = Counter(event.object.value for event in creates)
    assert 0.27 <= share["opportunity"] / n <= 0.33

    free_mail = set(crm_stream.FREE_MAIL)
    domains = Counter()
    no_owner = no_region = no_value = free = 0
    for event in creates:
        fields = event.fields
        no_owner += not fields.get("owner")
        no_region += not fields.get("region")
        no_value += fields.get("value_usd") is None
        email = str(fields.get("email") or "")
        free += email.partition("@")[2] in free_mail
        domain = fields.get("domain") or email.partition("@")[2]
        if domain and domain not in free_mail:
            domains[(event.object.value, domain)] += 1
        value = fields.get("value_usd")
        assert value is None or 1_000 <= float(value) <= 500_000
    assert 0.01 <= no_owner / n <= 0.03
    assert 0.004 <= no_region / n <= 0.02
    assert 0.05 <= no_value / n <= 0.11
    assert 0.21 <= free / n <= 0.29
    assert 0.56 <= sum(domains.values()) / n <= 0.64
    shared = [count for count in domains.values() if count > 1]
    assert shared, "no duplicate suspects"
    assert max(shared) <= 3

    kinds = Counter()
    for event in updates:
        fields = event.fields
        if fields.get("stage") in CLOSED:
            kinds["close"] += 1
        elif "stage" in fields:
            kinds["stage"] += 1
        elif "last_touch_at" in fields:
            kinds["touch"] += 1
            assert fields["last_touch_at"] == event.ts  # a touch happens at the event's time
        elif "next_step" in fields:
            kinds["next_step"] += 1
        elif "owner" in fields or "region" in fields:
            kinds["owner_region"] += 1
        else:
            kinds["other"] += 1
    total = len(updates) + len(deletes)
    assert kinds["touch"] / total > 0.5
    assert kinds["touch"] + kinds["stage"] > 0.7 * total
    assert kinds["stage"] > kinds["next_step"] > kinds["owner_region"] > 0
    assert 0.02 * n < kinds["close"] < 0.3 * n
    assert 0 < len(deletes) < 0.03 * n


def test_leads_are_mostly_touched_in_time_and_some_opportunities_go_idle(
    decoded: list[ChangeEvent],
) -> None:
    created: dict[str, int] = {}
    first_touch: dict[str, int] = {}
    last_activity: dict[str, int] = {}
    for event in decoded:
        if event.object.value == "lead":
            if event.op is Op.CREATE:
                created[event.record_id] = event.ts
            elif "last_touch_at" in event.fields:
                first_touch.setdefault(event.record_id, event.ts)
        elif event.op is not Op.DELETE:
            last_activity[event.record_id] = max(last_activity.get(event.record_id, 0), event.ts)
    slow = sum(
        1
        for record, at in created.items()
        if first_touch.get(record, at + 31 * crm_stream.MINUTE_MS) - at > 30 * crm_stream.MINUTE_MS
    )
    assert 0.01 <= slow / len(created) <= 0.10
    end = max(event.ts for event in decoded)
    idle = sum(1 for at in last_activity.values() if end - at > 3 * crm_stream.DAY_MS)
    assert 0 < idle < 0.2 * len(last_activity)


def test_few_events_per_record_still_creates_every_record() -> None:
    lines = list(crm_stream.generate(records=2_000, events=2_500, seed=2))
    assert len(lines) == 2_500
    creates = sum(1 for raw in lines if b'"op":"create"' in raw)
    assert creates == 2_000


def test_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="at least one event per record"):
        next(crm_stream.generate(records=10, events=5))
    with pytest.raises(ValueError, match="fractions"):
        next(crm_stream.generate(records=10, events=50, out_of_order=0.8, late=0.5))


def test_write_and_cli(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    assert crm_stream.write(path, records=100, events=700, seed=5) == 700
    expected = b"".join(
        line + b"\n" for line in crm_stream.generate(records=100, events=700, seed=5)
    )
    assert path.read_bytes() == expected
    out = tmp_path / "b.jsonl"
    assert (
        crm_stream.main(["--records", "100", "--events", "700", "--seed", "5", "--out", str(out)])
        == 0
    )
    assert out.read_bytes() == expected


def test_a_generated_stream_replays_with_records_left_open() -> None:
    lines = list(crm_stream.generate(records=300, events=2_000, seed=11, late=0.01))
    outputs = replay_lines(lines)
    late = [letter for letter in outputs.dead_letters if letter.reason == "late"]
    assert late, "the late share is dead-lettered as late"
    assert all(letter.reason == "late" for letter in outputs.dead_letters)
    assert outputs.alerts, "an untouched share of leads burns some budget"


# -- the harness ----------------------------------------------------------------------------


def test_state_events_are_sorted_before_their_watermark_and_fill_a_shard() -> None:
    shard = RecordShard(load_catalog(DEFAULT_SLOS))
    previous_watermark = None
    creates = touches = 0
    for events, watermark in bench.state_events(5_000, seed=1, chunk=1_000):
        orders = [event.order for event in events]
        assert orders == sorted(orders)
        assert all(event.ts < watermark for event in events)
        if previous_watermark is not None:
            assert all(event.ts >= previous_watermark for event in events)
        previous_watermark = watermark
        creates += sum(1 for event in events if event.op is Op.CREATE)
        touches += sum(1 for event in events if event.op is Op.UPDATE)
        shard.advance(events, watermark)
    assert creates == touches == 5_000
    assert shard.open_records == 5_000


def test_report_has_machine_targets_and_table() -> None:
    replay = {
        "events": 1_000, "accepted": 990, "late": 10, "dead_letters": 0, "seconds": 0.5,
        "open_records": 700, "closed_records": 300, "shards": 8, "timeline_entries": 5,
        "peak_rss_kib": 70_000,
    }  # fmt: skip

    base = 30 << 20

    def state(with_domains: bool, grown: int) -> dict[str, object]:
        after = base + grown
        return {
            "records": 1_000_000, "events": 2_000_000, "with_domains": with_domains,
            "rss_before": base, "rss_after": after, "bytes_per_record": grown / 1e6,
            "open_records": 1_000_000, "index_members": 600_000, "seconds": 40.0,
            "peak_rss_kib": after // 1024,
        }  # fmt: skip

    results = {
        "lines": 1_000, "file_bytes": 300_000, "generation_seconds": 0.1,
        "replays": {1: replay, 2: {**replay, "seconds": 0.25}}, "alerts_identical": True,
        "alert_lines": 12, "alerts_sha256": "ab" * 32,
        "states": {False: state(False, 200_000_000), True: state(True, 280_000_000)},
    }  # fmt: skip
    sizes = bench.Sizes(records=700, events=1_000, days=7, seed=1, state_records=1_000_000)
    text = bench.render(results, sizes, command="python -P -m revleak.loadtest.bench")
    assert "| measurement | result | target | met |" in text
    assert "| a) end to end, 1 worker: events/s | 2,000 | ≥ 100,000 per worker | **no** |" in text
    assert "| b) 2 workers: events/s per worker | 2,000 |" in text
    assert "| c) total state, B/open record | 280.0 | ≤ 300 | yes |" in text
    assert "| c) record state (RecordShard), B/open record | 200.0 |" in text
    assert "1 M open records RSS (MB = 10⁶ B) | 311.5 (297.1 MiB) | < 500 MB | yes |" in text
    assert "## What bounds it" in text
    assert "CPU:" in text
    assert "Bytewax 0.21.1" in text


@pytest.mark.slow
def test_bench_quick_writes_the_report(tmp_path: Path) -> None:
    # The API's, the telemetry flow's and the head-to-head parts have tests of their own.
    output = tmp_path / "BENCHMARKS.md"
    subprocess.run(
        [sys.executable, "-P", "-m", "revleak.loadtest.bench", "--quick", "--no-api",
         "--no-telemetry", "--no-head-to-head", "--output", str(output)],
        check=True,
        timeout=300,
        capture_output=True,
    )  # fmt: skip
    text = output.read_text(encoding="utf-8")
    assert "| measurement | result | target | met |" in text
    for row in (
        "a) end to end, 1 worker: events/s",
        "b) alert log byte-identical",
        "c) total state",
    ):
        assert f"| {row}" in text
    assert "| b) alert log byte-identical to 1 worker | yes |" in text
    assert "## What bounds it" in text
