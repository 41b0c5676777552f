"""Why a telemetry SLO pages: root-cause candidates from the traces of the firing window,
compared with a baseline window, ranked best first. Deterministic and explainable: the same
spans and points in any order give the same candidates.

The caller says which traces are *bad* for the SLO (:func:`errors_predicate`,
:func:`latency_predicate`, :func:`conversion_predicate`); ``B`` is the number of bad traces
in the window. Signals:

1. **Error origin** and 2. **critical-path self-time** localise the bad traces to operations
   (``E``, ``T`` and strength ``L = max(E, T)``: :mod:`revleak.telemetry.traces`); a
   service's ``L`` is its best operation's.
3. **Attribute separation** of a value ``v`` of key ``k`` on service ``s``: ``a`` bad traces
   of the ``n`` in the window carry it; the other traces through ``s``, window and baseline
   together, are bad at rate ``r``. ``S = (a − n·r) / B``: the share of the bad traces that
   ``v`` explains beyond the rate without it. A value on at most 5 % of the baseline's
   traces through ``s`` is *new*. For a version, flag or deployment value,
   ``previous_value`` is the most common other value of ``k`` on ``s`` in the baseline (in
   the window when the baseline has no trace through ``s``): what a rollback restores.
4. **Saturation** (``metrics``, the window's points): per service, the worst instance's peak
   memory usage ÷ limit, and the OOM kills (:class:`SaturationMetrics`). ``M = 1`` with any
   OOM kill, else ``(peak ratio − 0.8) / 0.15`` clamped to 0..1. The proposed limit is the
   next power of two MiB at or above 1.5 × the peak (the limit itself after an OOM kill).

Scores, with ``F(s) = 1 − ¾·(L_max − L(s))`` (1 for the best-localised service, down to ¼
for one nothing points at while another is fully localised; 1 everywhere if nothing is):
attribute candidates ``S × prior × F(s)`` with priors 1 for ``service.version`` and flags,
0.95 for other versions, 0.9 host, 0.85 deployment, 0.8 other attributes (a version change
renews pod names too: the version is the cause); ``memory`` ``M × F(s)``; ``errors`` and
``latency``, which say where but not why, ``½·E`` and ``½·T``. ``confidence = score × a / (a
+ 5)`` with ``a`` the bad traces backing the candidate, so under 5 it stays below ½ (memory
is measured, not sampled: its factor is 1). Ties go to the kind :class:`CauseKind` lists
first, then to the text of service, operation, attribute and value.

Attributes considered: a semantic-convention flag evaluation on a span
(``feature_flag.key=K`` with ``feature_flag.result.variant``, ``feature_flag.variant`` or
``feature_flag.result.value`` ``= V``) reads as ``feature_flag.K=V``, like
``feature_flag.<name>=on`` style keys. Skipped: identifiers (last token ``id``, ``uid``,
``uuid``, ``guid`` or ``key``; ``host.id`` stays), URLs (``url.*``, ``*.url``, ``*.uri``,
``*.target``), outcomes and measurements (a token such as ``status``, ``error``,
``result``, ``duration``, ``size``, ``count``: what happened, not why), instrumentation
metadata (``otel.*``, ``telemetry.*``), keys with over 100 values on a service (or over 10
and over one per two traces through it), and values carried by exactly the traces through
one operation of their service, bad and good, in both windows (``http.route``: they only
name the operation).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from itertools import compress
from operator import itemgetter
from typing import NamedTuple

from revleak.gcpause import cyclic_gc_paused
from revleak.telemetry.model import Attributes, MetricPoint, Span
from revleak.telemetry.sli import is_request
from revleak.telemetry.traces import (
    REFERENCE_TRACES_PER_ENTRY,
    Location,
    Operation,
    Profiles,
    Trace,
    TraceCounts,
    assemble,
    localise,
)

Feature = tuple[str, str, str]  # (service, attribute key, value)
_KEY = itemgetter(0)

FLAG_PREFIX = "feature_flag."
_FLAG_KEY = FLAG_PREFIX + "key"
_FLAG_METADATA = frozenset(
    {"provider_name", "provider.name", "reason", "result.reason", "context.id", "set.id"}
    | {"version", "evaluation.reason", "evaluation.error.message", "error.type"}
)
_IDENTIFIER_TOKENS = frozenset({"id", "ids", "uid", "uuid", "guid", "key"})
_URL_TOKENS = frozenset({"url", "uri", "target"})
_OUTCOME_TOKENS = frozenset(
    {"status", "error", "errors", "exception", "outcome", "result", "duration", "latency"}
    | {"elapsed", "size", "bytes", "count", "length", "retry", "retries", "attempt"}
)
_HOST_PREFIXES = ("host.", "k8s.node.")
_DEPLOYMENT_PREFIXES = (
    *("deployment.", "k8s.deployment.", "k8s.pod.", "k8s.replicaset."),
    *("k8s.statefulset.", "k8s.daemonset.", "container."),
)
_INSTANCE_KEYS = ("service.instance.id", "k8s.pod.name", "host.name")
SERVICE_VERSION = "service.version"
MIB = 1 << 20


class CauseKind(StrEnum):
    """What a candidate blames; the order breaks ties between equal scores (a measured
    saturation first)."""

    MEMORY = "memory"
    VERSION = "version"
    FLAG = "flag"
    HOST = "host"
    DEPLOYMENT = "deployment"
    ATTRIBUTE = "attribute"
    ERRORS = "errors"
    LATENCY = "latency"


_KIND_ORDER = {kind: position for position, kind in enumerate(CauseKind)}
_CHANGES = frozenset({CauseKind.VERSION, CauseKind.FLAG, CauseKind.DEPLOYMENT})
NEW_SHARE = 0.05  # at most this share of the baseline's traces: a new value
_PRIORS = {
    CauseKind.VERSION: 0.95,
    CauseKind.FLAG: 1.0,
    CauseKind.HOST: 0.9,
    CauseKind.DEPLOYMENT: 0.85,
    CauseKind.ATTRIBUTE: 0.8,
}


class SaturationMetrics(NamedTuple):
    """Metric names: memory usage and limit in bytes (gauges), OOM kills (a sum, cumulative
    or delta), per service and instance attributes."""

    usage: str = "process.memory.usage"
    limit: str = "process.memory.limit"
    oom_kills: str = "process.oom_kills"


@dataclass(frozen=True, slots=True)
class TracePredicate:
    """Whether a trace (its spans) is bad for an SLO; ``label`` names such traces."""

    test: Callable[[Sequence[Span]], bool]
    label: str

    def __call__(self, spans: Sequence[Span]) -> bool:
        return self.test(spans)


def errors_predicate() -> TracePredicate:
    """Availability: a trace with a failing span."""
    return TracePredicate(lambda spans: any(span.error for span in spans), "failing")


def latency_predicate(threshold_for: Callable[[Span], int]) -> TracePredicate:
    """Latency: a trace with a request span (server, consumer or root, as the SLI counts
    them) longer than ``threshold_for(span)`` nanoseconds."""

    def slow(spans: Sequence[Span]) -> bool:
        return any(
            span.end_ns - span.start_ns > threshold_for(span) for span in spans if is_request(span)
        )

    return TracePredicate(slow, "slow")


def conversion_predicate(
    is_start: Callable[[Span], bool], is_done: Callable[[Span], bool]
) -> TracePredicate:
    """Conversion: a journey started (``is_start``) and no span completing it succeeded."""

    def unconverted(spans: Sequence[Span]) -> bool:
        return any(is_start(span) for span in spans) and not any(
            is_done(span) and not span.error for span in spans
        )

    return TracePredicate(unconverted, "unconverted")


class Candidate(NamedTuple):
    """A root-cause candidate. ``value`` is the blamed value (``memory``: the limit in
    bytes), ``previous_value`` the baseline's (the version to roll back to),
    ``proposed_value`` what a fix sets (``memory``: the new limit, such as ``1Gi``)."""

    cause: CauseKind
    service: str
    score: float
    confidence: float
    summary: str  # one sentence with the numbers
    evidence: tuple[str, ...]
    operation: str | None = None
    attribute: str | None = None
    value: str | None = None
    previous_value: str | None = None
    proposed_value: str | None = None

    def annotations(self) -> dict[str, str]:
        """What a page and an incident carry about the cause (empty entries left out)."""
        entries = {
            "cause": self.cause.value,
            "cause_service": self.service,
            "cause_operation": self.operation,
            "cause_attribute": self.attribute,
            "cause_value": self.value,
            "root_cause": self.summary,
            "root_cause_confidence": f"{self.confidence:.2f}",
        }
        if self.cause is CauseKind.VERSION:
            entries["previous_version"] = self.previous_value
        elif self.cause is CauseKind.FLAG and self.attribute:
            entries["flag"] = self.attribute.removeprefix(FLAG_PREFIX)
        elif self.cause is CauseKind.MEMORY:
            entries["memory_limit_target"] = self.proposed_value
        return {name: text for name, text in entries.items() if text}

    @property
    def rank_key(self) -> tuple[float, int, str, str, str, str]:
        return (
            -self.score,
            _KIND_ORDER[self.cause],
            self.service,
            self.operation or "",
            self.attribute or "",
            self.value or "",
        )


def analyse(
    window: Iterable[Span],
    baseline: Iterable[Span],
    bad_trace: Callable[[Sequence[Span]], bool],
    *,
    metrics: Iterable[MetricPoint] = (),
    saturation: SaturationMetrics | None = None,
    limit: int = 10,
) -> list[Candidate]:
    """The ``limit`` best root-cause candidates of the window, best first."""
    with cyclic_gc_paused():
        features = _FeatureIndex()
        now = _Sample(assemble(window), bad_trace, features)
        before = _Sample(assemble(baseline), bad_trace, features)
        reference = Profiles(
            [*before.bad_traces, *before.good_traces] if before.traces else now.good_traces,
            per_entry=REFERENCE_TRACES_PER_ENTRY,
        )
        locations = localise(Profiles(now.bad_traces), reference)
        label = bad_trace.label if isinstance(bad_trace, TracePredicate) else "bad"
        context = _Context(now, before, locations, label, features.features)
        candidates = [
            *_location_candidates(context),
            *_attribute_candidates(context),
            *_memory_candidates(context, metrics, saturation or SaturationMetrics()),
        ]
    candidates.sort(key=lambda candidate: candidate.rank_key)
    return candidates[: max(limit, 0)]


class _Sample:
    """A window's traces, bad and good, and what they carry."""

    def __init__(
        self,
        traces: list[Trace],
        bad_trace: Callable[[Sequence[Span]], bool],
        features: _FeatureIndex,
    ) -> None:
        self.bad_traces: list[Trace] = []
        self.good_traces: list[Trace] = []
        for trace in traces:
            (self.bad_traces if bad_trace(trace.spans) else self.good_traces).append(trace)
        self.bad = TraceCounts(self.bad_traces, map(features.of_trace, self.bad_traces))
        self.good = TraceCounts(self.good_traces, map(features.of_trace, self.good_traces))

    @property
    def traces(self) -> int:
        return self.bad.traces + self.good.traces

    def through(self, service: str) -> tuple[int, int]:
        """(traces, bad traces) through ``service``."""
        bad = self.bad.through[service]
        return bad + self.good.through[service], bad

    def carrying(self, feature: int) -> tuple[int, int]:
        """(traces, bad traces) carrying feature number ``feature``."""
        bad = self.bad.carriers[feature]
        return bad + self.good.carriers[feature], bad


def _traces_per_value(
    sample: _Sample, features: list[Feature]
) -> dict[tuple[str, str], Counter[str]]:
    """Per (service, key): how many traces carry each value."""
    values: dict[tuple[str, str], Counter[str]] = {}
    for carriers in (sample.bad.carriers, sample.good.carriers):
        for number, traces in carriers.items():
            service, key, value = features[number]
            values.setdefault((service, key), Counter())[value] += traces
    return values


class _Context:
    """What every candidate is judged against."""

    def __init__(
        self,
        now: _Sample,
        before: _Sample,
        locations: dict[Operation, Location],
        label: str,
        features: list[Feature],
    ) -> None:
        self.now, self.before, self.locations, self.label = now, before, locations, label
        self.features = features
        self.best: dict[str, Location] = {}  # per service
        for location in sorted(locations.values(), key=lambda found: found.operation):
            known = self.best.get(location.operation[0])
            if known is None or location.strength > known.strength:
                self.best[location.operation[0]] = location
        self.top = max((found.strength for found in locations.values()), default=0.0)
        self.now_values = _traces_per_value(now, features)
        self.before_values = _traces_per_value(before, features)
        self.operations: dict[str, list[Operation]] = {}  # per service
        groups = (now.bad, now.good, before.bad, before.good)
        for operation in sorted(set().union(*(group.operations for group in groups))):
            self.operations.setdefault(operation[0], []).append(operation)

    def focus(self, service: str) -> float:
        """``F(s)``."""
        location = self.best.get(service)
        return 1 - 0.75 * (self.top - (location.strength if location else 0.0))

    def share(self, bad_traces: int) -> str:
        return _percent(bad_traces / self.now.bad.traces)


# --- where: error origins and self-time ----------------------------------------------------


def _location_candidates(context: _Context) -> list[Candidate]:
    candidates: list[Candidate] = []
    for location in context.locations.values():
        service, operation = location.operation
        origins = f"errors start here in {context.share(location.origin_traces)}"
        self_time = f"self-time {_gain(location)}{_ratio(location)} on the critical path"
        for kind, strength, backing, finding in (
            (CauseKind.ERRORS, location.origin_share, location.origin_traces, origins),
            (CauseKind.LATENCY, location.self_share, location.path_traces, self_time),
        ):
            if strength > 0:
                score = 0.5 * strength
                candidates.append(
                    Candidate(
                        cause=kind,
                        service=service,
                        operation=operation,
                        score=score,
                        confidence=score * _support(backing),
                        summary=f"{service} {operation}: {finding} of {context.label} traces",
                        evidence=_location_evidence(context, location),
                    )
                )
    return candidates


# --- why: attribute values -----------------------------------------------------------------


class _Use(IntEnum):
    """What an attribute key can tell about a cause; flag variants rank by preference."""

    NONE = 0
    VALUE = 1
    FLAG_NAME = 2
    FLAG_RESULT_VARIANT = 3
    FLAG_VARIANT = 4
    FLAG_RESULT_VALUE = 5


_FLAG_USES = {
    "key": _Use.FLAG_NAME,
    "result.variant": _Use.FLAG_RESULT_VARIANT,
    "variant": _Use.FLAG_VARIANT,
    "result.value": _Use.FLAG_RESULT_VALUE,
}


def _use_of(key: str) -> _Use:
    detail = key.removeprefix(FLAG_PREFIX)
    if detail != key:
        return _FLAG_USES.get(detail, _Use.NONE if detail in _FLAG_METADATA else _Use.VALUE)
    if key.startswith(("otel.", "telemetry.", "url.")):
        return _Use.NONE
    tokens = re.split(r"[._\-]", key.lower())
    if key != "host.id" and tokens[-1] in _IDENTIFIER_TOKENS:
        return _Use.NONE
    if tokens[-1] in _URL_TOKENS or not _OUTCOME_TOKENS.isdisjoint(tokens):
        return _Use.NONE
    return _Use.VALUE


class _KeyUses(dict[str, _Use]):
    """Each key's use, judged on first sight (``_Use.NONE`` is false: keys that tell
    nothing drop out of ``compress``)."""

    def __missing__(self, key: str) -> _Use:
        use = self[key] = _use_of(key)
        return use


_SKIP = -1  # a pair that names no cause
_FLAG_PART = -2  # a pair that names a cause only with the rest of its flag evaluation


class _Numbers(dict[tuple[str, str], int]):
    """One service's attribute pairs: the feature number of those that may name a cause,
    else ``_SKIP`` or ``_FLAG_PART``."""

    def __init__(self, service: str, index: _FeatureIndex) -> None:
        super().__init__()
        self.service = service
        self.index = index

    def __missing__(self, pair: tuple[str, str]) -> int:
        key, value = pair
        use = self.index.uses[key]
        if use is _Use.VALUE:
            number = self.index.number((self.service, key, value)) if value else _SKIP
        else:
            number = _SKIP if use is _Use.NONE else _FLAG_PART
        self[pair] = number
        return number


class _FeatureIndex:
    """The features traces carry, numbered. Spans often carry a unique value (a user id),
    so keys are judged before pairs, and the per-span work runs in C (``compress``,
    ``map``, ``set.update``); each distinct telling pair of a service is judged once."""

    def __init__(self) -> None:
        self.features: list[Feature] = []  # by number
        self.uses = _KeyUses()
        self._numbers: dict[Feature, int] = {}
        self._by_service: dict[str, _Numbers] = {}

    def of_trace(self, trace: Trace) -> set[int]:
        telling = self.uses.__getitem__
        by_service = self._by_service
        carried: set[int] = set()
        add = carried.update
        for span in trace.spans:
            numbers = by_service.get(span.service)
            if numbers is None:
                numbers = by_service[span.service] = _Numbers(span.service, self)
            attributes = span.attributes
            add(map(numbers.__getitem__, compress(attributes, map(telling, map(_KEY, attributes)))))
        if _FLAG_PART in carried:
            carried.update(self._flags(trace))
        carried.discard(_SKIP)
        carried.discard(_FLAG_PART)
        return carried

    def number(self, feature: Feature) -> int:
        number = self._numbers.get(feature)
        if number is None:
            number = self._numbers[feature] = len(self.features)
            self.features.append(feature)
        return number

    def _flags(self, trace: Trace) -> Iterator[int]:
        """Semantic-convention flag evaluations, each read as ``feature_flag.<flag>`` = its
        variant (the span's own: flags of two spans never mix)."""
        for span in trace.spans:
            attributes = span.attributes
            at = bisect_left(attributes, (_FLAG_KEY,))
            if at == len(attributes) or attributes[at][0] != _FLAG_KEY:
                continue
            variants = [
                (use, value)
                for key, value in attributes
                if (use := self.uses[key]) > _Use.FLAG_NAME and value
            ]
            if attributes[at][1] and variants:
                flag = FLAG_PREFIX + attributes[at][1]
                yield self.number((span.service, flag, min(variants)[1]))


def _kind_of(key: str) -> CauseKind:
    if key.startswith(FLAG_PREFIX):
        return CauseKind.FLAG
    if key == "version" or key.endswith((".version", "_version")):
        return CauseKind.VERSION
    if key.startswith(_HOST_PREFIXES):
        return CauseKind.HOST
    if key.startswith(_DEPLOYMENT_PREFIXES):
        return CauseKind.DEPLOYMENT
    return CauseKind.ATTRIBUTE


def _attribute_candidates(context: _Context) -> list[Candidate]:
    now = context.now
    seen = now.bad.carriers.keys() | now.good.carriers.keys()
    values = Counter(context.features[number][:2] for number in seen)
    candidates: list[Candidate] = []
    for number in now.bad.carriers:
        feature = service, key, value = context.features[number]
        through, through_bad = now.through(service)
        if not value or _too_many(values[(service, key)], through):
            continue
        carried, bad = now.carrying(number)
        before_through, before_bad = context.before.through(service)
        before_carried, before_carried_bad = context.before.carrying(number)
        others = through - carried + before_through - before_carried
        others_bad = through_bad - bad + before_bad - before_carried_bad
        if others == 0:
            continue
        rate = others_bad / others
        separation = (bad - carried * rate) / now.bad.traces
        if separation > 0 and not _restates_an_operation(context, service, number):
            found = _Separation(feature, bad, carried, others, rate, separation)
            candidates.append(_attribute_candidate(context, found))
    return candidates


def _restates_an_operation(context: _Context, service: str, number: int) -> bool:
    """Carried by exactly the traces through one operation of the service, bad and good, in
    the window and the baseline (``http.route``): the value only names that operation."""
    groups = (context.now.bad, context.now.good, context.before.bad, context.before.good)
    carried = [group.carriers[number] for group in groups]
    return any(
        [group.operations[operation] for group in groups] == carried
        for operation in context.operations.get(service, ())
    )


def _too_many(values: int, traces: int) -> bool:
    """Identifier-like: more than 100 values, or more than 10 and over one per two traces."""
    return values > 100 or (values > 10 and values > traces / 2)


class _Separation(NamedTuple):
    feature: Feature
    bad: int  # a
    carried: int  # n
    others: int  # traces through the service without the value, window and baseline
    others_rate: float  # r
    share: float  # S


def _attribute_candidate(context: _Context, found: _Separation) -> Candidate:
    service, key, value = found.feature
    kind = _kind_of(key)
    score = (
        found.share * context.focus(service) * (1.0 if key == SERVICE_VERSION else _PRIORS[kind])
    )
    location = context.best.get(service)
    previous, history = _previous_value(context, found.feature, kind)
    label = context.label
    evidence = [
        f"{key}={value} on {service} in {found.bad} of {context.now.bad.traces} {label} traces",
        f"{_percent(found.bad / found.carried)} of the {found.carried} traces carrying it are "
        f"{label}, {_percent(found.others_rate)} of the {found.others} other traces through "
        f"{service} (window and baseline)",
        *([history] if history else []),
        *(_location_evidence(context, location) if location else ()),
    ]
    operation = location.operation[1] if location else None
    was = f" (was {previous})" if previous else ""
    summary = (
        f"{service}{f' {operation}' if operation else ''}: {key} {value}{was} in "
        f"{context.share(found.bad)} of {label} traces{_location_clause(context, location)}"
    )
    return Candidate(
        cause=kind,
        service=service,
        score=score,
        confidence=score * _support(found.bad),
        summary=summary,
        evidence=tuple(evidence),
        operation=operation,
        attribute=key,
        value=value,
        previous_value=previous,
    )


def _previous_value(
    context: _Context, feature: Feature, kind: CauseKind
) -> tuple[str | None, str | None]:
    """What a change of ``kind`` replaced: the most common other value of the key on the
    service in the baseline (in the window without one); and a sentence when the value is
    new to the baseline."""
    service, key, value = feature
    traces = context.before.through(service)[0]
    before = context.before_values.get((service, key), Counter())
    counts = before if traces else context.now_values.get((service, key), Counter())
    others = sorted((-carried, other) for other, carried in counts.items() if other != value)
    previous = others[0][1] if others and kind in _CHANGES else None
    if not traces or before[value] > NEW_SHARE * traces:
        return previous, None
    if not others:
        return previous, f"{key} was not set on {service} in the baseline"
    return previous, (
        f"new since the baseline, where {service} had {key}={others[0][1]} in "
        f"{_percent(-others[0][0] / traces)} of its traces"
    )


# --- memory ---------------------------------------------------------------------------------

_Points = list[tuple[int, float, bool]]  # (ts, value, cumulative)
_Instances = dict[Attributes, _Points]


class _Memory(NamedTuple):
    service: str
    peak_usage: float
    peak_ratio: float | None  # of the worst instance
    limit: float | None  # of the worst instance
    instance: str
    oom_kills: float

    @property
    def strength(self) -> float:
        """``M``."""
        if self.oom_kills > 0:
            return 1.0
        return min(1.0, max(0.0, ((self.peak_ratio or 0.0) - 0.8) / 0.15))

    def target(self) -> str | None:
        """The next power of two MiB at or above 1.5 × the peak. An OOM kill means the real
        peak reached the limit, whatever the samples caught."""
        peak = max(self.peak_usage, self.limit or 0.0) if self.oom_kills else self.peak_usage
        if peak <= 0:
            return None
        power = 1 << (math.ceil(1.5 * peak / MIB) - 1).bit_length()
        return f"{power // 1024}Gi" if power >= 1024 else f"{power}Mi"


def _memory_candidates(
    context: _Context, metrics: Iterable[MetricPoint], names: SaturationMetrics
) -> list[Candidate]:
    usage: dict[str, _Instances] = {}
    limits: dict[str, _Instances] = {}
    kills: dict[str, _Instances] = {}
    wanted = {names.usage: usage, names.limit: limits, names.oom_kills: kills}
    for point in metrics:
        series = wanted.get(point.metric)
        if series is not None:
            points = series.setdefault(point.service, {}).setdefault(point.attributes, [])
            points.append((point.ts, point.value, point.cumulative))
    candidates: list[Candidate] = []
    for service in sorted(usage.keys() | kills.keys()):
        memory = _memory_of(service, usage.get(service, {}), limits.get(service, {}))
        memory = memory._replace(oom_kills=_kills(kills.get(service, {})))
        if memory.strength > 0:
            candidates.append(_memory_candidate(context, memory))
    return candidates


def _memory_of(service: str, usage: _Instances, limits: _Instances) -> _Memory:
    """The service's worst instance by peak usage ÷ limit; an instance without a limit of
    its own is held to the service's newest limit."""
    newest = {instance: max(points)[1] for instance, points in limits.items()}
    fallback = max(max(points) for points in limits.values())[1] if limits else 0.0
    peaks = {instance: max(value for _, value, _ in points) for instance, points in usage.items()}

    def ratio_of(instance: Attributes) -> float:
        limit = newest.get(instance) or fallback
        return peaks[instance] / limit if limit > 0 else 0.0

    worst = max(sorted(peaks), key=ratio_of, default=())
    limit = newest.get(worst) or fallback
    return _Memory(
        service=service,
        peak_usage=max(peaks.values(), default=0.0),
        peak_ratio=ratio_of(worst) if worst in peaks and limit > 0 else None,
        limit=limit or None,
        instance=_instance(dict(worst)),
        oom_kills=0.0,
    )


def _instance(attributes: dict[str, str]) -> str:
    return next((f"{key}={attributes[key]}" for key in _INSTANCE_KEYS if key in attributes), "")


def _kills(series: _Instances) -> float:
    """Rises of cumulative counts between consecutive points, plus values of delta counts."""
    total = 0.0
    for _, points in sorted(series.items()):
        previous: float | None = None
        for _, value, cumulative in sorted(points):
            if not cumulative:
                total += max(value, 0.0)
                continue
            if previous is not None and value > previous:
                total += value - previous
            previous = value
    return total


def _memory_candidate(context: _Context, memory: _Memory) -> Candidate:
    facts: list[str] = []
    evidence: list[str] = []
    if memory.peak_ratio is not None and memory.limit:
        facts.append(f"memory at {_percent(memory.peak_ratio)} of its {_mib(memory.limit)} limit")
        where = f" on {memory.instance}" if memory.instance else ""
        evidence.append(f"{facts[-1]}{where}, {_mib(memory.peak_usage)} at the service's peak")
    if memory.oom_kills:
        facts.append(f"{memory.oom_kills:g} OOM kill{'' if memory.oom_kills == 1 else 's'}")
        evidence.append(f"{facts[-1]} in the window")
    target = memory.target()
    if target:
        evidence.append(f"a limit of {target} leaves 1.5 × the peak usage")
    location = context.best.get(memory.service)
    if location:
        evidence.extend(_location_evidence(context, location))
    score = memory.strength * context.focus(memory.service)
    return Candidate(
        cause=CauseKind.MEMORY,
        service=memory.service,
        score=score,
        confidence=score,
        summary=f"{memory.service}: {', '.join(facts)}{_location_clause(context, location)}",
        evidence=tuple(evidence),
        value=f"{memory.limit:.0f}" if memory.limit else None,
        proposed_value=target,
    )


# --- sentences ------------------------------------------------------------------------------


def _location_evidence(context: _Context, location: Location) -> tuple[str, ...]:
    service, operation = location.operation
    label = context.label
    sentences: list[str] = []
    if location.origin_share > 0:
        sentences.append(
            f"errors start at {service} {operation} in {location.origin_traces} of "
            f"{context.now.bad.traces} {label} traces, "
            f"{_percent(location.reference_origin_share)} of reference traces"
        )
    if location.self_share > 0:
        sentences.append(
            f"{service} {operation} takes {_ms(location.self_ns)} of the critical path of a "
            f"{label} trace itself, {_ms(location.expected_ns)} expected: {_gain(location)}"
            f"{_ratio(location)}, {_percent(location.self_share)} of the slowdown"
        )
    return tuple(sentences)


def _location_clause(context: _Context, location: Location | None) -> str:
    if location is None:
        return ""
    if location.origin_share >= location.self_share:
        return f", errors start there in {context.share(location.origin_traces)} of them"
    return f", self-time {_gain(location)} on the critical path"


def _gain(location: Location) -> str:
    return f"+{_ms(location.self_ns - location.expected_ns)}"


def _ratio(location: Location) -> str:
    if location.expected_ns <= 0:
        return ""
    return f" (×{location.self_ns / location.expected_ns:.1f})"


def _support(bad_traces: int) -> float:
    return bad_traces / (bad_traces + 5)


def _percent(share: float) -> str:
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


def _ms(ns: float) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if abs(ms) < 10 else f"{ms:.0f} ms"


def _mib(amount: float) -> str:
    mib = amount / MIB
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"
