"""Delivery of pages to Alertmanager's v2 API (docs/semantics.md §4, docs/paging.md).

:class:`AlertmanagerSender` takes the :class:`~revleak.paging.Page` objects the pager
stage produces and keeps Alertmanager holding exactly those alerts: it posts each new
state in submission order, re-sends firing pages every ``resend_interval_s``, and retries
with capped exponential backoff while Alertmanager is unreachable. ``submit`` never waits
for the network: one background thread does all HTTP.

Alertmanager identifies an alert by the fingerprint of its labels, and a page's label set
never changes, so re-sending (after a restart, or because a response was lost) updates the
alert Alertmanager already holds instead of creating a second one.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from revleak.paging import Page, RuleKey
from revleak.slo.catalog import SloCatalog
from revleak.timefmt import format_timestamp

logger = logging.getLogger(__name__)

ALERTS_PATH = "/api/v2/alerts"
# The remediation API serves runbooks and fixpacks per SLO (docs/paging.md).
DEFAULT_RUNBOOK_BASE_URL = "http://revleak-api:8000/v1/runbooks/"
DEFAULT_FIXPACK_BASE_URL = "http://revleak-api:8000/v1/fixpacks"
# As Prometheus does: a firing alert outlives four missed re-sends, then expires on its own.
ENDS_AT_RESENDS = 4
MAX_BATCH = 64
MAX_QUEUE = 10_000
FIRST_BACKOFF_S = 0.1
BODY_LOG_CHARS = 2000
# Statuses that say something about the alerts in the batch rather than about the server.
_BATCH_REJECTED = frozenset({400, 413, 422})
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Fingerprint = tuple[tuple[str, str], ...]
DeliveredCallback = Callable[[Sequence[Page], float], None]


def fingerprint(page: Page) -> Fingerprint:
    """The identity Alertmanager gives the alert: its label set."""
    return tuple(sorted(page.labels().items()))


def runbook_url(base: str, slo: str) -> str:
    return base + quote(slo, safe="")


def fixpack_url(base: str, slo: str) -> str:
    return base + ("&" if "?" in base else "?") + urlencode({"slo": slo})


def burn_factor(catalog: SloCatalog, key: RuleKey) -> float | None:
    """The factor the rule's burn rates had to exceed, or None if the catalog lacks the rule."""
    wanted = (key.severity, key.long_ms, key.short_ms)
    for slo in catalog.slos:
        if slo.name != key.slo:
            continue
        for rule in slo.alert_rules:
            if (rule.severity, rule.long_ms, rule.short_ms) == wanted:
                return float(rule.factor)
    return None


def alert_payload(
    page: Page,
    now_ms: int,
    *,
    firing_margin_ms: int,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
    fixpack_base_url: str = DEFAULT_FIXPACK_BASE_URL,
    catalog: SloCatalog | None = None,
) -> dict[str, Any]:
    """One element of the JSON list posted to ``/api/v2/alerts`` at wall time ``now_ms``.

    ``startsAt``/``endsAt`` follow docs/paging.md: Alertmanager rejects ``endsAt`` before
    ``startsAt`` and treats an alert as firing until ``endsAt`` passes on its own clock.
    The ``burn_factor`` annotation comes from ``catalog``; without one it is left out.
    """
    if page.ends_at is None:
        starts_at = page.starts_at
        # Event time may run ahead of the wall clock; the alert must still outlive the
        # margin and end after it starts.
        ends_at = max(now_ms, starts_at) + firing_margin_ms
    else:
        # A resolve stamped in the wall clock's future would keep the alert firing until
        # then, so it ends now at the latest, and starts no later than it ends.
        ends_at = min(page.ends_at, now_ms)
        starts_at = min(page.starts_at, ends_at)
    slo = page.key.slo
    summary = page.summary()
    annotations = {
        "summary": summary,
        "description": page.description or summary,
        "runbook_url": runbook_url(runbook_base_url, slo),
        "fixpack_url": fixpack_url(fixpack_base_url, slo),
        "at_risk_usd": f"{page.at_risk_usd:.2f}",
        "blast_radius": str(page.blast_radius),
        # Full precision (Python's shortest round-trip form): a receiver compares them.
        "burn_long": repr(float(page.burn_long)),
        "burn_short": repr(float(page.burn_short)),
    }
    # The explanation adds to the page's own annotations and never replaces them.
    annotations = {**dict(page.explanation), **annotations}
    factor = burn_factor(catalog, page.key) if catalog is not None else None
    if factor is not None:
        annotations["burn_factor"] = repr(factor)
    return {
        "labels": page.labels(),
        "annotations": annotations,
        "startsAt": format_timestamp(starts_at),
        "endsAt": format_timestamp(ends_at),
    }


def problem_with(page: Page, *, firing_margin_ms: int = 0) -> str | None:
    """Why Alertmanager would refuse this page, or None: checked before it is queued."""
    labels = page.labels()
    for name, value in labels.items():
        if not _LABEL_NAME.match(name):
            return f"label name {name!r} is not a Prometheus label name"
        if not _utf8(value):
            return f"label {name}={value!r} is not valid UTF-8"
    for name, text in (("summary", page.summary()), ("description", page.description)):
        if not _utf8(text):
            return f"annotation {name} is not valid UTF-8"
    if page.ends_at is not None and page.ends_at < page.starts_at:
        return f"ends_at {page.ends_at} is before starts_at {page.starts_at}"
    for moment in (page.starts_at, page.starts_at + firing_margin_ms, page.ends_at):
        if moment is None:
            continue
        try:
            format_timestamp(moment)
        except (OverflowError, OSError, ValueError):
            return f"time {moment} ms is out of range"
        if moment < 0:
            return f"time {moment} ms is before 1970"
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(slots=True)
class _Entry:
    """A page state waiting to be posted."""

    page: Page
    fingerprint: Fingerprint
    # The earliest submission this entry stands for (it may have absorbed older states of
    # its page); None for a re-send, which nobody flushes for.
    seq: int | None


@dataclass(slots=True)
class _Firing:
    page: Page
    resend_due: float  # monotonic


@dataclass(frozen=True, slots=True)
class SenderStats:
    """Counters for metrics; alert counts, not POST counts, except where named."""

    pending: int
    sent: int
    resent: int
    posts: int
    failed_attempts: int
    dropped_invalid: int
    coalesced: int
    firing: int


class _Attempt(enum.Enum):
    """How one POST ended."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"  # the batch's fault: split it or drop it
    FAILED = "failed"  # the server's or the network's: retry later


class AlertmanagerSender:
    """Keeps Alertmanager holding the submitted pages; thread-safe, ``submit`` never blocks.

    ``on_delivered(pages, wall_time)`` runs on the sender's thread after every accepted
    POST, with the submitted pages it carried (re-sends are left out, so the time is the
    page's first delivery in that state) and ``time.time()`` after the response.

    ``min_firing_s`` holds back a resolve until its fire was accepted that long ago:
    Alertmanager waits ``group_wait`` after a fresh alert before it notifies, and notifies
    nothing for a group whose alerts have all resolved by then, so a page that fired and
    resolved within seconds would otherwise never reach a receiver. Keep it above the
    routes' ``group_wait`` (5 s and 10 s in prometheus/alertmanager.yml).

    With ``catalog``, each alert also says its rule's burn factor (``burn_factor``).

    ``close`` delivers what it can within its timeout and stops the thread.
    """

    def __init__(
        self,
        url: str,
        *,
        resend_interval_s: float = 60.0,
        timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
        fixpack_base_url: str = DEFAULT_FIXPACK_BASE_URL,
        on_delivered: DeliveredCallback | None = None,
        firing_margin_s: float | None = None,
        min_firing_s: float = 15.0,
        max_queue: int = MAX_QUEUE,
        max_batch: int = MAX_BATCH,
        catalog: SloCatalog | None = None,
    ) -> None:
        for name, value in (
            ("resend_interval_s", resend_interval_s),
            ("timeout_s", timeout_s),
            ("max_backoff_s", max_backoff_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if min_firing_s < 0 or max_queue < 1 or max_batch < 1:
            raise ValueError("min_firing_s must be ≥ 0, max_queue and max_batch ≥ 1")
        margin_s = (
            ENDS_AT_RESENDS * resend_interval_s if firing_margin_s is None else firing_margin_s
        )
        if margin_s <= 0:
            raise ValueError(f"firing_margin_s must be positive, not {margin_s}")
        self.url = url.rstrip("/")
        self._endpoint = self.url + ALERTS_PATH
        self._resend_interval_s = resend_interval_s
        self._timeout_s = timeout_s
        self._max_backoff_s = max_backoff_s
        self._margin_ms = math.ceil(margin_s * 1000)
        self._runbook_base_url = runbook_base_url
        self._fixpack_base_url = fixpack_base_url
        self._catalog = catalog
        self._on_delivered = on_delivered
        self._min_firing_s = min_firing_s
        self._max_queue = max_queue
        self._max_batch = max_batch
        self._client = httpx.Client(timeout=timeout_s)
        self._random = random.Random()

        self._cond = threading.Condition()
        self._queue: list[_Entry] = []
        self._queued: dict[Fingerprint, int] = {}  # entries per fingerprint in the queue
        self._firing: dict[Fingerprint, _Firing] = {}  # latest submitted state is firing
        self._fired_at: dict[Fingerprint, float] = {}  # monotonic time the fire was accepted
        self._next_seq = 1
        self._retry_at = 0.0
        self._failures = 0  # consecutive
        self._closing = False
        self._stop = False

        self._sent = 0
        self._resent = 0
        self._posts = 0
        self._failed_attempts = 0
        self._dropped_invalid = 0
        self._coalesced = 0
        self._coalesce_runs = 0

        self._thread = threading.Thread(target=self._run, name="alertmanager-sender", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------

    def submit(self, pages: Sequence[Page]) -> None:
        """Queue these page states, in order, and return at once."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the Alertmanager sender is closed")
            now = time.monotonic()
            for page in pages:
                problem = problem_with(page, firing_margin_ms=self._margin_ms)
                if problem is not None:
                    # Alertmanager would answer 400 for ever: never let it into the queue.
                    self._dropped_invalid += 1
                    logger.error("page for %s not sent to Alertmanager: %s", page.key, problem)
                    continue
                key = fingerprint(page)
                if key in self._queued:
                    self._drop_resend(key)
                if page.firing:
                    self._firing[key] = _Firing(page, now + self._resend_interval_s)
                else:
                    self._firing.pop(key, None)
                self._append(_Entry(page, key, self._next_seq))
                self._next_seq += 1
            if len(self._queue) > self._max_queue:
                self._coalesce()
            self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every page submitted so far has left the queue.

        True once each was accepted by Alertmanager (or refused for good as invalid,
        which ``dropped_invalid`` counts); False if ``timeout_s`` ran out first.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._next_seq - 1
            while any(e.seq is not None and e.seq <= target for e in self._queue):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued for up to ``timeout_s``, then stop the thread.

        What is still queued is lost to this process; the pager stage re-submits every
        page it knows after a restart, so Alertmanager gets it then.
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
        self.flush(timeout_s)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        # A POST in flight ends within the client timeout.
        self._thread.join(self._timeout_s + 1.0)
        self._client.close()

    def __enter__(self) -> AlertmanagerSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Page states waiting to be accepted, re-sends included."""
        with self._cond:
            return len(self._queue)

    @property
    def sent(self) -> int:
        """Alerts Alertmanager accepted, re-sends included."""
        with self._cond:
            return self._sent

    @property
    def failed_attempts(self) -> int:
        """POSTs that were not accepted (network errors, 5xx, 4xx)."""
        with self._cond:
            return self._failed_attempts

    @property
    def dropped_invalid(self) -> int:
        """Pages refused for good: invalid before sending, or rejected one by one."""
        with self._cond:
            return self._dropped_invalid

    def stats(self) -> SenderStats:
        with self._cond:
            return SenderStats(
                pending=len(self._queue),
                sent=self._sent,
                resent=self._resent,
                posts=self._posts,
                failed_attempts=self._failed_attempts,
                dropped_invalid=self._dropped_invalid,
                coalesced=self._coalesced,
                firing=len(self._firing),
            )

    # -- the queue (callers hold the lock) --------------------------------------------

    def _append(self, entry: _Entry) -> None:
        self._queue.append(entry)
        self._queued[entry.fingerprint] = self._queued.get(entry.fingerprint, 0) + 1

    def _remove(self, drop: Callable[[_Entry], bool]) -> None:
        kept: list[_Entry] = []
        for entry in self._queue:
            if drop(entry):
                left = self._queued[entry.fingerprint] - 1
                if left:
                    self._queued[entry.fingerprint] = left
                else:
                    del self._queued[entry.fingerprint]
            else:
                kept.append(entry)
        self._queue = kept

    def _remove_entries(self, entries: Sequence[_Entry]) -> None:
        # By identity: a page may have an older and a newer state queued.
        done = {id(entry) for entry in entries}
        self._remove(lambda entry: id(entry) in done)

    def _drop_resend(self, key: Fingerprint) -> None:
        """A queued re-send would post the state a new submission replaces."""
        # Re-sends are only queued for pages with nothing else queued, so one is alone.
        if any(entry.fingerprint == key and entry.seq is None for entry in self._queue):
            self._remove(lambda entry: entry.fingerprint == key)

    def _coalesce(self) -> None:
        """Keep only each page's latest state; it stands for the states it replaces.

        The bound is then the number of distinct pages, which the SLO rules bound.
        """
        last: dict[Fingerprint, _Entry] = {}
        first_seq: dict[Fingerprint, int] = {}
        for entry in self._queue:
            last[entry.fingerprint] = entry
            if entry.seq is not None:
                first_seq[entry.fingerprint] = min(
                    entry.seq, first_seq.get(entry.fingerprint, entry.seq)
                )
        kept = [entry for entry in self._queue if last[entry.fingerprint] is entry]
        for entry in kept:
            entry.seq = first_seq.get(entry.fingerprint)
        self._coalesced += len(self._queue) - len(kept)
        self._coalesce_runs += 1
        # A backlog coalesces again and again: log the 1st, 2nd, 4th, 8th… time.
        if self._coalesce_runs & (self._coalesce_runs - 1) == 0:
            logger.warning(
                "Alertmanager queue over %d: kept the latest state of %d pages "
                "(%d older states dropped so far)",
                self._max_queue,
                len(kept),
                self._coalesced,
            )
        self._queue = kept
        self._queued = dict.fromkeys(last, 1)

    def _queue_resends(self, now: float) -> float:
        """Queue the firing pages that are due; the next time one will be."""
        due = math.inf
        for key, firing in self._firing.items():
            if key in self._queued:
                continue  # its delivery schedules the next re-send
            if firing.resend_due <= now:
                self._append(_Entry(firing.page, key, None))
            else:
                due = min(due, firing.resend_due)
        return due

    def _pick(self, now: float) -> tuple[list[_Entry], float]:
        """The next batch: each page's oldest queued state, unless it is a held resolve."""
        batch: list[_Entry] = []
        seen: set[Fingerprint] = set()
        held_until = math.inf
        for entry in self._queue:
            if len(batch) == self._max_batch:
                break
            if entry.fingerprint in seen:
                continue  # a later state waits for the earlier one: order per page
            seen.add(entry.fingerprint)
            if not entry.page.firing:
                fired = self._fired_at.get(entry.fingerprint)
                if fired is not None and fired + self._min_firing_s > now:
                    held_until = min(held_until, fired + self._min_firing_s)
                    continue
            batch.append(entry)
        return batch, held_until

    # -- the sender's thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._wait_for_batch()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:  # the thread must outlive any surprise
                logger.exception("Alertmanager sender failed; retrying")
                with self._cond:
                    self._failed(time.monotonic())

    def _wait_for_batch(self) -> list[_Entry] | None:
        while not self._stop:
            now = time.monotonic()
            wake = self._queue_resends(now)
            if self._queue:
                if now >= self._retry_at:
                    batch, held_until = self._pick(now)
                    if batch:
                        return batch
                    wake = min(wake, held_until)
                else:
                    wake = min(wake, self._retry_at)
            self._cond.wait(None if wake == math.inf else wake - now)
        return None

    def _deliver(self, batch: list[_Entry]) -> None:
        """Post the batch; a rejected one is split until the bad alert is alone."""
        chunks = [batch]
        while chunks and not self._stop:
            chunk = chunks.pop()
            outcome, detail = self._post(chunk)
            now = time.monotonic()
            if outcome is _Attempt.ACCEPTED:
                self._accepted(chunk, now)
                continue
            with self._cond:
                self._failed_attempts += 1
                if outcome is _Attempt.FAILED:
                    self._failed(now, detail)
                    return
                if len(chunk) == 1:
                    self._dropped_invalid += 1
                    logger.error(
                        "Alertmanager refused the page %s, dropped: %s",
                        chunk[0].page.key,
                        detail,
                    )
                    self._remove_entries(chunk)
                    self._cond.notify_all()
                    continue
            half = len(chunk) // 2
            chunks.extend((chunk[half:], chunk[:half]))  # the first half goes first

    def _post(self, chunk: Sequence[_Entry]) -> tuple[_Attempt, str]:
        now_ms = int(time.time() * 1000)
        body = [
            alert_payload(
                entry.page,
                now_ms,
                firing_margin_ms=self._margin_ms,
                runbook_base_url=self._runbook_base_url,
                fixpack_base_url=self._fixpack_base_url,
                catalog=self._catalog,
            )
            for entry in chunk
        ]
        try:
            response = self._client.post(self._endpoint, json=body)
        except (httpx.HTTPError, RuntimeError) as error:  # RuntimeError: client closed
            return _Attempt.FAILED, f"{type(error).__name__}: {error}"
        if response.is_success:
            return _Attempt.ACCEPTED, ""
        detail = f"HTTP {response.status_code}: {response.text[:BODY_LOG_CHARS]}"
        if response.status_code in _BATCH_REJECTED:
            return _Attempt.REJECTED, detail
        return _Attempt.FAILED, detail

    def _accepted(self, chunk: Sequence[_Entry], now: float) -> None:
        with self._cond:
            for entry in chunk:
                key = entry.fingerprint
                if entry.page.firing:
                    self._fired_at.setdefault(key, now)
                    firing = self._firing.get(key)
                    if firing is not None:
                        firing.resend_due = now + self._resend_interval_s
                else:
                    self._fired_at.pop(key, None)
            self._remove_entries(chunk)
            resends = sum(entry.seq is None for entry in chunk)
            self._sent += len(chunk)
            self._resent += resends
            self._posts += 1
            if self._failures:
                logger.info("Alertmanager accepts alerts again after %d failures", self._failures)
            self._failures = 0
            self._retry_at = 0.0
            self._cond.notify_all()
        fresh = [entry.page for entry in chunk if entry.seq is not None]
        if fresh and self._on_delivered is not None:
            try:
                self._on_delivered(fresh, time.time())
            except Exception:  # a metrics hook must not stop deliveries
                logger.exception("on_delivered callback failed")

    def _failed(self, now: float, detail: str = "") -> None:
        self._failures += 1
        backoff = min(self._max_backoff_s, FIRST_BACKOFF_S * 2 ** min(self._failures - 1, 30))
        # Jitter spreads the retries of many senders after Alertmanager comes back.
        delay = backoff * self._random.uniform(0.5, 1.0)
        self._retry_at = now + delay
        # Every failure while it is down would flood the log: the 1st, 2nd, 4th, 8th…
        if self._failures & (self._failures - 1) == 0:
            logger.warning(
                "Alertmanager at %s: %s (failure %d, %d alerts queued, retry in %.1f s)",
                self.url,
                detail,
                self._failures,
                len(self._queue),
                delay,
            )
