"""revleak.slo.prometheus_rules and `revleak slo export-prometheus`: Sloth-shaped rules from
SLO files, and the committed rules file is what they generate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT
from typer.testing import CliRunner

from revleak.cli import app
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog, parse_catalog
from revleak.slo.prometheus_rules import (
    ALERT_NAME,
    AlertingRule,
    RecordingRule,
    prometheus_duration,
    rule_groups,
    rules_yaml,
)

BUNDLED = ("slos/crm.yaml", "slos/telemetry.yaml")
COMMITTED = ROOT / "prometheus" / "rules" / "revleak-slos.yml"
SLOTH_SLI_WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
SLOTH_META = [
    "slo:objective:ratio",
    "slo:error_budget:ratio",
    "slo:time_period:days",
    "slo:current_burn_rate:ratio",
    "slo:period_burn_rate:ratio",
    "slo:period_error_budget_remaining:ratio",
    "sloth_slo_info",
]

# An SLO whose policy is not Sloth's: three page rules, one ticket rule over a week, a burn
# factor given directly, and a 28-day period.
CUSTOM = """
apiVersion: revleak/v1
kind: AlertPolicy
metadata: {name: custom}
spec:
  rules:
    - {severity: page, longWindow: 1h, shortWindow: 5m, burnFactor: 10}
    - {severity: page, longWindow: 2h, shortWindow: 10m, budgetConsumed: 0.05}
    - {severity: page, longWindow: 6h, shortWindow: 30m, burnFactor: 4.5}
    - {severity: ticket, longWindow: 7d, shortWindow: 12h, budgetConsumed: 0.25}
---
apiVersion: revleak/v1
kind: SLO
metadata: {name: checkout_errors}
spec:
  service: "checkout"
  indicator:
    metadata: {name: errors}
    spec: {type: otel.availability}
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{target: 0.995}]
  alertPolicies: [custom]
  revleak: {}
"""


def bundled() -> list[SloCatalog]:
    return [load_catalog(ROOT / path) for path in BUNDLED]


def rules_of(group_name: str, catalogs: list[SloCatalog]) -> list[RecordingRule | AlertingRule]:
    (group,) = [group for group in rule_groups(catalogs) if group.name == group_name]
    return list(group.rules)


def test_committed_rules_file_is_what_the_bundled_slo_files_generate() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == rules_yaml(bundled(), sources=BUNDLED), (
        f"{COMMITTED.relative_to(ROOT)} is stale: run `revleak slo export-prometheus "
        f"{' '.join(BUNDLED)} --output {COMMITTED.relative_to(ROOT)}`"
    )


def test_every_slo_gets_sloths_three_groups_with_sloths_rule_names() -> None:
    catalogs = bundled()
    slos = sorted((slo for catalog in catalogs for slo in catalog.slos), key=lambda s: s.name)
    assert [group.name for group in rule_groups(catalogs)] == [
        f"sloth-slo-{kind}-{slo.service}-{slo.name}"
        for slo in slos
        for kind in ("sli-recordings", "meta-recordings", "alerts")
    ]
    sli = rules_of("sloth-slo-sli-recordings-lead-lead_response", catalogs)
    assert [rule.record for rule in sli if isinstance(rule, RecordingRule)] == [
        f"slo:sli_error:ratio_rate{window}" for window in SLOTH_SLI_WINDOWS
    ]
    assert [rule.labels["sloth_window"] for rule in sli] == SLOTH_SLI_WINDOWS
    for rule in sli:
        assert {key: value for key, value in rule.labels.items() if key != "sloth_window"} == {
            "sloth_id": "lead-lead_response",
            "sloth_service": "lead",
            "sloth_slo": "lead_response",
            "slo": "lead_response",
            "service": "lead",
        }
    meta = rules_of("sloth-slo-meta-recordings-lead-lead_response", catalogs)
    assert [rule.record for rule in meta if isinstance(rule, RecordingRule)] == SLOTH_META
    info = meta[-1].labels
    assert (info["sloth_objective"], info["sloth_spec"], info["sloth_mode"]) == (
        "95",
        "revleak/v1",
        "cli-gen-prom",
    )
    page, ticket = rules_of("sloth-slo-alerts-lead-lead_response", catalogs)
    assert isinstance(page, AlertingRule)
    assert isinstance(ticket, AlertingRule)
    assert page.alert == ticket.alert == ALERT_NAME
    assert page.labels == {
        "slo": "lead_response",
        "service": "lead",
        "severity": "page",
        "sloth_severity": "page",
    }
    assert ticket.labels["severity"] == ticket.labels["sloth_severity"] == "ticket"


def test_sli_ratio_is_bad_over_total_of_the_flow_counters_and_zero_without_events() -> None:
    (rule, *_) = rules_of("sloth-slo-sli-recordings-lead-lead_response", bundled())
    assert rule.expr == (
        '(sum(rate(revleak_sli_events_total{slo="lead_response",outcome="bad"}[5m])))\n'
        "/\n"
        '(sum(rate(revleak_sli_events_total{slo="lead_response"}[5m])) > 0)\n'
        "or\n"
        '(sum(rate(revleak_sli_events_total{slo="lead_response"}[5m])) * 0)\n'
    )


def test_period_ratio_is_averaged_from_the_shortest_window_as_sloth_does() -> None:
    period = rules_of("sloth-slo-sli-recordings-services-latency", bundled())[-1]
    selector = 'slo:sli_error:ratio_rate5m{sloth_id="services-latency", '
    selector += 'sloth_service="services", sloth_slo="latency"}[30d]'
    assert period.expr == (
        f"sum_over_time({selector})\n/ ignoring (sloth_window)\ncount_over_time({selector})\n"
    )


def test_alerts_take_windows_and_factors_from_the_slo_files_policy() -> None:
    catalogs = [parse_catalog(CUSTOM)]
    sli = rules_of("sloth-slo-sli-recordings-checkout-checkout_errors", catalogs)
    assert [rule.labels["sloth_window"] for rule in sli] == [
        "5m", "10m", "30m", "1h", "2h", "6h", "12h", "1w", "4w"
    ]  # fmt: skip
    page, ticket = rules_of("sloth-slo-alerts-checkout-checkout_errors", catalogs)
    conditions = re.findall(
        r"max\(slo:sli_error:ratio_rate(\w+)\{[^}]*\} > \((\S+) \* (\S+)\)\)", page.expr
    )
    # budgetConsumed 0.05 over 2h of a 28-day period is a factor of 16.8.
    assert conditions == [
        ("5m", "10", "0.005"),
        ("1h", "10", "0.005"),
        ("10m", "16.8", "0.005"),
        ("2h", "16.8", "0.005"),
        ("30m", "4.5", "0.005"),
        ("6h", "4.5", "0.005"),
    ]
    assert page.expr.count("\nor\n") == 2
    assert "ratio_rate12h" in ticket.expr
    assert "ratio_rate1w" in ticket.expr
    assert "(1 * 0.005)" in ticket.expr  # 25 % of 28 days spent in 7 days
    assert "increase" not in page.expr  # no minEvents, no event-count guard
    meta = {
        rule.record: rule.expr
        for rule in rules_of("sloth-slo-meta-recordings-checkout-checkout_errors", catalogs)
        if isinstance(rule, RecordingRule)
    }
    assert meta["slo:time_period:days"] == "vector(28)"
    assert meta["slo:error_budget:ratio"] == "vector(1-0.995)"


def test_min_events_guards_every_rule_with_its_long_windows_event_count() -> None:
    page, _ = rules_of("sloth-slo-alerts-services-availability", bundled())
    guards = re.findall(
        r'and on \(\)\n    sum\(increase\(revleak_sli_events_total\{slo="availability"\}'
        r"\[(\w+)\]\)\) >= 100\n\)",
        page.expr,
    )
    assert guards == ["1h", "6h"]


def test_a_policy_without_tickets_gives_no_ticket_alert() -> None:
    text = CUSTOM.replace(
        "    - {severity: ticket, longWindow: 7d, shortWindow: 12h, budgetConsumed: 0.25}\n", ""
    )
    alerts = rules_of("sloth-slo-alerts-checkout-checkout_errors", [parse_catalog(text)])
    assert [rule.labels["severity"] for rule in alerts] == ["page"]


def test_an_slo_name_used_in_two_files_is_refused() -> None:
    with pytest.raises(ValueError, match="'checkout_errors' is defined twice"):
        rule_groups([parse_catalog(CUSTOM), parse_catalog(CUSTOM)])


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (300_000, "5m"),
        (5_400_000, "1h30m"),
        (86_400_000, "1d"),
        (7 * 86_400_000, "1w"),
        (28 * 86_400_000, "4w"),
        (30 * 86_400_000, "30d"),
        (90 * 86_400_000, "90d"),
        (365 * 86_400_000, "1y"),
        (1500, "1s500ms"),
    ],
)
def test_windows_are_named_as_prometheus_prints_durations(ms: int, text: str) -> None:
    assert prometheus_duration(ms) == text


def test_output_is_yaml_with_sorted_labels_and_literal_promql() -> None:
    text = rules_yaml([parse_catalog(CUSTOM)], sources=["custom.yaml"])
    assert "`revleak slo export-prometheus custom.yaml`" in text
    assert "    expr: |\n      (sum(rate(" in text
    document: dict[str, Any] = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            assert list(rule["labels"]) == sorted(rule["labels"])
    assert rules_yaml([parse_catalog(CUSTOM)], sources=["custom.yaml"]) == text


def test_cli_writes_the_rules_of_several_files(tmp_path: Path) -> None:
    output = tmp_path / "rules.yml"
    runner = CliRunner()
    done = runner.invoke(
        app,
        ["slo", "export-prometheus", *(str(ROOT / path) for path in BUNDLED), "-o", str(output)],
    )
    assert done.exit_code == 0, done.output
    assert "wrote rules for 8 SLOs" in done.stderr
    assert output.read_text() == rules_yaml(
        bundled(), sources=[str(ROOT / path) for path in BUNDLED]
    )
    printed = runner.invoke(app, ["slo", "export-prometheus", str(ROOT / BUNDLED[0])])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.startswith("# Prometheus rules for revleak's SLOs")


def test_cli_reports_a_broken_slo_file_and_writes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(CUSTOM.replace("target: 0.995", "target: 99.5"))
    output = tmp_path / "rules.yml"
    done = CliRunner().invoke(app, ["slo", "export-prometheus", str(broken), "-o", str(output)])
    assert done.exit_code == 1
    assert "target is 0-1, not 0-100" in done.stderr
    assert not output.exists()
