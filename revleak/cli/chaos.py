"""``revleak chaos``: the simulated shop's traces and metrics into Kafka, with a fault deployed."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from revleak.timefmt import MINUTE_MS, datetime_to_ms, format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from revleak.loadtest.chaos import Scenario
    from revleak.loadtest.chaos_kafka import ChaosReport
    from revleak.loadtest.shop import Deployment


class OtlpEncoding(StrEnum):
    PROTO = "otlp_proto"
    JSON = "otlp_json"


def chaos_command(
    scenario: Annotated[str, typer.Argument(help="oom, latency, errors or conversion")],
    brokers: Annotated[
        str, typer.Option("--brokers", envvar="REVLEAK_BROKERS", help="Kafka bootstrap servers")
    ] = "127.0.0.1:9092",
    encoding: Annotated[
        OtlpEncoding,
        typer.Option(
            "--encoding", help="How messages are written, as the Collector's Kafka exporter does"
        ),
    ] = OtlpEncoding.PROTO,
    repository: Annotated[
        Path, typer.Option("--repository", help="The shop's GitOps repository (bare)")
    ] = Path("chaos-deploy.git"),
    init: Annotated[
        bool, typer.Option("--init", help="Create the repository, healthy, when it is missing")
    ] = False,
    minutes: Annotated[int, typer.Option("--minutes", min=1, help="Simulated minutes")] = 60,
    baseline_minutes: Annotated[
        int, typer.Option("--baseline-minutes", min=0, help="Healthy minutes before the fault")
    ] = 30,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    start: Annotated[
        str | None,
        typer.Option("--start", help="ISO time of the first minute (default: this minute)"),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", min=0.001, help="Simulated minutes per second (default: all at once)"
        ),
    ] = None,
    journeys_per_minute: Annotated[
        int, typer.Option("--journeys-per-minute", min=0, help="User journeys a minute")
    ] = 60,
    spans_topic: Annotated[str, typer.Option("--spans-topic")] = "otlp_spans",
    metrics_topic: Annotated[str, typer.Option("--metrics-topic")] = "otlp_metrics",
) -> None:
    """Run the simulated shop into Kafka: healthy, then the scenario's fault, deployed by a
    commit to its GitOps repository (a fix committed there ends it)."""
    from revleak.loadtest.chaos import SCENARIOS, ChaosRun, seed_repository
    from revleak.loadtest.chaos_kafka import produce
    from revleak.loadtest.shop import RepositoryError

    console = Console()
    errors = Console(stderr=True)
    chosen = SCENARIOS.get(scenario)
    if chosen is None:
        raise typer.BadParameter(
            f"{scenario!r} is not one of {', '.join(SCENARIOS)}", param_hint="SCENARIO"
        )
    start_ms = _start_ms(start)
    if not repository.exists():
        if not init:
            errors.print(f"No repository at {repository}; --init creates a healthy one.")
            raise typer.Exit(code=2)
        seed_repository(repository, at_ms=start_ms)
    run = ChaosRun(
        chosen,
        repository,
        seed=seed,
        start_ms=start_ms,
        baseline_minutes=baseline_minutes,
        journeys_per_minute=journeys_per_minute,
    )
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    try:
        with progress:
            task = progress.add_task(f"chaos {chosen.name}", total=minutes)
            report = produce(
                run,
                minutes,
                brokers=brokers,
                encoding="otlp_json" if encoding is OtlpEncoding.JSON else "otlp_proto",
                spans_topic=spans_topic,
                metrics_topic=metrics_topic,
                speed=speed,
                on_minute=lambda _: progress.advance(task),
            )
    except (RepositoryError, RuntimeError) as error:
        errors.print(str(error), highlight=False)
        raise typer.Exit(code=1) from None
    _render(console, chosen, report, topics=(spans_topic, metrics_topic), encoding=encoding.value)


def _deployment_text(deployment: Deployment) -> str:
    from revleak.loadtest.shop import format_memory

    services = ", ".join(
        f"{name} {spec.version} ×{spec.replicas} ({format_memory(spec.memory_limit)})"
        for name, spec in deployment.services.items()
    )
    flags = ", ".join(name for name, on in deployment.flags.items() if on) or "none"
    return f"{services}; flags on: {flags}"


def _start_ms(start: str | None) -> int:
    if start is not None:
        try:
            return parse_timestamp(start)
        except ValueError:
            raise typer.BadParameter(
                f"{start!r} is not an ISO time", param_hint="--start"
            ) from None
    now = datetime_to_ms(datetime.now(UTC))
    return now - now % MINUTE_MS


def _render(
    console: Console,
    scenario: Scenario,
    report: ChaosReport,
    *,
    topics: tuple[str, str],
    encoding: str,
) -> None:
    table = Table(
        title=f"chaos {scenario.name}: {scenario.description}",
        title_justify="left",
        show_header=False,
    )
    first, end = report.first_ms or 0, report.end_ms or 0
    table.add_row(
        "minutes", f"{report.minutes} ({format_timestamp(first)} → {format_timestamp(end)})"
    )
    table.add_row("spans", f"{report.spans:,} in {report.span_messages:,} messages to {topics[0]}")
    table.add_row(
        "metric points",
        f"{report.metric_points:,} in {report.metric_messages:,} messages to {topics[1]}",
    )
    table.add_row("encoding", encoding)
    injected = report.injected_at_ms
    table.add_row(
        "fault injected",
        f"{format_timestamp(injected)}: {scenario.fault.message}"
        if injected is not None
        else "not yet (the baseline outlasts the run)",
    )
    expected = scenario.expected
    was = f" (was {expected.previous_value})" if expected.previous_value else ""
    where = f"{expected.service} {expected.operation}" if expected.operation else expected.service
    if expected.attribute:
        what = f"{expected.attribute} = {expected.value}"
    else:
        what = f"memory limit {expected.value} bytes, to raise to {expected.memory_limit_target}"
    table.add_row("expected root cause", f"{expected.cause}: {where}, {what}{was}")
    fix = scenario.fix
    value = str(fix.value).lower() if isinstance(fix.value, bool) else fix.value
    table.add_row("fix", f"set {fix.key} to {value} in {fix.path}")
    if report.deployment is not None:
        table.add_row("running at the end", _deployment_text(report.deployment))
    console.print(table)
    for problem in dict.fromkeys(report.sync_errors):
        console.print(f"[yellow]Repository not applied:[/yellow] {problem}", highlight=False)
