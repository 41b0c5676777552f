"""The incident's live state in process: what Redis holds (docs/live-state.md), without Redis.

:class:`LiveMirror` follows the :class:`~revleak.slo.incident.LiveUpdate` stream and holds
what a live view shows: the open leaks of every SLO, the firing alerts and the summary. It
is the single source of the documents both stores publish: the Redis store keeps one as the
copy Redis should hold, and :class:`InMemoryLiveState` serves one to readers in the same
process (the embedded demo) with the same readers and change announcements as Redis.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import orjson
from pydantic import BaseModel, ConfigDict

from revleak.ordering import NEVER
from revleak.slo.alerts import AlertTransition
from revleak.slo.catalog import PICOS_PER_USD
from revleak.slo.incident import (
    IncidentSnapshot,
    Leak,
    LiveUpdate,
    OwnerExposure,
    severity_name,
)
from revleak.timefmt import format_duration, format_timestamp

logger = logging.getLogger(__name__)

Subscriber = Callable[[dict[str, Any]], None]


class BlastEntry(BaseModel):
    """One violating record of an SLO's blast radius, as a reader gets it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    slo: str
    record_id: str
    rule: str
    impact_usd: float
    owner: str
    since: str


def leak_field(record_id: str, rule: str) -> str:
    """The field of a leak in its SLO's hash and sorted set (rule values hold no ``|``)."""
    return f"{record_id}|{rule}"


def alert_field(alert: AlertTransition) -> str:
    """One field per alert rule: the same rule resolving removes what its firing added."""
    return (
        f"{alert.slo}|{alert.severity}|{alert.kind.value}|"
        f"{format_duration(alert.long_ms)}/{format_duration(alert.short_ms)}"
    )


def leak_record(leak: Leak) -> dict[str, Any]:
    return {
        "slo": leak.slo,
        "record_id": leak.record_id,
        "rule": leak.rule.value,
        "impact_usd": leak.impact_usd,
        "owner": leak.owner,
        "since": format_timestamp(leak.since),
    }


def owner_record(owner: OwnerExposure) -> dict[str, Any]:
    return {"owner": owner.owner, "leaks": owner.leaks, "impact_usd": owner.impact_usd}


class LiveMirror:
    """The live view after the updates absorbed so far; its owner serialises access."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.leaks: dict[str, dict[str, Leak]] = {}  # slo -> leak field -> leak
        self.alerts: dict[str, bytes] = {}  # alert field -> its alert-log record
        self.summary: IncidentSnapshot | None = None

    def absorb(self, update: LiveUpdate) -> None:
        if update.full:
            self.leaks = {}
            self.alerts = {}
        for slo, record_id, rule in update.closed:
            leaks = self.leaks.get(slo)
            if leaks is not None:
                leaks.pop(leak_field(record_id, rule.value), None)
                if not leaks:
                    del self.leaks[slo]
        for leak in update.opened:
            self.leaks.setdefault(leak.slo, {})[leak_field(leak.record_id, leak.rule.value)] = leak
        for alert in update.alerts:
            field = alert_field(alert)
            if alert.firing:
                self.alerts[field] = orjson.dumps(alert.record())
            else:
                self.alerts.pop(field, None)
        self.summary = update.summary

    @property
    def open_leaks(self) -> int:
        return sum(len(leaks) for leaks in self.leaks.values())

    def incident(self) -> dict[str, Any]:
        """The ``{p}:incident`` document; only after the first update."""
        summary = cast(IncidentSnapshot, self.summary)
        top_leaks = summary.top_leaks or _rank_leaks(self.leaks, self.top)
        top_owners = summary.top_owners or _rank_owners(self.leaks, self.top)
        slos = sorted(summary.at_risk_picos.keys() | self.leaks.keys())
        return {
            "at": format_timestamp(summary.at),
            "severity": severity_name(summary.severity),
            "consumption": summary.consumption,
            "paging_state": summary.paging_state.name,
            "open_leaks": summary.open_leaks,
            "big_leaks": summary.big_leaks,
            "peak_severity": severity_name(summary.peak_severity),
            "peak_paging_state": summary.peak_paging_state.name,
            "pages": summary.pages,
            "tickets": summary.tickets,
            "firing_alerts": len(self.alerts),
            "at_risk_usd": {slo: summary.at_risk_picos.get(slo, 0) / PICOS_PER_USD for slo in slos},
            "blast_radius": {slo: len(self.leaks.get(slo, ())) for slo in slos},
            "top_causes": [leak_record(leak) for leak in top_leaks[: self.top]],
            "top_owners": [owner_record(owner) for owner in top_owners[: self.top]],
        }

    def announcement(
        self,
        at: int,
        *,
        full: bool,
        opened: int,
        closed: int,
        transitions: int,
        slos: Sequence[str],
        epoch: str | None,
    ) -> dict[str, Any]:
        """The ``{p}:changes`` message of an update; only after the first update."""
        summary = cast(IncidentSnapshot, self.summary)
        return {
            "at": format_timestamp(at),
            "full": full,
            "opened": opened,
            "closed": closed,
            "alerts": transitions,
            "slos": list(slos),
            "severity": severity_name(summary.severity),
            "paging_state": summary.paging_state.name,
            "epoch": epoch,
        }


def before_any_event(update: LiveUpdate) -> bool:
    """Whether the incident stage sent this before its first event: such an update holds
    nothing and has no time to show, so live views skip it."""
    return update.at <= NEVER


def touched_slos(update: LiveUpdate) -> list[str]:
    """The SLOs whose blast radius a delta update changes."""
    return sorted({leak.slo for leak in update.opened} | {slo for slo, _, _ in update.closed})


class InMemoryLiveState:
    """The live incident state of docs/live-state.md, kept in this process; thread-safe.

    Readers return what ``RedisLiveState`` returns for the same updates. Subscribers get,
    after each applied update, the message Redis would publish on ``{p}:changes``; the
    first update, and every ``full`` one, is announced as a full rewrite with a new epoch.
    """

    def __init__(self, *, top: int = 10) -> None:
        self._lock = threading.Lock()
        self._mirror = LiveMirror(top)
        self._epoch: str | None = None
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count()

    def apply(self, updates: Iterable[LiveUpdate]) -> None:
        """Absorb the updates in order; subscribers hear of each one after it is applied."""
        for update in updates:
            if before_any_event(update):
                continue
            with self._lock:
                message = self._absorb(update)
                subscribers = list(self._subscribers.values())
            # Outside the lock: a subscriber may read the state it was told about.
            for subscriber in subscribers:
                try:
                    subscriber(orjson.loads(orjson.dumps(message)))
                except Exception:  # a live view must not stop the incident stream
                    logger.exception("live state subscriber failed")

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with each change announcement; returns the unsubscribe call."""
        with self._lock:
            token = next(self._ids)
            self._subscribers[token] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def _absorb(self, update: LiveUpdate) -> dict[str, Any]:
        mirror = self._mirror
        if update.full or self._epoch is None:
            before = set(mirror.leaks)
            mirror.absorb(update)
            self._epoch = secrets.token_hex(8)
            return mirror.announcement(
                update.at,
                full=True,
                opened=mirror.open_leaks,
                closed=0,
                transitions=len(update.alerts),
                slos=sorted(before | mirror.leaks.keys()),
                epoch=self._epoch,
            )
        mirror.absorb(update)
        return mirror.announcement(
            update.at,
            full=False,
            opened=len(update.opened),
            closed=len(update.closed),
            transitions=len(update.alerts),
            slos=touched_slos(update),
            epoch=self._epoch,
        )

    # -- reading -------------------------------------------------------------------------

    def root_causes(self) -> dict[str, dict[str, Any]]:
        """Root causes come from the telemetry flow, which the demo does not run."""
        return {}

    def blast_radius(self, slo: str, limit: int | None = None) -> list[BlastEntry]:
        """The SLO's violating records, highest dollar impact first (``None``: all of them).

        Equal impacts come in descending field order, as Redis ranks them.
        """
        if limit is not None and limit <= 0:
            return []
        with self._lock:
            leaks = list(self._mirror.leaks.get(slo, {}).items())
        ranked = sorted(leaks, key=lambda item: (item[1].impact_usd, item[0]), reverse=True)
        chosen = ranked if limit is None else ranked[:limit]
        return [BlastEntry.model_validate(leak_record(leak)) for _, leak in chosen]

    def incident(self) -> dict[str, Any] | None:
        """The incident summary (docs/live-state.md), or None before the first update."""
        with self._lock:
            if self._mirror.summary is None:
                return None
            return self._mirror.incident()

    def firing_alerts(self) -> list[dict[str, Any]]:
        """The alert-log records of the alerts firing now, ordered by SLO and rule."""
        with self._lock:
            alerts = dict(self._mirror.alerts)
        return [cast(dict[str, Any], orjson.loads(alerts[field])) for field in sorted(alerts)]

    def open_slos(self) -> list[str]:
        """The SLOs with at least one open leak."""
        with self._lock:
            return sorted(self._mirror.leaks)


def _rank_leaks(leaks: dict[str, dict[str, Leak]], count: int) -> tuple[Leak, ...]:
    every = (leak for per_slo in leaks.values() for leak in per_slo.values())
    ranked = sorted(
        every, key=lambda leak: (-leak.impact_picos, leak.record_id, leak.slo, leak.rule.value)
    )
    return tuple(ranked[:count])


def _rank_owners(leaks: dict[str, dict[str, Leak]], count: int) -> tuple[OwnerExposure, ...]:
    totals: dict[str, list[int]] = {}
    for per_slo in leaks.values():
        for leak in per_slo.values():
            entry = totals.setdefault(leak.owner, [0, 0])
            entry[0] += 1
            entry[1] += leak.impact_picos
    ranked = sorted(totals.items(), key=lambda item: (-item[1][1], item[0]))
    return tuple(OwnerExposure(owner, n, picos) for owner, (n, picos) in ranked[:count])
