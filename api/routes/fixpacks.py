"""Fix packs and their runs: catalogue, preview, approve, apply (once), status."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from revleak.api.auth import Approver, Viewer
from revleak.api.deps import IdempotencyDep, RemediationDep
from revleak.remediation.context import ConflictError, NotFoundError, RefusedError
from revleak.remediation.idempotency import fingerprint
from revleak.remediation.packs import FixPack
from revleak.remediation.views import PackView, RunDetail

router = APIRouter(tags=["fix packs"])


class PreviewView(BaseModel):
    run: str
    pack_id: str
    pack_hash: str
    diff: str
    side_effects: list[str]
    records: list[dict[str, Any]]
    files: list[dict[str, Any]]
    blocked: str | None = None


def pack_view(pack: FixPack) -> PackView:
    spec = pack.spec.model_dump(mode="json", by_alias=True)
    return PackView(
        id=pack.id,
        name=pack.name,
        description=pack.description,
        content_hash=pack.content_hash,
        triggers=spec.get("triggers", []),
        steps=spec.get("steps", []),
        inputs=spec.get("inputs", {}),
        guards=spec.get("guards", {}),
    )


@router.get("/v1/fixpacks")
def catalogue(
    _: Viewer,
    service: RemediationDep,
    slo: Annotated[str | None, Query(max_length=200, description="Packs for this SLO")] = None,
) -> list[PackView]:
    packs = service.runs.catalogue.packs
    if slo is not None:
        packs = tuple(service.runs.catalogue.for_labels({"slo": slo}))
    return [pack_view(pack) for pack in packs]


@router.get("/v1/fixpacks/{pack_id}")
def pack_detail(pack_id: str, _: Viewer, service: RemediationDep) -> PackView:
    try:
        return pack_view(service.runs.catalogue.get(pack_id))
    except KeyError:
        raise NotFoundError(f"no fix pack {pack_id!r}") from None


@router.get("/v1/runs/{run_id}")
def run_status(run_id: str, _: Viewer, service: RemediationDep) -> RunDetail:
    return service.runs.detail(run_id)


@router.get("/v1/runs/{run_id}/preview")
def run_preview(run_id: str, _: Viewer, service: RemediationDep) -> PreviewView:
    """The dry run: a unified diff of records and files, and the side effects."""
    run = service.runs.detail(run_id)
    shown = service.runs.preview_of(run_id)
    return PreviewView(
        run=run.id,
        pack_id=run.pack_id,
        pack_hash=run.pack_hash,
        diff=str(shown.get("diff", "")),
        side_effects=list(shown.get("side_effects", [])),
        records=list(shown.get("records", [])),
        files=list(shown.get("files", [])),
        blocked=shown.get("blocked"),
    )


@router.post("/v1/runs/{run_id}/approve")
def approve_run(run_id: str, principal: Approver, service: RemediationDep) -> RunDetail:
    return service.runs.approve(run_id, actor=principal.actor)


@router.post("/v1/runs/{run_id}/apply", response_model=RunDetail)
async def apply_run(
    run_id: str,
    request: Request,
    principal: Approver,
    service: RemediationDep,
    calls: IdempotencyDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> JSONResponse:
    """Apply an approved run. With an ``Idempotency-Key``, repeating the request (even at
    the same moment) returns the first answer and changes nothing more."""
    body = await request.body()

    def act() -> tuple[int, dict[str, Any]]:
        try:
            run = service.runs.apply(run_id, actor=principal.actor)
        except NotFoundError as error:
            return 404, {"detail": str(error)}
        except ConflictError as error:
            return 409, {"detail": str(error)}
        except RefusedError as error:
            return 422, {"detail": str(error)}
        return 200, orjson.loads(run.model_dump_json())

    if idempotency_key is None:
        status_code, answer = await run_in_threadpool(act)
        return JSONResponse(answer, status_code=status_code)
    request_id = fingerprint(request.method, request.url.path, body)
    (status_code, answer), replayed = await run_in_threadpool(
        calls.call, idempotency_key, actor=principal.actor, request=request_id, act=act
    )
    return JSONResponse(
        answer,
        status_code=status_code,
        headers={"Idempotent-Replayed": "true" if replayed else "false"},
    )
