"""What Alertmanager would send the remediation API, without an Alertmanager (the demo).

:func:`webhook_payload` renders a notification exactly as Alertmanager's webhook receiver
posts it (payload version 4: Go's JSON of ``template.Data`` plus ``version``, ``groupKey``
and ``truncatedAlerts``). :class:`EmbeddedAlertmanager` takes the pager's pages and notifies
as prometheus/alertmanager.yml routes them: grouped by alertname, SLO and severity, pages to
``revleak-page`` and tickets to ``revleak-ticket``, resolved alerts included
(``send_resolved``). It notifies at once instead of after ``group_wait``, and keeps
Alertmanager's rule of when a group is worth a notification.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from revleak.connectors.alertmanager import (
    DEFAULT_FIXPACK_BASE_URL,
    DEFAULT_RUNBOOK_BASE_URL,
    Fingerprint,
    alert_payload,
    fingerprint,
)
from revleak.paging import ALERT_NAME, Page
from revleak.slo.catalog import SloCatalog

logger = logging.getLogger(__name__)

Status = Literal["firing", "resolved"]
Notify = Callable[[dict[str, Any]], None]
GroupKey = tuple[str, str, str]  # alertname, slo, severity: group_by of alertmanager.yml

DEFAULT_EXTERNAL_URL = "http://127.0.0.1/alertmanager"
DEFAULT_RECEIVER = "revleak-default"
RECEIVERS = {"page": "revleak-page", "ticket": "revleak-ticket"}
# Each receiver's route in prometheus/alertmanager.yml, as Alertmanager names it in groupKey.
ROUTE_KEYS = {
    DEFAULT_RECEIVER: "{}",
    "revleak-page": '{}/{severity="page"}',
    "revleak-ticket": '{}/{severity="ticket"}',
}
# Go's zero time.Time: Alertmanager's endsAt of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_LABEL_SEPARATOR = 0xFF  # a byte that never occurs in UTF-8
_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}


class HeldAlert(BaseModel):
    """An alert as Alertmanager holds it when it notifies: ``endsAt`` only once resolved."""

    model_config = ConfigDict(frozen=True)

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: str = Field(validation_alias="startsAt")
    ends_at: str | None = Field(default=None, validation_alias="endsAt")
    generator_url: str = Field(default="", validation_alias="generatorURL")


class WebhookAlert(BaseModel):
    """One alert of a notification, as Alertmanager renders it."""

    model_config = ConfigDict(frozen=True)

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str = Field(serialization_alias="startsAt")
    ends_at: str = Field(serialization_alias="endsAt")
    generator_url: str = Field(serialization_alias="generatorURL")
    fingerprint: str


class WebhookMessage(BaseModel):
    """Alertmanager's webhook body, fields in the order Alertmanager writes them."""

    model_config = ConfigDict(frozen=True)

    receiver: str
    status: Status
    alerts: list[WebhookAlert]
    group_labels: dict[str, str] = Field(serialization_alias="groupLabels")
    common_labels: dict[str, str] = Field(serialization_alias="commonLabels")
    common_annotations: dict[str, str] = Field(serialization_alias="commonAnnotations")
    external_url: str = Field(serialization_alias="externalURL")
    version: Literal["4"] = "4"
    group_key: str = Field(serialization_alias="groupKey")
    truncated_alerts: int = Field(default=0, serialization_alias="truncatedAlerts")


def webhook_payload(
    alerts: Sequence[dict[str, Any]],
    *,
    receiver: str,
    status: Status,
    group_labels: dict[str, str],
    external_url: str,
) -> dict[str, Any]:
    """The webhook body Alertmanager posts for one group's notification.

    ``alerts`` are :class:`HeldAlert` dicts (as posted to ``/api/v2/alerts``, plus their
    ``status``); they come out in Alertmanager's order, with fingerprints, Go's time format,
    and the zero time as ``endsAt`` while firing.
    """
    held = sorted((HeldAlert.model_validate(alert) for alert in alerts), key=_alert_order)
    rendered = [
        WebhookAlert(
            status=alert.status,
            labels=_sorted(alert.labels),
            annotations=_sorted(alert.annotations),
            starts_at=_go_time(alert.starts_at),
            ends_at=_ends_at(alert),
            generator_url=alert.generator_url,
            fingerprint=label_fingerprint(alert.labels),
        )
        for alert in held
    ]
    route = ROUTE_KEYS.get(receiver, ROUTE_KEYS[DEFAULT_RECEIVER])
    message = WebhookMessage(
        receiver=receiver,
        status=status,
        alerts=rendered,
        group_labels=_sorted(group_labels),
        common_labels=_common([alert.labels for alert in held]),
        common_annotations=_common([alert.annotations for alert in held]),
        external_url=external_url,
        group_key=f"{route}:{_label_set(group_labels)}",
    )
    return message.model_dump(by_alias=True)


def label_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted names and values."""
    digest = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name.encode(), labels[name].encode()):
            for byte in (*part, _LABEL_SEPARATOR):
                digest = ((digest ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def receiver_for(severity: str) -> str:
    return RECEIVERS.get(severity, DEFAULT_RECEIVER)


def _ends_at(alert: HeldAlert) -> str:
    if alert.status == "firing":
        return ZERO_TIME
    if alert.ends_at is None:
        raise ValueError(f"resolved alert {alert.labels} has no endsAt")
    return _go_time(alert.ends_at)


def _go_time(text: str) -> str:
    """An ISO-8601 time as Go's RFC 3339 with nanoseconds writes it (no trailing zeros)."""
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0").rstrip(".")
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def _alert_order(alert: HeldAlert) -> tuple[int, list[tuple[str, str]]]:
    # Alertmanager sorts a group's alerts by label set: fewer labels first, then the
    # values in label-name order (no alert here has the job or instance it looks at first).
    return len(alert.labels), sorted(alert.labels.items())


def _common(sets: list[dict[str, str]]) -> dict[str, str]:
    if not sets:
        return {}
    first, *rest = sets
    return _sorted({k: v for k, v in first.items() if all(s.get(k) == v for s in rest)})


def _sorted(values: dict[str, str]) -> dict[str, str]:
    # Go writes map keys in order.
    return {key: values[key] for key in sorted(values)}


def _label_set(labels: dict[str, str]) -> str:
    """Go's ``model.LabelSet.String()``: ``{a="1", b="2"}``."""
    return "{" + ", ".join(f"{name}={_go_quote(labels[name])}" for name in sorted(labels)) + "}"


def _go_quote(value: str) -> str:
    """Go's ``%q`` of a string."""
    out: list[str] = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


@dataclass(slots=True)
class _Group:
    """One aggregation group: the alerts it holds and what its last notification said."""

    alerts: dict[Fingerprint, Page] = field(default_factory=dict)
    changes: int = 0  # submissions that touched it, so a flush knows if it is still current
    notified_firing: frozenset[Fingerprint] | None = None  # None: never notified
    notified_resolved: frozenset[Fingerprint] = frozenset()


class EmbeddedAlertmanager:
    """Alertmanager's grouping and webhook notifications in process; thread-safe.

    ``submit`` takes page states as ``AlertmanagerSender.submit`` does and calls ``notify``
    with the webhook body of each group that changed, before returning. The alerts' times
    are event time: a page starts and ends when the pager says, not on a wall clock.

    A group is notified as Alertmanager decides: when it has a new firing alert, a newly
    resolved one, or when its last firing alert resolved; never for alerts that fired and
    resolved before it was first notified. Resolved alerts leave the group once notified.
    An exception from ``notify`` is logged and the group is notified again at the next
    ``submit``.
    """

    def __init__(
        self,
        notify: Notify,
        *,
        external_url: str = DEFAULT_EXTERNAL_URL,
        catalog: SloCatalog | None = None,
        runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
        fixpack_base_url: str = DEFAULT_FIXPACK_BASE_URL,
    ) -> None:
        self._notify = notify
        self._external_url = external_url
        self._catalog = catalog
        self._runbook_base_url = runbook_base_url
        self._fixpack_base_url = fixpack_base_url
        self._lock = threading.Lock()
        # Notifications leave one at a time and in order; re-entrant so that a ``notify``
        # that submits (an in-process receiver reacting at once) cannot deadlock.
        self._delivering = threading.RLock()
        self._groups: dict[GroupKey, _Group] = {}
        self._due: dict[GroupKey, None] = {}  # groups to flush, in the order they changed

    def submit(self, pages: Sequence[Page]) -> None:
        """Hold these page states, in order, then notify every group that changed."""
        with self._lock:
            for page in pages:
                key = (ALERT_NAME, page.key.slo, page.key.severity)
                group = self._groups.setdefault(key, _Group())
                group.alerts[fingerprint(page)] = page
                group.changes += 1
                self._due[key] = None
        self._flush()

    def held(self) -> list[Page]:
        """The alerts held now: firing ones, and resolved ones not yet notified."""
        with self._lock:
            return [page for group in self._groups.values() for page in group.alerts.values()]

    def _flush(self) -> None:
        with self._delivering:
            with self._lock:
                due = list(self._due)
            for key in due:
                self._flush_group(key)

    def _flush_group(self, key: GroupKey) -> None:
        with self._lock:
            group = self._groups[key]
            held = dict(group.alerts)
            changes = group.changes
            firing = frozenset(fp for fp, page in held.items() if page.firing)
            resolved = frozenset(held) - firing
            message = self._message(key, held) if _needs_update(group, firing, resolved) else None
        if message is not None:
            try:
                self._notify(message)
            except Exception:  # the receiver's failure must never stop the flow
                logger.exception("notification of alert group %s failed; retrying later", key)
                return
        with self._lock:
            if message is not None:
                group.notified_firing = firing
                group.notified_resolved = resolved
            for fp in resolved:
                if group.alerts.get(fp) is held[fp]:
                    del group.alerts[fp]
            if group.changes == changes:
                self._due.pop(key, None)

    def _message(self, key: GroupKey, held: dict[Fingerprint, Page]) -> dict[str, Any]:
        alertname, slo, severity = key
        alerts = []
        for page in held.values():
            # The clock here is event time: a firing alert is shown from when it fired,
            # a resolved one until the event time it resolved.
            clock = page.starts_at if page.ends_at is None else page.ends_at
            alert = alert_payload(
                page,
                clock,
                firing_margin_ms=0,
                runbook_base_url=self._runbook_base_url,
                fixpack_base_url=self._fixpack_base_url,
                catalog=self._catalog,
            )
            alert["status"] = "firing" if page.firing else "resolved"
            alerts.append(alert)
        return webhook_payload(
            alerts,
            receiver=receiver_for(severity),
            status="firing" if any(page.firing for page in held.values()) else "resolved",
            group_labels={"alertname": alertname, "slo": slo, "severity": severity},
            external_url=self._external_url,
        )


def _needs_update(
    group: _Group, firing: frozenset[Fingerprint], resolved: frozenset[Fingerprint]
) -> bool:
    """Alertmanager's dedup rule (notify.DedupStage.needsUpdate) with send_resolved on."""
    if group.notified_firing is None:
        return bool(firing)
    if not firing <= group.notified_firing:
        return True
    if not firing:
        return bool(group.notified_firing)
    return not resolved <= group.notified_resolved
