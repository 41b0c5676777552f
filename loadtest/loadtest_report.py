"""The report of a load-test run, computed from what was measured during it.

:func:`build_report` is pure: it takes the messages produced (their event times and the
wall times they were handed to the producer), the lag samples, the pages seen at
Alertmanager, the alert log read back from Kafka and the offline replay's alert log, and
returns a :class:`Report`. :func:`write_report` writes it as ``report.json``,
``report.md`` and two PNG figures (matplotlib's Agg canvas, no display needed).

A *page* here is a firing transition of the alert log, any severity (Alertmanager receives
tickets as well as pages); pages are matched by ``(slo, severity, long_window, startsAt)``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel

from revleak.loadtest.figures import whole
from revleak.loadtest.kafka_bench import percentile
from revleak.timefmt import format_timestamp, parse_timestamp

LAG_FIGURE = "lag.png"
LATENCY_FIGURE = "latency.png"
FIRING = "firing"


class PageKey(NamedTuple):
    """What identifies a page across the replay's log, Alertmanager and the live log."""

    slo: str
    severity: str
    long_window: str
    starts_at: int  # event time, ms

    @classmethod
    def of_transition(cls, record: Mapping[str, Any]) -> PageKey:
        """The key of an alert-log record (a transition of ``revleak replay``'s log)."""
        return cls(
            str(record["slo"]),
            str(record["severity"]),
            str(record["long_window"]),
            parse_timestamp(str(record["at"])),
        )


@dataclass(frozen=True, slots=True)
class LagSample:
    """At wall time ``t``: events in the input topics so far, events the flow has counted."""

    t: float
    produced: int
    processed: int


@dataclass(frozen=True, slots=True)
class Sighting:
    """A page Alertmanager holds, and the wall time it accepted it (its ``updatedAt``)."""

    key: PageKey
    accepted_at: float


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything measured in one run, in the order the messages were produced."""

    scenario: str
    description: str
    slo: str  # the SLO the scenario burns
    flow: str
    speed: str
    started_at: float  # wall time the run's clock started: the flow had read the first message
    finished_at: float  # wall time every message was acknowledged
    event_times: Sequence[int]  # of each message (its newest event), ms
    sent_at: Sequence[float]  # wall time each message was handed to the producer
    events: int  # input events in those messages, as the flow counts them
    samples: Sequence[LagSample]
    sightings: Sequence[Sighting]
    alert_log: Sequence[Mapping[str, Any]]  # read back from the alert-log topic
    expected_log: Sequence[Mapping[str, Any]]  # the offline replay's
    # The newest event time every input partition has reached, and the allowed lateness:
    # what bounds the pages a live flow can have sent (early lane) and logged (final lane).
    reach_ms: int
    allowed_lateness_ms: int


class PageRef(BaseModel):
    slo: str
    severity: str
    long_window: str
    starts_at: str

    @classmethod
    def of(cls, key: PageKey) -> PageRef:
        return cls(
            slo=key.slo,
            severity=key.severity,
            long_window=key.long_window,
            starts_at=format_timestamp(key.starts_at),
        )


class PageComparison(BaseModel):
    """Pages one destination received against those the replay says it should have."""

    reach: str  # pages starting up to this event time are expected
    expected: int
    received: int
    matched: int  # received pages the replay's log has (within reach or not)
    missing: list[PageRef]  # expected within reach, not received
    unexpected: list[PageRef]  # received, not in the replay's log


class Pages(BaseModel):
    replay: int  # firing transitions in the offline replay's whole log
    alertmanager: PageComparison
    alert_log: PageComparison


class Throughput(BaseModel):
    produced_events: int
    produce_seconds: float
    produced_per_second: float | None
    processed_events: int
    processed_seconds: float | None  # from the run's start until the flow had counted all
    processed_per_second: float | None


class Lag(BaseModel):
    highest: int | None
    last: int | None
    samples: list[tuple[float, int]]  # (seconds since the first message, events behind)


class PageLatency(PageRef):
    seconds: float


class Latency(BaseModel):
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    pages: list[PageLatency]  # fastest first


class InputSummary(BaseModel):
    messages: int
    events: int
    first_event: str | None
    last_event: str | None


class Report(BaseModel):
    scenario: str
    description: str
    slo: str
    flow: str
    speed: str
    started_at: str
    input: InputSummary
    throughput: Throughput
    lag: Lag
    pages: Pages
    latency: Latency


def firing_keys(log: Iterable[Mapping[str, Any]]) -> set[PageKey]:
    return {PageKey.of_transition(record) for record in log if record["state"] == FIRING}


def compare_pages(expected: set[PageKey], received: set[PageKey], reach_ms: int) -> PageComparison:
    """``received`` against the ``expected`` pages starting at or before ``reach_ms``."""
    wanted = {key for key in expected if key.starts_at <= reach_ms}
    return PageComparison(
        reach=format_timestamp(reach_ms),
        expected=len(wanted),
        received=len(received),
        matched=len(received & expected),
        missing=[PageRef.of(key) for key in sorted(wanted - received)],
        unexpected=[PageRef.of(key) for key in sorted(received - expected)],
    )


def throughput(record: RunRecord) -> Throughput:
    seconds = record.finished_at - record.started_at
    caught_up = next(
        (sample for sample in record.samples if sample.processed >= record.events), None
    )
    last = caught_up or (record.samples[-1] if record.samples else None)
    processed_seconds = last.t - record.started_at if last is not None else None
    processed = last.processed if last is not None else 0
    return Throughput(
        produced_events=record.events,
        produce_seconds=seconds,
        produced_per_second=record.events / seconds if seconds > 0 else None,
        processed_events=processed,
        processed_seconds=processed_seconds,
        processed_per_second=(
            processed / processed_seconds if processed_seconds and processed_seconds > 0 else None
        ),
    )


def lag(record: RunRecord) -> Lag:
    # The flow may read a message before the producer hears that the broker wrote it:
    # then nothing is behind.
    points = [
        (sample.t - record.started_at, max(0, sample.produced - sample.processed))
        for sample in record.samples
    ]
    behind = [events for _, events in points]
    return Lag(
        highest=max(behind) if behind else None,
        last=behind[-1] if behind else None,
        samples=points,
    )


def page_latencies(
    event_times: Sequence[int], sent_at: Sequence[float], sightings: Iterable[Sighting]
) -> list[tuple[PageKey, float]]:
    """Seconds from handing the producer the first message at or after a page's start
    (the earliest input that could fire it) to Alertmanager accepting the page; fastest
    first. A page starting after the last message has no such message and is left out."""
    # The first message reaching an event time is found by bisection over the running
    # maximum, which is sorted even when the messages are not.
    newest = list(itertools.accumulate(event_times, max))
    latencies = []
    for sighting in sightings:
        index = bisect.bisect_left(newest, sighting.key.starts_at)
        if index < len(newest):
            latencies.append((sighting.key, sighting.accepted_at - sent_at[index]))
    return sorted(latencies, key=lambda page: (page[1], page[0]))


def latency(latencies: Sequence[tuple[PageKey, float]]) -> Latency:
    seconds = [spent for _, spent in latencies]

    def nearest_rank(share: float) -> float | None:
        return percentile(seconds, share) if seconds else None

    return Latency(
        count=len(seconds),
        p50=nearest_rank(0.50),
        p95=nearest_rank(0.95),
        p99=nearest_rank(0.99),
        pages=[
            PageLatency(**PageRef.of(key).model_dump(), seconds=spent) for key, spent in latencies
        ],
    )


def build_report(record: RunRecord) -> Report:
    expected = firing_keys(record.expected_log)
    received = {sighting.key for sighting in record.sightings}
    times = record.event_times
    return Report(
        scenario=record.scenario,
        description=record.description,
        slo=record.slo,
        flow=record.flow,
        speed=record.speed,
        started_at=_wall(record.started_at),
        input=InputSummary(
            messages=len(times),
            events=record.events,
            first_event=format_timestamp(min(times)) if times else None,
            last_event=format_timestamp(max(times)) if times else None,
        ),
        throughput=throughput(record),
        lag=lag(record),
        pages=Pages(
            replay=len(expected),
            alertmanager=compare_pages(expected, received, record.reach_ms),
            alert_log=compare_pages(
                expected,
                firing_keys(record.alert_log),
                # The final lane evaluates only what is behind its watermark.
                record.reach_ms - record.allowed_lateness_ms - 1,
            ),
        ),
        latency=latency(page_latencies(times, record.sent_at, record.sightings)),
    )


def _wall(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


# -- writing ---------------------------------------------------------------------------------


def write_report(report: Report, folder: Path) -> list[Path]:
    """``report.json``, ``report.md`` and the figures in ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        _plot_lag(report.lag, folder / LAG_FIGURE),
        _plot_latency(report.latency, folder / LATENCY_FIGURE),
    ]
    json_path = folder / "report.json"
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown = folder / "report.md"
    markdown.write_text("\n".join(render_markdown(report)) + "\n", encoding="utf-8")
    return [json_path, markdown, *written]


def _plot_lag(data: Lag, path: Path) -> Path:
    figure = Figure(figsize=(8, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    if data.samples:
        seconds, behind = zip(*data.samples, strict=True)
        axes.plot(seconds, behind, drawstyle="steps-post")
    axes.set_xlabel("seconds since the first message")
    axes.set_ylabel("events behind")
    axes.set_title("Consumer lag: events in the topic − events the flow counted")
    axes.set_ylim(bottom=0)
    figure.savefig(path, dpi=100)
    return path


def _plot_latency(data: Latency, path: Path) -> Path:
    figure = Figure(figsize=(8, 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    if data.pages:
        axes.hist([page.seconds for page in data.pages], bins=max(5, min(30, data.count)))
        for name, value in (("p50", data.p50), ("p99", data.p99)):
            if value is not None:
                axes.axvline(value, linestyle="--", color="black")
                axes.annotate(
                    name,
                    (value, 1),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -3),
                    textcoords="offset points",
                    va="top",
                )
    else:
        axes.text(0.5, 0.5, "no page received", ha="center", va="center")
    axes.set_xlabel("seconds from the triggering message to Alertmanager")
    axes.set_ylabel("pages")
    axes.set_title("Event → page latency")
    figure.savefig(path, dpi=100)
    return path


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else whole(value)


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _page_lines(title: str, comparison: PageComparison) -> list[str]:
    lines = [f"### {title}", ""]
    lines.append(
        f"{comparison.received} received, {comparison.expected} expected (starting up to "
        f"{comparison.reach}), {comparison.matched} in the replay's log."
    )
    for heading, refs in (("Missing", comparison.missing), ("Unexpected", comparison.unexpected)):
        if refs:
            lines += ["", f"{heading}:", ""]
            lines += [
                f"- `{ref.slo}` {ref.severity} {ref.long_window} at {ref.starts_at}" for ref in refs
            ]
    return [*lines, ""]


def render_markdown(report: Report) -> list[str]:
    flow, spent, pages = report.throughput, report.latency, report.pages
    rows = [
        ("produced, events/s", _rate(flow.produced_per_second)),
        ("processed by the flow, events/s", _rate(flow.processed_per_second)),
        ("consumer lag, highest (events)", _count(report.lag.highest)),
        ("consumer lag, last sample (events)", _count(report.lag.last)),
        (
            "pages at Alertmanager: received / expected",
            f"{pages.alertmanager.received} / {pages.alertmanager.expected}",
        ),
        (
            "pages in the alert log: received / expected",
            f"{pages.alert_log.received} / {pages.alert_log.expected}",
        ),
        (
            f"event → page p50 / p95 / p99 (s), {spent.count} pages",
            f"{_seconds(spent.p50)} / {_seconds(spent.p95)} / {_seconds(spent.p99)}",
        ),
    ]
    source = report.input
    return [
        f"# Load test `{report.scenario}` at speed {report.speed}",
        "",
        f"{report.description[:1].upper()}{report.description[1:]} (burns `{report.slo}`).",
        "",
        f"Started {report.started_at} against the {report.flow} flow: "
        f"{source.events:,} events in {source.messages:,} messages, event time "
        f"{source.first_event} → {source.last_event}; produced in "
        f"{flow.produce_seconds:.2f} s, processed in {_seconds(flow.processed_seconds)} s.",
        "",
        "| measurement | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        f"![Consumer lag over time]({LAG_FIGURE})",
        "",
        f"![Event → page latency]({LATENCY_FIGURE})",
        "",
        f"## Pages ({pages.replay} in the offline replay's alert log)",
        "",
        *_page_lines("Alertmanager", pages.alertmanager),
        *_page_lines("Alert log topic", pages.alert_log),
        "How each number is measured: docs/loadtest.md in the revleak repository.",
    ]
