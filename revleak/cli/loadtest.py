"""``revleak loadtest``: record a topic, produce a recorded log back, run a scenario against a
live flow and report how it kept up (docs/loadtest.md)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from revleak.timefmt import parse_duration, parse_timestamp

if TYPE_CHECKING:
    from revleak.loadtest.loadtest_replay import FlowUnderTest, Measured, Outgoing, Speed
    from revleak.loadtest.loadtest_report import Report
    from revleak.loadtest.scenarios import Scenario, Topics

app = typer.Typer(
    no_args_is_help=True,
    help="Record and replay Kafka topics; run load-test scenarios against a live flow.",
)

Brokers = Annotated[
    str, typer.Option("--brokers", envvar="REVLEAK_BROKERS", help="Kafka bootstrap servers")
]
SpeedOption = Annotated[
    str,
    typer.Option(
        "--speed",
        help="Event-time multiplier: 1 at the recorded pace, 100 a hundred times faster, "
        "max as fast as possible",
    ),
]


def _speed(text: str) -> Speed:
    from revleak.loadtest.loadtest_replay import parse_speed

    try:
        return parse_speed(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--speed") from None


def _progress(console: Console) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@app.command("record")
def record_command(
    topic: Annotated[str, typer.Option("--topic", help="Topic to record")],
    output: Annotated[Path, typer.Option("--output", help="Log file (JSON lines)")],
    brokers: Brokers = "127.0.0.1:9092",
    from_offset: Annotated[
        int | None,
        typer.Option(
            "--from-offset", min=0, help="First offset of each partition (default: its beginning)"
        ),
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="At most this many messages a partition")
    ] = None,
) -> None:
    """Record a topic's messages (keys, timestamps, partitions, offsets) to its current end."""
    from revleak.loadtest.loadtest_replay import record

    count = record(brokers, topic, output, from_offset=from_offset, max_messages=max_messages)
    Console().print(f"Recorded {count:,} messages of {topic} to {output}.", highlight=False)


@app.command("replay")
def replay_command(
    log: Annotated[Path, typer.Argument(help="Recorded log", exists=True, dir_okay=False)],
    topic: Annotated[str, typer.Option("--topic", help="Topic to produce to")],
    brokers: Brokers = "127.0.0.1:9092",
    speed: SpeedOption = "max",
) -> None:
    """Produce a recorded log into a topic, in its order and partitions, at a chosen speed."""
    from revleak.loadtest.loadtest_replay import LogFormatError, Outgoing, Replayer, read_log

    pace = _speed(speed)
    console = Console()
    try:
        messages = read_log(log)
    except LogFormatError as error:
        Console(stderr=True).print(str(error), highlight=False)
        raise typer.Exit(code=1) from None
    try:
        with _progress(console) as bar:
            task = bar.add_task(f"replaying to {topic}", total=len(messages))
            produced = Replayer(brokers).produce(
                [Outgoing(topic, message) for message in messages],
                speed=pace,
                progress=lambda count: bar.advance(task, count),
            )
    except (RuntimeError, ValueError) as error:
        Console(stderr=True).print(str(error), highlight=False)
        raise typer.Exit(code=1) from None
    seconds = produced.finished_at - produced.started_at
    rate = f", {len(messages) / seconds:,.0f} messages/s" if seconds > 0 else ""
    console.print(
        f"Produced {len(messages):,} messages ({produced.size:,} bytes) to {topic} in "
        f"{seconds:.2f} s{rate}.",
        highlight=False,
    )


@app.command("run")
def run_command(
    scenario: Annotated[
        str,
        typer.Argument(
            help="lead-flood, stale-pipeline, duplicate-storm, chaos-oom, chaos-latency, "
            "chaos-errors or chaos-conversion",
        ),
    ],
    report_dir: Annotated[Path, typer.Option("--report", help="Folder for the report")],
    speed: SpeedOption = "max",
    start_stack: Annotated[
        bool,
        typer.Option(
            "--start-stack",
            help="Start Tansu, Alertmanager and the scenario's flow on free loopback ports",
        ),
    ] = False,
    brokers: Brokers = "127.0.0.1:9092",
    alertmanager_url: Annotated[
        str | None,
        typer.Option(
            "--alertmanager-url", envvar="REVLEAK_ALERTMANAGER_URL", help="The flow's Alertmanager"
        ),
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            "--metrics-url", help="The flow's metrics, e.g. http://127.0.0.1:9464/metrics"
        ),
    ] = None,
    changes_topic: Annotated[str, typer.Option("--changes-topic")] = "crm.changes",
    spans_topic: Annotated[str, typer.Option("--spans-topic")] = "otlp_spans",
    metrics_topic: Annotated[str, typer.Option("--metrics-topic")] = "otlp_metrics",
    alerts_topic: Annotated[str, typer.Option("--alerts-topic")] = "revleak.alerts",
    slos: Annotated[
        Path | None,
        typer.Option("--slos", exists=True, dir_okay=False, help="The flow's SLO file"),
    ] = None,
    allowed_lateness: Annotated[
        str, typer.Option("--allowed-lateness", help="The flow's allowed lateness")
    ] = "60s",
    scale: Annotated[
        float, typer.Option("--scale", min=0.001, help="Multiplies the scenario's volume")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    start: Annotated[
        str | None,
        typer.Option("--start", help="ISO time of the first minute (default: ends now)"),
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option("--drain-timeout", min=0, help="Seconds to wait for the flow after the input"),
    ] = 120.0,
) -> None:
    """Produce a scenario into a live flow, measure it, and write report.json, report.md and
    PNG figures: throughput, consumer lag, pages expected vs received, event → page latency."""
    from revleak.loadtest.scenarios import SCENARIOS, Options, Topics, default_start

    chosen = SCENARIOS.get(scenario)
    if chosen is None:
        raise typer.BadParameter(
            f"{scenario!r} is not one of {', '.join(SCENARIOS)}", param_hint="SCENARIO"
        )
    pace = _speed(speed)
    try:
        lateness_ms = parse_duration(allowed_lateness)
        start_ms = (
            parse_timestamp(start) if start else default_start(chosen, int(time.time() * 1000))
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    external = (
        None if start_stack else _flow_at(brokers, alertmanager_url, metrics_url, alerts_topic)
    )
    topics = Topics(changes=changes_topic, spans=spans_topic, metrics=metrics_topic)
    console = Console()
    with console.status(f"generating {chosen.name} and replaying it offline"):
        outgoing = chosen.build(Options(start_ms=start_ms, scale=scale, seed=seed, topics=topics))
        expected = _prepare(chosen, outgoing, topics, slos, report_dir)
    try:
        with contextlib.ExitStack() as stack:
            flow = external or stack.enter_context(
                _started_stack(
                    report_dir / "stack", chosen, topics, alerts_topic, slos, allowed_lateness
                )
            )
            measured = _measure(console, flow, outgoing, pace, expected, lateness_ms, drain_timeout)
    except RuntimeError as error:
        Console(stderr=True).print(str(error), highlight=False)
        raise typer.Exit(code=1) from None
    report = _write(report_dir, chosen, pace, outgoing, measured, expected, lateness_ms)
    _render(console, report, report_dir)


def _flow_at(
    brokers: str, alertmanager_url: str | None, metrics_url: str | None, alerts_topic: str
) -> FlowUnderTest:
    from revleak.loadtest.loadtest_replay import FlowUnderTest

    if alertmanager_url is None or metrics_url is None:
        raise typer.BadParameter("give --alertmanager-url and --metrics-url, or --start-stack")
    return FlowUnderTest(brokers, alertmanager_url, metrics_url, alerts_topic)


def _prepare(
    scenario: Scenario, outgoing: list[Outgoing], topics: Topics, slos: Path | None, folder: Path
) -> list[dict[str, object]]:
    """The scenario's input as recorded logs (one a topic, for ``loadtest replay``) and the
    offline replay's alert log, in ``folder``."""
    from revleak.loadtest.loadtest_replay import write_log
    from revleak.loadtest.scenarios import expected_alert_log

    folder.mkdir(parents=True, exist_ok=True)
    for topic in dict.fromkeys(item.topic for item in outgoing):
        messages = [item.message for item in outgoing if item.topic == topic]
        write_log(folder / f"input-{topic}.jsonl", messages)
    return expected_alert_log(scenario, outgoing, topics, slos, folder / "expected-alerts.jsonl")


@contextlib.contextmanager
def _started_stack(
    folder: Path,
    scenario: Scenario,
    topics: Topics,
    alerts_topic: str,
    slos: Path | None,
    allowed_lateness: str,
) -> Iterator[FlowUnderTest]:
    """Tansu, Alertmanager and ``revleak run crm|telemetry`` as child processes; the flow's
    output, and each service's, in ``folder``."""
    from revleak.loadtest import services
    from revleak.loadtest.kafka_bench import MINIMAL_ALERTMANAGER
    from revleak.loadtest.loadtest_replay import FlowUnderTest

    inputs = (
        ["--spans-topic", topics.spans, "--metrics-topic", topics.metrics]
        if scenario.flow == "telemetry"
        else ["--changes-topic", topics.changes]
    )
    with (
        services.tansu(folder / "tansu") as brokers,
        services.alertmanager(folder / "alertmanager", MINIMAL_ALERTMANAGER) as alertmanager,
    ):
        port = services.free_port()
        command = [
            sys.executable, "-P", "-c", "from revleak.cli import main; main()",
            "run", scenario.flow, "--brokers", brokers, "--alertmanager-url", alertmanager,
            "--metrics-port", str(port), "--alerts-topic", alerts_topic,
            "--allowed-lateness", allowed_lateness, *inputs,
            *(["--slos", str(slos)] if slos else []),
        ]  # fmt: skip
        # The stack is this run's own: settings meant for another flow stay out of it.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REVLEAK_")}
        log = folder / "flow.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=folder
            )
        flow = services.Service("flow", process, log, port)
        try:
            yield FlowUnderTest(
                brokers, alertmanager, f"http://127.0.0.1:{port}/metrics", alerts_topic
            )
        except RuntimeError as error:
            if process.poll() is not None:
                raise RuntimeError(f"{error}; {flow.describe_failure()}") from error
            raise
        finally:
            # The stack is thrown away: no need to let the flow deliver what is pending.
            process.kill()
            process.wait(timeout=30)


def _measure(
    console: Console,
    flow: FlowUnderTest,
    outgoing: list[Outgoing],
    speed: Speed,
    expected: list[dict[str, object]],
    lateness_ms: int,
    drain_timeout: float,
) -> Measured:
    from revleak.loadtest.loadtest_replay import Timeouts, measure, speed_label

    with _progress(console) as bar:
        task = bar.add_task(f"producing at {speed_label(speed)}", total=len(outgoing))
        return measure(
            flow,
            outgoing,
            speed=speed,
            expected_log=expected,
            allowed_lateness_ms=lateness_ms,
            timeouts=Timeouts(drain_s=drain_timeout),
            progress=lambda count: bar.advance(task, count),
        )


def _write(
    folder: Path,
    scenario: Scenario,
    speed: Speed,
    outgoing: list[Outgoing],
    measured: Measured,
    expected: list[dict[str, object]],
    lateness_ms: int,
) -> Report:
    from revleak.loadtest.loadtest_replay import input_reach, speed_label, write_alert_log
    from revleak.loadtest.loadtest_report import RunRecord, build_report, write_report

    write_alert_log(folder / "received-alerts.jsonl", measured.alert_log)
    report = build_report(
        RunRecord(
            scenario=scenario.name,
            description=scenario.description,
            slo=scenario.slo,
            flow=scenario.flow,
            speed=speed_label(speed),
            started_at=measured.ready_at,
            finished_at=measured.produced.finished_at,
            event_times=[item.message.timestamp for item in outgoing],
            sent_at=[measured.ready_at, *measured.produced.sent_at],
            events=sum(item.events for item in outgoing),
            samples=measured.samples,
            sightings=measured.sightings,
            alert_log=measured.alert_log,
            expected_log=expected,
            reach_ms=input_reach(outgoing),
            allowed_lateness_ms=lateness_ms,
        )
    )
    write_report(report, folder)
    return report


def _render(console: Console, report: Report, folder: Path) -> None:
    flow, pages, latency = report.throughput, report.pages, report.latency

    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:,.0f}"

    def seconds(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    table = Table(title=f"loadtest {report.scenario} at {report.speed}", title_justify="left")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_row("produced, events/s", rate(flow.produced_per_second))
    table.add_row("processed, events/s", rate(flow.processed_per_second))
    table.add_row("consumer lag, highest (events)", f"{report.lag.highest or 0:,}")
    for name, comparison in (("Alertmanager", pages.alertmanager), ("alert log", pages.alert_log)):
        table.add_row(
            f"pages at {name}: received / expected",
            f"{comparison.received} / {comparison.expected}"
            + (" (mismatch)" if comparison.missing or comparison.unexpected else ""),
        )
    table.add_row(
        "event → page p50 / p95 / p99 (s)",
        f"{seconds(latency.p50)} / {seconds(latency.p95)} / {seconds(latency.p99)}",
    )
    console.print(table)
    console.print(f"Report: {folder / 'report.md'}", highlight=False)
