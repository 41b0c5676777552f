"""``revleak loadtest``: a recorded topic produced back keeps every message, a paced replay
takes its time, and a CRM scenario run against a live flow gets the pages the offline
replay expects."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from revleak.cli import app
from revleak.connectors import kafka
from revleak.loadtest.loadtest_replay import (
    Outgoing,
    RecordedMessage,
    Replayer,
    parse_speed,
    read_log,
    write_log,
)
from revleak.loadtest.scenarios import SCENARIOS

PNG = b"\x89PNG\r\n\x1a\n"


def loadtest(*args: str) -> str:
    done = CliRunner().invoke(app, ["loadtest", *args], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert done.exit_code == 0, done.output
    return done.output


def topic_name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def test_a_log_line_carries_keys_and_values_as_base64(tmp_path: Path) -> None:
    messages = [
        RecordedMessage(partition=1, offset=7, timestamp=1_000, key=b"\x00k", value=b"\xff\x00"),
        RecordedMessage(partition=0, offset=0, timestamp=-1, value=b""),
    ]
    path = tmp_path / "log.jsonl"
    write_log(path, messages)
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {
        "partition": 1,
        "offset": 7,
        "timestamp": 1_000,
        "key": "AGs=",
        "value": "/wA=",
    }
    assert read_log(path) == messages


def test_speed_is_max_or_a_positive_multiplier() -> None:
    assert parse_speed("max") is None
    assert parse_speed("100") == 100.0
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ValueError, match="neither max nor a positive number"):
            parse_speed(bad)


def test_a_run_needs_a_flow_to_measure_and_a_known_scenario(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    report = str(tmp_path / "report")
    unknown = runner.invoke(app, ["loadtest", "run", "lead-storm", "--report", report])
    assert unknown.exit_code == 2
    assert "is not one of lead-flood, stale-pipeline, duplicate-storm" in unknown.output
    flowless = runner.invoke(app, ["loadtest", "run", "lead-flood", "--report", report])
    assert flowless.exit_code == 2
    assert "--start-stack" in flowless.output
    assert not (tmp_path / "report").exists()


@pytest.mark.services
def test_record_then_replay_keeps_every_message(kafka_brokers: str, tmp_path: Path) -> None:
    source, copy = topic_name("recorded"), topic_name("replayed")
    kafka.ensure_topics(kafka_brokers, {source: 2})
    sent = [
        (index % 2, None if index % 3 == 0 else f"key-{index}".encode(), bytes([index]) * index)
        for index in range(1, 41)
    ]
    producer = Producer({"bootstrap.servers": kafka_brokers})
    for partition, key, value in sent:
        producer.produce(source, value, key=key, partition=partition)
    assert producer.flush(30) == 0

    log = tmp_path / "recorded.jsonl"
    assert "Recorded 40 messages" in loadtest(
        "record", "--topic", source, "--brokers", kafka_brokers, "--output", str(log)
    )
    output = loadtest("replay", str(log), "--topic", copy, "--brokers", kafka_brokers)
    assert f"Produced 40 messages ({sum(len(v) + len(k or b'') for _, k, v in sent):,} bytes)" in (
        output
    )

    def by_partition(topic: str) -> dict[int, list[tuple[bytes | None, bytes]]]:
        found: dict[int, list[tuple[bytes | None, bytes]]] = {0: [], 1: []}
        for message in kafka.read_topic(kafka_brokers, topic):
            found[message.partition].append((message.key, message.value))
        return found

    copied = by_partition(copy)
    assert copied == by_partition(source)
    assert sorted(copied[0] + copied[1], key=lambda kv: len(kv[1])) == [
        (key, value) for _, key, value in sent
    ]

    # From an offset, at most so many a partition.
    part = tmp_path / "part.jsonl"
    loadtest(
        "record", "--topic", source, "--brokers", kafka_brokers, "--output", str(part),
        "--from-offset", "5", "--max", "3",
    )  # fmt: skip
    assert sorted((m.partition, m.offset) for m in read_log(part)) == [
        (partition, offset) for partition in (0, 1) for offset in (5, 6, 7)
    ]


@pytest.mark.services
def test_a_replay_keeps_the_recorded_pace_divided_by_the_speed(kafka_brokers: str) -> None:
    topic = topic_name("paced")
    messages = [
        Outgoing(topic, RecordedMessage(partition=0, offset=i, timestamp=i * 1_000, value=b"x"))
        for i in range(4)
    ]
    produced = Replayer(kafka_brokers).produce(messages, speed=10)
    # A second of event time between messages is a tenth of a second at 10×: never sooner,
    # and on a busy machine not much later.
    since_start = [sent - produced.started_at for sent in produced.sent_at]
    assert all(elapsed >= 0.1 * index - 0.002 for index, elapsed in enumerate(since_start))
    assert since_start[-1] < 0.8, since_start


@pytest.mark.services
@pytest.mark.slow
def test_a_crm_scenario_against_a_started_stack_gets_the_expected_pages(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    started = time.monotonic()
    output = loadtest(
        "run", "lead-flood", "--scale", "0.1", "--speed", "max", "--start-stack",
        "--report", str(report_dir), "--drain-timeout", "30",
    )  # fmt: skip
    assert time.monotonic() - started < 40, "the run took far longer than it should"
    report = json.loads((report_dir / "report.json").read_text())
    alertmanager, alert_log = report["pages"]["alertmanager"], report["pages"]["alert_log"]
    assert alertmanager["expected"] > 0
    assert (alertmanager["received"], alertmanager["missing"], alertmanager["unexpected"]) == (
        alertmanager["expected"],
        [],
        [],
    )
    assert (alert_log["received"], alert_log["missing"], alert_log["unexpected"]) == (
        alert_log["expected"],
        [],
        [],
    )
    # What the run paged is the SLO the scenario is about.
    paged = report["latency"]["pages"]
    assert len(paged) == alertmanager["received"]
    assert {page["slo"] for page in paged} == {SCENARIOS["lead-flood"].slo} == {"lead_response"}
    assert report["latency"]["p99"] >= report["latency"]["p50"] > 0
    assert report["throughput"]["processed_events"] == report["input"]["events"]
    for figure in ("lag.png", "latency.png"):
        assert (report_dir / figure).read_bytes().startswith(PNG)
    assert "pages at Alertmanager: received / expected" in (report_dir / "report.md").read_text()
    assert "report.md" in output
