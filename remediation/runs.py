"""Fix-pack runs: proposed for an incident, approved by a person, applied once, verified.

A run's life: PROPOSED (its plan and preview follow the blast radius, each change being a
new proposal that supersedes the last, until someone approves one) → APPROVED (that exact
plan) → APPLYING (claimed by one request: a second apply, at once or later, is refused) →
VERIFYING → VERIFIED, or ROLLING_BACK → ROLLED_BACK (the inverse effects, newest first).
Every move is audited in its own transaction together with the incident's timeline.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from revleak.remediation.context import ConflictError, NotFoundError, RefusedError, Shared, utc
from revleak.remediation.diff import preview
from revleak.remediation.executors.base import ExecutionError, Executors
from revleak.remediation.incidents import IncidentBook, blast_record, run_summary
from revleak.remediation.model import (
    BlastRecord,
    Command,
    CrmRecord,
    IncidentContext,
    IncidentStatus,
    Plan,
)
from revleak.remediation.packs import Catalogue, FixPack
from revleak.remediation.planner import PlanError, files_to_read
from revleak.remediation.planner import plan as make_plan
from revleak.remediation.store import AlertRow, IncidentRow, RunRow
from revleak.remediation.verification import (
    Observation,
    Verdict,
    VerificationPolicy,
    assess,
)
from revleak.remediation.views import RunDetail

logger = logging.getLogger(__name__)

PROPOSED, SUPERSEDED, APPROVED = "PROPOSED", "SUPERSEDED", "APPROVED"
APPLYING, VERIFYING, VERIFIED = "APPLYING", "VERIFYING", "VERIFIED"
ROLLING_BACK, ROLLED_BACK = "ROLLING_BACK", "ROLLED_BACK"
IN_FLIGHT = (APPROVED, APPLYING, VERIFYING, ROLLING_BACK)
KEPT_OBSERVATIONS = 20
MAX_BLAST_READ = 100_000

FileReader = Callable[[str, str], str | None]


def run_number(run_id: str) -> int:
    prefix, _, number = run_id.partition("-")
    if prefix != "RUN" or not (number.isascii() and number.isdigit()) or len(number) > 12:
        raise NotFoundError(f"no run {run_id!r} (ids look like RUN-7)")
    return int(number)


def plan_digest(plan: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(plan, option=orjson.OPT_SORT_KEYS)).hexdigest()


def plan_reach(plan: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a plan does to what, leaving out the times it stamps (due dates move with the
    clock): a proposal is only replaced when its reach changes."""
    effects = plan.get("effects", [])
    return (
        tuple((e.get("step"), e.get("action"), e.get("target")) for e in effects),
        plan.get("blocked"),
    )


class RunBook:
    def __init__(
        self,
        shared: Shared,
        incidents: IncidentBook,
        *,
        catalogue: Catalogue,
        roster: Mapping[str, tuple[str, ...]],
        executors: Executors,
        policy: VerificationPolicy,
        read_file: FileReader | None = None,
    ) -> None:
        self._shared = shared
        self._incidents = incidents
        self._catalogue = catalogue
        self._roster = dict(roster)
        self._executors = executors
        self._policy = policy
        self._read_file = read_file

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    # --- proposing ----------------------------------------------------------------------

    def propose(
        self,
        incident_id: str,
        *,
        pack_id: str | None,
        inputs: Mapping[str, Any] | None,
        actor: str,
    ) -> RunDetail:
        with self._shared.readers() as session:
            incident = self._incidents.get_row(session, incident_id)
            labels, slo, service = dict(incident.labels), incident.slo, incident.service
            annotations = self._incidents.annotations(incident)
            if not incident.open:
                raise ConflictError(f"{incident_id} is resolved: nothing to fix")
        # Labels name the alert; a telemetry page's root cause (``cause``…) is in its
        # annotations, which a trigger may match where no label of that name exists.
        pack = self._choose(pack_id, {**annotations, **labels}, incident_id)
        plan = self._plan(pack, incident_id, slo, service, labels, annotations, inputs or {})
        run_id = self._store_proposal(incident_id, pack, plan, dict(inputs or {}), actor)
        return self.detail(run_id)

    def _choose(self, pack_id: str | None, labels: Mapping[str, str], incident_id: str) -> FixPack:
        if pack_id is not None:
            try:
                return self._catalogue.get(pack_id)
            except KeyError:
                raise NotFoundError(f"no fix pack {pack_id!r}") from None
        matching = self._catalogue.for_labels(labels)
        if not matching:
            raise NotFoundError(f"no fix pack matches {incident_id} ({labels.get('slo', '?')})")
        return matching[0]

    def _plan(
        self,
        pack: FixPack,
        incident_id: str,
        slo: str,
        service: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        inputs: Mapping[str, Any],
    ) -> Plan:
        context = self._context(incident_id, slo, service, labels, annotations)
        files: dict[str, str | None] = {}
        try:
            for repository, path in files_to_read(pack, context):
                if self._read_file is None:
                    raise RefusedError(f"fix pack {pack.id} edits {repository}:{path}, but no "
                                  "GitOps repository is configured")  # fmt: skip
                try:
                    files[f"{repository}:{path}"] = self._read_file(repository, path)
                except ExecutionError as error:
                    raise RefusedError(str(error)) from error
            if files:
                context = context.model_copy(update={"files": files})
            return make_plan(pack, context, inputs)
        except PlanError as error:
            raise RefusedError(str(error)) from error

    def _context(
        self,
        incident_id: str,
        slo: str,
        service: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> IncidentContext:
        blast: list[BlastRecord] = []
        live = self._shared.live
        if live is not None:
            try:
                raw = live.blast_radius(slo, MAX_BLAST_READ)
            except Exception as error:
                raise RefusedError(f"the live state cannot be read: {error}") from error
            blast = [blast_record(entry) for entry in raw]
        records: dict[str, CrmRecord] = {}
        directory = self._shared.records
        if directory is not None:
            for entry in blast:
                record = directory.get(entry.record_id)
                if record is None:
                    continue
                records[record.record_id] = record
                for other in directory.related(record):
                    records.setdefault(other.record_id, other)
        return IncidentContext(
            incident_id=incident_id,
            slo=slo,
            service=service,
            labels=dict(labels),
            annotations=dict(annotations),
            blast_radius=tuple(blast),
            records=records,
            roster=self._roster,
            now=self._shared.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )

    def _store_proposal(
        self, incident_id: str, pack: FixPack, plan: Plan, inputs: dict[str, Any], actor: str
    ) -> str:
        plan_json = plan.model_dump(mode="json")
        shown = preview(plan).model_dump(mode="json")
        with self._shared.sessions.begin() as session:
            incident = self._incidents.get_row(session, incident_id)
            if not incident.open:
                raise ConflictError(f"{incident_id} is resolved: nothing to fix")
            _refuse_a_second_run(session, incident)
            for old in session.scalars(
                select(RunRow).where(
                    RunRow.incident_number == incident.number, RunRow.status == PROPOSED
                )
            ):
                old.status = SUPERSEDED
            run = RunRow(
                incident_number=incident.number,
                pack_id=pack.id,
                pack_hash=pack.content_hash,
                status=PROPOSED,
                plan=plan_json,
                preview=shown,
                inputs=inputs,
                proposed_by=actor,
                created_at=self._shared.clock(),
                results=[],
                observations=[],
            )
            session.add(run)
            session.flush()
            self._shared.record(
                session,
                incident,
                actor=actor,
                action="fixpack.proposed",
                status=IncidentStatus.FIXPACK_PROPOSED,
                detail=f"{run.id}: {pack.name} — {len(plan.effects)} changes to "
                f"{len(plan.records)} records"
                + (f" (blocked: {plan.blocked})" if plan.blocked else ""),
                payload={
                    "run": run.id,
                    "pack": pack.id,
                    "pack_hash": pack.content_hash,
                    "inputs": inputs,
                    "plan_sha256": plan_digest(plan_json),
                    "side_effects": list(plan.side_effects),
                },
            )
            run_id = run.id
        self._shared.announce(
            {"type": "run", "id": run_id, "incident": incident_id, "change": "proposed"}
        )
        return run_id

    def unproposed_explained(self) -> list[str]:
        """Open incidents without any run whose root cause is known (from a later
        notification or the live state): a fix pack may match them now."""
        with self._shared.readers() as session:
            incidents = session.scalars(
                select(IncidentRow).where(
                    IncidentRow.open,
                    ~select(RunRow.number)
                    .where(RunRow.incident_number == IncidentRow.number)
                    .exists(),
                )
            ).all()
            causes = self._incidents.live_root_causes() if incidents else {}
            return [
                row.id for row in incidents if "cause" in self._incidents.annotations(row, causes)
            ]

    def refresh(self, *, actor: str = "revleak") -> None:
        """Re-plan every proposal nobody approved yet; a changed plan supersedes it."""
        with self._shared.readers() as session:
            runs = session.scalars(
                select(RunRow, IncidentRow)
                .join(IncidentRow, IncidentRow.number == RunRow.incident_number)
                .where(RunRow.status == PROPOSED, IncidentRow.open)
            ).all()
            pending = [
                (run.id, run.pack_id, dict(run.inputs), plan_reach(run.plan)) for run in runs
            ]
        for run_id, pack_id, inputs, reach in pending:
            try:
                self._refresh_one(run_id, pack_id, inputs, reach, actor)
            except (ConflictError, RefusedError, NotFoundError) as error:
                logger.info("proposal %s not refreshed: %s", run_id, error)

    def _refresh_one(
        self, run_id: str, pack_id: str, inputs: dict[str, Any], reach: tuple[Any, ...], actor: str
    ) -> None:
        with self._shared.readers() as session:
            _, incident = self._run_and_incident(session, run_id)
            snapshot = (incident.id, incident.slo, incident.service, dict(incident.labels),
                        self._incidents.annotations(incident))  # fmt: skip
        pack = self._choose(pack_id, snapshot[3], snapshot[0])
        plan = self._plan(pack, *snapshot, inputs)
        if plan_reach(plan.model_dump(mode="json")) != reach:
            self._store_proposal(snapshot[0], pack, plan, inputs, actor)

    # --- approving and applying -----------------------------------------------------------

    def approve(self, run_id: str, *, actor: str) -> RunDetail:
        with self._shared.sessions.begin() as session:
            run, incident = self._run_and_incident(session, run_id)
            if run.status != PROPOSED:
                raise ConflictError(
                    f"{run_id} is {run.status}: only a PROPOSED run can be approved"
                )
            if not incident.open:
                raise ConflictError(f"{incident.id} is resolved: nothing to fix")
            if run.plan.get("blocked"):
                raise ConflictError(f"{run_id} is blocked by a guard: {run.plan['blocked']}")
            _refuse_a_second_run(session, incident)
            run.status = APPROVED
            run.approved_by = actor
            self._shared.record(
                session,
                incident,
                actor=actor,
                action="fixpack.approved",
                status=IncidentStatus.APPROVED,
                detail=f"{run.id}: {run.pack_id} approved by {actor}",
                payload={
                    "run": run.id,
                    "pack_hash": run.pack_hash,
                    "plan_sha256": plan_digest(run.plan),
                },
            )
            incident_id = incident.id
        self._announce(run_id, incident_id, APPROVED)
        return self.detail(run_id)

    def apply(self, run_id: str, *, actor: str) -> RunDetail:
        with self._shared.sessions.begin() as session:
            claimed = _claim(session, run_id, APPROVED, status=APPLYING, applied_by=actor)
            run = self._get(session, run_id)
            if not claimed:
                if run.status == PROPOSED:
                    raise ConflictError(
                        f"{run_id} is PROPOSED: it must be approved before it is applied"
                    )
                raise ConflictError(f"{run_id} is {run.status}: a run is applied once")
            incident = session.get(IncidentRow, run.incident_number)
            assert incident is not None
            self._shared.record(
                session,
                incident,
                actor=actor,
                action="fixpack.applying",
                detail=f"{run.id}: applying {run.pack_id}",
                payload={"run": run.id},
            )
            plan = Plan.model_validate(run.plan)
        results, failure, undone = self._execute(plan)
        with self._shared.sessions.begin() as session:
            run, incident = self._run_and_incident(session, run_id)
            run.results = results
            run.applied_at = self._shared.clock()
            if failure is None:
                run.status = VERIFYING
                self._shared.record(
                    session,
                    incident,
                    actor=actor,
                    action="fixpack.applied",
                    status=IncidentStatus.APPLIED,
                    detail=f"{run.id}: {len(results)} changes made; verifying for "
                    f"{self._policy.window_s:g} s",
                    payload={"run": run.id, "results": results},
                )
            else:
                run.status = ROLLED_BACK
                run.verdict = f"apply failed: {failure}; {len(undone)} changes undone"
                self._shared.record(
                    session,
                    incident,
                    actor=actor,
                    action="fixpack.rolled_back",
                    status=IncidentStatus.ROLLED_BACK,
                    detail=f"{run.id}: {run.verdict}",
                    payload={"run": run.id, "results": results, "undone": undone},
                )
            incident_id, status = incident.id, run.status
        self._announce(run_id, incident_id, "APPLIED" if status == VERIFYING else status)
        return self.detail(run_id)

    def _execute(self, plan: Plan) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
        """Carry out the effects in order; on a failure, undo what was done, newest first."""
        results: list[dict[str, Any]] = []
        for index, effect in enumerate(plan.effects):
            try:
                outcome = self._executors.execute(effect.command)
            except ExecutionError as error:
                failure = f"step {effect.step} on {effect.target}: {error}"
                done = [e.inverse for e in plan.effects[:index] if e.inverse is not None]
                return results, failure, self._undo(done)
            results.append(outcome.model_dump(mode="json"))
        return results, None, []

    def _undo(self, inverses: Sequence[Command]) -> list[dict[str, Any]]:
        undone = []
        for command in reversed(inverses):
            try:
                undone.append(self._executors.execute(command).model_dump(mode="json"))
            except ExecutionError as error:
                undone.append({"command_id": command.command_id, "error": str(error)})
        return undone

    # --- verifying --------------------------------------------------------------------------

    def verify_due(self) -> None:
        """Observe every run being verified once, and settle those that have a verdict."""
        with self._shared.readers() as session:
            ids = session.scalars(select(RunRow.number).where(RunRow.status == VERIFYING)).all()
        for number in ids:
            try:
                self.check(f"RUN-{number}")
            except Exception:
                logger.exception("verification of RUN-%s failed; trying again next time", number)

    def check(self, run_id: str) -> str:
        """One observation of a run under verification; the run's status after it."""
        with self._shared.readers() as session:
            run = self._get(session, run_id)
            if run.status != VERIFYING:
                return run.status
            incident = session.get(IncidentRow, run.incident_number)
            assert incident is not None
            plan = Plan.model_validate(run.plan)
            pages_firing = len(
                session.scalars(
                    select(AlertRow.fingerprint).where(
                        AlertRow.incident_number == incident.number,
                        AlertRow.status == "firing",
                        AlertRow.severity == "page",
                    )
                ).all()
            )
            slo = incident.slo
            history = [Observation.model_validate(o) for o in run.observations]
            applied_at = utc(run.applied_at or self._shared.clock())
        seen = self._observe(plan, slo, pages_firing)
        history.append(seen)
        verdict, reason = assess(self._policy, applied_at, history, self._shared.clock())
        kept = [o.model_dump(mode="json") for o in history[-KEPT_OBSERVATIONS:]]
        if verdict is Verdict.PENDING:
            with self._shared.sessions.begin() as session:
                session.execute(
                    update(RunRow)
                    .where(RunRow.number == run_number(run_id), RunRow.status == VERIFYING)
                    .values(observations=kept, verdict=reason)
                )
            return VERIFYING
        if verdict is Verdict.VERIFIED:
            return self._settle(run_id, kept, reason)
        return self._roll_back(run_id, kept, reason)

    def _observe(self, plan: Plan, slo: str, pages_firing: int) -> Observation:
        touched = set(plan.records)
        still: set[str] = set()
        live = self._shared.live
        if live is not None and touched:
            still = {
                entry.record_id
                for entry in (blast_record(raw) for raw in live.blast_radius(slo, MAX_BLAST_READ))
                if entry.record_id in touched
            }
        return Observation(
            at=self._shared.clock(),
            still_violating=frozenset(still),
            regressed=frozenset(self._regressed(plan)),
            pages_firing=pages_firing,
        )

    def _regressed(self, plan: Plan) -> set[str]:
        """The regression guard: re-read every changed record; is each change still there?"""
        directory = self._shared.records
        if directory is None:
            return set()
        regressed = set()
        for effect in plan.effects:
            if effect.after is None or effect.command.kind != "crm":
                continue
            record = directory.get(effect.command.record_id)
            if record is None:
                continue
            if any(record.get(name) != value for name, value in effect.after.items()):
                regressed.add(record.record_id)
        return regressed

    def _settle(self, run_id: str, observations: list[Any], reason: str) -> str:
        with self._shared.sessions.begin() as session:
            claimed = _claim(
                session,
                run_id,
                VERIFYING,
                status=VERIFIED,
                observations=observations,
                verdict=reason,
            )
            if not claimed:
                return self._get(session, run_id).status
            run, incident = self._run_and_incident(session, run_id)
            self._shared.record(
                session,
                incident,
                actor="revleak",
                action="fixpack.verified",
                status=IncidentStatus.VERIFIED,
                detail=f"{run.id}: {reason}",
                payload={"run": run.id},
            )
            incident_id = incident.id
        self._announce(run_id, incident_id, VERIFIED)
        return VERIFIED

    def _roll_back(self, run_id: str, observations: list[Any], reason: str) -> str:
        with self._shared.sessions.begin() as session:
            claimed = _claim(
                session,
                run_id,
                VERIFYING,
                status=ROLLING_BACK,
                observations=observations,
                verdict=reason,
            )
            run = self._get(session, run_id)
            if not claimed:
                return run.status
            plan = Plan.model_validate(run.plan)
        undone = self._undo([e.inverse for e in plan.effects if e.inverse is not None])
        with self._shared.sessions.begin() as session:
            run = self._get(session, run_id)
            run.status = ROLLED_BACK
            incident = session.get(IncidentRow, run.incident_number)
            assert incident is not None
            self._shared.record(
                session,
                incident,
                actor="revleak",
                action="fixpack.rolled_back",
                status=IncidentStatus.ROLLED_BACK,
                detail=f"{run.id}: {reason}; {len(undone)} changes undone",
                payload={"run": run.id, "undone": undone},
            )
            incident_id = incident.id
        self._announce(run_id, incident_id, ROLLED_BACK)
        return ROLLED_BACK

    def _announce(self, run_id: str, incident_id: str, status: str) -> None:
        self._shared.announce(
            {"type": "run", "id": run_id, "incident": incident_id, "change": status.lower()}
        )

    # --- reading ------------------------------------------------------------------------

    def _run_and_incident(self, session: Session, run_id: str) -> tuple[RunRow, IncidentRow]:
        run = self._get(session, run_id)
        incident = session.get(IncidentRow, run.incident_number)
        assert incident is not None  # runs reference their incident (foreign key)
        return run, incident

    def _get(self, session: Session, run_id: str) -> RunRow:
        run = session.get(RunRow, run_number(run_id))
        if run is None:
            raise NotFoundError(f"no run {run_id}")
        return run

    def detail(self, run_id: str) -> RunDetail:
        with self._shared.readers() as session:
            run, incident = self._run_and_incident(session, run_id)
            summary = run_summary(run, incident.id)
            return RunDetail(
                **summary.model_dump(),
                inputs=run.inputs,
                diff=str(run.preview.get("diff", "")),
                side_effects=tuple(run.preview.get("side_effects", ())),
                plan=run.plan,
                results=list(run.results),
                observations=list(run.observations),
            )

    def preview_of(self, run_id: str) -> dict[str, Any]:
        """The preview as it was shown when the run was proposed."""
        with self._shared.readers() as session:
            return dict(self._get(session, run_id).preview)

    def for_incident(self, incident_id: str) -> list[RunDetail]:
        with self._shared.readers() as session:
            incident = self._incidents.get_row(session, incident_id)
            numbers = session.scalars(
                select(RunRow.number)
                .where(RunRow.incident_number == incident.number)
                .order_by(RunRow.number)
            ).all()
        return [self.detail(f"RUN-{number}") for number in numbers]


def _claim(session: Session, run_id: str, current: str, **values: Any) -> bool:
    """Move the run on only if it is still ``current``: whether this caller won the race."""
    statement = (
        update(RunRow)
        .where(RunRow.number == run_number(run_id), RunRow.status == current)
        .values(**values)
    )
    result = cast(CursorResult[Any], session.execute(statement))
    return bool(result.rowcount)


def _refuse_a_second_run(session: Session, incident: IncidentRow) -> None:
    """One run of an incident at a time between approval and verdict."""
    busy = session.scalar(
        select(RunRow).where(
            RunRow.incident_number == incident.number, RunRow.status.in_(IN_FLIGHT)
        )
    )
    if busy is not None:
        raise ConflictError(f"{busy.id} of {incident.id} is {busy.status}: one run at a time")
