"""``revleak audit verify|export``: check the hash chain of the audit log, or stream it out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(help="Check or export the tamper-evident audit log.", no_args_is_help=True)

DEFAULT_DATABASE_URL = "sqlite:///revleak.db"

Database = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="REVLEAK_DATABASE_URL",
        help="Database URL (SQLAlchemy), e.g. postgresql+psycopg://revleak@db/revleak",
    ),
]


@app.command("verify")
def verify_command(db: Database = DEFAULT_DATABASE_URL) -> None:
    """Walk the whole chain; exit 1 and list the problems when it was tampered with."""
    from sqlalchemy import inspect, select

    from revleak.remediation.audit import AuditLog
    from revleak.remediation.db import read_only
    from revleak.remediation.store import IncidentRow

    console = Console(highlight=False)
    engine = _open(db)
    references: list[tuple[int, str]] = []
    # Each incident remembers its newest entry: the only witness of a removed tail. They are
    # read before the chain, so that entries appended meanwhile cannot look missing.
    if inspect(read_only(engine)).has_table(IncidentRow.__tablename__):
        with read_only(engine).connect() as connection:
            rows = connection.execute(select(IncidentRow.audit_seq, IncidentRow.audit_hash))
            references = [(row.audit_seq, row.audit_hash) for row in rows if row.audit_seq]
    verdict = AuditLog(engine).verify(references)
    engine.dispose()
    head = f"{verdict.head_seq} {verdict.head_hash}" if verdict.head_seq is not None else "none"
    console.print(f"entries: [bold]{verdict.entries:,}[/bold]")
    console.print(f"head: {head}", soft_wrap=True)
    console.print(f"references checked: {len(references):,}")
    if verdict.ok:
        console.print("[green]intact[/green]: every entry matches its hash and its predecessor")
        return
    table = Table(title="Problems", title_justify="left")
    for column in ("seq", "kind", "detail"):
        table.add_column(column, justify="right" if column == "seq" else "left")
    for problem in verdict.problems:
        table.add_row(str(problem.seq), problem.kind, problem.detail)
    console.print(table)
    console.print(f"[red]tampered[/red]: {len(verdict.problems):,} problem(s) listed")
    raise typer.Exit(code=1)


@app.command("export")
def export_command(
    db: Database = DEFAULT_DATABASE_URL,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (JSON lines); stdout if unset")
    ] = None,
) -> None:
    """Write every entry as one JSON line, oldest first (streamed, any size)."""
    engine = _open(db)
    try:
        if out is None:
            _export(engine, sys.stdout.buffer)
        else:
            with out.open("wb") as stream:
                _export(engine, stream)
    finally:
        engine.dispose()


def _export(engine: Engine, stream: BinaryIO) -> None:
    from revleak.remediation.audit import AuditLog, canonical_json

    for entry in AuditLog(engine).iter_all():
        stream.write(canonical_json(entry.model_dump()) + b"\n")
    stream.flush()


def _open(url: str) -> Engine:
    """An engine on an existing audit log; exit 2 rather than create an empty one."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from revleak.remediation.db import AuditRow, engine_for, read_only

    errors = Console(stderr=True, highlight=False)
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database
    on_disk = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if on_disk and not Path(str(database)).is_file():
        errors.print(f"[red]error[/red] no database at {database}")
        raise typer.Exit(code=2)
    engine = engine_for(url)
    if not inspect(read_only(engine)).has_table(AuditRow.__tablename__):
        engine.dispose()
        errors.print(f"[red]error[/red] {shown} has no audit log")
        raise typer.Exit(code=2)
    return engine
