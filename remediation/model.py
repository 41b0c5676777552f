"""What remediation talks about: incidents, CRM records, planned effects and their commands.

Every model here crosses a boundary (API, database, Kafka ``crm.commands``, git), so each
is a frozen pydantic model that refuses unknown fields.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class IncidentStatus(StrEnum):
    """The incident timeline: DETECTED → FIXPACK_PROPOSED → APPROVED → APPLIED →
    VERIFIED | ROLLED_BACK → RESOLVED (RESOLVED may come at any point: Alertmanager
    resolves the alerts whether or not a fix pack ran)."""

    DETECTED = "DETECTED"
    FIXPACK_PROPOSED = "FIXPACK_PROPOSED"
    APPROVED = "APPROVED"
    APPLIED = "APPLIED"
    VERIFIED = "VERIFIED"
    ROLLED_BACK = "ROLLED_BACK"
    RESOLVED = "RESOLVED"


JsonScalar = str | int | float | bool | None


class CrmRecord(Frozen):
    """A CRM record as the system of record holds it now."""

    record_id: str
    object: Literal["lead", "opportunity"]
    fields: dict[str, JsonScalar] = Field(default_factory=dict)

    def get(self, name: str) -> JsonScalar:
        return self.fields.get(name)


class BlastRecord(Frozen):
    """One violating record of an SLO (one rule): an entry of the live blast radius."""

    slo: str
    record_id: str
    rule: str
    impact_usd: float
    owner: str = ""
    since: str = ""


class IncidentContext(Frozen):
    """Everything a planner may read about an incident; nothing it may change."""

    incident_id: str
    slo: str
    service: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    blast_radius: tuple[BlastRecord, ...] = ()
    # The blast radius's records and their possible duplicates (same email or domain).
    records: dict[str, CrmRecord] = Field(default_factory=dict)
    # Files a GitOps step edits, keyed ``repository:path``, as they are now (None: absent).
    files: dict[str, str | None] = Field(default_factory=dict)
    # Owners who may take records of each region ("*": any region), in rotation order.
    roster: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    now: str  # ISO-8601 UTC: the time stamped on write-backs (passed in, never read here)


# --- Commands: what executors carry out. A command's inverse is a command too. ----------


class CrmWrite(Frozen):
    """A write-back to the CRM, published on ``crm.commands`` keyed by ``record_id``.

    ``op``: ``update`` sets ``fields`` (``None`` clears one); ``create_task``/``delete_task``
    add or remove the task ``task_id``; ``merge`` folds ``record_id`` into ``into`` (the
    duplicate is closed, ``fields`` holds what it carried, for ``unmerge``);
    ``draft_email``/``discard_email`` add or drop the email draft ``task_id``.
    """

    kind: Literal["crm"] = "crm"
    command_id: str
    record_id: str
    object: Literal["lead", "opportunity"]
    op: Literal[
        "update", "create_task", "delete_task", "merge", "unmerge", "draft_email", "discard_email"
    ]
    fields: dict[str, JsonScalar] = Field(default_factory=dict)
    task_id: str | None = None
    into: str | None = None
    reason: str = ""


class SlackPost(Frozen):
    """A message to a Slack incoming webhook (``channel`` names a configured webhook)."""

    kind: Literal["slack"] = "slack"
    command_id: str
    channel: str
    text: str


class GitChange(Frozen):
    """Edit one file of a configured repository, commit on ``branch``, merge into the
    default branch and push. ``before`` is the file as planned against (None: new file);
    applying refuses if the file changed since."""

    kind: Literal["gitops"] = "gitops"
    command_id: str
    repository: str
    path: str
    before: str | None
    after: str
    branch: str
    message: str


Command = Annotated[CrmWrite | SlackPost | GitChange, Field(discriminator="kind")]


class Effect(Frozen):
    """One planned change: what a step will do, to what, and how to undo it."""

    step: str  # the step's id in its pack
    action: str  # the step's action, e.g. ``reassign_owner``
    target: str  # record id, channel or ``repository:path``
    summary: str
    command: Command
    inverse: Command | None = None  # None: nothing to undo (e.g. a notification)
    before: dict[str, Any] | None = None  # record fields the effect changes, as they are
    after: dict[str, Any] | None = None  # … and as they will be


class Plan(Frozen):
    """A fix pack bound to one incident: the exact effects an apply would have."""

    pack_id: str
    pack_hash: str  # sha256 of the pack's canonical content
    incident_id: str
    effects: tuple[Effect, ...] = ()
    side_effects: tuple[str, ...] = ()  # human lines: "POST Slack #revenue-ops", …
    records: tuple[str, ...] = ()  # the records it touches (the regression guard re-scans them)
    blocked: str | None = None  # why a guard refuses the plan (then ``effects`` is empty)


class RecordDirectory(Protocol):
    """Where remediation reads CRM records: the embedded CRM, or a view of the CRM."""

    def get(self, record_id: str) -> CrmRecord | None: ...

    def related(self, record: CrmRecord) -> list[CrmRecord]:
        """Other open records that share the record's email (leads) or domain (deals)."""
        ...
