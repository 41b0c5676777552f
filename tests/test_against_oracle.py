"""The pipeline against the independent reference implementation of docs/semantics.md.

Random event logs go through the real stages with a random number of shards,
batch size and tick delivery order; the alert log, counts and SLI events must
match the naive oracle exactly (burn values to 1e-9).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from harness import decode_batches, default_catalog, run_pipeline
from hypothesis import given
from hypothesis import strategies as st
from oracle.reference import replay as oracle_replay
from strategies import event_logs

from revleak.crm.pipeline import FlowConfig
from revleak.observe import NullObserver
from revleak.slo.catalog import PICOS_PER_USD, SloCatalog
from revleak.slo.evaluator import SloSnapshot

NUMERIC = ("burn_long", "burn_short", "budget_remaining", "at_risk_usd")


def assert_same_alerts(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [_identity(a) for a in got] == [_identity(a) for a in expected]
    for mine, theirs in zip(got, expected, strict=True):
        for key in NUMERIC:
            assert math.isclose(mine[key], theirs[key], rel_tol=1e-9, abs_tol=1e-9), (
                key,
                mine,
                theirs,
            )


def _identity(alert: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        alert[key]
        for key in (
            "at",
            "slo",
            "kind",
            "severity",
            "long_window",
            "short_window",
            "state",
            "blast_radius",
        )
    )


class _Counts(NullObserver):
    def __init__(self) -> None:
        self.slos: dict[str, SloSnapshot] = {}
        self.outcomes: dict[str, int] = {}

    def events(self, source: str, outcome: str, count: int) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count

    def slo_snapshot(self, snapshot: SloSnapshot) -> None:
        self.slos[snapshot.slo] = snapshot


def with_min_events(catalog: SloCatalog, minimums: dict[str, int]) -> SloCatalog:
    slos = tuple(
        dataclasses.replace(slo, min_events=minimums.get(slo.name, 0)) for slo in catalog.slos
    )
    return dataclasses.replace(catalog, slos=slos)


@given(
    lines=event_logs(),
    shards=st.sampled_from([1, 2, 5]),
    batch_size=st.sampled_from([1, 3, 50]),
    seed=st.integers(0, 1000),
    min_events=st.sampled_from([None, {"lead_response": 3, "data_quality": 2}]),
)
def test_pipeline_matches_the_reference(
    lines: list[bytes],
    shards: int,
    batch_size: int,
    seed: int,
    min_events: dict[str, int] | None,
) -> None:
    catalog = default_catalog()
    if min_events:
        catalog = with_min_events(catalog, min_events)
    counts = _Counts()
    outputs = run_pipeline(
        FlowConfig(catalog=catalog, shards=shards),
        [decode_batches(lines, batch_size=batch_size)],
        seed=seed,
        observer=counts,
    )
    expected = oracle_replay(
        [line.decode("utf-8", "replace") for line in lines], min_events=min_events
    )
    assert_same_alerts([alert.record() for alert in outputs.alerts], expected.alerts)
    assert counts.outcomes.get("accepted", 0) == expected.accepted_events
    assert counts.outcomes.get("late", 0) == expected.late_events
    assert counts.outcomes.get("dead_letter", 0) == expected.malformed_lines
    for name, (good, bad) in expected.sli_events_good_bad.items():
        snapshot = counts.slos.get(name)
        assert (snapshot.good, snapshot.bad) if snapshot else (good, bad) == (0, 0), name
        expected_bad_usd = sum(
            w for slo, _, ok, w, _ in expected.sli_events if slo == name and not ok
        )
        if snapshot is not None:
            assert math.isclose(
                snapshot.bad_picos / PICOS_PER_USD, expected_bad_usd, rel_tol=1e-9, abs_tol=1e-6
            )
