"""``revleak story``: the Nakatomi Deal story, replayed through the real flow and summarised."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from revleak.cli.report import render_summary, render_timeline, timeline_table
from revleak.slo.incident import IncidentSnapshot
from revleak.slo.loader import load_catalog
from revleak.timefmt import format_timestamp, parse_timestamp

STORY = "nakatomi.jsonl"


def story_command(
    headless: Annotated[
        bool, typer.Option("--headless", help="Print the timeline at once (no pacing)")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Keep the alert log, timeline and metrics in this folder"),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
) -> None:
    """Replay the bundled "Nakatomi Deal" story and print the incident timeline."""
    from revleak.dataflows.replay import replay

    console = Console()
    with (
        resources.as_file(resources.files("revleak.slos") / "crm.yaml") as slos,
        resources.as_file(resources.files("revleak.data") / STORY) as events,
        tempfile.TemporaryDirectory(prefix="revleak-story-") as scratch,
    ):
        folder = out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog(slos)
        story_end = _last_event_time(events)
        console.print(
            "[bold]The Nakatomi Deal[/bold] — a week of healthy funnel, then the big "
            "Negotiation deal goes quiet and the holiday-party webinar floods in leads "
            "nobody touches.\n",
            highlight=False,
        )
        report = replay(
            catalog=catalog,
            events=[events],
            alerts_out=folder / "alerts.jsonl",
            timeline_out=folder / "timeline.jsonl",
            metrics_out=folder / "metrics.prom",
            dlq_out=folder / "dead-letters.jsonl",
            workers=workers,
        )
    story = _story_moments(report.timeline, story_end)
    if headless:
        render_timeline(story, console)
    else:
        with Live(timeline_table([]), console=console, auto_refresh=False) as live:
            for shown in range(1, len(story) + 1):
                time.sleep(0.6)
                live.update(timeline_table(story[:shown]), refresh=True)
    console.print(
        f"Story ends {format_timestamp(story_end)}. At end of input the watermark goes to +∞: "
        "every pending deadline fires and every alert resolves once its windows empty.",
        highlight=False,
    )
    render_summary(report, console, catalog.names)
    if report.incident is not None:
        _render_exposure(report.incident, console)
    if out is not None:
        console.print(f"Alert log, timeline, metrics: {out}/", highlight=False)


def _last_event_time(path: Path) -> int:
    last = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                last = max(last, parse_timestamp(json.loads(line)["ts"]))
    return last


def _story_moments(timeline: Iterable[Mapping[str, Any]], until_ms: int) -> list[Mapping[str, Any]]:
    """Severity and paging changes, and each SLO's first page, up to the story's end."""
    moments: list[Mapping[str, Any]] = []
    paged: set[str] = set()
    for entry in timeline:
        if parse_timestamp(str(entry["at"])) > until_ms:
            break
        if entry["event"] in ("severity", "paging"):
            moments.append(entry)
        elif entry["event"] == "page-firing":
            slo = str(entry["summary"]).split(": ", 1)[1].split(" ", 1)[0]
            if slo not in paged:
                paged.add(slo)
                moments.append(entry)
    return moments


def _render_exposure(incident: IncidentSnapshot, console: Console) -> None:
    leaks = Table(
        title="Records carrying the risk (open leaks at end of input)", title_justify="left"
    )
    for column in ("record", "rule", "SLO", "owner", "impact $"):
        leaks.add_column(column, justify="right" if column == "impact $" else "left")
    for leak in incident.top_leaks:
        leaks.add_row(
            leak.record_id,
            leak.rule.value,
            leak.slo,
            leak.owner or "unassigned",
            f"{leak.impact_usd:,.0f}",
        )
    console.print(leaks)
    owners = Table(title="Owners", title_justify="left")
    for column in ("owner", "open leaks", "impact $"):
        owners.add_column(column, justify="left" if column == "owner" else "right")
    for owner in incident.top_owners:
        owners.add_row(owner.owner or "unassigned", str(owner.leaks), f"{owner.impact_usd:,.0f}")
    console.print(owners)
