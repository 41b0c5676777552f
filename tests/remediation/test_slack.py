"""Slack incoming webhooks against a real local HTTP server that answers as told."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from revleak.remediation.executors.base import ExecutionError, Executors
from revleak.remediation.executors.slack import SlackWebhooks
from revleak.remediation.model import SlackPost


@dataclass
class FakeSlack:
    """Records every request; answers with the queued (status, body) pairs, then 200 "ok"."""

    url: str
    answers: list[tuple[int, str]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake.requests.append((self.path, json.loads(body)))
            status, text = fake.answers.pop(0) if fake.answers else (200, "ok")
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def post(channel: str = "#revenue-ops", text: str = "Rapid Response took 80 leads") -> SlackPost:
    return SlackPost(command_id="INC-1:tell", channel=channel, text=text)


def test_posts_text_and_channel_to_the_channels_webhook(slack: FakeSlack) -> None:
    webhooks = SlackWebhooks(
        {"#revenue-ops": f"{slack.url}/services/T0/B0/ops", "*": f"{slack.url}/services/T0/B0/any"}
    )
    assert webhooks.send(post()) == "slack 200"
    assert webhooks.send(post(channel="#sales-emea", text="hello")) == "slack 200"
    assert slack.requests == [
        (
            "/services/T0/B0/ops",
            {"text": "Rapid Response took 80 leads", "channel": "#revenue-ops"},
        ),
        ("/services/T0/B0/any", {"text": "hello", "channel": "#sales-emea"}),
    ]
    webhooks.close()


def test_a_server_error_is_retried_once(slack: FakeSlack) -> None:
    slack.answers = [(500, "internal_error")]
    assert SlackWebhooks({"*": slack.url}).send(post()) == "slack 200"
    assert len(slack.requests) == 2
    assert slack.requests[0] == slack.requests[1]


def test_two_server_errors_fail_with_status_and_body(slack: FakeSlack) -> None:
    slack.answers = [(503, "service_unavailable"), (502, "bad_gateway " * 100)]
    with pytest.raises(ExecutionError, match=r"#revenue-ops: HTTP 502: 'bad_gateway") as failure:
        SlackWebhooks({"*": slack.url}).send(post())
    assert len(slack.requests) == 2
    assert len(str(failure.value)) < 400  # the body is an excerpt


def test_a_client_error_is_not_retried_and_hides_the_url(slack: FakeSlack) -> None:
    slack.answers = [(404, "no_service")]
    secret = f"{slack.url}/services/T0/B0/secret-token"
    with pytest.raises(ExecutionError, match="HTTP 404: 'no_service'") as failure:
        SlackWebhooks({"#revenue-ops": secret}).send(post())
    assert len(slack.requests) == 1
    assert "secret-token" not in str(failure.value)


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ExecutionError, match="ConnectError"):
        SlackWebhooks({"*": f"http://127.0.0.1:{port}/hook"}, timeout_s=2).send(post())


def test_an_unconfigured_channel_is_refused(slack: FakeSlack) -> None:
    with pytest.raises(ExecutionError, match="no Slack webhook is configured for #sales"):
        SlackWebhooks({"#revenue-ops": slack.url}).send(post(channel="#sales"))
    assert slack.requests == []


def test_webhooks_must_be_http_urls() -> None:
    with pytest.raises(ValueError, match="#ops is not an http"):
        SlackWebhooks({"#ops": "file:///etc/passwd"})


def test_executors_dispatch_slack_posts_and_describe_without_secrets(slack: FakeSlack) -> None:
    executors = Executors(slack=SlackWebhooks({"#revenue-ops": f"{slack.url}/secret"}))
    result = executors.execute(post())
    assert (result.command_id, result.kind, result.ref) == ("INC-1:tell", "slack", "slack 200")
    assert executors.describe() == {
        "crm": "not configured",
        "slack": "Slack webhooks for #revenue-ops",
        "gitops": "not configured",
    }
    with pytest.raises(ExecutionError, match="no Slack webhooks are configured"):
        Executors().execute(post())
