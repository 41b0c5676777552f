"""The flow over a real Kafka-protocol broker (Tansu): replay from a topic, vendor payloads
paged to a real Alertmanager, and poison messages dead-lettered while the flow goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from examples import read_json_lines
from harness import DEFAULT_SLOS, ROOT, generic_line

from revleak.connectors import kafka
from revleak.connectors.formats import Format, decoder_for
from revleak.connectors.messages import Position
from revleak.dataflows.live_sinks import AlertmanagerPages
from revleak.dataflows.replay import KafkaInput, replay
from revleak.loadtest import services
from revleak.slo.loader import load_catalog
from revleak.timefmt import parse_timestamp

pytestmark = [pytest.mark.services, pytest.mark.slow]

VENDORS = ROOT / "tests" / "data" / "vendors"
STORY = ROOT / "data" / "nakatomi.jsonl"
MINIMAL_ALERTMANAGER = "route:\n  receiver: sink\nreceivers:\n  - name: sink\n"


def topic_name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def produce(brokers: str, topic: str, messages: list[tuple[int, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": brokers, "message.max.bytes": 16_000_000})
    failures: list[Any] = []
    for partition, value in messages:
        producer.produce(
            topic,
            value,
            partition=partition,
            on_delivery=lambda error, _: failures.append(error) if error else None,
        )
    assert producer.flush(60) == 0
    assert not failures


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def file_replay(tmp_path: Path, name: str, files: list[Path], fmt: str) -> list[dict[str, Any]]:
    out = tmp_path / f"{name}.alerts.jsonl"
    replay(catalog=load_catalog(DEFAULT_SLOS), events=files, input_format=fmt, alerts_out=out)
    return read_json_lines(out)


def as_generic(lines: list[bytes]) -> list[bytes]:
    decode = decoder_for(Format.AUTO)
    return [
        generic_line(change)
        for offset, raw in enumerate(lines, start=1)
        for change in decode(raw, Position("crm", 0, offset)).events
    ]


def test_a_topic_replayed_to_its_end_gives_the_file_replays_alert_log(
    kafka_brokers: str, tmp_path: Path
) -> None:
    # All records of one object on one of three partitions, as a CRM producer keys them.
    lines = lines_of(STORY)
    partitions: list[list[bytes]] = [[], [], []]
    for line in lines:
        record = json.loads(line)["record_id"]
        partitions[zlib.crc32(record.encode()) % 3].append(line)
    topic = topic_name("crm.changes")
    kafka.ensure_topics(kafka_brokers, {topic: 3})
    produce(kafka_brokers, topic, [(p, line) for p, part in enumerate(partitions) for line in part])
    files = []
    for index, part in enumerate(partitions):
        files.append(tmp_path / f"p{index}.jsonl")
        files[-1].write_bytes(b"\n".join(part) + b"\n")

    out = tmp_path / "kafka.alerts.jsonl"
    report = replay(
        catalog=load_catalog(DEFAULT_SLOS),
        kafka=KafkaInput(kafka_brokers, topic),
        alerts_out=out,
        workers=2,
    )
    assert report.accepted == len(lines)
    expected = file_replay(tmp_path, "files", files, "generic")
    assert len(expected) > 50
    assert read_json_lines(out) == expected

    # From given offsets: skipping a partition's head is the same as a file without it.
    skipped = 5
    files[0].write_bytes(b"\n".join(partitions[0][skipped:]) + b"\n")
    replay(
        catalog=load_catalog(DEFAULT_SLOS),
        kafka=KafkaInput(kafka_brokers, topic, {0: skipped}),
        alerts_out=out,
    )
    assert read_json_lines(out) == file_replay(tmp_path, "skipped", files, "generic")


@pytest.fixture
def alertmanager_url(tmp_path: Path) -> Iterator[str]:
    with services.alertmanager(tmp_path / "alertmanager", MINIMAL_ALERTMANAGER) as url:
        yield url


@pytest.mark.parametrize("fixture", ["salesforce-cdc.jsonl", "hubspot-webhooks.jsonl"])
def test_vendor_payloads_through_kafka_page_alertmanager_as_the_generic_replay_logs(
    kafka_brokers: str, alertmanager_url: str, tmp_path: Path, fixture: str
) -> None:
    lines = lines_of(VENDORS / fixture)
    topic = topic_name("crm.changes")
    kafka.ensure_topics(kafka_brokers, {topic: 1})
    produce(kafka_brokers, topic, [(0, line) for line in lines])
    out = tmp_path / "alerts.jsonl"
    replay(
        catalog=load_catalog(DEFAULT_SLOS),
        kafka=KafkaInput(kafka_brokers, topic),
        input_format="auto",
        alerts_out=out,
        alertmanager=AlertmanagerPages(alertmanager_url, min_firing_s=0),
    )
    log = read_json_lines(out)
    generic = tmp_path / "generic.jsonl"
    generic.write_bytes(b"\n".join(as_generic(lines)) + b"\n")
    assert log == file_replay(tmp_path, "generic", [generic], "generic")

    # Every rule the log fired reached Alertmanager once, and ends resolved as the log does.
    fired = {
        (a["slo"], a["severity"], a["kind"], a["long_window"], a["short_window"])
        for a in log
        if a["state"] == "firing"
    }
    assert fired
    held = httpx.get(f"{alertmanager_url}/api/v2/alerts", timeout=5).json()
    seen = {
        (
            alert["labels"]["slo"],
            alert["labels"]["severity"],
            alert["labels"]["kind"],
            alert["labels"]["long_window"],
            alert["labels"]["short_window"],
        )
        for alert in held
    }
    assert seen <= fired
    assert all(alert["labels"]["alertname"] == "SLOBurnRate" for alert in held)
    # Resolved pages carry endsAt in the past: none is active any more.
    assert all(parse_timestamp(alert["endsAt"]) <= time.time() * 1000 for alert in held)


def revleak_command() -> str:
    return str(Path(sys.executable).with_name("revleak"))


def test_poison_messages_reach_the_dlq_and_the_flow_keeps_going(
    kafka_brokers: str, tmp_path: Path
) -> None:
    topic, alerts, dlq = topic_name("crm.changes"), topic_name("alerts"), topic_name("dlq")
    kafka.ensure_topics(kafka_brokers, {topic: 1, alerts: 1, dlq: 1})
    story = lines_of(STORY)
    unknown_entity = json.dumps(
        {
            "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
            "payload": {
                "ChangeEventHeader": {
                    "entityName": "Account",
                    "recordIds": ["001xx000003DGb2AAG"],
                    "changeType": "CREATE",
                    "changeOrigin": "com/salesforce/api/soap/58.0",
                    "transactionKey": "0002343d-9d90-e395-ed20-cf416ba652ad",
                    "sequenceNumber": 1,
                    "commitTimestamp": 1709370000000,
                    "commitNumber": 10714189,
                    "commitUser": "005xx000001Sv1mAAC",
                    "changedFields": [],
                },
                "Name": "Acme",
            },
            "event": {"replayId": 1},
        }
    ).encode()
    poison = {
        "junk": bytes(range(256)) * 4,
        "huge": b'{"event_id":"x","ts":"2026-03-02T09:00:00Z","pad":"' + b"a" * 10_000_000 + b'"}',
        "schema": b'{"event_id":"s","ts":"yesterday","object":"lead","op":"create"}',
        "entity": unknown_entity,
    }
    middle = len(story) // 2
    sequence = [*story[:middle], *poison.values(), *story[middle:]]
    produce(kafka_brokers, topic, [(0, value) for value in sequence])

    workdir = tmp_path / "run"
    workdir.mkdir()
    process = subprocess.Popen(
        [
            revleak_command(),
            "run",
            "crm",
            "--changes-topic",
            topic,
            "--alerts-topic",
            alerts,
            "--dlq-topic",
            dlq,
            "--slos",
            str(DEFAULT_SLOS),
            "--idle-timeout-s",
            "1",
        ],
        cwd=workdir,
        env={**os.environ, "REVLEAK_BROKERS": kafka_brokers},
        stdout=(workdir / "flow.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        dead = wait_for_records(kafka_brokers, dlq, 4, process)
        expected_log = file_replay(tmp_path, "story", [STORY], "generic")
        watermark = max(parse_timestamp(json.loads(line)["ts"]) for line in story) - 60_000
        expected = [a for a in expected_log if parse_timestamp(a["at"]) < watermark]
        log = wait_for_log(kafka_brokers, alerts, len(expected), process)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, (workdir / "flow.log").read_text()[-3000:]
    assert log == expected

    offsets = {value: middle + index for index, value in enumerate(poison)}
    by_offset = {record["offset"]: record for record in dead}
    assert sorted(by_offset) == sorted(offsets.values())
    junk = by_offset[offsets["junk"]]
    assert junk["reason"] == "unknown_format"
    assert junk["topic"] == topic
    assert junk["partition"] == 0
    assert junk["received_at"].endswith("Z")
    assert junk["size"] == len(poison["junk"])
    huge = by_offset[offsets["huge"]]
    assert huge["reason"] == "too_large"
    assert huge["truncated"] is True
    assert huge["size"] == len(poison["huge"])
    assert huge["original"] == poison["huge"][: kafka.DLQ_ORIGINAL_BYTES].decode()
    assert by_offset[offsets["schema"]]["reason"] == "invalid_event"
    assert by_offset[offsets["schema"]]["original"] == poison["schema"].decode()
    assert by_offset[offsets["entity"]]["reason"] == "unknown_entity"


def wait_for_records(
    brokers: str, topic: str, count: int, process: subprocess.Popen[bytes], timeout_s: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the flow stopped"
        records = [json.loads(m.value) for m in kafka.read_topic(brokers, topic)]
        if len(records) >= count:
            return records
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} records in {topic} after {timeout_s} s")


def wait_for_log(
    brokers: str, topic: str, count: int, process: subprocess.Popen[bytes], timeout_s: float = 60
) -> list[dict[str, Any]]:
    """The alert log once it has ``count`` records and stopped growing."""
    records = wait_for_records(brokers, topic, count, process, timeout_s)
    time.sleep(2)
    again = [json.loads(m.value) for m in kafka.read_topic(brokers, topic)]
    assert again == records, "the alert log kept growing past what the watermark allows"
    return records
