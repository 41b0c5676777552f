"""Run the CRM pipeline stages in-process, with any delivery order.

The Bytewax flow delivers ticks in whatever order its workers produce them;
this harness can deliver them in a seeded random order, including reordering
ticks of the same channel, to show the outputs do not depend on it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revleak.connectors.generic_json import decode_change
from revleak.connectors.messages import Decoder, Position
from revleak.crm.events import ChangeEvent
from revleak.crm.pipeline import (
    ALERTS,
    DEAD_LETTERS,
    LIVE,
    PAGER,
    PAGER_FEED,
    PAGES,
    ROOT_CAUSES,
    TIMELINE,
    DecodedBatch,
    FlowConfig,
    build_stage,
    is_output,
)
from revleak.deadletter import DeadLetter
from revleak.observe import NullObserver, Observer
from revleak.paging import Page
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import SloCatalog
from revleak.slo.incident import LiveUpdate, TimelineEntry
from revleak.slo.loader import load_catalog
from revleak.telemetry.explain import RootCause
from revleak.timefmt import format_timestamp


@dataclass(slots=True)
class FlowOutputs:
    """Everything a run produced, in the order it was produced."""

    alerts: list[AlertTransition] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    live: list[LiveUpdate] = field(default_factory=list)
    root_causes: list[RootCause] = field(default_factory=list)

    def collect(self, destination: Hashable, item: Any) -> None:
        if destination == ROOT_CAUSES:
            self.root_causes.append(item)
        elif destination == PAGES:
            self.pages.extend(item)
        elif destination == LIVE:
            self.live.append(item)
        elif destination == ALERTS:
            self.alerts.append(item)
        elif destination == TIMELINE:
            self.timeline.append(item)
        elif destination == DEAD_LETTERS:
            self.dead_letters.append(item)
        else:
            raise ValueError(f"not an output: {destination!r}")


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SLOS = ROOT / "slos" / "crm.yaml"


def default_catalog() -> SloCatalog:
    return load_catalog(DEFAULT_SLOS)


def decode_batches(
    lines: Sequence[bytes], *, partition: int = 0, batch_size: int = 100
) -> list[DecodedBatch]:
    items: list[Any] = []
    for offset, raw in enumerate(lines, start=1):
        decoded = decode_change(raw, partition=partition, offset=offset, source="crm")
        if decoded is None:
            continue
        items.append(decoded if not hasattr(decoded, "record_id") else (decoded, raw))
    batches = [
        DecodedBatch(partition, tuple(items[start : start + batch_size]))
        for start in range(0, len(items), batch_size)
    ]
    return [*batches, DecodedBatch(partition, (), end=True)]


def run_pipeline(
    config: FlowConfig,
    partitions: Sequence[Sequence[DecodedBatch]],
    *,
    seed: int | None = None,
    observer: Observer | None = None,
) -> FlowOutputs:
    observer = observer or NullObserver()
    rng = random.Random(seed) if seed is not None else None
    # The early lane first: in a running flow it is ahead of the final lane.
    lanes = [config.early_lane(), config] if config.early_pages else [config]
    sequencers = [
        build_stage(config, lane.input_key(index), observer)
        for lane in lanes
        for index in range(len(partitions))
    ]
    stages: dict[str, Any] = {}
    outputs = FlowOutputs()
    in_flight: list[tuple[Any, Any]] = []
    feeds = [list(batches) for _ in lanes for batches in partitions]

    def route(sent: list[tuple[Any, Any]]) -> None:
        for destination, item in sent:
            if destination == PAGER_FEED:
                in_flight.append((PAGER, item))
            elif is_output(destination):
                outputs.collect(destination, item)
            else:
                in_flight.append((destination, item))

    while any(feeds) or in_flight:
        if rng is None:
            if in_flight:
                destination, tick = in_flight.pop(0)
            else:
                # Round robin: the lanes and partitions move forward together.
                index = max((i for i, feed in enumerate(feeds) if feed), key=_length_of(feeds))
                route(sequencers[index].receive(feeds[index].pop(0)))
                continue
        else:
            choices = len(in_flight) + sum(1 for feed in feeds if feed)
            pick = rng.randrange(choices)
            if pick >= len(in_flight):
                index = [i for i, feed in enumerate(feeds) if feed][pick - len(in_flight)]
                route(sequencers[index].receive(feeds[index].pop(0)))
                continue
            destination, tick = in_flight.pop(pick)
        stage = stages.get(destination)
        if stage is None:
            stage = stages[destination] = build_stage(config, destination, observer)
        route(stage.receive(tick))
    return outputs


def _length_of(feeds: list[list[DecodedBatch]]) -> Any:
    return lambda index: len(feeds[index])


def replay_lines(
    lines: Sequence[bytes],
    *,
    catalog: SloCatalog | None = None,
    shards: int = 4,
    batch_size: int = 100,
    seed: int | None = None,
    observer: Observer | None = None,
) -> FlowOutputs:
    config = FlowConfig(catalog=catalog or default_catalog(), shards=shards)
    return run_pipeline(
        config, [decode_batches(lines, batch_size=batch_size)], seed=seed, observer=observer
    )


def vendor_batches(
    lines: Sequence[bytes], decoder: Decoder, *, partition: int = 0, batch_size: int = 100
) -> list[DecodedBatch]:
    """What the change-log source makes of vendor messages, one a line."""
    items: list[Any] = []
    for offset, raw in enumerate(lines, start=1):
        events, dead_letters = decoder(raw, Position("crm", partition, offset))
        items.extend(dead_letters)
        items.extend((change, raw) for change in events)
    batches = [
        DecodedBatch(partition, tuple(items[start : start + batch_size]))
        for start in range(0, len(items), batch_size)
    ]
    return [*batches, DecodedBatch(partition, (), end=True)]


def generic_line(change: ChangeEvent) -> bytes:
    """A change event as a generic JSON line (times as ISO-8601 with Z)."""
    fields = {
        name: format_timestamp(value)
        if name in {"created_at", "last_touch_at"} and isinstance(value, int)
        else value
        for name, value in change.fields.items()
    }
    return json.dumps(
        {
            "event_id": change.event_id,
            "ts": format_timestamp(change.ts),
            "object": change.object.value,
            "op": change.op.value,
            "record_id": change.record_id,
            "fields": fields,
        }
    ).encode()


def replay_vendor_and_generic(
    lines: Sequence[bytes], decoder: Decoder, *, batch_size: int
) -> tuple[FlowOutputs, FlowOutputs]:
    """Replay vendor messages, and the same changes written as generic JSON lines."""
    config = FlowConfig(catalog=default_catalog(), shards=4)
    vendor = run_pipeline(config, [vendor_batches(lines, decoder, batch_size=batch_size)])
    generic_lines = [
        generic_line(change)
        for offset, raw in enumerate(lines, start=1)
        for change in decoder(raw, Position("crm", 0, offset)).events
    ]
    return vendor, run_pipeline(config, [decode_batches(generic_lines)])
