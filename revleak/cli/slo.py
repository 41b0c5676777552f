"""``revleak slo validate``: check an SLO file and show what it defines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from revleak.slo.catalog import AlertRule
from revleak.slo.loader import SloFileError, load_catalog
from revleak.timefmt import format_duration

app = typer.Typer(help="Work with SLO definition files.", no_args_is_help=True)


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="SLO file (YAML, several documents)")],
) -> None:
    """Check one SLO file; exit 1 and list every problem when it is not usable."""
    console = Console()
    errors = Console(stderr=True, soft_wrap=True)
    try:
        catalog = load_catalog(file)
    except SloFileError as error:
        for problem in error.problems:
            errors.print(f"[red]error[/red] {problem}", markup=True, highlight=False)
        errors.print(f"{file}: {len(error.problems)} error(s)", highlight=False)
        raise typer.Exit(code=1) from None
    for warning in catalog.warnings:
        errors.print(f"[yellow]warning[/yellow] {warning}", markup=True, highlight=False)
    table = Table(title=f"{file}: {len(catalog.slos)} SLOs", title_justify="left")
    for column in ("SLO", "indicator", "target", "period", "threshold", "budget"):
        table.add_column(column)
    for slo in catalog.slos:
        budget = (
            f"${float(catalog.budget_usd(slo)):,.0f} ({float(slo.budget_share or 0):.0%})"
            if slo.is_revenue
            else "-"
        )
        table.add_row(
            slo.name,
            slo.indicator.value.removeprefix("crm."),
            f"{float(slo.target):g}",
            format_duration(slo.period_ms),
            format_duration(slo.threshold_ms) if slo.threshold_ms else "-",
            budget,
        )
    console.print(table)
    policies = Table(title="Burn-rate alerts", title_justify="left")
    for column in ("SLOs", "severity", "long", "short", "burn factor"):
        policies.add_column(column)
    by_rules: dict[tuple[object, ...], list[str]] = {}
    for slo in catalog.slos:
        by_rules.setdefault(slo.alert_rules, []).append(slo.name)
    for rules, members in by_rules.items():
        for rule in rules:
            assert isinstance(rule, AlertRule)
            policies.add_row(
                ", ".join(members) if rule is rules[0] else "",
                rule.severity,
                rule.long_window,
                rule.short_window,
                f"{float(rule.factor):g}",
            )
    console.print(policies)
    console.print(f"OK: {file} is valid", highlight=False)
