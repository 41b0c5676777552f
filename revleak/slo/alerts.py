"""What an SLO reports as it is evaluated: alert transitions and budget movements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from revleak.slo.catalog import PICOS_PER_USD, BurnKind
from revleak.timefmt import format_duration, format_timestamp

# Items merged downstream sort by (time, rank, ...): ranks keep tails of different types apart.
LEAK_RANK = 0
BUDGET_RANK = 1
ALERT_RANK = 2


@dataclass(frozen=True, slots=True)
class AlertTransition:
    """A multi-window burn-rate rule started or stopped firing (docs/semantics.md §4)."""

    slo: str
    severity: str
    kind: BurnKind
    long_ms: int
    short_ms: int
    firing: bool
    at: int
    burn_long: float
    burn_short: float
    budget_remaining: float
    at_risk_picos: int
    blast_radius: int

    @property
    def time(self) -> int:
        return self.at

    @property
    def order(self) -> tuple[int, int, str, str, str, int]:
        return (self.at, ALERT_RANK, self.slo, self.kind.value, self.severity, self.long_ms)

    @property
    def state(self) -> str:
        return "firing" if self.firing else "resolved"

    def record(self) -> dict[str, Any]:
        """The alert-log line, keys in the documented order."""
        return {
            "slo": self.slo,
            "severity": self.severity,
            "kind": self.kind.value,
            "long_window": format_duration(self.long_ms),
            "short_window": format_duration(self.short_ms),
            "state": self.state,
            "at": format_timestamp(self.at),
            "burn_long": self.burn_long,
            "burn_short": self.burn_short,
            "budget_remaining": self.budget_remaining,
            "at_risk_usd": self.at_risk_picos / PICOS_PER_USD,
            "blast_radius": self.blast_radius,
        }


class BudgetUpdate(NamedTuple):
    """The dollars at risk over an SLO's trailing period changed."""

    slo: str
    time: int
    at_risk_picos: int

    @property
    def order(self) -> tuple[int, int, str]:
        return (self.time, BUDGET_RANK, self.slo)
