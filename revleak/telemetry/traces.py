"""Traces assembled from spans, and what each trace says about where its time and errors went.

A trace is the spans sharing a ``trace_id``; any of them may be missing. A span whose parent
is absent (an orphan, or one naming itself) is treated like a root, so a trace whose root
was lost still has a shape. Everything here depends on the spans' content only, never on the
order they came in.

**Entry**: the operation (service, span name) of a trace's earliest span — its root, unless
the root was lost.

**Error origin**: a failing span none of whose present children failed — where an error
started rather than where it was passed on.

**Critical path** (as Jaeger computes it): start at the root, take the child that ends last,
then the child that ends last before that one started, and so on back to the parent's start;
repeat inside every chosen child. A span's *self-time* is the part of its interval that no
chosen child covers: time the trace spent waiting on that span itself. Children are clipped
to their parent's interval, which absorbs clock skew between hosts. Several roots or orphans
hang under one virtual root spanning them all, whose own gaps count for no one.

**Localisation** of an operation, from the bad traces of a window against *reference* traces
(the baseline, or the window's good traces):

- ``E`` = share of bad traces whose error starts there − share of reference traces whose
  error starts there;
- ``gain`` = its mean self-time on the critical path of a bad trace − the self-time
  reference traces with the same entry spend there (all reference traces' mean for an entry
  the reference lacks); ``T = gain / max(Σ positive gains, expected critical path)``: its
  share of the slowdown, damped when the whole slowdown is small beside the path.

Its strength is ``max(E, T)``. Reference traces are profiled up to
:data:`REFERENCE_TRACES_PER_ENTRY` per entry, those with the smallest trace ids: trace ids are
random, so that is a uniform sample, and the same whatever order the spans came in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, islice
from operator import attrgetter
from typing import NamedTuple

from revleak.telemetry.model import Span

Operation = tuple[str, str]  # (service, span name)
REFERENCE_TRACES_PER_ENTRY = 1000
_START = attrgetter("start_ns")
_END = attrgetter("end_ns")
_SERVICE = attrgetter("service")
_OPERATION: Callable[[Span], Operation] = attrgetter("service", "name")
_TRACE_ID = attrgetter("trace_id")


class Profile(NamedTuple):
    """Where a trace's errors started and its time went."""

    entry: Operation
    error_origins: frozenset[Operation]
    critical_self_ns: dict[Operation, int]  # self-time on the critical path, per operation


class Trace:
    """One trace: its spans, one per span id, sorted by id."""

    __slots__ = ("_members", "services", "spans", "trace_id")

    def __init__(self, trace_id: str, members: dict[str, Span]) -> None:
        self.trace_id = trace_id
        self._members = members
        self.spans = tuple([members[span_id] for span_id in sorted(members)])
        self.services = frozenset(map(_SERVICE, self.spans))

    @property
    def entry(self) -> Operation:
        """Its earliest span's operation (ties: the smallest span id)."""
        first = min(self.spans, key=_START)
        return (first.service, first.name)

    def profile(self) -> Profile:
        members = self._members
        children: defaultdict[str, list[Span]] = defaultdict(list)
        tops: list[Span] = []
        failed: list[Span] = []
        for span in self.spans:
            parent = span.parent_span_id
            if parent and parent != span.span_id and parent in members:
                children[parent].append(span)
            else:
                tops.append(span)
            if span.error:
                failed.append(span)
        origins = frozenset(
            [
                (span.service, span.name)
                for span in failed
                if not any(child.error for child in children.get(span.span_id, ()))
            ]
        )
        # Without a top, every span's parent is another span's child: a cycle, no path.
        self_ns = _critical_self_ns(tops, children) if tops else {}
        return Profile(self.entry, origins, self_ns)


def assemble(spans: Iterable[Span]) -> list[Trace]:
    """The traces of ``spans``. A span delivered twice counts once (if the copies differ,
    the greater by content wins, whatever the order they came in)."""
    by_trace: defaultdict[str, dict[str, Span]] = defaultdict(dict)
    for span in spans:
        members = by_trace[span.trace_id]
        known = members.setdefault(span.span_id, span)
        if known is not span and span > known:
            members[span.span_id] = span
    return [Trace(trace_id, members) for trace_id, members in by_trace.items()]


def _critical_self_ns(tops: list[Span], children: dict[str, list[Span]]) -> dict[Operation, int]:
    """One walk down the critical path; ``None`` stands for the virtual root over ``tops``.
    Walking back from a span's end, each chosen child ends no later than the previous one
    started; a child overlapping a chosen one ran in parallel and held no one up."""
    self_ns: dict[Operation, int] = {}
    start = min(map(_START, tops))
    end = max(map(_END, tops))
    pending: list[tuple[Span | None, int, int]] = [(None, start, end)]
    while pending:
        span, start, end = pending.pop()
        below = tops if span is None else children.get(span.span_id, ())
        if len(below) > 1:
            # Stable: children ending together stay in span-id order.
            below = sorted(below, key=_END, reverse=True)
        covered = 0
        cursor = end
        for child in below:
            child_end = child.end_ns if child.end_ns < end else end
            child_start = child.start_ns if child.start_ns > start else start
            if child_start < child_end <= cursor:
                pending.append((child, child_start, child_end))
                covered += child_end - child_start
                cursor = child_start
                if cursor <= start:
                    break
        if span is not None:
            operation = (span.service, span.name)
            self_ns[operation] = self_ns.get(operation, 0) + end - start - covered
    return self_ns


class TraceCounts:
    """How many traces go through each service and operation and carry each feature
    (numbered by the caller), each trace counted once."""

    def __init__(self, traces: Sequence[Trace], features: Iterable[set[int]]) -> None:
        self.traces = len(traces)
        self.through = Counter(chain.from_iterable(trace.services for trace in traces))
        self.operations = Counter(
            chain.from_iterable(frozenset(map(_OPERATION, trace.spans)) for trace in traces)
        )
        self.carriers = Counter(chain.from_iterable(features))


class CriticalPaths:
    """Critical-path self-time of a set of traces, summed per entry."""

    def __init__(self, profiles: Iterable[Profile]) -> None:
        self.traces: Counter[Operation] = Counter()
        self.self_ns: dict[Operation, Counter[Operation]] = {}
        for entry, _, self_ns in profiles:
            self.traces[entry] += 1
            sums = self.self_ns.get(entry)
            if sums is None:
                sums = self.self_ns[entry] = Counter()
            for operation, ns in self_ns.items():
                sums[operation] += ns

    def total(self) -> Counter[Operation]:
        total: Counter[Operation] = Counter()
        for sums in self.self_ns.values():
            total.update(sums)
        return total

    def expected(self, entries: Counter[Operation]) -> dict[Operation, float]:
        """Total self-time per operation that traces entering as ``entries`` counts would
        spend at this set's means."""
        overall, count = self.total(), sum(self.traces.values())
        expected: dict[Operation, float] = {}
        for entry, times in sorted(entries.items()):
            seen = self.traces[entry]
            sums, base = (self.self_ns[entry], seen) if seen else (overall, count)
            for operation, ns in sorted(sums.items()) if base else ():
                expected[operation] = expected.get(operation, 0.0) + ns * times / base
        return expected


class Profiles:
    """The profiles of a set of traces, or of a sample of at most ``per_entry`` traces per
    entry (the smallest trace ids)."""

    def __init__(self, traces: Sequence[Trace], *, per_entry: int | None = None) -> None:
        chosen = traces if per_entry is None else _sample(traces, per_entry)
        profiles = [trace.profile() for trace in chosen]
        self.traces = len(profiles)
        self.origins = Counter(chain.from_iterable(found.error_origins for found in profiles))
        self.on_path = Counter(chain.from_iterable(found.critical_self_ns for found in profiles))
        self.paths = CriticalPaths(profiles)


def _sample(traces: Sequence[Trace], per_entry: int) -> list[Trace]:
    by_entry: defaultdict[Operation, list[Trace]] = defaultdict(list)
    for trace in traces:
        by_entry[trace.entry].append(trace)
    return list(
        chain.from_iterable(
            islice(sorted(members, key=_TRACE_ID), per_entry) for members in by_entry.values()
        )
    )


class Location(NamedTuple):
    """How strongly the bad traces point at one operation."""

    operation: Operation
    origin_traces: int  # bad traces whose error starts here
    origin_share: float  # E
    reference_origin_share: float
    path_traces: int  # bad traces with this operation on their critical path
    self_ns: float  # mean self-time per bad trace
    expected_ns: float  # the same, expected from the reference
    self_share: float  # T

    @property
    def strength(self) -> float:
        return max(self.origin_share, self.self_share)


def localise(bad: Profiles, reference: Profiles) -> dict[Operation, Location]:
    """The operations the bad traces point at (strength above 0)."""
    if not bad.traces:
        return {}
    observed = bad.paths.total()
    expected = reference.paths.expected(bad.paths.traces)
    operations = sorted(observed.keys() | expected.keys() | bad.origins.keys())
    gains = {op: (observed[op] - expected.get(op, 0.0)) / bad.traces for op in operations}
    growth = sum(gain for gain in gains.values() if gain > 0)
    scale = max(growth, sum(expected.values()) / bad.traces)
    locations: dict[Operation, Location] = {}
    for op in operations:
        usual = reference.origins[op] / reference.traces if reference.traces else 0.0
        location = Location(
            operation=op,
            origin_traces=bad.origins[op],
            origin_share=max(0.0, bad.origins[op] / bad.traces - usual),
            reference_origin_share=usual,
            path_traces=bad.on_path[op],
            self_ns=observed[op] / bad.traces,
            expected_ns=expected.get(op, 0.0) / bad.traces,
            self_share=max(0.0, gains[op]) / scale if scale > 0 else 0.0,
        )
        if location.strength > 0:
            locations[op] = location
    return locations
