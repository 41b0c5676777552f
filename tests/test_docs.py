"""The worked example of docs/slo-guide.md is recomputed, not just quoted."""

from __future__ import annotations

import json
import re

from examples import assert_alert_logs_match
from harness import ROOT, replay_lines

GUIDE = ROOT / "docs" / "slo-guide.md"


def block(tag: str) -> list[str]:
    match = re.search(rf"```jsonl {tag}\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert match, f"no `jsonl {tag}` block in {GUIDE.name}"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_slo_guide_worked_example_is_what_the_engine_computes() -> None:
    events = [line.encode() for line in block("events")]
    outputs = replay_lines(events)
    assert_alert_logs_match(
        [alert.record() for alert in outputs.alerts],
        [json.loads(line) for line in block("alerts")],
        rel=1e-12,
    )
