"""Sloth SLO specs into revleak SLO files.

Reads Sloth's ``prometheus/v1`` spec and its Kubernetes form (``PrometheusServiceLevel``)
and writes the same SLOs as revleak documents: the objective as target, the service and
description, and Sloth's default alerts as an ``AlertPolicy`` (page 1h/5m at 14.4 and 6h/30m
at 6, ticket 1d/2h at 3 and 3d/6h at 1 over a 30-day period).

revleak computes its SLIs itself, from OpenTelemetry spans and metric points, so Sloth's
queries cannot be carried over: each SLO gets a revleak indicator instead, given by the caller
or recognised from its name, description or queries, and the original SLO is kept beside it
as a YAML comment.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from revleak.slo.catalog import Indicator
from revleak.slo.loader import SloFileError, parse_catalog
from revleak.slo.prometheus_rules import LiteralBlockDumper
from revleak.slo.spec import Exact
from revleak.timefmt import format_duration

SUPPORTED_INDICATORS = (Indicator.AVAILABILITY, Indicator.LATENCY, Indicator.SATURATION)
DEFAULT_LATENCY_THRESHOLD_MS = 500
PERIOD = "30d"

# Sloth's default windows, as shares of a 30-day budget: 2 % in 1 h is a burn factor of 14.4.
_SLOTH_RULES = {
    "page": (("1h", "5m", 0.02), ("6h", "30m", 0.05)),
    "ticket": (("1d", "2h", 0.10), ("3d", "6h", 0.10)),
}
_POLICY_NAMES = {
    ("page", "ticket"): "sloth-page-ticket",
    ("page",): "sloth-page",
    ("ticket",): "sloth-ticket",
}
# Words (or parts of words, such as the 5.. of a status-code regex) that give an SLO away.
_CLUES = {
    Indicator.AVAILABILITY: re.compile(r"\w*(?:error|availab|5xx)\w*|5\.\.", re.IGNORECASE),
    Indicator.LATENCY: re.compile(r"\w*(?:latency|duration|slow)\w*", re.IGNORECASE),
    Indicator.SATURATION: re.compile(r"\w*(?:memory|saturation)\w*", re.IGNORECASE),
}
_BUCKET_BOUND = re.compile(r"""\ble\s*=\s*["']([^"']+)["']""")
_REVLEAK_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


class SlothImportError(ValueError):
    """A Sloth spec that cannot become revleak SLOs; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class SlothImport:
    text: str  # the revleak SLO file
    warnings: tuple[str, ...]


class _SlothModel(BaseModel):
    # Sloth itself ignores fields it does not know (plugins, status, newer options).
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class SlothEvents(_SlothModel):
    error_query: str = Field(validation_alias=AliasChoices("error_query", "errorQuery"))
    total_query: str = Field(validation_alias=AliasChoices("total_query", "totalQuery"))


class SlothRaw(_SlothModel):
    error_ratio_query: str = Field(
        validation_alias=AliasChoices("error_ratio_query", "errorRatioQuery")
    )


class SlothPlugin(_SlothModel):
    id: str
    options: dict[str, Any] = Field(default_factory=dict)


class SlothSli(_SlothModel):
    events: SlothEvents | None = None
    raw: SlothRaw | None = None
    plugin: SlothPlugin | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SlothSli:
        if sum(kind is not None for kind in (self.events, self.raw, self.plugin)) != 1:
            raise ValueError("give exactly one of events, raw or plugin")
        return self

    @property
    def queries(self) -> tuple[str, ...]:
        if self.events is not None:
            return (self.events.error_query, self.events.total_query)
        if self.raw is not None:
            return (self.raw.error_ratio_query,)
        assert self.plugin is not None
        return (self.plugin.id, *map(str, self.plugin.options.values()))


class SlothAlert(_SlothModel):
    disable: bool = False


class SlothAlerting(_SlothModel):
    page_alert: SlothAlert = Field(
        default=SlothAlert(), validation_alias=AliasChoices("page_alert", "pageAlert")
    )
    ticket_alert: SlothAlert = Field(
        default=SlothAlert(), validation_alias=AliasChoices("ticket_alert", "ticketAlert")
    )

    @property
    def severities(self) -> tuple[str, ...]:
        enabled = (("page", self.page_alert), ("ticket", self.ticket_alert))
        return tuple(severity for severity, alert in enabled if not alert.disable)


class SlothSlo(_SlothModel):
    name: str = Field(min_length=1)
    description: str = ""
    objective: Exact
    sli: SlothSli
    alerting: SlothAlerting = SlothAlerting()

    @field_validator("objective")
    @classmethod
    def _budget_left(cls, objective: Fraction) -> Fraction:
        # Sloth accepts 100 %; a revleak target is below 1, or there is no budget to burn.
        if not 0 < objective < 100:
            raise ValueError(
                f"objective {float(objective):g} % leaves no error budget: revleak needs an "
                "objective above 0 and below 100 %"
            )
        return objective


class SlothSpec(_SlothModel):
    service: str = Field(min_length=1)
    slos: list[SlothSlo] = Field(min_length=1)


class SlothPrometheusDocument(SlothSpec):
    version: Literal["prometheus/v1"]


class SlothKubernetesDocument(_SlothModel):
    api_version: Literal["sloth.slok.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["PrometheusServiceLevel"]
    spec: SlothSpec


@dataclass(frozen=True, slots=True)
class _SourceSlo:
    """One Sloth SLO, validated, with the mapping it was written as (kept as a comment)."""

    service: str
    slo: SlothSlo
    original: Mapping[str, Any]
    service_labels: Mapping[str, Any]

    @property
    def sloth_id(self) -> str:
        return f"{self.service}-{self.slo.name}"


@dataclass(frozen=True, slots=True)
class _Mapping:
    indicator: Indicator
    reason: str


def parse_indicator_option(option: str) -> tuple[str, Indicator]:
    """``NAME=TYPE`` of ``--indicator``: ``requests-latency=otel.latency`` (or ``=latency``)."""
    name, separator, kind = option.partition("=")
    if not separator or not name.strip():
        raise ValueError(f"{option!r}: write SLO=TYPE, e.g. requests-latency=otel.latency")
    kind = kind.strip()
    for indicator in SUPPORTED_INDICATORS:
        if kind in (indicator.value, indicator.value.removeprefix("otel.")):
            return name.strip(), indicator
    supported = ", ".join(indicator.value for indicator in SUPPORTED_INDICATORS)
    raise ValueError(f"{option!r}: {kind!r} is not an indicator a Sloth SLO maps to ({supported})")


def import_sloth(
    text: str,
    *,
    source: str = "<string>",
    indicators: Mapping[str, Indicator] | None = None,
) -> SlothImport:
    """The revleak SLO file for a Sloth spec (one or more YAML documents).

    ``indicators`` maps a Sloth SLO name (or its id, ``service-name``) to its revleak
    indicator; the others are recognised from their text. Raises :class:`SlothImportError`
    listing every SLO that cannot be mapped, and every problem of the spec."""
    chosen = dict(indicators or {})
    slos = _read_spec(text, source)
    problems = [
        f"--indicator {name}: no SLO of that name or id in {source}"
        for name in sorted(chosen)
        if not any(name in (each.slo.name, each.sloth_id) for each in slos)
    ]
    mappings: dict[str, _Mapping] = {}
    for each in slos:
        given = chosen.get(each.sloth_id, chosen.get(each.slo.name))
        mapping = _Mapping(given, "given with --indicator") if given else _recognise(each)
        if isinstance(mapping, str):
            problems.append(
                f"{source}: SLO {each.sloth_id} cannot be mapped: {mapping}; give --indicator "
                f"{each.slo.name}=otel.availability|otel.latency|otel.saturation"
            )
        else:
            mappings[each.sloth_id] = mapping
    if problems:
        raise SlothImportError(problems)
    warnings: list[str] = []
    result = _header(source) + "---\n".join(_documents(slos, mappings, warnings))
    try:
        catalog = parse_catalog(result, file="<imported>")
    except SloFileError as error:
        raise SlothImportError([str(problem) for problem in error.problems]) from None
    return SlothImport(result, (*warnings, *catalog.warnings))


def _documents(
    slos: Sequence[_SourceSlo], mappings: Mapping[str, _Mapping], warnings: list[str]
) -> list[str]:
    """The alert policies the SLOs use, then the SLOs."""
    names = _revleak_names(slos)
    documents: list[str] = []
    used_policies: set[tuple[str, ...]] = set()
    for each in slos:
        severities = each.slo.alerting.severities
        if not severities:
            warnings.append(
                f"SLO {each.sloth_id}: Sloth's page and ticket alerts are both disabled; "
                "revleak evaluates both"
            )
            severities = ("page", "ticket")
        used_policies.add(severities)
        mapping = mappings[each.sloth_id]
        documents.append(
            _slo_document(each, names[each.sloth_id], mapping, _POLICY_NAMES[severities], warnings)
        )
    policies = [
        _policy_document(severities) for severities in _POLICY_NAMES if severities in used_policies
    ]
    return [*policies, *documents]


def _read_spec(text: str, source: str) -> list[_SourceSlo]:
    try:
        documents = [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as error:
        raise SlothImportError([f"{source}: not valid YAML: {error}"]) from None
    if not documents:
        raise SlothImportError([f"{source}: holds no Sloth spec"])
    problems: list[str] = []
    slos: list[_SourceSlo] = []
    for index, document in enumerate(documents, start=1):
        where = f"{source}: document {index}"
        try:
            spec, raw_spec = _spec_of(document)
        except ValidationError as error:  # before ValueError, which it is a kind of
            problems.extend(
                f"{where}: {'.'.join(map(str, detail['loc']))}: "
                f"{detail['msg'].removeprefix('Value error, ')}"
                for detail in error.errors()
            )
            continue
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        labels = raw_spec.get("labels") or {}
        for slo, original in zip(spec.slos, raw_spec["slos"], strict=True):
            slos.append(_SourceSlo(spec.service, slo, original, labels))
    for sloth_id, count in Counter(each.sloth_id for each in slos).items():
        if count > 1:
            problems.append(f"{source}: SLO {sloth_id} is defined {count} times")
    if problems:
        raise SlothImportError(problems)
    return slos


def _spec_of(document: Any) -> tuple[SlothSpec, Mapping[str, Any]]:
    if not isinstance(document, dict):
        raise ValueError("is not a mapping: a Sloth spec has version, service and slos")
    if document.get("kind") == "PrometheusServiceLevel":
        spec = SlothKubernetesDocument.model_validate(document).spec
        return spec, document["spec"]
    if "version" in document:
        return SlothPrometheusDocument.model_validate(document), document
    if str(document.get("apiVersion", "")).startswith("openslo/"):
        raise ValueError("is an OpenSLO document: import Sloth's own prometheus/v1 spec")
    raise ValueError(
        'is not a Sloth spec (version: "prometheus/v1", or kind: PrometheusServiceLevel)'
    )


def _recognise(each: _SourceSlo) -> _Mapping | str:
    """The indicator that the first of name, description and queries singles out, or why
    none does."""
    ambiguous: list[str] = []
    for mentions, texts in (
        ("its name mentions", (each.slo.name,)),
        ("its description mentions", (each.slo.description,)),
        ("its queries mention", each.slo.sli.queries),
    ):
        found = _clues_in("\n".join(texts))
        if len(found) == 1:
            ((indicator, word),) = found.items()
            return _Mapping(indicator, f"{mentions} {word!r}")
        if found:
            ambiguous.append(f"{mentions} {' and '.join(map(repr, found.values()))}")
    return (
        "; ".join(ambiguous)
        if ambiguous
        else "nothing in its name, description or queries says whether it measures "
        "availability, latency or saturation"
    )


def _clues_in(text: str) -> dict[Indicator, str]:
    """The indicators whose clue words the text contains, each with the first one found."""
    found: dict[Indicator, str] = {}
    for indicator, clue in _CLUES.items():
        match = clue.search(text)
        if match is not None:
            found[indicator] = match.group(0)
    return found


def _revleak_names(slos: Sequence[_SourceSlo]) -> dict[str, str]:
    """A revleak name per Sloth id: the SLO's name, or service and name where two services
    share a name."""
    plain = Counter(_revleak_name(each.slo.name) for each in slos)
    return {
        each.sloth_id: (
            _revleak_name(each.slo.name)
            if plain[_revleak_name(each.slo.name)] == 1
            else _revleak_name(each.sloth_id)
        )
        for each in slos
    }


def _revleak_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9_\-]+", "-", text.lower()).strip("-")
    return name if _REVLEAK_NAME.match(name) else f"slo-{name}"


def _latency_threshold(each: _SourceSlo, warnings: list[str]) -> str:
    bounds = list(dict.fromkeys(_BUCKET_BOUND.findall("\n".join(each.slo.sli.queries))))
    for bound in bounds:
        try:
            milliseconds = Decimal(bound) * 1000
        except InvalidOperation:
            continue  # +Inf and the like say nothing about the threshold
        if not milliseconds.is_finite() or milliseconds <= 0:
            continue
        if len(bounds) > 1:
            warnings.append(
                f"SLO {each.sloth_id}: its queries name the buckets {', '.join(bounds)}; "
                f"the threshold is the first, {bound} s"
            )
        return format_duration(max(1, int(milliseconds.to_integral_value())))
    warnings.append(
        f'SLO {each.sloth_id}: no le="…" bucket in its queries, so its latency threshold is '
        f"revleak's default {format_duration(DEFAULT_LATENCY_THRESHOLD_MS)}: check it"
    )
    return format_duration(DEFAULT_LATENCY_THRESHOLD_MS)


def _slo_document(
    each: _SourceSlo, name: str, mapping: _Mapping, policy: str, warnings: list[str]
) -> str:
    target = Fraction(each.slo.objective) / 100
    extension: dict[str, Any] = {}
    if mapping.indicator is Indicator.LATENCY:
        extension["threshold"] = _latency_threshold(each, warnings)
    # The Sloth SLO is about one service: watch that service's spans and metric points only.
    extension["telemetry"] = {"services": re.escape(each.service).replace("\\-", "-")}
    spec: dict[str, Any] = {"description": each.slo.description} if each.slo.description else {}
    spec |= {
        "service": each.service,
        "indicator": {"metadata": {"name": name}, "spec": {"type": mapping.indicator.value}},
        "timeWindow": [{"duration": PERIOD, "isRolling": True}],
        "budgetingMethod": "Occurrences",
        "objectives": [
            {"displayName": f"{_percent(each.slo.objective)} %", "target": float(target)}
        ],
        "alertPolicies": [policy],
        "revleak": extension,
    }
    document = {
        "apiVersion": "revleak/v1",
        "kind": "SLO",
        "metadata": {"name": name, "displayName": f"{each.service} {each.slo.name}"},
        "spec": spec,
    }
    original: dict[str, Any] = {"service": each.service}
    if each.service_labels:
        original["labels"] = dict(each.service_labels)
    original["slos"] = [dict(each.original)]
    comment = _comment(
        f"Sloth SLO {each.sloth_id}: {mapping.indicator.value}, {mapping.reason}.\n"
        "revleak computes the SLI itself; the Sloth SLO as it was written:\n"
        + _indented(_dump(original))
    )
    return comment + _dump(document, flow_leaves=True)


def _policy_document(severities: tuple[str, ...]) -> str:
    rules = [
        {
            "severity": severity,
            "longWindow": long_window,
            "shortWindow": short_window,
            "budgetConsumed": budget,
        }
        for severity in severities
        for long_window, short_window, budget in _SLOTH_RULES[severity]
    ]
    document = {
        "apiVersion": "revleak/v1",
        "kind": "AlertPolicy",
        "metadata": {
            "name": _POLICY_NAMES[severities],
            "displayName": f"Sloth's default {' and '.join(severities)} alerts",
        },
        "spec": {"rules": rules},
    }
    return _comment(
        "Sloth's default windows; the burn factor of a rule is budgetConsumed × 30d ÷ longWindow\n"
        "(14.4, 6, 3 and 1).\n"
    ) + _dump(document, flow_leaves=True)


def _header(source: str) -> str:
    return _comment(
        f"revleak SLOs imported by `revleak slo import-sloth` from the Sloth spec\n{source}.\n"
        "revleak computes every SLI itself from OpenTelemetry spans and metric points\n"
        "(docs/telemetry.md); Sloth's queries stay beside each SLO as comments.\n"
        "Check a change with:  revleak slo validate FILE\n"
    )


def _percent(objective: Fraction) -> str:
    return str(objective.numerator) if objective.denominator == 1 else repr(float(objective))


def _indented(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def _dump(data: Any, *, flow_leaves: bool = False) -> str:
    return yaml.dump(
        data,
        Dumper=LiteralBlockDumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=None if flow_leaves else False,
    )
