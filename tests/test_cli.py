"""The command line, run as a user runs it (a subprocess of the installed ``revleak``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bytewax.errors import BytewaxRuntimeError
from examples import assert_alert_logs_match, events_path, expected_alerts, expected_summary
from harness import DEFAULT_SLOS, ROOT

from revleak.cli.run import _stopped_by_signal

pytestmark = pytest.mark.slow
REVLEAK = Path(sys.executable).parent / "revleak"


def revleak(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    return subprocess.run(
        [str(REVLEAK), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def test_replay_writes_the_alert_log_and_is_the_same_on_two_workers(tmp_path: Path) -> None:
    name = "03-data-quality-late-malformed"
    outputs = {}
    for workers in (1, 2):
        alerts = tmp_path / f"alerts-{workers}.jsonl"
        done = revleak(
            "replay",
            "--slos",
            DEFAULT_SLOS,
            "--events",
            events_path(name),
            "--alerts-out",
            alerts,
            "--dlq-out",
            tmp_path / f"dlq-{workers}.jsonl",
            "--metrics-out",
            tmp_path / f"metrics-{workers}.prom",
            "--workers",
            str(workers),
        )
        assert done.returncode == 0, done.stderr
        outputs[workers] = alerts.read_bytes()
    assert outputs[1] == outputs[2]
    alerts = [json.loads(line) for line in outputs[1].splitlines()]
    assert_alert_logs_match(alerts, expected_alerts(name))
    assert (tmp_path / "metrics-1.prom").read_bytes() == (tmp_path / "metrics-2.prom").read_bytes()
    summary = expected_summary(name)
    assert "11 events" in done.stdout
    assert f"{summary['accepted_events']} accepted, {summary['late_events']} late" in done.stdout
    assert "pages: 5" in done.stdout
    assert "tickets: 6" in done.stdout


def test_metrics_file_has_the_documented_names(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.prom"
    done = revleak(
        "replay",
        "--slos",
        DEFAULT_SLOS,
        "--events",
        events_path("01-lead-response"),
        "--alerts-out",
        tmp_path / "a.jsonl",
        "--metrics-out",
        metrics,
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    text = metrics.read_text()
    for name in (
        'revleak_sli_events_total{outcome="bad",slo="lead_response"} 1.0',
        'revleak_sli_weight_usd_total{outcome="bad",slo="lead_response"} 7500.0',
        'revleak_events_total{outcome="accepted",source="crm"} 4.0',
        'revleak_slo_burn_rate{kind="usd",slo="lead_response",window="1h"}',
        'revleak_slo_error_budget_remaining_ratio{kind="usd",slo="lead_response"} 0.5',
        'revleak_revenue_at_risk_usd{slo="lead_response"} 7500.0',
        "revleak_budget_consumption_ratio 0.15",
        "revleak_paging_state 0",
        "revleak_incident_severity 0",
        "revleak_alerts_firing",
        "revleak_late_events",
        "revleak_watermark_lag_seconds",
    ):
        assert name in text, name
    assert "_created" not in text


def test_bad_lines_go_to_the_dead_letter_file_and_the_rest_is_processed(tmp_path: Path) -> None:
    good = events_path("01-lead-response").read_text().splitlines()
    lines = [
        good[0],
        '{"event_id": "x", "ts": "2026-03-02T10:0',  # truncated
        "\x00\x01 garbage",
        '{"event_id": "y", "ts": 12, "object": "lead", "op": "create", "record_id": "L9"}',
        '{"event_id": "z", "ts": "2026-03-02T10:05:00Z", "object": "lead", "op": "update", '
        '"record_id": "L1", "fields": {"value_usd": "lots"}}',
        *good[1:],
        '{"event_id": "old", "ts": "2026-03-02T09:00:00Z", "object": "lead", "op": "create", '
        '"record_id": "L8", "fields": {}}',  # out of order beyond the lateness
    ]
    events = tmp_path / "mixed.jsonl"
    events.write_text("\n".join(lines) + "\n")
    dlq = tmp_path / "dlq.jsonl"
    alerts = tmp_path / "alerts.jsonl"
    done = revleak(
        "replay",
        "--slos",
        DEFAULT_SLOS,
        "--events",
        events,
        "--alerts-out",
        alerts,
        "--dlq-out",
        dlq,
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    letters = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert [(letter["line"], letter["reason"]) for letter in letters] == [
        (2, "malformed_json"),
        (3, "malformed_json"),
        (4, "invalid_event"),
        (5, "invalid_event"),
        (9, "late"),
    ]
    assert "fields.value_usd" in letters[3]["detail"]
    assert "ts" in letters[2]["detail"]
    assert letters[1]["original"] == "\x00\x01 garbage"
    assert_alert_logs_match(
        [json.loads(line) for line in alerts.read_text().splitlines()],
        expected_alerts("01-lead-response"),
    )


def test_csv_replay(tmp_path: Path) -> None:
    done = revleak(
        "replay",
        "--slos",
        DEFAULT_SLOS,
        "--events",
        ROOT / "data" / "funnel-week1.csv",
        "--format",
        "csv",
        "--alerts-out",
        tmp_path / "a.jsonl",
    )
    assert done.returncode == 0, done.stderr
    assert "dead-lettered" in done.stdout


def test_story_reaches_sev1_and_page_and_names_the_records() -> None:
    done = revleak("story", "--headless")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "SEV1" in out
    assert "PAGE" in out
    assert "O-NAKATOMI-PLAZA" in out
    assert "SLA_BREACH_UNTOUCHED" in out
    assert "Records carrying the risk" in out


def test_slo_validate_accepts_the_default_file() -> None:
    done = revleak("slo", "validate", DEFAULT_SLOS)
    assert done.returncode == 0, done.stderr
    assert "is valid" in done.stdout


def test_slo_validate_explains_every_problem(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    text = (
        DEFAULT_SLOS.read_text()
        .replace("target: 0.95", "target: 95")
        .replace("threshold: 24h", "treshold: 24h")
    )
    broken.write_text(text)
    done = revleak("slo", "validate", broken)
    assert done.returncode == 1
    assert "target is 0-1, not 0-100" in done.stderr
    assert "treshold" in done.stderr
    assert "unknown field" in done.stderr
    assert f"{broken}:" in done.stderr


def test_the_flow_runs_under_bytewax_own_runner(tmp_path: Path) -> None:
    alerts = tmp_path / "alerts.jsonl"
    name = "01-lead-response"
    flow = (
        f"revleak.dataflows.crm:replay_flow({str(DEFAULT_SLOS)!r}, "
        f"{str(events_path(name))!r}, alerts_out={str(alerts)!r})"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-m", "bytewax.run", flow, "-w", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # the runner puts its folder first on sys.path
    )
    assert done.returncode == 0, done.stderr
    assert_alert_logs_match(
        [json.loads(line) for line in alerts.read_text().splitlines()], expected_alerts(name)
    )


def test_vendor_payloads_replay_with_a_custom_mapping(tmp_path: Path) -> None:
    vendors = ROOT / "tests" / "data" / "vendors"
    mapping = tmp_path / "salesforce.yaml"
    mapping.write_text((ROOT / "connectors" / "mappings" / "salesforce.yaml").read_text())
    done = revleak(
        "replay",
        "--slos",
        DEFAULT_SLOS,
        "--format",
        "auto",
        "--mapping",
        mapping,
        "--events",
        vendors / "salesforce-cdc.jsonl",
        "--events",
        vendors / "hubspot-webhooks.jsonl",
        "--alerts-out",
        tmp_path / "a.jsonl",
        "--dlq-out",
        tmp_path / "dlq.jsonl",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    reasons = [json.loads(line)["reason"] for line in (tmp_path / "dlq.jsonl").open()]
    assert "gap" in reasons
    assert (tmp_path / "a.jsonl").read_text().count('"state": "firing"') > 0


def test_a_broken_mapping_is_explained(tmp_path: Path) -> None:
    mapping = tmp_path / "broken.yaml"
    mapping.write_text(
        (ROOT / "connectors" / "mappings" / "hubspot.yaml")
        .read_text()
        .replace("object: lead", "object: account", 1)
    )
    done = revleak(
        "replay",
        "--slos",
        DEFAULT_SLOS,
        "--format",
        "hubspot",
        "--mapping",
        mapping,
        "--events",
        ROOT / "tests" / "data" / "vendors" / "hubspot-webhooks.jsonl",
        "--alerts-out",
        tmp_path / "a.jsonl",
        "--quiet",
    )
    assert done.returncode == 1
    assert f"{mapping}:" in done.stderr
    assert "account" in done.stderr


def test_a_stop_signal_is_a_clean_exit_wherever_it_lands_in_the_flow() -> None:
    between_steps = BytewaxRuntimeError("(src/run.rs:1:1): signal received, stopping")
    in_a_step = BytewaxRuntimeError('error calling `next_batch` in step "revleak_crm.input"')
    in_a_step.__cause__ = KeyboardInterrupt()
    failed = BytewaxRuntimeError('error calling `next_batch` in step "revleak_crm.input"')
    failed.__cause__ = ValueError("bad offset")
    assert _stopped_by_signal(between_steps)
    assert _stopped_by_signal(in_a_step)
    assert not _stopped_by_signal(failed)
