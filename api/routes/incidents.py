"""Incidents: list, detail (severity, budget, burn windows, blast radius, timeline), plan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from revleak.api.auth import Operator, Viewer
from revleak.api.deps import RemediationDep
from revleak.remediation.model import IncidentStatus
from revleak.remediation.views import IncidentDetail, IncidentSummary, RunDetail, TimelineEntry

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])

IncidentId = Annotated[str, Field(pattern=r"^INC-\d{1,12}$", examples=["INC-1"])]


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pack_id: str | None = Field(
        default=None, max_length=200, description="A catalogue pack; the best match if unset"
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="The pack's inputs")


@router.get("")
def list_incidents(
    _: Viewer,
    service: RemediationDep,
    open: Annotated[bool, Query(description="Only open incidents")] = False,
    incident_status: Annotated[IncidentStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[IncidentSummary]:
    return service.incidents.summaries(
        open_only=open,
        status=incident_status.value if incident_status else None,
        limit=limit,
        offset=offset,
    )


@router.get("/{incident_id}")
def incident_detail(incident_id: str, _: Viewer, service: RemediationDep) -> IncidentDetail:
    return service.incidents.detail(incident_id)


@router.get("/{incident_id}/timeline")
def incident_timeline(
    incident_id: str, _: Viewer, service: RemediationDep
) -> list[TimelineEntry]:
    return list(service.incidents.detail(incident_id).timeline)


@router.get("/{incident_id}/runs")
def incident_runs(incident_id: str, _: Viewer, service: RemediationDep) -> list[RunDetail]:
    return service.runs.for_incident(incident_id)


@router.post("/{incident_id}/plan", status_code=status.HTTP_201_CREATED)
def plan_fix(
    incident_id: str, body: PlanRequest, principal: Operator, service: RemediationDep
) -> RunDetail:
    """Bind a fix pack to the incident: the run's plan and preview, nothing applied."""
    return service.runs.propose(
        incident_id, pack_id=body.pack_id, inputs=body.inputs, actor=principal.actor
    )
