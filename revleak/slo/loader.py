"""Load SLO files into a :class:`~revleak.slo.catalog.SloCatalog`.

Every problem is reported with the file, the line, the path inside the
document and a sentence meant for a person; all problems of a file are
reported together, and warnings are kept apart from errors.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from revleak.slo.catalog import (
    INDICATOR_RULES,
    TIMED_INDICATORS,
    AlertRule,
    Indicator,
    LatencyOverride,
    RevenueModel,
    Rule,
    RuleImpact,
    Slo,
    SloCatalog,
    SpanMatcher,
    TelemetrySettings,
)
from revleak.slo.spec import (
    AlertPolicyDocument,
    Document,
    RevenueBudgetDocument,
    SloDocument,
    SpanMatcherSpec,
    TelemetryExtension,
)
from revleak.timefmt import DAY_MS, format_duration
from revleak.yamlpaths import dotted_path, locate

_DOCUMENT = TypeAdapter[AlertPolicyDocument | RevenueBudgetDocument | SloDocument](Document)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        position = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{position}: {self.where}: {self.message}"
            if self.where
            else f"{position}: {self.message}"
        )


class SloFileError(ValueError):
    """An SLO file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def load_catalog(path: str | Path) -> SloCatalog:
    """Read and validate one SLO file; raise :class:`SloFileError` on any error."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SloFileError(
            [Problem(file, None, "", f"cannot read file: {error.strerror}")]
        ) from None
    return parse_catalog(text, file=file)


def parse_catalog(text: str, *, file: str = "<string>") -> SloCatalog:
    try:
        nodes = [
            node for node in yaml.compose_all(text, Loader=yaml.SafeLoader) if node is not None
        ]
        raw_documents = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        raise SloFileError([Problem(file, line, "", f"not valid YAML: {reason}")]) from None
    builder = _CatalogBuilder(file)
    for index, (raw, node) in enumerate(zip(raw_documents, nodes, strict=True), start=1):
        builder.add(index, raw, node)
    return builder.build()


class _CatalogBuilder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.policies: dict[str, tuple[AlertPolicyDocument, yaml.Node]] = {}
        self.budgets: list[tuple[RevenueBudgetDocument, yaml.Node]] = []
        self.slos: list[tuple[SloDocument, yaml.Node]] = []
        self._labels: dict[int, str] = {}  # id(document node) → "document 3 (SLO name)"
        # Documents already reported invalid, so that nothing is also reported missing.
        self._invalid: set[tuple[str, str]] = set()

    def add(self, index: int, raw: Any, node: yaml.Node) -> None:
        if not isinstance(raw, dict):
            self._error(node, (), f"document {index} is not a mapping of apiVersion, kind, ...")
            return
        label = f"document {index}" + (
            f" ({raw.get('kind')} {_name_of(raw)})" if raw.get("kind") else ""
        )
        self._labels[id(node)] = label
        try:
            document = _DOCUMENT.validate_python(raw)
        except ValidationError as error:
            self._invalid.add((str(raw.get("kind")), _name_of(raw)))
            for detail in error.errors():
                location = tuple(detail["loc"])
                if location and location[0] == raw.get("kind"):
                    location = location[1:]
                self.errors.append(
                    Problem(
                        self.file,
                        _line_of(node, location),
                        f"{label} {dotted_path(location)}".strip(),
                        _message(detail),
                    )
                )
            return
        if isinstance(document, AlertPolicyDocument):
            self.policies[document.metadata.name] = (document, node)
        elif isinstance(document, RevenueBudgetDocument):
            self.budgets.append((document, node))
        else:
            self.slos.append((document, node))

    def build(self) -> SloCatalog:
        revenue = self._revenue()
        slos = [slo for slo in (self._slo(document, node) for document, node in self.slos) if slo]
        self._cross_checks(slos)
        if self.errors:
            raise SloFileError(self.errors)
        assert revenue is not None
        return SloCatalog(
            slos=tuple(slos),
            revenue=revenue,
            warnings=tuple(str(warning) for warning in self.warnings),
        )

    def _revenue(self) -> RevenueModel | None:
        if len(self.budgets) > 1:
            for _, node in self.budgets[1:]:
                self._error(node, ("kind",), "a second RevenueBudget document: a file has one")
            return None
        if not self.budgets:
            if not self._has_crm_slo():
                return _NO_REVENUE
            if not any(kind == "RevenueBudget" for kind, _ in self._invalid):
                self._error(None, (), "needs a RevenueBudget document (none found)")
            return None
        spec = self.budgets[0][0].spec
        probabilities = {stage.strip().casefold(): p for stage, p in spec.win_probability.items()}
        return RevenueModel(
            monthly_budget_usd=spec.monthly_budget_usd,
            average_deal_size_usd=spec.average_deal_size_usd,
            win_probability=probabilities,
            unknown_stage_probability=(
                spec.unknown_stage_probability
                if spec.unknown_stage_probability is not None
                else probabilities["new"]
            ),
            closed_stages=frozenset(stage.strip().casefold() for stage in spec.closed_stages),
            free_mail_domains=frozenset(d.strip().casefold() for d in spec.free_mail_domains),
        )

    def _has_crm_slo(self) -> bool:
        return any(not document.spec.indicator.spec.type.is_telemetry for document, _ in self.slos)

    def _slo(self, document: SloDocument, node: yaml.Node) -> Slo | None:
        spec = document.spec
        name = document.metadata.name
        extension = spec.revleak
        indicator = spec.indicator.spec.type
        period = spec.time_window[0].duration
        problems_before = len(self.errors)

        policy_name = spec.alert_policies[0]
        policy = self.policies.get(policy_name)
        if policy is None and ("AlertPolicy", policy_name) not in self._invalid:
            known = ", ".join(sorted(self.policies)) or "none"
            self._error(
                node,
                ("spec", "alertPolicies", 0),
                f"no AlertPolicy named {policy_name!r} in this file (known: {known})",
            )

        allowed = INDICATOR_RULES[indicator]
        rule_ids = [rule.id for rule in extension.rules]
        for position, rule in enumerate(extension.rules):
            where = ("spec", "revleak", "rules", position)
            if rule.id not in allowed:
                self._error(
                    node,
                    (*where, "id"),
                    f"{rule.id} is not a rule of {indicator.value}; it raises {', '.join(allowed)}",
                )
            elif rule.id is Rule.STALE_OPP and rule.half_life is None:
                self._error(
                    node,
                    where,
                    "STALE_OPP decays with the days since the last "
                    "touch: give halfLife (e.g. 14d), not impactFactor",
                )
            elif rule.id is not Rule.STALE_OPP and rule.half_life is not None:
                self._error(node, where, f"{rule.id} has a fixed impact: give impactFactor")
        for rule_id, count in Counter(rule_ids).items():
            if count > 1:
                self._error(
                    node, ("spec", "revleak", "rules"), f"{rule_id} is listed {count} times"
                )
        if indicator.is_telemetry:
            self._check_telemetry(document, node)
        elif extension.telemetry is not None:
            self._error(
                node,
                ("spec", "revleak", "telemetry"),
                f"{indicator.value} reads CRM changes and takes no telemetry settings",
            )
        elif not extension.rules:
            self._error(
                node, ("spec", "revleak", "rules"), f"{indicator.value} needs at least one rule"
            )
        if indicator in TIMED_INDICATORS:
            if extension.threshold is None:
                self._error(
                    node,
                    ("spec", "revleak"),
                    f"{indicator.value} needs a threshold (how long before it is a leak)",
                )
            if allowed[0] not in rule_ids:
                self._error(node, ("spec", "revleak", "rules"), f"must configure {allowed[0]}")
        elif extension.threshold is not None and indicator is not Indicator.LATENCY:
            self._error(
                node,
                ("spec", "revleak", "threshold"),
                f"{indicator.value} takes no threshold",
            )

        alert_rules: list[AlertRule] = []
        if policy is not None:
            for position, rule_spec in enumerate(policy[0].spec.rules):
                if rule_spec.long_window > period:
                    self._error(
                        policy[1],
                        ("spec", "rules", position, "longWindow"),
                        f"window {format_duration(rule_spec.long_window)} is longer than "
                        f"the period {format_duration(period)} of SLO {name}",
                    )
                factor = (
                    rule_spec.burn_factor
                    if rule_spec.burn_factor is not None
                    else rule_spec.budget_consumed * Fraction(period, rule_spec.long_window)  # type: ignore[operator]
                )
                alert_rules.append(
                    AlertRule(
                        rule_spec.severity, rule_spec.long_window, rule_spec.short_window, factor
                    )
                )
                target = spec.objectives[0].target
                if factor * (1 - target) >= 1:
                    self._warn(
                        policy[1],
                        ("spec", "rules", position),
                        f"SLO {name}: burn factor {float(factor):g} can never be exceeded "
                        f"with target {float(target):g} (the count burn rate is at most "
                        f"{float(1 / (1 - target)):g}); this rule never fires for count",
                    )
        if len(self.errors) > problems_before:
            return None
        return Slo(
            name=name,
            display_name=document.metadata.display_name or name,
            description=spec.description,
            service=spec.service,
            indicator=indicator,
            target=spec.objectives[0].target,
            period_ms=period,
            alert_rules=tuple(alert_rules),
            rules=tuple(
                RuleImpact(
                    rule=rule.id,
                    factor=rule.impact_factor if rule.impact_factor is not None else Fraction(1),
                    half_life_days=(
                        Fraction(rule.half_life, DAY_MS) if rule.half_life is not None else None
                    ),
                )
                for rule in extension.rules
            ),
            threshold_ms=extension.threshold,
            budget_share=extension.budget_share,
            min_events=extension.min_events,
            telemetry=(
                _telemetry_settings(extension.telemetry or TelemetryExtension())
                if indicator.is_telemetry
                else None
            ),
        )

    def _check_telemetry(self, document: SloDocument, node: yaml.Node) -> None:
        indicator = document.spec.indicator.spec.type
        extension = document.spec.revleak
        where = ("spec", "revleak")
        if extension.rules:
            self._error(node, (*where, "rules"), f"{indicator.value} raises no CRM leak rules")
        if extension.budget_share is not None:
            self._error(
                node, (*where, "budgetShare"), f"{indicator.value} has no revenue budget share"
            )
        if indicator is Indicator.LATENCY and extension.threshold is None:
            self._error(node, where, "otel.latency needs a threshold (e.g. 500ms)")
        telemetry = extension.telemetry
        if indicator is Indicator.CONVERSION and (
            telemetry is None or telemetry.start is None or telemetry.done is None
        ):
            self._error(
                node,
                (*where, "telemetry"),
                "otel.conversion needs telemetry.start and telemetry.done (the spans that "
                "start and complete the journey)",
            )
        if telemetry is not None and telemetry.overrides and indicator is not Indicator.LATENCY:
            self._error(
                node, (*where, "telemetry", "overrides"), "only otel.latency takes overrides"
            )

    def _cross_checks(self, slos: list[Slo]) -> None:
        first: dict[str, yaml.Node] = {}
        for document, node in self.slos:
            name = document.metadata.name
            if name in first:
                self._error(
                    node,
                    ("metadata", "name"),
                    f"SLO name {name!r} is already used (line {first[name].start_mark.line + 1})",
                )
            else:
                first[name] = node
        seen: dict[Indicator, str] = {}
        for slo in slos:
            if slo.indicator.is_telemetry:
                continue  # several telemetry SLOs may watch different services
            if slo.indicator in seen:
                self._error(
                    None,
                    (),
                    f"SLOs {seen[slo.indicator]} and {slo.name} both use "
                    f"{slo.indicator.value}; one SLO per indicator",
                )
            seen[slo.indicator] = slo.name
        if not self.slos:
            self._error(None, (), "defines no SLO")
        shares = [slo.budget_share for slo in slos if slo.budget_share is not None]
        if shares and sum(shares) != 1:
            self._warn(
                None,
                (),
                f"budget shares of the revenue SLOs add up to "
                f"{float(sum(shares)):g}, not 1: consumption is still measured "
                "against the whole monthly budget",
            )

    def _error(self, node: yaml.Node | None, path: tuple[Any, ...], message: str) -> None:
        self.errors.append(self._problem(node, path, message))

    def _warn(self, node: yaml.Node | None, path: tuple[Any, ...], message: str) -> None:
        self.warnings.append(self._problem(node, path, message))

    def _problem(self, node: yaml.Node | None, path: tuple[Any, ...], message: str) -> Problem:
        if node is None:
            return Problem(self.file, None, dotted_path(path), message)
        where = f"{self._labels.get(id(node), '')} {dotted_path(path)}".strip()
        return Problem(self.file, _line_of(node, path), where, message)


# A telemetry-only file has no revenue budget: consumption stays 0.
_NO_REVENUE = RevenueModel(
    monthly_budget_usd=Fraction(50_000),
    average_deal_size_usd=Fraction(15_000),
    win_probability={"new": Fraction(1, 10)},
    unknown_stage_probability=Fraction(1, 10),
    closed_stages=frozenset(),
    free_mail_domains=frozenset(),
)


def _telemetry_settings(spec: TelemetryExtension) -> TelemetrySettings:
    return TelemetrySettings(
        services=_compiled(spec.services),
        latency_overrides=tuple(
            LatencyOverride(_matcher(override), override.threshold) for override in spec.overrides
        ),
        saturation_ratio=spec.ratio,
        usage_metric=spec.usage_metric,
        limit_metric=spec.limit_metric,
        oom_metric=spec.oom_metric,
        conversion_start=_matcher(spec.start),
        conversion_done=_matcher(spec.done),
        conversion_objective=spec.objective,
        baseline_window_ms=spec.baseline_window,
        initial_baseline=spec.initial_baseline,
        min_baseline_starts=spec.min_baseline_starts,
        analysis_baseline_ms=spec.analysis_baseline,
    )


def _matcher(spec: SpanMatcherSpec | None) -> SpanMatcher:
    if spec is None:
        return SpanMatcher()
    return SpanMatcher(service=_compiled(spec.service), name=_compiled(spec.name))


def _compiled(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern is not None else None


def _name_of(raw: dict[str, Any]) -> str:
    metadata = raw.get("metadata")
    return str(metadata.get("name", "?")) if isinstance(metadata, dict) else "?"


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    return locate(node, path)[0] if node is not None else None


def _message(detail: Any) -> str:
    kind = detail["type"]
    message = str(detail["msg"])
    if kind == "extra_forbidden":
        return "unknown field (check its spelling and indentation)"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and detail["loc"] and detail["loc"][-1] == "apiVersion":
        return 'apiVersion must be "revleak/v1"'
    if kind == "union_tag_invalid":
        return "kind must be one of AlertPolicy, RevenueBudget, SLO"
    return message.removeprefix("Value error, ")
