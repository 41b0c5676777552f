"""``revleak replay``: run the CRM flow over event files and write the alert log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn

from revleak.cli.report import render_summary
from revleak.connectors.formats import Format, decoder_for
from revleak.connectors.mapping import MappingError, load_mapping
from revleak.slo.loader import SloFileError, load_catalog
from revleak.timefmt import parse_duration


def replay_command(
    alerts_out: Annotated[Path, typer.Option("--alerts-out", help="Alert log (JSON lines)")],
    slos: Annotated[Path, typer.Option("--slos", help="SLO file", exists=True, dir_okay=False)],
    events: Annotated[
        list[Path] | None,
        typer.Option(
            "--events",
            help="Event file; repeat for several partitions",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    from_kafka: Annotated[
        str | None,
        typer.Option("--from-kafka", help="Replay this Kafka topic to its end instead of files"),
    ] = None,
    brokers: Annotated[
        str, typer.Option("--brokers", envvar="REVLEAK_BROKERS", help="Kafka bootstrap servers")
    ] = "127.0.0.1:9092",
    start_offset: Annotated[
        list[str] | None,
        typer.Option(
            "--start-offset",
            help="PARTITION:OFFSET to start a partition at (default: its beginning); repeat",
        ),
    ] = None,
    alertmanager_url: Annotated[
        str | None,
        typer.Option(
            "--alertmanager-url",
            envvar="REVLEAK_ALERTMANAGER_URL",
            help="Also page this Alertmanager from the alert log",
        ),
    ] = None,
    input_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="generic (JSON lines), salesforce (Change Data Capture events), hubspot "
            "(webhook batches), auto (detected per message) or csv (funnel snapshot)",
        ),
    ] = "generic",
    mapping: Annotated[
        list[Path] | None,
        typer.Option(
            "--mapping",
            help="Field mapping of a Salesforce or HubSpot source (YAML); repeat for both",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    metrics_out: Annotated[
        Path | None, typer.Option("--metrics-out", help="Prometheus text exposition at the end")
    ] = None,
    dlq_out: Annotated[
        Path | None, typer.Option("--dlq-out", help="Dead letters (JSON lines)")
    ] = None,
    timeline_out: Annotated[
        Path | None, typer.Option("--timeline-out", help="Incident timeline (JSON lines)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Bytewax workers")] = 1,
    shards: Annotated[
        int, typer.Option("--shards", min=1, help="Record and domain shards (bounds parallelism)")
    ] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 2000,
    allowed_lateness: Annotated[
        str,
        typer.Option(
            "--allowed-lateness",
            help="How far behind the newest event time an event may arrive before it is late",
        ),
    ] = "60s",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar")] = False,
) -> None:
    """Replay CRM change events through the dataflow (event time, to the end of input)."""
    from revleak.dataflows.live_sinks import AlertmanagerPages
    from revleak.dataflows.replay import INPUT_FORMATS, KafkaInput, replay

    console = Console(stderr=True, soft_wrap=True)
    if input_format not in INPUT_FORMATS:
        raise typer.BadParameter(f"--format is one of {', '.join(INPUT_FORMATS)}")
    try:
        catalog = load_catalog(slos)
        mappings = [load_mapping(path) for path in mapping or []]
        lateness = parse_duration(allowed_lateness)
        if mappings:
            if input_format not in {fmt.value for fmt in Format}:
                raise ValueError("--mapping applies to --format salesforce, hubspot or auto")
            decoder_for(Format(input_format), mappings)  # refuses a mapping of another source
        if bool(events) == bool(from_kafka):
            raise ValueError("give --events files or --from-kafka TOPIC")
        kafka = (
            KafkaInput(brokers, from_kafka, _start_offsets(start_offset or []))
            if from_kafka
            else None
        )
    except (SloFileError, MappingError) as error:
        console.print(str(error), highlight=False)
        raise typer.Exit(code=1) from None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    total = sum(path.stat().st_size for path in events) if events else None
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("replaying", total=total)
        report = replay(
            catalog=catalog,
            events=events or [],
            kafka=kafka,
            alertmanager=AlertmanagerPages(alertmanager_url) if alertmanager_url else None,
            input_format=input_format,
            mappings=mappings,
            alerts_out=alerts_out,
            metrics_out=metrics_out,
            dlq_out=dlq_out,
            timeline_out=timeline_out,
            workers=workers,
            shards=shards,
            batch_size=batch_size,
            allowed_lateness_ms=lateness,
            progress=lambda read: bar.advance(task, read),
        )
    render_summary(report, Console(), catalog.names)


def _start_offsets(specs: list[str]) -> dict[int, int]:
    offsets: dict[int, int] = {}
    for spec in specs:
        partition, colon, offset = spec.partition(":")
        if not colon or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"--start-offset {spec!r} is not PARTITION:OFFSET")
        offsets[int(partition)] = int(offset)
    return offsets
