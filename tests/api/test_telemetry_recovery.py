"""A telemetry incident from end to end, every component real and on loopback.

The chaos shop (OpenTelemetry SDK) deploys payment 2.5.0 through its GitOps repository and
sends OTLP into Kafka; ``revleak run telemetry`` pages Alertmanager with the root cause;
Alertmanager notifies ``revleak api``, which proposes Roll Back Deployment; an approver
applies it, which commits to the repository; the shop reads the repository, runs 2.4.0
again, the page resolves, and the run is VERIFIED — observed, not assumed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from apikit import APPROVER, OPERATOR, TOKENS, VIEWER, SlackServer
from gitkit import git

from revleak.connectors import kafka
from revleak.connectors.redis_state import RedisLiveState
from revleak.loadtest import services
from revleak.loadtest.chaos import SCENARIOS, ChaosRun, seed_repository
from revleak.loadtest.chaos_kafka import produce
from revleak.timefmt import MINUTE_MS

pytestmark = [pytest.mark.services, pytest.mark.slow]

REVLEAK = Path(sys.executable).parent / "revleak"
BASELINE_MINUTES = 15
FAULT_MINUTES = 10
# Healthy minutes after the fix: both page rules' short windows (5 m, 30 m) empty of slow
# requests, so every page of the incident resolves.
RECOVERY_MINUTES = 35
JOURNEYS = 30
WAIT_S = 90.0


@dataclass
class Stack:
    api: str
    alertmanager: str
    repository: Path
    redis: RedisLiveState
    brokers: str
    topics: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(
            f"{self.api}{path}", params=params, headers={"Authorization": VIEWER}, timeout=10
        )
        answer.raise_for_status()
        return answer.json()

    def post(self, path: str, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.api}{path}", headers={"Authorization": APPROVER, **headers}, timeout=30
        )


def _wait_for(what: str, found: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f} s")


@pytest.fixture
def stack(kafka_brokers: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:8]
    topics = {name: f"{name}-{run}" for name in ("spans", "metrics", "alerts", "dlq", "causes")}
    prefix = f"revleak-{run}"
    repository = tmp_path / "deploy.git"
    seed_repository(repository, at_ms=int(time.time() * 1000) - 3 * 60 * MINUTE_MS)
    slack = SlackServer()
    api_port = services.free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    environment = {
        **os.environ,
        "REVLEAK_DATABASE_URL": f"sqlite:///{tmp_path / 'revleak.db'}",
        "REVLEAK_API_TOKENS": json.dumps({t: g.model_dump(mode="json") for t, g in TOKENS.items()}),
        "REVLEAK_GITOPS_REPOSITORIES": json.dumps({"deploy": str(repository)}),
        "REVLEAK_GITOPS_WORKDIR": str(tmp_path / "clones"),
        "REVLEAK_SLACK_WEBHOOKS": json.dumps({"*": slack.url}),
        "REVLEAK_REDIS_URL": redis_url,
        "REVLEAK_REDIS_PREFIX": prefix,
        "REVLEAK_TELEMETRY_REDIS_PREFIX": f"{prefix}-telemetry",
        "REVLEAK_VERIFY_WINDOW_S": "120",
        "REVLEAK_VERIFY_POLL_S": "0.5",
        "REVLEAK_VERIFY_SETTLE": "2",
    }
    logs = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen(
        [str(REVLEAK), "api", "--port", str(api_port)],
        env=environment,
        cwd=tmp_path,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    flow: subprocess.Popen[bytes] | None = None
    live = RedisLiveState(redis_url, prefix=f"{prefix}-telemetry")
    try:
        _wait_for("the API", lambda: _answers(f"{api_url}/healthz"), timeout_s=30)
        config = services.webhook_config(api_url, OPERATOR.removeprefix("Bearer "))
        with services.alertmanager(tmp_path / "alertmanager", config) as alertmanager:
            flow = subprocess.Popen(
                [str(REVLEAK), "run", "telemetry", "--brokers", kafka_brokers,
                 "--spans-topic", topics["spans"], "--metrics-topic", topics["metrics"],
                 "--alerts-topic", topics["alerts"], "--dlq-topic", topics["dlq"],
                 "--root-causes-topic", topics["causes"], "--alertmanager-url", alertmanager,
                 "--redis-url", redis_url, "--resend-interval-s", "1"],
                env={**os.environ, "REVLEAK_TELEMETRY_REDIS_PREFIX": f"{prefix}-telemetry"},
                cwd=tmp_path,
                stdout=(tmp_path / "flow.log").open("wb"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            yield Stack(api_url, alertmanager, repository, live, kafka_brokers, topics)
    finally:
        for process in (flow, api):
            if process is not None:
                services.stop(process)
        live.close()
        slack.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_faulty_release_is_paged_explained_rolled_back_and_verified(stack: Stack) -> None:
    start_ms = (int(time.time() * 1000) // MINUTE_MS - 90) * MINUTE_MS
    chaos = ChaosRun(
        SCENARIOS["latency"],
        stack.repository,
        seed=3,
        start_ms=start_ms,
        baseline_minutes=BASELINE_MINUTES,
        journeys_per_minute=JOURNEYS,
    )

    def send(minutes: int, encoding: Literal["otlp_proto", "otlp_json"]) -> None:
        produce(chaos, minutes, brokers=stack.brokers, spans_topic=stack.topics["spans"],
                metrics_topic=stack.topics["metrics"], encoding=encoding)  # fmt: skip

    # Both encodings of the Collector's Kafka exporter on one topic, and a bad payload.
    send(BASELINE_MINUTES, "otlp_proto")
    producer = kafka.producer(stack.brokers)
    producer.produce(stack.topics["spans"], b"not OTLP at all")
    assert producer.flush(10) == 0
    send(FAULT_MINUTES, "otlp_json")

    # Alertmanager holds the latency page, explained by the release.
    def explained_page() -> dict[str, Any] | None:
        alerts = httpx.get(f"{stack.alertmanager}/api/v2/alerts", timeout=5).json()
        return next(
            (
                alert
                for alert in alerts
                if alert["labels"].get("slo") == "latency"
                and alert["labels"].get("severity") == "page"
                and "cause" in alert["annotations"]
            ),
            None,
        )

    page = _wait_for("an explained latency page in Alertmanager", explained_page)
    assert page["annotations"]["cause"] == "version"
    assert page["annotations"]["cause_service"] == "payment"
    assert page["annotations"]["cause_value"] == "2.5.0"
    assert page["annotations"]["previous_version"] == "2.4.0"
    assert stack.redis.root_causes()["latency"]["candidates"][0]["cause_service"] == "payment"
    causes = [json.loads(m.value) for m in kafka.read_topic(stack.brokers, stack.topics["causes"])]
    assert any(record["slo"] == "latency" for record in causes)

    # The API's incident proposes the rollback of payment, from the root cause.
    def proposed() -> tuple[str, str] | None:
        for incident in stack.get("/v1/incidents"):
            if incident["slo"] == "latency":
                runs = stack.get(f"/v1/incidents/{incident['id']}")["runs"]
                if runs:
                    return incident["id"], runs[0]["id"]
        return None

    incident, run = _wait_for("a proposed fix pack", proposed)
    detail = stack.get(f"/v1/runs/{run}")
    assert detail["pack_id"] == "rollback-deployment"
    assert "+  version: 2.4.0" in stack.get(f"/v1/runs/{run}/preview")["diff"]
    assert stack.post(f"/v1/runs/{run}/approve").status_code == 200
    applied = stack.post(f"/v1/runs/{run}/apply", **{"Idempotency-Key": "rollback-1"})
    assert applied.status_code == 200, applied.text
    deployed = git("--git-dir", str(stack.repository), "show", "main:services/payment.yaml")
    assert "version: 2.4.0" in deployed

    # The shop reads the repository: it runs 2.4.0 again, and the SLO recovers.
    send(RECOVERY_MINUTES, "otlp_json")
    try:
        verdict = _wait_for(
            "the run's verdict",
            lambda: (
                (status := stack.get(f"/v1/runs/{run}")["status"]) in ("VERIFIED", "ROLLED_BACK")
                and status
            ),
        )
    except AssertionError as error:
        alerts = httpx.get(f"{stack.alertmanager}/api/v2/alerts", timeout=5).json()
        firing = [(a["labels"]["slo"], a["labels"]["severity"], a["labels"]["long_window"])
                  for a in alerts if a["status"]["state"] == "active"]  # fmt: skip
        raise AssertionError(
            f"{error}; run: {stack.get(f'/v1/runs/{run}')['observations'][-3:]}; "
            f"Alertmanager fires {firing}"
        ) from None
    assert verdict == "VERIFIED"
    timeline = [entry["status"] for entry in stack.get(f"/v1/incidents/{incident}")["timeline"]]
    assert timeline[:5] == ["DETECTED", "FIXPACK_PROPOSED", "APPROVED", "APPLIED", "VERIFIED"]
    [letter] = [json.loads(m.value) for m in kafka.read_topic(stack.brokers, stack.topics["dlq"])]
    assert (letter["reason"], letter["topic"]) == ("malformed_otlp", stack.topics["spans"])
    assert letter["original"] == "not OTLP at all"
