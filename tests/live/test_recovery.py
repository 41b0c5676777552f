"""Crash recovery of the live flow (Bytewax SQLite snapshots every 0.5 s).

Four flows run at once over their own copies of the story, fed through Kafka at a steady
30 changes a second: one uninterrupted, three SIGKILLed twice each at seeded random
moments while the changes flow and restarted at once on their recovery folder. Once all
input is consumed and the pages have settled, each killed run must have written the
uninterrupted run's alert log and left Alertmanager as it did (what is compared, and why,
is in :mod:`revleak.loadtest.soak`; ``make soak`` runs 20 trials of 3 kills).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from revleak.loadtest import services, soak

pytestmark = [pytest.mark.services, pytest.mark.slow]

TRIALS = 3
KILLS = 2
SEED = 1


@pytest.fixture(scope="module")
def report(
    kafka_brokers: str, story: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> soak.SoakReport:
    folder = tmp_path_factory.mktemp("recovery")
    with services.alertmanager(folder / "alertmanager", soak.ALERTMANAGER_CONFIG) as url:
        return soak.recovery_soak(
            kafka_brokers, url, folder, story, trials=TRIALS, kills=KILLS, seed=SEED
        )


def test_the_uninterrupted_run_logs_a_replay_up_to_the_live_watermark(
    report: soak.SoakReport,
) -> None:
    assert report.baseline_problems() == []
    assert len(report.baseline.log) > 50
    fired = [states for states in report.baseline.pages.values() if states[0] == "firing"]
    resolved = [states for states in fired if states[-1].startswith("resolved")]
    assert len(fired) > 20
    assert resolved
    assert report.baseline.active


def test_every_trial_was_killed_while_changes_flowed_and_came_back_each_time(
    report: soak.SoakReport, story: list[bytes]
) -> None:
    feed_s = len(story) / soak.RATE
    assert len(report.trials) == TRIALS
    for trial in report.trials:
        assert trial.kills == KILLS, trial.name
        assert all(0 <= moment <= feed_s for moment in trial.kill_times)
        assert trial.problems == [], f"{trial.name}: {trial.problems}\n{_tail(trial.flow_log)}"


def test_a_killed_flow_writes_the_alert_log_exactly_once(report: soak.SoakReport) -> None:
    problems = {trial.name: soak.log_differences(report.baseline, trial) for trial in report.trials}
    assert all(found == [] for found in problems.values()), report.summary()


def test_a_killed_flow_leaves_alertmanager_as_an_uninterrupted_run(
    report: soak.SoakReport,
) -> None:
    # Per page (labels, startsAt) the states Alertmanager was told, and the alerts it holds.
    problems = {
        trial.name: soak.page_differences(report.baseline, trial) for trial in report.trials
    }
    assert all(found == [] for found in problems.values()), report.summary()


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
