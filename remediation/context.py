"""What every part of the remediation service shares: database, audit, clock, announcements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from revleak.remediation.audit import AuditEntry, AuditLog
from revleak.remediation.db import read_only
from revleak.remediation.model import IncidentStatus, RecordDirectory
from revleak.remediation.postmortem_store import PostmortemStore
from revleak.remediation.store import IncidentRow


class LiveStateReader(Protocol):
    """The live state the flows keep (Redis, or the demo's in-process equivalent)."""

    def blast_radius(self, slo: str, limit: int | None = None) -> Sequence[Any]: ...

    def incident(self) -> dict[str, Any] | None: ...

    def root_causes(self) -> dict[str, dict[str, Any]]: ...


class NotFoundError(LookupError):
    """No such incident, run, pack or post-mortem."""


class ConflictError(RuntimeError):
    """The request does not fit the current state (e.g. applying a run twice)."""


class RefusedError(ValueError):
    """The request is understood but cannot be carried out as asked (e.g. bad pack inputs)."""


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: every time stored here is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Shared:
    engine: Engine
    audit: AuditLog
    postmortems: PostmortemStore
    live: LiveStateReader | None = None
    records: RecordDirectory | None = None
    clock: Callable[[], datetime] = wall_clock
    announce: Callable[[Mapping[str, Any]], None] = lambda _event: None
    # ``sessions.begin()`` for changes; ``readers()`` for reading only: on SQLite a reader
    # neither waits for nor holds up the one writer.
    sessions: sessionmaker[Session] = field(init=False)
    readers: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sessions", sessionmaker(self.engine, expire_on_commit=False))
        object.__setattr__(
            self, "readers", sessionmaker(read_only(self.engine), expire_on_commit=False)
        )

    def record(
        self,
        session: Session,
        incident: IncidentRow,
        *,
        actor: str,
        action: str,
        status: IncidentStatus | None = None,
        detail: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Audit one step of an incident in the transaction that makes it, and move the
        incident's status when the step is one of its timeline's."""
        now = self.clock()
        body: dict[str, Any] = {"slo": incident.slo, "service": incident.service}
        if status is not None:
            body["status"] = status.value
        if detail:
            body["detail"] = detail
        body.update(payload or {})
        entry = self.audit.append(
            session, actor=actor, action=action, incident_id=incident.id, payload=body, at=now
        )
        incident.audit_seq = entry.seq
        incident.audit_hash = entry.hash
        incident.updated_at = now
        if status is not None and incident.open:
            incident.status = status.value
        return entry
