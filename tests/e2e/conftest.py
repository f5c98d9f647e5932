"""What every browser test shares: Debian's Chromium through Playwright, a logged-in page that records
dialogs and console errors (a CSP violation is one), and polling helpers that need no eval."""

from __future__ import annotations

import time

import pytest
from django.db import connections

from tests.conftest import CHROMIUM

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
        # ORM calls made while Playwright's loop runs get their own connection; close it so the
        # test database can be dropped.
        connections.close_all()


def open_page(browser, live_server, username: str):
    """A fresh browser context (own cookies and localStorage), logged in."""
    page = browser.new_context(locale="en-US").new_page()
    page.dialogs, page.console_errors, page.page_errors = [], [], []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.page_errors.append(str(e)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def wait_js(page, expression: str, timeout=10.0) -> None:
    """Poll an expression from here: wait_for_function evaluates strings with eval, which the CSP forbids."""
    assert eventually(lambda: page.evaluate(expression), timeout), expression


def assert_clean(page) -> None:
    assert page.dialogs == []
    assert page.page_errors == []
    assert page.console_errors == []
