"""The ``stage`` operator: a keyed stage as a Bytewax step, messages and outputs apart."""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from harness import default_catalog

from revleak.crm.pipeline import FlowConfig, build_stage
from revleak.dataflows.stages import StageLogic, stage
from revleak.observe import NullObserver
from revleak.ordering import Tick

pytestmark = pytest.mark.slow


class Counter:
    """A stage that counts its messages: one output record, one message onwards each time."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen = 0

    def receive(self, message: int) -> list[tuple[str, Any]]:
        self.seen += message
        return [("out:alerts", (self.key, self.seen)), (f"next/{self.key}", self.seen)]

    def attach(self, observer: object) -> None:
        del observer


def counting_flow(
    messages: list[tuple[str, int]], outputs: list[Any], onward: list[Any]
) -> Dataflow:
    flow = Dataflow("stage_example")
    addressed = op.map(
        "address",
        op.input("in", flow, TestingSource(messages)),
        lambda message: (message[0], message),
    )
    routed = stage("count", addressed, Counter, NullObserver(), False)
    op.output("outputs", routed.outputs, TestingSink(outputs))
    op.output("onward", routed.messages, TestingSink(onward))
    return flow


@pytest.mark.parametrize("workers", [1, 2])
def test_stage_keeps_state_per_key_and_splits_outputs_from_messages(workers: int) -> None:
    outputs: list[Any] = []
    onward: list[Any] = []
    flow = counting_flow([("a", 1), ("b", 10), ("a", 2), ("b", 20), ("a", 3)], outputs, onward)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    by_key: dict[str, list[int]] = {}
    for destination, (key, total) in outputs:
        assert destination == "out:alerts"
        by_key.setdefault(key, []).append(total)
    assert by_key == {"a": [1, 3, 6], "b": [10, 30]}
    assert sorted(key for key, _ in onward) == ["next/a"] * 3 + ["next/b"] * 2
    assert all(key == message[0] for key, message in onward)  # addressed for the next step


def test_a_durable_stage_snapshot_resumes_where_it_was() -> None:
    config = FlowConfig(catalog=default_catalog(), shards=1)
    key = "records/0"
    logic = StageLogic(lambda k: build_stage(config, k), NullObserver(), True, None)
    logic.on_batch([(key, Tick("p0", 0, 0, ()))])
    snapshot = logic.snapshot()
    assert snapshot is not None
    restored = StageLogic(lambda k: build_stage(config, k), NullObserver(), True, snapshot)
    sent, _ = restored.on_batch([(key, Tick("p0", 1, 5, ()))])
    assert sent  # the restored merge expects seq 1 next: it remembered seq 0


def test_without_recovery_nothing_is_pickled() -> None:
    logic = StageLogic(Counter, NullObserver(), False, None)
    logic.on_batch([("a", 1)])
    assert logic.snapshot() is None
