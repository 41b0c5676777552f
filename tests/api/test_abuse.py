"""Abusive requests: each gets a clear 4xx whose ``detail`` says what is wrong, and none
writes anything (the audit log, the incidents and their runs read the same through the
API afterwards).

Bodies cut into chunks without a ``Content-Length`` go through a real uvicorn on a loopback
port: the test client hands the app a body in one piece, so only a server shows how the
size limit meets a body that arrives a chunk at a time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from apikit import APPROVER, OPERATOR, TOKENS, VIEWER, Api, alert, notification

HOOK = "/v1/alertmanager/webhook"
PLAN = "/v1/incidents/INC-1/plan"
LIMIT = 1 << 20  # the API's default body limit
JSON = "application/json"
HUGE_HEADER = "x" * (64 << 10)
STARTUP_S = 10.0


@pytest.fixture
def opened(api: Api) -> Api:
    """INC-1 with its proposed run RUN-1: something a request could wrongly change."""
    answer = api.post_alerts(notification(alert()))
    assert answer.json()["incidents"] == [{"id": "INC-1", "change": "detected"}]
    return api


def written(api: Api) -> tuple[Any, ...]:
    """Everything a request could have written, as the API shows it."""
    return (
        api.get("/v1/audit", limit=1000).json(),
        api.get("/v1/incidents", limit=500).json(),
        api.get("/v1/incidents/INC-1/runs").json(),
    )


def detail_of(answer: Any, status: int) -> str:
    """The refusal's ``detail`` as text, once the status is the one expected."""
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert detail
    return detail if isinstance(detail, str) else orjson.dumps(detail).decode()


def valid_notification() -> bytes:
    return orjson.dumps(notification(alert()))


def with_field(path: tuple[str | int, ...], value: Any) -> bytes:
    """The valid notification with one field set (or added) at ``path``."""
    payload: Any = notification(alert())
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return orjson.dumps(payload)


BAD_BODIES = [
    pytest.param(HOOK, b'{"version": "4", ', JSON, 422, "JSON decode error", id="truncated"),
    pytest.param(HOOK, b'{"version": \xff\xfe}', JSON, 400, "parsing the body", id="not-utf8"),
    pytest.param(
        HOOK, b"[" * 100_000 + b"]" * 100_000, JSON, 400, "parsing the body", id="nested-deep"
    ),
    pytest.param(HOOK, b"", JSON, 422, "Field required", id="empty"),
    pytest.param(HOOK, b"null", JSON, 422, "valid dictionary", id="null"),
    pytest.param(HOOK, b"[1, 2]", JSON, 422, "valid dictionary", id="array"),
    pytest.param(
        HOOK, valid_notification(), "text/plain", 422, "valid dictionary", id="text-plain"
    ),
    pytest.param(
        HOOK,
        b"version=4&status=firing",
        "application/x-www-form-urlencoded",
        422,
        "valid dictionary",
        id="form",
    ),
    pytest.param(HOOK, with_field(("surprise",), 1), JSON, 422, "surprise", id="unknown-field"),
    pytest.param(
        HOOK,
        with_field(("alerts", 0, "surprise"), 1),
        JSON,
        422,
        "surprise",
        id="unknown-alert-field",
    ),
    pytest.param(
        HOOK, with_field(("alerts",), "many"), JSON, 422, "valid list", id="alerts-not-a-list"
    ),
    pytest.param(HOOK, with_field(("alerts",), []), JSON, 422, "at least 1", id="no-alerts"),
    pytest.param(
        HOOK, with_field(("truncatedAlerts",), -1), JSON, 422, "greater than", id="negative-count"
    ),
    pytest.param(
        HOOK,
        with_field(("alerts", 0, "startsAt"), "yesterday"),
        JSON,
        422,
        "datetime",
        id="not-a-time",
    ),
    pytest.param(
        HOOK,
        with_field(("alerts", 0, "fingerprint"), "f" * 65),
        JSON,
        422,
        "at most 64",
        id="fingerprint-too-long",
    ),
    pytest.param(
        HOOK,
        with_field(("alerts", 0, "labels"), {"slo": 7}),
        JSON,
        422,
        "valid string",
        id="label-not-a-string",
    ),
    pytest.param(HOOK, b'{"version": "4", "receiver": NaN}', JSON, 422, "receiver", id="nan"),
    pytest.param(
        HOOK,
        b'{"version": "4", "receiver": 18446744073709551616}',
        JSON,
        422,
        "receiver",
        id="int-over-64-bits",
    ),
    pytest.param(PLAN, b'{"pack": "rapid-response"}', JSON, 422, "pack", id="plan-unknown"),
    pytest.param(PLAN, b'{"pack_id": 5, "inputs": []}', JSON, 422, "valid string", id="plan-types"),
    pytest.param(
        PLAN, b'{"inputs": {"due": "forever"}}', JSON, 422, "duration", id="plan-bad-input"
    ),
    pytest.param(
        PLAN, b'{"inputs": {"rm": "-rf"}}', JSON, 422, "unknown input rm", id="plan-unknown-input"
    ),
    pytest.param(
        PLAN, b'{"pack_id": "../../etc/passwd"}', JSON, 404, "no fix pack", id="plan-pack-path"
    ),
]


@pytest.mark.parametrize(("path", "body", "content_type", "status", "says"), BAD_BODIES)
def test_a_bad_body_is_refused_and_writes_nothing(
    opened: Api, path: str, body: bytes, content_type: str, status: int, says: str
) -> None:
    before = written(opened)
    token = OPERATOR if path == HOOK else APPROVER
    answer = opened.client.post(
        path, content=body, headers={"Authorization": token, "Content-Type": content_type}
    )
    assert says in detail_of(answer, status)
    assert written(opened) == before


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
    opened: Api,
) -> None:
    before = written(opened)
    headers = {"Authorization": OPERATOR, "Content-Type": JSON, "Content-Length": "1000000000"}
    declared = opened.client.post(HOOK, content=b"{}", headers=headers)
    assert "request body over" in detail_of(declared, 413)
    padded = b'{"version": "4", "pad": "' + b"x" * (2 * LIMIT) + b'"}'
    sent = opened.client.post(
        HOOK, content=padded, headers={"Authorization": OPERATOR, "Content-Type": JSON}
    )
    assert "request body over" in detail_of(sent, 413)
    assert written(opened) == before


def test_huge_header_values_are_refused_with_a_reason(opened: Api) -> None:
    before = written(opened)
    token = opened.client.get("/v1/incidents", headers={"Authorization": f"Bearer {HUGE_HEADER}"})
    assert "not valid" in detail_of(token, 401)
    key = opened.post("/v1/runs/RUN-1/apply", headers={"Idempotency-Key": HUGE_HEADER})
    assert "at most 200 characters" in detail_of(key, 422)
    assert written(opened) == before


MUTATIONS = [
    pytest.param(HOOK, valid_notification(), id="webhook"),
    pytest.param(PLAN, b"{}", id="plan"),
    pytest.param("/v1/runs/RUN-1/approve", b"", id="approve"),
    pytest.param("/v1/runs/RUN-1/apply", b"", id="apply"),
]
BAD_CREDENTIALS = [
    pytest.param({}, "bearer token is required", id="absent"),
    pytest.param({"Authorization": "Bearer wrong-token-0123456789"}, "not valid", id="wrong"),
    pytest.param({"Authorization": "Basic YW5hOnNlY3JldA=="}, "Bearer", id="basic"),
    pytest.param({"Authorization": "Bearer"}, "Bearer", id="empty-bearer"),
    pytest.param({"Authorization": "Token approver-token-0123456789"}, "Bearer", id="scheme"),
    pytest.param({"Cookie": "revleak_token=wrong"}, "not valid", id="cookie"),
]


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
@pytest.mark.parametrize(("headers", "says"), BAD_CREDENTIALS)
def test_no_valid_token_no_change(
    opened: Api, path: str, body: bytes, headers: dict[str, str], says: str
) -> None:
    before = written(opened)
    answer = opened.client.post(path, content=body, headers={"Content-Type": JSON, **headers})
    assert says in detail_of(answer, 401)
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert written(opened) == before


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_a_revoked_token_is_refused(opened: Api, path: str, body: bytes) -> None:
    """A token taken out of the settings (rotated, expired) stops working at once."""
    before = written(opened)
    revoked = APPROVER.removeprefix("Bearer ")
    settings_tokens = opened.client.app.state.settings.api_tokens  # type: ignore[attr-defined]
    assert revoked in TOKENS
    del settings_tokens[revoked]
    answer = opened.client.post(
        path, content=body, headers={"Authorization": APPROVER, "Content-Type": JSON}
    )
    assert "not valid" in detail_of(answer, 401)
    assert written(opened) == before


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_a_viewer_is_told_which_role_it_lacks(opened: Api, path: str, body: bytes) -> None:
    before = written(opened)
    answer = opened.client.post(
        path, content=body, headers={"Authorization": VIEWER, "Content-Type": JSON}
    )
    assert "role viewer may not do this" in detail_of(answer, 403)
    assert written(opened) == before


# An id that does not exist is named in a domain 404 ("no incident …", "no run …"); a path
# that no route matches gets the framework's "Not Found".
BAD_IDS = [
    pytest.param("INC-99999999999999999999", "RUN-99999999999999999999", "no ", id="too-long"),
    pytest.param("INC-0", "RUN-0", "no ", id="zero"),
    pytest.param("INC-1%00", "RUN-1%00", "no ", id="nul"),
    pytest.param("INC-%F0%9F%94%A5", "RUN-%F0%9F%94%A5", "no ", id="emoji"),
    pytest.param(
        "..%2F..%2Fetc%2Fpasswd", "..%2F..%2Fetc%2Fpasswd", "Not Found", id="encoded-dot-dot"
    ),
    pytest.param("../../../etc/passwd", "../../../etc/passwd", "Not Found", id="dot-dot"),
    pytest.param("INC-%E2%91%A0", "RUN-%E2%91%A0", "no ", id="circled-digit"),
    pytest.param("INC-%D9%A1", "RUN-%D9%A1", "no ", id="arabic-indic-digit"),
]


@pytest.mark.parametrize(("incident", "run", "starts"), BAD_IDS)
def test_a_bad_id_is_not_found_and_changes_nothing(
    opened: Api, incident: str, run: str, starts: str
) -> None:
    before = written(opened)
    reads = [f"/v1/incidents/{incident}", f"/v1/incidents/{incident}/runs", f"/v1/runs/{run}",
             f"/v1/runs/{run}/preview", f"/v1/postmortems/{incident}"]  # fmt: skip
    for path in reads:
        assert detail_of(opened.get(path), 404).startswith(starts), path
    writes = [f"/v1/incidents/{incident}/plan", f"/v1/runs/{run}/approve",
              f"/v1/runs/{run}/apply"]  # fmt: skip
    for path in writes:
        for headers in ({}, {"Idempotency-Key": f"abuse-{path}"}):
            answer = opened.post(path, json={}, headers=headers)
            assert detail_of(answer, 404).startswith(starts), path
    assert written(opened) == before


# --- a real server: bodies that arrive a chunk at a time ------------------------------------


@pytest.fixture
def served(opened: Api) -> Iterator[int]:
    """The test's app behind uvicorn on a free loopback port; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        opened.client.app, lifespan="off", log_level="critical", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield listener.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=STARTUP_S)
    listener.close()


def post_chunked(
    port: int, path: str, token: str, chunks: list[bytes], *, finish: bool = True
) -> tuple[int, Any]:
    """POST ``chunks`` with ``Transfer-Encoding: chunked``; the status and the JSON answer.

    Without ``finish`` the body never ends: a server must answer from what it has read."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
        f"Content-Type: {JSON}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=STARTUP_S) as connection:
        connection.sendall(head.encode())
        for chunk in chunks:
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if finish:
            connection.sendall(b"0\r\n\r\n")
        received = b""
        while part := connection.recv(1 << 16):
            received += part
    status_line, _, rest = received.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), orjson.loads(body) if body.startswith(b"{") else body


def over_the_limit() -> list[bytes]:
    """A little more than the limit, in 64 KiB chunks: no Content-Length says so up front."""
    chunk = b"x" * (64 << 10)
    return [chunk] * (LIMIT // len(chunk) + 1)


def test_a_chunked_body_within_the_limit_is_read(opened: Api, served: int) -> None:
    before = written(opened)
    payload = valid_notification()
    status, answer = post_chunked(served, HOOK, OPERATOR, [payload[:100], payload[100:]])
    assert (status, answer) == (200, {"incidents": [{"id": "INC-1", "change": "updated"}]})
    assert written(opened) == before  # the same notification again changes nothing


@pytest.mark.parametrize(
    ("path", "token"),
    [
        pytest.param(HOOK, OPERATOR, id="webhook"),
        pytest.param("/v1/runs/RUN-1/apply", APPROVER, id="apply"),
    ],
)
def test_a_chunked_body_over_the_limit_is_refused(
    opened: Api, served: int, path: str, token: str
) -> None:
    before = written(opened)
    status, answer = post_chunked(served, path, token, over_the_limit(), finish=False)
    assert (status, answer) == (413, {"detail": f"request body over {LIMIT} bytes"})
    assert written(opened) == before
