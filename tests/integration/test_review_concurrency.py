"""Reviewers deciding the same sample at the same moment on PostgreSQL: exactly one decision is
written, every other reviewer gets DecisionConflict naming it, the sample's version moves by exactly
one, and no revision is lost or duplicated. Each reviewer is a thread with its own connection,
released together by a barrier; through the services (as the views call them) and over the API."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from rest_framework.test import APIClient

from annotator import services as annotator_services
from annotator.models import Dataset, Membership, Sample, SampleRevision
from reviews import services
from reviews.models import ReviewDecision, ReviewItem, StatusChange
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

Role = Membership.Role


def _in_review(dataset: Dataset, n: int) -> list[Sample]:
    """n samples each labelled by two annotators who disagree (accept / reject), so each waits in the queue."""
    annotator_services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2})
    samples = [SampleFactory(dataset=dataset) for _ in range(n)]
    annotator_services.queue_rank_refresh(dataset=dataset)
    for username, verdict in (("ann_a", "accept"), ("ann_b", "reject")):
        user = UserFactory(username=username)
        MembershipFactory(user=user, dataset=dataset, role=Role.ANNOTATOR)
        while (asg := annotator_services.assignment_next(user=user, dataset=dataset)) is not None:
            annotator_services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values={
                "accuracy": 4, "completeness": 4, "conciseness": 4, "verdict": verdict})
    fresh = list(Sample.objects.filter(pk__in=[s.pk for s in samples]).order_by("pk"))
    assert {s.status for s in fresh} == {Sample.Status.IN_REVIEW}
    assert ReviewItem.objects.filter(sample__in=fresh, is_open=True).count() == n
    return fresh


def _reviewers(dataset: Dataset, n: int) -> list:
    users = [UserFactory(username=f"reviewer{i:02d}") for i in range(n)]
    for user in users:
        MembershipFactory(user=user, dataset=dataset, role=Role.REVIEWER)
    return users


def _at_once(work, args: list) -> tuple[dict[int, object], list[BaseException]]:
    """work(i, arg) for every arg, each in its own thread (its own connection), released together."""
    start = threading.Barrier(len(args))
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def thread(i: int, arg) -> None:
        try:
            start.wait(timeout=30)
            results[i] = work(i, arg)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on in the test
            errors.append(exc)
            start.abort()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=thread, args=(i, a), name=f"reviewer-{i}") for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a reviewer thread hung (deadlock?)"
    return results, errors


def _decide_all_at_once(dataset: Dataset, sample: Sample, reviewers: list) -> dict[int, object]:
    """Every reviewer approves with their own edited answer, at the version they all loaded."""
    version = sample.version

    def decide(i: int, user_id: int):
        user = get_user_model().objects.get(pk=user_id)
        ds = Dataset.objects.get(pk=dataset.pk)
        try:
            return services.review_decide(user=user, dataset=ds, sample_id=sample.pk, decision="approve_edit",
                                          expected_version=version, rationale=f"edit by reviewer {i}", answer=f"Answer edited by reviewer {i}.")
        except services.DecisionConflict as exc:
            return exc

    results, errors = _at_once(decide, [u.pk for u in reviewers])
    assert errors == []
    return results


@pytest.mark.parametrize("n_reviewers", [2, 10])
def test_reviewers_deciding_the_same_sample_at_once_write_exactly_one_decision(dataset, n_reviewers):
    # given 5 samples in review and n reviewers who all loaded each at the same version
    samples = _in_review(dataset, 5)
    reviewers = _reviewers(dataset, n_reviewers)
    before_changes = StatusChange.objects.count()
    for sample in samples:
        version = sample.version
        # when they all decide it at the same moment
        results = _decide_all_at_once(dataset, sample, reviewers)

        # then exactly one decision was written; everyone else got a conflict naming it
        made = [r for r in results.values() if isinstance(r, ReviewDecision)]
        conflicts = [r for r in results.values() if isinstance(r, services.DecisionConflict)]
        assert (len(made), len(conflicts)) == (1, n_reviewers - 1)
        winner = made[0]
        stored = list(ReviewDecision.objects.filter(sample=sample))
        assert [d.pk for d in stored] == [winner.pk]
        assert all(c.latest is not None and c.latest.pk == winner.pk for c in conflicts)
        assert all(str(c).startswith(f"{winner.reviewer.username} already decided this sample (Approve with an edited answer)")
                   for c in conflicts)
        assert all(c.sample.version == version + 1 for c in conflicts)
        # the version moved by exactly one; the sample is approved with the winner's answer, once
        fresh = Sample.objects.get(pk=sample.pk)
        assert (fresh.version, fresh.status) == (version + 1, Sample.Status.APPROVED)
        revisions = list(SampleRevision.objects.filter(sample=sample))
        i = next(k for k, r in results.items() if r is winner)
        assert [(r.pk, r.messages[-1]["content"], r.author_id) for r in revisions] == [
            (winner.revision_id, f"Answer edited by reviewer {i}.", winner.reviewer_id)]
        assert (winner.sample_version, winner.status_before, winner.status_after) == (version, "in_review", "approved")
        assert ReviewItem.objects.get(sample=sample).is_open is False
    # one status change per sample, none twice
    changes = StatusChange.objects.filter(cause=StatusChange.Cause.DECISION)
    assert StatusChange.objects.count() - before_changes == len(samples)
    assert Counter(changes.values_list("sample_id", flat=True)) == {s.pk: 1 for s in samples}
    # the work was shared by chance, never duplicated
    assert ReviewDecision.objects.filter(dataset=dataset, reviewer__isnull=False).count() == len(samples)


def test_two_api_clients_deciding_at_once_one_gets_201_the_other_409_with_the_first_decision(dataset):
    samples = _in_review(dataset, 3)
    reviewers = _reviewers(dataset, 2)
    clients = []
    for user in reviewers:
        client = APIClient()
        client.force_login(user)
        clients.append(client)
    for sample in samples:
        path = f"/api/v1/datasets/{dataset.pk}/review/samples/{sample.pk}/decisions/"

        def post(i: int, client: APIClient, path=path, version=sample.version):
            verdict = {"decision": "reject", "rationale": f"no, says reviewer {i}"} if i else {"decision": "approve"}
            return client.post(path, {**verdict, "version": version}, format="json")

        results, errors = _at_once(post, clients)
        assert errors == []
        codes = sorted(r.status_code for r in results.values())
        assert codes == [201, 409]
        first = next(r for r in results.values() if r.status_code == 201).json()
        refused = next(r for r in results.values() if r.status_code == 409).json()
        assert refused == {
            "code": "decision_conflict", "detail": refused["detail"], "latest": first, "version": sample.version + 1,
            "status": first["status_after"],
        }
        assert refused["detail"].startswith(f"{first['reviewer']} already decided this sample")
        assert list(ReviewDecision.objects.filter(sample=sample).values_list("pk", flat=True)) == [first["id"]]
        fresh = Sample.objects.get(pk=sample.pk)
        assert (fresh.version, fresh.status) == (sample.version + 1, first["status_after"])
        assert SampleRevision.objects.filter(sample=sample).count() == 0
