"""The embedded CRM: records, write-backs, the change events it publishes, and what the
flow makes of them (replayed through the real pipeline stages)."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from harness import decode_batches, default_catalog, run_pipeline

from revleak.crm.pipeline import FlowConfig
from revleak.remediation.crm_sim import EmbeddedCrm
from revleak.remediation.executors.base import ExecutionError, Executors
from revleak.remediation.model import CrmRecord, CrmWrite, JsonScalar
from revleak.slo.catalog import Rule
from revleak.slo.incident import LeakKey
from revleak.timefmt import MINUTE_MS, format_timestamp, parse_timestamp

START = parse_timestamp("2026-03-02T10:00:00Z")
COMMANDS = itertools.count(1)


class Story:
    """Feeds change events to the CRM and keeps the log the flow would read: the story's
    events and the CRM's, in the order they happen, stamped by the story clock."""

    def __init__(self, *, response_delay_ms: int = 60_000, owners_respond: bool = True) -> None:
        self.now = START
        self.log: list[bytes] = []
        self._count = 0
        self.crm = EmbeddedCrm(
            self.log.append,
            lambda: self.now,
            owners_respond=owners_respond,
            response_delay_ms=response_delay_ms,
        )

    def change(self, minute: int, op: str, record_id: str, **fields: JsonScalar) -> None:
        self.now = START + minute * MINUTE_MS
        self._count += 1
        message = {
            "event_id": f"story-{self._count}",
            "ts": format_timestamp(self.now),
            "object": "opportunity" if record_id.startswith("O-") else "lead",
            "op": op,
            "record_id": record_id,
            "fields": fields,
        }
        raw = json.dumps(message).encode()
        self.log.append(raw)
        self.crm.observe(raw)

    def lead(self, minute: int, record_id: str, **fields: JsonScalar) -> None:
        stamp = format_timestamp(START + minute * MINUTE_MS)
        defaults: dict[str, JsonScalar] = {"owner": "holly", "region": "NA", "created_at": stamp}
        self.change(minute, "create", record_id, **{**defaults, **fields})

    def send(self, minute: int, command: CrmWrite) -> str:
        self.now = START + minute * MINUTE_MS
        return self.crm.send(command)

    def record(self, record_id: str) -> CrmRecord:
        found = self.crm.get(record_id)
        assert found is not None, f"{record_id} is not in the CRM"
        return found

    def emitted(self) -> list[dict[str, Any]]:
        return [event for event in map(json.loads, self.log) if event["event_id"][:6] != "story-"]


def write(record_id: str, op: str, **extra: Any) -> CrmWrite:
    return CrmWrite.model_validate(
        {
            "command_id": f"INC-1:{next(COMMANDS)}",
            "record_id": record_id,
            "object": "opportunity" if record_id.startswith("O-") else "lead",
            "op": op,
            **extra,
        }
    )


def event(record_id: str, fields: dict[str, JsonScalar]) -> bytes:
    """A lead's creation at the start of the story, as a generic change event."""
    return json.dumps(
        {
            "event_id": f"story:{record_id}",
            "ts": format_timestamp(START),
            "object": "lead",
            "op": "create",
            "record_id": record_id,
            "fields": fields,
        }
    ).encode()


@dataclass
class Leaks:
    """What the flow's live view saw of the blast radius."""

    opened: set[LeakKey] = field(default_factory=set)
    closed: set[LeakKey] = field(default_factory=set)
    open_at_end: set[LeakKey] = field(default_factory=set)


def leaks(log: list[bytes]) -> Leaks:
    config = FlowConfig(catalog=default_catalog(), shards=4, live_view=True)
    outputs = run_pipeline(config, [decode_batches(log, batch_size=1)])
    assert outputs.dead_letters == []
    seen = Leaks()
    for update in outputs.live:
        if update.full:
            seen.open_at_end.clear()
        seen.open_at_end.difference_update(update.closed)
        seen.open_at_end.update(leak.key for leak in update.opened)
        seen.opened.update(leak.key for leak in update.opened)
        seen.closed.update(update.closed)
    return seen


# -- records --------------------------------------------------------------------------------


def test_observe_folds_creates_updates_and_deletes() -> None:
    story = Story()
    story.lead(0, "L-1", email="Ana@Acme.example", value_usd=40000)
    story.change(5, "update", "L-1", owner=None, stage="Qualified")
    story.change(6, "update", "L-2", owner="karl")  # an unknown record opens, as in the flow
    assert story.crm.get("L-1") == CrmRecord(
        record_id="L-1",
        object="lead",
        fields={
            "email": "Ana@Acme.example",
            "value_usd": 40000,
            "region": "NA",
            "created_at": "2026-03-02T10:00:00.000Z",
            "stage": "Qualified",
        },
    )
    assert story.crm.get("L-2") == CrmRecord(
        record_id="L-2", object="lead", fields={"owner": "karl"}
    )
    story.change(7, "delete", "L-1")
    assert story.crm.get("L-1") is None
    story.crm.observe(b"not an event")  # the flow dead-letters it; the CRM ignores it
    assert story.emitted() == []


def test_related_records_share_an_email_or_a_company_domain() -> None:
    story = Story()
    story.lead(0, "L-1", email="ana@acme.example")
    story.lead(1, "L-2", email=" ANA@acme.example ")
    story.lead(2, "L-3", email="bo@acme.example")
    story.lead(3, "L-4", email="ana@gmail.com")
    story.lead(4, "L-5", email="cy@gmail.com")
    story.lead(5, "L-6", email="di@acme.example", stage="Converted")  # closed
    story.change(6, "create", "O-1", domain="ACME.example", created_at="2026-03-02T10:06:00Z")
    story.lead(7, "L-7", email="ana@gmail.com")
    related = story.crm.related
    record = story.record

    def ids(records: list[CrmRecord]) -> list[str]:
        return [found.record_id for found in records]

    assert ids(related(record("L-3"))) == ["L-1", "L-2"]  # oldest first
    assert ids(related(record("L-4"))) == ["L-7"]  # same address; gmail.com is no company
    assert ids(related(record("L-5"))) == []
    assert ids(related(record("O-1"))) == []  # other object


# -- write-backs ----------------------------------------------------------------------------


def test_an_update_publishes_only_what_changed_once_per_command() -> None:
    story = Story()
    story.lead(0, "L-1", owner="", region="NA")
    command = write("L-1", "update", fields={"owner": "ellis", "region": "NA"})
    reference = story.send(3, command)
    assert reference == "embedded-crm/1"
    assert story.send(4, command) == reference  # a repeat does nothing more
    assert story.emitted() == [
        {
            "event_id": "embedded-crm:1",
            "ts": "2026-03-02T10:03:00.000Z",
            "object": "lead",
            "op": "update",
            "record_id": "L-1",
            "fields": {"owner": "ellis"},
        }
    ]
    assert story.record("L-1").get("owner") == "ellis"
    unchanged = write("L-1", "update", fields={"owner": "ellis"}).model_copy(
        update={"command_id": "other"}
    )
    assert story.send(5, unchanged) == "embedded-crm/2"
    assert len(story.emitted()) == 1


def test_a_clearing_update_is_published_as_null() -> None:
    story = Story()
    story.change(0, "create", "O-1", next_step="demo", created_at="2026-03-02T10:00:00Z")
    story.send(1, write("O-1", "update", fields={"next_step": None}))
    assert story.emitted()[0]["fields"] == {"next_step": None}
    assert "next_step" not in story.record("O-1").fields


def test_write_backs_the_flow_could_not_read_are_refused_unapplied() -> None:
    story = Story()
    story.lead(0, "L-1")
    with pytest.raises(ExecutionError, match=r"refuses this change of L-1: fields\.value_usd"):
        story.send(1, write("L-1", "update", fields={"value_usd": -5, "owner": "karl"}))
    assert story.record("L-1").get("owner") == "holly"
    refused = write("L-9", "update", fields={"owner": "karl"})
    with pytest.raises(ExecutionError, match="no open lead L-9"):
        story.send(1, refused)
    with pytest.raises(ExecutionError, match="no open opportunity L-1"):
        story.send(
            1,
            write("L-1", "update", fields={"owner": "karl"}).model_copy(
                update={"object": "opportunity", "command_id": "x"}
            ),
        )
    with pytest.raises(ExecutionError, match="needs a task_id"):
        story.send(1, write("L-1", "create_task", fields={"subject": "Call"}))
    assert story.emitted() == []
    # A refused command may be sent again once it can be carried out.
    story.lead(2, "L-9")
    story.send(3, refused)
    assert story.emitted()[0]["fields"] == {"owner": "karl"}


def test_the_owner_works_a_new_task_after_the_response_delay() -> None:
    story = Story(response_delay_ms=2 * MINUTE_MS)
    story.lead(0, "L-1")
    task = {"subject": "Call now", "due_at": "2026-03-02T10:15:00.000Z", "owner": "holly"}
    story.send(1, write("L-1", "create_task", task_id="INC-1:call:L-1", fields=task))
    assert story.crm.tasks("L-1") == [{**task, "task_id": "INC-1:call:L-1", "status": "open"}]
    story.lead(2, "L-2")  # one minute later: the owner is still on it
    assert story.emitted() == []
    story.lead(4, "L-3")  # the CRM learns the time has come at its next call
    assert story.emitted() == [
        {
            "event_id": "embedded-crm:1",
            "ts": "2026-03-02T10:04:00.000Z",
            "object": "lead",
            "op": "update",
            "record_id": "L-1",
            "fields": {"last_touch_at": "2026-03-02T10:04:00.000Z"},
        }
    ]
    assert story.crm.tasks("L-1")[0]["status"] == "done"
    story.lead(9, "L-4")
    assert len(story.emitted()) == 1


def test_a_task_deleted_before_it_is_worked_brings_no_touch() -> None:
    story = Story(response_delay_ms=5 * MINUTE_MS)
    story.lead(0, "L-1")
    story.send(1, write("L-1", "create_task", task_id="t1", fields={"subject": "Call"}))
    story.send(2, write("L-1", "delete_task", task_id="t1"))
    story.lead(10, "L-2")
    assert story.crm.tasks("L-1") == []
    assert story.emitted() == []


def test_owners_that_do_not_respond_leave_tasks_open() -> None:
    story = Story(owners_respond=False, response_delay_ms=0)
    story.lead(0, "L-1")
    story.send(1, write("L-1", "create_task", task_id="t1", fields={"subject": "Call"}))
    story.lead(60, "L-2")
    assert story.crm.tasks("L-1")[0]["status"] == "open"
    assert story.emitted() == []


def test_merge_deletes_the_duplicate_and_unmerge_brings_it_back() -> None:
    story = Story()
    story.lead(0, "L-1", email="ana@acme.example")
    story.lead(5, "L-2", email="bo@acme.example", value_usd=30000)
    kept = story.record("L-2")
    merge = write("L-2", "merge", into="L-1", fields={"email": "bo@acme.example"})
    story.send(6, merge)
    assert story.crm.get("L-2") is None
    assert story.crm.related(story.record("L-1")) == []
    story.send(7, write("L-2", "unmerge", into="L-1"))
    assert story.crm.get("L-2") == kept
    deleted, created = story.emitted()
    assert (deleted["op"], deleted["record_id"], deleted.get("fields")) == ("delete", "L-2", None)
    assert created["op"] == "create"
    assert created["fields"] == kept.fields
    with pytest.raises(ExecutionError, match="surviving record L-5 is not in the CRM"):
        story.send(8, write("L-1", "merge", into="L-5"))


def test_unmerge_of_a_record_merged_before_a_restart_uses_the_commands_fields() -> None:
    story = Story()
    fields: dict[str, JsonScalar] = {
        "email": "bo@acme.example",
        "created_at": "2026-03-02T09:00:00Z",
    }
    story.send(1, write("L-2", "unmerge", into="L-1", fields=fields))
    assert story.crm.get("L-2") == CrmRecord(record_id="L-2", object="lead", fields=fields)
    with pytest.raises(ExecutionError, match="nothing is known of the merged record L-3"):
        story.send(2, write("L-3", "unmerge", into="L-1"))


def test_email_drafts_are_stored_without_change_events() -> None:
    story = Story()
    story.change(0, "create", "O-1", created_at="2026-03-02T10:00:00Z")
    draft = {"to": "ceo@nakatomi.example", "subject": "Next steps", "body": "Hi"}
    story.send(1, write("O-1", "draft_email", task_id="d1", fields=draft))
    assert story.crm.drafts("O-1") == [{**draft, "task_id": "d1"}]
    story.send(2, write("O-1", "discard_email", task_id="d1"))
    assert story.crm.drafts("O-1") == []
    assert story.emitted() == []


def test_executors_dispatch_to_the_embedded_crm() -> None:
    story = Story()
    story.lead(0, "L-1")
    executors = Executors(crm=story.crm)
    result = executors.execute(write("L-1", "update", fields={"owner": "karl"}))
    assert (result.ref, result.kind, result.detail) == ("embedded-crm/1", "crm", "update lead L-1")
    assert executors.describe()["crm"] == "embedded CRM"


# -- threads ----------------------------------------------------------------------------------


def test_events_fed_back_from_emit_neither_deadlock_nor_reorder() -> None:
    published: list[bytes] = []
    crm: EmbeddedCrm

    def emit(raw: bytes) -> None:
        published.append(raw)
        crm.observe(raw)  # the demo feeds the CRM's own events back to it

    crm = EmbeddedCrm(emit, lambda: START, response_delay_ms=0)
    crm.observe(event("L-1", {"owner": "holly"}))
    crm.send(write("L-1", "create_task", task_id="t1"))
    crm.send(write("L-1", "update", fields={"owner": "karl"}))
    assert [json.loads(raw)["fields"] for raw in published] == [
        {"last_touch_at": "2026-03-02T10:00:00.000Z"},
        {"owner": "karl"},
    ]


def test_concurrent_writers_and_observers_lose_nothing() -> None:
    published: list[dict[str, Any]] = []
    lock = threading.Lock()

    def emit(raw: bytes) -> None:
        with lock:
            published.append(json.loads(raw))

    crm = EmbeddedCrm(emit, lambda: START, owners_respond=False)
    records = [f"L-{n}" for n in range(20)]
    for record_id in records:
        crm.observe(event(record_id, {"owner": "holly"}))

    def writer(name: str) -> None:
        for round_ in range(10):
            for record_id in records:
                crm.send(
                    CrmWrite(
                        command_id=f"{name}:{round_}:{record_id}",
                        record_id=record_id,
                        object="lead",
                        op="update",
                        fields={"next_step": f"{name}-{round_}"},
                    )
                )

    def observer() -> None:
        for n in range(200):
            crm.observe(event(f"X-{n}", {}))

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    threads.append(threading.Thread(target=observer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(published) == 2 * 10 * 20  # every update changed its record's next step
    assert len({event["event_id"] for event in published}) == len(published)
    for record_id in records:
        last = [e["fields"]["next_step"] for e in published if e["record_id"] == record_id][-1]
        current = crm.get(record_id)
        assert current is not None
        assert current.get("next_step") == last
    assert crm.get("X-199") is not None


def test_a_story_that_holds_its_own_lock_around_the_crm_cannot_deadlock_it() -> None:
    # The story feed locks its clock, and holds that lock while it hands events to the CRM.
    story_lock = threading.RLock()
    published: list[bytes] = []

    def clock() -> int:
        with story_lock:
            return START

    def emit(raw: bytes) -> None:
        with story_lock:
            published.append(raw)
            crm.observe(raw)

    crm = EmbeddedCrm(emit, clock, response_delay_ms=0)
    crm.observe(event("L-1", {"owner": "holly"}))

    def story() -> None:
        for n in range(300):
            with story_lock:
                crm.observe(event(f"X-{n}", {}))

    def api() -> None:
        for n in range(300):
            crm.send(write("L-1", "update", fields={"next_step": f"step {n}"}))

    threads = [
        threading.Thread(target=story, daemon=True),
        threading.Thread(target=api, daemon=True),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "deadlocked"
    assert len(published) == 300


# -- what the flow makes of the CRM's events -------------------------------------------------


def test_the_owners_touch_closes_an_untouched_lead_in_the_flow() -> None:
    story = Story()
    story.lead(0, "L-1", value_usd=30000)
    story.lead(10, "L-2")
    story.change(12, "update", "L-2", last_touch_at=format_timestamp(START + 12 * MINUTE_MS))
    story.send(40, write("L-1", "create_task", task_id="call", fields={"subject": "Call"}))
    story.lead(42, "L-3")  # the owner has worked the task by now
    story.change(43, "update", "L-3", last_touch_at=format_timestamp(START + 43 * MINUTE_MS))
    leak = ("lead_response", "L-1", Rule.SLA_BREACH_UNTOUCHED)
    seen = leaks(story.log)
    assert leak in seen.opened
    assert leak not in seen.open_at_end
    # Without the owner's touch the same story leaves it open: the CRM's event closed it.
    story.log = [raw for raw in story.log if b"embedded-crm" not in raw]
    assert leak in leaks(story.log).open_at_end


def test_a_touch_closes_a_stale_deal_in_the_flow() -> None:
    story = Story(response_delay_ms=0)
    story.change(
        0,
        "create",
        "O-1",
        owner="powell",
        region="EMEA",
        stage="Negotiation",
        next_step="contract review",
        value_usd=420000,
        created_at="2026-03-02T10:00:00Z",
    )
    week = 7 * 24 * 60
    story.lead(week + 30, "L-1")
    story.change(week + 31, "update", "L-1", last_touch_at=format_timestamp(story.now))
    story.send(week + 60, write("O-1", "create_task", task_id="rescue", fields={"subject": "Call"}))
    story.lead(week + 90, "L-2")  # moves the watermark past the touch
    stale = ("deal_velocity", "O-1", Rule.STALE_OPP)
    seen = leaks(story.log)
    # It opens again a week after the touch, when the end of input fires every deadline.
    assert stale in seen.opened
    assert stale in seen.closed
    story.log = [raw for raw in story.log if b"embedded-crm" not in raw]
    assert stale not in leaks(story.log).closed


def test_merge_closes_a_duplicate_and_unmerge_reopens_it_in_the_flow() -> None:
    story = Story()
    story.lead(0, "L-1", email="ana@nakatomi.example")
    story.lead(1, "L-2", email="bo@nakatomi.example")
    duplicate = ("data_quality", "L-2", Rule.DUPLICATE_SUSPECT)
    assert duplicate in leaks(story.log).open_at_end
    story.send(5, write("L-2", "merge", into="L-1"))
    assert duplicate not in leaks(story.log).open_at_end
    story.send(6, write("L-2", "unmerge", into="L-1"))
    assert duplicate in leaks(story.log).open_at_end  # the rollback restores the record as it was
    assert ("data_quality", "L-1", Rule.DUPLICATE_SUSPECT) not in leaks(story.log).opened


def test_an_owner_change_closes_unassigned_and_a_region_closes_routing_in_the_flow() -> None:
    story = Story()
    story.lead(0, "L-1", owner=None)
    story.lead(1, "L-2", region=None)
    unassigned = ("data_quality", "L-1", Rule.UNASSIGNED_OWNER)
    unrouted = ("data_quality", "L-2", Rule.ROUTING_MISMATCH)
    assert {unassigned, unrouted} <= leaks(story.log).open_at_end
    story.send(5, write("L-1", "update", fields={"owner": "ellis"}))
    # ROUTING_MISMATCH is an empty region (docs/semantics.md): an owner alone leaves it open.
    story.send(6, write("L-2", "update", fields={"owner": "karl"}))
    still_open = leaks(story.log).open_at_end
    assert unassigned not in still_open
    assert unrouted in still_open
    story.send(7, write("L-2", "update", fields={"owner": "powell", "region": "EMEA"}))
    assert unrouted not in leaks(story.log).open_at_end
