"""revleak.remediation.diff: the preview an approver reads, as exact unified-diff text."""

from __future__ import annotations

import textwrap

from revleak.remediation.diff import FileDiff, Preview, RecordDiff, preview
from revleak.remediation.model import (
    BlastRecord,
    CrmRecord,
    CrmWrite,
    Effect,
    GitChange,
    IncidentContext,
    Plan,
    SlackPost,
)
from revleak.remediation.packs import parse_pack
from revleak.remediation.planner import plan

PACK = parse_pack(
    textwrap.dedent(
        """\
        apiVersion: revleak/v1
        kind: FixPack
        metadata: {id: rush, name: Rush}
        spec:
          steps:
            - {id: reassign, action: reassign_owner}
            - id: call
              action: write_back_task
              with: {subject: "Call {{ record.name }}", due: 15m}
            - {id: timer, action: set_sla_timer, with: {within: 15m}}
            - {id: tell, action: notify_slack, with: {channel: "#ops", text: done}}
        """
    )
)


def lead_plan() -> Plan:
    records = {
        "L-0075": CrmRecord(
            record_id="L-0075",
            object="lead",
            fields={
                "name": "Lead 75",
                "owner": "holly",
                "region": "NA",
                "sla_due_at": "2026-03-06T13:30:00.000Z",
            },
        ),
        "L-0080": CrmRecord(
            record_id="L-0080",
            object="lead",
            fields={"name": "Lead 80", "owner": "karl", "region": "EMEA"},
        ),
    }
    return plan(
        PACK,
        IncidentContext(
            incident_id="INC-7",
            slo="lead_response",
            service="lead",
            blast_radius=(
                BlastRecord(
                    slo="lead_response",
                    record_id="L-0080",
                    rule="SLA_BREACH_UNTOUCHED",
                    impact_usd=1500,
                ),
                BlastRecord(
                    slo="lead_response",
                    record_id="L-0075",
                    rule="SLA_BREACH_UNTOUCHED",
                    impact_usd=4000,
                ),
            ),
            records=records,
            roster={"NA": ("holly", "ellis"), "EMEA": ("powell", "karl")},
            now="2026-03-06T14:00:00.000Z",
        ),
    )


def test_record_sections_show_changed_fields_then_tasks_as_added_lines() -> None:
    shown = preview(lead_plan())
    assert shown.diff == (
        "--- a/crm/lead/L-0075\n"
        "+++ b/crm/lead/L-0075\n"
        "@@ -1,2 +1,3 @@\n"
        "-owner: holly\n"
        "-sla_due_at: 2026-03-06T13:30:00.000Z\n"
        "+owner: ellis\n"
        "+sla_due_at: 2026-03-06T14:15:00.000Z\n"
        "+task INC-7:rush:call:L-0075: Call Lead 75 (owner ellis, due 2026-03-06T14:15:00.000Z)\n"
        "--- a/crm/lead/L-0080\n"
        "+++ b/crm/lead/L-0080\n"
        "@@ -1 +1,3 @@\n"
        "-owner: karl\n"
        "+owner: powell\n"
        "+sla_due_at: 2026-03-06T14:15:00.000Z\n"
        "+task INC-7:rush:call:L-0080: Call Lead 80 (owner powell, due 2026-03-06T14:15:00.000Z)\n"
    )
    assert shown.records == (
        RecordDiff(
            record_id="L-0075",
            object="lead",
            before={"owner": "holly", "sla_due_at": "2026-03-06T13:30:00.000Z"},
            after={
                "owner": "ellis",
                "task INC-7:rush:call:L-0075": "Call Lead 75 (owner ellis, "
                "due 2026-03-06T14:15:00.000Z)",
                "sla_due_at": "2026-03-06T14:15:00.000Z",
            },
        ),
        RecordDiff(
            record_id="L-0080",
            object="lead",
            before={"owner": "karl", "sla_due_at": None},
            after={
                "owner": "powell",
                "task INC-7:rush:call:L-0080": "Call Lead 80 (owner powell, "
                "due 2026-03-06T14:15:00.000Z)",
                "sla_due_at": "2026-03-06T14:15:00.000Z",
            },
        ),
    )
    assert shown.side_effects == (
        "Kafka crm.commands: 4 updates (owner, sla_due_at), 2 tasks",
        "Slack #ops: 1 message",
    )
    assert (shown.pack_id, shown.incident_id, shown.blocked, shown.files) == (
        "rush",
        "INC-7",
        None,
        (),
    )
    assert shown.pack_hash == PACK.content_hash


def crm(
    command_id: str,
    record_id: str,
    op: str,
    *,
    before: dict[str, object] | None = None,
    **kw: object,
) -> Effect:
    command = CrmWrite.model_validate(
        {"command_id": command_id, "record_id": record_id, "object": "opportunity", "op": op, **kw}
    )
    return Effect(
        step=command_id,
        action=op,
        target=record_id,
        summary=op,
        command=command,
        before=before,
        after=dict(command.fields) if op == "update" else None,
    )


def git(command_id: str, path: str, before: str | None, after: str) -> Effect:
    return Effect(
        step=command_id,
        action="gitops_change",
        target=f"deploy:{path}",
        summary="edit",
        command=GitChange(
            command_id=command_id,
            repository="deploy",
            path=path,
            before=before,
            after=after,
            branch=f"revleak/INC-1/{command_id}",
            message="m",
        ),
    )


def test_merges_drafts_cleared_fields_and_files_in_git_layout() -> None:
    effects = (
        crm("a", "O-2", "merge", into="O-1", fields={"name": "Deal"}),
        crm("b", "O-3", "update", fields={"next_step": None}, before={"next_step": "call"}),
        crm("c", "O-3", "update", fields={"note": "two\nlines"}, before={"note": ""}),
        crm(
            "d",
            "O-3",
            "draft_email",
            task_id="INC-1:d:O-3",
            fields={"to": "", "subject": "Hi", "body": "B"},
        ),
        git("e", "services/cart.yaml", "a: 1\nb: 2", "a: 1\nb: 3"),
        git("f", "flags.yaml", None, "flags: {}\n"),
        git("g", "services/cart.yaml", "a: 1\nb: 3", "a: 0\nb: 3"),
        Effect(
            step="h",
            action="notify_slack",
            target="#ops",
            summary="post",
            command=SlackPost(command_id="h", channel="#ops", text="hi"),
        ),
    )
    shown = preview(
        Plan(pack_id="p", pack_hash="0" * 64, incident_id="INC-1", effects=effects, records=())
    )
    assert shown.diff == (
        "--- a/crm/opportunity/O-2\n"
        "+++ b/crm/opportunity/O-2\n"
        "@@ -0,0 +1 @@\n"
        "+merged into: O-1\n"
        "--- a/crm/opportunity/O-3\n"
        "+++ b/crm/opportunity/O-3\n"
        "@@ -1 +1,2 @@\n"
        "-next_step: call\n"
        "+email draft INC-1:d:O-3: to (owner picks): Hi\n"
        '+note: "two\\nlines"\n'
        "--- a/deploy/services/cart.yaml\n"
        "+++ b/deploy/services/cart.yaml\n"
        "@@ -1,2 +1,2 @@\n"
        "-a: 1\n"
        "-b: 2\n"
        "\\ No newline at end of file\n"
        "+a: 0\n"
        "+b: 3\n"
        "\\ No newline at end of file\n"
        "--- /dev/null\n"
        "+++ b/deploy/flags.yaml\n"
        "@@ -0,0 +1 @@\n"
        "+flags: {}\n"
    )
    assert shown.files == (
        FileDiff(
            repository="deploy", path="services/cart.yaml", before="a: 1\nb: 2", after="a: 0\nb: 3"
        ),
        FileDiff(repository="deploy", path="flags.yaml", before=None, after="flags: {}\n"),
    )
    assert shown.records[1].before == {"next_step": "call", "note": ""}


def test_a_blocked_plan_previews_nothing_but_why() -> None:
    blocked = Plan(
        pack_id="p",
        pack_hash="1" * 64,
        incident_id="INC-1",
        side_effects=("skipped L-9: not found in the CRM",),
        blocked="blast radius 812 is over this pack's limit of 500",
    )
    assert preview(blocked) == Preview(
        pack_id="p",
        pack_hash="1" * 64,
        incident_id="INC-1",
        diff="",
        records=(),
        files=(),
        side_effects=("skipped L-9: not found in the CRM",),
        blocked="blast radius 812 is over this pack's limit of 500",
    )


def test_the_preview_is_as_deterministic_as_the_plan() -> None:
    assert preview(lead_plan()).model_dump_json() == preview(lead_plan()).model_dump_json()
