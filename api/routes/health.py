"""Liveness, readiness and the API's own metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from revleak.api.deps import MetricsDep, RemediationDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(service: RemediationDep) -> JSONResponse:
    """The database (and the live state, when configured) answer."""
    try:
        checks: dict[str, Any] = service.readiness()
    except Exception as error:
        return JSONResponse({"status": "unavailable", "reason": str(error)}, status_code=503)
    return JSONResponse({"status": "ok", "checks": checks})


@router.get("/metrics")
def metrics(api_metrics: MetricsDep) -> Response:
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
