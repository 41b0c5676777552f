"""Server-sent events for the war room, and the cookie that lets a browser use its token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from revleak.api.auth import COOKIE, Viewer
from revleak.api.deps import BroadcasterDep

router = APIRouter(tags=["war room"])


@router.get("/v1/events", response_class=StreamingResponse)
def change_stream(_: Viewer, broadcaster: BroadcasterDep) -> StreamingResponse:
    """``text/event-stream``: one ``change`` event per incident or run change."""
    return StreamingResponse(
        broadcaster.stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post("/v1/session", status_code=204)
def open_session(request: Request, principal: Viewer) -> Response:
    """Keep the presented bearer token in an HttpOnly, same-site cookie, so that the
    browser's page, event stream and buttons are authorised as that token."""
    response = Response(status_code=204)
    token = request.headers["authorization"].partition(" ")[2]
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    response.headers["X-Revleak-Actor"] = principal.actor
    return response
