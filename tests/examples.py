"""The worked examples of docs/semantics.md (tests/data/semantics), and how to compare
alert logs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent / "data" / "semantics"
EXAMPLES = sorted(
    path.name.removesuffix(".events.jsonl") for path in EXAMPLES_DIR.glob("*.events.jsonl")
)
IDENTITY = ("slo", "kind", "severity", "long_window", "short_window", "state", "at", "blast_radius")
NUMERIC = ("burn_long", "burn_short", "budget_remaining", "at_risk_usd")
ALERT_KEYS = [
    "slo",
    "severity",
    "kind",
    "long_window",
    "short_window",
    "state",
    "at",
    "burn_long",
    "burn_short",
    "budget_remaining",
    "at_risk_usd",
    "blast_radius",
]


def events_path(name: str) -> Path:
    return EXAMPLES_DIR / f"{name}.events.jsonl"


def expected_alerts(name: str) -> list[dict[str, Any]]:
    return read_json_lines(EXAMPLES_DIR / f"{name}.alerts.jsonl")


def expected_summary(name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES_DIR / f"{name}.summary.json").read_text()))


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def assert_alert_logs_match(
    got: list[dict[str, Any]], expected: list[dict[str, Any]], rel: float = 1e-6
) -> None:
    """Transition by transition: exact on identity fields, ``rel`` on numbers."""
    assert [[alert[key] for key in IDENTITY] for alert in got] == [
        [alert[key] for key in IDENTITY] for alert in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        assert list(mine) == ALERT_KEYS
        for key in NUMERIC:
            assert math.isclose(mine[key], theirs[key], rel_tol=rel, abs_tol=1e-9), (key, mine)
