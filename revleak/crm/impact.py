"""Dollar impact of a leak (docs/semantics.md §2), in integer pico-dollars (10⁻¹² USD)."""

from __future__ import annotations

from fractions import Fraction

from revleak.slo.catalog import PICOS_PER_USD, RuleImpact
from revleak.timefmt import DAY_MS


def whole_days(since_ms: int, at_ms: int) -> int:
    return (at_ms - since_ms) // DAY_MS


def impact_picos(
    impact: RuleImpact, *, value_usd: float, win_probability: Fraction, days: int
) -> int:
    """``value × factor`` exactly, or ``value × p × (1 − 2^(−d/h))`` for stage decay.

    >>> from revleak.slo.catalog import Rule, RuleImpact
    >>> impact_picos(RuleImpact(Rule.NO_NEXT_STEP, Fraction(1, 4)),
    ...               value_usd=120_000, win_probability=Fraction(13, 20), days=0)
    30000000000
    """
    if impact.half_life_days is None:
        return round(Fraction(value_usd) * impact.factor * PICOS_PER_USD)
    decay = 1 - 2 ** (-days / float(impact.half_life_days))
    return round(value_usd * float(win_probability) * decay * PICOS_PER_USD)
