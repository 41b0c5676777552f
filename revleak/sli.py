"""What every SLO turns its input into (docs/semantics.md §2): SLI events and leaks.

Money is carried as integer pico-dollars (10⁻¹² USD) so that sums are exact and do not
depend on the order in which workers add them up.
"""

from __future__ import annotations

from typing import NamedTuple

from revleak.slo.alerts import LEAK_RANK
from revleak.slo.catalog import PICOS_PER_USD, Rule


class SliEvent(NamedTuple):
    slo: str
    time: int
    good: bool
    weight_picos: int
    record_id: str

    @property
    def weight_usd(self) -> float:
        return self.weight_picos / PICOS_PER_USD


class LeakChange(NamedTuple):
    """A record starts or stops violating an SLO (one rule): the blast radius moves by one."""

    slo: str
    time: int
    record_id: str
    rule: Rule
    opened: bool
    impact_picos: int = 0
    owner: str = ""

    @property
    def order(self) -> tuple[int, int]:
        return (self.time, LEAK_RANK)
