"""Typed dependencies of the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from revleak.api.events import Broadcaster
from revleak.api.metrics import ApiMetrics
from revleak.remediation.idempotency import IdempotentCalls
from revleak.remediation.service import Remediation


def _remediation(request: Request) -> Remediation:
    service: Remediation = request.app.state.remediation
    return service


def _idempotency(request: Request) -> IdempotentCalls:
    calls: IdempotentCalls = request.app.state.idempotency
    return calls


def _broadcaster(request: Request) -> Broadcaster:
    broadcaster: Broadcaster = request.app.state.broadcaster
    return broadcaster


def _metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


RemediationDep = Annotated[Remediation, Depends(_remediation)]
IdempotencyDep = Annotated[IdempotentCalls, Depends(_idempotency)]
BroadcasterDep = Annotated[Broadcaster, Depends(_broadcaster)]
MetricsDep = Annotated[ApiMetrics, Depends(_metrics)]
