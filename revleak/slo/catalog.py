"""The compiled, validated SLO definitions the engine runs on.

These are plain immutable values derived from the YAML documents in
:mod:`revleak.slo.spec`; numbers that take part in comparisons are kept as
:class:`fractions.Fraction` so that thresholds such as ``0.999`` stay exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction

from revleak.timefmt import HOUR_MS, format_duration

PICOS_PER_USD = 10**12


class Indicator(StrEnum):
    """The SLI generators that docs/semantics.md §2 defines: CRM and telemetry."""

    LEAD_RESPONSE = "crm.lead_response"
    DEAL_VELOCITY = "crm.deal_velocity"
    NEXT_STEP_HYGIENE = "crm.next_step_hygiene"
    DATA_QUALITY = "crm.data_quality"
    AVAILABILITY = "otel.availability"
    LATENCY = "otel.latency"
    SATURATION = "otel.saturation"
    CONVERSION = "otel.conversion"

    @property
    def is_telemetry(self) -> bool:
        return self.value.startswith("otel.")


class Rule(StrEnum):
    SLA_BREACH_UNTOUCHED = "SLA_BREACH_UNTOUCHED"
    STALE_OPP = "STALE_OPP"
    NO_NEXT_STEP = "NO_NEXT_STEP"
    UNASSIGNED_OWNER = "UNASSIGNED_OWNER"
    DUPLICATE_SUSPECT = "DUPLICATE_SUSPECT"
    ROUTING_MISMATCH = "ROUTING_MISMATCH"


# Which leak rules each indicator can raise, and which of them it must configure.
INDICATOR_RULES: dict[Indicator, tuple[Rule, ...]] = {
    Indicator.LEAD_RESPONSE: (Rule.SLA_BREACH_UNTOUCHED,),
    Indicator.DEAL_VELOCITY: (Rule.STALE_OPP,),
    Indicator.NEXT_STEP_HYGIENE: (Rule.NO_NEXT_STEP,),
    Indicator.DATA_QUALITY: (
        Rule.UNASSIGNED_OWNER,
        Rule.DUPLICATE_SUSPECT,
        Rule.ROUTING_MISMATCH,
    ),
    Indicator.AVAILABILITY: (),
    Indicator.LATENCY: (),
    Indicator.SATURATION: (),
    Indicator.CONVERSION: (),
}
TIMED_INDICATORS = frozenset(
    {Indicator.LEAD_RESPONSE, Indicator.DEAL_VELOCITY, Indicator.NEXT_STEP_HYGIENE}
)


class BurnKind(StrEnum):
    COUNT = "count"
    USD = "usd"


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One row of the multi-window, multi-burn-rate table."""

    severity: str
    long_ms: int
    short_ms: int
    factor: Fraction

    @property
    def long_window(self) -> str:
        return format_duration(self.long_ms)

    @property
    def short_window(self) -> str:
        return format_duration(self.short_ms)


@dataclass(frozen=True, slots=True)
class RuleImpact:
    """Dollar impact of a leak: ``value × factor``, or the stage-decay model
    ``value × p(stage) × (1 − 2^(−d / half_life))`` when ``half_life_days`` is set."""

    rule: Rule
    factor: Fraction = Fraction(1)
    half_life_days: Fraction | None = None


@dataclass(frozen=True, slots=True)
class SpanMatcher:
    """Spans whose service and name match these patterns (``None`` matches any)."""

    service: re.Pattern[str] | None = None
    name: re.Pattern[str] | None = None

    def matches(self, service: str, name: str) -> bool:
        return (self.service is None or self.service.fullmatch(service) is not None) and (
            self.name is None or self.name.search(name) is not None
        )


@dataclass(frozen=True, slots=True)
class LatencyOverride:
    matcher: SpanMatcher
    threshold_ms: int


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """How a telemetry SLO reads spans and metric points (docs/semantics.md §2)."""

    services: re.Pattern[str] | None = None  # the services it watches; None: all
    latency_overrides: tuple[LatencyOverride, ...] = ()
    saturation_ratio: Fraction = Fraction(9, 10)
    usage_metric: str = "process.memory.usage"
    limit_metric: str = "process.memory.limit"
    oom_metric: str = "process.oom_kills"
    conversion_start: SpanMatcher = SpanMatcher()
    conversion_done: SpanMatcher = SpanMatcher()
    conversion_objective: Fraction = Fraction(4, 5)
    baseline_window_ms: int = HOUR_MS
    initial_baseline: Fraction | None = None
    min_baseline_starts: int = 50
    analysis_baseline_ms: int = HOUR_MS

    def watches(self, service: str) -> bool:
        return self.services is None or self.services.fullmatch(service) is not None


@dataclass(frozen=True, slots=True)
class Slo:
    name: str
    display_name: str
    description: str
    service: str
    indicator: Indicator
    target: Fraction
    period_ms: int
    alert_rules: tuple[AlertRule, ...]
    rules: tuple[RuleImpact, ...]
    threshold_ms: int | None = None
    budget_share: Fraction | None = None
    min_events: int = 0
    telemetry: TelemetrySettings | None = None

    @property
    def is_revenue(self) -> bool:
        return self.budget_share is not None

    @property
    def telemetry_settings(self) -> TelemetrySettings:
        """How this telemetry SLO reads spans and points (an error for a CRM SLO)."""
        if self.telemetry is None:
            raise ValueError(f"{self.name} is not a telemetry SLO")
        return self.telemetry

    def latency_threshold_ms(self, service: str, operation: str) -> int:
        """The latency threshold of a server span: the first override that matches, else
        the SLO's threshold."""
        assert self.threshold_ms is not None
        if self.telemetry is not None:
            for override in self.telemetry.latency_overrides:
                if override.matcher.matches(service, operation):
                    return override.threshold_ms
        return self.threshold_ms

    def impact(self, rule: Rule) -> RuleImpact:
        for candidate in self.rules:
            if candidate.rule is rule:
                return candidate
        raise KeyError(f"SLO {self.name} does not configure rule {rule}")

    def has_rule(self, rule: Rule) -> bool:
        return any(candidate.rule is rule for candidate in self.rules)


@dataclass(frozen=True, slots=True)
class RevenueModel:
    monthly_budget_usd: Fraction
    average_deal_size_usd: Fraction
    win_probability: dict[str, Fraction]
    unknown_stage_probability: Fraction
    closed_stages: frozenset[str]
    free_mail_domains: frozenset[str]

    def probability(self, stage: str) -> Fraction:
        return self.win_probability.get(stage.casefold(), self.unknown_stage_probability)

    def is_closed(self, stage: str) -> bool:
        return stage.casefold() in self.closed_stages


@dataclass(frozen=True, slots=True)
class SloCatalog:
    """Everything a flow needs: the SLOs, in file order, and the revenue model."""

    slos: tuple[Slo, ...]
    revenue: RevenueModel
    warnings: tuple[str, ...] = field(default=())

    def by_name(self, name: str) -> Slo:
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(name)

    def for_indicator(self, indicator: Indicator) -> Slo | None:
        for slo in self.slos:
            if slo.indicator is indicator:
                return slo
        return None

    def budget_usd(self, slo: Slo) -> Fraction:
        if slo.budget_share is None:
            raise ValueError(f"SLO {slo.name} has no revenue budget")
        return self.revenue.monthly_budget_usd * slo.budget_share

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(slo.name for slo in self.slos)

    @property
    def telemetry_slos(self) -> tuple[Slo, ...]:
        return tuple(slo for slo in self.slos if slo.indicator.is_telemetry)

    @property
    def crm_slos(self) -> tuple[Slo, ...]:
        return tuple(slo for slo in self.slos if not slo.indicator.is_telemetry)
