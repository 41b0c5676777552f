"""The incident's live state in Redis: blast radius per SLO, summary, firing alerts, a channel.

:class:`RedisLiveState` follows the :class:`~revleak.slo.incident.LiveUpdate` stream of the
incident stage and keeps the keys of docs/live-state.md. Each update is one MULTI/EXEC
transaction, so a reader never sees half of one. The stream is never interrupted by Redis:
the store keeps an in-memory mirror (:class:`~revleak.connectors.live_memory.LiveMirror`) of
what Redis should hold, and after a failed write or a Redis that lost its data it rewrites
everything from the mirror in one transaction.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from revleak.connectors.live_memory import (
    BlastEntry,
    LiveMirror,
    alert_field,
    before_any_event,
    leak_field,
    leak_record,
    touched_slos,
)
from revleak.slo.incident import IncidentSnapshot, Leak, LiveUpdate

logger = logging.getLogger(__name__)

# Optimistic transactions are retried this often: a write only conflicts with a flush or a
# second writer on the prefix, a read with the updates it races.
WATCH_ATTEMPTS = 3
# Fields per HSET/ZADD command: a full rewrite of a large blast radius stays one
# transaction without building one enormous command.
CHUNK = 1000
DEFAULT_BLAST_LIMIT = 100


@dataclass(frozen=True, slots=True)
class LiveKeys:
    """The key names under one prefix (docs/live-state.md)."""

    prefix: str

    def blast(self, slo: str) -> str:
        return f"{self.prefix}:blast:{slo}"

    def by_impact(self, slo: str) -> str:
        return f"{self.prefix}:blast:{slo}:by_impact"

    @property
    def slos(self) -> str:
        return f"{self.prefix}:slos"

    @property
    def incident(self) -> str:
        return f"{self.prefix}:incident"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def changes(self) -> str:
        return f"{self.prefix}:changes"

    @property
    def root_causes(self) -> str:
        return f"{self.prefix}:root_causes"


class RedisLiveState:
    """Writes the live incident state to Redis and reads it back for a war room or an API.

    ``apply`` never raises because of Redis: a failed write marks Redis stale, later writes
    wait ``retry_backoff_s`` (doubling up to ``max_backoff_s``) and the first one that gets
    through rewrites everything. Readers do raise :class:`redis.RedisError`: an API has to
    tell "no incident" from "no answer". One writer per prefix.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "revleak",
        top: int = 10,
        timeout_s: float = 2.0,
        retry_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = LiveKeys(prefix)
        # One quick reconnect absorbs a dropped idle connection; anything longer is an
        # outage that the backoff below handles without holding up the stream.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
        )
        self._clock = clock
        self._initial_backoff = retry_backoff_s
        self._max_backoff = max_backoff_s
        self._backoff = retry_backoff_s
        self._retry_at = float("-inf")
        # What Redis holds once the last write got through.
        self._mirror = LiveMirror(top)
        # Redis holds the mirror only while its epoch key has this value.
        self._epoch: str | None = None
        self._failing = False

    # -- writing -------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        """Whether Redis may lag behind the updates applied so far."""
        return self._mirror.summary is not None and self._epoch is None

    def apply(self, updates: Sequence[LiveUpdate]) -> None:
        """Write the updates in order, one transaction and one announcement each."""
        for update in updates:
            if before_any_event(update):
                continue
            self._mirror.absorb(update)
            if self._clock() < self._retry_at:
                continue
            try:
                if update.full or self._epoch is None or not self._write_delta(update):
                    self._write_full(update.at, len(update.alerts))
            except (RedisError, OSError) as error:
                self._failed(error)
            else:
                self._succeeded()

    def resync(self) -> bool:
        """Rewrite a stale Redis now, backoff or not; whether Redis is current.

        For a caller whose stream went quiet while Redis was away (nothing else retries).
        """
        if not self.stale:
            return True
        try:
            self._write_full(cast(IncidentSnapshot, self._mirror.summary).at, 0)
        except (RedisError, OSError) as error:
            self._failed(error)
            return False
        self._succeeded()
        return True

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _failed(self, error: Exception) -> None:
        self._epoch = None
        self._retry_at = self._clock() + self._backoff
        if not self._failing:
            logger.warning(
                "Redis live state is stale (%s); retrying in %.1f s, then rewriting it in full",
                error,
                self._backoff,
            )
        else:
            logger.debug("Redis live state still unreachable: %s", error)
        self._failing = True
        self._backoff = min(self._backoff * 2, self._max_backoff)

    def _succeeded(self) -> None:
        if self._failing:
            logger.info("Redis live state rewritten in full")
        self._failing = False
        self._backoff = self._initial_backoff
        self._retry_at = float("-inf")

    def _write_delta(self, update: LiveUpdate) -> bool:
        """One update as one transaction; False if Redis no longer holds the mirror."""
        keys, mirror = self.keys, self._mirror
        opened: dict[str, list[Leak]] = {}
        for leak in update.opened:
            opened.setdefault(leak.slo, []).append(leak)
        closed: dict[str, list[str]] = {}
        for slo, record_id, rule in update.closed:
            closed.setdefault(slo, []).append(leak_field(record_id, rule.value))
        touched = touched_slos(update)
        with self._client.pipeline(transaction=True) as pipe:
            try:
                # A flush or a Redis restart between this check and EXEC touches the epoch
                # key, so EXEC fails instead of writing a delta onto nothing.
                _watch(pipe, keys.epoch)
                if pipe.get(keys.epoch) != cast(str, self._epoch).encode():
                    return False
                pipe.multi()
                for slo in touched:
                    if slo not in mirror.leaks:
                        pipe.delete(keys.blast(slo), keys.by_impact(slo))
                        pipe.srem(keys.slos, slo)
                        continue
                    gone = closed.get(slo)
                    if gone:
                        pipe.hdel(keys.blast(slo), *gone)
                        pipe.zrem(keys.by_impact(slo), *gone)
                    _write_leaks(pipe, keys, slo, opened.get(slo, ()))
                    pipe.sadd(keys.slos, slo)
                for alert in update.alerts:
                    if alert.firing:
                        pipe.hset(keys.alerts, alert_field(alert), orjson.dumps(alert.record()))
                    else:
                        pipe.hdel(keys.alerts, alert_field(alert))
                pipe.set(keys.incident, orjson.dumps(mirror.incident()))
                announcement = mirror.announcement(
                    update.at,
                    full=False,
                    opened=len(update.opened),
                    closed=len(update.closed),
                    transitions=len(update.alerts),
                    slos=touched,
                    epoch=self._epoch,
                )
                pipe.publish(keys.changes, orjson.dumps(announcement))
                pipe.execute()
            except WatchError:
                return False
        return True

    def _write_full(self, at: int, transitions: int) -> None:
        """Replace everything under the prefix by the mirror, in one transaction."""
        keys, mirror = self.keys, self._mirror
        for _ in range(WATCH_ATTEMPTS):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    _watch(pipe, keys.slos)
                    before = {_text(slo) for slo in cast(set[bytes], pipe.smembers(keys.slos))}
                    pipe.multi()
                    doomed = before | mirror.leaks.keys()
                    pipe.delete(
                        keys.slos,
                        keys.alerts,
                        *(keys.blast(slo) for slo in doomed),
                        *(keys.by_impact(slo) for slo in doomed),
                    )
                    for slo, leaks in mirror.leaks.items():
                        _write_leaks(pipe, keys, slo, leaks.values())
                    if mirror.leaks:
                        pipe.sadd(keys.slos, *mirror.leaks)
                    items = sorted(mirror.alerts.items())
                    for start in range(0, len(items), CHUNK):
                        chunk = items[start : start + CHUNK]
                        pipe.hset(keys.alerts, mapping=dict(chunk))
                    epoch = secrets.token_hex(8)
                    pipe.set(keys.incident, orjson.dumps(mirror.incident()))
                    pipe.set(keys.epoch, epoch)
                    announcement = mirror.announcement(
                        at,
                        full=True,
                        opened=mirror.open_leaks,
                        closed=0,
                        transitions=transitions,
                        slos=sorted(doomed),
                        epoch=epoch,
                    )
                    pipe.publish(keys.changes, orjson.dumps(announcement))
                    pipe.execute()
                except WatchError:
                    continue
            self._epoch = epoch
            return
        raise WatchError(f"{keys.prefix}: live state kept changing under a full rewrite")

    # -- reading -------------------------------------------------------------------------

    def blast_radius(self, slo: str, limit: int | None = DEFAULT_BLAST_LIMIT) -> list[BlastEntry]:
        """The SLO's violating records, highest dollar impact first (``None``: all of them)."""
        if limit is not None and limit <= 0:
            return []
        blast, by_impact = self.keys.blast(slo), self.keys.by_impact(slo)
        stop = -1 if limit is None else limit - 1
        values: list[bytes | None] | None = None
        for _ in range(WATCH_ATTEMPTS):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    # Ranking and records come from the same update: the ranking is read
                    # under WATCH and the records in a transaction that fails if it moved.
                    _watch(pipe, by_impact)
                    fields = cast(list[bytes], pipe.zrange(by_impact, 0, stop, desc=True))
                    if not fields:
                        return []
                    pipe.multi()
                    pipe.hmget(blast, fields)
                    values = cast(list[list[bytes | None]], pipe.execute())[0]
                    break
                except WatchError:
                    continue
        if values is None:
            # Under constant change, settle for skipping records closed between two reads.
            fields = cast(list[bytes], self._client.zrange(by_impact, 0, stop, desc=True))
            if not fields:
                return []
            values = cast(list[bytes | None], self._client.hmget(blast, fields))
        return [BlastEntry.model_validate_json(value) for value in values if value is not None]

    def incident(self) -> dict[str, Any] | None:
        """The incident summary (docs/live-state.md), or None before the first update."""
        raw = cast(bytes | None, self._client.get(self.keys.incident))
        return None if raw is None else cast(dict[str, Any], orjson.loads(raw))

    def firing_alerts(self) -> list[dict[str, Any]]:
        """The alert-log records of the alerts firing now, ordered by SLO and rule."""
        found = cast(dict[bytes, bytes], self._client.hgetall(self.keys.alerts))
        return [
            cast(dict[str, Any], orjson.loads(found[field])) for field in sorted(found, key=_text)
        ]

    def record_root_cause(self, slo: str, record: Mapping[str, Any]) -> None:
        """The ranked causes of the SLO's latest page (a telemetry SLO); never raises
        because of Redis: a cause that cannot be written is logged and the stream goes on."""
        try:
            self._client.hset(self.keys.root_causes, slo, orjson.dumps(dict(record)))
        except redis.RedisError as error:
            logger.warning("root cause of %s not written to Redis: %s", slo, error)

    def root_causes(self) -> dict[str, dict[str, Any]]:
        """The latest root-cause analysis of each telemetry SLO that paged."""
        found = cast(dict[bytes, bytes], self._client.hgetall(self.keys.root_causes))
        return {_text(slo): cast(dict[str, Any], orjson.loads(raw)) for slo, raw in found.items()}

    def open_slos(self) -> list[str]:
        """The SLOs with at least one open leak."""
        return sorted(_text(slo) for slo in cast(set[bytes], self._client.smembers(self.keys.slos)))


def _write_leaks(pipe: Pipeline, keys: LiveKeys, slo: str, leaks: Iterable[Leak]) -> None:
    batch = list(leaks)
    for start in range(0, len(batch), CHUNK):
        chunk = batch[start : start + CHUNK]
        fields = [leak_field(leak.record_id, leak.rule.value) for leak in chunk]
        pipe.hset(
            keys.blast(slo),
            mapping={
                field: orjson.dumps(leak_record(leak))
                for field, leak in zip(fields, chunk, strict=True)
            },
        )
        pipe.zadd(
            keys.by_impact(slo),
            {field: leak.impact_usd for field, leak in zip(fields, chunk, strict=True)},
        )


def _watch(pipe: Pipeline, *keys: str) -> None:
    pipe.watch(*keys)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "BlastEntry",
    "LiveKeys",
    "RedisLiveState",
    "alert_field",
    "leak_field",
]
