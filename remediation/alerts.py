"""Alertmanager's webhook notification (payload version 4), as the API receives it.

Alertmanager posts one notification per alert group and receiver: every alert of the
group, firing and just resolved, with the group's status (``resolved`` once all of them
are). Unknown fields are refused so that a sender speaking another version is told so
instead of being half understood.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Alertmanager's Go zero time: a firing alert has no end yet.
NO_END = datetime.fromisoformat("0001-01-01T00:00:00+00:00")
MAX_ALERTS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookAlert(_Strict):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - Alertmanager's field names
    endsAt: datetime = NO_END  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=64)

    @property
    def slo(self) -> str:
        return self.labels.get("slo") or self.labels.get("alertname", "unknown")

    @property
    def service(self) -> str:
        return self.labels.get("service", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "page")


class WebhookPayload(_Strict):
    version: Literal["4"]
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: int = Field(default=0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=MAX_ALERTS)
