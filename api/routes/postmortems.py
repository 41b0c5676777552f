"""Post-mortems written when incidents resolve: list, full-text search, read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from revleak.api.auth import Viewer
from revleak.api.deps import RemediationDep
from revleak.remediation.context import NotFoundError
from revleak.remediation.postmortem_store import Postmortem, SearchHit

router = APIRouter(prefix="/v1/postmortems", tags=["post-mortems"])


@router.get("")
def list_postmortems(
    _: Viewer,
    service: RemediationDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[Postmortem]:
    return service.shared.postmortems.list(limit=limit, offset=offset)


@router.get("/search")
def search_postmortems(
    _: Viewer,
    service: RemediationDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SearchHit]:
    return service.shared.postmortems.search(q, limit=limit)


@router.get("/{incident_id}", response_class=PlainTextResponse)
def read_postmortem(incident_id: str, _: Viewer, service: RemediationDep) -> PlainTextResponse:
    found = service.shared.postmortems.get(incident_id)
    if found is None:
        raise NotFoundError(f"no post-mortem for {incident_id}")
    return PlainTextResponse(found.markdown, media_type="text/markdown; charset=utf-8")
