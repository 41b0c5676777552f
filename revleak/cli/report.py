"""How a replay is shown in a terminal: summary table and incident timeline."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from revleak.slo.catalog import PICOS_PER_USD
from revleak.slo.evaluator import SloSnapshot
from revleak.slo.incident import IncidentSnapshot, severity_name


class Report(Protocol):
    @property
    def accepted(self) -> int: ...
    @property
    def late(self) -> int: ...
    @property
    def dead_letters(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def slos(self) -> Mapping[str, SloSnapshot]: ...
    @property
    def incident(self) -> IncidentSnapshot | None: ...


def render_summary(report: Report, console: Console, slo_order: Iterable[str]) -> None:
    rate = report.events / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"[bold]{report.events:,}[/bold] events in {report.seconds:.2f} s ({rate:,.0f}/s): "
        f"{report.accepted:,} accepted, {report.late:,} late, "
        f"{report.dead_letters:,} dead-lettered",
        highlight=False,
    )
    table = Table(title="SLI events", title_justify="left")
    for column in ("SLO", "good", "bad", "bad $", "at risk $ (period)", "blast radius"):
        table.add_column(column, justify="right" if column != "SLO" else "left")
    for name in slo_order:
        snapshot = report.slos.get(name)
        if snapshot is None:
            table.add_row(name, "0", "0", "0", "0", "0")
            continue
        table.add_row(
            name,
            f"{snapshot.good:,}",
            f"{snapshot.bad:,}",
            f"{snapshot.bad_picos / PICOS_PER_USD:,.0f}",
            f"{snapshot.at_risk_picos / PICOS_PER_USD:,.0f}",
            f"{snapshot.blast_radius:,}",
        )
    console.print(table)
    incident = report.incident
    if incident is None:
        console.print("No SLI event: no budget consumed, no incident.")
        return
    console.print(
        f"pages: [bold]{incident.pages}[/bold]  tickets: [bold]{incident.tickets}[/bold]  "
        f"budget consumption: [bold]{incident.consumption:.1%}[/bold]  "
        f"paging state: [bold]{incident.paging_state.name}[/bold] "
        f"(peak {incident.peak_paging_state.name})  "
        f"severity: [bold]{severity_name(incident.severity)}[/bold] "
        f"(peak {severity_name(incident.peak_severity)})",
        highlight=False,
    )


def render_timeline(timeline: Iterable[Mapping[str, Any]], console: Console) -> None:
    console.print(timeline_table(timeline))


def timeline_table(timeline: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(title="Incident timeline (event time, UTC)", title_justify="left")
    table.add_column("at")
    table.add_column("severity")
    table.add_column("paging")
    table.add_column("what happened")
    for entry in timeline:
        what = str(entry["summary"])
        for leak in entry.get("top_leaks", []):
            owner = leak["owner"] or "unassigned"
            what += (
                f"\n  ${leak['impact_usd']:,.0f}  {leak['record_id']}  {leak['rule']}"
                f"  ({leak['slo']}, owner {owner})"
            )
        table.add_row(
            str(entry["at"]).replace("T", " ").removesuffix(".000Z"),
            str(entry["severity"]),
            str(entry["paging_state"]),
            what,
        )
    return table
