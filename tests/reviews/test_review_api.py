"""The review desk API under /api/v1/datasets/{id}/review/: roles (annotators and outsiders 404, read-only
tokens read), agreement reports, annotator statistics, the conflict queue (worst first, cursor pages,
reason filter, bounded queries), one sample's review with annotator names, decisions (201 / 400 / 409
and nothing written on failure), the audit trail and the review rule."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotator import services as annotator_services
from annotator.models import Assignment, Membership, Sample, SampleRevision
from exports.tokens import api_token_create
from reviews import selectors
from reviews.models import AgreementReport, ReviewDecision, ReviewItem, StatusChange
from reviews.services import agreement_run, review_decide, review_settings_set
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role


def v(verdict: str = "accept", acc: int = 4, comp: int = 4, conc: int = 4, **extra) -> dict:
    return {"accuracy": acc, "completeness": comp, "conciseness": conc, "difficulty": "medium", "verdict": verdict, **extra}


def member(dataset, username: str, role: str = Role.ANNOTATOR):
    user = UserFactory(username=username)
    MembershipFactory(user=user, dataset=dataset, role=role)
    return user


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def bearer(user, **kwargs) -> APIClient:
    _token, key = api_token_create(user=user, name="tests", **kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def url(dataset, tail: str = "") -> str:
    return f"/api/v1/datasets/{dataset.pk}/review/{tail}"


def label(dataset, plan: dict) -> None:
    """plan = {annotator: {external_id: values}}: each labels their samples (in the queue's order)
    and skips whatever else they are served."""
    for user, mine in plan.items():
        while (asg := annotator_services.assignment_next(user=user, dataset=dataset)) is not None:
            values = mine.get(asg.sample.external_id)
            if values is None:
                annotator_services.assignment_skip(user=user, dataset=dataset, assignment_id=asg.pk, reason="not mine")
            else:
                annotator_services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values=values)


def written() -> dict:
    """Every row a decision or a settings change could touch, to show a failure changed nothing."""
    return {
        "decisions": list(ReviewDecision.objects.order_by("pk").values()),
        "revisions": list(SampleRevision.objects.order_by("pk").values()),
        "status_changes": list(StatusChange.objects.order_by("pk").values()),
        "items": list(ReviewItem.objects.order_by("pk").values()),
        "samples": list(Sample.objects.order_by("pk").values("pk", "status", "version", "messages")),
        "reports": list(AgreementReport.objects.order_by("pk").values()),
    }


class Desk:
    """A dataset with k=2, two annotators, a reviewer, and four samples labelled so that:
    s1 verdicts split (accept 4 / reject 2), s2 agrees (approved by the rule), s3 both need a fix
    (corrected answers), s4 accuracy spreads by 3 (2 / 5)."""

    def __init__(self, dataset, owner):
        self.dataset, self.owner = dataset, owner
        annotator_services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2})
        self.ann_a, self.ann_b = member(dataset, "ann_a"), member(dataset, "ann_b")
        self.reviewer = member(dataset, "rita", Role.REVIEWER)
        self.s = {n: SampleFactory(dataset=dataset, external_id=f"s{n}") for n in range(1, 5)}
        label(dataset, {
            self.ann_a: {"s1": v(), "s2": v(), "s3": v("needs_fix", corrected_answer="Fixed by A."), "s4": v(acc=2)},
            self.ann_b: {"s1": v("reject", acc=2), "s2": v(acc=5), "s3": v("needs_fix", corrected_answer="Fixed by B."), "s4": v(acc=5)},
        })
        for sample in self.s.values():
            sample.refresh_from_db()

    def sample(self, n: int) -> Sample:
        return Sample.objects.get(pk=self.s[n].pk)


@pytest.fixture
def desk(dataset, owner) -> Desk:
    return Desk(dataset, owner)


ENDPOINTS = (
    ("GET", "agreement/"), ("POST", "agreement/"), ("GET", "annotators/"), ("GET", "conflicts/"), ("GET", "settings/"),
    ("PUT", "settings/"), ("PATCH", "settings/"), ("GET", "samples/{s}/"), ("GET", "samples/{s}/decisions/"),
    ("POST", "samples/{s}/decisions/"), ("GET", "samples/{s}/audit/"),
)


def call(client, method: str, path: str, body=None):
    return client.generic(method, path, "{}" if body is None else json.dumps(body), content_type="application/json")


# --- roles -------------------------------------------------------------------------------------

def test_annotators_and_outsiders_get_404_on_every_review_endpoint_and_nothing_is_written(desk, outsider):
    other = DatasetFactory(slug="other")
    MembershipFactory(user=outsider, dataset=other, role=Role.OWNER)
    before = written()
    sample = desk.s[1].pk
    for who in (desk.ann_a, desk.ann_b, outsider):
        for client in (session(who), bearer(who, can_write=True)):
            for method, tail in ENDPOINTS:
                body = {"decision": "approve", "version": desk.sample(1).version} if "decisions" in tail else None
                response = call(client, method, url(desk.dataset, tail.format(s=sample)), body)
                assert response.status_code == 404, (who.username, method, tail, response.status_code)
                assert "ann_a" not in response.content.decode() and "Fixed by" not in response.content.decode()
    assert written() == before


def test_a_sample_of_another_dataset_answers_404(desk):
    foreign = SampleFactory(dataset=DatasetFactory(slug="foreign"))
    client = session(desk.reviewer)
    before = written()
    for method, tail in ENDPOINTS:
        if "{s}" in tail:
            response = call(client, method, url(desk.dataset, tail.format(s=foreign.pk)), {"decision": "approve", "version": 0})
            assert response.status_code == 404, (method, tail)
    assert written() == before


def test_a_read_only_token_reads_everything_and_writes_nothing(desk):
    reader = bearer(desk.owner, dataset=desk.dataset)  # read-only unless can_write
    before = written()
    for method, tail in ENDPOINTS:
        response = call(reader, method, url(desk.dataset, tail.format(s=desk.s[1].pk)),
                        {"decision": "approve", "version": desk.sample(1).version} if "decisions" in tail else None)
        assert response.status_code == (200 if method == "GET" else 403), (method, tail, response.status_code)
    assert written() == before
    writer = bearer(desk.reviewer, dataset=desk.dataset, can_write=True)
    made = writer.post(url(desk.dataset, f"samples/{desk.s[1].pk}/decisions/"), {"decision": "approve", "version": desk.sample(1).version},
                       format="json")
    assert made.status_code == 201 and made.json()["reviewer"] == "rita"


def test_a_token_for_another_dataset_gets_404(desk):
    other = DatasetFactory(slug="other")
    MembershipFactory(user=desk.reviewer, dataset=other, role=Role.REVIEWER)
    client = bearer(desk.reviewer, dataset=other, can_write=True)
    assert client.get(url(desk.dataset, "conflicts/")).status_code == 404
    assert client.get(url(other, "conflicts/")).status_code == 200


# --- agreement and annotators -----------------------------------------------------------------

def test_agreement_before_any_report(desk):
    response = session(desk.reviewer).get(url(desk.dataset, "agreement/"))
    assert response.status_code == 200
    assert response.json() == {"id": None, "computed_at": None, "stale": False, "pending": None, "error": None, "labels": None,
                               "resamples": None, "seed": None, "criteria": [], "annotators": []}


def test_agreement_is_queued_once_then_shown_and_goes_stale_with_a_new_label(desk, django_capture_on_commit_callbacks):
    client = session(desk.reviewer)
    # when a reviewer asks twice before a worker picks it up
    with django_capture_on_commit_callbacks() as enqueued:
        first = client.post(url(desk.dataset, "agreement/"), {"resamples": 50, "seed": 3}, format="json")
        second = client.post(url(desk.dataset, "agreement/"), {}, format="json")
    assert len(enqueued) == 1  # one task for the worker
    # then one report is queued, and both answers name it
    report = AgreementReport.objects.get()
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"id": report.pk, "status": "queued", "requested_at": first.json()["requested_at"],
                                            "resamples": 50, "seed": 3}
    shown = client.get(url(desk.dataset, "agreement/")).json()
    assert shown["id"] is None and shown["pending"] == {"id": report.pk, "status": "queued", "requested_at": first.json()["requested_at"]}

    # when a worker computes it (the task's body, run here)
    agreement_run(report.pk)
    report.refresh_from_db()
    assert report.status == AgreementReport.Status.SUCCEEDED
    body = client.get(url(desk.dataset, "agreement/")).json()
    expected = selectors.dataset_agreement(desk.dataset, resamples=50, seed=3)
    assert body["id"] == report.pk and body["computed_at"] is not None
    assert (body["stale"], body["pending"], body["error"], body["labels"], body["resamples"], body["seed"]) == (False, None, None, 8, 50, 3)
    assert body["criteria"] == expected["criteria"]
    accuracy = next(c for c in body["criteria"] if c["criterion"] == "accuracy")
    assert set(accuracy) == {"criterion", "level", "annotators", "samples", "alpha", "fleiss", "cohen", "cohen_weights"}
    assert accuracy["cohen"][0]["a"] == "ann_a" and accuracy["cohen"][0]["b"] == "ann_b" and accuracy["alpha"]["n"] == 4
    assert [a["annotator"] for a in body["annotators"]] == ["ann_a", "ann_b"]

    # when a label is revised after it was computed, then the report says it is stale
    asg = Assignment.objects.get(annotator=desk.ann_a, sample=desk.s[1])
    annotator_services.assignment_submit(user=desk.ann_a, dataset=desk.dataset, assignment_id=asg.pk, values=v(acc=3))
    assert client.get(url(desk.dataset, "agreement/")).json()["stale"] is True


def test_a_failed_report_says_why(desk):
    AgreementReport.objects.create(dataset=desk.dataset, status=AgreementReport.Status.FAILED, error="ValueError: boom")
    body = session(desk.owner).get(url(desk.dataset, "agreement/")).json()
    assert (body["id"], body["error"], body["pending"]) == (None, "ValueError: boom", None)


def test_agreement_request_checks_its_input(desk):
    response = session(desk.reviewer).post(url(desk.dataset, "agreement/"), {"resamples": -1, "seed": "x"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"resamples", "seed"}
    assert AgreementReport.objects.count() == 0


def test_annotator_statistics_are_live(desk, django_assert_max_num_queries):
    client = session(desk.reviewer)
    # 8; on PostgreSQL 10: the peer statement runs in a savepoint with SET LOCAL work_mem
    with django_assert_max_num_queries(10):
        body = client.get(url(desk.dataset, "annotators/")).json()
    assert body == selectors.annotator_stats(desk.dataset)
    assert [(r["annotator"], r["labels"]) for r in body] == [("ann_a", 4), ("ann_b", 4)]
    assert set(body[0]) == {"annotator", "labels", "agreement", "compared", "leniency", "gold_n", "gold_accuracy", "labels_per_hour",
                            "hours", "skipped", "skip_rate"}
    # with three times the annotators and samples: the same queries
    more = [member(desk.dataset, f"ann_{n}") for n in "cdefgh"]
    for n in range(24):
        SampleFactory(dataset=desk.dataset, external_id=f"t{n}")
    for pair in range(3):  # each pair of new annotators labels its own 8 samples
        label(desk.dataset, {user: {f"t{n}": v(acc=2 + (n + j) % 3) for n in range(8 * pair, 8 * pair + 8)}
                             for j, user in enumerate(more[2 * pair:2 * pair + 2])})
    with django_assert_max_num_queries(10):
        body = client.get(url(desk.dataset, "annotators/")).json()
    assert len(body) == 8 and body == selectors.annotator_stats(desk.dataset)


# --- the conflict queue ------------------------------------------------------------------------

def test_the_queue_lists_open_items_worst_first_with_their_reasons(desk):
    body = session(desk.reviewer).get(url(desk.dataset, "conflicts/")).json()
    assert (body["next"], body["previous"]) == (None, None)
    items = {r["external_id"]: r for r in body["results"]}
    assert set(items) == {"s1", "s3", "s4"}  # s2 was approved by the rule
    s1 = items["s1"]
    item = ReviewItem.objects.get(sample=desk.s[1])
    assert s1 == {
        "sample_id": desk.s[1].pk, "external_id": "s1", "version": desk.sample(1).version, "severity": 4 + 3 + 2,
        "reasons": [{"code": "verdict_split", "verdicts": {"accept": 1, "reject": 1}}, {"code": "rejected", "n": 1},
                    {"code": "scale_spread", "scale": "accuracy", "spread": 2}],
        "consensus": {"method": "majority", "verdict": "reject", "verdict_confidence": 0.5, "accuracy": 3.0, "completeness": 4.0,
                      "conciseness": 4.0, "difficulty": "medium"},
        "labels_n": 2, "routed_at": s1["routed_at"],
    }
    assert s1["routed_at"] == item.routed_at.isoformat().replace("+00:00", "Z")
    assert body["results"][0]["external_id"] == "s1"
    assert [r["severity"] for r in body["results"]] == [9, 3, 3]
    assert [r["code"] for r in items["s3"]["reasons"]] == ["corrected", "not_accepted"]
    assert [r["code"] for r in items["s4"]["reasons"]] == ["scale_spread"]


def _queue(dataset, n: int, severities=(5, 2, 2, 0)) -> list[int]:
    """n samples with open review items: severities cycling, half of them at the same moment (ties
    broken by id). Returns the sample ids in queue order."""
    at = timezone.now() - timedelta(hours=1)
    samples = Sample.objects.bulk_create(SampleFactory.build_batch(n, dataset=dataset, status=Sample.Status.IN_REVIEW))
    items = [ReviewItem(dataset=dataset, sample=s, severity=severities[i % len(severities)], reasons=[{"code": "manual"}],
                        labels_n=2, routed_at=at if i % 2 else at + timedelta(seconds=i))
             for i, s in enumerate(samples)]
    ReviewItem.objects.bulk_create(items)
    ordered = sorted(ReviewItem.objects.filter(dataset=dataset, is_open=True), key=lambda it: (-it.severity, it.routed_at, it.pk))
    return [it.sample_id for it in ordered]


def _walk(client, first_url: str) -> tuple[list[list[int]], list[dict]]:
    pages, bodies, next_url = [], [], first_url
    while next_url:
        body = client.get(next_url).json()
        bodies.append(body)
        pages.append([r["sample_id"] for r in body["results"]])
        next_url = body["next"]
    return pages, bodies


def test_cursor_pages_follow_the_queue_order_worst_first(dataset, owner):
    expected = _queue(dataset, 23)
    client = session(owner)
    pages, bodies = _walk(client, url(dataset, "conflicts/?page_size=5"))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [sid for page in pages for sid in page] == expected
    assert bodies[0]["previous"] is None and bodies[-1]["next"] is None
    severities = [r["severity"] for b in bodies for r in b["results"]]
    assert severities == sorted(severities, reverse=True)
    # previous goes back page by page to the first one
    back = client.get(bodies[3]["previous"]).json()
    assert [r["sample_id"] for r in back["results"]] == pages[2]
    back = client.get(back["previous"]).json()
    assert [r["sample_id"] for r in back["results"]] == pages[1]
    first = client.get(back["previous"]).json()
    assert [r["sample_id"] for r in first["results"]] == pages[0] and first["previous"] is None


def test_deciding_items_between_pages_skips_nothing(dataset, owner):
    # given 12 items, all at severity 2 and many at the same moment (a DRF offset cursor would drift)
    expected = _queue(dataset, 12, severities=(2,))
    client = session(owner)
    page1 = client.get(url(dataset, "conflicts/?page_size=4")).json()
    assert [r["sample_id"] for r in page1["results"]] == expected[:4]
    # when the first page's items are decided
    for sid in expected[:4]:
        review_decide(user=owner, dataset=dataset, sample_id=sid, decision="approve", expected_version=0)
    # then the next page still starts right after them
    rest, _bodies = _walk(client, page1["next"])
    assert [sid for page in rest for sid in page] == expected[4:]


def test_a_bad_cursor_or_reason_is_refused(desk):
    client = session(desk.reviewer)
    assert client.get(url(desk.dataset, "conflicts/?cursor=cD1ub3Bl")).status_code == 404
    response = client.get(url(desk.dataset, "conflicts/?reason=boring"))
    assert response.status_code == 400 and set(response.json()) == {"reason"}


@pytest.mark.parametrize("reason, expected", [
    ("verdict_split", ["s1"]), ("rejected", ["s1"]), ("scale_spread", ["s1", "s4"]), ("corrected", ["s3"]),
    ("not_accepted", ["s3"]), ("flagged", []),
])
def test_the_reason_filter(desk, reason, expected):
    body = session(desk.reviewer).get(url(desk.dataset, "conflicts/"), {"reason": reason}).json()
    assert [r["external_id"] for r in body["results"]] == expected


def test_the_queue_runs_the_same_queries_with_three_times_the_items(dataset, owner, django_assert_max_num_queries):
    _queue(dataset, 20)
    client = session(owner)
    with django_assert_max_num_queries(5):
        first = client.get(url(dataset, "conflicts/?page_size=200")).json()
    assert len(first["results"]) == 20
    _queue(dataset, 40)
    with django_assert_max_num_queries(5):
        body = client.get(url(dataset, "conflicts/?page_size=200&reason=manual")).json()
    assert len(body["results"]) == 60
    first_page = client.get(url(dataset, "conflicts/?page_size=7")).json()
    with django_assert_max_num_queries(5):
        second_page = client.get(first_page["next"]).json()
    assert len(second_page["results"]) == 7 and second_page["previous"] is not None


# --- one sample ------------------------------------------------------------------------------

def test_a_reviewer_sees_the_labels_with_annotator_names(desk, django_assert_max_num_queries):
    client = session(desk.reviewer)
    sample = desk.sample(3)
    with django_assert_max_num_queries(12):
        body = client.get(url(desk.dataset, f"samples/{sample.pk}/")).json()
    assert (body["id"], body["external_id"], body["status"], body["version"]) == (sample.pk, "s3", "in_review", sample.version)
    assert body["messages"] == body["original_messages"] == sample.messages
    assert body["revision"] is None and body["decisions"] == [] and body["flags"] == []
    assert [(lb["annotator"], lb["values"]["verdict"], lb["values"]["corrected_answer"]) for lb in body["labels"]] == [
        ("ann_a", "needs_fix", "Fixed by A."), ("ann_b", "needs_fix", "Fixed by B.")]
    assert body["labels"][0]["version"] == 1 and body["labels"][0]["source"] == "ui"
    assert body["review"]["is_open"] is True and body["review"]["consensus"]["verdict"] == "needs_fix"
    assert [r["code"] for r in body["review"]["reasons"]] == ["corrected", "not_accepted"]


def test_decide_approve_answers_201_and_moves_the_sample_on(desk):
    client = session(desk.reviewer)
    sample = desk.sample(1)
    response = client.post(url(desk.dataset, f"samples/{sample.pk}/decisions/"),
                           {"decision": "approve", "rationale": "B misread it", "version": sample.version}, format="json")
    assert response.status_code == 201
    made = ReviewDecision.objects.get(sample=sample)
    assert response.json() == {
        "id": made.pk, "reviewer": "rita", "automatic": False, "decision": "approve", "rationale": "B misread it", "revision": None,
        "answer": None, "status_before": "in_review", "status_after": "approved", "sample_version": sample.version,
        "created_at": response.json()["created_at"],
    }
    after = desk.sample(1)
    assert (after.status, after.version) == ("approved", sample.version + 1)
    assert ReviewItem.objects.get(sample=sample).is_open is False
    assert [r["external_id"] for r in client.get(url(desk.dataset, "conflicts/")).json()["results"]] == ["s3", "s4"]
    listed = client.get(url(desk.dataset, f"samples/{sample.pk}/decisions/")).json()
    assert listed == [response.json()]


def test_decide_approve_with_an_edit_makes_a_revision(desk):
    client = session(desk.owner)
    sample = desk.sample(3)
    response = client.post(url(desk.dataset, f"samples/{sample.pk}/decisions/"),
                           {"decision": "approve_edit", "rationale": "A's fix, tidied", "answer": "Fixed, tidied.", "version": sample.version},
                           format="json")
    assert response.status_code == 201
    revision = SampleRevision.objects.get(sample=sample)
    assert (response.json()["revision"], response.json()["answer"], response.json()["reviewer"]) == (revision.pk, "Fixed, tidied.", "olga")
    assert revision.messages == [sample.messages[0], {"role": "assistant", "content": "Fixed, tidied."}]
    body = client.get(url(desk.dataset, f"samples/{sample.pk}/")).json()
    assert body["messages"] == revision.messages and body["original_messages"] == sample.messages
    assert body["revision"] == {"id": revision.pk, "author": "olga", "reason": "A's fix, tidied", "created_at": body["revision"]["created_at"]}
    assert body["status"] == "approved" and body["decisions"][0]["answer"] == "Fixed, tidied."


@pytest.mark.parametrize("payload, errors", [
    ({"decision": "reject"}, {"rationale": ["say why: a rejection or an edit needs a rationale"]}),
    ({"decision": "approve_edit", "rationale": "fix"}, {"answer": ["approving with an edit needs the edited answer"]}),
    ({"decision": "approve_edit", "rationale": "fix", "answer": "Answer 1."}, None),  # the same answer: filled below
    ({"decision": "maybe"}, {"decision": ['"maybe" is not a valid choice.']}),
    ({"decision": "approve", "version": "x"}, {"version": ["A valid integer is required."]}),
    ({"decision": "approve", "version": -1}, {"version": ["Ensure this value is greater than or equal to 0."]}),
])
def test_a_bad_decision_answers_400_by_field_and_writes_nothing(desk, payload, errors):
    client = session(desk.reviewer)
    sample = desk.sample(1)
    if payload.get("answer") == "Answer 1.":
        payload["answer"] = sample.answer
        errors = {"answer": ["the edited answer is the same as the current one; approve it instead"]}
    payload = {"version": sample.version, **payload}
    before = written()
    response = client.post(url(desk.dataset, f"samples/{sample.pk}/decisions/"), payload, format="json")
    assert (response.status_code, response.json()) == (400, errors)
    assert written() == before


def test_a_decision_without_a_version_is_refused(desk):
    before = written()
    response = session(desk.reviewer).post(url(desk.dataset, f"samples/{desk.s[1].pk}/decisions/"), {"decision": "approve"}, format="json")
    assert (response.status_code, response.json()) == (400, {"version": ["This field is required."]})
    assert written() == before


def test_the_second_reviewer_gets_409_with_the_first_decision(desk):
    sample = desk.sample(1)
    first = session(desk.reviewer).post(url(desk.dataset, f"samples/{sample.pk}/decisions/"),
                                        {"decision": "reject", "rationale": "wrong date", "version": sample.version}, format="json")
    assert first.status_code == 201
    before = written()
    second = session(desk.owner).post(url(desk.dataset, f"samples/{sample.pk}/decisions/"),
                                      {"decision": "approve", "version": sample.version}, format="json")
    assert second.status_code == 409
    body = second.json()
    assert body == {
        "code": "decision_conflict", "detail": body["detail"], "latest": first.json(), "version": sample.version + 1, "status": "rejected",
    }
    assert body["detail"].startswith("rita already decided this sample (Reject) at ")
    assert written() == before
    # deciding again at the version shown works
    again = session(desk.owner).post(url(desk.dataset, f"samples/{sample.pk}/decisions/"),
                                     {"decision": "approve", "version": body["version"]}, format="json")
    assert again.status_code == 201 and ReviewDecision.objects.filter(sample=sample).count() == 2


def test_labels_changed_under_the_reviewer_answer_409_without_a_decision(desk):
    sample = desk.sample(1)
    asg = Assignment.objects.get(annotator=desk.ann_b, sample=sample)
    annotator_services.assignment_submit(user=desk.ann_b, dataset=desk.dataset, assignment_id=asg.pk, values=v("reject", acc=1))
    before = written()
    response = session(desk.reviewer).post(url(desk.dataset, f"samples/{sample.pk}/decisions/"),
                                           {"decision": "approve", "version": sample.version}, format="json")
    assert response.status_code == 409
    assert response.json()["latest"] is None and response.json()["version"] == desk.sample(1).version == sample.version + 1
    assert "labels changed" in response.json()["detail"]
    assert written() == before


def test_the_audit_trail(desk, django_assert_max_num_queries):
    sample = desk.sample(1)
    review_decide(user=desk.reviewer, dataset=desk.dataset, sample_id=sample.pk, decision="reject", rationale="no", expected_version=sample.version)
    client = session(desk.owner)
    with django_assert_max_num_queries(10):
        body = client.get(url(desk.dataset, f"samples/{sample.pk}/audit/")).json()
    assert [(e["kind"], e["who"]) for e in body] == [
        ("label", "ann_a"), ("status", "ann_a"), ("label", "ann_b"), ("status", "ann_b"), ("decision", "rita"), ("status", "rita"),
    ]
    assert body[0]["before"] is None and body[0]["after"]["verdict"] == "accept"
    assert body[4]["detail"] == {"decision": "reject", "rationale": "no", "revision": None}
    assert (body[5]["before"], body[5]["after"], body[5]["detail"]) == ("in_review", "rejected", {"cause": "decision"})


def test_sample_reads_run_a_bounded_number_of_queries(desk, django_assert_max_num_queries):
    client = session(desk.reviewer)
    sample = desk.sample(3)
    review_decide(user=desk.owner, dataset=desk.dataset, sample_id=sample.pk, decision="approve_edit", rationale="r",
                  answer="New.", expected_version=sample.version)
    for tail, limit in (("", 12), ("decisions/", 10), ("audit/", 10)):
        with django_assert_max_num_queries(limit):
            assert client.get(url(desk.dataset, f"samples/{sample.pk}/{tail}")).status_code == 200
    # three times the decisions and revisions, a revised label: the same queries
    for n in range(3):
        sample = desk.sample(3)
        review_decide(user=desk.reviewer, dataset=desk.dataset, sample_id=sample.pk, decision="approve_edit", rationale=f"r{n}",
                      answer=f"Newer {n}.", expected_version=sample.version)
        review_decide(user=desk.owner, dataset=desk.dataset, sample_id=sample.pk, decision="reject", rationale=f"no {n}",
                      expected_version=sample.version + 1)
    assert ReviewDecision.objects.filter(sample=sample).count() == 7
    for tail, limit in (("", 12), ("decisions/", 10), ("audit/", 10)):
        with django_assert_max_num_queries(limit):
            response = client.get(url(desk.dataset, f"samples/{sample.pk}/{tail}"))
        assert response.status_code == 200
    assert len(response.json()) > 7 * 2
    with django_assert_max_num_queries(14):
        response = client.post(url(desk.dataset, f"samples/{desk.s[1].pk}/decisions/"),
                               {"decision": "approve", "version": desk.sample(1).version}, format="json")
    assert response.status_code == 201


# --- the review rule -------------------------------------------------------------------------

def test_settings_read_by_reviewers_changed_by_owners(desk):
    assert session(desk.reviewer).get(url(desk.dataset, "settings/")).json() == {"auto_approve": True, "max_spread": 1, "flags_block": True}
    before = written()
    refused = session(desk.reviewer).put(url(desk.dataset, "settings/"), {"auto_approve": False}, format="json")
    assert refused.status_code == 403
    assert written() == before


@pytest.mark.parametrize("payload, errors", [
    ({"max_spread": 7}, {"max_spread": ["expected a whole number from 0 to 3, got 7"]}),
    ({"auto_approve": "yes"}, {"auto_approve": ["expected true or false, got 'yes'"]}),
    ({"strict": True}, {"strict": ["unknown setting; the settings are auto_approve, max_spread, flags_block"]}),
    ([1, 2], {"non_field_errors": ["Expected a JSON object."]}),
])
def test_a_bad_setting_answers_400_naming_it(desk, payload, errors):
    before = written()
    response = session(desk.owner).put(url(desk.dataset, "settings/"), payload, format="json")
    assert (response.status_code, response.json()) == (400, errors)
    assert written() == before
    assert desk.dataset.settings.get("review") is None


def test_a_settings_put_routes_the_waiting_samples_again(desk):
    # given s4 waits only because accuracy spreads by 3 (2 / 5)
    client = session(desk.owner)
    s4 = desk.sample(4)
    # when the owner allows a spread of 3
    response = client.put(url(desk.dataset, "settings/"), {"max_spread": 3}, format="json")
    # then it is approved by the rule; the others still wait
    assert (response.status_code, response.json()) == (200, {"auto_approve": True, "max_spread": 3, "flags_block": True})
    after = desk.sample(4)
    assert (after.status, after.version) == ("approved", s4.version + 2)
    assert ReviewDecision.objects.get(sample=s4).automatic
    assert [r["external_id"] for r in client.get(url(desk.dataset, "conflicts/")).json()["results"]] == ["s1", "s3"]
    # a PATCH changes one setting and keeps the rest
    patched = client.patch(url(desk.dataset, "settings/"), {"auto_approve": False}, format="json")
    assert patched.json() == {"auto_approve": False, "max_spread": 3, "flags_block": True}
    # PUT replaces the whole rule: what is absent takes its default
    assert client.put(url(desk.dataset, "settings/"), {"flags_block": False}, format="json").json() == {
        "auto_approve": True, "max_spread": 1, "flags_block": False}


def test_review_settings_set_is_what_the_api_calls(desk):
    review_settings_set(actor=None, dataset=desk.dataset, values={"auto_approve": False})
    assert session(desk.owner).get(url(desk.dataset, "settings/")).json()["auto_approve"] is False


# --- schema ----------------------------------------------------------------------------------

def test_the_schema_lists_the_review_operations(desk):
    paths = session(desk.owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    base = "/api/v1/datasets/{dataset_id}/review/"
    expected = {
        base + "agreement/": {"get", "post"}, base + "annotators/": {"get"}, base + "conflicts/": {"get"},
        base + "settings/": {"get", "put", "patch"}, base + "samples/{sample_id}/": {"get"},
        base + "samples/{sample_id}/decisions/": {"get", "post"}, base + "samples/{sample_id}/audit/": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert set(paths[path]) - {"parameters"} == methods, path
    decide = paths[base + "samples/{sample_id}/decisions/"]["post"]
    assert set(decide["responses"]) == {"201", "400", "404", "409"}
    assert {p["name"] for p in paths[base + "conflicts/"]["get"]["parameters"]} >= {"cursor", "page_size", "reason"}
