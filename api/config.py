"""Settings of the API: flags of ``revleak api`` or ``REVLEAK_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from revleak.remediation.model import Role

# Tokens that must never guard a production deployment.
WEAK_TOKENS = {"", "changeme", "change-me", "secret", "token", "password"}


class TokenGrant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: str = Field(min_length=1, max_length=200)
    role: Role


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REVLEAK_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = Field(
        default="sqlite:///revleak.db", description="Audit and incident store (SQLAlchemy URL)"
    )
    # REVLEAK_API_TOKENS='{"s3cret": {"actor": "ana", "role": "approver"}}'
    api_tokens: dict[str, TokenGrant] = Field(default_factory=dict)
    packs_dir: Path | None = Field(default=None, description="Fix packs; the bundled ones if unset")
    roster: Path | None = Field(default=None, description="Owners by region; bundled if unset")
    auto_propose: bool = True
    verify_window_s: float = Field(default=600.0, gt=0)
    verify_poll_s: float = Field(default=5.0, gt=0)
    verify_settle: int = Field(default=2, ge=1)
    brokers: str | None = Field(
        default=None, description="Kafka for crm.commands and the OTLP/HTTP receiver"
    )
    crm_commands_topic: str = "crm.commands"
    otlp_spans_topic: str = Field(
        default="otlp_spans", description="OTLP/HTTP spans are forwarded here"
    )
    otlp_metrics_topic: str = Field(
        default="otlp_metrics", description="OTLP/HTTP metrics are forwarded here"
    )
    redis_url: str | None = Field(default=None, description="The flows' live state")
    redis_prefix: str = "revleak"
    telemetry_redis_prefix: str = Field(
        default="revleak-telemetry", description="The telemetry flow's keys (root causes)"
    )
    slack_webhooks: dict[str, str] = Field(
        default_factory=dict, description='Channel → incoming-webhook URL ("*": any channel)'
    )
    gitops_repositories: dict[str, str] = Field(
        default_factory=dict, description="Repository name → remote URL or path"
    )
    gitops_workdir: Path = Path("revleak-gitops")
    max_body_bytes: int = Field(default=1 << 20, ge=1024)

    @model_validator(mode="after")
    def _no_weak_tokens_in_production(self) -> ApiSettings:
        if self.environment == "production":
            if not self.api_tokens:
                raise ValueError("production needs REVLEAK_API_TOKENS")
            weak = [t for t in self.api_tokens if t.lower() in WEAK_TOKENS or len(t) < 16]
            if weak:
                raise ValueError("production refuses tokens shorter than 16 characters or "
                                 "well-known ones")  # fmt: skip
        return self
