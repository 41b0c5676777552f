"""``POST /v1/alertmanager/webhook``: Alertmanager's notifications become incidents."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from revleak.api.auth import Operator
from revleak.api.deps import MetricsDep, RemediationDep
from revleak.remediation.alerts import WebhookPayload

router = APIRouter(prefix="/v1/alertmanager", tags=["alertmanager"])


class TouchedIncident(BaseModel):
    id: str
    change: str


class WebhookAnswer(BaseModel):
    incidents: list[TouchedIncident]


@router.post("/webhook")
def receive_notification(
    payload: WebhookPayload, principal: Operator, service: RemediationDep, metrics: MetricsDep
) -> WebhookAnswer:
    """One Alertmanager notification (webhook payload version 4)."""
    touched = service.receive(payload, actor=f"alertmanager:{principal.actor}")
    metrics.webhooks.labels("accepted").inc()
    return WebhookAnswer(
        incidents=[TouchedIncident(id=incident, change=change) for incident, change in touched]
    )
