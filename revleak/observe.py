"""What the engine reports about itself while it runs (metrics are one listener).

The core calls an :class:`Observer`; :mod:`revleak.connectors.metrics` turns the
calls into Prometheus metrics. Keeping the protocol here keeps the core free of
any metrics library.
"""

from __future__ import annotations

from typing import Protocol

from revleak.slo.evaluator import SloSnapshot
from revleak.slo.incident import IncidentSnapshot


class Observer(Protocol):
    def events(self, source: str, outcome: str, count: int) -> None: ...

    def dead_letter(self, source: str, reason: str) -> None: ...

    def watermark_lag(self, source: str, partition: int, lag_ms: int) -> None: ...

    def sli_events(
        self, slo: str, good: int, bad: int, good_usd: float, bad_usd: float
    ) -> None: ...

    def record_state(self, shard: str, open_records: int, closed_records: int) -> None: ...

    def slo_snapshot(self, snapshot: SloSnapshot) -> None: ...

    def incident_snapshot(self, snapshot: IncidentSnapshot) -> None: ...

    def alert_corrections(self, count: int) -> None: ...

    def requests(self, service: str, outcome: str, count: int) -> None: ...

    def root_cause(self, slo: str, cause: str, service: str) -> None: ...


class NullObserver:
    def events(self, source: str, outcome: str, count: int) -> None:
        pass

    def dead_letter(self, source: str, reason: str) -> None:
        pass

    def watermark_lag(self, source: str, partition: int, lag_ms: int) -> None:
        pass

    def sli_events(self, slo: str, good: int, bad: int, good_usd: float, bad_usd: float) -> None:
        pass

    def record_state(self, shard: str, open_records: int, closed_records: int) -> None:
        pass

    def slo_snapshot(self, snapshot: SloSnapshot) -> None:
        pass

    def incident_snapshot(self, snapshot: IncidentSnapshot) -> None:
        pass

    def alert_corrections(self, count: int) -> None:
        pass

    def requests(self, service: str, outcome: str, count: int) -> None:
        pass

    def root_cause(self, slo: str, cause: str, service: str) -> None:
        pass
