"""Prometheus' own checker on revleak's Prometheus set-up: the configuration, every rules
file, and the rule unit tests of prometheus/tests/ (counters in, recorded ratios and firing
alerts out)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from harness import ROOT

from revleak.slo.loader import parse_catalog
from revleak.slo.prometheus_rules import rules_yaml

PROMETHEUS = ROOT / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed: `make services`"),
]

# A policy unlike Sloth's (three page rules, a week-long ticket window, a 28-day period) and
# a minEvents guard: the generated PromQL must be valid for any policy, not just the default.
UNUSUAL = """
apiVersion: revleak/v1
kind: AlertPolicy
metadata: {name: unusual}
spec:
  rules:
    - {severity: page, longWindow: 1h, shortWindow: 5m, burnFactor: 10}
    - {severity: page, longWindow: 2h, shortWindow: 10m, budgetConsumed: 0.05}
    - {severity: page, longWindow: 6h, shortWindow: 30m, burnFactor: 4.5}
    - {severity: ticket, longWindow: 7d, shortWindow: 12h, budgetConsumed: 0.25}
---
apiVersion: revleak/v1
kind: SLO
metadata: {name: checkout_latency}
spec:
  service: "shop \\"checkout\\""
  indicator:
    metadata: {name: checkout-duration}
    spec: {type: otel.latency}
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{target: 0.995}]
  alertPolicies: [unusual]
  revleak: {threshold: 300ms, minEvents: 50}
"""


def promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_config_loads_every_rules_file_and_each_passes_the_check() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    rule_files = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert sorted(PROMETHEUS / name for name in config["rule_files"]) == rule_files
    checked = promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert checked.count("SUCCESS") == 2 + len(rule_files), checked
    promtool("check", "rules", *rule_files)


def test_rule_unit_tests_pass_for_crm_and_telemetry_slos() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.test.yml"))
    assert {test.name for test in tests} >= {
        "revleak-slos-crm.test.yml",
        "revleak-slos-telemetry.test.yml",
    }
    promtool("test", "rules", *tests)


def test_rules_for_an_unusual_policy_pass_the_check(tmp_path: Path) -> None:
    rules = tmp_path / "unusual.yml"
    rules.write_text(rules_yaml([parse_catalog(UNUSUAL)], sources=["unusual.yaml"]))
    checked = promtool("check", "rules", rules)
    assert "SUCCESS: 18 rules found" in checked, checked
