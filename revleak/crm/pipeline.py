"""The CRM flow as stages that exchange :class:`~revleak.ordering.Tick` messages.

::

    input partition p ──> Sequencer[p] ──> Records[shard] ──> SLO[lead_response|deal_velocity|
                          (lateness,       (record state,   │      next_step_hygiene]
                           watermark)       deadlines)      └─> Domains[shard] ──> SLO[data_quality]
                                                                                      │
                                          Incident (one) <────────────────────────────┘
                                          (ordered alert log, consumption, severity, timeline)

Every stage is keyed (a shard, an SLO, the one incident) and pure: it turns the
ticks it receives into the ticks it sends. The Bytewax flow in
:mod:`revleak.dataflows.crm` runs each stage as one keyed step; tests run the
same stages in-process with any delivery order. Because each stage releases
its inputs in event-time order only once every upstream watermark has passed
them, the outputs are the same for any number of workers and any batch size.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from revleak import conventions, deadletter
from revleak.crm import domains
from revleak.crm.events import ChangeEvent
from revleak.crm.quality import DuplicateVerdict, Half, QualityCheck, assess
from revleak.crm.records import RecordShard
from revleak.deadletter import DeadLetter
from revleak.observe import NullObserver, Observer
from revleak.ordering import NEVER, OrderedMerge, Tick, TickWriter
from revleak.paging import EARLY, FINAL, AlertBook, Explanation, Page, PagerFeed
from revleak.sli import LeakChange, SliEvent
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import Indicator, SloCatalog
from revleak.slo.evaluator import SloEvaluator
from revleak.slo.incident import IncidentItem, IncidentTracker
from revleak.telemetry.explain import Explainer
from revleak.telemetry.model import MetricPoint, Span, TelemetryItem
from revleak.telemetry.sli import ConversionCount, ConversionJudge, TelemetryShard, instance_of
from revleak.timefmt import END_OF_TIME_MS, format_timestamp

T = TypeVar("T")
InputItem = ChangeEvent | TelemetryItem

INPUT = "input"
RECORDS = "records"
DOMAINS = "domains"
SLO = "slo"
INCIDENT = "incident"
PAGER = "pager"
ANALYSIS = "analysis"
ALERTS = "out:alerts"
TIMELINE = "out:timeline"
DEAD_LETTERS = "out:dead_letters"
PAGER_FEED = "out:pager_feed"  # both lanes' transitions, for the pager stage
PAGES = "out:pages"  # what Alertmanager must be told
LIVE = "out:live"  # blast radius and incident summary for live views
ROOT_CAUSES = "out:root_causes"  # the ranked causes of each telemetry page
EARLY_LANE = "early:"
LISTED_LATE = 10  # late items a message's dead letter names (it counts them all)


def stable_shard(key: str, shards: int) -> int:
    """A shard that does not depend on the process (unlike ``hash``)."""
    return zlib.crc32(key.encode("utf-8")) % shards


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """One lane of the flow.

    The final lane computes the alert log. The optional early lane (keys prefixed
    ``early:``) runs the same stages with no allowed lateness, so rules are also
    evaluated over what has arrived and pages need not wait for the watermark
    (docs/semantics.md §4); it drops what it sees out of order, which the final lane
    then corrects.
    """

    catalog: SloCatalog
    partitions: int = 1
    shards: int = 8
    allowed_lateness_ms: int = 60_000
    early_lateness_ms: int = 0  # the early lane's (below)
    source: str = "crm"
    lane: str = ""
    paging: bool = False  # feed the pager stage
    early_pages: bool = False  # run the early lane too
    live_view: bool = False  # send blast-radius and incident updates
    # The source of each input partition when they differ (a telemetry flow reads a topic of
    # spans and one of metric points); ``source`` for all when empty.
    partition_sources: tuple[str, ...] = ()

    def source_of(self, partition: int) -> str:
        if partition < len(self.partition_sources):
            return self.partition_sources[partition]
        return self.source

    def early_lane(self) -> FlowConfig:
        # The watermark is the newest event time, less ``early_lateness_ms``: what arrived
        # before it is released at once, and the newest millisecond when the input catches
        # up. An input whose messages each span some time in no order (a batch of spans)
        # sets it to that span, or the early lane would drop most of them as out of order.
        lateness = min(self.allowed_lateness_ms, self.early_lateness_ms)
        return replace(self, lane=EARLY_LANE, allowed_lateness_ms=lateness, live_view=False)

    @property
    def speculative(self) -> bool:
        return self.lane == EARLY_LANE

    @property
    def reads_telemetry(self) -> bool:
        """A telemetry flow (spans and metric points) rather than a CRM one."""
        return bool(self.catalog.telemetry_slos)

    def record_key(self, event: InputItem) -> str:
        # A trace's spans, and an instance's metric points, meet in one shard.
        if isinstance(event, Span):
            routing = event.trace_id
        elif isinstance(event, MetricPoint):
            routing = f"{event.service}/{instance_of(event)}"
        else:
            routing = event.object.value + ":" + event.record_id
        return f"{self.lane}{RECORDS}/{stable_shard(routing, self.shards)}"

    def domain_key(self, routing_key: str) -> str:
        return f"{self.lane}{DOMAINS}/{stable_shard(routing_key, self.shards)}"

    def slo_key(self, slo: str) -> str:
        return f"{self.lane}{SLO}/{slo}"

    def input_key(self, partition: int) -> str:
        return f"{self.lane}{INPUT}/{partition}"

    @property
    def incident_key(self) -> str:
        return f"{self.lane}{INCIDENT}"

    @property
    def analysis_keys(self) -> list[str]:
        """Root-cause analysis: the final lane of a telemetry flow has it."""
        return [ANALYSIS] if self.reads_telemetry and not self.speculative else []

    @property
    def record_keys(self) -> list[str]:
        return [f"{self.lane}{RECORDS}/{shard}" for shard in range(self.shards)]

    @property
    def domain_keys(self) -> list[str]:
        """Partitions of the duplicate index; none when no SLO checks data quality."""
        if self.quality_slo is None:
            return []
        return [f"{self.lane}{DOMAINS}/{shard}" for shard in range(self.shards)]

    @property
    def quality_slo(self) -> str | None:
        slo = self.catalog.for_indicator(Indicator.DATA_QUALITY)
        return slo.name if slo is not None else None

    @property
    def timed_slo_keys(self) -> list[str]:
        return [
            self.slo_key(slo.name)
            for slo in self.catalog.slos
            if slo.indicator is not Indicator.DATA_QUALITY
        ]

    @property
    def slo_keys(self) -> list[str]:
        return [self.slo_key(slo.name) for slo in self.catalog.slos]


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """What the decoder made of one batch of one input partition, in input order."""

    partition: int
    items: tuple[tuple[InputItem, bytes] | DeadLetter, ...]
    end: bool = False
    line_numbered: bool = True  # event offsets are line numbers (files), not topic offsets
    idle: bool = False  # live input: nothing arrived for the idle timeout (docs/semantics.md §1)
    caught_up: bool = False  # live input: the partition has been read to its current end


Sent = tuple[Hashable, Any]  # (destination key, Tick or output record)


class Stage:
    """A keyed stage. Its state pickles (for recovery) without the observer, which a
    restored stage gets back through :meth:`attach`."""

    _observer: Observer = NullObserver()

    def attach(self, observer: Observer) -> None:
        self._observer = observer

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_observer", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class Sequencer(Stage):
    """Lateness and watermark of one input partition (docs/semantics.md §1).

    ``W = max event time seen − allowed lateness``; an event older than W is late
    and dead-lettered. Judging lateness per partition, in input order, makes the
    decision independent of how fast other partitions are read.
    """

    def __init__(self, config: FlowConfig, partition: int, observer: Observer) -> None:
        self._config = config
        self._partition = partition
        self._observer = observer
        self._max_time = NEVER
        self._watermark = NEVER
        self._writer: TickWriter[InputItem] = TickWriter(f"p{partition}", config.record_keys)

    def receive(self, batch: DecodedBatch) -> list[Sent]:
        config, source = self._config, self._config.source_of(self._partition)
        by_shard: dict[Hashable, list[InputItem]] = defaultdict(list)
        sent: list[Sent] = []
        accepted = 0
        dead = 0
        speculative = config.speculative
        late_in_message: dict[int, tuple[bytes, list[TelemetryItem]]] = {}
        for item in batch.items:
            if not isinstance(item, tuple):  # a plain-class check: pydantic's is an ABC lookup
                if speculative:
                    continue
                sent.append((DEAD_LETTERS, item))
                self._observer.dead_letter(source, item.reason)
                dead += 1
                continue
            event, raw = item
            if event.ts < self._watermark:
                if not speculative:
                    if isinstance(event, ChangeEvent):
                        sent.append((DEAD_LETTERS, self._late(event, raw, batch)))
                    else:
                        late_in_message.setdefault(event.offset, (raw, []))[1].append(event)
                    continue
                if event.ts < self._watermark - 1:
                    continue  # out of order: the final lane sees it in its place
                # Arrived after its millisecond was evaluated (the input had caught up):
                # the early lane counts it at the next millisecond rather than lose it.
                event = event._replace(ts=self._watermark)
            accepted += 1
            by_shard[config.record_key(event)].append(event)
            if event.ts > self._max_time:
                self._max_time = event.ts
                self._watermark = event.ts - config.allowed_lateness_ms
        sent.extend(
            (DEAD_LETTERS, self._late_items(items, raw, batch))
            for raw, items in late_in_message.values()
        )
        if dead:
            self._observer.events(source, conventions.DEAD_LETTER, dead)
        if accepted:
            self._observer.events(source, conventions.ACCEPTED, accepted)
        if batch.caught_up and speculative and self._max_time != NEVER:
            # Nothing more has arrived: the early lane evaluates its newest millisecond
            # too (a change at that time arriving later counts at the next one).
            self._watermark = max(self._watermark, self._max_time + 1)
        if self._max_time != NEVER:
            self._observer.watermark_lag(source, self._partition, self._max_time - self._watermark)
        watermark = END_OF_TIME_MS if batch.end else self._watermark
        return sent + self._writer.write(watermark, by_shard, idle=batch.idle)

    def _late(self, event: InputItem, raw: bytes, batch: DecodedBatch) -> DeadLetter:
        source = self._config.source_of(self._partition)
        self._observer.dead_letter(source, deadletter.LATE)
        self._observer.events(source, conventions.LATE, 1)
        return DeadLetter.of(
            source=source,
            reason=deadletter.LATE,
            detail=f"event time {format_timestamp(event.ts)} is behind the watermark "
            f"{format_timestamp(self._watermark)}",
            partition=event.partition,
            raw=raw,
            event_time=format_timestamp(event.ts),
            line=event.offset if batch.line_numbered else None,
            offset=None if batch.line_numbered else event.offset,
        )


    def _late_items(
        self, items: list[TelemetryItem], raw: bytes, batch: DecodedBatch
    ) -> DeadLetter:
        """One dead letter for the late spans or points of one message: a batch of
        thousands carries its bytes once, not once per item."""
        source = self._config.source_of(self._partition)
        self._observer.dead_letter(source, deadletter.LATE)
        self._observer.events(source, conventions.LATE, len(items))
        listed = ", ".join(
            f"{_item_name(item)} at {format_timestamp(item.ts)}" for item in items[:LISTED_LATE]
        )
        more = f" and {len(items) - LISTED_LATE} more" if len(items) > LISTED_LATE else ""
        first = min(item.ts for item in items)
        return DeadLetter.of(
            source=source,
            reason=deadletter.LATE,
            detail=f"{len(items)} of the message's items are behind the watermark "
            f"{format_timestamp(self._watermark)}: {listed}{more}",
            partition=items[0].partition,
            raw=raw,
            event_time=format_timestamp(first),
            line=items[0].offset if batch.line_numbered else None,
            offset=None if batch.line_numbered else items[0].offset,
        )


def _item_name(item: TelemetryItem) -> str:
    if isinstance(item, Span):
        return f"span {item.span_id} ({item.service} {item.name})"
    return f"point {item.metric} ({item.service})"


class _MergingStage(Stage, Generic[T]):
    def __init__(self, merge: OrderedMerge[T]) -> None:
        self._merge = merge

    def receive(self, tick: Tick[T]) -> list[Sent]:
        self._merge.receive(tick)
        released = self._merge.release()
        if released is None:
            return []
        items, watermark = released
        return self._advance(items, watermark)

    def _advance(self, items: list[T], watermark: int) -> list[Sent]:
        raise NotImplementedError


class RecordStage(_MergingStage[InputItem]):
    """One shard of the records (CRM) or of the traces and metric series (telemetry)."""

    def __init__(self, config: FlowConfig, key: str, observer: Observer) -> None:
        senders = [f"p{partition}" for partition in range(config.partitions)]
        super().__init__(
            OrderedMerge(senders, time_of=_event_time, order_of=_event_order),
        )
        self._config = config
        self._key = key
        self._observer = observer
        catalog = config.catalog
        self._shard: RecordShard | TelemetryShard = (
            TelemetryShard(catalog) if config.reads_telemetry else RecordShard(catalog)
        )
        self._writer: TickWriter[Any] = TickWriter(
            key, [*config.domain_keys, *config.timed_slo_keys, *config.analysis_keys]
        )

    def receive(self, tick: Tick[InputItem]) -> list[Sent]:
        sent = super().receive(tick)
        late = self._merge.take_late()
        if late and not self._config.speculative:
            sent.extend(self._late_after_idle(late))
        return sent

    def _late_after_idle(self, events: list[InputItem]) -> list[Sent]:
        """Events of a partition that resumed after the watermark moved on without it.

        Only the sequencer holds original bytes; these dead letters point at the
        message (partition and offset) and the sink copies it from the source.
        """
        sent: list[Sent] = []
        for event in events:
            source = self._config.source_of(event.partition)
            sent.append(
                (
                    DEAD_LETTERS,
                    DeadLetter(
                        source=source,
                        reason=deadletter.LATE,
                        detail=f"event time {format_timestamp(event.ts)} is behind the watermark "
                        f"{format_timestamp(self._merge.watermark)}, which moved on while "
                        f"partition {event.partition} was idle",
                        partition=event.partition,
                        offset=event.offset,
                        event_time=format_timestamp(event.ts),
                    ),
                )
            )
            self._observer.dead_letter(source, deadletter.LATE)
            self._observer.events(source, conventions.LATE, 1)
        return sent

    def _advance(self, items: list[InputItem], watermark: int) -> list[Sent]:
        if isinstance(self._shard, TelemetryShard):
            return self._advance_telemetry(self._shard, items, watermark)  # type: ignore[arg-type]
        output = self._shard.advance(items, watermark)  # type: ignore[arg-type]
        self._observer.record_state(self._key, self._shard.open_records, self._shard.closed_records)
        config = self._config
        by_destination: dict[Hashable, list[Any]] = defaultdict(list)
        for event in output.sli_events:
            by_destination[config.slo_key(event.slo)].append(event)
        for leak in output.leaks:
            by_destination[config.slo_key(leak.slo)].append(leak)
        for check in output.checks:
            for routing_key, half in domains.routes(check):
                by_destination[config.domain_key(routing_key)].append((check, half))
        return self._writer.write(watermark, by_destination)

    def _advance_telemetry(
        self, shard: TelemetryShard, items: list[TelemetryItem], watermark: int
    ) -> list[Sent]:
        output = shard.advance(items, watermark)
        self._observer.record_state(self._key, shard.open_records, shard.closed_records)
        if not self._config.speculative:
            for (service, outcome), requests in output.requests.items():
                self._observer.requests(service, outcome, requests)
        slo_key = self._config.slo_key
        by_destination: dict[Hashable, list[Any]] = defaultdict(list)
        for event in output.sli_events:
            by_destination[slo_key(event.slo)].append(event)
        for count in output.conversions:
            by_destination[slo_key(count.slo)].append(count)
        for key in self._config.analysis_keys:
            if items:
                by_destination[key].extend(items)
        return self._writer.write(watermark, by_destination)


class DomainStage(_MergingStage[tuple[QualityCheck, Half]]):
    def __init__(self, config: FlowConfig, key: str) -> None:
        senders = config.record_keys
        super().__init__(
            OrderedMerge(senders, time_of=_request_time, order_of=_request_order),
        )
        self._index = domains.DomainIndex()
        slo = config.quality_slo
        assert slo is not None
        self._destination = config.slo_key(slo)
        self._writer: TickWriter[DuplicateVerdict] = TickWriter(key, [self._destination])

    def _advance(self, items: list[tuple[QualityCheck, Half]], watermark: int) -> list[Sent]:
        verdicts = self._index.advance(items)
        return self._writer.write(watermark, {self._destination: verdicts} if verdicts else {})


class SloStage(_MergingStage[Any]):
    """One SLO: windows, burn rates and alerts; data_quality first settles its checks."""

    def __init__(self, config: FlowConfig, key: str, observer: Observer) -> None:
        name = key.removeprefix(config.slo_key(""))
        slo = config.catalog.by_name(name)
        self._quality = slo.indicator is Indicator.DATA_QUALITY
        senders = config.domain_keys if self._quality else config.record_keys
        # Within one time, only a domain change's two halves need a fixed order; everything
        # else commutes, and a stable sort keeps each sender's own order.
        order = _item_order if self._quality else _item_time
        super().__init__(OrderedMerge(senders, time_of=_item_time, order_of=order))
        self._slo = slo
        self._observer = observer
        self._conversion = ConversionJudge(slo) if slo.indicator is Indicator.CONVERSION else None
        budget = config.catalog.budget_usd(slo) if slo.is_revenue else None
        self._evaluator = SloEvaluator(slo, budget)
        self._incident = config.incident_key
        self._writer: TickWriter[IncidentItem] = TickWriter(key, [self._incident])

    def _advance(self, items: list[Any], watermark: int) -> list[Sent]:
        inputs: list[Any]
        if self._quality:
            inputs = self._settle_quality(items)
        elif self._conversion is not None:
            inputs = self._conversion.judge([i for i in items if isinstance(i, ConversionCount)])
        else:
            inputs = items
        output = self._evaluator.advance(inputs, watermark)
        events = [item for item in inputs if isinstance(item, SliEvent)]
        if events:
            bad = [event for event in events if not event.good]
            self._observer.sli_events(
                self._slo.name,
                good=len(events) - len(bad),
                bad=len(bad),
                good_usd=sum(event.weight_usd for event in events if event.good),
                bad_usd=sum(event.weight_usd for event in bad),
            )
        self._observer.slo_snapshot(self._evaluator.snapshot())
        outgoing: list[IncidentItem] = [*output.leaks, *output.budget_updates, *output.transitions]
        return self._writer.write(watermark, {self._incident: outgoing} if outgoing else {})

    def _settle_quality(self, verdicts: list[DuplicateVerdict]) -> list[SliEvent | LeakChange]:
        settled: list[SliEvent | LeakChange] = []
        leaving: DuplicateVerdict | None = None
        for verdict in verdicts:
            if verdict.half is Half.LEAVE:
                leaving = verdict
                continue
            duplicate_before = verdict.duplicate_before
            if verdict.half is Half.JOIN:
                if leaving is None or leaving.check.order != verdict.check.order:
                    raise AssertionError("a change of domain arrived without its leaving half")
                duplicate_before = leaving.duplicate_before
                leaving = None
            events, leaks = assess(
                verdict.check,
                duplicate_before=duplicate_before,
                duplicate_after=verdict.duplicate_after,
                slo=self._slo,
            )
            settled.extend(leaks)
            settled.extend(events)
        return settled


class IncidentStage(_MergingStage[IncidentItem]):
    def __init__(self, config: FlowConfig, observer: Observer) -> None:
        senders = config.slo_keys
        super().__init__(OrderedMerge(senders, time_of=_item_time, order_of=_item_order))
        self._config = config
        self._tracker = IncidentTracker(config.catalog)
        self._observer = observer
        self._feeds = 0  # numbers the pager feeds, which the pager applies in order
        self._analysis: TickWriter[Any] = TickWriter(config.incident_key, config.analysis_keys)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # Live views may have missed what happened after this snapshot was taken.
        self._tracker.restart_live_view()

    def _advance(self, items: list[IncidentItem], watermark: int) -> list[Sent]:
        config = self._config
        output = self._tracker.advance(items)
        sent: list[Sent] = []
        if config.paging:
            lane = EARLY if config.speculative else FINAL
            sent.append((PAGER_FEED, PagerFeed(lane, self._feeds, tuple(output.alerts), watermark)))
            self._feeds += 1
        if config.speculative:
            return sent
        self._observer.incident_snapshot(self._tracker.snapshot(detail=watermark >= END_OF_TIME_MS))
        sent.extend((ALERTS, transition) for transition in output.alerts)
        sent.extend((TIMELINE, entry) for entry in output.timeline)
        if config.analysis_keys:
            sent.extend(self._analysis.write(watermark, {ANALYSIS: list(output.alerts)}))
        if config.live_view:
            sent.append((LIVE, self._tracker.live_update(output.alerts)))
        return sent


class AnalysisStage(_MergingStage[Any]):
    """Root causes: every shard's spans and metric points, and the incident's alert
    transitions, merged in event time, so a page is explained with every span up to the
    moment it fired. The explanation goes to the pager (annotations of the page) and out."""

    def __init__(self, config: FlowConfig, observer: Observer) -> None:
        senders = [*config.record_keys, config.incident_key]
        super().__init__(OrderedMerge(senders, time_of=_analysis_time, order_of=_analysis_order))
        self._explainer = Explainer(config.catalog)
        self._paging = config.paging
        self._observer = observer

    def _advance(self, items: list[Any], watermark: int) -> list[Sent]:
        sent: list[Sent] = []
        telemetry: list[TelemetryItem] = []
        for item in items:
            if isinstance(item, AlertTransition):
                self._explainer.add(telemetry)
                telemetry = []
                cause = self._explainer.transition(item)
                if cause is not None:
                    sent.append((ROOT_CAUSES, cause))
                    top = cause.annotations()
                    self._observer.root_cause(
                        cause.slo, top.get("cause", "unknown"), top.get("cause_service", "")
                    )
                    if self._paging:
                        sent.append((PAGER_FEED, Explanation(cause.slo, cause.annotations())))
            else:
                telemetry.append(item)
        self._explainer.add(telemetry)
        self._explainer.forget_before(watermark)
        return sent


class PagerStage(Stage):
    """Both lanes' alert transitions in, the pages Alertmanager must hold out (each
    state numbered, so the sink can deliver them exactly once across restarts)."""

    def __init__(self, config: FlowConfig, observer: Observer) -> None:
        self._book = AlertBook(config.catalog, early_lane=config.early_pages)
        self._observer = observer
        self._next: dict[str, int] = {EARLY: 0, FINAL: 0}
        self._waiting: dict[tuple[str, int], PagerFeed] = {}

    def receive(self, feed: PagerFeed | Explanation) -> list[Sent]:
        if isinstance(feed, Explanation):
            explained = self._book.explain(feed.slo, feed.annotations)
            return [(PAGES, tuple(explained))] if explained else []
        self._waiting[(feed.lane, feed.seq)] = feed
        corrections = self._book.corrections
        changed: list[Page] = []
        ready = self._waiting.pop((feed.lane, self._next[feed.lane]), None)
        while ready is not None:
            changed.extend(self._book.receive(ready))
            self._next[ready.lane] = ready.seq + 1
            ready = self._waiting.pop((ready.lane, ready.seq + 1), None)
        if self._book.corrections > corrections:
            self._observer.alert_corrections(self._book.corrections - corrections)
        return [(PAGES, tuple(changed))] if changed else []


def build_stage(config: FlowConfig, key: str, observer: Observer | None = None) -> Any:
    """The stage that owns ``key``."""
    observer = observer or NullObserver()
    if key == PAGER:
        return PagerStage(config, observer)
    if key.startswith(EARLY_LANE):
        # The early lane is speculative: it reports nothing, the final lane does.
        config, observer = config.early_lane(), NullObserver()
    kind_key = key.removeprefix(EARLY_LANE)
    if kind_key.startswith(f"{INPUT}/"):
        return Sequencer(config, int(kind_key.removeprefix(f"{INPUT}/")), observer)
    if kind_key.startswith(f"{RECORDS}/"):
        return RecordStage(config, key, observer)
    if kind_key.startswith(f"{DOMAINS}/"):
        return DomainStage(config, key)
    if kind_key.startswith(f"{SLO}/"):
        return SloStage(config, key, observer)
    if kind_key == INCIDENT:
        return IncidentStage(config, observer)
    if kind_key == ANALYSIS:
        return AnalysisStage(config, observer)
    raise ValueError(f"no stage owns {key!r}")


def input_key(partition: int) -> str:
    return f"{INPUT}/{partition}"


def kind_of(key: str) -> str:
    """The stage kind a key belongs to in either lane: ``records``, ``slo``…"""
    return key.removeprefix(EARLY_LANE).partition("/")[0]


def is_output(destination: Hashable) -> bool:
    return isinstance(destination, str) and destination.startswith("out:")


def _event_time(event: InputItem) -> int:
    return event.ts


def _event_order(event: InputItem) -> tuple[int, int, int, int]:
    return event.order


def _request_time(request: tuple[QualityCheck, Half]) -> int:
    return request[0].time


def _request_order(request: tuple[QualityCheck, Half]) -> tuple[int, int, int, int, int]:
    check, half = request
    return (*check.order, 0 if half is Half.LEAVE else 1)


def _analysis_time(item: Any) -> int:
    return int(item.at) if isinstance(item, AlertTransition) else int(item.ts)


def _analysis_order(item: Any) -> tuple[int, int, Any]:
    # At one time, spans first: a page is explained with the spans of its own millisecond.
    # Among spans any order will do (the analysis does not depend on it), which spares
    # building each one's full order key.
    if isinstance(item, AlertTransition):
        return (item.at, 1, item.order)
    return (item.ts, 0, 0)


def _item_time(item: Any) -> int:
    return int(item.time)


def _item_order(item: Any) -> Any:
    return item.order
