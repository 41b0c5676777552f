"""Every chaos scenario pages, and the analysis names the injected cause first in at least
19 of 20 seeded runs (the shop's OTLP, decoded, through the telemetry stages in process;
two processes share the 80 runs)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from chaoskit import Outcome, outcome

from revleak.loadtest.chaos import SCENARIOS
from revleak.slo.loader import load_catalog

pytestmark = pytest.mark.slow

SLOS = Path(__file__).resolve().parents[2] / "slos" / "telemetry.yaml"
SEEDS = range(1, 21)


def _outcome(scenario: str, seed: int, folder: str) -> Outcome:
    return outcome(load_catalog(SLOS), scenario, seed, Path(folder))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Outcome]]:
    folder = str(tmp_path_factory.mktemp("chaos"))
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {
            name: [pool.submit(_outcome, name, seed, folder) for seed in SEEDS]
            for name in SCENARIOS
        }
        return {name: [future.result() for future in runs] for name, runs in futures.items()}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_scenario_pages_and_its_cause_is_ranked_first(
    outcomes: dict[str, list[Outcome]], scenario: str
) -> None:
    runs = outcomes[scenario]
    assert all(run.paged for run in runs), [run.seed for run in runs if not run.paged]
    missed = [(run.seed, run.top) for run in runs if not run.named_the_cause]
    assert len(missed) <= 1, (runs[0].expected, missed)
