"""The revleak API (FastAPI): ``create_app()`` for uvicorn, tests and the demo."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from revleak.api.config import ApiSettings
from revleak.api.events import Broadcaster
from revleak.api.limits import BodyLimit
from revleak.api.metrics import ApiMetrics
from revleak.api.routes import (
    audit,
    events,
    fixpacks,
    health,
    incidents,
    otlp,
    postmortems,
    runbooks,
    warroom,
    webhook,
)
from revleak.api.wiring import build_remediation
from revleak.connectors.self_telemetry import (
    API_SERVICE_NAME,
    SelfTelemetrySettings,
    instrument_app,
    start_self_telemetry,
)
from revleak.remediation.context import ConflictError, NotFoundError, RefusedError
from revleak.remediation.idempotency import IdempotentCalls
from revleak.remediation.service import Remediation


class Ticker:
    """Calls ``tick`` every ``interval_s`` on a thread of its own until stopped."""

    def __init__(self, tick: Callable[[], None], interval_s: float) -> None:
        self._tick = tick
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="revleak-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def create_app(
    settings: ApiSettings | None = None,
    *,
    remediation: Callable[[Callable[[Mapping[str, Any]], None]], Remediation] | None = None,
    ticking: bool = True,
) -> FastAPI:
    """The app. ``remediation`` builds the service around an announcer when the host
    lends its own parts (the embedded demo); otherwise settings say what to use."""
    settings = settings or ApiSettings()
    broadcaster = Broadcaster()
    metrics = ApiMetrics(CollectorRegistry())

    def announce(event: Mapping[str, Any]) -> None:
        metrics.announced(event)
        broadcaster.publish(event)

    service = (
        remediation(announce)
        if remediation is not None
        else build_remediation(settings, announce=announce)
    )
    ticker = Ticker(service.tick, settings.verify_poll_s)
    telemetry = start_self_telemetry(SelfTelemetrySettings(), API_SERVICE_NAME)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if ticking:
            ticker.start()
        try:
            yield
        finally:
            if ticking:
                ticker.stop()
            if telemetry is not None:
                telemetry.shutdown()

    app = FastAPI(
        title="revleak",
        summary="Incidents from SLO burn-rate pages, fix packs with preview, approval, "
        "verified apply and rollback, and a tamper-evident audit log.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.remediation = service
    app.state.idempotency = IdempotentCalls(service.shared)
    app.state.broadcaster = broadcaster
    app.state.metrics = metrics
    routers = (webhook, otlp, incidents, fixpacks, audit, postmortems, runbooks, events, health)
    for module in routers:
        app.include_router(module.router)
    app.include_router(warroom.router)
    _errors(app)
    _timing(app, metrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if telemetry is not None:
        instrument_app(app, telemetry)
    return app


def _errors(app: FastAPI) -> None:
    for kind, status in ((NotFoundError, 404), (ConflictError, 409), (RefusedError, 422)):

        def handler(_: Request, error: Exception, status: int = status) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=status)

        app.add_exception_handler(kind, handler)

    def invalid(_: Request, error: Exception) -> Response:
        errors = error.errors() if isinstance(error, RequestValidationError) else []
        body = orjson.dumps({"detail": _json_safe(jsonable_encoder(errors))}, default=str)
        return Response(body, status_code=422, media_type="application/json")

    app.add_exception_handler(RequestValidationError, invalid)


def _json_safe(value: Any) -> Any:
    """Validation errors echo the input, which may hold what JSON cannot carry: NaN (orjson
    writes null) and integers beyond 64 bits (written here as text)."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1 << 63:
        return str(value)
    return value


def _timing(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response
