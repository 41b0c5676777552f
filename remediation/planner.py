"""Bind a fix pack to one incident: the exact effects an apply would have.

Pure and deterministic: the same pack, context and inputs give a byte-identical plan.
Records are visited in blast-radius order (impact descending, then record id); each step
sees the records as the earlier steps of the pack leave them, so a task written after a
reassignment goes to the new owner and every inverse restores what the step found.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from revleak.remediation.model import (
    BlastRecord,
    CrmRecord,
    CrmWrite,
    Effect,
    GitChange,
    IncidentContext,
    JsonScalar,
    Plan,
    SlackPost,
)
from revleak.remediation.packs import (
    AddNextStepStep,
    DraftEmailStep,
    FixPack,
    GitopsChangeStep,
    MergeDuplicatesStep,
    NotifySlackStep,
    ReassignOwnerStep,
    RecordStep,
    SetSlaTimerStep,
    WriteBackTaskStep,
    check_input,
)
from revleak.remediation.templating import Scalar, TemplateError, render, set_yaml_value
from revleak.slo.catalog import Rule
from revleak.timefmt import format_timestamp, parse_duration, parse_timestamp

CRM_TOPIC = "crm.commands"
ANY_REGION = "*"
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_REF_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
CrmOp = Literal[
    "update", "create_task", "delete_task", "merge", "unmerge", "draft_email", "discard_email"
]


class PlanError(ValueError):
    """A pack that cannot be planned for this incident (bad input, template, file)."""


class Target(NamedTuple):
    """A record of the blast radius that the pack's guards admit."""

    record: CrmRecord
    rules: tuple[str, ...]
    impact_usd: float


def plan(pack: FixPack, context: IncidentContext, inputs: Mapping[str, Any] | None = None) -> Plan:
    """The effects of ``pack`` on the incident of ``context``; raises :class:`PlanError`."""
    planner = _Planner(pack, context, bind_inputs(pack, inputs))
    limit = pack.spec.guards.max_blast_radius
    if pack.targets_records and limit is not None and len(planner.targets) > limit:
        return planner.blocked(
            f"blast radius {len(planner.targets)} is over this pack's limit of {limit}"
        )
    if pack.targets_records and not planner.targets:
        return planner.blocked("no record of the blast radius passes this pack's guards")
    for step in pack.spec.steps:
        planner.run(step)
    if pack.targets_records and not any(isinstance(e.command, CrmWrite) for e in planner.effects):
        return planner.blocked("no record of the blast radius can be changed (see side effects)")
    return planner.plan()


def files_to_read(
    pack: FixPack, context: IncidentContext, inputs: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """The ``(repository, path)`` files the pack's GitOps steps edit: read them into
    ``context.files`` (key ``repository:path``) before calling :func:`plan`."""
    planner = _Planner(pack, context, bind_inputs(pack, inputs))
    files: list[tuple[str, str]] = []
    for step in pack.spec.steps:
        if isinstance(step, GitopsChangeStep):
            file = planner.file_of(step)
            if file not in files:
                files.append(file)
    return files


def bind_inputs(pack: FixPack, supplied: Mapping[str, Any] | None) -> dict[str, str | int | bool]:
    """The pack's inputs: ``supplied`` values checked against their declared types,
    defaults for the rest."""
    declared = pack.spec.inputs
    supplied = supplied or {}
    unknown = sorted(set(supplied) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise PlanError(f"unknown input {', '.join(unknown)} (this pack takes: {known})")
    bound: dict[str, str | int | bool] = {}
    for name, spec in sorted(declared.items()):
        value = supplied.get(name, spec.default)
        if value is None:
            raise PlanError(f"input {name} is required ({spec.type})")
        try:
            bound[name] = check_input(spec.type, value)
        except ValueError as error:
            raise PlanError(f"input {name}: {error}") from None
    return bound


class _Planner:
    def __init__(
        self, pack: FixPack, context: IncidentContext, inputs: dict[str, str | int | bool]
    ) -> None:
        self.pack = pack
        self.context = context
        try:
            self.now_ms = parse_timestamp(context.now)
        except ValueError:
            raise PlanError(f"the incident's time {context.now!r} is not ISO-8601") from None
        self.notes: list[str] = []
        self.targets = self._targets()
        self.effects: list[Effect] = []
        self.touched: list[str] = []
        self.fields = {
            target.record.record_id: dict(target.record.fields) for target in self.targets
        }
        self.files = dict(context.files)
        self.merged: set[str] = set()
        self.rotation: dict[str, int] = {}
        incident = {
            "incident_id": context.incident_id,
            "slo": context.slo,
            "service": context.service,
            "labels": dict(context.labels),
            "annotations": dict(context.annotations),
        }
        self.variables: dict[str, Any] = {
            "incident": incident,
            "labels": incident["labels"],
            "annotations": incident["annotations"],
            "inputs": inputs,
            "now": context.now,
            "records": [self._record_view(target) for target in self.targets],
        }

    # --- results -------------------------------------------------------------------------

    def plan(self) -> Plan:
        return Plan(
            pack_id=self.pack.id,
            pack_hash=self.pack.content_hash,
            incident_id=self.context.incident_id,
            effects=tuple(self.effects),
            side_effects=(*self._side_effects(), *self.notes),
            records=tuple(self.touched),
        )

    def blocked(self, reason: str) -> Plan:
        return Plan(
            pack_id=self.pack.id,
            pack_hash=self.pack.content_hash,
            incident_id=self.context.incident_id,
            side_effects=tuple(self.notes),
            blocked=reason,
        )

    def _side_effects(self) -> list[str]:
        """One line per system the plan writes to, in the order the plan first reaches it."""
        lines: dict[str, list[str]] = {}
        crm = [e.command for e in self.effects if isinstance(e.command, CrmWrite)]
        posts = Counter(e.command.channel for e in self.effects if isinstance(e.command, SlackPost))
        for effect in self.effects:
            command = effect.command
            if isinstance(command, CrmWrite) and "crm" not in lines:
                lines["crm"] = [_crm_line(crm)]
            elif isinstance(command, SlackPost) and "slack" not in lines:
                lines["slack"] = [
                    f"Slack {name}: {_count(n, 'message')}" for name, n in posts.items()
                ]
            elif isinstance(command, GitChange):
                lines.setdefault("git", []).append(
                    f"git {command.repository}: commit {command.path} on {command.branch}, "
                    "merge into the default branch"
                )
        return [line for group in lines.values() for line in group]

    # --- targets -------------------------------------------------------------------------

    def _targets(self) -> list[Target]:
        guard = self.pack.spec.guards.records
        targets: dict[str, Target] = {}
        for entry in sorted(self.context.blast_radius, key=_blast_order):
            if not guard.admits_rule(entry.rule, entry.impact_usd):
                continue
            record = self.context.records.get(entry.record_id)
            if record is None:
                self._note(f"skipped {entry.record_id}: not found in the CRM")
                continue
            if not guard.admits_fields(record.object, record.fields):
                continue
            known = targets.get(record.record_id)
            targets[record.record_id] = (
                Target(record, (entry.rule,), entry.impact_usd)
                if known is None
                else known._replace(rules=(*known.rules, entry.rule))
            )
        return list(targets.values())

    def _record_view(self, target: Target) -> dict[str, Any]:
        return {
            **self.fields[target.record.record_id],
            "record_id": target.record.record_id,
            "object": target.record.object,
            "rules": list(target.rules),
            "impact_usd": target.impact_usd,
        }

    # --- steps ---------------------------------------------------------------------------

    def run(self, step: RecordStep | NotifySlackStep | GitopsChangeStep) -> None:
        if isinstance(step, RecordStep):
            for target in self.targets:
                record_id = target.record.record_id
                fields = self.fields[record_id]
                if record_id in self.merged or (
                    step.where is not None
                    and not step.where.admits(
                        target.record.object, fields, target.rules, target.impact_usd
                    )
                ):
                    continue
                self._record_step(step, target)
        elif isinstance(step, NotifySlackStep):
            self._notify_slack(step)
        elif isinstance(step, GitopsChangeStep):
            self._gitops_change(step)

    def _record_step(self, step: RecordStep, target: Target) -> None:
        if isinstance(step, ReassignOwnerStep):
            self._reassign_owner(step, target)
        elif isinstance(step, AddNextStepStep):
            text = self._render(step, step.with_.text, target).strip()
            if not text:
                raise PlanError(f"step {step.id}: the next step of {_id(target)} renders empty")
            self._update(step, target, {"next_step": text}, f"set the next step of {_id(target)}")
        elif isinstance(step, WriteBackTaskStep):
            self._write_back_task(step, target)
        elif isinstance(step, SetSlaTimerStep):
            due_at = self._due(step, step.with_.within, target)
            self._update(
                step, target, {"sla_due_at": due_at}, f"SLA timer of {_id(target)} to {due_at}"
            )
        elif isinstance(step, MergeDuplicatesStep):
            self._merge_duplicates(step, target)
        elif isinstance(step, DraftEmailStep):
            self._draft_email(step, target)

    def _reassign_owner(self, step: RecordStep, target: Target) -> None:
        record_id = _id(target)
        fields = self.fields[record_id]
        owner = str(fields.get("owner") or "")
        region = str(fields.get("region") or "")
        roster = self.context.roster
        pool_name = region if region in roster else ANY_REGION
        pool = roster.get(pool_name, ())
        start = self.rotation.get(pool_name, 0)
        chosen = next(
            (
                (start + offset) % len(pool)
                for offset in range(len(pool))
                if pool[(start + offset) % len(pool)] != owner
            ),
            None,
        )
        if chosen is None:
            served = f"region {region}" if region else "records without a region"
            self._note(f"skipped {record_id}: no other owner serves {served}")
            return
        self.rotation[pool_name] = chosen + 1
        new_owner = pool[chosen]
        changes: dict[str, JsonScalar] = {"owner": new_owner}
        summary = f"reassign {record_id} from {owner or 'nobody'} to {new_owner}"
        # A record without a region stays a ROUTING_MISMATCH whoever owns it: it takes the
        # region its new owner serves.
        home = next(
            (name for name, owners in roster.items() if name != ANY_REGION and new_owner in owners),
            None,
        )
        if not region and home is not None:
            changes["region"] = home
            summary += f" in {home}"
        self._update(step, target, changes, summary)

    def _write_back_task(self, step: WriteBackTaskStep, target: Target) -> None:
        record_id = _id(target)
        params = step.with_
        subject = self._render(step, params.subject, target)
        owner = (
            self._render(step, params.owner, target)
            if params.owner is not None
            else str(self.fields[record_id].get("owner") or "")
        )
        due_at = self._due(step, params.due, target)
        command_id = self._command_id(step, record_id)
        self._crm(
            step,
            target,
            op="create_task",
            undo="delete_task",
            fields={"subject": subject, "due_at": due_at, "owner": owner},
            task_id=command_id,
            summary=f"task for {owner or 'nobody'} on {record_id}: {subject} (due {due_at})",
        )

    def _merge_duplicates(self, step: RecordStep, target: Target) -> None:
        record_id = _id(target)
        if Rule.DUPLICATE_SUSPECT not in target.rules:
            return
        survivor = self._survivor(target.record)
        if survivor is None:
            self._note(f"skipped {record_id}: no surviving record")
            return
        self._crm(
            step,
            target,
            op="merge",
            undo="unmerge",
            fields=dict(self.fields[record_id]),
            into=survivor,
            summary=f"merge {record_id} into {survivor}",
        )
        self.merged.add(record_id)
        self._touch(survivor)

    def _survivor(self, record: CrmRecord) -> str | None:
        """The oldest other record with the same identity that is not itself a suspect."""
        identity = _identity(record.object, record.fields)
        if identity is None:
            return None
        suspects = {
            entry.record_id
            for entry in self.context.blast_radius
            if entry.rule == Rule.DUPLICATE_SUSPECT
        }
        candidates = [
            other
            for other in self.context.records.values()
            if other.object == record.object
            and other.record_id != record.record_id
            and other.record_id not in suspects
            and _identity(other.object, other.fields) == identity
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda other: (_age_key(other), other.record_id)).record_id

    def _draft_email(self, step: DraftEmailStep, target: Target) -> None:
        record_id = _id(target)
        params = step.with_
        to = (
            self._render(step, params.to, target).strip()
            if params.to is not None
            else str(self.fields[record_id].get("email") or "")
        )
        subject = self._render(step, params.subject, target)
        self._crm(
            step,
            target,
            op="draft_email",
            undo="discard_email",
            fields={"to": to, "subject": subject, "body": self._render(step, params.body, target)},
            task_id=self._command_id(step, record_id),
            summary=f"email draft on {record_id} to {to or 'a recipient the owner picks'}: "
            f"{subject}",
        )

    def _notify_slack(self, step: NotifySlackStep) -> None:
        channel = self._render(step, step.with_.channel).strip()
        if not channel:
            raise PlanError(f"step {step.id}: the channel renders empty")
        command_id = self._command_id(step)
        rollback = (
            f"Rolled back: {self.pack.metadata.name} ({self.pack.id}) on "
            f"{self.context.incident_id} has been undone."
        )
        self.effects.append(
            Effect(
                step=step.id,
                action=step.action,
                target=channel,
                summary=f"post to {channel}",
                command=SlackPost(
                    command_id=command_id, channel=channel, text=self._render(step, step.with_.text)
                ),
                inverse=SlackPost(command_id=f"{command_id}:undo", channel=channel, text=rollback),
            )
        )

    def file_of(self, step: GitopsChangeStep) -> tuple[str, str]:
        repository = self._render(step, step.with_.repository).strip()
        if not _REPOSITORY.match(repository):
            raise PlanError(f"step {step.id}: {repository!r} is not a repository name")
        path = self._render(step, step.with_.path).strip()
        parts = path.split("/")
        if not all(_PATH_PART.match(part) for part in parts):
            raise PlanError(
                f"step {step.id}: path {path!r} must stay inside the repository "
                "(relative, no '..', letters, digits, '.', '_', '-' and '/')"
            )
        return repository, path

    def _gitops_change(self, step: GitopsChangeStep) -> None:
        repository, path = self.file_of(step)
        assignment = step.with_.set_
        key = self._render(step, assignment.key).strip()
        value: Scalar = (
            self._render(step, assignment.value)
            if isinstance(assignment.value, str)
            else assignment.value
        )
        file = f"{repository}:{path}"
        if file not in self.files:
            raise PlanError(f"step {step.id}: {file} was not read (see files_to_read)")
        before = self.files[file]
        if before is None:
            raise PlanError(f"step {step.id}: {file} does not exist")
        try:
            after = set_yaml_value(before, key, value)
        except ValueError as error:
            raise PlanError(f"step {step.id}: {file}: {error}") from None
        if after == before:
            self._note(f"git {repository}: {path} already has {key} = {value}")
            return
        incident_id = self.context.incident_id
        if not _REF_PART.match(incident_id) or incident_id.endswith(".lock"):
            raise PlanError(f"incident id {incident_id!r} cannot name a git branch")
        branch = f"revleak/{incident_id}/{step.id}"
        message = (
            self._render(step, step.with_.message).strip() if step.with_.message is not None else ""
        ) or f"{self.pack.metadata.name}: set {key} to {value} ({incident_id})"
        command_id = self._command_id(step)
        self.files[file] = after
        self.effects.append(
            Effect(
                step=step.id,
                action=step.action,
                target=file,
                summary=f"set {key} to {value} in {file}",
                command=GitChange(
                    command_id=command_id,
                    repository=repository,
                    path=path,
                    before=before,
                    after=after,
                    branch=branch,
                    message=message,
                ),
                inverse=GitChange(
                    command_id=f"{command_id}:undo",
                    repository=repository,
                    path=path,
                    before=after,
                    after=before,
                    branch=f"{branch}-undo",
                    message=f'Revert "{message}"',
                ),
            )
        )

    # --- building blocks -----------------------------------------------------------------

    def _update(
        self, step: RecordStep, target: Target, changes: dict[str, JsonScalar], summary: str
    ) -> None:
        record_id = _id(target)
        fields = self.fields[record_id]
        before = {name: fields.get(name) for name in changes}
        command_id = self._command_id(step, record_id)
        self.effects.append(
            Effect(
                step=step.id,
                action=step.action,
                target=record_id,
                summary=summary,
                command=self._write(command_id, target, "update", changes),
                inverse=self._write(f"{command_id}:undo", target, "update", before, undo=True),
                before=before,
                after=dict(changes),
            )
        )
        fields.update(changes)
        self._touch(record_id)

    def _crm(
        self,
        step: RecordStep,
        target: Target,
        *,
        op: CrmOp,
        undo: CrmOp,
        fields: dict[str, JsonScalar],
        summary: str,
        task_id: str | None = None,
        into: str | None = None,
    ) -> None:
        record_id = _id(target)
        command_id = self._command_id(step, record_id)
        inverse_fields = fields if op == "merge" else {}
        self.effects.append(
            Effect(
                step=step.id,
                action=step.action,
                target=record_id,
                summary=summary,
                command=self._write(command_id, target, op, fields, task_id=task_id, into=into),
                inverse=self._write(
                    f"{command_id}:undo",
                    target,
                    undo,
                    inverse_fields,
                    task_id=task_id,
                    into=into,
                    undo=True,
                ),
            )
        )
        self._touch(record_id)

    def _write(
        self,
        command_id: str,
        target: Target,
        op: CrmOp,
        fields: dict[str, JsonScalar],
        *,
        task_id: str | None = None,
        into: str | None = None,
        undo: bool = False,
    ) -> CrmWrite:
        reason = f"{self.pack.id} for {self.context.incident_id}"
        return CrmWrite(
            command_id=command_id,
            record_id=target.record.record_id,
            object=target.record.object,
            op=op,
            fields=dict(fields),
            task_id=task_id,
            into=into,
            reason=f"rollback of {reason}" if undo else reason,
        )

    def _command_id(
        self, step: RecordStep | NotifySlackStep | GitopsChangeStep, record_id: str | None = None
    ) -> str:
        base = f"{self.context.incident_id}:{self.pack.id}:{step.id}"
        return f"{base}:{record_id}" if record_id is not None else base

    def _render(
        self,
        step: RecordStep | NotifySlackStep | GitopsChangeStep,
        source: str,
        target: Target | None = None,
    ) -> str:
        variables = self.variables
        if target is not None:
            variables = {**variables, "record": self._record_view(target)}
        try:
            return render(source, variables)
        except TemplateError as error:
            raise PlanError(f"step {step.id}: {error}") from None

    def _due(self, step: RecordStep, source: str, target: Target) -> str:
        text = self._render(step, source, target)
        try:
            return format_timestamp(self.now_ms + parse_duration(text))
        except ValueError as error:
            raise PlanError(f"step {step.id}: {error}") from None

    def _touch(self, record_id: str) -> None:
        if record_id not in self.touched:
            self.touched.append(record_id)

    def _note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)


def _blast_order(entry: BlastRecord) -> tuple[float, str, str]:
    return (-entry.impact_usd, entry.record_id, entry.rule)


def _id(target: Target) -> str:
    return target.record.record_id


def _identity(obj: str, fields: Mapping[str, JsonScalar]) -> str | None:
    """What makes two records of one object the same company, as the flow's duplicate rule
    sees it: the ``domain`` field, else the email's domain (free mail never reaches here:
    such records are not duplicate suspects, nor related to one)."""
    email = str(fields.get("email") or "").strip().casefold()
    domain = str(fields.get("domain") or "").strip().casefold() or email.rpartition("@")[2]
    return f"{obj}:{domain}" if domain else None


def _age_key(record: CrmRecord) -> tuple[int, int]:
    created = record.get("created_at")
    if isinstance(created, int) and not isinstance(created, bool):
        return (0, created)
    if isinstance(created, str):
        try:
            return (0, parse_timestamp(created))
        except ValueError:
            pass
    return (1, 0)


def _crm_line(commands: list[CrmWrite]) -> str:
    ops: Counter[str] = Counter(command.op for command in commands)
    updated = sorted({name for c in commands if c.op == "update" for name in c.fields})
    parts = [
        _count(ops[op], noun) + (f" ({', '.join(updated)})" if op == "update" else "")
        for op, noun in (
            ("update", "update"),
            ("create_task", "task"),
            ("merge", "merge"),
            ("draft_email", "email draft"),
        )
        if ops[op]
    ]
    return f"Kafka {CRM_TOPIC}: {', '.join(parts)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
