"""The demo's system of record: a CRM in process.

It folds the story's change events into records, takes the fix packs' write-backs, and
publishes what a real CRM would publish after them — generic JSON change events (README.md)
that the demo feeds back to the flow. The flow then sees a touch close an untouched lead or
a stale deal, a delete close a duplicate, an owner close an unassigned record: the same
evidence a real CRM would give that a fix worked.

Owners are simulated: when ``owners_respond``, the owner of a record works a new task
``response_delay_ms`` after it was created (story time), which the CRM publishes as a touch
the first time it is called at or after that moment.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import orjson

from revleak.connectors.generic_json import decode_change
from revleak.crm.events import ChangeEvent, Op
from revleak.remediation.executors.base import ExecutionError
from revleak.remediation.model import CrmRecord, CrmWrite, JsonScalar
from revleak.slo.catalog import RevenueModel
from revleak.slo.loader import parse_catalog
from revleak.timefmt import format_timestamp, parse_timestamp

SOURCE = "embedded-crm"


def bundled_revenue_model() -> RevenueModel:
    """Closed stages and free-mail domains of the bundled SLO file (slos/crm.yaml)."""
    text = resources.files("revleak.slos").joinpath("crm.yaml").read_text(encoding="utf-8")
    return parse_catalog(text, file="crm.yaml").revenue


class EmbeddedCrm:
    """A :class:`~revleak.remediation.executors.crm.CrmCommandSink` and a
    :class:`~revleak.remediation.model.RecordDirectory` in one, safe across threads.

    ``emit`` receives each change event the CRM publishes, in order, never while the CRM's
    lock is held: it may call :meth:`observe` again (the demo feeds the events back).
    ``clock`` is the story's time in epoch milliseconds; it stamps every event. Neither is
    called under the CRM's lock, so they may take locks of their own.
    Record ids are unique across objects, as in the story.
    """

    def __init__(
        self,
        emit: Callable[[bytes], None],
        clock: Callable[[], int],
        *,
        owners_respond: bool = True,
        response_delay_ms: int = 60_000,
        revenue: RevenueModel | None = None,
    ) -> None:
        if response_delay_ms < 0:
            raise ValueError("response_delay_ms must not be negative")
        self._emit = emit
        self._clock = clock
        self._owners_respond = owners_respond
        self._response_delay_ms = response_delay_ms
        self._revenue = revenue or bundled_revenue_model()
        self._lock = threading.Lock()
        self._records: dict[str, CrmRecord] = {}
        self._merged: dict[str, CrmRecord] = {}  # a merged duplicate as it was, for unmerge
        self._tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self._drafts: dict[str, dict[str, dict[str, Any]]] = {}
        self._applied: dict[str, str] = {}  # command id → reference
        self._responses: list[tuple[int, int, str, str]] = []  # (due, seq, record, task)
        self._sequence = itertools.count()
        self._events = itertools.count(1)
        self._outbox: deque[bytes] = deque()
        self._publishing = False

    # -- the story's changes ---------------------------------------------------------------

    def observe(self, raw: bytes) -> None:
        """Fold one change event into the records; what the flow cannot read is ignored."""
        change = decode_change(raw, partition=0, offset=0, source=SOURCE, line_numbered=False)
        if not isinstance(change, ChangeEvent):
            return
        fields = _scalars(orjson.loads(raw).get("fields") or {})
        now = self._clock()
        with self._lock:
            current = self._records.get(change.record_id)
            if change.op is Op.DELETE:
                self._records.pop(change.record_id, None)
            elif change.op is Op.CREATE or current is None:
                # An update of an unknown record opens it, as it does in the flow.
                self._records[change.record_id] = CrmRecord(
                    record_id=change.record_id,
                    object=change.object.value,
                    fields=_merged_fields({}, fields),
                )
            else:
                self._records[change.record_id] = _with_fields(current, fields)
            self._outbox.extend(self._responses_due(now))
        self._publish()

    # -- write-backs ------------------------------------------------------------------------

    def send(self, command: CrmWrite) -> str:
        """Apply a write-back and publish its change events; a repeated command id does
        nothing more and answers the first reference."""
        now = self._clock()
        with self._lock:
            reference = self._applied.get(command.command_id)
            if reference is None:
                self._outbox.extend(self._carry_out(command, now))
                # After the command: with no response delay, its own task is worked now.
                self._outbox.extend(self._responses_due(now))
                reference = f"{SOURCE}/{len(self._applied) + 1}"
                self._applied[command.command_id] = reference
        self._publish()
        return reference

    def _carry_out(self, command: CrmWrite, now: int) -> list[bytes]:
        """The command's change events; state is changed only once they are known valid."""
        if command.op == "unmerge":
            return self._unmerge(command, now)
        record = self._record(command)
        if command.op == "update":
            changed = {
                name: value
                for name, value in command.fields.items()
                if record.fields.get(name) != value
            }
            if not changed:
                return []
            event = self._event(now, record, "update", changed)
            self._records[record.record_id] = _with_fields(record, changed)
            return [event]
        if command.op == "merge":
            if command.into is None or command.into not in self._records:
                raise ExecutionError(
                    f"cannot merge {record.record_id}: the surviving record "
                    f"{command.into or '(none given)'} is not in the CRM"
                )
            event = self._event(now, record, "delete", None)
            self._merged[record.record_id] = record
            del self._records[record.record_id]
            return [event]
        task_id = command.task_id
        if task_id is None:
            raise ExecutionError(f"a {command.op} command needs a task_id")
        if command.op == "create_task":
            tasks = self._tasks.setdefault(record.record_id, {})
            tasks[task_id] = {**command.fields, "task_id": task_id, "status": "open"}
            if self._owners_respond:
                due = now + self._response_delay_ms
                entry = (due, next(self._sequence), record.record_id, task_id)
                heapq.heappush(self._responses, entry)
        elif command.op == "delete_task":
            self._tasks.get(record.record_id, {}).pop(task_id, None)
        elif command.op == "draft_email":
            drafts = self._drafts.setdefault(record.record_id, {})
            drafts[task_id] = {**command.fields, "task_id": task_id}
        else:
            self._drafts.get(record.record_id, {}).pop(task_id, None)
        return []

    def _unmerge(self, command: CrmWrite, now: int) -> list[bytes]:
        if command.record_id in self._records:
            return []
        kept = self._merged.get(command.record_id)
        if kept is None:
            if not command.fields:
                raise ExecutionError(f"nothing is known of the merged record {command.record_id}")
            kept = CrmRecord(
                record_id=command.record_id,
                object=command.object,
                fields=_merged_fields({}, command.fields),
            )
        event = self._event(now, kept, "create", dict(kept.fields))
        self._merged.pop(command.record_id, None)
        self._records[command.record_id] = kept
        return [event]

    def _record(self, command: CrmWrite) -> CrmRecord:
        record = self._records.get(command.record_id)
        if record is None or record.object != command.object:
            raise ExecutionError(f"no open {command.object} {command.record_id} in the CRM")
        return record

    def _responses_due(self, now: int) -> list[bytes]:
        """The owners' touches on tasks due by ``now`` that are still open."""
        events: list[bytes] = []
        while self._responses and self._responses[0][0] <= now:
            _, _, record_id, task_id = heapq.heappop(self._responses)
            task = self._tasks.get(record_id, {}).get(task_id)
            record = self._records.get(record_id)
            if task is None or task["status"] != "open" or record is None:
                continue
            task["status"] = "done"
            touch: dict[str, JsonScalar] = {"last_touch_at": format_timestamp(now)}
            events.append(self._event(now, record, "update", touch))
            self._records[record_id] = _with_fields(record, touch)
        return events

    def _event(
        self, now: int, record: CrmRecord, op: str, fields: dict[str, JsonScalar] | None
    ) -> bytes:
        """A change event as the flow reads it; an ExecutionError when it would not."""
        event: dict[str, Any] = {
            "event_id": f"{SOURCE}:{next(self._events)}",
            "ts": format_timestamp(now),
            "object": record.object,
            "op": op,
            "record_id": record.record_id,
        }
        if fields is not None:
            event["fields"] = fields
        raw = orjson.dumps(event)
        checked = decode_change(raw, partition=0, offset=0, source=SOURCE, line_numbered=False)
        if not isinstance(checked, ChangeEvent):
            detail = checked.detail if checked is not None else "an empty event"
            raise ExecutionError(f"the CRM refuses this change of {record.record_id}: {detail}")
        return raw

    def _publish(self) -> None:
        """Hand queued events to ``emit`` in order, outside the lock.

        One caller publishes at a time; a caller that finds publishing under way leaves its
        events to it, so a nested call from ``emit`` neither blocks nor reorders.
        """
        with self._lock:
            if self._publishing:
                return
            self._publishing = True
        while True:
            with self._lock:
                if not self._outbox:
                    self._publishing = False
                    return
                raw = self._outbox.popleft()
            try:
                self._emit(raw)
            except BaseException:
                with self._lock:
                    self._outbox.appendleft(raw)  # kept for the next call to publish
                    self._publishing = False
                raise

    # -- reads ------------------------------------------------------------------------------

    def get(self, record_id: str) -> CrmRecord | None:
        with self._lock:
            return self._records.get(record_id)

    def related(self, record: CrmRecord) -> list[CrmRecord]:
        """Other open records of the same object with the same normalised email or the same
        company domain (the ``domain`` field, else the email's; free mail never counts),
        oldest first."""
        email = _email(record)
        domain = self._company_domain(record)
        with self._lock:
            found = [
                other
                for other in self._records.values()
                if other.record_id != record.record_id
                and other.object == record.object
                and self._is_open(other)
                and (
                    (email is not None and _email(other) == email)
                    or (domain is not None and self._company_domain(other) == domain)
                )
            ]
        return sorted(found, key=_age)

    def tasks(self, record_id: str) -> list[dict[str, Any]]:
        """The record's tasks (``status`` open or done), oldest first."""
        with self._lock:
            return [dict(task) for task in self._tasks.get(record_id, {}).values()]

    def drafts(self, record_id: str) -> list[dict[str, Any]]:
        """The record's email drafts, oldest first."""
        with self._lock:
            return [dict(draft) for draft in self._drafts.get(record_id, {}).values()]

    def __str__(self) -> str:
        return "embedded CRM"

    def _is_open(self, record: CrmRecord) -> bool:
        stage = record.get("stage")
        return not (isinstance(stage, str) and self._revenue.is_closed(stage.strip()))

    def _company_domain(self, record: CrmRecord) -> str | None:
        domain = record.get("domain")
        found = domain.strip().casefold() if isinstance(domain, str) else ""
        if not found:
            email = _email(record) or ""
            found = email.rpartition("@")[2] if "@" in email else ""
        if not found or found in self._revenue.free_mail_domains:
            return None
        return found


def _email(record: CrmRecord) -> str | None:
    email = record.get("email")
    normalised = email.strip().casefold() if isinstance(email, str) else ""
    return normalised or None


def _age(record: CrmRecord) -> tuple[int, str]:
    created = record.get("created_at")
    return (parse_timestamp(created) if isinstance(created, str) else 0, record.record_id)


def _scalars(fields: Mapping[str, Any]) -> dict[str, JsonScalar]:
    return {
        name: value
        for name, value in fields.items()
        if value is None or isinstance(value, str | int | float | bool)
    }


def _merged_fields(
    fields: Mapping[str, JsonScalar], changes: Mapping[str, JsonScalar]
) -> dict[str, JsonScalar]:
    """``fields`` with ``changes`` applied: ``None`` clears a field."""
    merged = {**fields, **changes}
    return {name: value for name, value in merged.items() if value is not None}


def _with_fields(record: CrmRecord, changes: Mapping[str, JsonScalar]) -> CrmRecord:
    return record.model_copy(update={"fields": _merged_fields(record.fields, changes)})
