"""The embedded demo end to end: the story pages, fix packs are approved and applied, the
flow sees the fixes, runs are verified and every incident resolves."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import pytest
from test_cli import revleak

from revleak.cli.demo_stack import start_demo

pytestmark = pytest.mark.slow


def test_headless_demo_approves_verifies_and_resolves(tmp_path: Path) -> None:
    done = revleak("demo", "--headless", "--out", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Every incident is resolved." in done.stdout
    with sqlite3.connect(tmp_path / "revleak.db") as db:
        incidents = db.execute("SELECT slo, status, open FROM incidents").fetchall()
        runs = db.execute("SELECT pack_id, status FROM fixpack_runs").fetchall()
    assert incidents
    assert all(status == "RESOLVED" and not is_open for _, status, is_open in incidents)
    assert ("rapid-response", "VERIFIED") in runs
    assert "VERIFIED" in done.stdout
    assert "RESOLVED" in done.stdout
    messages = [orjson.loads(line) for line in (tmp_path / "slack.jsonl").read_bytes().splitlines()]
    assert any("lead_response" in message["text"] for message in messages)


def test_the_stack_serves_the_war_room_while_the_story_runs(tmp_path: Path) -> None:
    stack = start_demo(tmp_path, port=0, speed=600.0)
    try:
        assert httpx.get(stack.url + "/", timeout=10).status_code == 401  # the sign-in page
        assert stack.war_room.startswith(stack.url + "/#token=")
        with stack.client() as client:
            deadline = time.monotonic() + 120
            incidents: list[dict[str, object]] = []
            while time.monotonic() < deadline and not incidents:
                incidents = client.get("/v1/incidents").json()
                time.sleep(0.5)
            assert incidents, "the story opened no incident within two minutes"
            assert "revleak war room" in client.get("/").text
            viewer = stack.client(stack.viewer_token)
            assert viewer.post("/v1/runs/RUN-1/approve").status_code == 403
            viewer.close()
    finally:
        stack.stop()
    assert stack.flow.error is None
