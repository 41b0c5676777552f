"""``revleak slo``: check an SLO file, export it as Prometheus rules, import Sloth specs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from revleak.slo.catalog import AlertRule, SloCatalog
from revleak.slo.loader import SloFileError, load_catalog
from revleak.slo.prometheus_rules import rules_yaml
from revleak.slo.sloth_import import SlothImportError, import_sloth, parse_indicator_option
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


@app.command("export-prometheus")
def export_prometheus(
    files: Annotated[list[Path], typer.Argument(help="SLO files (YAML, several documents)")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Rules file to write (default: stdout)")
    ] = None,
) -> None:
    """Write Prometheus recording and alerting rules for the SLOs, in Sloth's shape."""
    errors = Console(stderr=True, soft_wrap=True)
    catalogs = [_catalog_or_exit(file, errors) for file in files]
    try:
        text = rules_yaml(catalogs, sources=[str(file) for file in files])
    except ValueError as error:
        errors.print(f"[red]error[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(code=1) from None
    _write(text, output)
    if output is not None:
        slos = sum(len(catalog.slos) for catalog in catalogs)
        errors.print(f"wrote rules for {slos} SLOs to {output}", highlight=False)


@app.command("import-sloth")
def import_sloth_command(
    file: Annotated[
        Path, typer.Argument(help="Sloth spec: prometheus/v1 or PrometheusServiceLevel")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="SLO file to write (default: stdout)")
    ] = None,
    indicator: Annotated[
        list[str] | None,
        typer.Option(
            "--indicator",
            help="SLO=TYPE: the revleak indicator of a Sloth SLO (otel.availability, "
            "otel.latency, otel.saturation); repeat for several SLOs",
        ),
    ] = None,
) -> None:
    """Turn a Sloth spec into a revleak SLO file; exit 1 listing the SLOs it cannot map."""
    errors = Console(stderr=True, soft_wrap=True)
    try:
        chosen = dict(parse_indicator_option(option) for option in indicator or [])
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--indicator") from None
    try:
        imported = import_sloth(_read(file, errors), source=str(file), indicators=chosen)
    except SlothImportError as error:
        for problem in error.problems:
            errors.print(f"[red]error[/red] {problem}", markup=True, highlight=False)
        errors.print(f"{file}: {len(error.problems)} error(s), nothing written", highlight=False)
        raise typer.Exit(code=1) from None
    for warning in imported.warnings:
        errors.print(f"[yellow]warning[/yellow] {warning}", markup=True, highlight=False)
    _write(imported.text, output)
    if output is not None:
        errors.print(f"wrote {output}: check it with `revleak slo validate {output}`")


def _catalog_or_exit(file: Path, errors: Console) -> SloCatalog:
    try:
        return load_catalog(file)
    except SloFileError as error:
        for problem in error.problems:
            errors.print(f"[red]error[/red] {problem}", markup=True, highlight=False)
        errors.print(f"{file}: {len(error.problems)} error(s)", highlight=False)
        raise typer.Exit(code=1) from None


def _read(file: Path, errors: Console) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except OSError as error:
        errors.print(f"[red]error[/red] {file}: {error.strerror}", markup=True, highlight=False)
        raise typer.Exit(code=1) from None


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
