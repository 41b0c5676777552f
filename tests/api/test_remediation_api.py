"""The remediation API as a client uses it: webhook → incident → plan → approve → apply →
verify or roll back → resolve, with the audit log checked at every step."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from apikit import APPROVER, OPERATOR, VIEWER, Api, alert, notification, running_api
from databases import throwaway_database
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from revleak.remediation.model import BlastRecord

LEADS = ("L-1", "L-2", "L-3")


def seed_leads(api: Api) -> None:
    for number, lead in enumerate(LEADS):
        api.crm.observe(
            orjson.dumps(
                {
                    "event_id": f"seed-{lead}",
                    "ts": "2026-03-10T18:00:00.000Z",
                    "object": "lead",
                    "op": "create",
                    "record_id": lead,
                    "fields": {
                        "name": f"Lead {number}",
                        "owner": "holly",
                        "region": "NA",
                        "stage": "New",
                        "email": f"buyer{number}@corp{number}.example",
                        "value_usd": 15000,
                        "created_at": "2026-03-10T18:00:00.000Z",
                    },
                }
            )
        )
    api.live.blast["lead_response"] = [
        BlastRecord(
            slo="lead_response",
            record_id=lead,
            rule="SLA_BREACH_UNTOUCHED",
            impact_usd=15000.0 - i,
            owner="holly",
            since="2026-03-10T18:30:00.000Z",
        )
        for i, lead in enumerate(LEADS)
    ]
    api.live.summary = {
        "severity": "SEV1",
        "paging_state": "PAGE",
        "consumption": 2.06,
        "at_risk_usd": {"lead_response": 45000.0},
    }


def open_incident(api: Api) -> dict[str, Any]:
    seed_leads(api)
    answer = api.post_alerts(notification(alert(), alert(long_window="6h", short_window="30m")))
    assert answer.status_code == 200, answer.text
    [touched] = answer.json()["incidents"]
    assert touched["change"] == "detected"
    detail: dict[str, Any] = api.get(f"/v1/incidents/{touched['id']}").json()
    return detail


def statuses(detail: dict[str, Any]) -> list[str]:
    return [entry["status"] for entry in detail["timeline"]]


def test_a_page_opens_one_incident_with_a_proposed_fix_pack(api: Api) -> None:
    detail = open_incident(api)
    assert detail["slo"] == "lead_response"
    assert detail["service"] == "lead"
    assert detail["severity"] == "page"
    assert detail["status"] == "FIXPACK_PROPOSED"
    assert statuses(detail) == ["DETECTED", "FIXPACK_PROPOSED"]
    assert detail["alerts_firing"] == 2
    assert {(w["long_window"], w["burn_long"], w["factor"]) for w in detail["burn_windows"]} == {
        ("1h", 20.0, 14.4),
        ("6h", 20.0, 14.4),
    }
    live = detail["live"]
    assert live["severity"] == "SEV1"
    assert live["blast_radius"] == 3
    assert [r["record_id"] for r in live["top_records"]] == list(LEADS)
    assert live["owners"] == [{"owner": "holly", "records": 3, "impact_usd": 44997.0}]
    [run] = detail["runs"]
    assert run["pack_id"] == "rapid-response"
    assert run["status"] == "PROPOSED"
    assert run["records"] == 3


def test_the_same_notification_twice_changes_nothing(api: Api) -> None:
    detail = open_incident(api)
    before = api.get("/v1/audit", limit=1000).json()
    again = api.post_alerts(notification(alert(), alert(long_window="6h", short_window="30m")))
    assert again.json()["incidents"] == [{"id": detail["id"], "change": "updated"}]
    assert api.get("/v1/audit", limit=1000).json() == before
    assert len(api.get("/v1/incidents").json()) == 1


def test_one_incident_per_slo_and_service(api: Api) -> None:
    answer = api.post_alerts(
        notification(alert(), alert("deal_velocity", service="opportunity"), alert(service="x"))
    )
    touched = answer.json()["incidents"]
    assert len(touched) == 3
    listed = {(i["slo"], i["service"]) for i in api.get("/v1/incidents").json()}
    assert listed == {("lead_response", "lead"), ("deal_velocity", "opportunity"),
                      ("lead_response", "x")}  # fmt: skip


def test_the_preview_is_a_diff_of_every_record_and_touches_nothing(api: Api) -> None:
    detail = open_incident(api)
    run = detail["runs"][0]["id"]
    preview = api.get(f"/v1/runs/{run}/preview").json()
    assert "--- a/crm/lead/L-1" in preview["diff"]
    assert "-owner: holly" in preview["diff"]
    assert any("Slack" in line for line in preview["side_effects"])
    assert {r["record_id"] for r in preview["records"]} == set(LEADS)
    assert api.crm.get("L-1").fields["owner"] == "holly"  # type: ignore[union-attr]
    assert api.slack.bodies == []


@pytest.mark.parametrize(("token", "code"), [(VIEWER, 403), (OPERATOR, 403)])
def test_only_an_approver_approves_or_applies(api: Api, token: str, code: int) -> None:
    run = open_incident(api)["runs"][0]["id"]
    assert api.post(f"/v1/runs/{run}/approve", token).status_code == code
    assert api.post(f"/v1/runs/{run}/apply", token).status_code == code
    assert api.post(f"/v1/runs/{run}/apply", APPROVER).status_code == 409  # not approved


def test_wrong_or_missing_tokens_are_refused_and_write_nothing(api: Api) -> None:
    payload = notification(alert())
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        answer = api.client.post("/v1/alertmanager/webhook", json=payload, headers=headers)
        assert answer.status_code == 401
    assert api.post_alerts(payload, VIEWER).status_code == 403
    assert api.get("/v1/audit").json() == []


def test_bad_bodies_are_clear_4xx_and_write_nothing(api: Api) -> None:
    headers = {"Authorization": OPERATOR, "Content-Type": "application/json"}
    hook = "/v1/alertmanager/webhook"
    broken = api.client.post(hook, content=b'{"version": "4", ', headers=headers)
    assert broken.status_code == 422
    assert "JSON" in broken.text
    unknown = notification(alert())
    unknown["surprise"] = 1
    answer = api.client.post(hook, json=unknown, headers=headers)
    assert answer.status_code == 422
    assert "surprise" in answer.text
    huge = b'{"version": "4", "pad": "' + b"x" * (2 << 20) + b'"}'
    assert api.client.post(hook, content=huge, headers=headers).status_code == 413
    wrong_version = notification(alert())
    wrong_version["version"] = "3"
    assert api.client.post(hook, json=wrong_version, headers=headers).status_code == 422
    assert api.get("/v1/audit").json() == []
    assert api.get("/v1/incidents").json() == []


def approve(api: Api, run: str) -> None:
    answer = api.post(f"/v1/runs/{run}/approve")
    assert answer.status_code == 200, answer.text
    assert answer.json()["approved_by"] == "ana"


def test_apply_happens_once_even_when_the_same_request_arrives_twice_at_once(api: Api) -> None:
    run = open_incident(api)["runs"][0]["id"]
    approve(api, run)
    answers: list[Any] = []
    start = threading.Barrier(2)

    def apply() -> None:
        start.wait()
        answers.append(api.post(f"/v1/runs/{run}/apply", headers={"Idempotency-Key": "k-1"}))

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert sorted(a.headers["Idempotent-Replayed"] for a in answers) == ["false", "true"]
    assert len(api.slack.bodies) == 1
    owners = {api.crm.get(lead).fields["owner"] for lead in LEADS}  # type: ignore[union-attr]
    assert "holly" not in owners
    again = api.post(f"/v1/runs/{run}/apply", headers={"Idempotency-Key": "k-2"})
    assert again.status_code == 409
    assert "applied once" in again.json()["detail"]
    assert len(api.slack.bodies) == 1


def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    run = open_incident(api)["runs"][0]["id"]
    approve(api, run)
    assert api.post(f"/v1/runs/{run}/apply", headers={"Idempotency-Key": "k"}).status_code == 200
    other = api.post("/v1/runs/RUN-999/apply", headers={"Idempotency-Key": "k"})
    assert other.status_code == 409
    assert "different request" in other.json()["detail"]


def test_fixed_records_and_resolved_pages_verify_then_resolve(api: Api) -> None:
    detail = open_incident(api)
    run = detail["runs"][0]["id"]
    approve(api, run)
    applied = api.post(f"/v1/runs/{run}/apply").json()
    assert applied["status"] == "VERIFYING"
    api.service.tick()
    assert api.get(f"/v1/runs/{run}").json()["status"] == "VERIFYING"  # pages still fire
    api.live.blast["lead_response"] = []
    resolved = notification(
        alert(status="resolved"), alert(status="resolved", long_window="6h", short_window="30m")
    )
    assert api.post_alerts(resolved).json()["incidents"][0]["change"] == "resolved"
    final = api.get(f"/v1/incidents/{detail['id']}").json()
    assert statuses(final) == [
        "DETECTED",
        "FIXPACK_PROPOSED",
        "APPROVED",
        "APPLIED",
        "VERIFIED",
        "RESOLVED",
    ]
    assert final["status"] == "RESOLVED"
    assert final["open"] is False
    assert "## Timeline" in final["postmortem"]
    hits = api.get("/v1/postmortems/search", q="rapid-response").json()
    assert [hit["incident_id"] for hit in hits] == [detail["id"]]
    assert api.get("/v1/audit/verify").json()["ok"] is True


def test_a_fix_that_does_not_recover_is_rolled_back(api: Api) -> None:
    detail = open_incident(api)
    run = detail["runs"][0]["id"]
    approve(api, run)
    api.post(f"/v1/runs/{run}/apply")
    moved = {lead: api.crm.get(lead).fields["owner"] for lead in LEADS}  # type: ignore[union-attr]
    assert set(moved.values()) != {"holly"}
    api.clock.advance(61)  # past the verification window; the leads still violate
    api.service.tick()
    rolled = api.get(f"/v1/runs/{run}").json()
    assert rolled["status"] == "ROLLED_BACK"
    assert "not recovered" in rolled["verdict"]
    for lead in LEADS:
        assert api.crm.get(lead).fields["owner"] == "holly"  # type: ignore[union-attr]
    final = api.get(f"/v1/incidents/{detail['id']}").json()
    assert statuses(final)[-1] == "ROLLED_BACK"
    assert len(api.slack.bodies) == 2  # the notice and its rollback notice


def test_tampering_with_the_audit_database_is_detected(api: Api) -> None:
    detail = open_incident(api)
    approve(api, detail["runs"][0]["id"])
    assert api.get("/v1/audit/verify").json()["ok"] is True
    with sqlite3.connect(api.database) as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    verdict = api.get("/v1/audit/verify").json()
    assert verdict["ok"] is False
    assert next((p["seq"], p["kind"]) for p in verdict["problems"]) == (2, "edited")


def test_deleting_the_newest_audit_entry_is_detected(api: Api) -> None:
    detail = open_incident(api)
    approve(api, detail["runs"][0]["id"])
    with sqlite3.connect(api.database) as db:
        db.execute("DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)")
    verdict = api.get("/v1/audit/verify").json()
    assert verdict["ok"] is False
    assert {p["kind"] for p in verdict["problems"]} == {"reference"}


def test_audit_pages_and_exports_every_entry(api: Api) -> None:
    open_incident(api)
    entries = api.get("/v1/audit", limit=1).json()
    assert len(entries) == 1
    exported = api.get("/v1/audit/export")
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in exported.content.splitlines()]
    assert [entry["seq"] for entry in lines] == list(range(1, len(lines) + 1))
    assert lines[0]["action"] == "incident.detected"


def test_health_readiness_metrics_and_openapi(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json()["status"] == "ok"
    open_incident(api)
    metrics = api.client.get("/metrics").text
    assert 'revleak_api_webhook_notifications_total{outcome="accepted"} 1.0' in metrics
    schema = api.client.get("/openapi.json").json()
    assert "/v1/alertmanager/webhook" in schema["paths"]
    assert api.client.get("/docs").status_code == 200


def test_unknown_ids_are_404(api: Api) -> None:
    assert api.get("/v1/incidents/INC-42").status_code == 404
    assert api.get("/v1/incidents/nonsense").status_code == 404
    assert api.get("/v1/runs/RUN-9").status_code == 404
    assert api.get("/v1/fixpacks/nope").status_code == 404
    assert api.get("/v1/postmortems/INC-1").status_code == 404


def test_a_proposal_follows_the_blast_radius_not_the_clock(api: Api) -> None:
    detail = open_incident(api)
    first = detail["runs"][0]["id"]
    api.clock.advance(90)
    api.service.tick()
    assert [r["id"] for r in api.get(f"/v1/incidents/{detail['id']}/runs").json()] == [first]
    api.live.blast["lead_response"] = api.live.blast["lead_response"][:2]
    api.service.tick()
    runs = api.get(f"/v1/incidents/{detail['id']}/runs").json()
    assert [(r["id"], r["status"], r["records"]) for r in runs] == [
        (first, "SUPERSEDED", 3),
        ("RUN-2", "PROPOSED", 2),
    ]
    assert api.post(f"/v1/runs/{first}/approve").status_code == 409


@pytest.mark.services
def test_the_whole_lifecycle_on_postgresql(tmp_path: Path) -> None:
    with (
        throwaway_database("revleak_api") as url,
        running_api(tmp_path, database_url=url) as pg,
    ):
        detail = open_incident(pg)
        run = detail["runs"][0]["id"]
        approve(pg, run)
        assert pg.post(f"/v1/runs/{run}/apply", headers={"Idempotency-Key": "a"}).status_code == 200
        again = pg.post(f"/v1/runs/{run}/apply", headers={"Idempotency-Key": "a"})
        assert again.headers["Idempotent-Replayed"] == "true"
        pg.live.blast["lead_response"] = []
        pg.post_alerts(notification(alert(status="resolved"),
                                    alert(status="resolved", long_window="6h",
                                          short_window="30m")))  # fmt: skip
        final = pg.get(f"/v1/incidents/{detail['id']}").json()
        assert [e["status"] for e in final["timeline"]][-2:] == ["VERIFIED", "RESOLVED"]
        assert pg.get("/v1/postmortems/search", q="lead_response").json()
        assert pg.get("/v1/audit/verify").json()["ok"] is True
        engine = create_engine(url)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            connection.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
        verdict = pg.get("/v1/audit/verify").json()
        assert verdict["ok"] is False
        assert verdict["problems"][0]["seq"] == 1
        engine.dispose()


def test_the_blast_radius_size_comes_from_the_live_summary(api: Api) -> None:
    detail = open_incident(api)
    api.live.summary["blast_radius"] = {"lead_response": 250}
    live = api.get(f"/v1/incidents/{detail['id']}").json()["live"]
    assert live["blast_radius"] == 250
    assert len(live["top_records"]) == 3
