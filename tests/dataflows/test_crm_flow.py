"""The Bytewax CRM flow: worked examples, worker-count and batch-size independence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bytewax.testing import cluster_main, run_main
from examples import (
    EXAMPLES,
    assert_alert_logs_match,
    events_path,
    expected_alerts,
    read_json_lines,
)
from harness import DEFAULT_SLOS, ROOT

from revleak.connectors.csv_import import read_funnel
from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, TIMELINE, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.sinks import json_lines_sink
from revleak.dataflows.sources import ChangeLogSource, FunnelCsvSource
from revleak.slo.loader import load_catalog
from revleak.timefmt import format_timestamp

pytestmark = pytest.mark.slow


def run_flow(
    tmp: Path, source: object, *, workers: int, shards: int = 4, partitions: int = 1
) -> dict[str, bytes]:
    outputs = {
        key: tmp / f"{key.removeprefix('out:')}.jsonl" for key in (ALERTS, TIMELINE, DEAD_LETTERS)
    }
    config = FlowConfig(catalog=load_catalog(DEFAULT_SLOS), shards=shards, partitions=partitions)
    flow = build_crm_flow(config, source, json_lines_sink(dict(outputs)))  # type: ignore[arg-type]
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return {key: path.read_bytes() if path.exists() else b"" for key, path in outputs.items()}


@pytest.mark.parametrize("name", EXAMPLES)
def test_worked_example_on_one_and_two_workers(tmp_path: Path, name: str) -> None:
    one = run_flow(tmp_path / "w1", ChangeLogSource([events_path(name)], batch_size=2), workers=1)
    two = run_flow(tmp_path / "w2", ChangeLogSource([events_path(name)], batch_size=2), workers=2)
    assert one == two
    alerts = [json.loads(line) for line in one[ALERTS].splitlines()]
    assert_alert_logs_match(alerts, expected_alerts(name))


def test_dead_letters_keep_reason_line_and_text(tmp_path: Path) -> None:
    name = "03-data-quality-late-malformed"
    out = run_flow(tmp_path, ChangeLogSource([events_path(name)]), workers=1)
    letters = [json.loads(line) for line in out[DEAD_LETTERS].splitlines()]
    assert [(letter["reason"], letter["line"]) for letter in letters] == [
        ("late", 7),
        ("malformed_json", 8),
    ]
    assert letters[1]["original"] == "this line is not an event"
    assert '"event_id":"a7"' in letters[0]["original"]


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_story_is_the_same_whatever_the_batch_size_and_shards(
    tmp_path: Path, batch_size: int
) -> None:
    story = ROOT / "data" / "nakatomi.jsonl"
    reference = run_flow(
        tmp_path / "ref", ChangeLogSource([story], batch_size=1000), workers=1, shards=8
    )
    other = run_flow(
        tmp_path / "other", ChangeLogSource([story], batch_size=batch_size), workers=2, shards=3
    )
    assert other[ALERTS] == reference[ALERTS]
    assert other[TIMELINE] == reference[TIMELINE]
    assert reference[ALERTS].count(b'"state": "firing"') > 10


def test_csv_funnel_replays_like_the_same_events_as_json(tmp_path: Path) -> None:
    funnel = ROOT / "data" / "funnel-week1.csv"
    as_json = tmp_path / "funnel.jsonl"
    with as_json.open("w") as out:
        for item in read_funnel(funnel.read_bytes()):
            assert isinstance(item, tuple), item
            event = item[0]
            fields = {
                name: _iso(value) if name in ("created_at", "last_touch_at") else value
                for name, value in event.fields.items()
            }
            out.write(
                json.dumps(
                    {
                        "event_id": event.event_id,
                        "ts": _iso(event.ts),
                        "object": event.object.value,
                        "op": event.op.value,
                        "record_id": event.record_id,
                        "fields": fields,
                    }
                )
                + "\n"
            )
    from_csv = run_flow(tmp_path / "csv", FunnelCsvSource(funnel), workers=1)
    from_json = run_flow(tmp_path / "json", ChangeLogSource([as_json]), workers=1)
    assert from_csv[ALERTS] == from_json[ALERTS]
    assert read_json_lines(tmp_path / "csv" / "alerts.jsonl")


def test_several_input_files_are_partitions(tmp_path: Path) -> None:
    story = (ROOT / "data" / "nakatomi.jsonl").read_text().splitlines(keepends=True)
    leads = tmp_path / "leads.jsonl"
    opportunities = tmp_path / "opportunities.jsonl"
    leads.write_text("".join(line for line in story if '"object":"lead"' in line))
    opportunities.write_text("".join(line for line in story if '"object":"lead"' not in line))
    split = run_flow(
        tmp_path / "split", ChangeLogSource([leads, opportunities]), workers=2, partitions=2
    )
    whole = run_flow(
        tmp_path / "whole", ChangeLogSource([ROOT / "data" / "nakatomi.jsonl"]), workers=1
    )
    assert split[ALERTS] == whole[ALERTS]


def _iso(value: object) -> object:
    return format_timestamp(value) if isinstance(value, int) else value
