"""Dispatch a plan's commands to the executor of their kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from pydantic import BaseModel, ConfigDict

from revleak.remediation.model import Command, CrmWrite, GitChange, SlackPost

if TYPE_CHECKING:
    from revleak.remediation.executors.crm import CrmCommandSink
    from revleak.remediation.executors.gitops import GitOps
    from revleak.remediation.executors.slack import SlackWebhooks

NOT_CONFIGURED = "not configured"


class ExecutionResult(BaseModel):
    """A command carried out, and where to find its trace (an offset, a commit, a status)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    kind: str
    ref: str  # "crm.commands/0/17", a merge commit sha, "slack 200"
    detail: str = ""


class ExecutionError(RuntimeError):
    """A command could not be carried out; the message says why, for the operator."""


class Executors:
    """The configured executors; a kind left out refuses its commands."""

    def __init__(
        self,
        *,
        crm: CrmCommandSink | None = None,
        slack: SlackWebhooks | None = None,
        gitops: GitOps | None = None,
    ) -> None:
        self._crm = crm
        self._slack = slack
        self._gitops = gitops

    def execute(self, command: Command) -> ExecutionResult:
        if isinstance(command, CrmWrite):
            if self._crm is None:
                raise ExecutionError("no CRM write-back is configured")
            ref = self._crm.send(command)
            detail = f"{command.op} {command.object} {command.record_id}"
        elif isinstance(command, SlackPost):
            if self._slack is None:
                raise ExecutionError("no Slack webhooks are configured")
            ref = self._slack.send(command)
            detail = f"message to {command.channel}"
        elif isinstance(command, GitChange):
            if self._gitops is None:
                raise ExecutionError("no GitOps repositories are configured")
            ref = self._gitops.apply(command)
            detail = f"{command.repository}:{command.path} via {command.branch}"
        else:
            assert_never(command)
        return ExecutionResult(
            command_id=command.command_id, kind=command.kind, ref=ref, detail=detail
        )

    def describe(self) -> dict[str, str]:
        """Each command kind and what carries it out (never a secret such as a webhook URL)."""
        return {
            "crm": NOT_CONFIGURED if self._crm is None else str(self._crm),
            "slack": NOT_CONFIGURED if self._slack is None else str(self._slack),
            "gitops": NOT_CONFIGURED if self._gitops is None else str(self._gitops),
        }
