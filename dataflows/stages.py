"""Run a keyed pipeline stage (:mod:`revleak.crm.pipeline`) as a Bytewax step.

Bytewax builds a step's logic without telling it its key, so every message
carries its destination key and the logic builds its stage on the first one.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from revleak.crm.pipeline import Sent, is_output, kind_of
from revleak.observe import Observer

Addressed = tuple[str, Any]  # (destination key, tick or batch)
StageFactory = Callable[[str], Any]


class StageLogic(StatefulBatchLogic[Addressed, Sent, bytes | None]):
    """Feed messages to the stage that owns this key; emit what it sends.

    Bytewax asks for a snapshot at the end of every epoch, recovery or not; the
    stage is only pickled when the flow runs with recovery (``durable``).
    """

    def __init__(
        self, factory: StageFactory, observer: Observer, durable: bool, snapshot: bytes | None
    ) -> None:
        self._factory = factory
        self._durable = durable
        self._stage: Any = None
        if snapshot is not None:
            self._stage = pickle.loads(snapshot)
            self._stage.attach(observer)

    def on_batch(self, values: list[Addressed]) -> tuple[list[Sent], bool]:
        sent: list[Sent] = []
        for key, message in values:
            if self._stage is None:
                self._stage = self._factory(key)
            sent.extend(self._stage.receive(message))
        return sent, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        if not self._durable:
            return None
        # Pickled here so the snapshot cannot change after this call returns.
        return pickle.dumps(self._stage, protocol=pickle.HIGHEST_PROTOCOL)


@dataclass(frozen=True)
class Routed:
    """What a stage step sends: messages for other steps, and output records."""

    messages: Stream[tuple[str, Addressed]]
    outputs: Stream[tuple[str, Any]]


@operator
def stage(
    step_id: str,  # noqa: ARG001 - Bytewax names the inner steps after it
    up: Stream[tuple[str, Addressed]],
    factory: StageFactory,
    observer: Observer,
    durable: bool,
) -> Routed:
    """A keyed pipeline stage; its sends are split into messages and output records."""
    sent = op.stateful_batch(
        "logic", up, lambda snapshot: StageLogic(factory, observer, durable, snapshot)
    )
    flat = op.map("unkey", sent, _drop_key)
    split = op.branch("split", flat, _is_output_record)
    return Routed(
        messages=op.map("address", split.falses, _address),
        outputs=op.map("output", split.trues, _as_output),
    )


def _drop_key(keyed: tuple[str, Sent]) -> Sent:
    return keyed[1]


def _is_output_record(sent: Sent) -> bool:
    return is_output(sent[0])


def _address(sent: Sent) -> tuple[str, Addressed]:
    destination, message = sent
    key = str(destination)
    return key, (key, message)


def _as_output(sent: Sent) -> tuple[str, Any]:
    destination, record = sent
    return str(destination), record


def select(
    step_id: str, up: Stream[tuple[str, Addressed]], kind: str
) -> Stream[tuple[str, Addressed]]:
    """The messages addressed to stages of one kind (``slo``, ``domains``…) in any lane."""
    return op.filter(step_id, up, lambda message: kind_of(message[0]) == kind)
