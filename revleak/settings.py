"""Settings of the live flows: flags of ``revleak run crm|telemetry`` or ``REVLEAK_*``.

A flag wins over the environment, which wins over the defaults below; for
example ``REVLEAK_BROKERS=kafka:9092`` or ``--brokers kafka:9092``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from revleak.timefmt import parse_duration


class LiveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVLEAK_", extra="forbid")

    slos: Path | None = Field(default=None, description="SLO file; the bundled SLOs if unset")
    brokers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers")
    changes_topic: str = "crm.changes"
    spans_topic: str = Field(default="otlp_spans", description="OTLP spans (telemetry flow)")
    metrics_topic: str = Field(default="otlp_metrics", description="OTLP metrics (telemetry)")
    root_causes_topic: str = Field(
        default="revleak.root_causes", description="Root causes of telemetry pages"
    )
    # The telemetry flow keeps an alert log and a live state of its own: each has one writer.
    telemetry_alerts_topic: str = Field(
        default="revleak.telemetry.alerts", description="The telemetry flow's alert log"
    )
    telemetry_redis_prefix: str = Field(
        default="revleak-telemetry", description="The telemetry flow's Redis keys"
    )
    alerts_topic: str = "revleak.alerts"
    dlq_topic: str = "revleak.dlq"
    create_topics: bool = Field(
        default=True, description="Create missing topics (the changes topic with 1 partition)"
    )
    input_format: str = Field(default="auto", description="generic, salesforce, hubspot or auto")
    mappings: list[Path] = Field(default_factory=list, description="Vendor field mappings")
    allowed_lateness: str = "60s"
    idle_timeout_s: float = Field(default=30.0, gt=0, description="Wall time before a partition "
                                  "with nothing new stops holding the watermark back")  # fmt: skip
    alertmanager_url: str | None = None
    resend_interval_s: float = Field(default=60.0, gt=0)
    early_pages: bool = Field(default=True, description="Page on arrival, corrected by the log")
    runbook_base_url: str | None = None
    fixpack_base_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "revleak"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    recovery_dir: Path | None = Field(default=None, description="Bytewax recovery database")
    snapshot_interval_s: float = Field(default=10.0, gt=0, description="Epoch length: how "
                                       "often state is snapshotted for recovery")  # fmt: skip
    workers: int = Field(default=1, ge=1)
    shards: int = Field(default=8, ge=1)
    batch_size: int = Field(default=2000, ge=1)

    @field_validator("allowed_lateness")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def allowed_lateness_ms(self) -> int:
        return parse_duration(self.allowed_lateness)
