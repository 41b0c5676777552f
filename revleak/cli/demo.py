"""``revleak demo``: the war room on localhost while the Nakatomi story runs.

Interactive, it prints the war room's address and serves until Ctrl-C: approve the
proposed fix pack in the page and watch it being verified and the incident resolve.
``--headless`` approves every proposal itself once the story's lead flood is over, and
ends when every incident has resolved, printing their timelines.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from revleak.timefmt import parse_timestamp

HEADLESS_TIMEOUT_S = 600.0
POLL_S = 0.5


def demo_command(
    headless: Annotated[
        bool, typer.Option("--headless", help="Approve automatically; end once resolved")
    ] = False,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: any free port")] = 8000,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Keep the database, alert log and dead letters here"),
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", min=1.0, help="Event time per wall time after the flood")
    ] = 60.0,
) -> None:
    """Run the Nakatomi Deal story with the war room on localhost."""
    from revleak.cli.demo_stack import STORY_FAST_UNTIL, start_demo

    console = Console()
    with tempfile.TemporaryDirectory(prefix="revleak-demo-") as scratch:
        folder = out or Path(scratch)
        if headless:
            stack = start_demo(folder, port=0, speed=600.0, fixed_speed=1200.0)
        else:
            stack = start_demo(folder, port=port, speed=speed)
        try:
            if headless:
                resolved = _approve_until_resolved(stack, parse_timestamp(STORY_FAST_UNTIL))
                _print_timelines(stack, console)
                if not resolved:
                    console.print("[red]Not every incident resolved in time.[/red]")
                    raise typer.Exit(1)
                console.print("Every incident is resolved.")
            else:
                console.print(
                    "[bold]The Nakatomi Deal[/bold] is running. War room:\n"
                    f"  {stack.war_room}\n(Ctrl-C to stop)",
                    highlight=False,
                    soft_wrap=True,
                )
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            stack.stop()


def _approve_until_resolved(stack: Any, flood_over_ms: int) -> bool:
    deadline = time.monotonic() + HEADLESS_TIMEOUT_S
    with stack.client() as client:
        while time.monotonic() < deadline:
            if stack.flow.error is not None:
                raise stack.flow.error
            if stack.feed.now_ms() < flood_over_ms:
                time.sleep(POLL_S)
                continue
            incidents = client.get("/v1/incidents", params={"limit": 500}).json()
            for incident in incidents:
                if incident["open"]:
                    _approve_latest(client, incident["id"])
            if incidents and not any(incident["open"] for incident in incidents):
                return True
            time.sleep(POLL_S)
    return False


def _approve_latest(client: Any, incident_id: str) -> None:
    runs = client.get(f"/v1/incidents/{incident_id}/runs").json()
    if not runs or runs[-1]["status"] != "PROPOSED" or runs[-1]["blocked"]:
        return
    run = runs[-1]["id"]
    if client.post(f"/v1/runs/{run}/approve").status_code == 200:
        client.post(f"/v1/runs/{run}/apply", headers={"Idempotency-Key": str(uuid.uuid4())})


def _print_timelines(stack: Any, console: Console) -> None:
    with stack.client() as client:
        incidents = client.get("/v1/incidents", params={"limit": 500}).json()
        for incident in reversed(incidents):
            detail = client.get(f"/v1/incidents/{incident['id']}").json()
            table = Table(
                title=f"{detail['id']} {detail['slo']} ({detail['severity']}): {detail['status']}",
                title_justify="left",
            )
            for column in ("at", "status", "actor", "detail"):
                table.add_column(column)
            for entry in detail["timeline"]:
                table.add_row(entry["at"][:19], entry["status"], entry["actor"], entry["detail"])
            console.print(table)
