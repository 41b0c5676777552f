"""revleak.slo.burn: burn rates, budgets and exact thresholds (docs/semantics.md §3–§4)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revleak.slo.burn import (
    CountThreshold,
    UsdThreshold,
    count_budget_remaining,
    count_burn,
    usd_budget_remaining,
    usd_burn,
)
from revleak.slo.catalog import PICOS_PER_USD
from revleak.slo.windows import WindowSums
from revleak.timefmt import DAY_MS, HOUR_MS, MINUTE_MS

PERIOD_MS = 30 * DAY_MS
DEFAULT_FACTORS = [Fraction(72, 5), Fraction(6), Fraction(3), Fraction(1)]  # 14.4, 6, 3, 1
DEFAULT_TARGETS = [Fraction(95, 100), Fraction(90, 100), Fraction(99, 100)]
DEFAULT_BUDGETS = [Fraction(15_000), Fraction(20_000), Fraction(10_000), Fraction(5_000)]
WINDOWS_MS = [5 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS, 2 * HOUR_MS, 6 * HOUR_MS, DAY_MS, 3 * DAY_MS]


def usd(amount: int | Fraction) -> int:
    return int(amount * PICOS_PER_USD)


# -- count burn -----------------------------------------------------------------------------


def test_one_bad_of_two_with_target_95_percent_burns_ten_times() -> None:
    assert count_burn(WindowSums(total=2, bad=1), Fraction(95, 100)) == 10


def test_count_burn_is_the_bad_ratio_over_the_error_budget() -> None:
    assert count_burn(WindowSums(total=100, bad=1), Fraction(99, 100)) == 1
    assert count_burn(WindowSums(total=1, bad=1), Fraction(99, 100)) == 100
    assert count_burn(WindowSums(total=10, bad=3), Fraction(9, 10)) == 3
    assert count_burn(WindowSums(total=7, bad=0), Fraction(9, 10)) == 0


def test_count_burn_without_events_is_zero() -> None:
    assert count_burn(WindowSums(), Fraction(95, 100)) == 0


def test_count_budget_remaining() -> None:
    target = Fraction(95, 100)
    assert count_budget_remaining(WindowSums(total=2, bad=1), target) == -9  # worked example 01
    assert count_budget_remaining(WindowSums(total=100, bad=5), target) == 0
    assert count_budget_remaining(WindowSums(total=100, bad=1), target) == Fraction(4, 5)
    assert count_budget_remaining(WindowSums(total=100, bad=0), target) == 1
    assert count_budget_remaining(WindowSums(), target) == 1


# -- dollar burn ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window_ms", "burn"),
    [(HOUR_MS, 360), (5 * MINUTE_MS, 4320), (6 * HOUR_MS, 60), (DAY_MS, 15), (3 * DAY_MS, 5)],
)
def test_7500_dollars_of_a_15000_budget_burns_as_in_worked_example_01(
    window_ms: int, burn: int
) -> None:
    assert usd_burn(usd(7_500), Fraction(15_000), PERIOD_MS, window_ms) == burn


def test_usd_burn_of_one_means_the_budget_is_spent_exactly_at_the_end_of_the_period() -> None:
    assert usd_burn(usd(15_000), Fraction(15_000), PERIOD_MS, PERIOD_MS) == 1
    assert usd_burn(usd(500), Fraction(15_000), PERIOD_MS, DAY_MS) == 1
    assert usd_burn(0, Fraction(15_000), PERIOD_MS, HOUR_MS) == 0


def test_usd_burn_keeps_fractions_of_a_cent_exact() -> None:
    assert usd_burn(1, Fraction(1), PERIOD_MS, PERIOD_MS) == Fraction(1, PICOS_PER_USD)


def test_usd_budget_remaining() -> None:
    assert usd_budget_remaining(usd(7_500), Fraction(15_000)) == Fraction(1, 2)
    assert usd_budget_remaining(0, Fraction(15_000)) == 1
    assert usd_budget_remaining(usd(45_000), Fraction(15_000)) == -2  # worked example 02
    assert usd_budget_remaining(usd(30_000), Fraction(10_000)) == -2


# -- thresholds -----------------------------------------------------------------------------


def test_a_count_burn_exactly_at_the_factor_does_not_exceed_it() -> None:
    threshold = CountThreshold.of(Fraction(6), Fraction(95, 100))  # limit: 30 % bad
    assert not threshold.exceeded(3, 10)
    assert threshold.exceeded(301, 1000)
    assert not threshold.exceeded(0, 0)


def test_the_14_4_factor_with_a_99_9_percent_target_is_exact() -> None:
    # 14.4 × 0.001 = 0.0144 exactly: floats would make 144 of 10 000 fire or not by luck.
    threshold = CountThreshold.of(Fraction(72, 5), Fraction(999, 1000))
    assert not threshold.exceeded(144, 10_000)
    assert threshold.exceeded(145, 10_000)


def test_a_dollar_burn_exactly_at_the_factor_does_not_exceed_it() -> None:
    # 14.4 × $15 000 × 1 h / 30 d = $300 in the long window of the first page rule.
    threshold = UsdThreshold.of(Fraction(72, 5), Fraction(15_000), PERIOD_MS, HOUR_MS)
    assert not threshold.exceeded(usd(300))
    assert threshold.exceeded(usd(300) + 1)
    assert not threshold.exceeded(0)


@given(
    bad=st.integers(min_value=0, max_value=10_000),
    good=st.integers(min_value=0, max_value=10_000),
    factor=st.sampled_from(DEFAULT_FACTORS),
    target=st.sampled_from(DEFAULT_TARGETS),
)
def test_count_threshold_is_the_exact_comparison_burn_greater_than_factor(
    bad: int, good: int, factor: Fraction, target: Fraction
) -> None:
    sums = WindowSums(total=bad + good, bad=bad)
    assert CountThreshold.of(factor, target).exceeded(sums.bad, sums.total) == (
        count_burn(sums, target) > factor
    )


@given(
    total=st.integers(min_value=1, max_value=5_000),
    factor=st.sampled_from(DEFAULT_FACTORS),
    target=st.sampled_from([*DEFAULT_TARGETS, Fraction(999, 1000), Fraction(1, 3)]),
    nudge=st.sampled_from([-1, 0, 1]),
)
def test_count_threshold_at_and_around_the_boundary(
    total: int, factor: Fraction, target: Fraction, nudge: int
) -> None:
    """Bad counts right at the edge, where a float comparison would be a coin toss."""
    edge = factor * (1 - target) * total
    bad = min(max(int(edge) + nudge, 0), total)
    sums = WindowSums(total=total, bad=bad)
    exact = Fraction(bad, total) / (1 - target) > factor
    assert CountThreshold.of(factor, target).exceeded(sums.bad, sums.total) == exact


@given(
    at_risk_picos=st.integers(min_value=0, max_value=usd(10**7)),
    factor=st.sampled_from(DEFAULT_FACTORS),
    budget=st.sampled_from(DEFAULT_BUDGETS),
    window_ms=st.sampled_from(WINDOWS_MS),
)
def test_usd_threshold_is_the_exact_comparison_burn_greater_than_factor(
    at_risk_picos: int, factor: Fraction, budget: Fraction, window_ms: int
) -> None:
    threshold = UsdThreshold.of(factor, budget, PERIOD_MS, window_ms)
    assert threshold.exceeded(at_risk_picos) == (
        usd_burn(at_risk_picos, budget, PERIOD_MS, window_ms) > factor
    )


@given(
    factor=st.sampled_from(DEFAULT_FACTORS),
    budget=st.sampled_from(DEFAULT_BUDGETS),
    window_ms=st.sampled_from(WINDOWS_MS),
    nudge=st.sampled_from([-1, 0, 1]),
)
def test_usd_threshold_at_and_around_the_boundary(
    factor: Fraction, budget: Fraction, window_ms: int, nudge: int
) -> None:
    edge = factor * budget * PICOS_PER_USD * window_ms / PERIOD_MS
    at_risk = max(int(edge) + nudge, 0)
    burn = Fraction(at_risk, PICOS_PER_USD) / budget * Fraction(PERIOD_MS, window_ms)
    assert UsdThreshold.of(factor, budget, PERIOD_MS, window_ms).exceeded(at_risk) == (
        burn > factor
    )
