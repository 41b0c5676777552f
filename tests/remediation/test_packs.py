"""revleak.remediation.packs: the fix-pack DSL, its loader's errors, the catalogue, the roster."""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from harness import ROOT

from revleak.remediation.packs import (
    ACTIONS,
    Catalogue,
    FixPack,
    PackError,
    PackProblem,
    load_catalogue,
    load_pack,
    load_roster,
    parse_pack,
)

BUNDLED = ROOT / "remediation" / "packs"

MINIMAL = """\
apiVersion: revleak/v1
kind: FixPack
metadata: {id: tell-only, name: Tell only}
spec:
  triggers: [{slo: lead_response}]
  inputs:
    channel: {type: string, default: "#ops"}
  steps:
    - id: tell
      action: notify_slack
      with: {channel: "{{ inputs.channel }}", text: "{{ incident.slo }} is burning"}
"""


def problems_of(text: str) -> tuple[PackProblem, ...]:
    with pytest.raises(PackError) as caught:
        parse_pack(text, file="x.yaml")
    problems = caught.value.problems
    assert problems
    assert all(problem.file == "x.yaml" for problem in problems)
    return problems


def line_of(text: str, needle: str) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, f"{needle!r} occurs {len(hits)} times"
    return hits[0]


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


# -- the bundled catalogue ------------------------------------------------------------------


def test_bundled_catalogue_holds_every_pack_sorted_by_id() -> None:
    catalogue = load_catalogue()
    assert [pack.id for pack in catalogue.packs] == [
        "dedupe-merge",
        "disable-feature-flag",
        "enforce-hygiene",
        "opportunity-rescue",
        "raise-memory-limit",
        "rapid-response",
        "rollback-deployment",
        "round-robin-routing",
    ]
    # The installed package data is the source folder, file for file.
    assert load_catalogue(BUNDLED).packs == catalogue.packs
    for pack in catalogue.packs:
        assert (BUNDLED / f"{pack.id}.yaml").is_file()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"slo": "lead_response", "severity": "page"}, ["rapid-response"]),
        ({"slo": "deal_velocity"}, ["opportunity-rescue"]),
        ({"slo": "next_step_hygiene"}, ["enforce-hygiene"]),
        ({"slo": "data_quality"}, ["dedupe-merge", "round-robin-routing"]),
        ({"slo": "checkout_latency", "cause": "version"}, ["rollback-deployment"]),
        ({"cause": "memory", "service": "cart"}, ["raise-memory-limit"]),
        ({"cause": "flag"}, ["disable-feature-flag"]),
        ({"slo": "unknown"}, []),
        ({}, []),
    ],
)
def test_bundled_packs_answer_their_incidents(labels: dict[str, str], expected: list[str]) -> None:
    assert [pack.id for pack in load_catalogue().for_labels(labels)] == expected


def test_get_finds_a_pack_by_id_and_raises_key_error_otherwise() -> None:
    catalogue = load_catalogue()
    assert catalogue.get("rapid-response").name == "Rapid Response"
    with pytest.raises(KeyError):
        catalogue.get("rapid-responses")


def test_most_specific_pack_comes_first_and_a_value_may_be_a_list(tmp_path: Path) -> None:
    def pack(pack_id: str, triggers: str) -> str:
        return MINIMAL.replace("tell-only", pack_id).replace(
            "triggers: [{slo: lead_response}]", f"triggers: {triggers}"
        )

    write(tmp_path, "a.yaml", pack("broad", "[{slo: lead_response}]"))
    write(tmp_path, "b.yaml", pack("paged", "[{slo: lead_response, severity: [page, ticket]}]"))
    write(tmp_path, "c.yaml", pack("also-broad", "[{slo: [deal_velocity, lead_response]}]"))
    write(tmp_path, "d.yaml", pack("manual", "[]"))
    catalogue = load_catalogue(tmp_path)
    paged = catalogue.for_labels({"slo": "lead_response", "severity": "ticket"})
    assert [p.id for p in paged] == ["paged", "also-broad", "broad"]
    assert [p.id for p in catalogue.for_labels({"slo": "lead_response"})] == [
        "also-broad",
        "broad",
    ]
    assert [p.id for p in catalogue.for_labels({"slo": "deal_velocity"})] == ["also-broad"]
    assert catalogue.get("manual").spec.triggers == ()


def test_catalogue_is_a_value() -> None:
    pack = parse_pack(MINIMAL)
    assert Catalogue((pack,)).for_labels({"slo": "lead_response"}) == [pack]


# -- content hash ---------------------------------------------------------------------------


def test_content_hash_ignores_formatting_and_sees_every_change() -> None:
    pack = parse_pack(MINIMAL)
    assert len(pack.content_hash) == 64
    reformatted = yaml.safe_dump(yaml.safe_load(MINIMAL), default_flow_style=False)
    assert reformatted != MINIMAL
    assert parse_pack(reformatted).content_hash == pack.content_hash
    # A default written out is the same pack.
    explicit = MINIMAL.replace(
        "metadata: {id: tell-only, name: Tell only}",
        ("metadata: {id: tell-only, name: Tell only, description: ''}"),
    )
    assert parse_pack(explicit).content_hash == pack.content_hash
    changed = MINIMAL.replace("is burning", "burns")
    assert parse_pack(changed).content_hash != pack.content_hash


def test_content_hash_is_sha256_of_canonical_json() -> None:
    pack = parse_pack(MINIMAL)
    document = pack.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert pack.content_hash == hashlib.sha256(canonical.encode()).hexdigest()


# -- errors: file, line, field path, hint ---------------------------------------------------


def test_every_problem_of_a_file_is_reported_with_line_path_and_hint() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: revleak/v1
        kind: FixPack
        metadata: {id: Bad_Pack, name: Bad}
        spec:
          inputs:
            due: {type: duration, default: soon}
          guards:
            records: {rules: [SLA_BREACH], objects: [deal]}
          steps:
            - {id: a, action: reasign_owner}
            - id: b
              action: write_back_task
              with: {subjct: "Call", due: 15m}
            - id: c
              action: notify_slack
              where: {rules: [STALE_OPP]}
              with: {channel: "#x", text: hi}
        """
    )
    problems = {problem.where: problem for problem in problems_of(text)}
    assert set(problems) == {
        "metadata.id",
        "spec.inputs.due",
        "spec.guards.records.rules[0]",
        "spec.guards.records.objects[0]",
        "spec.steps[0]",
        "spec.steps[1].with.subjct",
        "spec.steps[1].with.subject",
        "spec.steps[2].where",
    }
    assert problems["metadata.id"].line == line_of(text, "Bad_Pack")
    assert "rapid-response" in problems["metadata.id"].hint
    assert "'soon' is not a duration" in problems["spec.inputs.due"].message
    assert "'SLA_BREACH_UNTOUCHED'" in problems["spec.guards.records.rules[0]"].message
    unknown_action = problems["spec.steps[0]"]
    assert unknown_action.message == "unknown action 'reasign_owner'"
    assert "reassign_owner" in unknown_action.hint
    assert unknown_action.line == line_of(text, "reasign_owner")
    typo = problems["spec.steps[1].with.subjct"]
    assert (typo.message, typo.line) == ("unknown field", line_of(text, "subjct"))
    assert problems["spec.steps[1].with.subject"].message == "required field is missing"
    once = problems["spec.steps[2].where"]
    assert once.message == "this action runs once, not per record"
    assert once.line == line_of(text, "where:")
    assert str(typo) == (
        f"x.yaml:{typo.line}: spec.steps[1].with.subjct: unknown field "
        "(hint: check its spelling and indentation)"
    )


def test_templates_are_checked_when_the_pack_loads() -> None:
    text = MINIMAL.replace(
        'text: "{{ incident.slo }} is burning"',
        'text: "{{ record.name }} {{ inputs.chanel }} {{ incidnet }} {% if %}"',
    ).replace(
        "    - id: tell\n",
        "    - {id: call, action: write_back_task, with: {subject: '{{ record.name', due: 1h}}\n"
        "    - id: tell\n",
    )
    problems = problems_of(text)
    by_path: dict[str, list[str]] = defaultdict(list)
    for problem in problems:
        by_path[problem.where].append(problem.message)
    assert set(by_path) == {"spec.steps[0].with.subject", "spec.steps[1].with.text"}
    assert by_path["spec.steps[0].with.subject"][0].startswith("not a valid template")
    # A template with a syntax error is reported once, for its syntax.
    (syntax,) = by_path["spec.steps[1].with.text"]
    assert syntax.startswith("not a valid template")


def test_names_a_template_may_not_use_are_listed() -> None:
    text = MINIMAL.replace(
        'text: "{{ incident.slo }} is burning"',
        'text: "{{ record.name }} {{ inputs.chanel }} {{ incidnet }}"',
    )
    problems = problems_of(text)
    messages = sorted(problem.message for problem in problems)
    assert messages == [
        "inputs.chanel is not a declared input (declared: channel)",
        "{{ incidnet }} is not a variable here (known: annotations, incident, inputs, "
        "labels, now, records)",
        "{{ record }} is not a variable here (known: annotations, incident, inputs, "
        "labels, now, records)",
    ]
    record = next(problem for problem in problems if "record }}" in problem.message)
    assert record.hint == "notify_slack runs once: use records, not record"
    assert record.line == line_of(MINIMAL, "text:")


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("apiVersion: revleak/v1", "apiVersion: revleak/v2", "apiVersion", "apiVersion must be"),
        ("kind: FixPack", "kind: Pack", "kind", "kind must be 'FixPack'"),
        ('{type: string, default: "#ops"}', "{type: text}", "spec.inputs.channel.type", ""),
        (
            '{type: string, default: "#ops"}',
            "{type: int, default: x}",
            "spec.inputs.channel",
            "'x' is not a whole number",
        ),
        (
            "triggers: [{slo: lead_response}]",
            "triggers: [{}]",
            "spec.triggers",
            "an empty matcher would match every incident",
        ),
        (
            "triggers: [{slo: lead_response}]",
            "triggers: [{priority: 1}]",
            "spec.triggers[0].priority",
            "Input should be a valid string or Input should be a valid tuple",
        ),
        (
            "  steps:\n",
            "  guards: {maxBlastRadius: 0}\n  steps:\n",
            "spec.guards.maxBlastRadius",
            "greater than or equal to 1",
        ),
    ],
)
def test_single_mistakes_are_named(old: str, new: str, where: str, message: str) -> None:
    assert MINIMAL.count(old) == 1
    problems = problems_of(MINIMAL.replace(old, new))
    assert [problem.where for problem in problems][:1] == [where], problems
    assert message in problems[0].message


def test_step_ids_are_unique() -> None:
    text = MINIMAL + (
        '    - {id: tell, action: notify_slack, with: {channel: "#b", text: again}}\n'
    )
    (problem,) = problems_of(text)
    assert (problem.where, problem.message) == ("spec.steps", "step id 'tell' is used twice")


def test_literal_durations_are_checked_and_templates_left_for_planning() -> None:
    step = "    - {id: t, action: set_sla_timer, with: {within: %s}}\n"
    base = MINIMAL.replace("    - id: tell\n", step + "    - id: tell\n")
    (problem,) = problems_of(base % "15 minutes")
    assert problem.where == "spec.steps[0].with.within"
    assert "not a duration" in problem.message
    assert parse_pack(base % "'{{ inputs.channel }}'").spec.steps[0].id == "t"


def test_a_file_is_one_yaml_mapping() -> None:
    (problem,) = problems_of("a: [1, 2\n")
    assert problem.message.startswith("not valid YAML")
    assert problem.line is not None
    (problem,) = problems_of(MINIMAL + "---\n" + MINIMAL)
    assert problem.message == "holds 2 YAML documents"
    (problem,) = problems_of("- just a list\n")
    assert "mapping" in problem.message


def test_catalogue_reports_problems_of_every_file_and_duplicate_ids(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", MINIMAL)
    write(tmp_path, "b.yaml", MINIMAL)
    write(tmp_path, "c.yaml", MINIMAL.replace("kind: FixPack", "kind: Pack"))
    write(tmp_path, "notes.txt", "not a pack")
    with pytest.raises(PackError) as caught:
        load_catalogue(tmp_path)
    problems = caught.value.problems
    assert [(Path(p.file).name, p.where) for p in problems] == [
        ("b.yaml", "metadata.id"),
        ("c.yaml", "kind"),
    ]
    assert "already used by" in problems[0].message
    assert str(tmp_path / "a.yaml") in problems[0].message


def test_load_pack_reads_one_file(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", MINIMAL)
    assert load_pack(tmp_path / "p.yaml") == parse_pack(MINIMAL)
    with pytest.raises(PackError, match="cannot read"):
        load_pack(tmp_path / "missing.yaml")


def test_fix_pack_exposes_its_metadata() -> None:
    pack = parse_pack(MINIMAL)
    assert isinstance(pack, FixPack)
    assert (pack.id, pack.name, pack.description) == ("tell-only", "Tell only", "")
    assert not pack.targets_records
    assert load_catalogue().get("rapid-response").targets_records


# -- roster ---------------------------------------------------------------------------------


def test_bundled_roster_is_who_serves_each_region_in_the_story() -> None:
    serves: dict[str, set[str]] = defaultdict(set)
    for line in (ROOT / "data" / "nakatomi.jsonl").read_text(encoding="utf-8").splitlines():
        fields = json.loads(line).get("fields", {})
        if fields.get("owner") and fields.get("region"):
            serves[fields["region"]].add(fields["owner"])
    roster = load_roster()
    assert {region: set(owners) for region, owners in roster.items() if region != "*"} == serves
    assert set(roster["*"]) == set().union(*serves.values())


def test_roster_file_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text("regions:\n  NA: [holly, holly]\n  EMEA: []\n", encoding="utf-8")
    with pytest.raises(PackError) as caught:
        load_roster(path)
    (problem,) = caught.value.problems
    assert (problem.where, problem.message) == (
        "regions",
        "region 'EMEA' has no owners; region 'NA' lists an owner twice",
    )
    path.write_text("regions:\n  NA: [holly]\n  '*': [holly, karl]\n", encoding="utf-8")
    assert load_roster(path) == {"NA": ("holly",), "*": ("holly", "karl")}


def test_the_reference_documents_every_action_and_every_bundled_pack() -> None:
    reference = (ROOT / "docs" / "fixpacks.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_]+)` \| (?:per record|once) \|", reference, re.M))
    assert documented == set(ACTIONS)
    catalogue_table = reference[reference.index("## Catalogue") :]
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", catalogue_table, re.M))
    assert listed == {pack.id for pack in load_catalogue().packs}
