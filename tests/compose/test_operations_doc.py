"""docs/operations.md follows the SLO files, the fix-pack catalogue, the metrics revleak
exports and docker-compose.yml: a runbook for every alert, thresholds computed from the
policy, and commands that name things that exist."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from revleak.api.metrics import ApiMetrics
from revleak.connectors.metrics import PrometheusObserver
from revleak.remediation.packs import load_catalogue
from revleak.slo.catalog import AlertRule, Slo, SloCatalog
from revleak.slo.loader import load_catalog

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
TEXT = DOC.read_text(encoding="utf-8")
CATALOGS = [load_catalog(ROOT / "slos" / name) for name in ("crm.yaml", "telemetry.yaml")]
PIPELINE_ALERTS = ("Dead letters growing", "Watermark lag", "Alertmanager unreachable")
# Words of one command, which a wrapped line may split but the next command does not continue.
GAP = r"(?:[ \t]|\n(?!docker))+"
COMPOSE_COMMAND = re.compile(
    rf"docker{GAP}compose{GAP}(?:exec|logs|run|stop|start|restart|up|ps|cp|build)"
    rf"((?:{GAP}-{{1,2}}[a-zA-Z-]+)*){GAP}([a-z][a-z0-9-]*)"
)


def sections(level: str) -> dict[str, str]:
    """Heading → body, for the headings of one level (``###``)."""
    parts = re.split(rf"^{level} (.+)$", TEXT, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def percent(value: Fraction) -> str:
    return f"{float(value * 100):g} %"


def threshold(catalog: SloCatalog, slo: Slo, rule: AlertRule) -> str:
    """What a rule's long window must exceed: the share of bad events, and for a revenue
    SLO the dollars, at which the burn rate passes the rule's factor."""
    share = rule.factor * (1 - slo.target)
    text = percent(share) if share < 1 else "—"
    if slo.budget_share is not None:
        usd = catalog.budget_usd(slo) * rule.factor * rule.long_ms / slo.period_ms
        text += f" · ${float(usd):,.0f}"
    return text


def exported_metrics() -> set[str]:
    """Every series name the flows' and the API's /metrics can show."""
    slos = [slo.name for catalog in CATALOGS for slo in catalog.slos]
    flows = PrometheusObserver(
        CollectorRegistry(), slos=slos, sources=["crm", "otlp_spans", "otlp_metrics"]
    )
    api = ApiMetrics(CollectorRegistry())
    names: set[str] = set()
    for registry in (flows.registry, api.registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum"))
    return names


def test_every_slo_has_a_page_and_a_ticket_runbook_linked_to_the_api() -> None:
    found = sections("###")
    catalogue = load_catalogue()
    for catalog in CATALOGS:
        for slo in catalog.slos:
            body = found.get(f"`{slo.name}`")
            assert body is not None, f"no runbook for {slo.name}"
            assert re.search(r"^#### Page$", body, re.M), slo.name
            assert re.search(r"^#### Ticket$", body, re.M), slo.name
            assert f"/v1/runbooks/{slo.name}" in body, slo.name
            for pack in catalogue.for_labels({"slo": slo.name}):
                assert f"`{pack.id}`" in body, f"{slo.name}: the runbook API lists {pack.id}"
    for pack in catalogue.packs:
        assert f"`{pack.id}`" in TEXT, f"no runbook applies {pack.id}"
    for alert in PIPELINE_ALERTS:
        assert alert in found, f"no runbook for {alert}"


def test_burn_thresholds_follow_the_slo_files() -> None:
    policies = {tuple(slo.alert_rules) for catalog in CATALOGS for slo in catalog.slos}
    (rules,) = policies  # one table needs one policy
    header = " | ".join(f"{rule.severity} {rule.long_window}/{rule.short_window}" for rule in rules)
    assert f"| SLO | target | {header} |" in TEXT
    for catalog in CATALOGS:
        for slo in catalog.slos:
            cells = " | ".join(threshold(catalog, slo, rule) for rule in rules)
            row = f"| `{slo.name}` | {percent(slo.target)} | {cells} |"
            assert row in TEXT, f"expected the row {row}"


def test_promql_names_metrics_revleak_exports() -> None:
    expressions = re.findall(r"promql '([^']+)'", TEXT)
    expressions += [
        span
        for span in re.findall(r"`([^`]+)`", TEXT)
        if "revleak_" in span and re.search(r"[({\[]", span)
    ]
    assert expressions
    exported = exported_metrics()
    for expression in expressions:
        for name in re.findall(r"\b(revleak_[a-z_]+)\b", expression):
            assert name in exported, f"{name} in {expression!r}"


def test_commands_name_compose_services_and_links_resolve() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    named = [service for _, service in COMPOSE_COMMAND.findall(TEXT)]
    assert named
    for service in named:
        assert service in compose["services"], f"no compose service {service}"
    for target in re.findall(r"\]\(([^)#\s]+)", TEXT):
        if not target.startswith("http"):
            assert (DOC.parent / target).exists(), target
