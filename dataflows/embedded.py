"""The CRM flow in process for the demo: change events in from the caller, pages and the
live state out to callbacks, no Kafka, Alertmanager or Redis.

It is live mode (dataflows/live.py) on one input partition fed through a queue: the early
lane pages as soon as the queue has been drained, the pager decides what Alertmanager
should hold, and the incident stage's live updates go to an :class:`InMemoryLiveState`.
The flow runs on Bytewax in a daemon thread until :meth:`EmbeddedFlow.close`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import StatefulSinkPartition
from bytewax.testing import run_main
from typing_extensions import override

from revleak.connectors.formats import decode_generic
from revleak.connectors.live_memory import InMemoryLiveState
from revleak.connectors.messages import Position
from revleak.connectors.metrics import PrometheusObserver
from revleak.crm.pipeline import ALERTS, DEAD_LETTERS, LIVE, PAGES, DecodedBatch, FlowConfig
from revleak.dataflows.crm import build_crm_flow
from revleak.dataflows.sinks import JsonLines, OutputSink, Target
from revleak.paging import Page
from revleak.slo.catalog import SloCatalog

logger = logging.getLogger(__name__)

PARTITION = 0
SOURCE = "crm"
ALERTS_FILE = "alerts.jsonl"
DEAD_LETTERS_FILE = "dead-letters.jsonl"
# With nothing queued, look again this much later rather than spin.
IDLE_POLL = timedelta(milliseconds=20)
BATCH_SIZE = 1000

PagesCallback = Callable[[list[Page]], None]


class _EndOfInput:
    """Queued by ``close``: everything before it is the whole input."""


_END = _EndOfInput()


class _QueuePartition(StatefulSourcePartition[DecodedBatch, int]):
    """The queue as one input partition in tail mode; its offsets count the messages."""

    def __init__(self, changes: queue.SimpleQueue[bytes | _EndOfInput], start: int) -> None:
        self._changes = changes
        self._next_offset = start
        self._caught_up = True
        self._done = False
        self._awake_at: datetime | None = None

    def next_batch(self) -> list[DecodedBatch]:
        if self._done:
            raise StopIteration
        self._awake_at = None
        items: list[Any] = []
        taken = 0
        while taken < BATCH_SIZE:
            try:
                raw = self._changes.get_nowait()
            except queue.Empty:
                break
            if isinstance(raw, _EndOfInput):
                self._done = True
                return [DecodedBatch(PARTITION, tuple(items), end=True, line_numbered=False)]
            events, dead_letters = decode_generic(
                raw, Position(SOURCE, PARTITION, self._next_offset, line_numbered=False)
            )
            items.extend(dead_letters)
            items.extend((event, raw) for event in events)
            self._next_offset += 1
            taken += 1
        if taken:
            self._caught_up = False
            return [DecodedBatch(PARTITION, tuple(items), line_numbered=False)]
        self._awake_at = datetime.now(UTC) + IDLE_POLL
        if not self._caught_up:
            # Drained: the early lane may evaluate its newest millisecond and page now.
            self._caught_up = True
            return [DecodedBatch(PARTITION, (), line_numbered=False, caught_up=True)]
        return []

    def next_awake(self) -> datetime | None:
        return self._awake_at

    def snapshot(self) -> int:
        return self._next_offset


class QueueSource(FixedPartitionedSource[DecodedBatch, int]):
    """Generic change events put into a queue, as the flow's single input partition."""

    def __init__(self) -> None:
        self._changes: queue.SimpleQueue[bytes | _EndOfInput] = queue.SimpleQueue()

    def put(self, raw: bytes) -> None:
        self._changes.put(raw)

    def end(self) -> None:
        """Nothing follows what was put so far."""
        self._changes.put(_END)

    def list_parts(self) -> list[str]:
        return [str(PARTITION)]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _QueuePartition:
        return _QueuePartition(self._changes, resume_state or 0)


@dataclass(frozen=True, slots=True)
class _Callback:
    """An output handed to a function of the caller's, one batch at a time."""

    deliver: Callable[[list[Any]], None]

    def open(self, resume: Any) -> StatefulSinkPartition[Any, Any]:  # noqa: ARG002
        return _CallbackPartition(self.deliver)


class _CallbackPartition(StatefulSinkPartition[Any, None]):
    def __init__(self, deliver: Callable[[list[Any]], None]) -> None:
        self._deliver = deliver

    def write_batch(self, values: list[Any]) -> None:
        self._deliver(values)

    def snapshot(self) -> None:
        return None


class EmbeddedFlow:
    """The CRM flow with paging, early pages and the live view, fed by :meth:`put`.

    ``on_pages`` gets each batch of page states the pager decides (as
    ``AlertmanagerSender.submit`` would), on the flow's thread; an exception from it is
    logged and the flow goes on. The alert log and dead letters are written as JSON lines
    into ``folder`` when one is given.
    """

    def __init__(
        self,
        catalog: SloCatalog,
        *,
        on_pages: PagesCallback,
        live: InMemoryLiveState,
        observer: PrometheusObserver | None = None,
        folder: Path | None = None,
    ) -> None:
        self._on_pages = on_pages
        self._source = QueueSource()
        targets: dict[str, Target | None] = {
            PAGES: _Callback(self._deliver_pages),
            LIVE: _Callback(live.apply),
            ALERTS: JsonLines(folder / ALERTS_FILE) if folder is not None else None,
            DEAD_LETTERS: JsonLines(folder / DEAD_LETTERS_FILE) if folder is not None else None,
        }
        config = FlowConfig(
            catalog=catalog,
            partitions=1,
            source=SOURCE,
            paging=True,
            early_pages=True,
            live_view=True,
        )
        self._flow = build_crm_flow(config, self._source, OutputSink(targets), observer)
        self._thread = threading.Thread(target=self._run, name="revleak-embedded", daemon=True)
        self._error: BaseException | None = None
        self._closed = False

    def start(self) -> None:
        """Run the flow on a daemon thread (Bytewax's single-worker runner)."""
        self._thread.start()

    def put(self, raw: bytes) -> None:
        """One generic change event (JSON bytes); a bad one becomes a dead letter."""
        if self._closed:
            raise RuntimeError("the embedded flow is closed")
        if self._error is not None:
            raise RuntimeError("the embedded flow has stopped") from self._error
        self._source.put(raw)

    def close(self, timeout_s: float = 30) -> None:
        """End the input (the watermark goes to +∞) and wait for the flow to finish."""
        if not self._closed:
            self._closed = True
            self._source.end()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise TimeoutError(f"the embedded flow did not finish within {timeout_s} s")

    @property
    def error(self) -> BaseException | None:
        """Why the flow's thread died, if it did."""
        return self._error

    def _run(self) -> None:
        try:
            run_main(self._flow)  # type: ignore[no-untyped-call]
        except BaseException as error:  # kept for the caller, who cannot see this thread
            logger.exception("the embedded CRM flow stopped")
            self._error = error

    def _deliver_pages(self, batches: list[tuple[Page, ...]]) -> None:
        pages = [page for batch in batches for page in batch]
        if not pages:
            return
        try:
            self._on_pages(pages)
        except Exception:  # a receiver's failure must not stop the flow
            logger.exception("pages callback failed for %d pages", len(pages))
