"""The review desk's pages: the conflict queue (worst first, reasons in words, filter, pagination),
the adjudication page (labels side by side with names, diffs, metrics, earlier decisions), decisions
through htmx and plain posts (approve, reject with a rationale, approve with an edited answer, a stale
version answering 409 with nothing written), the review rule, and the audit trail on the sample page.
Only owners and reviewers get in: annotators of the same dataset and outsiders get 404 everywhere."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator import services as annotator_services
from annotator.models import Membership, Sample, SampleRevision
from reviews import services
from reviews.models import ReviewDecision, ReviewItem, StatusChange
from reviews.views.desk import reason_text
from scoring.models import SampleFlag
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
EVIL = "<script>alert(1)</script>"

# Rubric values per sample: (ann1's, ann2's). Worst first: split (severity 9), fix (3), ok (0).
LABELS = {
    "split": ({"accuracy": 4, "verdict": "accept", "comment": f"fine {EVIL}"}, {"accuracy": 2, "verdict": "reject", "error_tags": ["factual_error"]}),
    "fix": ({"verdict": "needs_fix", "corrected_answer": "Answer fix by ann1."}, {"verdict": "needs_fix", "corrected_answer": "Answer fixed by ann2!"}),
    "ok": ({"verdict": "accept"}, {"verdict": "accept"}),
}


def _values(**over) -> dict:
    values = {"accuracy": 4, "completeness": 4, "conciseness": 4, "difficulty": "medium", "verdict": "accept",
              "error_tags": [], "corrected_answer": "", "comment": ""}
    values.update(over)
    return values


def _member(dataset, name: str, role: str):
    user = UserFactory(username=name)
    MembershipFactory(user=user, dataset=dataset, role=role)
    return user


def _label_everything(user, dataset, index: int) -> None:
    while (assignment := annotator_services.assignment_next(user=user, dataset=dataset)) is not None:
        values = _values(**LABELS[assignment.sample.external_id][index])
        annotator_services.assignment_submit(user=user, dataset=dataset, assignment_id=assignment.pk, values=values)


@pytest.fixture
def ds(dataset):
    services.review_settings_set(actor=None, dataset=dataset, values={"auto_approve": False})
    for ext in LABELS:
        SampleFactory(dataset=dataset, external_id=ext, messages=[
            {"role": "user", "content": f"Question {ext}?"}, {"role": "assistant", "content": f"Answer {ext}."},
        ])
    return dataset


@pytest.fixture
def ann1(ds):
    return _member(ds, "ann1", Membership.Role.ANNOTATOR)


@pytest.fixture
def ann2(ds):
    return _member(ds, "ann2", Membership.Role.ANNOTATOR)


@pytest.fixture
def reviewer(ds):
    return _member(ds, "rita", Membership.Role.REVIEWER)


@pytest.fixture
def labelled(ds, ann1, ann2):
    _label_everything(ann1, ds, 0)
    _label_everything(ann2, ds, 1)
    return {s.external_id: s for s in Sample.objects.filter(dataset=ds)}


@pytest.fixture
def rc(client, reviewer):
    client.force_login(reviewer)
    return client


def _url(name, ds, *args):
    return reverse(f"reviews:{name}", args=[ds.slug, *args])


def _rows(response) -> list[str]:
    return [r["sample"].external_id for r in response.context["rows"]]


def _counts() -> tuple[int, ...]:
    return (ReviewDecision.objects.count(), SampleRevision.objects.count(), StatusChange.objects.count(),
            ReviewItem.objects.filter(is_open=True).count())


def _post(client, ds, sample, decision, *, htmx=False, **data):
    data = {"decision": decision, "version": sample.version, **data}
    return client.post(_url("decide", ds, sample.pk), data, **(HX if htmx else {}))


# ---------------------------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------------------------

def test_reasons_read_as_words():
    assert reason_text({"code": "verdict_split", "verdicts": {"accept": 1, "reject": 1}}) == "verdicts differ: accept 1, reject 1"
    assert reason_text({"code": "scale_spread", "scale": "accuracy", "spread": 3}) == "accuracy spreads by 3"
    assert reason_text({"code": "flagged", "rules": ["empty_answer", "near_duplicate"]}) == "flagged by metrics: empty_answer, near_duplicate"
    assert reason_text({"code": "rejected", "n": 2}) == "rejected by 2 annotators"
    assert reason_text({"code": "corrected", "n": 1}) == "answer corrected by 1 annotator"
    assert reason_text({"code": "not_accepted", "verdict": "needs_fix"}) == "nobody accepted it: every annotator said needs fix"
    assert reason_text({"code": "manual"}) == "waiting for a manual decision (the auto-approve rule does not apply)"
    assert reason_text({"code": "something_new"}) == "something_new"


def test_queue_lists_open_items_worst_first_with_their_reasons(rc, ds, labelled):
    response = rc.get(_url("queue", ds))

    assert response.status_code == 200
    assert _rows(response) == ["split", "fix", "ok"]
    assert [r["item"].severity for r in response.context["rows"]] == [9, 3, 0]
    assert [r["snippet"] for r in response.context["rows"]] == ["Question split?", "Question fix?", "Question ok?"]
    assert response.context["rows"][0]["reasons"] == [
        "verdicts differ: accept 1, reject 1", "rejected by 1 annotator", "accuracy spreads by 2"]
    assert response.context["rows"][1]["reasons"] == [
        "answer corrected by 2 annotators", "nobody accepted it: every annotator said needs fix"]
    body = response.content.decode()
    assert "verdicts differ: accept 1, reject 1" in body
    start = re.search(r'id="start-reviewing" href="([^"]+)"', body).group(1)
    assert start == _url("adjudicate", ds, labelled["split"].pk)
    assert response.context["total"] == 3
    assert {f["code"]: f["count"] for f in response.context["filters"]} == {
        "verdict_split": 1, "rejected": 1, "scale_spread": 1, "corrected": 1, "not_accepted": 1, "manual": 1}


def test_queue_filters_by_reason_and_ignores_unknown_reasons(rc, ds, labelled):
    response = rc.get(_url("queue", ds), {"reason": "corrected"})
    assert _rows(response) == ["fix"]
    assert response.context["total"] == 3  # the "all" chip still counts everything
    assert f'href="{_url("adjudicate", ds, labelled["fix"].pk)}?reason=corrected"' in response.content.decode()

    assert _rows(rc.get(_url("queue", ds), {"reason": "manual"})) == ["ok"]
    assert _rows(rc.get(_url("queue", ds), {"reason": "nonsense"})) == ["split", "fix", "ok"]

    partial = rc.get(_url("queue", ds), {"reason": "verdict_split"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-table")
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="queue-table">') and "<html" not in body
    assert re.findall(r'data-open>([^<]+)</a>', body) == ["split"]


def test_queue_paginates_with_a_bounded_number_of_queries(rc, ds, labelled, django_assert_max_num_queries):
    with django_assert_max_num_queries(9) as small:
        rc.get(_url("queue", ds))
    now = timezone.now()
    for n in range(60):
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Bulk {n}?"}, {"role": "assistant", "content": "Yes."}]
        sample = SampleFactory(dataset=ds, external_id=f"bulk-{n:02d}", status=Sample.Status.IN_REVIEW, messages=messages)
        ReviewItem.objects.create(dataset=ds, sample=sample, severity=1, reasons=[{"code": "flagged", "rules": ["empty_answer"]}],
                                  labels_n=2, routed_at=now + timedelta(seconds=n))
    with django_assert_max_num_queries(9) as big:
        rc.get(_url("queue", ds))
    assert len(big.captured_queries) == len(small.captured_queries)
    with django_assert_max_num_queries(9):
        response = rc.get(_url("queue", ds), {"page": 2})
    assert response.context["page"].paginator.count == 63
    # page 1: split (9), fix (3), bulk-00..bulk-47 (1); page 2: bulk-48..59 then ok (0)
    assert _rows(response) == [f"bulk-{n:02d}" for n in range(48, 60)] + ["ok"]
    assert response.context["rows"][0]["snippet"] == "Bulk 48?"  # the user's turn, not the system prompt


def test_dataset_page_links_the_queue_with_its_open_count(client, ds, labelled, reviewer, ann1):
    client.force_login(reviewer)
    body = client.get(reverse("annotator:dataset_detail", args=[ds.slug])).content.decode()
    assert f'href="{_url("queue", ds)}"' in body and f'hx-get="{_url("queue_link", ds)}"' in body
    link = client.get(_url("queue_link", ds)).content.decode()
    assert re.search(r"Conflict queue <b data-open-count>3</b>", link)

    client.force_login(ann1)
    body = client.get(reverse("annotator:dataset_detail", args=[ds.slug])).content.decode()
    assert _url("queue", ds) not in body and "Conflict queue" not in body


# ---------------------------------------------------------------------------------------------
# Access: owners and reviewers only
# ---------------------------------------------------------------------------------------------

def test_annotators_and_outsiders_get_404_on_every_review_page(client, ds, labelled, ann1, outsider):
    sample = labelled["fix"]
    before = _counts()
    gets = [_url("queue", ds), _url("queue_link", ds), _url("review_rule", ds), _url("adjudicate", ds, sample.pk)]
    posts = [(_url("decide", ds, sample.pk), {"decision": "approve", "version": sample.version}),
             (_url("answer_diff", ds, sample.pk), {"answer": "x"}),
             (_url("review_rule", ds), {"auto_approve": "on", "max_spread": "1"})]
    for user in (ann1, outsider):
        client.force_login(user)
        for url in gets:
            assert client.get(url).status_code == 404, (user, url)
        for url, data in posts:
            assert client.post(url, data).status_code == 404, (user, url)
            assert client.post(url, data, **HX).status_code == 404, (user, url)
    assert _counts() == before
    assert Sample.objects.get(pk=sample.pk).status == Sample.Status.IN_REVIEW


def test_a_sample_of_another_dataset_is_404_for_a_reviewer(rc, ds, labelled):
    other = SampleFactory(external_id="elsewhere")
    assert rc.get(_url("adjudicate", ds, other.pk)).status_code == 404
    assert rc.post(_url("decide", ds, other.pk), {"decision": "approve", "version": 0}).status_code == 404
    assert not ReviewDecision.objects.exists()


def test_anonymous_users_are_sent_to_log_in(client, ds, labelled):
    response = client.get(_url("queue", ds))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# ---------------------------------------------------------------------------------------------
# The adjudication page
# ---------------------------------------------------------------------------------------------

def test_adjudication_shows_labels_side_by_side_with_annotator_names(rc, ds, labelled):
    sample = labelled["split"]
    response = rc.get(_url("adjudicate", ds, sample.pk))

    assert response.status_code == 200
    body = response.content.decode()
    assert [c["username"] for c in response.context["columns"]] == ["ann1", "ann2"]
    assert re.search(r'<kbd>1</kbd> <span data-annotator>ann1</span>.*<kbd>2</kbd> <span data-annotator>ann2</span>', body, re.S)
    rows = {r["key"]: r for r in response.context["criteria"]}
    assert rows["verdict"]["disagree"] and rows["accuracy"]["disagree"] and rows["accuracy"]["strong"]
    assert not rows["completeness"]["disagree"] and rows["error_tags"]["disagree"]
    assert [c["text"] for c in rows["verdict"]["cells"]] == ["Accept", "Reject"]
    assert re.search(r'class="criterion disagree strong" data-criterion="accuracy"', body)
    assert response.context["reasons"] == ["verdicts differ: accept 1, reject 1", "rejected by 1 annotator", "accuracy spreads by 2"]
    assert f'name="version" value="{sample.version}"' in body
    assert "Answer split." in body
    # user text is escaped, never marked safe
    assert EVIL not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert response.context["urls"]["next"] == _url("adjudicate", ds, labelled["fix"].pk)
    assert response.context["urls"]["prev"] == ""


def test_corrections_are_diffed_against_the_original_and_each_other(rc, ds, labelled):
    sample = labelled["fix"]
    response = rc.get(_url("adjudicate", ds, sample.pk))
    corrections = response.context["corrections"]
    assert [(c["n"], c["username"], c["answer"]) for c in corrections] == [
        (1, "ann1", "Answer fix by ann1."), (2, "ann2", "Answer fixed by ann2!")]
    assert str(corrections[0]["diff"].html) == "Answer fix<ins> by ann1</ins>."
    assert str(corrections[1]["diff"].html) == "Answer <del>fix.</del><ins>fixed by ann2!</ins>"
    assert "<del>fix</del><ins>fixed</ins>" in str(response.context["pairs"][0]["diff"].html)
    assert len(response.context["pairs"]) == 1
    body = response.content.decode()
    assert 'data-pair="1-2"' in body and 'data-copy="1"' in body and 'data-copy="2"' in body
    # the corrections travel to the keyboard script as data, not markup
    assert '"corrections": {"1": "Answer fix by ann1.", "2": "Answer fixed by ann2!"}' in body
    assert response.context["urls"]["prev"] == _url("adjudicate", ds, labelled["split"].pk)
    assert response.context["urls"]["next"] == _url("adjudicate", ds, labelled["ok"].pk)


def test_chinese_corrections_are_diffed_character_by_character(client, owner):
    zh = DatasetFactory(slug="zh")
    MembershipFactory(user=owner, dataset=zh, role=Membership.Role.OWNER)
    services.review_settings_set(actor=None, dataset=zh, values={"auto_approve": False})
    sample = SampleFactory(dataset=zh, external_id="zh-1", messages=[
        {"role": "user", "content": "法国的首都是哪里？"}, {"role": "assistant", "content": "法国的首都是里昂。"}])
    fixes = {"zh-a": "法国的首都是巴黎。", "zh-b": "法国首都是巴黎市。"}
    for name, fix in fixes.items():
        user = _member(zh, name, Membership.Role.ANNOTATOR)
        assignment = annotator_services.assignment_next(user=user, dataset=zh)
        annotator_services.assignment_submit(user=user, dataset=zh, assignment_id=assignment.pk,
                                             values=_values(verdict="needs_fix", corrected_answer=fix))
    client.force_login(owner)
    response = client.get(_url("adjudicate", zh, sample.pk))
    corrections = response.context["corrections"]
    assert str(corrections[0]["diff"].html) == "法国的首都是<del>里昂</del><ins>巴黎</ins>。"
    assert str(response.context["pairs"][0]["diff"].html) == "法国<del>的</del>首都是巴黎<ins>市</ins>。"


def test_adjudication_shows_metric_flags_and_earlier_decisions(rc, ds, labelled, owner):
    sample = labelled["ok"]
    SampleFlag.objects.create(sample=sample, dataset=ds, metric="completeness", rule="empty_answer", reason="answer is empty")
    services.review_decide(user=owner, dataset=ds, sample_id=sample.pk, decision="reject", expected_version=sample.version,
                           rationale="Too thin.")
    body = rc.get(_url("adjudicate", ds, sample.pk)).content.decode()
    assert "empty_answer" in body and "answer is empty" in body
    assert re.search(r"<td>olga</td>\s*<td>Reject</td><td>In review → Rejected</td>\s*<td>Too thin\.", body)
    assert "This sample is no longer in the queue" in body


def test_adjudication_page_queries_are_bounded(rc, ds, labelled, owner, django_assert_max_num_queries):
    with django_assert_max_num_queries(16) as one:
        assert rc.get(_url("adjudicate", ds, labelled["fix"].pk)).status_code == 200
    # earlier decisions, an approved revision and metric flags add no query per row
    services.review_decide(user=owner, dataset=ds, sample_id=labelled["fix"].pk,
                           decision="approve_edit", expected_version=labelled["fix"].version, rationale="r", answer="New answer.")
    for rule in ("empty_answer", "near_duplicate"):
        SampleFlag.objects.create(sample=labelled["fix"], dataset=ds, metric="m", rule=rule, reason=rule, other_sample=labelled["ok"])
    with django_assert_max_num_queries(16) as more:
        assert rc.get(_url("adjudicate", ds, labelled["fix"].pk)).status_code == 200
    assert len(more.captured_queries) == len(one.captured_queries)


# ---------------------------------------------------------------------------------------------
# Deciding
# ---------------------------------------------------------------------------------------------

def test_approve_without_javascript_redirects_to_the_next_item(rc, ds, labelled, reviewer):
    sample = labelled["split"]
    version = sample.version
    response = _post(rc, ds, sample, "approve")

    assert response.status_code == 302
    assert response["Location"] == _url("adjudicate", ds, labelled["fix"].pk)
    decision = ReviewDecision.objects.get()
    assert (decision.sample_id, decision.reviewer, decision.decision, decision.revision, decision.sample_version) == (
        sample.pk, reviewer, "approve", None, version)
    sample.refresh_from_db()
    assert (sample.status, sample.version) == (Sample.Status.APPROVED, version + 1)
    assert not ReviewItem.objects.get(sample=sample).is_open
    change = StatusChange.objects.filter(sample=sample).latest("id")
    assert (change.from_status, change.to_status, change.cause, change.actor) == ("in_review", "approved", "decision", reviewer)
    assert not SampleRevision.objects.exists()
    assert "Approved sample split." in rc.get(response["Location"]).content.decode()


def test_reject_needs_a_rationale(rc, ds, labelled):
    sample = labelled["split"]
    before = _counts()
    response = _post(rc, ds, sample, "reject", htmx=True, rationale="   ")

    assert response.status_code == 422
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="decision-panel" id="decision-panel"')
    assert re.search(r'data-error-for="rationale">say why: a rejection or an edit needs a rationale<', body)
    assert re.search(r'value="reject" checked', body)
    assert _counts() == before

    response = _post(rc, ds, sample, "reject", rationale="Wrong capital.")
    assert response.status_code == 302
    sample.refresh_from_db()
    assert sample.status == Sample.Status.REJECTED
    assert ReviewDecision.objects.get().rationale == "Wrong capital."


def test_no_decision_chosen_is_an_error_by_field(rc, ds, labelled):
    before = _counts()
    response = rc.post(_url("decide", ds, labelled["split"].pk), {"version": labelled["split"].version, "rationale": "hmm"})
    assert response.status_code == 422
    body = response.content.decode()
    assert "<html" in body  # without htmx: the whole page again
    assert re.search(r'data-error-for="decision">Choose approve, reject or approve with an edited answer\.<', body)
    assert ">hmm</textarea>" in body
    assert _counts() == before


def test_approve_with_an_edit_makes_an_approved_revision_and_loads_the_next_item(rc, ds, labelled, reviewer):
    sample = labelled["fix"]
    version = sample.version
    edited = "Answer fixed by the reviewer.\r\nSecond line."
    response = _post(rc, ds, sample, "approve_edit", htmx=True, answer=edited, rationale="Merged both fixes.")

    assert response.status_code == 200
    assert response["HX-Retarget"] == "#review-workspace" and response["HX-Reswap"] == "outerHTML"
    assert response["HX-Push-Url"] == _url("adjudicate", ds, labelled["ok"].pk)
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="review-ws workspace" id="review-workspace"')
    assert f'data-sample="{labelled["ok"].pk}"' in body
    assert "Approved sample fix with your edited answer." in body
    revision = SampleRevision.objects.get()
    assert (revision.sample_id, revision.author, revision.status, revision.reason) == (sample.pk, reviewer, "approved", "Merged both fixes.")
    assert revision.messages == [{"role": "user", "content": "Question fix?"},
                                 {"role": "assistant", "content": "Answer fixed by the reviewer.\nSecond line."}]
    decision = ReviewDecision.objects.get()
    assert (decision.decision, decision.revision, decision.status_after) == ("approve_edit", revision, "approved")
    sample.refresh_from_db()
    assert (sample.status, sample.version) == (Sample.Status.APPROVED, version + 1)
    assert sample.messages[-1]["content"] == "Answer fix."  # the original stays
    # the page now shows the revision as the answer as it stands
    page = rc.get(_url("adjudicate", ds, sample.pk)).content.decode()
    assert "Answer fixed by the reviewer." in page and f"revision #{revision.pk}" in page


def test_approve_with_an_edit_needs_a_rationale_and_a_changed_answer(rc, ds, labelled):
    sample = labelled["fix"]
    before = _counts()
    response = _post(rc, ds, sample, "approve_edit", htmx=True, answer="Changed.", rationale="")
    assert response.status_code == 422
    assert "say why" in response.content.decode() and ">\nChanged.</textarea>" in response.content.decode()
    response = _post(rc, ds, sample, "approve_edit", htmx=True, answer="Answer fix.", rationale="same")
    assert response.status_code == 422
    assert "the edited answer is the same as the current one" in response.content.decode()
    assert _counts() == before


def test_approving_with_an_unsaved_edit_in_the_box_is_refused(rc, ds, labelled):
    sample = labelled["fix"]
    before = _counts()
    response = _post(rc, ds, sample, "approve", htmx=True, answer="I typed an edit.")
    assert response.status_code == 422
    assert "You edited the answer" in response.content.decode()
    assert _counts() == before
    # the answer as it stands, with Windows line breaks, is no edit
    assert _post(rc, ds, sample, "approve", answer="Answer fix.").status_code == 302


def test_a_stale_version_gets_409_with_the_first_decision_and_nothing_is_written(client, ds, labelled, reviewer, owner):
    sample = labelled["fix"]
    stale = sample.version
    services.review_decide(user=reviewer, dataset=ds, sample_id=sample.pk, decision="approve_edit", expected_version=stale,
                           rationale="Took ann2's fix.", answer="Answer fixed by ann2!")
    before = _counts()
    sample.refresh_from_db()
    version_after_first = sample.version
    client.force_login(owner)

    response = client.post(_url("decide", ds, sample.pk), {
        "decision": "reject", "version": stale, "rationale": "My own reason, typed.", "answer": "My edit, typed.",
    }, **HX)

    assert response.status_code == 409
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="decision-panel" id="decision-panel" data-conflict')
    assert "rita already decided this sample (Approve with an edited answer)" in body
    assert re.search(r"data-conflict-who>rita<", body)
    assert re.search(r"data-conflict-rationale>Took ann2&#x27;s fix\.<", body)
    assert re.search(r"data-conflict-answer>Answer fixed by ann2!<", body)
    assert ">My own reason, typed.</textarea>" in body and ">\nMy edit, typed.</textarea>" in body
    assert f'href="{_url("adjudicate", ds, sample.pk)}" data-action="reload"' in body
    assert 'data-action="submit"' not in body
    assert _counts() == before
    sample.refresh_from_db()
    assert (sample.version, sample.status) == (version_after_first, Sample.Status.APPROVED)

    # without JavaScript: the whole page, same status and message
    page = client.post(_url("decide", ds, sample.pk), {"decision": "approve", "version": stale, "rationale": "Plain post."})
    assert page.status_code == 409
    assert "<html" in page.content.decode() and "rita already decided this sample" in page.content.decode()
    assert ">Plain post.</textarea>" in page.content.decode()
    assert _counts() == before


def test_labels_changed_since_loading_is_a_conflict_too(rc, ds, labelled, ann1):
    sample = labelled["split"]
    stale = sample.version
    assignment = ann1.assignments.get(sample=sample)
    annotator_services.assignment_submit(user=ann1, dataset=ds, assignment_id=assignment.pk, values=_values(verdict="reject"))
    before = _counts()
    response = _post(rc, ds, Sample(pk=sample.pk, version=stale), "approve", htmx=True)
    assert response.status_code == 409
    assert "labels changed since you opened it" in response.content.decode()
    assert _counts() == before


def test_deciding_the_last_item_goes_back_to_the_queue(rc, ds, labelled):
    sample = labelled["fix"]
    response = _post(rc, ds, sample, "approve", htmx=True, reason="corrected")
    assert response.status_code == 200
    assert response["HX-Redirect"] == _url("queue", ds) + "?reason=corrected"
    queue = rc.get(response["HX-Redirect"])
    assert "Approved sample fix. The queue is empty." in queue.content.decode()

    # without htmx, the next in the unfiltered queue is "split"... and after the last, the queue
    for ext in ("split", "ok"):
        s = Sample.objects.get(dataset=ds, external_id=ext)
        response = _post(rc, ds, s, "approve")
    assert response["Location"] == _url("queue", ds)
    assert ReviewItem.objects.filter(is_open=True).count() == 0


def test_the_next_item_follows_the_reason_filter(rc, ds, labelled):
    response = _post(rc, ds, labelled["split"], "approve", reason="manual")
    assert response["Location"] == _url("adjudicate", ds, labelled["ok"].pk) + "?reason=manual"


def test_the_live_diff_of_the_edit_box(rc, ds, labelled):
    response = rc.post(_url("answer_diff", ds, labelled["fix"].pk), {"answer": "Answer fix <b>now</b>."})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<ins>" in body and "&lt;b&gt;" in body and "<b>" not in body


def test_decision_requests_are_bounded(rc, ds, labelled, django_assert_max_num_queries):
    with django_assert_max_num_queries(30):
        assert _post(rc, ds, labelled["fix"], "approve_edit", htmx=True, answer="New.", rationale="why").status_code == 200
    with django_assert_max_num_queries(16):
        assert _post(rc, ds, labelled["split"], "reject", htmx=True).status_code == 422


# ---------------------------------------------------------------------------------------------
# The review rule and the audit trail
# ---------------------------------------------------------------------------------------------

def test_owners_set_the_review_rule_and_waiting_samples_are_routed_again(client, ds, labelled, owner, reviewer):
    client.force_login(reviewer)
    assert client.get(_url("review_rule", ds)).status_code == 404
    client.force_login(owner)
    page = client.get(_url("review_rule", ds))
    assert page.status_code == 200 and page.context["form"].initial == {"auto_approve": False, "max_spread": 1, "flags_block": True}

    response = client.post(_url("review_rule", ds), {"auto_approve": "on", "max_spread": "1", "flags_block": "on"})

    assert response.status_code == 302
    ds.refresh_from_db()
    assert ds.settings["review"] == {"auto_approve": True, "max_spread": 1, "flags_block": True}
    statuses = dict(Sample.objects.filter(dataset=ds).values_list("external_id", "status"))
    assert statuses == {"split": "in_review", "fix": "in_review", "ok": "approved"}
    assert client.post(_url("review_rule", ds), {"max_spread": "9"}).status_code == 400


def test_audit_trail_on_the_sample_page_for_reviewers_and_owners_only(client, ds, labelled, reviewer, owner, ann1):
    sample = labelled["fix"]
    client.force_login(reviewer)
    _post(client, ds, sample, "approve_edit", answer="Reviewed answer.", rationale="Cleaner wording.")

    for user in (reviewer, owner):
        client.force_login(user)
        response = client.get(reverse("annotator:sample_detail", args=[ds.slug, sample.pk]))
        body = response.content.decode()
        assert "Audit trail" in body and f'href="{_url("adjudicate", ds, sample.pk)}"' in body
        rows = response.context["audit_trail"]
        kinds = [(r["kind"], r["who"]) for r in rows]
        assert ("label", "ann1") in kinds and ("label", "ann2") in kinds
        assert ("decision", "rita") in kinds and ("revision", "rita") in kinds
        decision = next(r for r in rows if r["kind"] == "decision")
        assert (decision["before"], decision["after"], decision["rationale"]) == ("In review", "Approved", "Cleaner wording.")
        assert decision["detail"].startswith("Approve with an edited answer")
        revision = next(r for r in rows if r["kind"] == "revision")
        assert "<ins>" in str(revision["diff"].html) and "Reviewed" in str(revision["diff"].html)
        statuses = [(r["before"], r["after"]) for r in rows if r["kind"] == "status"]
        assert ("In review", "Approved") in statuses
        label = next(r for r in rows if r["kind"] == "label" and r["who"] == "ann1")
        assert "Needs fix" in label["after"] and "with a corrected answer" in label["after"]

    client.force_login(ann1)
    response = client.get(reverse("annotator:sample_detail", args=[ds.slug, sample.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Audit trail" not in body and "ann2" not in body and "Cleaner wording" not in body
    assert response.context["audit_trail"] is None
    assert _url("adjudicate", ds, sample.pk) not in body


def test_sample_page_with_its_audit_trail_is_bounded(rc, ds, labelled, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert rc.get(reverse("annotator:sample_detail", args=[ds.slug, labelled["split"].pk])).status_code == 200
