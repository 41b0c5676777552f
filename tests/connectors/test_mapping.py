"""revleak.connectors.mapping: source mapping files and the converters they name."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import ROOT

from revleak.connectors.generic_json import MAX_TEXT_CHARS
from revleak.connectors.mapping import (
    MappingError,
    ObjectMapping,
    ValueProblemError,
    default_mapping,
    load_mapping,
    parse_mapping,
)
from revleak.crm.events import CrmObject
from revleak.timefmt import parse_timestamp

BUNDLED = ROOT / "connectors" / "mappings"

VALID = """\
apiVersion: revleak/v1
kind: SourceMapping
metadata:
  name: acme
spec:
  source: salesforce
  objects:
    Lead:
      object: lead
      fields:
        OwnerId: owner
        Status: stage
        CreatedDate: created_at
      values:
        stage:
          Open: New
"""


def problems_of(text: str, file: str = "acme.yaml") -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, file=file)
    return [str(problem) for problem in caught.value.problems]


def test_the_bundled_mappings_load() -> None:
    salesforce = default_mapping("salesforce")
    assert salesforce.spec.source == "salesforce"
    lead = salesforce.object_named("Lead")
    assert lead is not None
    assert lead.crm_object is CrmObject.LEAD
    assert lead.fields["Name"].join == ("FirstName", "LastName")
    assert lead.values["stage"]["Closed - Not Converted"] == "Closed Lost"
    opportunity = salesforce.object_named("Opportunity")
    assert opportunity is not None
    assert opportunity.values["stage"]["Id. Decision Makers"] == "Proposal"
    assert salesforce.object_named("Account") is None
    hubspot = default_mapping("hubspot")
    assert hubspot.object_with_type_id("0-3") is hubspot.object_named("deal")
    assert hubspot.object_with_type_id("0-2") is None
    assert default_mapping("hubspot") is hubspot
    for name in ("salesforce", "hubspot"):
        assert load_mapping(BUNDLED / f"{name}.yaml") == default_mapping(name)
    with pytest.raises(ValueError, match="no default mapping"):
        default_mapping("pipedrive")


def test_a_valid_mapping_loads() -> None:
    mapping = parse_mapping(VALID)
    assert mapping.metadata.name == "acme"
    lead = mapping.spec.objects["Lead"]
    assert [rule.field for rule in lead.fields.values()] == ["owner", "stage", "created_at"]
    assert lead.convert("Status", "Open") == ("stage", "New")
    assert lead.convert("Status", "Won") == ("stage", "Won")


def test_an_unknown_generic_field_is_reported_with_file_line_and_path() -> None:
    assert problems_of(VALID.replace("OwnerId: owner", "OwnerId: owner_id")) == [
        "acme.yaml:11: spec.objects.Lead.fields.OwnerId: 'owner_id' is not a revleak field; "
        "map to one of name, email, domain, company, source, region, owner, stage, next_step, "
        "created_at, last_touch_at, value_usd"
    ]
    text = VALID.replace("OwnerId: owner", "OwnerId: {field: ownr, convert: text}")
    (problem,) = problems_of(text)
    assert problem.startswith("acme.yaml:11: spec.objects.Lead.fields.OwnerId.field: 'ownr' is")


def test_an_unknown_revleak_object_is_reported() -> None:
    assert problems_of(VALID.replace("object: lead", "object: account")) == [
        "acme.yaml:9: spec.objects.Lead.object: 'account' is not a revleak object; "
        "use lead or opportunity"
    ]


def test_a_value_map_on_an_unknown_or_unmapped_field_is_reported() -> None:
    assert problems_of(VALID.replace("        stage:\n", "        stag:\n")) == [
        "acme.yaml:15: spec.objects.Lead.values.stag: value map on 'stag', which is not a "
        "revleak field (value maps are for name, email, domain, company, source, region, "
        "owner, stage, next_step)"
    ]
    assert problems_of(VALID.replace("Status: stage", "Status: source")) == [
        "acme.yaml:15: spec.objects.Lead.values.stage: value map on stage, but no field of "
        "Lead maps to it"
    ]
    assert problems_of(VALID.replace("        stage:\n", "        created_at:\n")) == [
        "acme.yaml:15: spec.objects.Lead.values.created_at: value maps are for text fields; "
        "created_at is not text"
    ]


def test_every_problem_of_a_file_is_reported_together(tmp_path: Path) -> None:
    text = (
        VALID.replace("apiVersion: revleak/v1", "apiVersion: revleak/v2")
        .replace("source: salesforce", "source: pipedrive")
        .replace("object: lead", "object: lead\n      objekt: lead")
    )
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f'{path}:1: apiVersion: apiVersion must be "revleak/v1"',
        f"{path}:6: spec.source: Input should be 'salesforce' or 'hubspot'",
        f"{path}:10: spec.objects.Lead.objekt: unknown field (check its spelling and indentation)",
    ]
    assert str(caught.value).count(str(path)) == 3


def test_rules_that_disagree_are_reported() -> None:
    cases = {
        "CreatedDate: created_at": (
            "CreatedDate: {field: created_at, convert: money}",
            "acme.yaml:13: spec.objects.Lead.fields.CreatedDate.convert: created_at takes "
            "convert: time, not money",
        ),
        "Status: stage": (
            "IsConverted: {field: stage, convert: flag}\n        Status: stage",
            "acme.yaml:12: spec.objects.Lead.fields.IsConverted: convert: flag needs value: "
            "(the field's value when true)",
        ),
        "OwnerId: owner": (
            "OwnerId: {field: owner, value: nobody}",
            "acme.yaml:11: spec.objects.Lead.fields.OwnerId.value: value is only for convert: flag",
        ),
        "        CreatedDate: created_at\n": (
            "        CreatedDate: created_at\n        Name: {field: created_at, join: [A, B]}\n",
            "acme.yaml:14: spec.objects.Lead.fields.Name.join: join gives text: use it on a "
            "text field",
        ),
        "object: lead": (
            'object: lead\n      typeId: "0-1"',
            "acme.yaml:10: spec.objects.Lead.typeId: typeId is for HubSpot's generic object.* "
            "webhooks",
        ),
        "      object: lead\n": (
            "",
            "acme.yaml:8: spec.objects.Lead.object: required field is missing",
        ),
    }
    for old, (new, expected) in cases.items():
        assert old in VALID
        assert problems_of(VALID.replace(old, new)) == [expected], old


def test_join_is_for_salesforce() -> None:
    text = VALID.replace("source: salesforce", "source: hubspot").replace(
        "OwnerId: owner", "Name: {field: name, join: [firstname, lastname]}"
    )
    assert problems_of(text) == [
        "acme.yaml:11: spec.objects.Lead.fields.Name.join: join is for Salesforce compound fields"
    ]


def test_files_that_are_not_one_mapping_document() -> None:
    assert problems_of("spec: [unclosed\n") == [
        "acme.yaml:2: not valid YAML: expected ',' or ']', but got '<stream end>'"
    ]
    assert problems_of(VALID + "---\n" + VALID) == [
        "acme.yaml: a mapping file holds one document, found 2"
    ]
    assert problems_of("- Lead\n") == [
        "acme.yaml:1: not a mapping of apiVersion, kind, metadata and spec"
    ]
    assert problems_of(VALID.replace("kind: SourceMapping", "kind: SLO")) == [
        "acme.yaml:2: kind: kind must be SourceMapping"
    ]
    with pytest.raises(MappingError, match="cannot read file"):
        load_mapping(Path("/nonexistent/mapping.yaml"))


# -- converters ------------------------------------------------------------------------------

RULES = ObjectMapping.model_validate(
    {
        "object": "opportunity",
        "fields": {
            "name": "name",
            "site": {"field": "domain", "convert": "domain"},
            "won": {"field": "stage", "convert": "flag", "value": "Closed Won"},
            "when": "created_at",
            "amount": "value_usd",
        },
    }
)


def test_text_and_domains() -> None:
    assert RULES.convert("name", "Acme") == ("name", "Acme")
    assert RULES.convert("name", "  ") == ("name", None)
    assert RULES.convert("name", "x" * MAX_TEXT_CHARS) == ("name", "x" * MAX_TEXT_CHARS)
    for site, domain in [
        ("https://www.Acme.example/about?x=1", "acme.example"),
        ("acme.example", "acme.example"),
        ("http://user@shop.acme.example:8443", "shop.acme.example"),
        ("", None),
    ]:
        assert RULES.convert("site", site) == ("domain", domain), site
    for bad in ("x" * (MAX_TEXT_CHARS + 1), 42, True, ["a"]):
        with pytest.raises(ValueProblemError, match=r"^name: "):
            RULES.convert("name", bad)


def test_times() -> None:
    noon = parse_timestamp("2026-03-02T12:00:00Z")
    for raw in (
        noon,
        str(noon),
        float(noon),
        "2026-03-02T12:00:00Z",
        "2026-03-02T12:00:00.000Z",
        "2026-03-02T13:00:00+01:00",
    ):
        assert RULES.convert("when", raw) == ("created_at", noon), raw
    assert RULES.convert("when", "2026-03-02") == (
        "created_at",
        parse_timestamp("2026-03-02T00:00:00Z"),
    )
    assert RULES.convert("when", None) == ("created_at", None)
    assert RULES.convert("when", "") == ("created_at", None)
    for bad in ("yesterday", True, 1.5, {"at": 1}):
        with pytest.raises(ValueProblemError, match=r"^when: expected a time"):
            RULES.convert("when", bad)


def test_amounts() -> None:
    assert RULES.convert("amount", 48000) == ("value_usd", 48000.0)
    assert RULES.convert("amount", "120000.50") == ("value_usd", 120000.5)
    assert RULES.convert("amount", 0) == ("value_usd", 0.0)
    assert RULES.convert("amount", "") == ("value_usd", None)
    for bad in (-1, "-1", "inf", "NaN", "12 USD", False):
        with pytest.raises(ValueProblemError, match=r"^amount: "):
            RULES.convert("amount", bad)


def test_flags() -> None:
    assert RULES.convert("won", True) == ("stage", "Closed Won")
    assert RULES.convert("won", "true") == ("stage", "Closed Won")
    assert RULES.convert("won", False) is None
    assert RULES.convert("won", "false") is None
    assert RULES.convert("won", None) is None
    with pytest.raises(ValueProblemError, match="expected true or false"):
        RULES.convert("won", "yes")
