"""Burn rates and error budgets (docs/semantics.md §3), exact.

Count burn over a window: ``B = (bad / total) / (1 − target)``, 0 without events.
Dollar burn: ``B$ = (at_risk / budget) × (P / w)``. Threshold tests compare
integers (``bad × q > p × total``) so a burn exactly at the factor never fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from revleak.slo.catalog import PICOS_PER_USD
from revleak.slo.windows import WindowSums


def count_burn(sums: WindowSums, target: Fraction) -> Fraction:
    if sums.total == 0:
        return Fraction(0)
    return Fraction(sums.bad, sums.total) / (1 - target)


def usd_burn(at_risk_picos: int, budget_usd: Fraction, period_ms: int, window_ms: int) -> Fraction:
    return Fraction(at_risk_picos, PICOS_PER_USD) / budget_usd * Fraction(period_ms, window_ms)


def count_budget_remaining(period: WindowSums, target: Fraction) -> Fraction:
    """``1 − bad_P / ((1 − target) × total_P)``; 1 when nothing happened in the period."""
    if period.total == 0:
        return Fraction(1)
    return 1 - Fraction(period.bad) / ((1 - target) * period.total)


def usd_budget_remaining(at_risk_picos: int, budget_usd: Fraction) -> Fraction:
    return 1 - Fraction(at_risk_picos, PICOS_PER_USD) / budget_usd


@dataclass(frozen=True, slots=True)
class CountThreshold:
    """``count_burn > factor`` as ``bad × q > p × total`` with ``p/q = factor × (1 − target)``."""

    p: int
    q: int

    @classmethod
    def of(cls, factor: Fraction, target: Fraction) -> CountThreshold:
        limit = factor * (1 - target)
        return cls(limit.numerator, limit.denominator)

    def exceeded(self, bad: int, total: int) -> bool:
        return bad * self.q > self.p * total


@dataclass(frozen=True, slots=True)
class UsdThreshold:
    """``usd_burn > factor`` as ``at_risk_picos × left > right``, all integers."""

    left: int
    right: int

    @classmethod
    def of(
        cls, factor: Fraction, budget_usd: Fraction, period_ms: int, window_ms: int
    ) -> UsdThreshold:
        # at_risk/u / budget × P/w > factor  ⇔  at_risk × P > factor × budget × u × w
        # (u: picos per USD)
        limit = factor * budget_usd * PICOS_PER_USD * window_ms / period_ms
        return cls(limit.denominator, limit.numerator)

    def exceeded(self, at_risk_picos: int) -> bool:
        return at_risk_picos * self.left > self.right
