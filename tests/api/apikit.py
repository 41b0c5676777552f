"""The API under test: a real SQLite file, the embedded CRM, a live state the test sets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from revleak.api.app import create_app
from revleak.api.config import ApiSettings, TokenGrant
from revleak.api.wiring import build_remediation
from revleak.remediation.crm_sim import EmbeddedCrm
from revleak.remediation.model import BlastRecord, Role
from revleak.remediation.service import Remediation

TOKENS = {
    "viewer-token-0123456789": TokenGrant(actor="vic", role=Role.VIEWER),
    "operator-token-0123456789": TokenGrant(actor="olga", role=Role.OPERATOR),
    "approver-token-0123456789": TokenGrant(actor="ana", role=Role.APPROVER),
}
VIEWER, OPERATOR, APPROVER = (f"Bearer {token}" for token in TOKENS)
START = datetime(2026, 3, 10, 18, 30, tzinfo=UTC)


class LiveState:
    """The flows' live state as the API reads it, set by the test."""

    def __init__(self) -> None:
        self.blast: dict[str, list[BlastRecord]] = {}
        self.summary: dict[str, Any] = {}
        self.causes: dict[str, dict[str, Any]] = {}

    def blast_radius(self, slo: str, limit: int | None = None) -> list[BlastRecord]:
        return self.blast.get(slo, [])[:limit]

    def root_causes(self) -> dict[str, dict[str, Any]]:
        return self.causes

    def incident(self) -> dict[str, Any] | None:
        return self.summary or None


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SlackServer:
    """A local Slack incoming webhook that records what it receives."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Api:
    client: TestClient
    service: Remediation
    live: LiveState
    crm: EmbeddedCrm
    clock: Clock
    slack: SlackServer
    database: Path
    events: list[bytes] = field(default_factory=list)

    def post_alerts(self, payload: dict[str, Any], token: str = OPERATOR) -> Any:
        return self.client.post(
            "/v1/alertmanager/webhook", json=payload, headers={"Authorization": token}
        )

    def get(self, path: str, token: str = VIEWER, **params: Any) -> Any:
        return self.client.get(path, params=params, headers={"Authorization": token})

    def post(self, path: str, token: str = APPROVER, **kwargs: Any) -> Any:
        headers = {"Authorization": token, **kwargs.pop("headers", {})}
        return self.client.post(path, headers=headers, **kwargs)


@contextmanager
def running_api(tmp_path: Path, **settings_overrides: Any) -> Iterator[Api]:
    database = tmp_path / "revleak.db"
    slack = SlackServer()
    chosen: dict[str, Any] = {
        "database_url": f"sqlite:///{database}",
        "api_tokens": TOKENS,
        "slack_webhooks": {"*": slack.url},
        "verify_window_s": 60,
        "verify_settle": 1,
    }
    settings = ApiSettings(**{**chosen, **settings_overrides})
    live, clock = LiveState(), Clock()
    emitted: list[bytes] = []
    crm = EmbeddedCrm(emitted.append, lambda: int(clock().timestamp() * 1000))
    holder: dict[str, Remediation] = {}

    def remediation(announce: Any) -> Remediation:
        holder["service"] = build_remediation(
            settings, announce=announce, live=live, records=crm, crm=crm, clock=clock
        )
        return holder["service"]

    app = create_app(settings, remediation=remediation, ticking=False)
    with TestClient(app) as client:
        yield Api(client, holder["service"], live, crm, clock, slack, database, emitted)
    slack.close()


def alert(
    slo: str = "lead_response",
    *,
    status: str = "firing",
    severity: str = "page",
    long_window: str = "1h",
    short_window: str = "5m",
    service: str = "lead",
    fingerprint: str | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {
        "alertname": "SLOBurnRate",
        "slo": slo,
        "severity": severity,
        "kind": "usd",
        "long_window": long_window,
        "short_window": short_window,
        "service": service,
    }
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations
        or {
            "summary": f"{slo} is burning its usd error budget 20.0×/20.0× over "
            f"{long_window}/{short_window}",
            "at_risk_usd": "1200000.00",
            "blast_radius": "80",
            "burn_long": "20.0",
            "burn_short": "20.0",
            "burn_factor": "14.4",
        },
        "startsAt": "2026-03-10T18:30:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-10T19:30:00Z",
        "generatorURL": "",
        "fingerprint": fingerprint or f"{slo}-{severity}-{long_window}",
    }


def notification(*alerts: dict[str, Any], receiver: str = "revleak-page") -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="SLOBurnRate"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": {"alertname": "SLOBurnRate"},
        "commonLabels": {"alertname": "SLOBurnRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
