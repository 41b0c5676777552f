"""Incidents from Alertmanager: one per SLO and service, its alerts kept by fingerprint.

An incident opens when an alert of its SLO and service fires and none is open, takes
every later notification's alerts (a repeated notification changes nothing), and resolves
when Alertmanager has resolved all of them; then its post-mortem is written, in the same
transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from revleak.remediation.alerts import NO_END, WebhookAlert, WebhookPayload
from revleak.remediation.context import NotFoundError, Shared, utc
from revleak.remediation.model import BlastRecord, IncidentStatus
from revleak.remediation.postmortem import PostmortemFacts, TimelineItem, render_postmortem
from revleak.remediation.postmortem_store import Postmortem
from revleak.remediation.store import AlertRow, IncidentRow, RunRow
from revleak.remediation.views import (
    AlertView,
    BurnWindow,
    IncidentDetail,
    IncidentSummary,
    LiveView,
    OwnerExposure,
    RunSummary,
    SimilarIncident,
    TimelineEntry,
)

logger = logging.getLogger(__name__)

SEVERITY_RANK = {"page": 2, "ticket": 1}
TOP_RECORDS = 10
# Owners' exposure is summed over at most this many of the largest violations (a reader
# asks for a bound: Redis hands back 100 by default).
EXPOSURE_RECORDS = 10_000
# Two webhooks racing to open the same incident: the loser retries and finds it.
OPEN_RETRIES = 3


def incident_number(incident_id: str) -> int:
    prefix, _, number = incident_id.partition("-")
    if prefix != "INC" or not (number.isascii() and number.isdigit()) or len(number) > 12:
        raise NotFoundError(f"no incident {incident_id!r} (ids look like INC-12)")
    return int(number)


class IncidentBook:
    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        # Called with an incident whose alerts all resolved, before it is resolved: a run
        # being verified gets its verdict first, so the timeline reads VERIFIED → RESOLVED.
        self.before_resolve: Callable[[str], None] = lambda _incident_id: None

    # --- Alertmanager ------------------------------------------------------------------

    def receive(self, payload: WebhookPayload, *, actor: str) -> list[tuple[str, str]]:
        """Fold one notification into the incidents: each incident it touched and how
        (``detected``, ``updated`` or ``resolved``)."""
        groups: dict[tuple[str, str], list[WebhookAlert]] = defaultdict(list)
        for alert in payload.alerts:
            groups[(alert.slo, alert.service)].append(alert)
        touched: list[tuple[str, str]] = []
        for (slo, service), alerts in groups.items():
            for attempt in range(OPEN_RETRIES):
                try:
                    with self._shared.sessions.begin() as session:
                        outcome = self._receive_group(session, slo, service, alerts, actor)
                    break
                except IntegrityError:
                    if attempt == OPEN_RETRIES - 1:
                        raise
            if outcome is None:
                continue
            incident_id, change, quiet = outcome
            if quiet:
                self.before_resolve(incident_id)
                # Written before the resolving transaction: on SQLite a second connection
                # inside it would wait for the lock that transaction holds.
                postmortem = self._postmortem(incident_id)
                with self._shared.sessions.begin() as session:
                    if self._resolve(session, incident_id, actor, postmortem):
                        change = "resolved"
            touched.append((incident_id, change))
            self._shared.announce({"type": "incident", "id": incident_id, "change": change})
        return touched

    def _resolve(
        self, session: Session, incident_id: str, actor: str, postmortem: Postmortem
    ) -> bool:
        incident = self.get_row(session, incident_id)
        firing = session.scalar(
            select(AlertRow.fingerprint).where(
                AlertRow.incident_number == incident.number, AlertRow.status == "firing"
            )
        )
        if not incident.open or firing is not None:
            return False
        self._shared.record(
            session,
            incident,
            actor=actor,
            action="incident.resolved",
            status=IncidentStatus.RESOLVED,
            detail="Alertmanager resolved every alert of the incident",
        )
        incident.open = False
        incident.resolved_at = self._shared.clock()
        self._shared.postmortems.save(session, postmortem)
        return True

    def _receive_group(
        self,
        session: Session,
        slo: str,
        service: str,
        alerts: Sequence[WebhookAlert],
        actor: str,
    ) -> tuple[str, str, bool] | None:
        """(incident id, what changed, whether none of its alerts fires any more)."""
        shared = self._shared
        now = shared.clock()
        incident = session.scalar(
            select(IncidentRow).where(
                IncidentRow.slo == slo, IncidentRow.service == service, IncidentRow.open
            )
        )
        firing = [alert for alert in alerts if alert.status == "firing"]
        change = "updated"
        if incident is None:
            if not firing:
                return None  # the resolve of an incident already closed (or never seen)
            worst = max(firing, key=lambda alert: SEVERITY_RANK.get(alert.severity, 0))
            incident = IncidentRow(
                slo=slo,
                service=service,
                status=IncidentStatus.DETECTED.value,
                severity=worst.severity,
                open=True,
                summary=worst.annotations.get("summary", f"{slo} is burning its error budget"),
                labels=_common_labels(firing),
                annotations=dict(worst.annotations),
                opened_at=now,
                updated_at=now,
            )
            session.add(incident)
            session.flush()
            shared.record(
                session,
                incident,
                actor=actor,
                action="incident.detected",
                status=IncidentStatus.DETECTED,
                detail=incident.summary,
                payload={"fingerprints": sorted(alert.fingerprint for alert in firing)},
            )
            change = "detected"
        changed = self._fold_alerts(session, incident, alerts, now)
        if self._explain(session, incident, firing, actor) and change != "detected":
            change = "explained"
        if changed and change != "detected":
            shared.record(
                session,
                incident,
                actor=actor,
                action="incident.alerts",
                detail=", ".join(f"{fp} {status}" for fp, status in changed),
                payload={"alerts": [{"fingerprint": fp, "status": s} for fp, s in changed]},
            )
        rows = session.scalars(
            select(AlertRow).where(AlertRow.incident_number == incident.number)
        ).all()
        still_firing = [row for row in rows if row.status == "firing"]
        if still_firing:
            worst_row = max(still_firing, key=lambda row: SEVERITY_RANK.get(row.severity, 0))
            if SEVERITY_RANK.get(worst_row.severity, 0) > SEVERITY_RANK.get(incident.severity, 0):
                incident.severity = worst_row.severity
            incident.summary = worst_row.annotations.get("summary", incident.summary)
        return incident.id, change, not still_firing

    def _explain(
        self,
        session: Session,
        incident: IncidentRow,
        firing: Sequence[WebhookAlert],
        actor: str,
    ) -> bool:
        """Take a telemetry page's root cause (annotations from ``cause`` on) into the
        incident, where fix packs are chosen from; audited when it appears or changes.
        Whether it did."""
        explained = next((a.annotations for a in firing if "cause" in a.annotations), {})
        cause = root_cause_annotations(explained)
        if not cause or all(incident.annotations.get(k) == v for k, v in cause.items()):
            return False
        incident.annotations = {**incident.annotations, **cause}
        self._shared.record(
            session,
            incident,
            actor=actor,
            action="incident.explained",
            detail=cause.get("root_cause", cause["cause"]),
            payload={"root_cause": cause},
        )
        return True

    def annotations(
        self, row: IncidentRow, root_causes: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        """The incident's annotations, with the root cause the live state holds for its
        SLO when no notification has carried one yet (Alertmanager does not notify again
        when only an alert's annotations change). ``root_causes``: the live state's, when
        the caller has read them already for several incidents."""
        if "cause" in row.annotations:
            return dict(row.annotations)
        if root_causes is None:
            root_causes = self.live_root_causes()
        record = root_causes.get(row.slo)
        candidates = record.get("candidates") if record else None
        if not candidates:
            return dict(row.annotations)
        return {**row.annotations, **root_cause_annotations(candidates[0])}

    def live_root_causes(self) -> dict[str, Any]:
        """The telemetry flow's latest root cause per SLO; none without a live state or
        when it cannot be read (the incidents then stay as they are)."""
        if self._shared.live is None:
            return {}
        try:
            return dict(self._shared.live.root_causes())
        except Exception:  # an unreachable live store must not take the incident page down
            logger.warning("live state unavailable", exc_info=True)
            return {}

    def _fold_alerts(
        self,
        session: Session,
        incident: IncidentRow,
        alerts: Sequence[WebhookAlert],
        now: datetime,
    ) -> list[tuple[str, str]]:
        changed: list[tuple[str, str]] = []
        for alert in alerts:
            row = session.get(AlertRow, (incident.number, alert.fingerprint))
            ends_at = None if alert.endsAt <= NO_END else alert.endsAt
            if row is None:
                session.add(
                    AlertRow(
                        incident_number=incident.number,
                        fingerprint=alert.fingerprint,
                        status=alert.status,
                        severity=alert.severity,
                        labels=dict(alert.labels),
                        annotations=dict(alert.annotations),
                        starts_at=alert.startsAt,
                        ends_at=ends_at,
                        updated_at=now,
                    )
                )
                changed.append((alert.fingerprint, alert.status))
            elif row.status != alert.status:
                row.status = alert.status
                row.annotations = dict(alert.annotations)
                row.starts_at = alert.startsAt
                row.ends_at = ends_at
                row.updated_at = now
                changed.append((alert.fingerprint, alert.status))
            elif row.annotations != alert.annotations:
                row.annotations = dict(alert.annotations)  # e.g. a root cause found since
                row.updated_at = now
        session.flush()
        return changed

    # --- reading ------------------------------------------------------------------------

    def get_row(self, session: Session, incident_id: str) -> IncidentRow:
        row = session.get(IncidentRow, incident_number(incident_id))
        if row is None:
            raise NotFoundError(f"no incident {incident_id}")
        return row

    def summaries(
        self,
        *,
        open_only: bool = False,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[IncidentSummary]:
        with self._shared.readers() as session:
            query = select(IncidentRow).order_by(IncidentRow.number.desc())
            if open_only:
                query = query.where(IncidentRow.open)
            if status is not None:
                query = query.where(IncidentRow.status == status)
            rows = session.scalars(query.limit(limit).offset(offset)).all()
            return [self._summary(session, row) for row in rows]

    def detail(self, incident_id: str) -> IncidentDetail:
        with self._shared.readers() as session:
            row = self.get_row(session, incident_id)
            alerts = session.scalars(
                select(AlertRow)
                .where(AlertRow.incident_number == row.number)
                .order_by(AlertRow.starts_at, AlertRow.fingerprint)
            ).all()
            runs = session.scalars(
                select(RunRow).where(RunRow.incident_number == row.number).order_by(RunRow.number)
            ).all()
            summary = self._summary(session, row)
        postmortem = self._shared.postmortems.get(row.id)
        return IncidentDetail(
            **summary.model_dump(),
            labels=row.labels,
            annotations=self.annotations(row),
            alerts=tuple(_alert_view(alert) for alert in alerts),
            burn_windows=tuple(_burn_windows(alerts)),
            live=self.live_view(row.slo),
            timeline=tuple(self.timeline(row.id)),
            runs=tuple(run_summary(run, row.id) for run in runs),
            similar=tuple(self.similar(row)),
            postmortem=postmortem.markdown if postmortem is not None else None,
        )

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        entries = []
        after = 0
        while True:
            page = self._shared.audit.entries(after=after, limit=500, incident_id=incident_id)
            for entry in page:
                status = entry.payload.get("status")
                if isinstance(status, str):
                    entries.append(
                        TimelineEntry(
                            at=datetime.fromisoformat(entry.at.replace("Z", "+00:00")),
                            status=status,
                            actor=entry.actor,
                            detail=str(entry.payload.get("detail", "")),
                            audit_seq=entry.seq,
                        )
                    )
            if len(page) < 500:
                return entries
            after = page[-1].seq

    def live_view(self, slo: str) -> LiveView | None:
        live = self._shared.live
        if live is None:
            return None
        try:
            summary = live.incident() or {}
            entries = [
                blast_record(entry) for entry in live.blast_radius(slo, EXPOSURE_RECORDS)
            ]
        except Exception:  # an unreachable live store must not take the incident page down
            logger.warning("live state unavailable", exc_info=True)
            return None
        owners: dict[str, list[float]] = defaultdict(list)
        for entry in entries:
            owners[entry.owner or "unassigned"].append(entry.impact_usd)
        exposure = sorted(
            (
                OwnerExposure(owner=owner, records=len(v), impact_usd=sum(v))
                for owner, v in owners.items()
            ),
            key=lambda item: (-item.impact_usd, item.owner),
        )
        at_risk = summary.get("at_risk_usd", {})
        sizes = summary.get("blast_radius", {})
        size = sizes.get(slo) if isinstance(sizes, dict) else None
        return LiveView(
            severity=str(summary.get("severity", "none")),
            paging_state=str(summary.get("paging_state", "OK")),
            consumption=float(summary.get("consumption", 0.0)),
            at_risk_usd=float(at_risk.get(slo, 0.0)) if isinstance(at_risk, dict) else 0.0,
            blast_radius=int(size) if isinstance(size, int) else len(entries),
            top_records=tuple(entries[:TOP_RECORDS]),
            owners=tuple(exposure[:TOP_RECORDS]),
        )

    def similar(self, row: IncidentRow) -> list[SimilarIncident]:
        hits = self._shared.postmortems.similar(_describe(row), exclude=row.id, limit=5)
        return [
            SimilarIncident(incident_id=hit.incident_id, title=hit.title, score=hit.score)
            for hit in hits
            if hit.score > 0
        ]

    def _summary(self, session: Session, row: IncidentRow) -> IncidentSummary:
        firing = session.scalars(
            select(AlertRow.fingerprint).where(
                AlertRow.incident_number == row.number, AlertRow.status == "firing"
            )
        ).all()
        return IncidentSummary(
            id=row.id,
            slo=row.slo,
            service=row.service,
            status=IncidentStatus(row.status),
            severity=row.severity,
            open=row.open,
            summary=row.summary,
            opened_at=utc(row.opened_at),
            updated_at=utc(row.updated_at),
            resolved_at=utc(row.resolved_at) if row.resolved_at else None,
            alerts_firing=len(firing),
        )

    def _postmortem(self, incident_id: str) -> Postmortem:
        with self._shared.readers() as session:
            row = self.get_row(session, incident_id)
            runs = session.scalars(
                select(RunRow).where(RunRow.incident_number == row.number).order_by(RunRow.number)
            ).all()
        applied = [run for run in runs if run.applied_at is not None]
        last = applied[-1] if applied else None
        timeline = [
            TimelineItem(at=entry.at.isoformat(), status=entry.status, detail=entry.detail)
            for entry in self.timeline(row.id)
        ]
        timeline.append(
            TimelineItem(
                at=self._shared.clock().isoformat(),
                status=IncidentStatus.RESOLVED.value,
                detail="Alertmanager resolved every alert of the incident",
            )
        )
        live = self.live_view(row.slo)
        impact = _impact_usd(row.annotations)
        blast = live.top_records if live is not None else ()
        facts = PostmortemFacts(
            incident_id=row.id,
            title=f"{row.id}: {row.slo} ({row.service or 'all services'})",
            slo=row.slo,
            service=row.service,
            severity=row.severity,
            opened_at=utc(row.opened_at).isoformat(),
            resolved_at=self._shared.clock().isoformat(),
            timeline=tuple(timeline),
            impact_usd=impact,
            impact_users=_impact_users(row.annotations),
            blast_radius=blast,
            root_cause=row.annotations.get("root_cause") or _root_cause(row, blast),
            fix=_fix_text(last),
            verification=(last.verdict or last.status) if last is not None else "no fix pack ran",
            follow_ups=tuple(_follow_ups(row, last)),
        )
        return Postmortem(
            incident_id=row.id,
            title=facts.title,
            slo=row.slo,
            service=row.service,
            created_at=self._shared.clock().isoformat(),
            markdown=render_postmortem(facts),
        )


def run_summary(run: RunRow, incident_id: str) -> RunSummary:
    return RunSummary(
        id=run.id,
        incident_id=incident_id,
        pack_id=run.pack_id,
        pack_hash=run.pack_hash,
        status=run.status,
        proposed_by=run.proposed_by,
        approved_by=run.approved_by,
        applied_by=run.applied_by,
        created_at=utc(run.created_at),
        applied_at=utc(run.applied_at) if run.applied_at else None,
        effects=len(run.plan.get("effects", [])),
        records=len(run.plan.get("records", [])),
        blocked=run.plan.get("blocked"),
        verdict=run.verdict,
    )


def _common_labels(alerts: Sequence[WebhookAlert]) -> dict[str, str]:
    common = dict(alerts[0].labels)
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert.labels.get(k) == v}
    return common


def _alert_view(row: AlertRow) -> AlertView:
    return AlertView(
        fingerprint=row.fingerprint,
        status=row.status,
        severity=row.severity,
        labels=row.labels,
        annotations=row.annotations,
        starts_at=utc(row.starts_at),
        ends_at=utc(row.ends_at) if row.ends_at else None,
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _burn_windows(alerts: Sequence[AlertRow]) -> list[BurnWindow]:
    windows = [
        BurnWindow(
            severity=row.severity,
            kind=row.labels.get("kind", ""),
            long_window=row.labels.get("long_window", ""),
            short_window=row.labels.get("short_window", ""),
            burn_long=_number(row.annotations.get("burn_long")),
            burn_short=_number(row.annotations.get("burn_short")),
            factor=_number(row.annotations.get("burn_factor")),
            firing=row.status == "firing",
        )
        for row in alerts
    ]
    return sorted(windows, key=lambda w: (-SEVERITY_RANK.get(w.severity, 0), w.kind, w.long_window))


def blast_record(entry: Any) -> BlastRecord:
    if isinstance(entry, BlastRecord):
        return entry
    if isinstance(entry, dict):
        return BlastRecord.model_validate(entry)
    return BlastRecord.model_validate(entry, from_attributes=True)


def _describe(row: IncidentRow) -> str:
    words = [row.slo, row.service, row.summary, *row.labels.values()]
    return " ".join(word for word in words if word)


def _impact_usd(annotations: dict[str, Any]) -> float | None:
    return _number(annotations.get("at_risk_usd"))


def _impact_users(annotations: dict[str, Any]) -> int | None:
    users = _number(annotations.get("users_affected"))
    return int(users) if users is not None else None


ROOT_CAUSE_KEYS = (
    "cause",
    "cause_service",
    "cause_operation",
    "cause_attribute",
    "cause_value",
    "root_cause",
    "root_cause_confidence",
    "previous_version",
    "flag",
    "memory_limit_target",
)


def root_cause_annotations(source: Mapping[str, Any]) -> dict[str, str]:
    """The root-cause entries of a page's annotations (or of a root-cause candidate)."""
    if "cause" not in source:
        return {}
    return {key: str(source[key]) for key in ROOT_CAUSE_KEYS if source.get(key) is not None}


def _root_cause(row: IncidentRow, blast: Sequence[BlastRecord]) -> str:
    if not blast:
        return f"{row.slo} burned its error budget ({row.summary})."
    rules: dict[str, int] = defaultdict(int)
    owners: dict[str, float] = defaultdict(float)
    for record in blast:
        rules[record.rule] += 1
        owners[record.owner or "unassigned"] += record.impact_usd
    rule = max(rules, key=lambda name: rules[name])
    owner = max(owners, key=lambda name: owners[name])
    return (
        f"{len(blast)} of the largest open violations break {rule}; the most dollars sit "
        f"with {owner} (${owners[owner]:,.0f})."
    )


def _fix_text(run: RunRow | None) -> str:
    if run is None:
        return "No fix pack was applied; the SLO recovered on its own."
    summaries = [effect.get("summary", "") for effect in run.plan.get("effects", [])]
    lines = "\n".join(f"- {text}" for text in summaries[:20])
    more = f"\n- … and {len(summaries) - 20} more" if len(summaries) > 20 else ""
    return (
        f"{run.id}: fix pack `{run.pack_id}` (content {run.pack_hash[:12]}), approved by "
        f"{run.approved_by}, applied by {run.applied_by}.\n{lines}{more}"
    )


def _follow_ups(row: IncidentRow, run: RunRow | None) -> list[str]:
    items = [f"Review the {row.slo} SLO target and alert thresholds against this incident."]
    if run is None:
        items.append("Decide whether a fix pack should cover this kind of incident.")
    elif run.status == "ROLLED_BACK":
        items.append(f"Find out why `{run.pack_id}` did not restore the SLO: {run.verdict}")
    else:
        items.append(f"Consider applying `{run.pack_id}` automatically for this alert.")
    return items
