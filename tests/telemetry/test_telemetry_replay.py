"""A file of OTLP/JSON lines (traces and metrics, as the Collector's file exporter writes
them) replays through the telemetry flow under Bytewax's own runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chaoskit import T0

from revleak.connectors.otlp_json import encode_json
from revleak.loadtest.chaos import SCENARIOS, ChaosRun, seed_repository
from revleak.loadtest.chaos_kafka import by_end_time

SLOS = Path(__file__).resolve().parents[2] / "slos" / "telemetry.yaml"


def test_an_otlp_json_file_pages_explains_and_dead_letters_its_bad_line(tmp_path: Path) -> None:
    repository = tmp_path / "deploy.git"
    seed_repository(repository, at_ms=T0)
    run = ChaosRun(
        SCENARIOS["errors"], repository, seed=2, start_ms=T0, baseline_minutes=12,
        journeys_per_minute=30,
    )  # fmt: skip
    lines = [b"not OTLP"]
    for minute in run.minutes(22):
        lines.append(encode_json(minute.metrics))
        lines.extend(encode_json(batch) for batch in by_end_time(minute.traces))
    otlp = tmp_path / "otlp.jsonl"
    otlp.write_bytes(b"\n".join(lines) + b"\n")
    outputs = {name: tmp_path / f"{name}.jsonl" for name in ("alerts", "causes", "dlq")}
    flow = (
        f"revleak.dataflows.telemetry:replay_flow({str(SLOS)!r}, {str(otlp)!r}, "
        f"alerts_out={str(outputs['alerts'])!r}, root_causes_out={str(outputs['causes'])!r}, "
        f"dlq_out={str(outputs['dlq'])!r})"
    )
    subprocess.run(
        [sys.executable, "-m", "bytewax.run", flow], cwd=tmp_path, check=True, timeout=120
    )

    def records(name: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in outputs[name].read_text().splitlines()]

    pages = [a for a in records("alerts") if a["state"] == "firing" and a["severity"] == "page"]
    # Failed reservations fail checkouts: conversion pages too.
    assert {page["slo"] for page in pages} == {"availability", "conversion"}
    [cause] = [
        c for c in records("causes") if c["slo"] == "availability" and c["severity"] == "page"
    ]
    top = cause["candidates"][0]  # type: ignore[index]
    assert (top["cause"], top["cause_service"], top["flag"]) == (
        "flag",
        "inventory",
        "new_reservation",
    )
    [letter] = records("dlq")
    assert (letter["reason"], letter["original"]) == ("malformed_otlp", "not OTLP")
