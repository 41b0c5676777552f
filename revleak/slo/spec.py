"""The YAML shape of SLO files (OpenSLO-shaped documents, revleak extensions).

A file holds several YAML documents, each with ``apiVersion``, ``kind``,
``metadata`` and ``spec``: one ``AlertPolicy``, one ``RevenueBudget`` and one
``SLO`` per objective. The models here only describe and check that shape;
:mod:`revleak.slo.loader` turns them into :mod:`revleak.slo.catalog` values.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from revleak.slo.catalog import Indicator, Rule
from revleak.timefmt import parse_duration


def _exact(value: Any) -> Fraction:
    """Numbers from YAML become exact fractions of their decimal text (0.1 is 1/10)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int | float | str | Decimal):
        try:
            return Fraction(Decimal(str(value).strip()))
        except (InvalidOperation, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _duration(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 5m, 1h, 7d")
    return parse_duration(value)


Exact = Annotated[Fraction, BeforeValidator(_exact), PlainSerializer(str)]
Duration = Annotated[int, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Metadata(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]*$")
    display_name: str | None = None


class PolicyRuleSpec(_Model):
    severity: Literal["page", "ticket"]
    long_window: Duration
    short_window: Duration
    burn_factor: Exact | None = None
    budget_consumed: Exact | None = Field(
        default=None,
        description="Share of the period's error budget this rule allows to burn in its long "
        "window; the burn factor is budgetConsumed × period ÷ longWindow (Sloth's way).",
    )

    @model_validator(mode="after")
    def _one_factor(self) -> PolicyRuleSpec:
        if (self.burn_factor is None) == (self.budget_consumed is None):
            raise ValueError("give exactly one of burnFactor or budgetConsumed")
        if self.short_window >= self.long_window:
            raise ValueError("shortWindow must be shorter than longWindow")
        if self.burn_factor is not None and self.burn_factor <= 0:
            raise ValueError("burnFactor must be greater than 0")
        if self.budget_consumed is not None and not 0 < self.budget_consumed <= 1:
            raise ValueError("budgetConsumed is a share of the budget between 0 and 1")
        return self


class AlertPolicySpec(_Model):
    rules: list[PolicyRuleSpec] = Field(min_length=1)


class RevenueBudgetSpec(_Model):
    monthly_budget_usd: Exact = Field(default=Fraction(50_000))
    average_deal_size_usd: Exact = Field(default=Fraction(15_000))
    win_probability: dict[str, Exact]
    unknown_stage_probability: Exact | None = Field(
        default=None, description="Win probability of a stage not listed; default: that of New."
    )
    closed_stages: list[str] = Field(min_length=1)
    free_mail_domains: list[str] = Field(default_factory=list)

    @field_validator("monthly_budget_usd", "average_deal_size_usd")
    @classmethod
    def _positive(cls, value: Fraction) -> Fraction:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("win_probability")
    @classmethod
    def _probabilities(cls, value: dict[str, Fraction]) -> dict[str, Fraction]:
        for stage, probability in value.items():
            if not 0 <= probability <= 1:
                raise ValueError(
                    f"win probability of {stage!r} is {float(probability)}: "
                    "a probability is 0-1, not 0-100"
                )
        if "new" not in {stage.casefold() for stage in value}:
            raise ValueError("must include the stage New (records without a stage are New)")
        return value


class RuleSpec(_Model):
    id: Rule
    impact_factor: Exact | None = Field(
        default=None, description="Dollar impact = deal value × impactFactor."
    )
    half_life: Duration | None = Field(
        default=None,
        description="Stage-decay impact: value × win probability × (1 − 2^(−days/halfLife)).",
    )

    @model_validator(mode="after")
    def _one_model(self) -> RuleSpec:
        if (self.impact_factor is None) == (self.half_life is None):
            raise ValueError("give exactly one of impactFactor or halfLife")
        if self.impact_factor is not None and self.impact_factor < 0:
            raise ValueError("impactFactor must not be negative")
        return self


def _pattern(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expected a regular expression")
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{value!r} is not a regular expression: {error}") from None
    return value


Pattern = Annotated[str | None, BeforeValidator(_pattern)]


class SpanMatcherSpec(_Model):
    service: Pattern = Field(default=None, description="Service name (whole-name regex).")
    name: Pattern = Field(default=None, description="Span name (regex found anywhere in it).")


class LatencyOverrideSpec(SpanMatcherSpec):
    threshold: Duration


class TelemetryExtension(_Model):
    """How a telemetry SLO reads spans and metric points (see docs/telemetry.md)."""

    services: Pattern = Field(default=None, description="Services watched (regex); all if unset.")
    overrides: list[LatencyOverrideSpec] = Field(
        default_factory=list, description="Latency thresholds per service/operation."
    )
    ratio: Exact = Field(default=Fraction(9, 10), description="Memory ÷ limit above this is bad.")
    usage_metric: str = "process.memory.usage"
    limit_metric: str = "process.memory.limit"
    oom_metric: str = "process.oom_kills"
    start: SpanMatcherSpec | None = Field(default=None, description="Spans that start the CUJ.")
    done: SpanMatcherSpec | None = Field(default=None, description="Spans that complete it.")
    objective: Exact = Field(
        default=Fraction(4, 5), description="A minute is bad below objective × baseline."
    )
    baseline_window: Duration = Field(default=3_600_000)
    initial_baseline: Exact | None = None
    min_baseline_starts: int = Field(default=50, ge=1)
    analysis_baseline: Duration = Field(
        default=3_600_000,
        description="Traces before the firing window that root-cause analysis compares it with.",
    )

    @field_validator("ratio", "objective", "initial_baseline")
    @classmethod
    def _share_of_one(cls, value: Fraction | None) -> Fraction | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError("must be between 0 and 1")
        return value


class RevleakExtension(_Model):
    threshold: Duration | None = None
    rules: list[RuleSpec] = Field(default_factory=list)
    budget_share: Exact | None = None
    min_events: int = Field(default=0, ge=0)
    telemetry: TelemetryExtension | None = None

    @field_validator("budget_share")
    @classmethod
    def _share(cls, value: Fraction | None) -> Fraction | None:
        if value is not None and not 0 < value <= 1:
            hint = " (a share is 0-1, not 0-100)" if value > 1 else ""
            raise ValueError(f"budgetShare must be between 0 and 1{hint}")
        return value


class IndicatorSpecBody(_Model):
    type: Indicator


class IndicatorSpec(_Model):
    metadata: Metadata
    spec: IndicatorSpecBody


class TimeWindowSpec(_Model):
    duration: Duration
    is_rolling: Literal[True] = True


class ObjectiveSpec(_Model):
    display_name: str | None = None
    target: Exact

    @field_validator("target")
    @classmethod
    def _target(cls, value: Fraction) -> Fraction:
        if 1 < value <= 100:
            raise ValueError(f"target is 0-1, not 0-100: write {float(value) / 100:g}")
        if not 0 < value < 1:
            raise ValueError("target must be between 0 and 1 (exclusive)")
        return value


class SloSpecBody(_Model):
    description: str = ""
    service: str
    indicator: IndicatorSpec
    time_window: list[TimeWindowSpec] = Field(min_length=1, max_length=1)
    budgeting_method: Literal["Occurrences"] = "Occurrences"
    objectives: list[ObjectiveSpec] = Field(min_length=1, max_length=1)
    alert_policies: list[str] = Field(min_length=1, max_length=1)
    revleak: RevleakExtension


class _Document(_Model):
    api_version: Literal["revleak/v1"]
    metadata: Metadata


class AlertPolicyDocument(_Document):
    kind: Literal["AlertPolicy"]
    spec: AlertPolicySpec


class RevenueBudgetDocument(_Document):
    kind: Literal["RevenueBudget"]
    spec: RevenueBudgetSpec


class SloDocument(_Document):
    kind: Literal["SLO"]
    spec: SloSpecBody


Document = Annotated[
    AlertPolicyDocument | RevenueBudgetDocument | SloDocument, Field(discriminator="kind")
]
