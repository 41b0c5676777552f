"""Tables of the remediation state: incidents, their alerts, fix-pack runs, idempotency keys.

These rows are the current state and change; the audit log (remediation/audit.py) is the
append-only history, written in the same transaction as each change. Each incident row
remembers its newest audit entry, which is how a deleted tail of the log is noticed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from revleak.remediation.db import Base


class IncidentRow(Base):
    __tablename__ = "incidents"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slo: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(32))  # page or ticket: the worst alert seen
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)
    audit_hash: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (
        # One open incident per SLO and service, even with concurrent webhooks.
        Index(
            "one_open_incident",
            "slo",
            "service",
            unique=True,
            sqlite_where=text("open"),
            postgresql_where=text("open"),
        ),
    )

    @property
    def id(self) -> str:
        return f"INC-{self.number}"


class AlertRow(Base):
    __tablename__ = "incident_alerts"

    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(32))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunRow(Base):
    """One fix pack bound to one incident, from proposal to verdict."""

    __tablename__ = "fixpack_runs"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_number: Mapped[int] = mapped_column(ForeignKey("incidents.number"), index=True)
    pack_id: Mapped[str] = mapped_column(String(200))
    pack_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    preview: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    proposed_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    applied_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    results: Mapped[list[Any]] = mapped_column(JSON, default=list)
    observations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    verdict: Mapped[str] = mapped_column(Text, default="")

    @property
    def id(self) -> str:
        return f"RUN-{self.number}"


class IdempotencyRow(Base):
    """A request made with an ``Idempotency-Key``: claimed first, answered once done."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    request: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
