"""The devserver's event viewer, in a real headless Chromium (Debian's chromium package)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from conftest import API_KEY
from posthog_otel import PostHogClient

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

if not (CHROMEDRIVER and CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(
            "CI must run the browser test: install Debian's chromium and chromium-driver"
        )
    pytest.skip(
        "needs chromium and chromedriver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402 - only once a browser is known to exist
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def rows(browser) -> list[tuple[str, str]]:
    """(event, distinct_id) per row, read in one go: the page may re-render between reads."""
    found = browser.execute_script(
        "return [...document.querySelectorAll('#events tr.event')]"
        ".map(r => [r.dataset.event, r.children[2].textContent])"
    )
    return [tuple(row) for row in found]


def text_of(browser, selector: str) -> str:
    return browser.execute_script(
        "const el = document.querySelector(arguments[0]); return el ? el.textContent : ''", selector
    )


def test_the_viewer_shows_new_events_filters_and_expands(server, browser):
    with PostHogClient(API_KEY, server.url) as client:
        client.capture("signed_up", "alice", {"plan": "pro", "$feature/new-checkout": "test"})
        client.capture("page_viewed", "bob", {"path": "/pricing"})
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 15, poll_frequency=0.1)
        wait.until(lambda b: len(rows(b)) == 2)
        assert rows(browser) == [("page_viewed", "bob"), ("signed_up", "alice")]  # newest first
        assert text_of(browser, ".flag") == 'new-checkout: "test"'

        client.capture(
            "checkout_completed", "alice", {"total": 59.9}
        )  # arrives after the page loaded
        wait.until(lambda b: len(rows(b)) == 3)
        assert rows(browser)[0] == ("checkout_completed", "alice")

    browser.find_element(By.ID, "filter-distinct-id").send_keys("ali")
    wait.until(lambda b: len(rows(b)) == 2)
    assert {person for _, person in rows(browser)} == {"alice"}
    browser.find_element(By.ID, "filter-event").send_keys("signed")
    wait.until(lambda b: rows(b) == [("signed_up", "alice")])

    browser.find_element(By.CSS_SELECTOR, "#events tr.event").click()
    wait.until(lambda b: text_of(b, "#events tr.details pre"))
    assert '"plan": "pro"' in text_of(browser, "#events tr.details pre")
    assert "1 shown" in text_of(browser, "#status")
