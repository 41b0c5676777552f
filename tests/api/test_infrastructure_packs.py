"""A telemetry incident through the API: the root cause names a release, the rollback pack
previews its file change, applying it commits to a real (local, bare) git repository, and a
failed verification reverts the commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apikit import Api, alert, notification, running_api
from gitkit import git, seeded_bare_repository

DEPLOYMENT = "# the checkout service\nspec:\n  version: 1.5.0  # pinned by CI\n  replicas: 3\n"


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    return seeded_bare_repository(
        tmp_path, "services/checkout.yaml", DEPLOYMENT, "checkout 1.5.0"
    )


@pytest.fixture
def infra_api(tmp_path: Path, deploy: Path) -> Iterator[Api]:
    with running_api(
        tmp_path,
        gitops_repositories={"deploy": str(deploy)},
        gitops_workdir=tmp_path / "clones",
    ) as api:
        yield api


def telemetry_alert(status: str = "firing") -> dict[str, Any]:
    page = alert("checkout_latency", service="checkout", status=status)
    page["labels"] |= {"kind": "telemetry", "cause": "version"}
    page["annotations"] |= {"previous_version": "1.4.2", "root_cause": "checkout 1.5.0"}
    return page


def deployed(bare: Path) -> str:
    return git("--git-dir", str(bare), "show", "main:services/checkout.yaml") + "\n"


def open_and_apply(api: Api) -> tuple[str, str]:
    [touched] = api.post_alerts(notification(telemetry_alert())).json()["incidents"]
    detail = api.get(f"/v1/incidents/{touched['id']}").json()
    [run] = detail["runs"]
    assert run["pack_id"] == "rollback-deployment"
    preview = api.get(f"/v1/runs/{run['id']}/preview").json()
    assert "--- a/deploy/services/checkout.yaml" in preview["diff"]
    assert "-  version: 1.5.0  # pinned by CI" in preview["diff"]
    assert "+  version: 1.4.2  # pinned by CI" in preview["diff"]
    assert api.post(f"/v1/runs/{run['id']}/approve").status_code == 200
    applied = api.post(f"/v1/runs/{run['id']}/apply", headers={"Idempotency-Key": "once"})
    assert applied.status_code == 200, applied.text
    return touched["id"], run["id"]


def test_the_rollback_pack_commits_and_the_recovery_verifies_it(
    infra_api: Api, deploy: Path
) -> None:
    incident, run = open_and_apply(infra_api)
    assert "version: 1.4.2  # pinned by CI" in deployed(deploy)
    assert "Revleak-Command:" in git("--git-dir", str(deploy), "log", "-1", "--format=%B", "main")
    infra_api.post_alerts(notification(telemetry_alert("resolved")))
    final = infra_api.get(f"/v1/incidents/{incident}").json()
    assert [entry["status"] for entry in final["timeline"]][-2:] == ["VERIFIED", "RESOLVED"]
    assert "checkout 1.5.0" in final["postmortem"]
    assert infra_api.get(f"/v1/runs/{run}").json()["status"] == "VERIFIED"


def test_an_unrecovered_rollback_is_reverted_by_a_commit(infra_api: Api, deploy: Path) -> None:
    _, run = open_and_apply(infra_api)
    infra_api.clock.advance(61)
    infra_api.service.tick()
    assert infra_api.get(f"/v1/runs/{run}").json()["status"] == "ROLLED_BACK"
    assert deployed(deploy) == DEPLOYMENT
    assert int(git("--git-dir", str(deploy), "rev-list", "--count", "main")) == 5
