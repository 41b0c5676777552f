"""revleak.remediation.planner: a fix pack bound to an incident, effect by effect."""

from __future__ import annotations

import json
import random
import re
import textwrap
from typing import Any, Literal

import pytest
import yaml
from harness import ROOT
from hypothesis import given
from hypothesis import strategies as st

from revleak.remediation.diff import preview
from revleak.remediation.model import (
    BlastRecord,
    Command,
    CrmRecord,
    CrmWrite,
    GitChange,
    IncidentContext,
    JsonScalar,
    Plan,
    SlackPost,
)
from revleak.remediation.packs import FixPack, load_catalogue, load_roster, parse_pack
from revleak.remediation.planner import PlanError, bind_inputs, files_to_read, plan
from revleak.remediation.templating import set_yaml_value
from revleak.timefmt import parse_timestamp

NOW = "2026-03-06T14:00:00.000Z"
ROSTER = {
    "NA": ("holly", "ellis", "argyle"),
    "EMEA": ("powell", "karl"),
    "*": ("holly", "ellis", "argyle", "powell", "karl"),
}
CATALOGUE = load_catalogue()
SERVICE_FILE = "# checkout service\nspec:\n  version: 1.5.0  # pinned by release\n  replicas: 3\n"


def lead(record_id: str, **fields: JsonScalar) -> CrmRecord:
    return CrmRecord(record_id=record_id, object="lead", fields=fields)


def opp(record_id: str, **fields: JsonScalar) -> CrmRecord:
    return CrmRecord(record_id=record_id, object="opportunity", fields=fields)


def hit(record_id: str, rule: str, impact: float, slo: str = "lead_response") -> BlastRecord:
    return BlastRecord(slo=slo, record_id=record_id, rule=rule, impact_usd=impact)


def context(
    blast: list[BlastRecord], records: list[CrmRecord], **overrides: Any
) -> IncidentContext:
    values: dict[str, Any] = {
        "incident_id": "INC-7",
        "slo": "lead_response",
        "service": "lead",
        "labels": {"slo": "lead_response", "severity": "page"},
        "blast_radius": tuple(blast),
        "records": {record.record_id: record for record in records},
        "roster": ROSTER,
        "now": NOW,
    }
    values.update(overrides)
    return IncidentContext(**values)


def pack_with(steps: str, *, guards: str = "", inputs: str = "") -> FixPack:
    body = textwrap.indent(textwrap.dedent(steps).strip(), "    ")
    text = (
        "apiVersion: revleak/v1\nkind: FixPack\nmetadata: {id: test-pack, name: Test Pack}\n"
        "spec:\n  triggers: [{slo: lead_response}]\n"
        + (f"  inputs: {inputs}\n" if inputs else "")
        + (f"  guards: {guards}\n" if guards else "")
        + f"  steps:\n{body}\n"
    )
    return parse_pack(text)


def crm(plan_: Plan) -> list[CrmWrite]:
    return [e.command for e in plan_.effects if isinstance(e.command, CrmWrite)]


def write(command: Command | None) -> CrmWrite:
    assert isinstance(command, CrmWrite), command
    return command


def untouched(*records: tuple[str, float]) -> list[BlastRecord]:
    return [hit(record_id, "SLA_BREACH_UNTOUCHED", impact) for record_id, impact in records]


# -- reassign_owner -------------------------------------------------------------------------


def test_reassign_owner_rotates_within_each_region_skipping_the_current_owner() -> None:
    records = [
        lead("L-1", owner="holly", region="NA"),
        lead("L-2", owner="ellis", region="NA"),
        lead("L-3", owner="holly", region="NA"),
        lead("L-4", owner="powell", region="EMEA"),
        lead("L-5", owner="karl", region="APAC"),
        lead("L-6", owner="", region=None),
    ]
    blast = untouched(("L-3", 800), ("L-6", 500), ("L-1", 900), ("L-5", 600), ("L-2", 800))
    blast.append(hit("L-4", "SLA_BREACH_UNTOUCHED", 700))
    result = plan(pack_with("- {id: reassign, action: reassign_owner}"), context(blast, records))
    assert [(c.record_id, c.fields) for c in crm(result)] == [
        ("L-1", {"owner": "ellis"}),
        ("L-2", {"owner": "argyle"}),  # rotation continues across records
        ("L-3", {"owner": "ellis"}),  # holly is skipped: she owns it now
        ("L-4", {"owner": "karl"}),
        ("L-5", {"owner": "holly"}),  # APAC has no roster: any owner
        ("L-6", {"owner": "ellis", "region": "NA"}),  # no region: takes the owner's
    ]
    undo = [write(e.inverse) for e in result.effects]
    assert [(c.command_id, c.op, c.fields) for c in undo] == [
        ("INC-7:test-pack:reassign:L-1:undo", "update", {"owner": "holly"}),
        ("INC-7:test-pack:reassign:L-2:undo", "update", {"owner": "ellis"}),
        ("INC-7:test-pack:reassign:L-3:undo", "update", {"owner": "holly"}),
        ("INC-7:test-pack:reassign:L-4:undo", "update", {"owner": "powell"}),
        ("INC-7:test-pack:reassign:L-5:undo", "update", {"owner": "karl"}),
        ("INC-7:test-pack:reassign:L-6:undo", "update", {"owner": "", "region": None}),
    ]
    first = result.effects[0]
    assert (first.before, first.after) == ({"owner": "holly"}, {"owner": "ellis"})
    assert first.summary == "reassign L-1 from holly to ellis"
    assert result.effects[5].summary == "reassign L-6 from nobody to ellis in NA"
    assert result.records == ("L-1", "L-2", "L-3", "L-4", "L-5", "L-6")
    assert write(first.command).reason == "test-pack for INC-7"
    assert write(first.inverse).reason == "rollback of test-pack for INC-7"


def test_reassign_owner_skips_a_record_nobody_else_can_take() -> None:
    records = [lead("L-1", owner="holly", region="NA"), lead("L-2", owner="karl")]
    roster = {"NA": ("holly",)}
    result = plan(
        pack_with("- {id: reassign, action: reassign_owner}"),
        context(untouched(("L-1", 10), ("L-2", 5)), records, roster=roster),
    )
    assert result.effects == ()
    assert result.blocked == "no record of the blast radius can be changed (see side effects)"
    assert result.side_effects == (
        "skipped L-1: no other owner serves region NA",
        "skipped L-2: no other owner serves records without a region",
    )


# -- tasks, timers, next steps --------------------------------------------------------------


def test_rapid_response_reassigns_then_tasks_the_new_owner_and_restarts_the_timer() -> None:
    records = [
        lead("L-0075", name="Lead 75", owner="holly", region="NA", sla_due_at=None),
        lead("L-0080", owner="powell", region="EMEA", sla_due_at="2026-03-06T13:30:00.000Z"),
    ]
    result = plan(
        CATALOGUE.get("rapid-response"),
        context(untouched(("L-0075", 4000), ("L-0080", 1500)), records),
        {"due": "20m"},
    )
    tasks = [c for c in crm(result) if c.op == "create_task"]
    assert [(t.record_id, t.task_id, t.fields) for t in tasks] == [
        (
            "L-0075",
            "INC-7:rapid-response:call:L-0075",
            {"subject": "Call Lead 75 now", "due_at": "2026-03-06T14:20:00.000Z", "owner": "ellis"},
        ),
        (
            "L-0080",
            "INC-7:rapid-response:call:L-0080",
            {"subject": "Call L-0080 now", "due_at": "2026-03-06T14:20:00.000Z", "owner": "karl"},
        ),
    ]
    undo_tasks = [write(e.inverse) for e in result.effects if e.step == "call"]
    assert [(u.op, u.task_id, u.fields) for u in undo_tasks] == [
        ("delete_task", "INC-7:rapid-response:call:L-0075", {}),
        ("delete_task", "INC-7:rapid-response:call:L-0080", {}),
    ]
    timers = [e for e in result.effects if e.step == "timer"]
    assert [(e.before, e.after) for e in timers] == [
        ({"sla_due_at": None}, {"sla_due_at": "2026-03-06T14:20:00.000Z"}),
        ({"sla_due_at": "2026-03-06T13:30:00.000Z"}, {"sla_due_at": "2026-03-06T14:20:00.000Z"}),
    ]
    assert [write(e.inverse).fields for e in timers] == [
        {"sla_due_at": None},
        {"sla_due_at": "2026-03-06T13:30:00.000Z"},
    ]
    (post,) = [e.command for e in result.effects if isinstance(e.command, SlackPost)]
    assert post == SlackPost(
        command_id="INC-7:rapid-response:tell",
        channel="#revenue-ops",
        text="INC-7: 2 leads missed the lead_response SLA. Each went to another owner of its "
        "region with a call task due in 20m.",
    )
    assert result.side_effects == (
        "Kafka crm.commands: 4 updates (owner, sla_due_at), 2 tasks",
        "Slack #revenue-ops: 1 message",
    )
    assert [e.step for e in result.effects] == ["reassign"] * 2 + ["call"] * 2 + ["timer"] * 2 + [
        "tell"
    ]


def test_add_next_step_is_undone_by_restoring_what_was_there() -> None:
    records = [opp("O-1", next_step=""), opp("O-2"), opp("O-3", next_step="old", name="Acme")]
    blast = [hit(r.record_id, "NO_NEXT_STEP", 100, "next_step_hygiene") for r in records]
    result = plan(
        pack_with("- {id: step, action: add_next_step, with: {text: 'Call {{ record.name }}'}}"),
        context(blast, records[2:]),
    )
    (effect,) = result.effects
    assert write(effect.command).fields == {"next_step": "Call Acme"}
    assert write(effect.inverse).fields == {"next_step": "old"}
    # O-1 and O-2 are not in the CRM any more.
    assert result.side_effects[1:] == (
        "skipped O-1: not found in the CRM",
        "skipped O-2: not found in the CRM",
    )
    result = plan(
        pack_with("- {id: step, action: add_next_step, with: {text: Call}}"),
        context(blast, records),
    )
    assert [write(e.inverse).fields for e in result.effects] == [
        {"next_step": ""},
        {"next_step": None},
        {"next_step": "old"},
    ]


# -- merge_duplicates -----------------------------------------------------------------------


def test_merge_duplicates_folds_each_suspect_into_the_oldest_clean_record() -> None:
    records = [
        lead("L-1", email="Ann@X.example", created_at="2026-03-01T10:00:00.000Z"),
        lead("L-2", email=" ann@x.example ", created_at="2026-03-02T10:00:00.000Z", owner="k"),
        lead("L-3", email="ann@x.example", created_at="2026-03-03T10:00:00.000Z"),
        lead("L-0", email="ann@x.example", created_at="2026-02-01T10:00:00.000Z"),
        lead("L-9", email="bob@y.example", created_at="2026-03-01T10:00:00.000Z"),
        opp("O-5", email="ann@x.example", created_at="2026-01-01T10:00:00.000Z"),
        opp("O-1", domain="Initech.example", created_at="2026-03-01T10:00:00.000Z"),
        opp("O-2", domain="initech.example", created_at="2026-02-01T10:00:00.000Z"),
        opp("O-3", domain="initech.example", created_at="2026-03-05T10:00:00.000Z"),
    ]
    blast = [
        hit(record_id, "DUPLICATE_SUSPECT", impact, "data_quality")
        for record_id, impact in (("L-2", 50), ("L-3", 40), ("L-9", 30), ("O-3", 20), ("L-0", 1))
    ]
    pack = pack_with(
        "- {id: merge, action: merge_duplicates}",
        guards="{records: {minImpactUsd: 10}}",
    )
    result = plan(pack, context(blast, records))
    merges = crm(result)
    # L-0 is older but a suspect itself (below this pack's minimum impact, still a suspect).
    assert [(c.record_id, c.op, c.into) for c in merges] == [
        ("L-2", "merge", "L-1"),
        ("L-3", "merge", "L-1"),
        ("O-3", "merge", "O-2"),
    ]
    assert merges[0].fields == dict(records[1].fields)
    undo = result.effects[0].inverse
    assert isinstance(undo, CrmWrite)
    assert (undo.op, undo.record_id, undo.into, undo.fields) == (
        "unmerge",
        "L-2",
        "L-1",
        dict(records[1].fields),
    )
    assert result.side_effects == (
        "Kafka crm.commands: 3 merges",
        "skipped L-9: no surviving record",
    )
    assert result.records == ("L-2", "L-1", "L-3", "O-3", "O-2")


def test_a_merged_record_gets_no_further_steps() -> None:
    records = [
        lead("L-1", email="a@x.example", created_at="2026-03-01T10:00:00.000Z"),
        lead("L-2", email="a@x.example", created_at="2026-03-02T10:00:00.000Z"),
        lead("L-9", email="b@y.example", created_at="2026-03-02T10:00:00.000Z"),
    ]
    blast = [hit(r, "DUPLICATE_SUSPECT", 5, "data_quality") for r in ("L-2", "L-9")]
    pack = pack_with(
        """
        - {id: merge, action: merge_duplicates}
        - {id: check, action: write_back_task, with: {subject: Check, due: 1h}}
        """
    )
    result = plan(pack, context(blast, records))
    assert [(c.record_id, c.op) for c in crm(result)] == [
        ("L-2", "merge"),
        ("L-9", "create_task"),
    ]


# -- notify_slack and draft_email -----------------------------------------------------------


def test_notify_slack_posts_once_and_its_inverse_says_it_was_rolled_back() -> None:
    pack = pack_with(
        """
        - {id: a, action: add_next_step, with: {text: x}}
        - id: tell
          action: notify_slack
          with:
            channel: " #deals "
            text: "{{ records | length }} deals, first {{ records[0].record_id }}"
        """
    )
    records = [opp("O-1"), opp("O-2")]
    result = plan(pack, context([hit("O-2", "STALE_OPP", 9), hit("O-1", "STALE_OPP", 9)], records))
    tell = result.effects[-1]
    assert tell.command == SlackPost(
        command_id="INC-7:test-pack:tell", channel="#deals", text="2 deals, first O-1"
    )
    assert tell.inverse == SlackPost(
        command_id="INC-7:test-pack:tell:undo",
        channel="#deals",
        text="Rolled back: Test Pack (test-pack) on INC-7 has been undone.",
    )
    assert (tell.target, tell.summary) == ("#deals", "post to #deals")


def test_draft_email_goes_to_the_record_email_unless_told_otherwise() -> None:
    records = [lead("L-1", email="ann@x.example", name="Ann"), opp("O-1", name="Deal")]
    blast = [hit("L-1", "STALE_OPP", 9), hit("O-1", "STALE_OPP", 8)]
    pack = pack_with(
        "- {id: mail, action: draft_email, with: {subject: 'Hi {{ record.name }}', body: B}}"
    )
    drafts = crm(plan(pack, context(blast, records)))
    assert [(d.op, d.task_id, d.fields) for d in drafts] == [
        (
            "draft_email",
            "INC-7:test-pack:mail:L-1",
            {"to": "ann@x.example", "subject": "Hi Ann", "body": "B"},
        ),
        ("draft_email", "INC-7:test-pack:mail:O-1", {"to": "", "subject": "Hi Deal", "body": "B"}),
    ]
    pack = pack_with(
        "- {id: mail, action: draft_email, with: {to: '{{ record.owner }}@corp.example', "
        "subject: S, body: B}}"
    )
    records = [lead("L-1", owner="holly")]
    (draft,) = crm(plan(pack, context(blast[:1], records)))
    assert draft.fields["to"] == "holly@corp.example"
    (effect,) = plan(pack, context(blast[:1], records)).effects
    assert effect.inverse == draft.model_copy(
        update={
            "command_id": "INC-7:test-pack:mail:L-1:undo",
            "op": "discard_email",
            "fields": {},
            "reason": "rollback of test-pack for INC-7",
        }
    )


# -- GitOps ---------------------------------------------------------------------------------


def telemetry(labels: dict[str, str], annotations: dict[str, str], **kw: Any) -> IncidentContext:
    return IncidentContext(
        incident_id="INC-9",
        slo="checkout_latency",
        service="checkout",
        labels=labels,
        annotations=annotations,
        now=NOW,
        **kw,
    )


def test_rollback_edits_the_version_in_the_text_and_reverts_with_a_second_commit() -> None:
    pack = CATALOGUE.get("rollback-deployment")
    incident = telemetry({"cause": "version", "service": "checkout"}, {"previous_version": "1.4.1"})
    assert files_to_read(pack, incident) == [("deploy", "services/checkout.yaml")]
    assert files_to_read(pack, incident, {"repository": "infra"}) == [
        ("infra", "services/checkout.yaml")
    ]
    incident = incident.model_copy(
        update={"files": {"deploy:services/checkout.yaml": SERVICE_FILE}}
    )
    result = plan(pack, incident)
    change, post = (effect.command for effect in result.effects)
    assert change == GitChange(
        command_id="INC-9:rollback-deployment:rollback",
        repository="deploy",
        path="services/checkout.yaml",
        before=SERVICE_FILE,
        after=SERVICE_FILE.replace("1.5.0", "1.4.1"),
        branch="revleak/INC-9/rollback",
        message="Roll back checkout to 1.4.1 (INC-9)",
    )
    assert result.effects[0].inverse == GitChange(
        command_id="INC-9:rollback-deployment:rollback:undo",
        repository="deploy",
        path="services/checkout.yaml",
        before=change.after,
        after=SERVICE_FILE,
        branch="revleak/INC-9/rollback-undo",
        message='Revert "Roll back checkout to 1.4.1 (INC-9)"',
    )
    assert isinstance(post, SlackPost)
    assert post.text == "INC-9: rolling checkout back to 1.4.1."
    assert result.side_effects == (
        "git deploy: commit services/checkout.yaml on revleak/INC-9/rollback, "
        "merge into the default branch",
        "Slack #incidents: 1 message",
    )
    assert result.records == ()
    assert result.blocked is None


def test_gitops_refuses_what_it_cannot_do_safely() -> None:
    pack = CATALOGUE.get("rollback-deployment")
    labels = {"cause": "version", "service": "checkout"}
    version = {"previous_version": "1.4.1"}
    file = "deploy:services/checkout.yaml"
    with pytest.raises(PlanError, match=r"deploy:services/checkout.yaml was not read"):
        plan(pack, telemetry(labels, version))
    with pytest.raises(PlanError, match="does not exist"):
        plan(pack, telemetry(labels, version, files={file: None}))
    with pytest.raises(PlanError, match=r"has no key spec\.version"):
        plan(pack, telemetry(labels, version, files={file: "spec:\n  image: x\n"}))
    with pytest.raises(PlanError, match=r"^step rollback: .*previous_version"):
        plan(pack, telemetry(labels, {}, files={file: SERVICE_FILE}))
    for service in ("../../etc/passwd", "/etc/passwd", "a b", "x/./y"):
        with pytest.raises(PlanError, match="must stay inside the repository"):
            files_to_read(pack, telemetry({**labels, "service": service}, version))
    with pytest.raises(PlanError, match="cannot name a git branch"):
        plan(
            pack,
            telemetry(labels, version, files={file: SERVICE_FILE}).model_copy(
                update={"incident_id": "INC..1"}
            ),
        )


def test_a_file_that_already_holds_the_value_is_left_alone() -> None:
    pack = CATALOGUE.get("rollback-deployment")
    current = SERVICE_FILE.replace("1.5.0", "1.4.1")
    result = plan(
        pack,
        telemetry(
            {"cause": "version", "service": "checkout"},
            {"previous_version": "1.4.1"},
            files={"deploy:services/checkout.yaml": current},
        ),
    )
    assert [e.action for e in result.effects] == ["notify_slack"]
    assert result.side_effects[-1] == (
        "git deploy: services/checkout.yaml already has spec.version = 1.4.1"
    )


def test_disable_feature_flag_writes_a_boolean() -> None:
    flags = "flags:\n  new-checkout: true   # rollout 2026-03\n  dark-mode: false\n"
    result = plan(
        CATALOGUE.get("disable-feature-flag"),
        telemetry({"cause": "flag"}, {"flag": "new-checkout"}, files={"deploy:flags.yaml": flags}),
    )
    change = result.effects[0].command
    assert isinstance(change, GitChange)
    assert change.after == flags.replace("true", "false")
    assert change.message == "Disable feature flag new-checkout (INC-9)"


@pytest.mark.parametrize(
    ("annotations", "inputs", "limit"),
    [
        ({"memory_limit_target": "768Mi"}, None, "768Mi"),
        ({}, None, "1Gi"),
        ({}, {"memory": "2Gi"}, "2Gi"),
    ],
)
def test_raise_memory_limit_uses_the_annotation_or_the_input(
    annotations: dict[str, str], inputs: dict[str, Any] | None, limit: str
) -> None:
    text = "spec:\n  version: 1.5.0\n  resources:\n    memory: 512Mi  # was enough\n"
    result = plan(
        CATALOGUE.get("raise-memory-limit"),
        telemetry(
            {"cause": "memory", "service": "cart"},
            annotations,
            files={"deploy:services/cart.yaml": text},
        ),
        inputs,
    )
    change = result.effects[0].command
    assert isinstance(change, GitChange)
    assert change.after == text.replace("512Mi", limit)


def test_two_steps_on_one_file_chain_their_versions() -> None:
    pack = pack_with(
        """
        - id: one
          action: gitops_change
          with: {repository: deploy, path: a.yaml, set: {key: a, value: 2}}
        - id: two
          action: gitops_change
          with: {repository: deploy, path: a.yaml, set: {key: b, value: 3}}
        """
    )
    result = plan(pack, telemetry({}, {}, files={"deploy:a.yaml": "a: 1\nb: 1\n"}))
    first, second = (e.command for e in result.effects)
    assert isinstance(first, GitChange)
    assert isinstance(second, GitChange)
    assert (first.before, first.after) == ("a: 1\nb: 1\n", "a: 2\nb: 1\n")
    assert (second.before, second.after) == ("a: 2\nb: 1\n", "a: 2\nb: 3\n")
    assert first.message == "Test Pack: set a to 2 (INC-9)"


# -- setting a YAML value in place ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "value", "after"),
    [
        ("a:\n  b: 3 # n\n", "a.b", "5", "a:\n  b: 5 # n\n"),
        ("a:\n  b: x\n", "a.b", "2.0", 'a:\n  b: "2.0"\n'),
        ("a:\n  b: '1.0'\n", "a.b", "it's", "a:\n  b: 'it''s'\n"),
        ('a: "1.0"\n', "a", "1.1", 'a: "1.1"\n'),
        ("a: true\n", "a", "false", "a: false\n"),
        ("a: true\n", "a", False, "a: false\n"),
        ("a: 1\n", "a", "yes please", "a: yes please\n"),
        ("a: x\n", "a", "#1", 'a: "#1"\n'),
        ("a: x\n", "a", "", 'a: ""\n'),
        (
            "s:\n  c:\n    - {image: app:1, n: 1}\n",
            "s.c[0].image",
            "app:2",
            "s:\n  c:\n    - {image: app:2, n: 1}\n",
        ),
        ("a: x\n", "a", 7, "a: 7\n"),
    ],
)
def test_set_yaml_value_keeps_everything_else(text: str, key: str, value: Any, after: str) -> None:
    assert set_yaml_value(text, key, value) == after


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("a:\n  b: 1\n", "a.c", "has no key a.c (a has no c)"),
        ("a:\n  b: 1\n", "a", "a is a mapping, not a single value"),
        ("a: [1, 2]\n", "a", "a is a list"),
        ("a: [1, 2]\n", "a[5]", "has no key a[5]"),
        ("a: |\n  text\n", "a", "block scalar"),
        ("a: 1\n---\na: 2\n", "a", "2 YAML documents"),
        ("a: [\n", "a", "not valid YAML"),
        ("a: 1\n", "a..b", "not a key path"),
        ("x: &v 1\ny: *v\n", "x", "would change more than that value"),
    ],
)
def test_set_yaml_value_refuses_what_it_cannot_edit(text: str, key: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        set_yaml_value(text, key, "2")


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30))
def test_any_string_value_reads_back_as_itself(value: str) -> None:
    text = "# deploy\nspec:\n  version: 1.5.0  # pinned\n  replicas: 3\nother: [a, b]\n"
    after = set_yaml_value(text, "spec.version", value)
    assert yaml.safe_load(after) == {
        "spec": {"version": value, "replicas": 3},
        "other": ["a", "b"],
    }
    assert after.startswith("# deploy\nspec:\n  version: ")
    assert after.endswith("  # pinned\n  replicas: 3\nother: [a, b]\n")


# -- guards ---------------------------------------------------------------------------------


def test_a_blast_radius_over_the_limit_blocks_the_plan() -> None:
    records = [lead(f"L-{n}", owner="holly", region="NA") for n in range(3)]
    pack = pack_with("- {id: reassign, action: reassign_owner}", guards="{maxBlastRadius: 2}")
    blocked = plan(pack, context(untouched(*((r.record_id, 1) for r in records)), records))
    assert blocked.blocked == "blast radius 3 is over this pack's limit of 2"
    assert (blocked.effects, blocked.records) == ((), ())
    assert blocked.pack_hash == pack.content_hash
    allowed = plan(pack, context(untouched(("L-0", 1), ("L-1", 1)), records))
    assert allowed.blocked is None
    assert len(allowed.effects) == 2


def test_record_guards_filter_rules_objects_impact_and_fields() -> None:
    records = [
        lead("L-1", owner="holly", region="NA"),
        lead("L-2", owner="", region="NA"),
        lead("L-3", owner="ellis", region="EMEA"),
        opp("O-1", owner="holly", region="NA"),
        lead("L-4", region="NA"),
    ]
    blast = [
        hit("L-1", "UNASSIGNED_OWNER", 100),
        hit("L-2", "UNASSIGNED_OWNER", 100),
        hit("L-2", "DUPLICATE_SUSPECT", 300),
        hit("L-3", "UNASSIGNED_OWNER", 5),
        hit("O-1", "UNASSIGNED_OWNER", 100),
        hit("L-4", "UNASSIGNED_OWNER", 50),
    ]
    pack = pack_with(
        "- {id: reassign, action: reassign_owner}",
        guards="{records: {rules: [UNASSIGNED_OWNER], objects: [lead], minImpactUsd: 10, "
        "fields: {owner: null, region: [NA, EMEA]}}}",
    )
    assert plan(pack, context(blast, records)).records == ("L-2", "L-4")


def test_a_step_where_narrows_the_records_it_acts_on() -> None:
    records = [lead("L-1", owner="argyle", region="NA"), lead("L-2", owner="", region="NA")]
    blast = [hit("L-1", "SLA_BREACH_UNTOUCHED", 100), hit("L-2", "UNASSIGNED_OWNER", 50)]
    pack = pack_with(
        """
        - {id: assign, action: reassign_owner, where: {rules: [UNASSIGNED_OWNER]}}
        - {id: rush, action: set_sla_timer, where: {minImpactUsd: 60}, with: {within: 5m}}
        - id: call
          action: write_back_task
          where: {fields: {owner: holly}}
          with: {subject: Call, due: 1h}
        """
    )
    result = plan(pack, context(blast, records))
    assert [(e.step, e.target) for e in result.effects] == [
        ("assign", "L-2"),
        ("rush", "L-1"),
        ("call", "L-2"),  # where sees the owner the assign step gave it
    ]


def test_a_pack_for_records_with_none_to_act_on_is_blocked() -> None:
    pack = CATALOGUE.get("rapid-response")
    result = plan(pack, context([hit("O-1", "STALE_OPP", 10)], [opp("O-1")]))
    assert result.blocked == "no record of the blast radius passes this pack's guards"
    assert result.effects == ()


# -- inputs and templates -------------------------------------------------------------------


def test_inputs_are_checked_against_their_declared_types() -> None:
    pack = CATALOGUE.get("rapid-response")
    assert bind_inputs(pack, None) == {"channel": "#revenue-ops", "due": "15m"}
    assert bind_inputs(pack, {"due": "1h"}) == {"channel": "#revenue-ops", "due": "1h"}
    with pytest.raises(PlanError, match=r"unknown input chanel \(this pack takes: channel, due\)"):
        bind_inputs(pack, {"chanel": "#x"})
    with pytest.raises(PlanError, match="input due: 'soon' is not a duration"):
        bind_inputs(pack, {"due": "soon"})
    with pytest.raises(PlanError, match="input channel: 5 is not text"):
        bind_inputs(pack, {"channel": 5})
    typed = pack_with(
        "- {id: t, action: notify_slack, with: {channel: '#x', "
        "text: '{{ inputs.n }} {{ inputs.b }}'}}",
        inputs="{n: {type: int}, b: {type: bool, default: false}}",
    )
    with pytest.raises(PlanError, match=r"input n is required \(int\)"):
        bind_inputs(typed, {})
    with pytest.raises(PlanError, match="input n: True is not a whole number"):
        bind_inputs(typed, {"n": True})
    with pytest.raises(PlanError, match="input b: 'yes' is not true or false"):
        bind_inputs(typed, {"n": 1, "b": "yes"})
    result = plan(typed, context([], []), {"n": 3})
    assert result.effects[0].command == SlackPost(
        command_id="INC-7:test-pack:t", channel="#x", text="3 False"
    )


def test_a_template_naming_a_missing_field_fails_with_its_step() -> None:
    pack = pack_with(
        "- {id: call, action: write_back_task, with: {subject: '{{ record.phone }}', due: 1h}}"
    )
    with pytest.raises(PlanError, match=r"^step call: .*undefined variable.*phone"):
        plan(pack, context(untouched(("L-1", 1)), [lead("L-1")]))


def test_a_rendered_duration_must_be_a_duration() -> None:
    pack = pack_with(
        "- {id: t, action: set_sla_timer, with: {within: '{{ inputs.w }}'}}",
        inputs="{w: {type: string, default: soon}}",
    )
    with pytest.raises(PlanError, match=r"^step t: 'soon' is not a duration"):
        plan(pack, context(untouched(("L-1", 1)), [lead("L-1")]))


def test_templates_cannot_reach_outside_their_variables() -> None:
    pack = pack_with(
        "- {id: t, action: notify_slack, with: {channel: '#x', "
        "text: '{{ records.__class__.__mro__ }}'}}"
    )
    with pytest.raises(PlanError, match=r"^step t: "):
        plan(pack, context([], []))


# -- determinism ----------------------------------------------------------------------------


def test_the_same_inputs_give_a_byte_identical_plan() -> None:
    records = [lead(f"L-{n:02d}", owner="holly", region="NA", name=f"Lead {n}") for n in range(20)]
    blast = untouched(*((record.record_id, float(n % 4)) for n, record in enumerate(records)))
    pack = CATALOGUE.get("rapid-response")
    expected = plan(pack, context(blast, records)).model_dump_json()
    shuffler = random.Random(7)
    for _ in range(5):
        shuffled_blast, shuffled_records = blast[:], records[:]
        shuffler.shuffle(shuffled_blast)
        shuffler.shuffle(shuffled_records)
        again = plan(pack, context(shuffled_blast, shuffled_records))
        assert again.model_dump_json() == expected
    assert Plan.model_validate_json(expected).model_dump_json() == expected


# -- every bundled pack, planned against the story ------------------------------------------


def story_records(until: str) -> dict[str, CrmRecord]:
    """The Nakatomi story's records as the CRM holds them at ``until``."""
    events = [
        json.loads(line)
        for line in (ROOT / "data" / "nakatomi.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    fields: dict[str, dict[str, JsonScalar]] = {}
    objects: dict[str, Literal["lead", "opportunity"]] = {}
    for event in sorted(events, key=lambda e: parse_timestamp(e["ts"])):
        if parse_timestamp(event["ts"]) > parse_timestamp(until):
            break
        record_id = event["record_id"]
        if event["op"] == "delete":
            fields.pop(record_id, None)
            continue
        objects[record_id] = event["object"]
        fields.setdefault(record_id, {}).update(event.get("fields", {}))
    return {
        record_id: CrmRecord(record_id=record_id, object=objects[record_id], fields=values)
        for record_id, values in fields.items()
        if values.get("stage") not in ("Converted", "Closed Won", "Closed Lost")
    }


def story_incident(slo: str, now: str) -> IncidentContext:
    records = story_records(now)
    blast: list[BlastRecord] = []
    for record in records.values():
        value = float(record.get("value_usd") or 15000)
        if slo == "lead_response" and record.object == "lead" and not record.get("last_touch_at"):
            blast.append(hit(record.record_id, "SLA_BREACH_UNTOUCHED", value * 0.5, slo))
        if slo == "deal_velocity" and record.object == "opportunity":
            blast.append(hit(record.record_id, "STALE_OPP", value * 0.1, slo))
        stuck = record.object == "opportunity" and not record.get("next_step")
        if slo == "next_step_hygiene" and stuck:
            blast.append(hit(record.record_id, "NO_NEXT_STEP", value * 0.25, slo))
        if slo == "data_quality" and not record.get("owner"):
            blast.append(hit(record.record_id, "UNASSIGNED_OWNER", value, slo))
    if slo == "data_quality":
        # The same person, entered again by a web form an hour later.
        original = records["L-0073"]
        again = lead(
            "L-0073B",
            **{
                **original.fields,
                "email": str(original.get("email")).upper(),
                "created_at": "2026-03-06T14:00:00.000Z",
            },
        )
        records[again.record_id] = again
        blast.append(hit(again.record_id, "DUPLICATE_SUSPECT", 600, slo))
    return IncidentContext(
        incident_id=f"INC-{slo}",
        slo=slo,
        service="crm",
        labels={"alertname": "RevleakSloBurn", "slo": slo, "severity": "page"},
        blast_radius=tuple(blast),
        records=records,
        roster=load_roster(),
        now=now,
    )


SERVICE = "# cart\nspec:\n  version: 2.1.0\n  resources:\n    memory: 512Mi\n"
FLAGS = "# feature flags\nflags:\n  one-click-checkout: true\n"


def telemetry_incident(cause: str) -> IncidentContext:
    return IncidentContext(
        incident_id=f"INC-{cause}",
        slo="cart_availability",
        service="cart",
        labels={"alertname": "RevleakSloBurn", "cause": cause, "service": "cart"},
        annotations={"previous_version": "2.0.3", "flag": "one-click-checkout"},
        now="2026-03-06T14:00:00.000Z",
        files={"deploy:services/cart.yaml": SERVICE, "deploy:flags.yaml": FLAGS},
    )


INCIDENTS = {
    "rapid-response": lambda: story_incident("lead_response", "2026-03-11T00:00:00.000Z"),
    "opportunity-rescue": lambda: story_incident("deal_velocity", "2026-03-20T09:00:00.000Z"),
    "enforce-hygiene": lambda: story_incident("next_step_hygiene", "2026-03-05T17:00:00.000Z"),
    "dedupe-merge": lambda: story_incident("data_quality", "2026-03-06T14:00:00.000Z"),
    "round-robin-routing": lambda: story_incident("data_quality", "2026-03-06T13:11:00.000Z"),
    "rollback-deployment": lambda: telemetry_incident("version"),
    "raise-memory-limit": lambda: telemetry_incident("memory"),
    "disable-feature-flag": lambda: telemetry_incident("flag"),
}


def test_every_bundled_pack_has_a_story_incident() -> None:
    assert sorted(INCIDENTS) == sorted(pack.id for pack in CATALOGUE.packs)


@pytest.mark.parametrize("pack_id", sorted(INCIDENTS))
def test_every_bundled_pack_plans_against_a_realistic_incident(pack_id: str) -> None:
    incident = INCIDENTS[pack_id]()
    pack = CATALOGUE.get(pack_id)
    assert pack in CATALOGUE.for_labels(incident.labels)
    for repository, path in files_to_read(pack, incident):
        assert f"{repository}:{path}" in incident.files
    result = plan(pack, incident)
    assert result.blocked is None, result.side_effects
    assert result.effects
    assert {effect.step for effect in result.effects} == {step.id for step in pack.spec.steps}
    assert all(effect.inverse is not None for effect in result.effects)
    ids = [effect.command.command_id for effect in result.effects]
    ids += [effect.inverse.command_id for effect in result.effects if effect.inverse]
    assert len(set(ids)) == len(ids)
    assert set(result.records) <= set(incident.records)
    assert Plan.model_validate_json(result.model_dump_json()) == result
    assert preview(result).diff


def test_rapid_response_on_the_story_reassigns_every_untouched_lead_within_its_region() -> None:
    incident = story_incident("lead_response", "2026-03-11T00:00:00.000Z")
    result = plan(CATALOGUE.get("rapid-response"), incident)
    leads = len(incident.blast_radius)
    assert leads > 50
    assert result.side_effects == (
        f"Kafka crm.commands: {2 * leads} updates (owner, sla_due_at), {leads} tasks",
        "Slack #revenue-ops: 1 message",
    )
    roster = load_roster()
    for effect in result.effects:
        if effect.step == "reassign":
            record = incident.records[effect.target]
            assert effect.after is not None
            assert effect.after["owner"] in roster[str(record.get("region"))]
            assert effect.after["owner"] != record.get("owner")
