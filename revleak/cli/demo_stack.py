"""The embedded stack of ``revleak demo``: everything in one process, nothing to install.

The Nakatomi story is fed, paced, into the embedded CRM (the system of record) and the
real CRM flow; the flow's pages go to an in-process Alertmanager that posts its webhook
notifications to the API over HTTP, and its live updates to an in-process live state.
Fix packs write back to the embedded CRM, whose change events join the stream, so the
flow sees the fix and the SLO recovers (or does not) on its own.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from revleak.api.app import create_app
from revleak.api.config import ApiSettings, TokenGrant
from revleak.api.wiring import build_remediation
from revleak.connectors.alertmanager_webhook import EmbeddedAlertmanager
from revleak.connectors.live_memory import InMemoryLiveState
from revleak.dataflows.embedded import EmbeddedFlow
from revleak.loadtest.story import StoryFeed
from revleak.remediation.crm_sim import EmbeddedCrm
from revleak.remediation.model import Role
from revleak.remediation.service import Remediation
from revleak.slo.loader import load_catalog
from revleak.timefmt import parse_timestamp

logger = logging.getLogger(__name__)

STORY = "nakatomi.jsonl"
# The week before the webinar's lead flood passes in seconds; from then on the story
# runs at the chosen speed, so its pages are seen firing (and a fix pack approved) live.
STORY_FAST_UNTIL = "2026-03-10T18:00:00Z"
SERVER_START_S = 20.0


@dataclass
class DemoStack:
    url: str
    approver_token: str
    viewer_token: str
    app: FastAPI
    feed: StoryFeed
    flow: EmbeddedFlow
    crm: EmbeddedCrm
    live: InMemoryLiveState
    slack: SlackInbox
    _server: uvicorn.Server
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def remediation(self) -> Remediation:
        service: Remediation = self.app.state.remediation
        return service

    @property
    def war_room(self) -> str:
        """The page's address; the fragment hands the browser its token (never sent)."""
        return f"{self.url}/#token={self.approver_token}"

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.approver_token}"},
            timeout=30.0,
        )

    def stop(self) -> None:
        self._stop.set()
        self._server.should_exit = True
        self.slack.close()
        self.flow.close(timeout_s=30)
        for thread in self._threads:
            thread.join(timeout=30)


def start_demo(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    speed: float = 60.0,
    fixed_speed: float = 600.0,
    verify_window_s: float = 120.0,
    owners_respond: bool = True,
) -> DemoStack:
    """Start the stack; the story runs until ``stop``. ``speed`` is event time per wall
    time once the story's flood is over; ``fixed_speed`` after a fix pack is applied, so
    that the burn-rate windows drain while one watches."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or _free_port(host)
    url = f"http://{host}:{port}"
    approver, viewer, alertmanager = (secrets.token_urlsafe(24) for _ in range(3))
    slack = SlackInbox(host, folder / "slack.jsonl")
    settings = ApiSettings(
        database_url=f"sqlite:///{folder / 'revleak.db'}",
        api_tokens={
            approver: TokenGrant(actor="you", role=Role.APPROVER),
            viewer: TokenGrant(actor="observer", role=Role.VIEWER),
            alertmanager: TokenGrant(actor="alertmanager", role=Role.OPERATOR),
        },
        slack_webhooks={"*": slack.url},
        verify_window_s=verify_window_s,
        verify_poll_s=1.0,
    )
    catalog = load_catalog(Path(str(resources.files("revleak.slos") / "crm.yaml")))
    live = InMemoryLiveState()
    holder: dict[str, Any] = {}

    def to_story(raw: bytes) -> None:
        holder["crm"].observe(raw)
        holder["flow"].put(raw)

    with resources.as_file(resources.files("revleak.data") / STORY) as story_file:
        feed = StoryFeed(
            Path(story_file),
            to_story,
            speed=speed,
            fast_until_ms=parse_timestamp(STORY_FAST_UNTIL),
        )
    crm = EmbeddedCrm(feed.inject, feed.now_ms, owners_respond=owners_respond)
    holder["crm"] = crm

    def speed_up_after_apply(event: Mapping[str, Any]) -> None:
        if event.get("type") == "run" and event.get("change") == "applied":
            feed.set_speed(fixed_speed)

    def remediation(announce: Any) -> Remediation:
        def announce_all(event: Mapping[str, Any]) -> None:
            speed_up_after_apply(event)
            announce(event)

        return build_remediation(
            settings, announce=announce_all, live=live, records=crm, crm=crm
        )

    app = create_app(settings, remediation=remediation)
    webhook = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {alertmanager}"}, timeout=30.0
    )

    stopping = threading.Event()

    def notify(payload: dict[str, Any]) -> None:
        # Stopping ends the flow's input, which resolves every alert: nobody is listening.
        if not stopping.is_set():
            webhook.post("/v1/alertmanager/webhook", json=payload).raise_for_status()

    alertmanager_ = EmbeddedAlertmanager(
        notify, external_url=f"{url}/alertmanager", catalog=catalog
    )
    flow = EmbeddedFlow(catalog, on_pages=alertmanager_.submit, live=live, folder=folder)
    holder["flow"] = flow
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    stack = DemoStack(
        url=url,
        approver_token=approver,
        viewer_token=viewer,
        app=app,
        feed=feed,
        flow=flow,
        crm=crm,
        live=live,
        slack=slack,
        _server=server,
        _stop=stopping,
    )
    serving = threading.Thread(target=server.run, name="revleak-api", daemon=True)
    serving.start()
    _wait_until_serving(url, server)
    flow.start()
    story = threading.Thread(
        target=feed.run, args=(stack._stop,), name="revleak-story", daemon=True
    )
    story.start()
    stack._threads.extend([story, serving])
    return stack


class SlackInbox:
    """Where the demo's Slack notifications go: a local incoming webhook that keeps each
    message (in ``messages`` and, one JSON object per line, in a file)."""

    def __init__(self, host: str, path: Path) -> None:
        self.messages: list[dict[str, Any]] = []
        inbox = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                message = orjson.loads(self.rfile.read(length) or b"{}")
                inbox.messages.append(message)
                with path.open("ab") as out:
                    out.write(orjson.dumps(message) + b"\n")
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Receive)
        self.url = f"http://{host}:{self._server.server_address[1]}/services/demo"
        threading.Thread(target=self._server.serve_forever, name="slack", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_serving(url: str, server: uvicorn.Server) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.started:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"the API did not start on {url} within {SERVER_START_S:g} s")
