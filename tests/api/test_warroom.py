"""The war room page and its panel fragment, rendered by the real app (tests/api/apikit.py):
SQLite store, embedded CRM, Alertmanager webhooks, Slack as a local HTTP server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from apikit import APPROVER, VIEWER, Api, LiveState, alert, notification

from revleak.api.routes import warroom
from revleak.api.routes.warroom import DiffLine, diff_lines
from revleak.remediation.crm_sim import EmbeddedCrm
from revleak.remediation.model import BlastRecord

SLO = "lead_response"
HOSTILE = '<script>alert("pwned")</script>'
# (record id, name, owner, region, value in USD)
LEADS = (
    ("L-0001", "Lead 1 (Stark)", "holly", "NA", 8000),
    ("L-0002", f"Lead 2 {HOSTILE}", "powell", "EMEA", 12000),
    ("L-0003", "Lead 3 (Wonka)", "ellis", "NA", 5000),
)
STATIC = Path(__file__).parents[2] / "api" / "static"
TEMPLATES = Path(__file__).parents[2] / "api" / "templates"


def seed_leaks(crm: EmbeddedCrm, live: LiveState) -> None:
    """Leads that missed their response SLA: in the CRM, and in the live blast radius."""
    for number, (record_id, name, owner, region, value) in enumerate(LEADS, 1):
        crm.observe(
            orjson.dumps(
                {
                    "event_id": f"seed-{number}",
                    "ts": "2026-03-10T18:00:00.000Z",
                    "object": "lead",
                    "op": "create",
                    "record_id": record_id,
                    "fields": {
                        "name": name,
                        "email": f"contact{number}@lead-{number}.example",
                        "owner": owner,
                        "region": region,
                        "stage": "New",
                        "value_usd": value,
                        "created_at": "2026-03-10T18:00:00.000Z",
                    },
                }
            )
        )
    live.blast[SLO] = sorted(
        (
            BlastRecord(
                slo=SLO,
                record_id=record_id,
                rule="SLA_BREACH_UNTOUCHED",
                impact_usd=float(value),
                owner=owner,
                since="2026-03-10T18:30:00.000Z",
            )
            for record_id, _name, owner, _region, value in LEADS
        ),
        key=lambda record: -record.impact_usd,
    )
    live.summary = {
        "severity": "SEV2",
        "paging_state": "PAGE",
        "consumption": 1.3,
        "at_risk_usd": {SLO: float(sum(lead[4] for lead in LEADS))},
    }


def recover(live: LiveState) -> None:
    """What the flows report once the reassigned leads are worked: nothing at risk."""
    live.blast[SLO] = []
    live.summary = {"severity": "none", "paging_state": "OK", "consumption": 0.2,
                        "at_risk_usd": {SLO: 0.0}}  # fmt: skip


def page_alert(status: str = "firing", **overrides: Any) -> dict[str, Any]:
    return alert(SLO, status=status, service="crm", **overrides)


def notify(api: Api, *alerts: dict[str, Any]) -> list[dict[str, str]]:
    answer = api.post_alerts(notification(*alerts))
    assert answer.status_code == 200, answer.text
    touched: list[dict[str, str]] = answer.json()["incidents"]
    return touched


def sign_in(api: Api, token: str = APPROVER) -> None:
    """What the sign-in page does: the bearer token becomes the session cookie."""
    api.client.cookies.clear()
    opened = api.client.post("/v1/session", headers={"Authorization": token})
    assert opened.status_code == 204


def page(api: Api, path: str = "/", token: str = APPROVER) -> str:
    sign_in(api, token)
    response = api.client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def panel(api: Api, incident_id: str = "INC-1") -> str:
    response = api.client.get(f"/ui/incidents/{incident_id}/panel")
    assert response.status_code == 200, response.text
    return response.text


def timeline_statuses(html: str) -> list[str]:
    return re.findall(r'<tr data-status="([A-Z_]+)"', html)


def open_incident(api: Api) -> None:
    seed_leaks(api.crm, api.live)
    assert notify(api, page_alert()) == [{"id": "INC-1", "change": "detected"}]


def test_a_browser_without_a_token_gets_the_sign_in_page(api: Api) -> None:
    open_incident(api)
    for cookie in (None, "not-a-token"):
        api.client.cookies.clear()
        if cookie is not None:
            api.client.cookies.set("revleak_token", cookie)
        response = api.client.get("/")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/html")
        assert 'id="login-form"' in response.text
        assert "INC-1" not in response.text
        assert "/static/warroom.js" in response.text


def test_the_approver_sees_the_incident_its_fix_pack_and_the_button(api: Api) -> None:
    open_incident(api)
    html = page(api)
    assert "INC-1 · lead_response (crm)" in html
    assert timeline_statuses(html) == ["DETECTED", "FIXPACK_PROPOSED"]
    assert '<span class="status">FIXPACK_PROPOSED</span>' in html
    # Severity and budget: the alert's and the live ones.
    assert '<span class="badge severity-page">page</span>' in html
    assert 'id="live-severity">SEV2<' in html
    assert 'id="at-risk">$25,000<' in html
    assert 'id="consumption">130.0%<' in html
    assert 'id="paging-state">PAGE<' in html
    # Burn windows and blast radius.
    assert '<td class="num">20.00</td>' in html
    assert '<td class="num">14.40</td>' in html
    assert re.search(r"<td>L-0002</td><td>SLA_BREACH_UNTOUCHED</td><td>powell</td>\s*"
                     r'<td class="num">\$12,000</td>', html)  # fmt: skip
    assert re.search(r'<tr><td>holly</td><td class="num">1</td><td class="num">\$8,000</td>', html)
    # The run and its diff, lines coloured by kind.
    assert 'data-run-status="PROPOSED"' in html
    assert "rapid-response" in html
    assert '<span class="diff-del">-owner: powell</span>' in html
    assert '<span class="diff-add">+owner: karl</span>' in html
    assert '<span class="diff-hunk">@@' in html
    assert "Slack #revenue-ops: 1 message" in html
    assert re.search(r'<button id="approve-apply" type="button" data-run="RUN-1"', html)
    assert "Approve &amp; Apply" in html


def test_a_viewer_sees_the_same_incident_without_the_button(api: Api) -> None:
    open_incident(api)
    html = page(api, token=VIEWER)
    assert "FIXPACK_PROPOSED" in html
    assert '<span class="diff-add">+owner: karl</span>' in html
    assert "approve-apply" not in html
    assert "An approver can approve and apply this run." in html
    assert "approve-apply" not in panel(api)


def test_the_panel_fragment_is_served_to_a_signed_in_browser_only(api: Api) -> None:
    open_incident(api)
    sign_in(api)
    fragment = panel(api)
    assert fragment.startswith('<div class="panel" data-refresh="/ui/incidents/INC-1/panel">')
    assert "<html" not in fragment
    assert "<body" not in fragment
    assert timeline_statuses(fragment) == ["DETECTED", "FIXPACK_PROPOSED"]
    # A page with no incident yet follows the top one; once it shows one, it stays on it.
    top = api.client.get("/ui/panel")
    assert 'data-refresh="/ui/incidents/INC-1/panel"' in top.text
    assert api.client.get("/ui/incidents/INC-9/panel").status_code == 404
    api.client.cookies.clear()
    for path in ("/ui/incidents/INC-1/panel", "/ui/panel"):
        refused = api.client.get(path)
        assert refused.status_code == 401
        assert "FIXPACK_PROPOSED" not in refused.text


def test_text_from_alerts_and_records_is_escaped(api: Api) -> None:
    seed_leaks(api.crm, api.live)
    notify(api, page_alert(annotations={"summary": f"burning {HOSTILE}", "burn_long": "2"}))
    for html in (page(api), panel(api)):
        assert HOSTILE not in html
        assert "<script>alert" not in html
        assert "burning &lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
        # The record's name reaches the diff through the pack's task subject.
        assert "Call Lead 2 &lt;script&gt;" in html
    assert "script-src 'self'" in api.client.get("/").headers["content-security-policy"]


def test_the_most_important_incident_leads_and_another_can_be_chosen(api: Api) -> None:
    notify(api, alert("deal_velocity", service="crm"))
    notify(api, alert("deal_velocity", service="crm", status="resolved"))
    notify(api, page_alert())
    notify(api, alert("data_quality", service="crm", severity="ticket"))
    html = page(api)
    # INC-1 is resolved, INC-3 (the newest) only a ticket: the open page INC-2 leads.
    assert '<h2 id="incident-heading">INC-2 · lead_response (crm)</h2>' in html
    listed = re.findall(r'<span class="incident-id">(INC-\d+)</span>', html)
    assert listed == ["INC-2", "INC-3", "INC-1"]
    assert re.search(r'<li class="current" aria-current="page">\s*<a href="/\?incident=INC-2">',
                     html)  # fmt: skip
    chosen = page(api, "/?incident=INC-1")
    assert '<h2 id="incident-heading">INC-1 · deal_velocity (crm)</h2>' in chosen
    assert timeline_statuses(chosen)[-1] == "RESOLVED"
    missing = api.client.get("/?incident=INC-42")
    assert missing.status_code == 404
    assert "no incident INC-42" in missing.text
    assert 'data-refresh=""' in missing.text


def test_newer_resolved_incidents_do_not_crowd_out_an_open_one(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warroom, "LISTED_INCIDENTS", 2)
    notify(api, page_alert())
    for slo in ("deal_velocity", "data_quality"):
        notify(api, alert(slo, service="crm"))
        notify(api, alert(slo, service="crm", status="resolved"))
    html = page(api)
    assert '<h2 id="incident-heading">INC-1 · lead_response (crm)</h2>' in html
    assert re.findall(r'<span class="incident-id">(INC-\d+)</span>', html) == ["INC-1", "INC-3"]


def test_a_quiet_page_follows_the_top_incident(api: Api) -> None:
    html = page(api)
    assert "All quiet" in html
    assert 'data-refresh="/ui/panel"' in html
    open_incident(api)
    assert "INC-1 · lead_response" in api.client.get("/ui/panel").text


def test_approved_applied_verified_and_resolved_show_on_the_page(api: Api) -> None:
    open_incident(api)
    sign_in(api)
    key = {"Idempotency-Key": "8d0f6c7e-2f7a-4c8e-9f55-3a1f4b6d2e10"}
    assert api.client.post("/v1/runs/RUN-1/approve", headers=key).status_code == 200
    # Approved but not applied (the browser lost its connection, say): the button offers
    # the apply alone.
    assert re.search(r'data-run="RUN-1" data-approved="true"\s+aria-describedby="run-id '
                     r'diff-heading">Apply</button>', panel(api))  # fmt: skip
    applied = api.client.post("/v1/runs/RUN-1/apply", headers=key)
    assert applied.status_code == 200, applied.text
    assert len(api.slack.bodies) == 1
    fragment = panel(api)
    assert timeline_statuses(fragment) == ["DETECTED", "FIXPACK_PROPOSED", "APPROVED", "APPLIED"]
    assert "approve-apply" not in fragment
    assert "<dt>Approved by</dt><dd>ana</dd>" in fragment
    recover(api.live)
    notify(api, page_alert("resolved"))
    fragment = panel(api)
    assert timeline_statuses(fragment)[-2:] == ["VERIFIED", "RESOLVED"]
    assert 'data-run-status="VERIFIED"' in fragment
    assert "No violating records." in fragment


def test_the_script_and_style_sheet_are_served_from_the_app(api: Api) -> None:
    script = api.client.get("/static/warroom.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert 'new EventSource("/v1/events")' in script.text
    style = api.client.get("/static/warroom.css")
    assert style.headers["content-type"].startswith("text/css")
    for name in ("app.py", "..%2Fapp.py", "warroom.html"):
        assert api.client.get(f"/static/{name}").status_code == 404


def test_the_page_needs_nothing_from_outside_and_stays_small() -> None:
    for path in [*STATIC.iterdir(), *TEMPLATES.iterdir()]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path
        # The Content-Security-Policy refuses inline styles and handlers.
        assert "style=" not in text, path
        assert "onclick" not in text, path
    script = (STATIC / "warroom.js").read_text(encoding="utf-8")
    assert len(script.splitlines()) < 200


def test_diff_lines_tell_additions_removals_hunks_and_headers_apart() -> None:
    diff = "--- a/crm/lead/L-1\n+++ b/crm/lead/L-1\n@@ -1 +1 @@\n-owner: a\n+owner: b\n same"
    assert diff_lines(diff) == [
        DiffLine("meta", "--- a/crm/lead/L-1"),
        DiffLine("meta", "+++ b/crm/lead/L-1"),
        DiffLine("hunk", "@@ -1 +1 @@"),
        DiffLine("del", "-owner: a"),
        DiffLine("add", "+owner: b"),
        DiffLine("context", " same"),
    ]
    assert diff_lines("") == []
