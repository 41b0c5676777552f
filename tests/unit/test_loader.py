"""revleak.slo.loader: SLO files into a catalog, with errors a person can act on."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from harness import DEFAULT_SLOS

from revleak.slo.catalog import Indicator, Rule
from revleak.slo.loader import Problem, SloFileError, load_catalog, parse_catalog
from revleak.timefmt import DAY_MS, HOUR_MS, MINUTE_MS

DEFAULT_TEXT = DEFAULT_SLOS.read_text(encoding="utf-8")


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the ``nth`` line that contains ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} occurs {len(hits)} times"
    return hits[nth - 1]


def edited(old: str, new: str, *, text: str = DEFAULT_TEXT) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


def problems_of(text: str) -> tuple[Problem, ...]:
    with pytest.raises(SloFileError) as caught:
        parse_catalog(text, file="x.yaml")
    problems = caught.value.problems
    assert problems
    assert all(problem.file == "x.yaml" for problem in problems)
    return problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# -- the default file -----------------------------------------------------------------------


def test_the_default_file_loads_its_four_slos_in_file_order() -> None:
    catalog = load_catalog(DEFAULT_SLOS)
    assert catalog.names == ("lead_response", "deal_velocity", "next_step_hygiene", "data_quality")
    assert [slo.indicator for slo in catalog.slos] == [
        Indicator.LEAD_RESPONSE,
        Indicator.DEAL_VELOCITY,
        Indicator.NEXT_STEP_HYGIENE,
        Indicator.DATA_QUALITY,
    ]
    assert [slo.target for slo in catalog.slos] == [
        Fraction(95, 100),
        Fraction(90, 100),
        Fraction(99, 100),
        Fraction(99, 100),
    ]
    assert all(slo.period_ms == 30 * DAY_MS for slo in catalog.slos)
    assert [slo.threshold_ms for slo in catalog.slos] == [
        30 * MINUTE_MS,
        7 * DAY_MS,
        24 * HOUR_MS,
        None,
    ]


def test_the_default_policy_has_the_classic_factors_exactly() -> None:
    for slo in load_catalog(DEFAULT_SLOS).slos:
        rules = [(r.severity, r.long_ms, r.short_ms, r.factor) for r in slo.alert_rules]
        assert rules == [
            ("page", HOUR_MS, 5 * MINUTE_MS, Fraction(72, 5)),
            ("page", 6 * HOUR_MS, 30 * MINUTE_MS, Fraction(6)),
            ("ticket", DAY_MS, 2 * HOUR_MS, Fraction(3)),
            ("ticket", 3 * DAY_MS, 6 * HOUR_MS, Fraction(1)),
        ]
        assert all(isinstance(r.factor, Fraction) for r in slo.alert_rules)
        assert [r.long_window for r in slo.alert_rules] == ["1h", "6h", "1d", "3d"]


def test_the_default_budgets_are_shares_of_50000_dollars() -> None:
    catalog = load_catalog(DEFAULT_SLOS)
    assert catalog.revenue.monthly_budget_usd == 50_000
    assert [catalog.budget_usd(slo) for slo in catalog.slos] == [15_000, 20_000, 10_000, 5_000]
    assert all(slo.is_revenue for slo in catalog.slos)


def test_the_default_revenue_model() -> None:
    revenue = load_catalog(DEFAULT_SLOS).revenue
    assert revenue.average_deal_size_usd == 15_000
    assert revenue.probability("Negotiation") == Fraction(65, 100)
    assert revenue.probability("new") == Fraction(1, 10)
    assert revenue.probability("Discovery") == Fraction(1, 10)  # unknown stage: that of New
    assert revenue.is_closed("closed won")
    assert revenue.is_closed("Converted")
    assert not revenue.is_closed("Proposal")
    assert "gmail.com" in revenue.free_mail_domains


def test_the_default_rule_impacts() -> None:
    catalog = load_catalog(DEFAULT_SLOS)
    assert catalog.by_name("lead_response").impact(Rule.SLA_BREACH_UNTOUCHED).factor == Fraction(
        1, 2
    )
    assert catalog.by_name("deal_velocity").impact(Rule.STALE_OPP).half_life_days == 14
    quality = catalog.by_name("data_quality")
    assert [(r.rule, r.factor) for r in quality.rules] == [
        (Rule.UNASSIGNED_OWNER, 1),
        (Rule.DUPLICATE_SUSPECT, Fraction(1, 5)),
        (Rule.ROUTING_MISMATCH, Fraction(1, 10)),
    ]
    with pytest.raises(KeyError):
        quality.impact(Rule.STALE_OPP)


def test_the_default_file_warns_that_deal_velocitys_fastest_page_can_never_fire_on_count() -> None:
    # 14.4 × (1 − 0.90) ≥ 1: a count burn rate is at most 1 / 0.1 = 10.
    warnings = load_catalog(DEFAULT_SLOS).warnings
    assert len(warnings) == 1
    assert "deal_velocity" in warnings[0]
    assert "never" in warnings[0]


def test_a_factor_just_below_the_maximum_burn_is_no_warning() -> None:
    text = edited("target: 0.90", "target: 0.95")  # 14.4 × 0.05 = 0.72 < 1
    assert parse_catalog(text).warnings == ()


def test_budget_consumed_and_burn_factor_give_the_same_rule() -> None:
    text = edited("budgetConsumed: 0.02}", "burnFactor: 14.4}")
    catalog = parse_catalog(text)
    assert catalog.by_name("lead_response").alert_rules[0].factor == Fraction(72, 5)


# -- errors ---------------------------------------------------------------------------------


def test_a_target_in_percent_is_refused_with_a_hint() -> None:
    text = edited("target: 0.95", "target: 95")
    problem = only_problem(text)
    assert problem.line == line_of(text, "target: 95")
    assert problem.where == "document 3 (SLO lead_response) spec.objectives[0].target"
    assert "0-1, not 0-100" in problem.message
    assert "0.95" in problem.message


@pytest.mark.parametrize("target", ["1", "0", "-0.5", "101"])
def test_a_target_outside_zero_to_one_is_refused(target: str) -> None:
    problem = only_problem(edited("target: 0.95", f"target: {target}"))
    assert "target must be between 0 and 1" in problem.message


def test_a_misspelt_field_is_named_and_located() -> None:
    text = edited("target: 0.95", "targte: 0.95")
    problems = problems_of(text)
    line = line_of(text, "targte")
    by_where = {problem.where: problem for problem in problems}
    typo = by_where["document 3 (SLO lead_response) spec.objectives[0].targte"]
    assert typo.line == line
    assert "unknown field" in typo.message
    missing = by_where["document 3 (SLO lead_response) spec.objectives[0].target"]
    assert missing.line == line
    assert "missing" in missing.message


def test_a_misspelt_top_level_field_is_located_on_its_own_line() -> None:
    text = edited(
        "  budgetingMethod: Occurrences\n  objectives: [{displayName: 95",
        "  budgetingMethod: Occurrences\n  objectivs: [{displayName: 95",
    )
    problems = problems_of(text)
    typo = next(p for p in problems if p.where.endswith("spec.objectivs"))
    assert typo.line == line_of(text, "objectivs")


def test_a_timed_indicator_without_threshold_is_refused() -> None:
    text = edited("    threshold: 30m\n", "")
    problem = only_problem(text)
    block = line_of(text, "  revleak:", 1)
    assert problem.line in {block, block + 1}  # the key, or where its mapping starts
    assert problem.where == "document 3 (SLO lead_response) spec.revleak"
    assert "crm.lead_response needs a threshold" in problem.message


def test_data_quality_takes_no_threshold() -> None:
    text = edited(
        "      - {id: UNASSIGNED_OWNER", "    threshold: 1h\n      - {id: UNASSIGNED_OWNER"
    )
    text = edited("    rules:\n    threshold: 1h\n", "    threshold: 1h\n    rules:\n", text=text)
    problem = only_problem(text)
    assert problem.where.endswith(") spec.revleak.threshold")
    assert problem.line == line_of(text, "threshold: 1h")
    assert "takes no threshold" in problem.message


def test_a_rule_of_another_indicator_is_refused() -> None:
    text = edited("{id: SLA_BREACH_UNTOUCHED, impactFactor: 0.5}", "{id: STALE_OPP, halfLife: 14d}")
    problems = problems_of(text)
    wrong = next(p for p in problems if p.where.endswith(") spec.revleak.rules[0].id"))
    assert wrong.line == line_of(text, "{id: STALE_OPP", 1)
    assert "STALE_OPP is not a rule of crm.lead_response" in wrong.message
    assert "SLA_BREACH_UNTOUCHED" in wrong.message


def test_stale_opp_needs_a_half_life_not_an_impact_factor() -> None:
    text = edited("{id: STALE_OPP, halfLife: 14d}", "{id: STALE_OPP, impactFactor: 0.5}")
    problem = only_problem(text)
    assert problem.line == line_of(text, "{id: STALE_OPP")
    assert problem.where.endswith(") spec.revleak.rules[0]")
    assert "halfLife" in problem.message


def test_a_fixed_impact_rule_with_a_half_life_is_refused() -> None:
    text = edited("{id: NO_NEXT_STEP, impactFactor: 0.25}", "{id: NO_NEXT_STEP, halfLife: 3d}")
    problem = only_problem(text)
    assert problem.line == line_of(text, "{id: NO_NEXT_STEP")
    assert "impactFactor" in problem.message


def test_an_undefined_alert_policy_is_refused_and_the_known_ones_listed() -> None:
    text = edited(
        "  alertPolicies: [multiwindow-multiburn]\n  revleak:\n    threshold: 7d",
        "  alertPolicies: [fast-burn]\n  revleak:\n    threshold: 7d",
    )
    problem = only_problem(text)
    assert problem.line == line_of(text, "[fast-burn]")
    assert problem.where.endswith(") spec.alertPolicies[0]")
    assert "'fast-burn'" in problem.message
    assert "multiwindow-multiburn" in problem.message


def test_an_alert_window_longer_than_the_period_is_refused() -> None:
    text = edited(
        "timeWindow: [{duration: 30d, isRolling: true}]\n  budgetingMethod: Occurrences\n"
        "  objectives: [{displayName: 95",
        "timeWindow: [{duration: 2d, isRolling: true}]\n  budgetingMethod: Occurrences\n"
        "  objectives: [{displayName: 95",
    )
    problem = only_problem(text)
    assert problem.line == line_of(text, "longWindow: 3d")
    assert "3d is longer than the period 2d of SLO lead_response" in problem.message


def policy_problem(text: str) -> Problem:
    problems = problems_of(text)
    return next(p for p in problems if p.where.startswith("document 1 (AlertPolicy"))


def test_a_short_window_must_be_shorter_than_its_long_window() -> None:
    text = edited("longWindow: 1h, shortWindow: 5m", "longWindow: 1h, shortWindow: 1h")
    problem = policy_problem(text)
    assert problem.line == line_of(text, "shortWindow: 1h")
    assert "shortWindow must be shorter than longWindow" in problem.message


def test_a_rule_needs_exactly_one_of_burn_factor_or_budget_consumed() -> None:
    text = edited("budgetConsumed: 0.02}", "budgetConsumed: 0.02, burnFactor: 14.4}")
    assert "exactly one of burnFactor or budgetConsumed" in policy_problem(text).message


def test_an_invalid_policy_is_reported_once_not_as_missing_from_every_slo() -> None:
    text = edited("longWindow: 1h, shortWindow: 5m", "longWindow: 1h, shortWindow: 1h")
    problems = problems_of(text)
    assert not [p for p in problems if "no AlertPolicy named" in p.message]
    assert len(problems) == 1


def test_an_invalid_revenue_budget_is_not_also_reported_as_missing() -> None:
    problems = problems_of(edited("Proposal: 0.45", "Proposal: 45"))
    assert [p.message for p in problems if "found none" in p.message] == []


def test_an_unknown_indicator_lists_the_known_ones() -> None:
    text = edited("type: crm.lead_response", "type: crm.lead_responce")
    problem = only_problem(text)
    assert problem.line == line_of(text, "crm.lead_responce")
    assert "crm.data_quality" in problem.message


def test_a_bad_duration_shows_the_expected_format() -> None:
    text = edited("threshold: 30m", "threshold: 30 minutes")
    problem = only_problem(text)
    assert problem.line == line_of(text, "threshold: 30 minutes")
    assert "not a duration like 5m" in problem.message


def test_a_budget_share_in_percent_is_refused_with_a_hint() -> None:
    problem = only_problem(edited("budgetShare: 0.30", "budgetShare: 30"))
    assert "0-1, not 0-100" in problem.message


def test_a_win_probability_in_percent_is_refused_with_a_hint() -> None:
    text = edited("Proposal: 0.45", "Proposal: 45")
    problems = problems_of(text)
    assert any("'Proposal'" in p.message and "0-1, not 0-100" in p.message for p in problems)


def test_a_wrong_api_version_is_explained() -> None:
    text = edited("apiVersion: revleak/v1\nkind: AlertPolicy", "apiVersion: v1\nkind: AlertPolicy")
    problems = problems_of(text)
    assert any(p.message == 'apiVersion must be "revleak/v1"' and p.line == 4 for p in problems)


def test_duplicate_slo_names_are_refused() -> None:
    text = edited("name: deal_velocity", "name: lead_response")
    problem = only_problem(text)
    assert "'lead_response' is already used" in problem.message


def test_duplicate_slo_names_point_at_the_second_one() -> None:
    text = edited("name: deal_velocity", "name: lead_response")
    problem = only_problem(text)
    assert problem.line is not None
    assert problem.line >= line_of(text, "kind: SLO", 2)


def test_two_slos_of_one_indicator_are_refused() -> None:
    text = edited("spec: {type: crm.next_step_hygiene}", "spec: {type: crm.deal_velocity}")
    text = edited(
        "{id: NO_NEXT_STEP, impactFactor: 0.25}", "{id: STALE_OPP, halfLife: 14d}", text=text
    )
    problem = only_problem(text)
    assert "deal_velocity and next_step_hygiene both use crm.deal_velocity" in problem.message


def test_text_that_is_not_yaml_is_refused_with_its_line() -> None:
    text = "apiVersion: revleak/v1\nkind: [SLO\nspec: {\n"
    problem = only_problem(text)
    assert problem.message.startswith("not valid YAML")
    assert problem.line == 3


def test_a_tab_indented_file_is_not_yaml() -> None:
    problem = only_problem("key: value\n\tbad: tab\n")
    assert problem.message.startswith("not valid YAML")
    assert problem.line == 2


def test_plain_text_is_not_a_document() -> None:
    problems = problems_of("this is not an slo file\n")
    assert problems[0].line == 1
    assert "is not a mapping" in problems[0].message


def test_an_empty_file_defines_nothing() -> None:
    messages = [problem.message for problem in problems_of("")]
    assert any("defines no SLO" in message for message in messages)


def test_crm_slos_need_a_revenue_budget() -> None:
    without_budget = "---\n".join(
        part for part in DEFAULT_TEXT.split("---\n") if "kind: RevenueBudget" not in part
    )
    messages = [problem.message for problem in problems_of(without_budget)]
    assert any("needs a RevenueBudget document" in message for message in messages)


def test_two_revenue_budgets_are_refused() -> None:
    budget = DEFAULT_TEXT.split("---\n")[1]
    problem = only_problem(DEFAULT_TEXT + "---\n" + budget)
    assert "a second RevenueBudget" in problem.message


def test_a_second_revenue_budget_is_located() -> None:
    budget = DEFAULT_TEXT.split("---\n")[1]
    text = DEFAULT_TEXT + "---\n" + budget
    problem = only_problem(text)
    assert problem.line is not None
    assert problem.line >= line_of(text, "kind: RevenueBudget", 2)


def test_all_problems_of_a_file_are_reported_together() -> None:
    text = edited("target: 0.95", "target: 95")
    text = edited("{id: STALE_OPP, halfLife: 14d}", "{id: STALE_OPP, impactFactor: 0.5}", text=text)
    problems = problems_of(text)
    assert len(problems) == 2
    assert sorted(p.line or 0 for p in problems) == [
        line_of(text, "target: 95"),
        line_of(text, "{id: STALE_OPP"),
    ]


def test_the_error_text_reads_file_line_where_message() -> None:
    text = edited("target: 0.95", "target: 95")
    with pytest.raises(SloFileError) as caught:
        parse_catalog(text, file="slos/x.yaml")
    assert str(caught.value).startswith(
        f"slos/x.yaml:{line_of(text, 'target: 95')}: document 3 (SLO lead_response) "
        "spec.objectives[0].target: target is 0-1, not 0-100"
    )


def test_a_missing_file_is_reported_not_raised_as_os_error(tmp_path: Path) -> None:
    with pytest.raises(SloFileError, match="cannot read file"):
        load_catalog(tmp_path / "absent.yaml")


# -- warnings -------------------------------------------------------------------------------


def test_budget_shares_not_adding_up_to_one_is_a_warning_not_an_error() -> None:
    catalog = parse_catalog(edited("budgetShare: 0.10", "budgetShare: 0.20"), file="x.yaml")
    assert len(catalog.slos) == 4
    assert any("add up to 1.1, not 1" in warning for warning in catalog.warnings)


def test_a_factor_that_can_never_fire_is_a_warning_not_an_error() -> None:
    text = edited(
        "    - {severity: ticket, longWindow: 3d, shortWindow: 6h, budgetConsumed: 0.10}\n",
        "    - {severity: ticket, longWindow: 3d, shortWindow: 6h, budgetConsumed: 0.10}\n"
        "    - {severity: ticket, longWindow: 30d, shortWindow: 1d, burnFactor: 100}\n",
    )
    catalog = parse_catalog(text, file="x.yaml")
    line = line_of(text, "burnFactor: 100")
    never = [w for w in catalog.warnings if w.startswith(f"x.yaml:{line}:")]
    # 100 × (1 − 0.99) = 1: exactly the largest count burn, which is not "greater than".
    assert {w.split("SLO ")[1].split(":")[0] for w in never} == {
        "lead_response",
        "deal_velocity",
        "next_step_hygiene",
        "data_quality",
    }
    assert len(catalog.slos[0].alert_rules) == 5
