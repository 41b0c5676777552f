"""The war room page: the most important incident, its fix pack and timeline, kept live.

``GET /`` renders the whole page (or, without a token, the sign-in page); the page then
follows ``/v1/events`` and swaps in the server-rendered panel fragment on every change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

from revleak.api.auth import Principal, Viewer, authenticate
from revleak.api.deps import RemediationDep
from revleak.remediation.context import NotFoundError
from revleak.remediation.incidents import SEVERITY_RANK
from revleak.remediation.model import Role
from revleak.remediation.service import Remediation
from revleak.remediation.views import IncidentDetail, IncidentSummary, RunDetail

router = APIRouter(include_in_schema=False)

LISTED_INCIDENTS = 100
# An approved run whose apply never arrived (a lost connection) can still be applied here.
ACTIONABLE = ("PROPOSED", "APPROVED")
STATIC_TYPES = {
    "warroom.js": "text/javascript; charset=utf-8",
    "warroom.css": "text/css; charset=utf-8",
}
# Everything the page needs comes from this origin: no inline script or style to inject into.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

DiffKind = Literal["meta", "hunk", "add", "del", "context"]


@dataclass(frozen=True)
class DiffLine:
    kind: DiffKind
    text: str


def diff_lines(diff: str) -> list[DiffLine]:
    """A unified diff's lines, each with what it is, so that the page can colour them."""
    lines = []
    for text in diff.splitlines():
        kind: DiffKind = "context"
        if text.startswith(("+++", "---")):
            kind = "meta"
        elif text.startswith("@@"):
            kind = "hunk"
        elif text.startswith("+"):
            kind = "add"
        elif text.startswith("-"):
            kind = "del"
        lines.append(DiffLine(kind, text))
    return lines


def usd(amount: float | None) -> str:
    if amount is None:
        return "—"
    return f"${amount:,.0f}" if abs(amount) >= 100 or amount.is_integer() else f"${amount:,.2f}"


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction * 100:.1f}%"


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def moment(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def time_of_day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S")


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("revleak.api", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        usd=usd, percent=percent, number=number, moment=moment, time_of_day=time_of_day
    )
    return environment


templates = _environment()


def priority(incident: IncidentSummary) -> tuple[bool, int, float]:
    """Sort key: open incidents first, then pages before tickets, then the newest."""
    return (
        not incident.open,
        -SEVERITY_RANK.get(incident.severity, 0),
        -incident.opened_at.timestamp(),
    )


def ranked_incidents(service: Remediation) -> list[IncidentSummary]:
    """The incidents to list, most important first; an old open incident is never crowded
    out by newer resolved ones."""
    open_ones = service.incidents.summaries(open_only=True, limit=LISTED_INCIDENTS)
    recent = service.incidents.summaries(limit=LISTED_INCIDENTS)
    unique = {incident.id: incident for incident in (*open_ones, *recent)}
    return sorted(unique.values(), key=priority)[:LISTED_INCIDENTS]


@dataclass(frozen=True)
class Panel:
    """What the panel fragment shows: the incident, its latest run, the other incidents."""

    incidents: Sequence[IncidentSummary]
    incident: IncidentDetail | None = None
    run: RunDetail | None = None
    may_approve: bool = False
    missing: str | None = None  # why the incident asked for is not shown

    def context(self, principal: Principal) -> dict[str, Any]:
        # A page opened on an incident stays on it: the approve button must never change
        # its target under the reader's pointer. Until there is one, it follows the top one.
        if self.incident is not None:
            refresh = f"/ui/incidents/{self.incident.id}/panel"
        else:
            refresh = "" if self.missing else "/ui/panel"
        return {
            "incidents": self.incidents,
            "incident": self.incident,
            "run": self.run,
            "diff": diff_lines(self.run.diff) if self.run is not None else [],
            "may_approve": self.may_approve,
            "missing": self.missing,
            "refresh": refresh,
            "principal": principal,
            "rendered_at": datetime.now(UTC),
        }


def build_panel(service: Remediation, principal: Principal, incident_id: str | None) -> Panel:
    """The panel of ``incident_id``, or of the most important incident when it is None."""
    incidents = ranked_incidents(service)
    if incident_id is None:
        if not incidents:
            return Panel(incidents)
        incident_id = incidents[0].id
    incident = service.incidents.detail(incident_id)
    run = service.runs.detail(incident.runs[-1].id) if incident.runs else None
    may_approve = (
        run is not None
        and run.status in ACTIONABLE
        and not run.blocked
        and incident.open
        and principal.role.rank >= Role.APPROVER.rank
    )
    return Panel(incidents, incident, run, may_approve)


def _html(template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    body = templates.get_template(template).render(context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse)
def war_room(
    request: Request,
    service: RemediationDep,
    incident: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The war room; the sign-in page when the browser holds no valid token."""
    try:
        principal = authenticate(request)
    except HTTPException as refusal:
        if refusal.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        return _html("login.html", {}, status.HTTP_401_UNAUTHORIZED)
    try:
        panel = build_panel(service, principal, incident)
    except NotFoundError as missing:
        panel = Panel(ranked_incidents(service), missing=str(missing))
        return _html("warroom.html", panel.context(principal), status.HTTP_404_NOT_FOUND)
    return _html("warroom.html", panel.context(principal))


@router.get("/ui/panel", response_class=HTMLResponse)
def top_panel(principal: Viewer, service: RemediationDep) -> HTMLResponse:
    """The panel fragment of the most important incident (for a page that shows none yet)."""
    return _html("panel.html", build_panel(service, principal, None).context(principal))


@router.get("/ui/incidents/{incident_id}/panel", response_class=HTMLResponse)
def incident_panel(incident_id: str, principal: Viewer, service: RemediationDep) -> HTMLResponse:
    """The panel fragment of one incident: what the page swaps in on every change."""
    return _html("panel.html", build_panel(service, principal, incident_id).context(principal))


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The page's script and style sheet (a fixed set: no path reaches the file system)."""
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise NotFoundError(f"no static file {name!r}")
    body = resources.files("revleak.api").joinpath("static", name).read_bytes()
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
