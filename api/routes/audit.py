"""The audit log: paged, exported as JSON lines, verified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from revleak.api.auth import Viewer
from revleak.api.deps import RemediationDep
from revleak.remediation.audit import AuditEntry, AuditVerdict

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("")
def audit_page(
    _: Viewer,
    service: RemediationDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="Entries after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    incident: Annotated[str | None, Query(max_length=40)] = None,
) -> list[AuditEntry]:
    return service.shared.audit.entries(after=after, limit=limit, incident_id=incident)


@router.get("/export", response_class=StreamingResponse)
def audit_export(_: Viewer, service: RemediationDep) -> StreamingResponse:
    """Every entry, oldest first, one JSON object per line (streamed: no size cap)."""

    def lines() -> Iterator[bytes]:
        for entry in service.shared.audit.iter_all():
            yield orjson.dumps(entry.model_dump(mode="json")) + b"\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="revleak-audit.jsonl"'},
    )


@router.get("/verify")
def audit_verify(_: Viewer, service: RemediationDep) -> AuditVerdict:
    """Recompute the hash chain: any edited, deleted or reordered entry is named."""
    return service.verify_audit()
