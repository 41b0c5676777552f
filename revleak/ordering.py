"""Event-time order across parallel senders.

Each stage of a flow receives :class:`Tick` messages from a fixed set of
upstream senders. A tick carries the items a sender produced and the sender's
watermark: a promise that it will never again send an item with an earlier
time. :class:`OrderedMerge` keeps the items until *every* sender's watermark
has passed them and then releases them sorted by their order key, so what a
stage computes depends only on its inputs, never on which worker delivered
what first. Sequence numbers make it independent of delivery order too.

A sender can also declare itself **idle** (a live input partition with nothing
to read for a while, docs/semantics.md §1): it then stops holding the watermark back.
When it sends again, whatever it sends behind the watermark that moved on
without it is **late**: kept apart for the stage to dead-letter, not applied.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")
NEVER = -(1 << 62)


class Tick(NamedTuple, Generic[T]):
    sender: str
    seq: int
    watermark: int
    items: tuple[T, ...] = ()
    idle: bool = False  # the sender has nothing to send for now: do not wait for it


class OrderViolationError(RuntimeError):
    """An item arrived behind the watermark: an upstream stage broke its promise."""


class OrderedMerge(Generic[T]):
    def __init__(
        self,
        senders: Iterable[str],
        *,
        time_of: Callable[[T], int],
        order_of: Callable[[T], Any],
    ) -> None:
        self._senders = frozenset(senders)
        if not self._senders:
            raise ValueError("an ordered merge needs at least one sender")
        self._time_of = time_of
        self._order_of = order_of
        self._marks: dict[str, int] = dict.fromkeys(self._senders, NEVER)
        self._next_seq: dict[str, int] = dict.fromkeys(self._senders, 0)
        self._early: dict[tuple[str, int], Tick[T]] = {}
        self._pending: list[T] = []
        self._idle: set[str] = set()
        # Senders that were idle and have not yet caught up with the watermark.
        self._behind: set[str] = set()
        self._late: list[T] = []
        self.watermark = NEVER

    @property
    def pending(self) -> int:
        return len(self._pending)

    def receive(self, tick: Tick[T]) -> None:
        if tick.sender not in self._senders:
            raise ValueError(f"unexpected sender {tick.sender!r}")
        if tick.seq != self._next_seq[tick.sender]:
            self._early[(tick.sender, tick.seq)] = tick
            return
        self._accept(tick)
        following = self._early.pop((tick.sender, tick.seq + 1), None)
        while following is not None:
            self._accept(following)
            following = self._early.pop((following.sender, following.seq + 1), None)

    def take_late(self) -> list[T]:
        """Items a sender sent behind the watermark after being idle (see the module doc)."""
        late, self._late = self._late, []
        return late

    def release(self) -> tuple[list[T], int] | None:
        """Items below the common watermark, in order, with it; None if it did not move."""
        marks = self._marks
        active = [marks[sender] for sender in self._senders if sender not in self._idle]
        # With every sender idle, nothing holds back what they have already promised.
        watermark = min(active) if active else max(marks.values())
        if watermark <= self.watermark:
            return None
        self.watermark = watermark
        pending = self._pending
        pending.sort(key=self._order_of)
        time_of = self._time_of
        cut = len(pending)
        while cut and time_of(pending[cut - 1]) >= watermark:
            cut -= 1
        released, self._pending = pending[:cut], pending[cut:]
        return released, watermark

    def _accept(self, tick: Tick[T]) -> None:
        sender = tick.sender
        self._next_seq[sender] = tick.seq + 1
        if tick.idle:
            self._idle.add(sender)
            self._behind.add(sender)
        elif sender in self._idle:
            self._idle.discard(sender)
        items = tick.items
        if any(self._time_of(item) < self.watermark for item in items):
            if sender not in self._behind:
                raise OrderViolationError(
                    f"{sender} sent an item behind watermark {self.watermark}"
                )
            self._late.extend(item for item in items if self._time_of(item) < self.watermark)
            items = tuple(item for item in items if self._time_of(item) >= self.watermark)
        self._pending.extend(items)
        self._marks[sender] = max(self._marks[sender], tick.watermark)
        if sender not in self._idle and self._marks[sender] >= self.watermark:
            self._behind.discard(sender)


class TickWriter(Generic[T]):
    """Numbers the ticks a sender sends to each of its destinations."""

    def __init__(self, sender: str, destinations: Sequence[Hashable]) -> None:
        self.sender = sender
        self._destinations = tuple(destinations)
        self._seq: dict[Hashable, int] = dict.fromkeys(self._destinations, 0)
        self._last_watermark = NEVER

    def write(
        self, watermark: int, items_by_destination: dict[Hashable, list[T]], *, idle: bool = False
    ) -> list[tuple[Hashable, Tick[T]]]:
        """One tick to every destination when the watermark moved or the sender fell idle,
        else only where items wait."""
        unknown = set(items_by_destination) - set(self._destinations)
        if unknown:
            raise ValueError(f"items for unknown destinations {sorted(map(str, unknown))}")
        moved = watermark > self._last_watermark or idle
        self._last_watermark = max(watermark, self._last_watermark)
        out: list[tuple[Hashable, Tick[T]]] = []
        for destination in self._destinations:
            items = items_by_destination.get(destination)
            if not moved and not items:
                continue
            seq = self._seq[destination]
            self._seq[destination] = seq + 1
            out.append(
                (
                    destination,
                    Tick(self.sender, seq, watermark, tuple(items) if items else (), idle),
                )
            )
        return out
