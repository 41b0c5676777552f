"""revleak.connectors.alertmanager_webhook: Alertmanager's notifications without Alertmanager.

The reference is a real Alertmanager running prometheus/alertmanager.yml (webhooks pointed
at a recording server in this process, timings cut to a second): the embedded one must
send the same bodies for the same pages.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from revleak.connectors.alertmanager import AlertmanagerSender
from revleak.connectors.alertmanager_webhook import (
    ZERO_TIME,
    EmbeddedAlertmanager,
    label_fingerprint,
    webhook_payload,
)
from revleak.loadtest import services
from revleak.paging import Page, RuleKey
from revleak.slo.catalog import SloCatalog
from revleak.slo.loader import load_catalog
from revleak.timefmt import HOUR_MS, MINUTE_MS, parse_timestamp

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "prometheus" / "alertmanager.yml"
WINDOWS = {"page": (HOUR_MS, 5 * MINUTE_MS), "ticket": (24 * HOUR_MS, 2 * HOUR_MS)}
T = parse_timestamp("2026-03-10T21:30:00.120Z")
WAIT_S = 20.0
TOP_KEYS = [
    "receiver",
    "status",
    "alerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
]
ALERT_KEYS = [
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
]


@pytest.fixture(scope="module")
def catalog() -> SloCatalog:
    return load_catalog(ROOT / "slos" / "crm.yaml")


def page(
    slo: str,
    *,
    severity: str = "page",
    kind: str = "count",
    starts_at: int = T,
    ends_at: int | None = None,
    burn: float = 20.0,
) -> Page:
    long_ms, short_ms = WINDOWS[severity]
    return Page(
        key=RuleKey(slo, kind, severity, long_ms, short_ms),
        service="lead",
        starts_at=starts_at,
        ends_at=ends_at,
        burn_long=burn,
        burn_short=2 * burn,
        at_risk_usd=7500.0,
        blast_radius=3,
        description=f"{slo}: every new lead gets its first touch within 30 minutes",
    )


def resolved(fired: Page, ends_at: int) -> Page:
    return Page(
        key=fired.key,
        service=fired.service,
        starts_at=fired.starts_at,
        ends_at=ends_at,
        burn_long=fired.burn_long,
        burn_short=fired.burn_short,
        at_risk_usd=fired.at_risk_usd,
        blast_radius=fired.blast_radius,
        description=fired.description,
    )


class Notifications:
    """What a webhook receiver got, in order; ``wait_for`` bounded."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def add(self, body: dict[str, Any]) -> None:
        with self._changed:
            self.bodies.append(body)
            self._changed.notify_all()

    def wait_for(self, found: Callable[[dict[str, Any]], bool], after: int) -> dict[str, Any]:
        """The first body from the ``after``-th on that ``found`` accepts."""
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while True:
                for body in self.bodies[after:]:
                    if found(body):
                        return body
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no such notification in {WAIT_S} s: {self.bodies}"
                self._changed.wait(remaining)


@pytest.fixture(scope="module")
def received() -> Iterator[tuple[str, Notifications]]:
    """A webhook receiver on loopback: its URL and what it got."""
    got = Notifications()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            got.add(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def alertmanager(
    received: tuple[str, Notifications], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("alertmanager")
    token = folder / "token"
    token.write_text("webhook-token\n")
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace("http://revleak-api:8000", received[0])
    text = text.replace("/run/secrets/revleak_api_token", str(token))
    text = re.sub(r"group_wait: \S+", "group_wait: 1s", text)
    text = re.sub(r"group_interval: \S+", "group_interval: 1s", text)
    with services.alertmanager(folder, text) as url:
        yield url


# -- against a real Alertmanager -------------------------------------------------------------


@pytest.mark.services
def test_the_embedded_alertmanager_sends_what_alertmanager_sends(
    alertmanager: str, received: tuple[str, Notifications], catalog: SloCatalog
) -> None:
    _, real = received
    # Wall-clock times: the real Alertmanager resolves by its own clock. The odd
    # millisecond shows Go's time format (no trailing zeros).
    start = (int(time.time()) - 60) * 1000 + 120
    count = page("lead_response", starts_at=start)
    usd = page("lead_response", kind="usd", starts_at=start, burn=360.0)
    ticket = page("lead_response", severity="ticket", starts_at=start + 1)
    steps = [
        [count, usd, ticket],
        [resolved(usd, start + 30_000)],
        [resolved(count, start + 40_000), resolved(ticket, start + 45_000)],
    ]
    expected_groups = [
        [("page", "firing"), ("ticket", "firing")],
        [("page", "firing")],
        [("page", "resolved"), ("ticket", "resolved")],
    ]

    def of_group(severity: str, status: str) -> Callable[[dict[str, Any]], bool]:
        def found(body: dict[str, Any]) -> bool:
            return (
                body["groupLabels"] == {
                    "alertname": "SLOBurnRate", "severity": severity, "slo": "lead_response"
                }
                and body["status"] == status
            )  # fmt: skip

        return found

    theirs: list[dict[str, Any]] = []
    with AlertmanagerSender(alertmanager, min_firing_s=0.0, catalog=catalog) as sender:
        for pages, groups in zip(steps, expected_groups, strict=True):
            seen = len(real.bodies)
            sender.submit(pages)
            assert sender.flush(WAIT_S)
            for severity, status in groups:
                theirs.append(real.wait_for(of_group(severity, status), seen))
    assert sender.dropped_invalid == 0

    ours: list[dict[str, Any]] = []
    embedded = EmbeddedAlertmanager(
        ours.append, external_url=theirs[0]["externalURL"], catalog=catalog
    )
    for pages in steps:
        embedded.submit(pages)

    def key(body: dict[str, Any]) -> tuple[str, str]:
        return body["groupKey"], body["status"]

    assert [key(body) for body in ours] == [key(body) for body in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert list(reference) == TOP_KEYS
        assert list(mine) == TOP_KEYS
        for alert in (*mine["alerts"], *reference["alerts"]):
            assert list(alert) == ALERT_KEYS
        assert mine == reference
    # What the bodies say, so the comparison above cannot pass on two empty lists.
    first_page = theirs[0]
    assert first_page["receiver"] == "revleak-page"
    assert [alert["labels"]["kind"] for alert in first_page["alerts"]] == ["count", "usd"]
    assert first_page["alerts"][0]["endsAt"] == ZERO_TIME
    assert first_page["alerts"][0]["startsAt"].endswith(".12Z")
    assert first_page["alerts"][1]["annotations"]["burn_long"] == "360.0"
    assert first_page["alerts"][1]["annotations"]["burn_factor"] == "14.4"
    assert theirs[1]["receiver"] == "revleak-ticket"
    assert [alert["status"] for alert in theirs[2]["alerts"]] == ["firing", "resolved"]
    assert [alert["labels"]["kind"] for alert in theirs[3]["alerts"]] == ["count"]


# -- the payload ----------------------------------------------------------------------------


def held(labels: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"labels": labels, "annotations": {"summary": "s"}, "startsAt": fields.pop(
        "startsAt", "2026-03-10T21:30:00.000Z"), **fields}  # fmt: skip


def test_fingerprints_are_alertmanagers() -> None:
    # Read from a real Alertmanager's webhook for this label set.
    labels = {
        "alertname": "SLOBurnRate",
        "kind": "count",
        "long_window": "1h",
        "service": "lead",
        "severity": "page",
        "short_window": "5m",
        "slo": "x",
    }
    assert label_fingerprint(labels) == "c1749d85bc0936e8"
    assert label_fingerprint(dict(reversed(labels.items()))) == "c1749d85bc0936e8"
    assert label_fingerprint({**labels, "slo": "y"}) != "c1749d85bc0936e8"


def test_times_are_written_as_go_writes_them() -> None:
    body = webhook_payload(
        [
            held({"alertname": "A", "n": "1"}, status="firing", startsAt="2026-03-10T21:30:00Z"),
            held({"alertname": "A", "n": "2"}, status="resolved",
                 startsAt="2026-03-10T21:30:00.120Z", endsAt="2026-03-10T23:30:00.5+02:00"),
        ],
        receiver="revleak-page",
        status="firing",
        group_labels={"alertname": "A"},
        external_url="http://am",
    )  # fmt: skip
    first, second = body["alerts"]
    assert (first["startsAt"], first["endsAt"]) == ("2026-03-10T21:30:00Z", ZERO_TIME)
    assert (second["startsAt"], second["endsAt"]) == (
        "2026-03-10T21:30:00.12Z",
        "2026-03-10T21:30:00.5Z",
    )


def test_group_key_common_labels_and_order() -> None:
    body = webhook_payload(
        [
            held({"alertname": "A", "slo": 'we"ird', "kind": "usd"}, status="firing"),
            held({"alertname": "A", "slo": 'we"ird', "kind": "count"}, status="firing",
                 annotations={"summary": "s", "only": "here"}),
        ],
        receiver="revleak-ticket",
        status="firing",
        group_labels={"slo": 'we"ird', "alertname": "A"},
        external_url="http://am",
    )  # fmt: skip
    assert body["groupKey"] == '{}/{severity="ticket"}:{alertname="A", slo="we\\"ird"}'
    assert [alert["labels"]["kind"] for alert in body["alerts"]] == ["count", "usd"]
    assert body["commonLabels"] == {"alertname": "A", "slo": 'we"ird'}
    assert body["commonAnnotations"] == {"summary": "s"}
    assert list(body["groupLabels"]) == ["alertname", "slo"]
    unknown = webhook_payload(
        [], receiver="elsewhere", status="resolved", group_labels={}, external_url="x"
    )
    assert unknown["groupKey"] == "{}:{}"


def test_a_resolved_alert_needs_its_end() -> None:
    with pytest.raises(ValueError, match="endsAt"):
        webhook_payload(
            [held({"alertname": "A"}, status="resolved")],
            receiver="revleak-page",
            status="resolved",
            group_labels={"alertname": "A"},
            external_url="http://am",
        )


# -- the embedded Alertmanager ----------------------------------------------------------------


def test_pages_and_tickets_go_to_their_receivers_in_event_time(catalog: SloCatalog) -> None:
    sent: list[dict[str, Any]] = []
    embedded = EmbeddedAlertmanager(sent.append, catalog=catalog)
    embedded.submit(
        [
            page("lead_response"),
            page("lead_response", kind="usd"),
            page("lead_response", severity="ticket"),
            page("deal_velocity"),
        ]
    )
    groups = [(body["receiver"], body["groupLabels"]["slo"], len(body["alerts"])) for body in sent]
    assert groups == [
        ("revleak-page", "lead_response", 2),
        ("revleak-ticket", "lead_response", 1),
        ("revleak-page", "deal_velocity", 1),
    ]
    alert = sent[0]["alerts"][0]
    assert alert["startsAt"] == "2026-03-10T21:30:00.12Z"  # the story's time, not the wall's
    assert alert["endsAt"] == ZERO_TIME
    assert alert["annotations"]["burn_factor"] == "14.4"
    assert sent[0]["externalURL"] == "http://127.0.0.1/alertmanager"

    sent.clear()
    embedded.submit([resolved(page("deal_velocity"), T + 5 * MINUTE_MS)])
    (body,) = sent
    assert body["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2026-03-10T21:35:00.12Z"
    assert [p.key.slo for p in embedded.held()] == ["lead_response"] * 3


def test_a_group_is_notified_only_when_alertmanager_would() -> None:
    sent: list[dict[str, Any]] = []
    embedded = EmbeddedAlertmanager(sent.append)
    count, usd = page("lead_response"), page("lead_response", kind="usd")
    embedded.submit([count])
    assert [body["status"] for body in sent] == ["firing"]

    # The same alert again, even with new numbers, is no news.
    embedded.submit([count, page("lead_response", burn=99.0)])
    assert len(sent) == 1

    # Another alert of the group: every alert of the group goes out again.
    embedded.submit([usd])
    assert len(sent[-1]["alerts"]) == 2

    # One of two resolves: still firing, the resolved one listed once, then gone.
    embedded.submit([resolved(usd, T + MINUTE_MS)])
    assert sent[-1]["status"] == "firing"
    assert [a["status"] for a in sent[-1]["alerts"]] == ["firing", "resolved"]
    embedded.submit([count])
    assert len(sent) == 3
    assert [p.key.kind for p in embedded.held()] == ["count"]

    embedded.submit([resolved(count, T + 2 * MINUTE_MS)])
    assert sent[-1]["status"] == "resolved"
    assert embedded.held() == []

    # Fired and resolved before the group was ever notified: nobody hears of it.
    sent.clear()
    flash = page("deal_velocity")
    embedded.submit([flash, resolved(flash, T + 1)])
    assert sent == []
    assert embedded.held() == []

    # A rule that fires again after its resolve is news again.
    embedded.submit([count])
    assert [body["status"] for body in sent] == ["firing"]


def test_a_failing_receiver_is_retried_at_the_next_submit(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[dict[str, Any]] = []
    failing = [True]

    def notify(body: dict[str, Any]) -> None:
        calls.append(body)
        if failing[0]:
            raise ConnectionError("the API is restarting")

    embedded = EmbeddedAlertmanager(notify)
    fired = page("lead_response")
    embedded.submit([fired])  # does not raise
    assert len(calls) == 1
    assert "retrying later" in caplog.text

    failing[0] = False
    embedded.submit([page("deal_velocity")])
    groups = [(body["groupLabels"]["slo"], body["status"]) for body in calls[1:]]
    assert groups == [("lead_response", "firing"), ("deal_velocity", "firing")]

    # A resolve whose notification failed stays held and goes out with the next attempt.
    failing[0] = True
    embedded.submit([resolved(fired, T + MINUTE_MS)])
    assert [p.key.slo for p in embedded.held()] == ["lead_response", "deal_velocity"]
    failing[0] = False
    embedded.submit([])
    assert (calls[-1]["groupLabels"]["slo"], calls[-1]["status"]) == ("lead_response", "resolved")
    assert [p.key.slo for p in embedded.held()] == ["deal_velocity"]


def test_concurrent_submits_leave_every_group_notified_in_its_final_state() -> None:
    sent: list[dict[str, Any]] = []
    lock = threading.Lock()

    def notify(body: dict[str, Any]) -> None:
        with lock:
            sent.append(body)

    embedded = EmbeddedAlertmanager(notify)
    slos = [f"slo_{n}" for n in range(8)]

    def flap(slo: str) -> None:
        for round_ in range(25):
            fired = page(slo, starts_at=T + round_ * MINUTE_MS)
            embedded.submit([fired])
            embedded.submit([resolved(fired, T + round_ * MINUTE_MS + 1)])

    threads = [threading.Thread(target=flap, args=(slo,)) for slo in slos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert embedded.held() == []
    for slo in slos:
        mine = [body["status"] for body in sent if body["groupLabels"]["slo"] == slo]
        assert mine == ["firing", "resolved"] * 25, slo
