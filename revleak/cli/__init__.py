"""The revleak command line (Typer + Rich)."""

from __future__ import annotations

import typer
from prometheus_client import disable_created_metrics

from revleak.cli import api, audit, chaos, demo, loadtest, replay, run, slo, story

app = typer.Typer(
    name="revleak",
    help="Real-time SLO engine that treats revenue leaks and service failures as incidents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(slo.app, name="slo")
app.add_typer(run.app, name="run")
app.add_typer(audit.app, name="audit")
app.add_typer(loadtest.app, name="loadtest")
app.command("replay")(replay.replay_command)
app.command("demo")(demo.demo_command)
app.command("story")(story.story_command)
app.command("api")(api.api_command)
app.command("chaos")(chaos.chaos_command)


def main() -> None:
    # Counters' `_created` samples carry wall-clock times: leave them out so that the
    # same replay writes the same metrics file.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    app()
