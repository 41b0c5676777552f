"""Redis live state written by a live flow, through a SIGKILL and a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import decode_batches, default_catalog, run_pipeline

from revleak.connectors.redis_state import RedisLiveState
from revleak.crm.pipeline import FlowConfig
from revleak.loadtest import soak
from revleak.slo.incident import LeakKey, LiveUpdate, severity_name

pytestmark = [pytest.mark.services, pytest.mark.slow]


def blast_radius_of(updates: list[LiveUpdate]) -> dict[LeakKey, float]:
    """What a view that applies every update holds: the open leaks and their impact."""
    held: dict[LeakKey, float] = {}
    for update in updates:
        if update.full:
            held = {}
        for key in update.closed:
            held.pop(key, None)
        for leak in update.opened:
            held[leak.key] = leak.impact_usd
    return held


def test_a_killed_and_restarted_flow_leaves_redis_as_the_stream_says(
    kafka_brokers: str, redis_url: str, story: list[bytes], tmp_path: Path
) -> None:
    topics = soak.Topics.fresh("live-state")
    topics.create(kafka_brokers)
    args = [
        *soak.live_args(kafka_brokers, topics, recovery_dir=tmp_path / "recovery"),
        "--redis-url",
        redis_url,
    ]
    flow = soak.LiveFlow("flow", args, tmp_path / "flow")
    flow.start()
    try:
        soak.feed(kafka_brokers, [topics.changes], story[: len(story) // 2])
        time.sleep(3)  # a few snapshots, some of the input processed
        flow.kill()
        flow.start()
        soak.feed(kafka_brokers, [topics.changes], story[len(story) // 2 :])
        expected_log = soak.expected_log(story, tmp_path / "expected")
        watched = {"flow": (topics.alerts, [flow])}
        logs = soak.wait_for_logs(kafka_brokers, watched, len(expected_log))
        assert logs["flow"] == expected_log
    finally:
        codes = soak.stop_all([flow])
    assert codes == {"flow": 0}, flow.log_tail()

    # The same changes in-process, up to the same watermark (no end of input).
    batches = [b for b in decode_batches(story) if not b.end]
    stream = run_pipeline(
        FlowConfig(catalog=default_catalog(), shards=8, live_view=True), [batches]
    )
    expected = blast_radius_of(stream.live)
    assert expected, "the story leaves leaks open"
    summary = stream.live[-1].summary

    with RedisLiveState(redis_url) as state:
        held = {
            (entry.slo, entry.record_id, entry.rule): entry.impact_usd
            for slo in default_catalog().names
            for entry in state.blast_radius(slo, None)
        }
        assert held == {
            (slo, record_id, rule.value): impact
            for (slo, record_id, rule), impact in expected.items()
        }
        incident = state.incident()
        assert incident is not None
        assert incident["severity"] == severity_name(summary.severity)
        assert incident["open_leaks"] == summary.open_leaks == len(expected)
        assert incident["paging_state"] == summary.paging_state.name
