"""revleak.connectors.alertmanager against a real Alertmanager (docs/semantics.md §4,
docs/paging.md).

The Alertmanager runs prometheus/alertmanager.yml with its webhook URLs and token file
pointed at a recording HTTP server in this process and its timings shortened to a second.
Where a test needs Alertmanager to misbehave, the same recording server stands in for it.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from revleak.connectors.alertmanager import (
    AlertmanagerSender,
    alert_payload,
    fingerprint,
    problem_with,
)
from revleak.loadtest import services
from revleak.paging import Page, RuleKey
from revleak.slo.loader import load_catalog
from revleak.timefmt import HOUR_MS, MINUTE_MS, format_timestamp, parse_timestamp

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "prometheus" / "alertmanager.yml"
TOKEN = "s3cret-webhook-token"
LABELS = {"alertname", "slo", "severity", "kind", "long_window", "short_window", "service"}
ANNOTATIONS = {
    "summary",
    "description",
    "runbook_url",
    "fixpack_url",
    "at_risk_usd",
    "blast_radius",
    "burn_long",
    "burn_short",
}
WINDOWS = {"page": (HOUR_MS, 5 * MINUTE_MS), "ticket": (24 * HOUR_MS, 2 * HOUR_MS)}
WAIT_S = 15.0


def now_ms() -> int:
    return int(time.time() * 1000)


def make_page(
    slo: str,
    *,
    severity: str = "page",
    kind: str = "count",
    starts_at: int | None = None,
    ends_at: int | None = None,
    service: str = "crm",
) -> Page:
    long_ms, short_ms = WINDOWS[severity]
    return Page(
        key=RuleKey(slo, kind, severity, long_ms, short_ms),
        service=service,
        starts_at=now_ms() - MINUTE_MS if starts_at is None else starts_at,
        ends_at=ends_at,
        burn_long=20.0,
        burn_short=40.0,
        at_risk_usd=7500.0,
        blast_radius=3,
        description=f"{slo}: test page",
    )


def resolved(page: Page, ends_at: int | None = None) -> Page:
    return Page(
        key=page.key,
        service=page.service,
        starts_at=page.starts_at,
        ends_at=max(page.starts_at, now_ms() if ends_at is None else ends_at),
        burn_long=page.burn_long,
        burn_short=page.burn_short,
        at_risk_usd=page.at_risk_usd,
        blast_radius=page.blast_radius,
        description=page.description,
    )


# -- a recording HTTP server: the webhook receiver, or a stand-in Alertmanager -------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """Records every POST; ``reply`` chooses the status from the parsed body."""

    reply: Callable[[Any], int] = lambda _body: 200
    requests: list[Request] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def record(self, request: Request) -> int:
        status = self.reply(request.body)
        with self.changed:
            self.requests.append(request)
            self.changed.notify_all()
        return status

    def wait_for(self, found: Callable[[Request], bool], timeout: float = WAIT_S) -> Request:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for request in self.requests:
                    if found(request):
                        return request
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no such request in {timeout} s: {self.requests}")
                self.changed.wait(remaining)

    def bodies(self) -> list[Any]:
        with self.changed:
            return [request.body for request in self.requests]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from _serve(Recorder())


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Recorder]:
    yield from _serve(Recorder())


def _serve(recorder: Recorder) -> Iterator[Recorder]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            status = recorder.record(Request(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- the Alertmanager of prometheus/alertmanager.yml -----------------------------------------


def local_config(webhook_url: str, token_file: Path) -> str:
    """The repository's configuration, delivering to this test process within a second."""
    text = CONFIG.read_text(encoding="utf-8")
    assert "http://revleak-api:8000/v1/alertmanager/webhook" in text
    text = text.replace("http://revleak-api:8000", webhook_url)
    text = text.replace("/run/secrets/revleak_api_token", str(token_file))
    text = re.sub(r"group_wait: \S+", "group_wait: 1s", text)
    return re.sub(r"group_interval: \S+", "group_interval: 1s", text)


@pytest.fixture(scope="module")
def alertmanager(webhooks: Recorder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("alertmanager")
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    with services.alertmanager(folder, local_config(webhooks.url, token_file)) as url:
        yield url


def held_alerts(url: str, slo: str) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds as active for this SLO."""
    response = httpx.get(f"{url}/api/v2/alerts", params={"filter": f'slo="{slo}"'}, timeout=5)
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def notifications(webhooks: Recorder, slo: str, status: str | None = None) -> list[Any]:
    return [
        body
        for body in webhooks.bodies()
        if body["groupLabels"].get("slo") == slo and status in (None, body["status"])
    ]


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        time.sleep(0.05)


def sender(url: str, **options: Any) -> AlertmanagerSender:
    options.setdefault("min_firing_s", 0.0)
    options.setdefault("max_backoff_s", 0.5)
    return AlertmanagerSender(url, **options)


# -- the configuration ----------------------------------------------------------------------


def test_amtool_accepts_the_config_and_routes_pages_and_tickets_apart() -> None:
    checked = subprocess.run(
        [services.require("amtool"), "check-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routes = {}
    route_test = [services.require("amtool"), "config", "routes", "test", f"--config.file={CONFIG}"]
    for labels in ("severity=page", "severity=ticket", "severity=info"):
        routed = subprocess.run(
            [*route_test, "alertname=SLOBurnRate", "slo=lead_response", labels],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        routes[labels] = routed.stdout.strip()
    assert routes == {
        "severity=page": "revleak-page",
        "severity=ticket": "revleak-ticket",
        "severity=info": "revleak-default",
    }


# -- the payload ----------------------------------------------------------------------------


def test_payload_carries_the_contract_labels_and_annotations() -> None:
    page = make_page("lead_response", kind="usd", service="crm")
    body = alert_payload(page, now_ms(), firing_margin_ms=4 * MINUTE_MS)
    assert body["labels"] == {
        "alertname": "SLOBurnRate",
        "slo": "lead_response",
        "severity": "page",
        "kind": "usd",
        "long_window": "1h",
        "short_window": "5m",
        "service": "crm",
    }
    assert set(body["annotations"]) >= ANNOTATIONS
    assert body["annotations"]["runbook_url"].endswith("/runbooks/lead_response")
    assert body["annotations"]["fixpack_url"].endswith("/fixpacks?slo=lead_response")
    assert body["annotations"]["summary"] == page.summary()
    assert body["startsAt"] == format_timestamp(page.starts_at)
    assert (body["annotations"]["burn_long"], body["annotations"]["burn_short"]) == ("20.0", "40.0")
    assert "burn_factor" not in body["annotations"]  # only a catalog knows the rule's factor


def test_the_catalog_gives_each_alert_its_rules_burn_factor() -> None:
    catalog = load_catalog(ROOT / "slos" / "crm.yaml")

    def factor(page: Page) -> str | None:
        body = alert_payload(page, now_ms(), firing_margin_ms=MINUTE_MS, catalog=catalog)
        annotations: dict[str, str] = body["annotations"]
        return annotations.get("burn_factor")

    # budgetConsumed × 30 d ÷ long window: 0.02 × 720 h ÷ 1 h and 0.10 × 30 d ÷ 1 d.
    assert factor(make_page("lead_response")) == "14.4"
    assert factor(make_page("lead_response", kind="usd")) == "14.4"
    assert factor(make_page("deal_velocity", severity="ticket")) == "3.0"
    assert factor(make_page("no_such_slo")) is None


def test_firing_ends_a_margin_after_the_later_of_wall_and_event_time() -> None:
    wall = now_ms()
    behind = make_page("t", starts_at=wall - HOUR_MS)
    ahead = make_page("t", starts_at=wall + HOUR_MS)
    margin = 4 * MINUTE_MS
    assert alert_payload(behind, wall, firing_margin_ms=margin)["endsAt"] == format_timestamp(
        wall + margin
    )
    assert alert_payload(ahead, wall, firing_margin_ms=margin)["endsAt"] == format_timestamp(
        wall + HOUR_MS + margin
    )


def test_a_resolve_ends_at_its_event_time_but_never_in_the_wall_clocks_future() -> None:
    wall = now_ms()
    past = resolved(make_page("t", starts_at=wall - HOUR_MS), wall - MINUTE_MS)
    body = alert_payload(past, wall, firing_margin_ms=MINUTE_MS)
    assert (body["startsAt"], body["endsAt"]) == (
        format_timestamp(wall - HOUR_MS),
        format_timestamp(wall - MINUTE_MS),
    )
    future = resolved(make_page("t", starts_at=wall + HOUR_MS), wall + 2 * HOUR_MS)
    body = alert_payload(future, wall, firing_margin_ms=MINUTE_MS)
    assert body["startsAt"] == body["endsAt"] == format_timestamp(wall)


def test_invalid_pages_are_recognised_before_sending() -> None:
    assert problem_with(make_page("lead_response")) is None
    assert "UTF-8" in str(problem_with(make_page("lead_response", service="bad\udcff")))
    backwards = make_page("t", starts_at=now_ms(), ends_at=now_ms() - HOUR_MS)
    assert "before" in str(problem_with(backwards))


# -- end to end through the repository's configuration ---------------------------------------


def test_a_page_and_a_ticket_reach_their_receivers_and_the_page_resolves(
    alertmanager: str, webhooks: Recorder
) -> None:
    delivered: list[tuple[list[Page], float]] = []
    page = make_page("e2e_page")
    ticket = make_page("e2e_ticket", severity="ticket", kind="usd")
    with sender(alertmanager, on_delivered=lambda p, t: delivered.append((list(p), t))) as out:
        started = time.monotonic()
        out.submit([page, ticket])
        assert time.monotonic() - started < 0.5
        assert out.flush(WAIT_S)
        assert delivered
        assert [p for pages, _ in delivered for p in pages] == [page, ticket]
        assert abs(delivered[0][1] - time.time()) < WAIT_S

        paged = webhooks.wait_for(
            lambda r: (
                r.body["receiver"] == "revleak-page"
                and r.body["groupLabels"].get("slo") == "e2e_page"
            )
        )
        assert paged.path == "/v1/alertmanager/webhook"
        assert paged.headers["Authorization"] == f"Bearer {TOKEN}"
        assert paged.body["version"] == "4"
        assert paged.body["status"] == "firing"
        (alert,) = paged.body["alerts"]
        assert alert["labels"] == page.labels()
        assert set(alert["annotations"]) >= ANNOTATIONS
        assert parse_timestamp(alert["startsAt"]) == page.starts_at

        ticketed = webhooks.wait_for(lambda r: r.body["groupLabels"].get("slo") == "e2e_ticket")
        assert ticketed.body["receiver"] == "revleak-ticket"
        assert ticketed.body["alerts"][0]["labels"] == ticket.labels()

        end = resolved(page)
        out.submit([end])
        assert out.flush(WAIT_S)
        done = webhooks.wait_for(
            lambda r: (
                r.body["groupLabels"].get("slo") == "e2e_page" and r.body["status"] == "resolved"
            )
        )
        assert done.body["receiver"] == "revleak-page"
        (alert,) = done.body["alerts"]
        assert alert["status"] == "resolved"
        assert parse_timestamp(alert["endsAt"]) == end.ends_at
        assert held_alerts(alertmanager, "e2e_page") == []
        out.submit([resolved(ticket)])
        assert out.flush(WAIT_S)
        assert out.dropped_invalid == 0


def test_resends_and_a_restart_keep_one_alert_per_fingerprint(
    alertmanager: str, webhooks: Recorder
) -> None:
    # Fresh pages: Alertmanager then waits group_wait, so both kinds share one notification.
    start = now_ms()
    count = make_page("restart", kind="count", starts_at=start)
    usd = make_page("restart", kind="usd", starts_at=start)
    gone = make_page("restart_gone", starts_at=start)
    gone_end = resolved(gone)
    first = sender(alertmanager, resend_interval_s=0.2, firing_margin_s=60.0)
    first.submit([count, usd, gone])
    assert first.flush(WAIT_S)
    webhooks.wait_for(
        lambda r: r.body["groupLabels"].get("slo") == "restart" and len(r.body["alerts"]) == 2
    )
    webhooks.wait_for(lambda r: r.body["groupLabels"].get("slo") == "restart_gone")
    first.submit([gone_end])
    webhooks.wait_for(
        lambda r: (
            r.body["groupLabels"].get("slo") == "restart_gone" and r.body["status"] == "resolved"
        )
    )
    held = held_alerts(alertmanager, "restart")
    updated = {alert["fingerprint"]: alert["updatedAt"] for alert in held}
    assert len(updated) == 2
    # Re-sends move updatedAt of the same two alerts.
    wait_until(
        lambda: all(
            alert["updatedAt"] != updated[alert["fingerprint"]]
            for alert in held_alerts(alertmanager, "restart")
        )
    )
    assert first.stats().resent >= 2
    first.close()
    notified = [len(notifications(webhooks, slo)) for slo in ("restart", "restart_gone")]

    # A restart: a new sender gets every page the pager knows, firing and resolved.
    second = sender(alertmanager, resend_interval_s=0.2, firing_margin_s=60.0)
    second.submit([count, usd, gone_end])
    assert second.flush(WAIT_S)
    wait_until(lambda: second.stats().resent >= 2)
    after = held_alerts(alertmanager, "restart")
    assert sorted(alert["fingerprint"] for alert in after) == sorted(updated)
    assert sorted(a["labels"]["kind"] for a in after) == ["count", "usd"]
    assert {parse_timestamp(a["startsAt"]) for a in after} == {start}
    assert held_alerts(alertmanager, "restart_gone") == []
    # Several group intervals later, nobody has been notified again.
    time.sleep(2.5)
    assert [len(notifications(webhooks, slo)) for slo in ("restart", "restart_gone")] == notified
    assert len(notifications(webhooks, "restart_gone", "resolved")) == 1
    second.submit([resolved(count), resolved(usd)])
    assert second.flush(WAIT_S)
    second.close()


def test_no_resend_after_a_resolve(alertmanager: str) -> None:
    page = make_page("quiet")
    with sender(alertmanager, resend_interval_s=0.1, firing_margin_s=60.0) as out:
        out.submit([page])
        wait_until(lambda: out.stats().resent >= 2)
        out.submit([resolved(page)])
        assert out.flush(WAIT_S)
        sent = out.sent
        time.sleep(0.6)
        assert out.sent == sent
        assert out.stats().firing == 0
        assert out.pending == 0
    assert held_alerts(alertmanager, "quiet") == []


def test_event_time_ahead_of_the_wall_clock_is_accepted(alertmanager: str) -> None:
    ahead = now_ms() + HOUR_MS
    page = make_page("ahead", starts_at=ahead)
    with sender(alertmanager) as out:
        out.submit([page])
        assert out.flush(WAIT_S)
        assert (out.dropped_invalid, out.failed_attempts) == (0, 0)
        (alert,) = held_alerts(alertmanager, "ahead")
        assert set(alert["labels"]) == LABELS
        assert alert["labels"] == page.labels()
        assert set(alert["annotations"]) >= ANNOTATIONS
        assert parse_timestamp(alert["startsAt"]) == ahead
        assert parse_timestamp(alert["endsAt"]) > ahead
        assert alert["status"]["state"] == "active"

        # Resolved an hour ahead of the wall clock: Alertmanager must not keep it firing.
        out.submit([resolved(page, ahead + MINUTE_MS)])
        assert out.flush(WAIT_S)
        assert (out.dropped_invalid, out.failed_attempts) == (0, 0)
        assert held_alerts(alertmanager, "ahead") == []


def test_a_fire_and_its_resolve_submitted_together_are_both_notified(
    alertmanager: str, webhooks: Recorder
) -> None:
    # Alertmanager waits group_wait from a fresh alert's startsAt before the first
    # notification, and drops a group whose alerts all resolved in the meantime. The
    # resolve is held for longer than the test configuration's 1 s group_wait.
    page = make_page("blip", starts_at=now_ms())
    with sender(alertmanager, min_firing_s=2.0) as out:
        out.submit([page, resolved(page)])
        assert not out.flush(1.0)  # the resolve is held back
        assert out.flush(WAIT_S)
    webhooks.wait_for(
        lambda r: r.body["groupLabels"].get("slo") == "blip" and r.body["status"] == "firing"
    )
    webhooks.wait_for(
        lambda r: r.body["groupLabels"].get("slo") == "blip" and r.body["status"] == "resolved"
    )


# -- when Alertmanager is away or refuses ---------------------------------------------------


def test_pages_wait_while_alertmanager_is_down_and_arrive_once_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = services.free_port()
    page = make_page("outage")
    with sender(f"http://127.0.0.1:{port}", max_backoff_s=0.5, timeout_s=1.0) as out:
        started = time.monotonic()
        out.submit([page])
        assert time.monotonic() - started < 0.5
        assert not out.flush(1.0)
        assert out.pending == 1
        assert out.failed_attempts >= 2  # retried, with backoff between attempts
        assert out.failed_attempts < 20
        monkeypatch.setattr(services, "free_port", lambda: port)
        config = "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n"
        with services.alertmanager(tmp_path, config) as url:
            assert url.endswith(f":{port}")
            assert out.flush(WAIT_S)
            (alert,) = held_alerts(url, "outage")
            assert alert["labels"] == page.labels()


def test_server_errors_are_retried_until_accepted(recorder: Recorder) -> None:
    statuses = iter([503, 500])
    recorder.reply = lambda _body: next(statuses, 200)
    with sender(recorder.url, max_backoff_s=0.2) as out:
        out.submit([make_page("retry")])
        assert out.flush(WAIT_S)
        assert out.failed_attempts == 2
        assert out.sent == 1
    assert all(request.path == "/api/v2/alerts" for request in recorder.requests)
    assert len(recorder.requests) == 3


def test_a_rejected_alert_is_dropped_without_blocking_the_others(recorder: Recorder) -> None:
    recorder.reply = lambda body: 400 if any(a["labels"]["slo"] == "poison" for a in body) else 200
    good = [make_page(f"good{i}") for i in range(5)]
    poison = make_page("poison")
    bad_utf8 = make_page("good_but_mangled", service="bad\udcff")
    with sender(recorder.url) as out:
        out.submit([good[0], poison, good[1], bad_utf8, good[2], good[3]])
        assert out.flush(WAIT_S)
        assert out.dropped_invalid == 2
        out.submit([good[4]])
        assert out.flush(WAIT_S)
        assert out.pending == 0
    accepted = [
        alert["labels"]["slo"]
        for body in recorder.bodies()
        if not any(a["labels"]["slo"] == "poison" for a in body)
        for alert in body
    ]
    assert sorted(accepted) == [f"good{i}" for i in range(5)]
    assert all("good_but_mangled" not in json.dumps(body) for body in recorder.bodies())


def test_states_of_a_page_are_posted_in_submission_order(recorder: Recorder) -> None:
    page = make_page("ordered")
    states = [page, resolved(page), make_page("ordered", starts_at=now_ms())]
    with sender(recorder.url) as out:
        out.submit(states)
        assert out.flush(WAIT_S)
    posted = [alert for body in recorder.bodies() for alert in body]
    assert [alert["labels"]["slo"] for alert in posted] == ["ordered"] * 3
    # Each state in its own POST, fire, resolve, fire again.
    assert [len(body) for body in recorder.bodies()] == [1, 1, 1]
    assert [parse_timestamp(a["startsAt"]) for a in posted] == [s.starts_at for s in states]
    assert parse_timestamp(posted[1]["endsAt"]) == states[1].ends_at


def test_a_long_queue_keeps_the_latest_state_of_every_page(recorder: Recorder) -> None:
    up = threading.Event()
    recorder.reply = lambda _body: 200 if up.is_set() else 503
    pages = [make_page(f"flap{i}") for i in range(3)]
    with sender(recorder.url, max_queue=5, max_backoff_s=0.2) as out:
        for round_ in range(4):
            for page in pages:
                out.submit([page if round_ % 2 == 0 else resolved(page)])
        assert out.pending <= 5
        assert out.stats().coalesced > 0
        assert not out.flush(0.3)
        up.set()
        assert out.flush(WAIT_S)
    last: dict[Any, Any] = {}
    for body in recorder.bodies():
        for alert in body:
            last[alert["labels"]["slo"]] = alert
    # The last round resolved every page: that is what Alertmanager ends up with.
    assert sorted(last) == ["flap0", "flap1", "flap2"]
    assert all(parse_timestamp(a["endsAt"]) <= now_ms() for a in last.values())


def test_fingerprint_is_the_label_set() -> None:
    page = make_page("fp")
    assert fingerprint(page) == fingerprint(resolved(page))
    assert fingerprint(page) != fingerprint(make_page("fp", kind="usd"))
