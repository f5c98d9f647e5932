"""The annotation page in Debian's Chromium through Playwright: two annotators (k = 2) label the same
sample with the keyboard only, the second never sees the first's label; a reload mid-label restores
the draft; a sample with an <img onerror> in its text runs nothing; no console errors (a CSP
violation would be one)."""

from __future__ import annotations

import pytest

from annotator.models import Assignment, Label, Membership, Sample
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory
from tests.e2e.conftest import assert_clean, eventually, open_page, wait_js

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EVIL = "<img src=x onerror=alert(1)>"


def _focused_field(page) -> str | None:
    return page.evaluate("document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.field || null : null")


def _on(page, assignment: Assignment) -> None:
    """The assignment is the one on screen, and the address says so (a reload shows it again)."""
    page.wait_for_selector(f"#annotate-current #ws-{assignment.pk}")
    wait_js(page, f"location.pathname.endsWith('/annotate/{assignment.pk}/')")


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
    p1 = open_page(browser, live_server, "ann1")
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
    assert eventually(lambda: Label.objects.filter(annotator=ann1).exists())
    label = Label.objects.get(annotator=ann1)
    assert (label.accuracy, label.completeness, label.conciseness, label.difficulty, label.verdict) == (4, 5, 3, "medium", "needs_fix")
    assert label.corrected_answer.endswith("\nFixed by ann1: a s f r 5") and label.corrected_answer.startswith("It is an image tag:")
    assert label.time_spent_s > 0
    wait_js(p1, "document.querySelector('[data-progress=total]').textContent.trim() === '1'")

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
    assert eventually(lambda: Assignment.objects.get(pk=a1_next.pk).draft.get("accuracy") == "2")  # and the server's
    assert_clean(p1)

    # --- the second annotator never sees the first one's label --------------------------------------
    p2 = open_page(browser, live_server, "ann2")
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
    assert eventually(lambda: Label.objects.filter(annotator=ann2).exists())
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
    assert_clean(p2)
    assert Label.objects.count() == 2
