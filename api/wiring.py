"""Build the remediation service from settings (and the parts a host process lends it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from revleak.api.config import ApiSettings
from revleak.connectors.redis_state import RedisLiveState
from revleak.remediation.audit import AuditLog
from revleak.remediation.context import LiveStateReader, Shared, wall_clock
from revleak.remediation.db import create_schema, engine_for
from revleak.remediation.executors.base import Executors
from revleak.remediation.executors.crm import CrmCommandSink, KafkaCrmCommands
from revleak.remediation.executors.gitops import GitOps
from revleak.remediation.executors.slack import SlackWebhooks
from revleak.remediation.model import RecordDirectory
from revleak.remediation.packs import load_catalogue, load_roster
from revleak.remediation.postmortem_store import PostmortemStore
from revleak.remediation.service import Remediation
from revleak.remediation.verification import VerificationPolicy


class FlowsLiveState:
    """What the flows keep in Redis, each under its own prefix: the CRM flow's blast radius
    and incident, the telemetry flow's root causes."""

    def __init__(self, crm: RedisLiveState, telemetry: RedisLiveState) -> None:
        self._crm = crm
        self._telemetry = telemetry

    def blast_radius(self, slo: str, limit: int | None = None) -> Sequence[Any]:
        return self._crm.blast_radius(slo, limit)

    def incident(self) -> dict[str, Any] | None:
        return self._crm.incident()

    def root_causes(self) -> dict[str, dict[str, Any]]:
        return self._telemetry.root_causes()


def build_remediation(
    settings: ApiSettings,
    *,
    announce: Callable[[Mapping[str, Any]], None],
    live: LiveStateReader | None = None,
    records: RecordDirectory | None = None,
    crm: CrmCommandSink | None = None,
    clock: Callable[[], datetime] = wall_clock,
) -> Remediation:
    """The service; ``live``, ``records`` and ``crm`` default to what settings name
    (Redis, Kafka), and the embedded demo lends its in-process ones instead."""
    engine = engine_for(settings.database_url)
    create_schema(engine)
    if live is None and settings.redis_url is not None:
        live = FlowsLiveState(
            RedisLiveState(settings.redis_url, prefix=settings.redis_prefix),
            RedisLiveState(settings.redis_url, prefix=settings.telemetry_redis_prefix),
        )
    if crm is None and settings.brokers is not None:
        crm = KafkaCrmCommands(settings.brokers, settings.crm_commands_topic)
    gitops = (
        GitOps(settings.gitops_repositories, workdir=settings.gitops_workdir)
        if settings.gitops_repositories
        else None
    )
    executors = Executors(
        crm=crm,
        slack=SlackWebhooks(settings.slack_webhooks) if settings.slack_webhooks else None,
        gitops=gitops,
    )
    shared = Shared(
        engine=engine,
        audit=AuditLog(engine),
        postmortems=PostmortemStore(engine),
        live=live,
        records=records,
        clock=clock,
        announce=announce,
    )
    return Remediation(
        shared,
        catalogue=load_catalogue(settings.packs_dir),
        roster=load_roster(settings.roster),
        executors=executors,
        policy=VerificationPolicy(
            window_s=settings.verify_window_s, settle=settings.verify_settle
        ),
        read_file=gitops.read if gitops is not None else None,
        auto_propose=settings.auto_propose,
    )
