"""The alert log's Kafka sink across restarts: exactly once, from a snapshot or from none."""

from __future__ import annotations

import uuid

import orjson
import pytest

from revleak.connectors import kafka
from revleak.dataflows.live_sinks import KafkaAlertLog
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import BurnKind

pytestmark = pytest.mark.services


def transitions(count: int) -> list[AlertTransition]:
    return [
        AlertTransition(
            slo="availability", severity="page", kind=BurnKind.COUNT, long_ms=3_600_000,
            short_ms=300_000, firing=index % 2 == 0, at=1_800_000_000_000 + index,
            burn_long=20.0, burn_short=20.0, budget_remaining=0.5, at_risk_picos=0,
            blast_radius=0,
        )
        for index in range(count)
    ]  # fmt: skip


def written(brokers: str, topic: str) -> list[str]:
    return [orjson.loads(m.value)["at"] for m in kafka.read_topic(brokers, topic)]


def run(log: KafkaAlertLog, resume: int | None, records: list[AlertTransition]) -> int:
    sink = log.open(resume)
    sink.write_batch(records)
    position = sink.snapshot()
    sink.close()
    return int(position)


@pytest.mark.parametrize("snapshot_before_the_kill", [True, False])
def test_a_restarted_flow_writes_each_record_once(
    kafka_brokers: str, snapshot_before_the_kill: bool
) -> None:
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(kafka_brokers, {topic: 1})
    records = transitions(6)
    # The first run wrote four records; its last snapshot (if any) said two.
    run(KafkaAlertLog(kafka_brokers, topic), None, records[:4])
    resume = 2 if snapshot_before_the_kill else None
    # The restarted flow computes again from that snapshot (from the first record without
    # one) and writes through to the end.
    again = records[2:] if snapshot_before_the_kill else records
    position = run(KafkaAlertLog(kafka_brokers, topic, restarted=True), resume, again)
    assert written(kafka_brokers, topic) == [record.record()["at"] for record in records]
    assert position == 6


def test_a_new_log_writes_everything_whatever_the_topic_holds(kafka_brokers: str) -> None:
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(kafka_brokers, {topic: 1})
    run(KafkaAlertLog(kafka_brokers, topic), None, transitions(2))
    run(KafkaAlertLog(kafka_brokers, topic), None, transitions(3))
    assert len(written(kafka_brokers, topic)) == 5
