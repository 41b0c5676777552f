"""The war room in Chromium during the demo story: the story pages, the approver clicks
Approve & Apply, the embedded CRM's write-backs reach the flow, the run is verified and the
incident resolves. With REVLEAK_SCREENSHOTS=1 the screenshot is kept as docs/warroom.png."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from test_warroom_browser import browser, click, statuses, text_of

from revleak.cli.demo_stack import start_demo

pytestmark = [pytest.mark.slow, pytest.mark.services]

__all__ = ["browser"]
DOCS = Path(__file__).parents[2] / "docs"
STORY_WAIT_S = 180.0


def test_approving_in_the_war_room_fixes_the_story_incident(
    tmp_path: Path, browser: WebDriver
) -> None:
    stack = start_demo(tmp_path, port=0, speed=120.0, fixed_speed=900.0)
    try:
        incident = wait_for_page(stack)
        browser.get(f"{stack.url}/?incident={incident}#token={stack.approver_token}")
        wait = WebDriverWait(
            browser, STORY_WAIT_S, ignored_exceptions=[StaleElementReferenceException]
        )
        wait.until(lambda driver: text_of(driver, "#approve-apply") == "Approve & Apply")
        assert "lead_response" in (text_of(browser, "#incident-heading") or "")
        wait.until(click("approve-apply"))
        wait.until(lambda driver: has(driver, "APPLIED"))
        wait.until(lambda driver: has(driver, "VERIFIED") and has(driver, "RESOLVED"))
        shown = [row.split("|")[0] for row in statuses(browser)]
        assert shown.index("VERIFIED") < shown.index("RESOLVED")
        assert stack.slack.messages, "the fix pack's Slack notice was not sent"
        screenshots = DOCS if os.environ.get("REVLEAK_SCREENSHOTS") == "1" else tmp_path
        assert browser.save_screenshot(str(screenshots / "warroom.png"))
    finally:
        stack.stop()
    assert stack.flow.error is None


def has(driver: WebDriver, status: str) -> bool:
    return any(row.startswith(f"{status}|") for row in statuses(driver))


def wait_for_page(stack: object) -> str:
    """The story's lead_response incident, once a page-severity alert of it fires."""
    deadline = time.monotonic() + STORY_WAIT_S
    with stack.client() as client:  # type: ignore[attr-defined]
        while time.monotonic() < deadline:
            for incident in client.get("/v1/incidents", params={"open": True}).json():
                if incident["slo"] == "lead_response" and incident["severity"] == "page":
                    return str(incident["id"])
            time.sleep(0.5)
    raise AssertionError("the story's lead_response page did not fire")
