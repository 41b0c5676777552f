"""What the remediation service answers with: the public shape of incidents, runs and packs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from revleak.remediation.model import BlastRecord, IncidentStatus


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class BurnWindow(View):
    """One burn-rate alert rule of the incident's SLO, as its alert last said."""

    severity: str
    kind: str
    long_window: str
    short_window: str
    burn_long: float | None = None
    burn_short: float | None = None
    factor: float | None = None
    firing: bool


class AlertView(View):
    fingerprint: str
    status: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None


class OwnerExposure(View):
    owner: str
    records: int
    impact_usd: float


class LiveView(View):
    """The live state of the SLO (Redis or the embedded equivalent) when one is configured."""

    severity: str  # SEV1 … SEV4 or none: the whole revenue incident's severity
    paging_state: str
    consumption: float  # revenue at risk over the monthly budget
    at_risk_usd: float  # this SLO's dollars at risk
    blast_radius: int  # this SLO's violating records
    top_records: tuple[BlastRecord, ...] = ()
    owners: tuple[OwnerExposure, ...] = ()


class TimelineEntry(View):
    at: datetime
    status: str
    actor: str
    detail: str = ""
    audit_seq: int


class RunSummary(View):
    id: str
    incident_id: str
    pack_id: str
    pack_hash: str
    status: str
    proposed_by: str
    approved_by: str | None = None
    applied_by: str | None = None
    created_at: datetime
    applied_at: datetime | None = None
    effects: int
    records: int
    blocked: str | None = None
    verdict: str = ""


class RunDetail(RunSummary):
    inputs: dict[str, Any] = Field(default_factory=dict)
    diff: str = ""
    side_effects: tuple[str, ...] = ()
    plan: dict[str, Any] = Field(default_factory=dict)
    results: list[dict[str, Any]] = Field(default_factory=list)
    observations: list[dict[str, Any]] = Field(default_factory=list)


class SimilarIncident(View):
    incident_id: str
    title: str
    score: float


class IncidentSummary(View):
    id: str
    slo: str
    service: str
    status: IncidentStatus
    severity: str
    open: bool
    summary: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    alerts_firing: int


class IncidentDetail(IncidentSummary):
    labels: dict[str, str]
    annotations: dict[str, str]
    alerts: tuple[AlertView, ...]
    burn_windows: tuple[BurnWindow, ...]
    live: LiveView | None = None
    timeline: tuple[TimelineEntry, ...]
    runs: tuple[RunSummary, ...]
    similar: tuple[SimilarIncident, ...] = ()
    postmortem: str | None = None


class PackView(View):
    id: str
    name: str
    description: str
    content_hash: str
    triggers: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    inputs: dict[str, Any]
    guards: dict[str, Any]
