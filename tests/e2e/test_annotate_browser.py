"""The annotation page in Debian's Chromium through Playwright: two annotators (k = 2) label the same
sample with the keyboard only, the second never sees the first's label; a reload mid-label restores
the draft; a sample with an <img onerror> in its text runs nothing; no console errors (a CSP
violation would be one)."""

from __future__ import annotations

import time

import pytest
from django.db import connections

from annotator.models import Assignment, Label, Membership, Sample
from tests.conftest import CHROMIUM, DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
EVIL = "<img src=x onerror=alert(1)>"


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


def _open(browser, live_server, username: str):
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


def _eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _wait_js(page, expression: str, timeout=10.0) -> None:
    """Poll an expression from here: wait_for_function evaluates strings with eval, which the CSP forbids."""
    assert _eventually(lambda: page.evaluate(expression), timeout), expression


def _focused_field(page) -> str | None:
    return page.evaluate("document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.field || null : null")


def _on(page, assignment: Assignment) -> None:
    """The assignment is the one on screen, and the address says so (a reload shows it again)."""
    page.wait_for_selector(f"#annotate-current #ws-{assignment.pk}")
    _wait_js(page, f"location.pathname.endsWith('/annotate/{assignment.pk}/')")


def _assert_clean(page) -> None:
    assert page.dialogs == []
    assert page.page_errors == []
    assert page.console_errors == []


def test_two_annotators_label_blind_with_the_keyboard(browser, live_server):
    ann1, ann2 = UserFactory(username="ann1"), UserFactory(username="ann2")
    dataset = DatasetFactory(name="Keyboard set", slug="kb", guidelines="Judge **facts** only.")
    for user in (ann1, ann2):
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    evil = SampleFactory(dataset=dataset, external_id="evil", messages=[
        {"role": "user", "content": f"Describe {EVIL} please"},
        {"role": "assistant", "content": f"It is an image tag: {EVIL}\n\n```python\nprint('hi')\n```"},
    ])
    second = SampleFactory(dataset=dataset, external_id="math", messages=[
        {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "5"},
    ])
    base = f"{live_server.url}/d/kb/annotate/"

    # --- the first annotator: keyboard only --------------------------------------------------------
    p1 = _open(browser, live_server, "ann1")
    p1.goto(base)
    a1 = Assignment.objects.get(annotator=ann1, sample=evil)
    _on(p1, a1)
    ws1 = f"#ws-{a1.pk}"
    assert p1.locator(".conversation img, .conversation script").count() == 0
    assert EVIL in p1.inner_text(f"{ws1} .turn.answer") and EVIL in p1.inner_text(f"{ws1} .turn.user")
    assert p1.locator(f"{ws1} .turn.answer pre code").count() == 1
    p1.wait_for_selector("#annotate-next .workspace", state="attached")  # the next sample, preloaded
    a1_next = Assignment.objects.get(annotator=ann1, sample=second)

    assert _focused_field(p1) == "accuracy"
    for key in ("4", "Tab", "5", "Tab", "3", "Tab", "2"):
        p1.keyboard.press(key)
    assert _focused_field(p1) == "difficulty"
    p1.keyboard.press("Shift+Tab")
    assert _focused_field(p1) == "conciseness"
    p1.keyboard.press("f")
    p1.keyboard.press("e")
    assert p1.evaluate("document.activeElement.name") == "corrected_answer"
    p1.keyboard.press("Control+End")
    p1.keyboard.type("\nFixed by ann1: a s f r 5")  # letters and digits are text here, not shortcuts
    p1.wait_for_selector(f"{ws1} [data-diff] ins")
    assert "Fixed by ann1" in p1.inner_text(f"{ws1} [data-diff] ins")
    assert p1.is_checked(f"{ws1} input[name=verdict][value=needs_fix]")
    assert p1.is_checked(f"{ws1} input[name=accuracy][value='4']")
    p1.keyboard.press("Control+Enter")  # from inside the editor

    _on(p1, a1_next)  # swapped in at once, the submit goes in the background
    assert _eventually(lambda: Label.objects.filter(annotator=ann1).exists())
    label = Label.objects.get(annotator=ann1)
    assert (label.accuracy, label.completeness, label.conciseness, label.difficulty, label.verdict) == (4, 5, 3, "medium", "needs_fix")
    assert label.corrected_answer.endswith("\nFixed by ann1: a s f r 5") and label.corrected_answer.startswith("It is an image tag:")
    assert label.time_spent_s > 0
    _wait_js(p1, "document.querySelector('[data-progress=total]').textContent.trim() === '1'")

    # --- a reload mid-label restores the draft -----------------------------------------------------
    ws2 = f"#ws-{a1_next.pk}"
    assert _focused_field(p1) == "accuracy"
    for key in ("2", "Tab", "3", "r", "e"):
        p1.keyboard.press(key)
    p1.keyboard.type(" (unsure)")
    p1.keyboard.press("Escape")  # leaves the editor, back on the scales
    assert _focused_field(p1) == "completeness"
    p1.reload()  # before the server autosave: this browser's copy has it
    _on(p1, a1_next)
    assert p1.is_checked(f"{ws2} input[name=accuracy][value='2']")
    assert p1.is_checked(f"{ws2} input[name=completeness][value='3']")
    assert p1.is_checked(f"{ws2} input[name=verdict][value=reject]")
    assert p1.input_value(f"{ws2} textarea[name=corrected_answer]") == "5 (unsure)"
    assert _eventually(lambda: Assignment.objects.get(pk=a1_next.pk).draft.get("accuracy") == "2")  # and the server's
    _assert_clean(p1)

    # --- the second annotator never sees the first one's label --------------------------------------
    p2 = _open(browser, live_server, "ann2")
    p2.goto(base)
    a2 = Assignment.objects.get(annotator=ann2, sample=evil)
    _on(p2, a2)
    ws3 = f"#ws-{a2.pk}"
    assert "Fixed by ann1" not in p2.content()
    assert p2.locator(f"{ws3} input:checked").count() == 0
    assert p2.input_value(f"{ws3} textarea[name=corrected_answer]") == evil.answer
    p2.wait_for_selector("#annotate-next .workspace", state="attached")
    for key in ("5", "Tab", "5", "Tab", "4", "Tab", "1", "a"):
        p2.keyboard.press(key)
    p2.keyboard.press("Control+Enter")
    a2_next = Assignment.objects.get(annotator=ann2, sample=second)
    _on(p2, a2_next)
    assert _eventually(lambda: Label.objects.filter(annotator=ann2).exists())
    label2 = Label.objects.get(annotator=ann2)
    assert (label2.accuracy, label2.completeness, label2.conciseness, label2.difficulty, label2.verdict) == (5, 5, 4, "easy", "accept")
    assert label2.corrected_answer == ""
    evil.refresh_from_db()
    assert (evil.label_count, evil.status) == (2, Sample.Status.IN_REVIEW)

    # `?` lists the shortcuts, Escape closes the list; `s` skips with a reason, then nothing is left
    p2.keyboard.press("?")
    assert p2.is_visible("#annotate-shortcuts")
    p2.keyboard.press("Escape")
    assert not p2.is_visible("#annotate-shortcuts")
    p2.keyboard.press("s")
    assert p2.evaluate("document.activeElement.name") == "reason_text"
    p2.keyboard.type("not my field")
    with p2.expect_navigation():
        p2.keyboard.press("Enter")
    p2.wait_for_selector("#annotate-done")
    a2_next.refresh_from_db()
    assert (a2_next.status, a2_next.skip_reason) == (Assignment.Status.SKIPPED, "not my field")

    p2.goto(f"{live_server.url}/d/kb/my-labels/")
    assert "Fixed by ann1" not in p2.content() and p2.locator("table.my-labels tbody tr").count() == 1
    _assert_clean(p2)
    assert Label.objects.count() == 2
