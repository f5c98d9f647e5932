"""A reviewer's decision: approve, reject, approve with an edited answer; optimistic locking by the
sample's version; nothing half-written."""

from __future__ import annotations

import pytest
from django.http import Http404

from annotator import services
from annotator.models import Membership, Sample, SampleRevision
from annotator.services import LabelLocked
from reviews.models import ReviewDecision, ReviewItem, StatusChange
from reviews.services import DecisionConflict, DecisionInvalid, review_decide, review_settings_set
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

ACCEPT = {"accuracy": 5, "completeness": 4, "conciseness": 4, "verdict": "accept"}


@pytest.fixture
def team(dataset):
    users = {}
    for name, role in (("a", "annotator"), ("b", "annotator"), ("rita", "reviewer"), ("rolf", "reviewer")):
        users[name] = UserFactory(username=name)
        MembershipFactory(user=users[name], dataset=dataset, role=role)
    return users


@pytest.fixture
def waiting(dataset, team):
    """A sample both annotators labelled, one rejecting: it waits in the queue."""
    SampleFactory(dataset=dataset, messages=[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}])
    services.queue_rank_refresh(dataset=dataset)
    for name, values in (("a", ACCEPT), ("b", {**ACCEPT, "verdict": "reject", "corrected_answer": "4"})):
        asg = services.assignment_next(user=team[name], dataset=dataset)
        services.assignment_submit(user=team[name], dataset=dataset, assignment_id=asg.pk, values=values)
    sample = Sample.objects.get(dataset=dataset)
    assert sample.status == Sample.Status.IN_REVIEW
    return sample


def _rows():
    return (ReviewDecision.objects.count(), SampleRevision.objects.count(), StatusChange.objects.count())


def test_approve_closes_the_item_and_records_the_move(dataset, team, waiting):
    decision = review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, decision="approve",
                             expected_version=waiting.version)
    waiting.refresh_from_db()
    assert (waiting.status, decision.status_before, decision.status_after) == ("approved", "in_review", "approved")
    assert waiting.version == decision.sample_version + 1
    assert ReviewItem.objects.get(sample=waiting).is_open is False
    last = StatusChange.objects.filter(sample=waiting).last()
    assert (last.from_status, last.to_status, last.cause, last.actor) == ("in_review", "approved", "decision", team["rita"])


def test_approve_with_an_edit_adds_an_approved_revision_and_keeps_the_original(dataset, team, waiting):
    decision = review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, decision="approve_edit",
                             answer="4", rationale="2+2 is 4", expected_version=waiting.version)
    revision = decision.revision
    assert revision.status == "approved" and revision.author == team["rita"] and revision.reason == "2+2 is 4"
    assert revision.messages == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    waiting.refresh_from_db()
    assert waiting.messages[-1]["content"] == "5" and waiting.status == "approved"
    # a second edit starts from the first
    again = review_decide(user=team["rolf"], dataset=dataset, sample_id=waiting.pk, decision="approve_edit",
                          answer="4.", rationale="full stop", expected_version=waiting.version)
    assert again.revision.messages[-1]["content"] == "4." and again.status_before == "approved"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"decision": "reject"}, "rationale"),
    ({"decision": "approve_edit", "rationale": "x"}, "answer"),
    ({"decision": "approve_edit", "rationale": "x", "answer": "5"}, "answer"),  # the same answer
    ({"decision": "maybe"}, "decision"),
])
def test_an_invalid_decision_names_the_field_and_writes_nothing(dataset, team, waiting, kwargs, field):
    before = _rows()
    with pytest.raises(DecisionInvalid) as caught:
        review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, expected_version=waiting.version, **kwargs)
    assert field in caught.value.errors
    waiting.refresh_from_db()
    assert _rows() == before and waiting.status == "in_review"


def test_the_second_reviewer_at_the_same_version_gets_the_first_decision_and_nothing_is_overwritten(dataset, team, waiting):
    seen = waiting.version
    first = review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, decision="reject", rationale="wrong sum",
                          expected_version=seen)
    before = _rows()
    with pytest.raises(DecisionConflict) as caught:
        review_decide(user=team["rolf"], dataset=dataset, sample_id=waiting.pk, decision="approve_edit", answer="4",
                      rationale="fix it", expected_version=seen)
    assert caught.value.latest == first
    assert "rita already decided this sample (Reject)" in str(caught.value)
    waiting.refresh_from_db()
    assert _rows() == before and waiting.status == "rejected"


def test_labels_changing_under_the_reviewer_is_a_conflict_without_a_decision(dataset, team, waiting):
    seen = waiting.version
    asg = waiting.assignments.get(annotator=team["a"])
    services.assignment_submit(user=team["a"], dataset=dataset, assignment_id=asg.pk, values={**ACCEPT, "accuracy": 1})
    with pytest.raises(DecisionConflict) as caught:
        review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, decision="approve", expected_version=seen)
    assert caught.value.latest is None and "labels changed" in str(caught.value)


def test_annotators_and_outsiders_cannot_decide(dataset, team, waiting, outsider):
    for user in (team["a"], outsider):
        with pytest.raises(Http404):
            review_decide(user=user, dataset=dataset, sample_id=waiting.pk, decision="approve", expected_version=waiting.version)
    assert waiting.status == "in_review" and not ReviewDecision.objects.exists()


def test_a_sample_of_another_dataset_is_not_found(dataset, team, waiting, owner):
    from tests.conftest import DatasetFactory

    other = DatasetFactory()
    MembershipFactory(user=team["rita"], dataset=other, role=Membership.Role.REVIEWER)
    with pytest.raises(Http404):
        review_decide(user=team["rita"], dataset=other, sample_id=waiting.pk, decision="approve", expected_version=waiting.version)


def test_labels_of_a_decided_sample_are_locked(dataset, team, waiting):
    review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, decision="approve", expected_version=waiting.version)
    asg = waiting.assignments.get(annotator=team["a"])
    with pytest.raises(LabelLocked):
        services.assignment_submit(user=team["a"], dataset=dataset, assignment_id=asg.pk, values=ACCEPT)


def test_the_audit_trail_holds_every_label_decision_edit_and_move(dataset, team, waiting):
    from reviews.selectors import audit_trail

    review_settings_set(actor=None, dataset=dataset, values={"auto_approve": False})
    review_decide(user=team["rita"], dataset=dataset, sample_id=waiting.pk, decision="approve_edit", answer="4",
                  rationale="2+2 is 4", expected_version=Sample.objects.get(pk=waiting.pk).version)
    trail = audit_trail(waiting)
    kinds = [(e["kind"], e["who"]) for e in trail]
    assert kinds == [("label", "a"), ("status", "a"), ("label", "b"), ("status", "b"),
                     ("revision", "rita"), ("decision", "rita"), ("status", "rita")]
    revision = trail[4]
    assert (revision["before"], revision["after"]) == ("5", "4")
    assert trail[2]["after"]["corrected_answer"] == "4" and trail[2]["before"] is None
    assert (trail[5]["before"], trail[5]["after"], trail[5]["detail"]["rationale"]) == ("in_review", "approved", "2+2 is 4")
