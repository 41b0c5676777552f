"""``revleak api``: serve the remediation API and the war room (settings: ``REVLEAK_*``)."""

from __future__ import annotations

from typing import Annotated

import typer


def api_command(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Serve the API: Alertmanager webhooks, incidents, fix packs, audit, war room."""
    import uvicorn

    from revleak.api.app import create_app

    uvicorn.run(create_app(), host=host, port=port, proxy_headers=True)
