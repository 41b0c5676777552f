"""Telemetry incidents take their root cause from the page (also when it arrives after the
incident opened) or from the live state, and the cause chooses the fix pack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apikit import Api, alert, notification, running_api
from gitkit import seeded_bare_repository

SERVICE = "apiVersion: revleak/v1\nkind: Service\nspec:\n  version: 2.5.0\n  replicas: 3\n"
CAUSE = {
    "cause": "version",
    "cause_service": "payment",
    "cause_operation": "POST /pay",
    "cause_attribute": "service.version",
    "cause_value": "2.5.0",
    "root_cause": "payment POST /pay: service.version 2.5.0 (was 2.4.0) in 97% of failing traces",
    "root_cause_confidence": "0.91",
    "previous_version": "2.4.0",
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    deploy = seeded_bare_repository(tmp_path, "services/payment.yaml", SERVICE, "payment 2.5.0")
    with running_api(
        tmp_path, gitops_repositories={"deploy": str(deploy)}, gitops_workdir=tmp_path / "git"
    ) as api:
        yield api


def page(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    firing = alert("availability", service="services", fingerprint="availability-page-1h")
    firing["labels"]["kind"] = "count"
    firing["annotations"] = {"summary": "availability is burning", **(annotations or {})}
    return firing


def test_a_page_with_its_root_cause_proposes_the_rollback_of_the_blamed_service(
    api: Api,
) -> None:
    [touched] = api.post_alerts(notification(page(CAUSE))).json()["incidents"]
    detail = api.get(f"/v1/incidents/{touched['id']}").json()
    assert detail["annotations"]["cause_service"] == "payment"
    [run] = detail["runs"]
    assert run["pack_id"] == "rollback-deployment"
    diff = api.get(f"/v1/runs/{run['id']}/preview").json()["diff"]
    assert "--- a/deploy/services/payment.yaml" in diff
    assert "+  version: 2.4.0" in diff


def test_a_root_cause_found_after_the_page_went_out_is_taken_and_audited(api: Api) -> None:
    [touched] = api.post_alerts(notification(page())).json()["incidents"]
    assert api.get(f"/v1/incidents/{touched['id']}").json()["runs"] == []
    [again] = api.post_alerts(notification(page(CAUSE))).json()["incidents"]
    assert again == {"id": touched["id"], "change": "explained"}
    detail = api.get(f"/v1/incidents/{touched['id']}").json()
    assert [run["pack_id"] for run in detail["runs"]] == ["rollback-deployment"]
    actions = [e["action"] for e in api.get("/v1/audit", limit=100).json()]
    assert actions.count("incident.explained") == 1
    # The same notification again changes nothing.
    api.post_alerts(notification(page(CAUSE)))
    actions = [e["action"] for e in api.get("/v1/audit", limit=100).json()]
    assert actions.count("incident.explained") == 1


def test_without_a_notification_the_live_state_root_cause_is_used(api: Api) -> None:
    [touched] = api.post_alerts(notification(page())).json()["incidents"]
    api.live.causes["availability"] = {"slo": "availability", "candidates": [{"rank": 1, **CAUSE}]}
    detail = api.get(f"/v1/incidents/{touched['id']}").json()
    assert detail["annotations"]["previous_version"] == "2.4.0"
    api.service.tick()
    [run] = api.get(f"/v1/incidents/{touched['id']}").json()["runs"]
    assert run["pack_id"] == "rollback-deployment"
