"""``/v1/runbooks/{slo}``: where an alert's ``runbook_url`` leads."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from revleak.api.auth import Viewer
from revleak.api.deps import RemediationDep
from revleak.api.routes.fixpacks import pack_view
from revleak.remediation.views import IncidentSummary, PackView

router = APIRouter(prefix="/v1/runbooks", tags=["runbooks"])


class Runbook(BaseModel):
    slo: str
    steps: list[str]
    fix_packs: list[PackView]
    open_incidents: list[IncidentSummary]


@router.get("/{slo}")
def runbook(slo: str, _: Viewer, service: RemediationDep) -> Runbook:
    packs = [pack_view(pack) for pack in service.runs.catalogue.for_labels({"slo": slo})]
    incidents = [i for i in service.incidents.summaries(open_only=True, limit=500) if i.slo == slo]
    return Runbook(
        slo=slo,
        steps=[
            "Open the incident in the war room and read its blast radius and burn windows.",
            "Check the proposed fix pack's preview: every record and file it will change.",
            "Approve and apply it (role approver); revleak verifies the SLO recovers and "
            "rolls the change back if it does not.",
        ],
        fix_packs=packs,
        open_incidents=incidents,
    )
