"""``revleak run crm``: the live CRM flow over Kafka (settings by flag or REVLEAK_*)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from revleak.settings import LiveSettings

# Options both flows take (each is also a REVLEAK_* variable).
Brokers = Annotated[str | None, typer.Option(help="Kafka bootstrap servers")]
AlertsTopic = Annotated[str | None, typer.Option(help="Topic of the alert log")]
DlqTopic = Annotated[str | None, typer.Option(help="Topic of dead letters")]
SloFile = Annotated[Path | None, typer.Option(help="SLO file", exists=True)]
Lateness = Annotated[str | None, typer.Option(help="e.g. 60s")]
IdleTimeout = Annotated[float | None, typer.Option(help="Idle partition timeout")]
AlertmanagerUrl = Annotated[str | None, typer.Option(help="Alertmanager base URL")]
ResendInterval = Annotated[float | None, typer.Option(help="Re-send firing pages")]
RedisUrl = Annotated[str | None, typer.Option(help="Redis URL for live state")]
MetricsPort = Annotated[int | None, typer.Option(help="Serve /metrics on this port")]
MetricsHost = Annotated[str | None, typer.Option(help="Address of /metrics")]
RecoveryDir = Annotated[Path | None, typer.Option(help="Bytewax recovery database")]
Workers = Annotated[int | None, typer.Option(help="Workers in this process")]
EarlyPages = Annotated[
    bool | None, typer.Option("--early-pages/--no-early-pages", help="Page on arrival")
]
ProcessId = Annotated[
    int | None, typer.Option("-i", "--process-id", help="This process in a cluster")
]
Addresses = Annotated[
    str | None,
    typer.Option("-a", "--addresses", help="host:port of every process, ';'-separated"),
]

app = typer.Typer(no_args_is_help=True, help="Run a live flow until stopped.")


@app.command("crm")
def crm_command(
    brokers: Brokers = None,
    changes_topic: Annotated[str | None, typer.Option(help="Topic of CRM changes")] = None,
    alerts_topic: AlertsTopic = None,
    dlq_topic: DlqTopic = None,
    slos: SloFile = None,
    input_format: Annotated[
        str | None, typer.Option("--format", help="generic, salesforce, hubspot or auto")
    ] = None,
    mapping: Annotated[
        list[Path] | None, typer.Option(help="Vendor field mapping (YAML)", exists=True)
    ] = None,
    allowed_lateness: Lateness = None,
    idle_timeout_s: IdleTimeout = None,
    alertmanager_url: AlertmanagerUrl = None,
    resend_interval_s: ResendInterval = None,
    early_pages: EarlyPages = None,
    redis_url: RedisUrl = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
    recovery_dir: RecoveryDir = None,
    snapshot_interval_s: Annotated[
        float | None, typer.Option(help="Seconds between recovery snapshots")
    ] = None,
    workers: Workers = None,
    shards: Annotated[int | None, typer.Option(help="Record and domain shards")] = None,
    process_id: ProcessId = None,
    addresses: Addresses = None,
) -> None:
    """Consume CRM changes, page Alertmanager, keep live state, until stopped."""
    flags: dict[str, Any] = {
        "brokers": brokers,
        "changes_topic": changes_topic,
        "alerts_topic": alerts_topic,
        "dlq_topic": dlq_topic,
        "slos": slos,
        "input_format": input_format,
        "mappings": mapping,
        "allowed_lateness": allowed_lateness,
        "idle_timeout_s": idle_timeout_s,
        "alertmanager_url": alertmanager_url,
        "resend_interval_s": resend_interval_s,
        "early_pages": early_pages,
        "redis_url": redis_url,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "recovery_dir": recovery_dir,
        "snapshot_interval_s": snapshot_interval_s,
        "workers": workers,
        "shards": shards,
    }
    _run(flags, process_id, addresses, telemetry=False)


@app.command("telemetry")
def telemetry_command(
    brokers: Brokers = None,
    spans_topic: Annotated[str | None, typer.Option(help="Topic of OTLP spans")] = None,
    metrics_topic: Annotated[str | None, typer.Option(help="Topic of OTLP metrics")] = None,
    alerts_topic: Annotated[
        str | None, typer.Option(help="Topic of this flow's alert log")
    ] = None,
    dlq_topic: DlqTopic = None,
    root_causes_topic: Annotated[
        str | None, typer.Option(help="Topic of the pages' root causes")
    ] = None,
    slos: SloFile = None,
    allowed_lateness: Lateness = None,
    idle_timeout_s: IdleTimeout = None,
    alertmanager_url: AlertmanagerUrl = None,
    resend_interval_s: ResendInterval = None,
    early_pages: EarlyPages = None,
    redis_url: RedisUrl = None,
    redis_prefix: Annotated[
        str | None, typer.Option(help="Prefix of this flow's Redis keys")
    ] = None,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = None,
    recovery_dir: RecoveryDir = None,
    workers: Workers = None,
    shards: Annotated[int | None, typer.Option(help="Trace and metric-series shards")] = None,
    process_id: ProcessId = None,
    addresses: Addresses = None,
) -> None:
    """Consume OTLP spans and metrics, page Alertmanager with root causes, until stopped."""
    flags: dict[str, Any] = {
        "brokers": brokers,
        "spans_topic": spans_topic,
        "metrics_topic": metrics_topic,
        "telemetry_alerts_topic": alerts_topic,
        "telemetry_redis_prefix": redis_prefix,
        "dlq_topic": dlq_topic,
        "root_causes_topic": root_causes_topic,
        "slos": slos,
        "allowed_lateness": allowed_lateness,
        "idle_timeout_s": idle_timeout_s,
        "alertmanager_url": alertmanager_url,
        "resend_interval_s": resend_interval_s,
        "early_pages": early_pages,
        "redis_url": redis_url,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "recovery_dir": recovery_dir,
        "workers": workers,
        "shards": shards,
    }
    _run(flags, process_id, addresses, telemetry=True)


def _run(
    flags: dict[str, Any], process_id: int | None, addresses: str | None, *, telemetry: bool
) -> None:
    from revleak.dataflows.live import run_live

    try:
        settings = LiveSettings(**{name: flag for name, flag in flags.items() if flag is not None})
    except ValidationError as error:
        Console(stderr=True).print(str(error), highlight=False)
        raise typer.Exit(code=2) from None
    from bytewax.errors import BytewaxRuntimeError

    # SIGTERM stops the flow as Ctrl-C does: Bytewax sees the interrupt, stops its
    # workers and closes the outputs (pending pages are delivered).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_live(
            settings,
            process_id=process_id,
            addresses=addresses.split(";") if addresses else None,
            telemetry=telemetry,
        )
    except KeyboardInterrupt:
        pass
    except BytewaxRuntimeError as error:
        if not _stopped_by_signal(error):
            raise


def _stopped_by_signal(error: BaseException) -> bool:
    """Whether the flow ended because it was told to stop.

    Bytewax reports an interrupt it sees between steps as "signal received"; one that lands
    while a step's Python code runs surfaces as that step's error, caused by the
    KeyboardInterrupt. Either way the recovery snapshots make the stop as safe as a crash,
    so both are a clean exit.
    """
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return any(
        isinstance(link, KeyboardInterrupt) or "signal received" in str(link) for link in chain
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    raise KeyboardInterrupt
