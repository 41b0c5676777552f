"""The remediation service: incidents from Alertmanager, fix-pack runs, audit, post-mortems.

One object the API (and the demo) holds; each request is a method call, and ``tick``
is what a background loop calls every few seconds (proposals follow the blast radius,
runs under verification are observed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from revleak.remediation.alerts import WebhookPayload
from revleak.remediation.audit import AuditVerdict
from revleak.remediation.context import ConflictError, NotFoundError, RefusedError, Shared
from revleak.remediation.executors.base import Executors
from revleak.remediation.incidents import IncidentBook
from revleak.remediation.packs import Catalogue
from revleak.remediation.runs import VERIFYING, FileReader, RunBook
from revleak.remediation.store import IncidentRow, RunRow
from revleak.remediation.verification import VerificationPolicy

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "revleak"


class Remediation:
    def __init__(
        self,
        shared: Shared,
        *,
        catalogue: Catalogue,
        roster: Mapping[str, tuple[str, ...]],
        executors: Executors,
        policy: VerificationPolicy,
        read_file: FileReader | None = None,
        auto_propose: bool = True,
    ) -> None:
        self.shared = shared
        self.incidents = IncidentBook(shared)
        self.runs = RunBook(
            shared,
            self.incidents,
            catalogue=catalogue,
            roster=roster,
            executors=executors,
            policy=policy,
            read_file=read_file,
        )
        self.executors = executors
        self.policy = policy
        self._auto_propose = auto_propose
        self.incidents.before_resolve = self._verify_before_resolve

    def receive(self, payload: WebhookPayload, *, actor: str) -> list[tuple[str, str]]:
        touched = self.incidents.receive(payload, actor=actor)
        if self._auto_propose:
            for incident_id, change in touched:
                if change == "detected":
                    self._propose_quietly(incident_id)
            if any(change == "explained" for _, change in touched):
                self._propose_explained()
        return touched

    def _propose_explained(self) -> None:
        if self._auto_propose:
            for incident_id in self.runs.unproposed_explained():
                self._propose_quietly(incident_id)

    def _propose_quietly(self, incident_id: str) -> None:
        try:
            self.runs.propose(incident_id, pack_id=None, inputs=None, actor=SYSTEM_ACTOR)
        except (NotFoundError, RefusedError, ConflictError) as reason:
            logger.info("no fix pack proposed for %s: %s", incident_id, reason)

    def _verify_before_resolve(self, incident_id: str) -> None:
        with self.shared.readers() as session:
            incident = self.incidents.get_row(session, incident_id)
            numbers = session.scalars(
                select(RunRow.number).where(
                    RunRow.incident_number == incident.number, RunRow.status == VERIFYING
                )
            ).all()
        for number in numbers:
            self.runs.check(f"RUN-{number}")

    def tick(self) -> None:
        """Refresh open proposals and observe runs under verification (never raises)."""
        for step in (self._propose_explained, self.runs.refresh, self.runs.verify_due):
            try:
                step()
            except Exception:
                logger.exception("remediation %s failed; trying again next tick", step.__name__)

    def verify_audit(self) -> AuditVerdict:
        """The audit chain, cross-checked with the newest entry every incident remembers."""
        with self.shared.readers() as session:
            references = [
                (seq, digest)
                for seq, digest in session.execute(
                    select(IncidentRow.audit_seq, IncidentRow.audit_hash)
                )
                if seq
            ]
        return self.shared.audit.verify(references)

    def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        with self.shared.readers() as session:
            session.execute(select(1))
        checks["database"] = "ok"
        checks["executors"] = self.executors.describe()
        if self.shared.live is not None:
            self.shared.live.incident()
            checks["live_state"] = "ok"
        return checks
