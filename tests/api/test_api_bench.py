"""The apply benchmark (revleak.loadtest.api_bench) at a small scale: its processes start,
every apply is answered 200 and notifies Slack once, replays are answered from the stored
answer, and the report section lands in its place. No timing is asserted."""

from __future__ import annotations

import pytest

from revleak.loadtest import api_bench
from revleak.loadtest.figures import replace_section

SMALL = api_bench.Plan(rate=50.0, seconds=1.0, warmup_s=0.0, context_rates=())


def test_the_plans_count_their_requests() -> None:
    full = api_bench.FULL
    assert (full.requests, full.warmup, full.replays, full.replay_every) == (2_000, 200, 200, 10)
    assert full.context == [(25.0, 250), (40.0, 400)]
    assert full.runs == 200 + 2_000 + 250 + 400
    assert (SMALL.requests, SMALL.replays, SMALL.runs) == (50, 5, 50)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert api_bench.percentile(values, 0.99) == 99.0
    assert api_bench.percentile(values, 0.50) == 50.0
    assert api_bench.percentile([3.0, 1.0, 2.0], 0.99) == 3.0


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> api_bench.Results:
    return api_bench.run(tmp_path_factory.mktemp("api-bench"), plan=SMALL)


@pytest.mark.slow
def test_every_apply_is_answered_and_notifies_slack_once(results: api_bench.Results) -> None:
    applies, replays = results.applies, results.replays
    assert (applies.requests, applies.ok, applies.replayed, applies.errors) == (50, 50, 0, {})
    assert (replays.requests, replays.ok, replays.replayed, replays.errors) == (5, 5, 5, {})
    assert results.slack_posts == 50
    assert results.cpu_per_apply_s > 0
    assert results.server_mean_s is not None
    assert results.server_mean_s > 0


@pytest.mark.slow
def test_the_section_replaces_itself_before_what_bounds_it(results: api_bench.Results) -> None:
    section = api_bench.render_section(results)
    text = "\n".join(section)
    assert section[0] == api_bench.SECTION
    assert "| applies at 50/s: requests, answered 200 | 50, 50 | every one | yes |" in text
    assert "| Slack notices received | 50 | 50: one per apply, none per replay | yes |" in text
    assert "answered 200, marked replayed | 5, 5, 5 | every one | yes |" in text
    assert f"during the timed passes, longest (ms) | {len(results.full_collections)}, " in text
    document = "# Benchmarks\n\n## Live: Kafka\n\nlive\n\n## What bounds it\n\nprofiles\n"
    once = replace_section(document, api_bench.SECTION, section)
    assert replace_section(once, api_bench.SECTION, section) == once
    assert once.count(api_bench.SECTION) == 1
    assert once.index("## Live: Kafka") < once.index(api_bench.SECTION)
    assert once.index(api_bench.SECTION) < once.index("## What bounds it")
