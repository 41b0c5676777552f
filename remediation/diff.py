"""The preview of a plan: what an approver reads before anything changes.

``Preview.diff`` is a unified diff in git's layout, one section per record
(``crm/<object>/<record id>``) and per file (``<repository>/<path>``). A record section
lists the fields the plan changes as sorted ``name: value`` lines; tasks, email drafts and
merges appear as added lines. Blank fields (None or "") are left out, so filling one is an
added line and clearing one a removed line.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from revleak.remediation.model import CrmWrite, Frozen, GitChange, Plan

_NO_NEWLINE = "\\ No newline at end of file\n"


class RecordDiff(Frozen):
    record_id: str
    object: str
    before: dict[str, Any]
    after: dict[str, Any]


class FileDiff(Frozen):
    repository: str
    path: str
    before: str | None
    after: str


class Preview(Frozen):
    pack_id: str
    pack_hash: str
    incident_id: str
    diff: str
    records: tuple[RecordDiff, ...]
    files: tuple[FileDiff, ...]
    side_effects: tuple[str, ...]
    blocked: str | None


def preview(plan: Plan) -> Preview:
    """The plan as record and file changes, with its diff text (pure)."""
    records: dict[str, RecordDiff] = {}
    files: dict[tuple[str, str], FileDiff] = {}
    for effect in plan.effects:
        command = effect.command
        if isinstance(command, CrmWrite):
            known = records.get(command.record_id)
            change = known or RecordDiff(
                record_id=command.record_id, object=command.object, before={}, after={}
            )
            before, after = dict(change.before), dict(change.after)
            _fold(command, effect.before or {}, before, after)
            records[command.record_id] = change.model_copy(
                update={"before": before, "after": after}
            )
        elif isinstance(command, GitChange):
            file = (command.repository, command.path)
            first = files.get(file)
            files[file] = FileDiff(
                repository=command.repository,
                path=command.path,
                before=first.before if first is not None else command.before,
                after=command.after,
            )
    text = "".join(_record_section(change) for change in records.values()) + "".join(
        _file_section(change) for change in files.values()
    )
    return Preview(
        pack_id=plan.pack_id,
        pack_hash=plan.pack_hash,
        incident_id=plan.incident_id,
        diff=text,
        records=tuple(records.values()),
        files=tuple(files.values()),
        side_effects=plan.side_effects,
        blocked=plan.blocked,
    )


def _fold(
    command: CrmWrite, found: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> None:
    """Add one write-back to a record's change; a field keeps the value it had before the
    plan's first write to it."""
    fields = command.fields
    if command.op == "update":
        for name, value in fields.items():
            if name not in after:
                before[name] = found.get(name)
            after[name] = value
    elif command.op == "create_task":
        after[f"task {command.task_id}"] = (
            f"{fields.get('subject')} (owner {fields.get('owner') or 'nobody'}, "
            f"due {fields.get('due_at')})"
        )
    elif command.op == "draft_email":
        after[f"email draft {command.task_id}"] = (
            f"to {fields.get('to') or '(owner picks)'}: {fields.get('subject')}"
        )
    elif command.op == "merge":
        after["merged into"] = command.into


def _record_section(change: RecordDiff) -> str:
    name = f"crm/{change.object}/{change.record_id}"
    return "".join(
        difflib.unified_diff(
            _field_lines(change.before), _field_lines(change.after), f"a/{name}", f"b/{name}"
        )
    )


def _field_lines(fields: dict[str, Any]) -> list[str]:
    return [
        f"{name}: {_value(value)}\n"
        for name, value in sorted(fields.items())
        if value is not None and value != ""
    ]


def _value(value: Any) -> str:
    if isinstance(value, str) and "\n" not in value:
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _file_section(change: FileDiff) -> str:
    name = f"{change.repository}/{change.path}"
    before = change.before.splitlines(keepends=True) if change.before is not None else []
    lines = difflib.unified_diff(
        before,
        change.after.splitlines(keepends=True),
        f"a/{name}" if change.before is not None else "/dev/null",
        f"b/{name}",
    )
    # Like git, mark a last line that has no newline rather than invent one.
    return "".join(line if line.endswith("\n") else f"{line}\n{_NO_NEWLINE}" for line in lines)
