"""The war room in Debian's Chromium (headless, through selenium) against the app served by
uvicorn on a loopback port: sign-in by URL fragment, live updates over server-sent events,
Approve & Apply, verification and resolution; and a screenshot."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from apikit import APPROVER, OPERATOR, TOKENS, Clock, LiveState, SlackServer, notification
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait
from test_warroom import page_alert, recover, seed_leaks

from revleak.api.app import create_app
from revleak.api.config import ApiSettings
from revleak.api.wiring import build_remediation
from revleak.remediation.crm_sim import EmbeddedCrm
from revleak.remediation.service import Remediation

pytestmark = [pytest.mark.slow, pytest.mark.services]

WAIT_S = 20.0
TIMELINE = ["DETECTED", "FIXPACK_PROPOSED", "APPROVED", "APPLIED", "VERIFIED", "RESOLVED"]


@dataclass
class Served:
    url: str
    live: LiveState
    crm: EmbeddedCrm
    slack: SlackServer

    def notify(self, *alerts: dict[str, Any]) -> None:
        answer = httpx.post(
            f"{self.url}/v1/alertmanager/webhook",
            json=notification(*alerts),
            headers={"Authorization": OPERATOR},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text


@contextmanager
def served_war_room(tmp_path: Path) -> Iterator[Served]:
    """The app with its background ticker, as ``revleak api`` runs it, on a free port."""
    slack = SlackServer()
    settings = ApiSettings(
        database_url=f"sqlite:///{tmp_path / 'revleak.db'}",
        api_tokens=TOKENS,
        slack_webhooks={"*": slack.url},
        verify_window_s=60,
        verify_poll_s=0.5,
        verify_settle=1,
    )
    # A fixed clock keeps re-planned proposals identical, so none supersedes the one shown.
    live, clock = LiveState(), Clock()
    crm = EmbeddedCrm(lambda _raw: None, lambda: int(clock().timestamp() * 1000))

    def remediation(announce: Any) -> Remediation:
        return build_remediation(
            settings, announce=announce, live=live, records=crm, crm=crm, clock=clock
        )

    app = create_app(settings, remediation=remediation)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", live, crm, slack)
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        listener.close()
        slack.close()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--window-size=1280,800"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    # The window size includes the (emulated) browser frame; the page gets all of 1280×800.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield driver
    finally:
        driver.quit()


def statuses(driver: WebDriver) -> list[str]:
    """The timeline's statuses, read in one step: the panel may be swapped at any moment."""
    found: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('section.timeline tr[data-status]'),"
        " (row) => row.dataset.status + '|' + row.querySelector('.status').textContent);"
    )
    return found


def text_of(driver: WebDriver, selector: str) -> str | None:
    """The first match's text, read in one step (None: no match)."""
    found: str | None = driver.execute_script(
        "return document.querySelector(arguments[0])?.textContent.trim() ?? null;", selector
    )
    return found


def click(element_id: str) -> Any:
    """A wait condition that clicks the element, once it is not being swapped out."""

    def attempt(driver: WebDriver) -> bool:
        element = driver.find_element(By.ID, element_id)
        if not element.is_enabled():
            return False
        element.click()
        return True

    return attempt


def timeline_shows(*expected: str) -> Any:
    def check(driver: WebDriver) -> bool:
        return statuses(driver) == [f"{status}|{status}" for status in expected]

    return check


def test_the_war_room_follows_an_incident_from_page_to_resolution(
    tmp_path: Path, browser: WebDriver
) -> None:
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=[StaleElementReferenceException])
    with served_war_room(tmp_path) as served:
        token = APPROVER.removeprefix("Bearer ")
        browser.get(f"{served.url}/#token={token}")
        wait.until(ec.presence_of_element_located((By.ID, "panel")))
        assert browser.current_url == f"{served.url}/"  # the token left the address bar
        assert "All quiet" in (text_of(browser, "#panel") or "")
        wait.until(ec.text_to_be_present_in_element_attribute(
            (By.ID, "live-state"), "data-state", "live"))  # fmt: skip
        browser.execute_script("window.sameDocument = true;")

        seed_leaks(served.crm, served.live)
        served.notify(page_alert())
        wait.until(timeline_shows(*TIMELINE[:2]))
        wait.until(lambda driver: text_of(driver, "#approve-apply") == "Approve & Apply")
        assert browser.execute_script("return window.sameDocument === true;")
        assert text_of(browser, "#incident-heading") == "INC-1 · lead_response (crm)"
        assert text_of(browser, "pre.diff .diff-add") == "+owner: karl"

        wait.until(click("approve-apply"))
        wait.until(timeline_shows(*TIMELINE[:4]))
        wait.until(
            lambda driver: text_of(driver, "#action-status") == "RUN-1 approved and applied."
        )
        wait.until(lambda driver: text_of(driver, "#run-status") == "VERIFYING")
        assert text_of(browser, "#approve-apply") is None
        assert len(served.slack.bodies) == 1

        recover(served.live)
        served.notify(page_alert("resolved"))
        wait.until(timeline_shows(*TIMELINE))
        wait.until(lambda driver: text_of(driver, "#run-status") == "VERIFIED")
        assert browser.execute_script("return window.sameDocument === true;")

        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth;"
        ), "the page scrolls sideways at 1280×800"
        problems = [
            entry for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and "status of 401" not in entry["message"]
        ]  # fmt: skip
        assert problems == []
        shot = tmp_path / "warroom.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_signed_out_browser_signs_in_with_the_form(tmp_path: Path, browser: WebDriver) -> None:
    wait = WebDriverWait(browser, WAIT_S)
    with served_war_room(tmp_path) as served:
        browser.get(served.url)
        field = wait.until(ec.element_to_be_clickable((By.ID, "token")))
        field.send_keys("not-a-token")
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "login-error"), "Sign-in refused"))
        assert not browser.find_elements(By.ID, "panel")
        field.clear()
        field.send_keys(APPROVER.removeprefix("Bearer "))
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(ec.presence_of_element_located((By.ID, "panel")))
        assert browser.find_element(By.ID, "role").text == "approver"
