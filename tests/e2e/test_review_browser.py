"""The review desk in Debian's Chromium through Playwright: a reviewer opens the conflict queue and
works through two items with the keyboard only (approves the first; starts the second from an
annotator's correction, edits it after pressing e, writes a rationale, Ctrl+Enter), the next item
loads in place, and the database holds the decisions and the revision. A second reviewer deciding
a stale page sees the first decision and keeps their text. No console errors (a CSP violation would
be one)."""

from __future__ import annotations

import pytest

from annotator import services as annotator_services
from annotator.models import Membership, Sample, SampleRevision
from reviews import services
from reviews.models import ReviewDecision, ReviewItem
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory
from tests.e2e.conftest import assert_clean, eventually, open_page, wait_js

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EVIL = "<img src=x onerror=alert(1)>"


def _values(**over) -> dict:
    values = {"accuracy": 4, "completeness": 4, "conciseness": 4, "difficulty": "easy", "verdict": "accept",
              "error_tags": [], "corrected_answer": "", "comment": ""}
    values.update(over)
    return values


@pytest.fixture
def desk(db):
    """Two open items: "capital" (verdicts split, worst) and "sum" (both corrected the answer)."""
    dataset = DatasetFactory(name="Review set", slug="rv")
    users = {}
    for name, role in (("olga", Membership.Role.OWNER), ("rita", Membership.Role.REVIEWER), ("rob", Membership.Role.REVIEWER),
                       ("ann1", Membership.Role.ANNOTATOR), ("ann2", Membership.Role.ANNOTATOR)):
        users[name] = UserFactory(username=name)
        MembershipFactory(user=users[name], dataset=dataset, role=role)
    services.review_settings_set(actor=None, dataset=dataset, values={"auto_approve": False})
    capital = SampleFactory(dataset=dataset, external_id="capital", messages=[
        {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": f"Paris. {EVIL}"}])
    total = SampleFactory(dataset=dataset, external_id="sum", messages=[
        {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "5"}])
    labels = {
        "capital": (_values(comment=f"looks fine {EVIL}"), _values(verdict="reject", accuracy=2, error_tags=["factual_error"])),
        "sum": (_values(verdict="needs_fix", accuracy=1, corrected_answer="4"),
                _values(verdict="needs_fix", accuracy=1, corrected_answer="Four")),
    }
    for index, name in enumerate(("ann1", "ann2")):
        while (assignment := annotator_services.assignment_next(user=users[name], dataset=dataset)) is not None:
            annotator_services.assignment_submit(user=users[name], dataset=dataset, assignment_id=assignment.pk,
                                                 values=labels[assignment.sample.external_id][index])
    assert list(ReviewItem.objects.filter(is_open=True).order_by("-severity").values_list("sample__external_id", flat=True)) == ["capital", "sum"]
    return {"dataset": dataset, "users": users, "capital": capital, "sum": total}


def _focused(page) -> str:
    return page.evaluate("document.activeElement ? (document.activeElement.name || document.activeElement.id || document.activeElement.tagName) : ''")


def test_a_reviewer_works_through_the_queue_with_the_keyboard(browser, live_server, desk):
    capital, total, rita = desk["capital"], desk["sum"], desk["users"]["rita"]
    page = open_page(browser, live_server, "rita")
    page.goto(f"{live_server.url}/d/rv/review/")
    queue = page.inner_text("#queue-table")
    assert "verdicts differ: accept 1, reject 1" in queue and "Capital of France?" in queue

    # the queue: j highlights the first row, Enter opens it
    page.keyboard.press("j")
    wait_js(page, f"document.activeElement.closest('tr') && document.activeElement.closest('tr').dataset.sample === '{capital.pk}'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    wait_js(page, f"location.pathname === '/d/rv/review/{capital.pk}/'")
    headers = page.inner_text(".labels-compare thead")
    assert "ann1" in headers and "ann2" in headers
    assert page.locator(".conversation img, .labels-compare img").count() == 0
    assert EVIL in page.inner_text(".conversation") and EVIL in page.inner_text(".labels-compare")

    # `?` shows the shortcuts, Escape closes them
    page.keyboard.press("?")
    assert page.is_visible("#review-shortcuts")
    page.keyboard.press("Escape")
    assert not page.is_visible("#review-shortcuts")

    # the first item: a, Ctrl+Enter; the next item loads in place
    page.keyboard.press("a")
    assert page.is_checked("#decision-form input[name=decision][value=approve]")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f"#review-workspace[data-sample='{total.pk}']")
    wait_js(page, f"location.pathname === '/d/rv/review/{total.pk}/'")
    assert "Approved sample capital." in page.inner_text("[data-done]")
    assert eventually(lambda: ReviewDecision.objects.filter(sample=capital).exists())
    first = ReviewDecision.objects.get(sample=capital)
    assert (first.reviewer_id, first.decision, first.revision_id) == (rita.pk, "approve", None)
    assert Sample.objects.get(pk=capital.pk).status == Sample.Status.APPROVED

    # the second: 1 copies ann1's correction, e opens the answer, type, Tab to the rationale, Ctrl+Enter
    page.keyboard.press("1")
    assert page.input_value("#decision-form textarea[name=answer]") == "4"
    assert page.is_checked("#decision-form input[name=decision][value=approve_edit]")
    page.keyboard.press("e")
    assert _focused(page) == "answer"
    page.keyboard.type(" (two plus two: a r n p 5)")  # letters and digits are text here, not shortcuts
    wait_js(page, "Array.from(document.querySelectorAll('#decision-form [data-edit-diff] ins')).map((e) => e.textContent).join('')"
                   ".includes('two plus two: a r n p')")
    page.keyboard.press("Tab")
    assert _focused(page) == "rationale"
    page.keyboard.type("ann1 had the number; spelled out why.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")  # the last item: back to the queue
    wait_js(page, "location.pathname === '/d/rv/review/'")
    assert "The queue is empty." in page.inner_text(".messages")
    assert "Nothing waits for a reviewer" in page.inner_text("#queue-table")

    second = ReviewDecision.objects.get(sample=total)
    revision = SampleRevision.objects.get(sample=total)
    assert (second.reviewer_id, second.decision, second.revision_id, second.rationale) == (
        rita.pk, "approve_edit", revision.pk, "ann1 had the number; spelled out why.")
    assert (revision.status, revision.author_id) == (SampleRevision.Status.APPROVED, rita.pk)
    assert revision.messages[-1] == {"role": "assistant", "content": "4 (two plus two: a r n p 5)"}
    assert Sample.objects.get(pk=total.pk).status == Sample.Status.APPROVED
    assert ReviewDecision.objects.count() == 2 and not ReviewItem.objects.filter(is_open=True).exists()
    assert_clean(page)


def test_a_second_reviewer_on_a_stale_page_sees_the_first_decision_and_keeps_their_text(browser, live_server, desk):
    capital, rita = desk["capital"], desk["users"]["rita"]
    page = open_page(browser, live_server, "rob")
    page.goto(f"{live_server.url}/d/rv/review/{capital.pk}/")
    page.wait_for_selector(f"#review-workspace[data-sample='{capital.pk}']")
    # meanwhile rita rejects it
    services.review_decide(user=rita, dataset=desk["dataset"], sample_id=capital.pk, decision="reject",
                           expected_version=Sample.objects.get(pk=capital.pk).version, rationale="Not Paris-only.")

    page.keyboard.press("r")
    assert _focused(page) == "rationale"
    page.keyboard.type("I think it is fine.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#decision-panel[data-conflict]")
    assert "rita already decided this sample (Reject)" in page.inner_text("[data-conflict-box]")
    assert page.inner_text("[data-conflict-rationale]") == "Not Paris-only."
    assert page.input_value("#decision-form textarea[name=rationale]") == "I think it is fine."
    assert ReviewDecision.objects.filter(sample=capital).count() == 1

    # the reload shows the current state and brings the typed text back
    assert _focused(page) in ("A", "")
    with page.expect_navigation():
        page.click("[data-action=reload]")
    page.wait_for_selector(".decision-list")
    assert "Not Paris-only." in page.inner_text(".decision-list")
    assert page.input_value("#decision-form textarea[name=rationale]") == "I think it is fine."
    assert page.is_checked("#decision-form input[name=decision][value=reject]")
    assert ReviewDecision.objects.filter(sample=capital).count() == 1
    # Chromium logs the 409 answer itself as a console error; nothing else may be there
    assert page.console_errors == ["Failed to load resource: the server responded with a status of 409 (Conflict)"]
    assert page.dialogs == [] and page.page_errors == []
