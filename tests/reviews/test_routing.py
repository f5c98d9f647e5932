"""Routing of completed samples: consensus, the reasons a sample needs a reviewer, the auto-approve
rule, and every move of a sample's status recorded."""

from __future__ import annotations

import pytest

from annotator import services
from annotator.models import Membership, Sample
from reviews import routing
from reviews.models import ReviewDecision, ReviewItem, StatusChange
from reviews.routing import ReviewConfig, consensus, reasons
from reviews.services import review_settings_set
from scoring.models import SampleFlag
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

ACCEPT = {"accuracy": 5, "completeness": 4, "conciseness": 4, "difficulty": "easy", "verdict": "accept"}


def _label(**values) -> dict:
    base = {"accuracy": None, "completeness": None, "conciseness": None, "difficulty": "", "verdict": "", "corrected_answer": ""}
    return {**base, **values}


# --- pure parts ------------------------------------------------------------------------------

def test_consensus_takes_medians_and_the_majority_verdict_with_its_share():
    labels = [_label(accuracy=2, verdict="accept", difficulty="easy"), _label(accuracy=5, verdict="accept", difficulty="hard"),
              _label(accuracy=4, verdict="reject", difficulty="hard")]
    got = consensus(labels)
    assert got["accuracy"] == 4.0 and got["completeness"] is None
    assert (got["verdict"], got["verdict_confidence"]) == ("accept", pytest.approx(2 / 3))
    assert got["difficulty"] == "hard" and got["method"] == "majority"


def test_a_tied_vote_goes_to_the_stricter_verdict_and_the_median_difficulty():
    got = consensus([_label(accuracy=2, verdict="accept", difficulty="easy"), _label(accuracy=5, verdict="needs_fix", difficulty="hard")])
    assert got["accuracy"] == 3.5
    assert (got["verdict"], got["verdict_confidence"]) == ("needs_fix", 0.5)
    assert got["difficulty"] == "easy"  # the lower of the two tied values
    three = consensus([_label(difficulty=d) for d in ("easy", "medium", "hard")])
    assert three["difficulty"] == "medium" and three["verdict"] == "" and three["verdict_confidence"] is None


def test_agreeing_accepts_within_one_point_are_approved_automatically():
    found, severity, auto = reasons([_label(accuracy=4, completeness=5, verdict="accept"),
                                     _label(accuracy=5, completeness=4, verdict="accept")], [], ReviewConfig())
    assert (found, severity, auto) == ([], 0, True)


@pytest.mark.parametrize(("labels", "flags", "codes", "severity"), [
    ([_label(verdict="accept"), _label(verdict="reject")], [], ["verdict_split", "rejected"], 7),
    ([_label(verdict="reject"), _label(verdict="reject")], [], ["rejected"], 3),
    ([_label(verdict="accept", corrected_answer="better"), _label(verdict="accept")], [], ["corrected"], 2),
    ([_label(verdict="accept", accuracy=1), _label(verdict="accept", accuracy=4)], [], ["scale_spread"], 3),
    ([_label(verdict="accept"), _label(verdict="accept")], ["empty_answer", "empty_answer"], ["flagged"], 1),
    ([_label(verdict="needs_fix"), _label(verdict="needs_fix")], [], ["not_accepted"], 1),
])
def test_each_reason_sends_the_sample_to_the_queue_with_its_severity(labels, flags, codes, severity):
    found, got_severity, auto = reasons(labels, flags, ReviewConfig())
    assert [r["code"] for r in found] == codes
    assert got_severity == severity and auto is False


def test_reason_details_name_what_disagrees():
    found, _s, _a = reasons([_label(verdict="accept", accuracy=1, conciseness=5), _label(verdict="reject", accuracy=5, conciseness=2)],
                            ["near_duplicate"], ReviewConfig())
    by_code = {r["code"]: r for r in found}
    assert by_code["verdict_split"]["verdicts"] == {"accept": 1, "reject": 1}
    assert [(r["scale"], r["spread"]) for r in found if r["code"] == "scale_spread"] == [("accuracy", 4), ("conciseness", 3)]
    assert by_code["flagged"]["rules"] == ["near_duplicate"]


def test_the_rule_is_a_setting():
    spread = [_label(verdict="accept", accuracy=2), _label(verdict="accept", accuracy=4)]
    assert reasons(spread, [], ReviewConfig(max_spread=2))[2] is True
    assert reasons([_label(verdict="accept")], ["junk"], ReviewConfig(flags_block=False))[2] is True
    found, severity, auto = reasons([_label(verdict="accept")], [], ReviewConfig(auto_approve=False))
    assert (found, severity, auto) == ([{"code": "manual"}], 0, False)


@pytest.mark.parametrize(("raw", "message"), [
    ({"auto": True}, "auto: unknown setting"),
    ({"max_spread": 7}, "max_spread: expected a whole number from 0 to 3"),
    ({"flags_block": "yes"}, "flags_block: expected true or false"),
])
def test_bad_review_settings_name_the_setting(raw, message):
    with pytest.raises(routing.ReviewConfigError, match=message):
        routing.review_config_parse(raw)


# --- through the annotation services ---------------------------------------------------------

def _team(dataset, *names):
    users = [UserFactory(username=n) for n in names]
    for u in users:
        MembershipFactory(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR)
    return users


def _label_sample(dataset, users, values_by_user):
    """Every user labels the one open sample with their values; returns it fresh."""
    for user, values in zip(users, values_by_user, strict=True):
        asg = services.assignment_next(user=user, dataset=dataset)
        services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values=values)
    return Sample.objects.get(pk=asg.sample_id)


def test_a_sample_with_agreeing_labels_is_approved_by_the_rule_and_every_move_is_recorded(dataset):
    a, b = _team(dataset, "a", "b")
    SampleFactory(dataset=dataset)
    sample = _label_sample(dataset, [a, b], [ACCEPT, {**ACCEPT, "accuracy": 4}])
    assert sample.status == Sample.Status.APPROVED and sample.version == 2
    item = ReviewItem.objects.get(sample=sample)
    assert (item.is_open, item.severity, item.reasons, item.verdict, item.accuracy) == (False, 0, [], "accept", 4.5)
    decision = ReviewDecision.objects.get(sample=sample)
    assert (decision.reviewer, decision.decision, decision.status_before, decision.sample_version) == (None, "approve", "in_review", 1)
    moves = list(StatusChange.objects.filter(sample=sample).values_list("from_status", "to_status", "cause", "actor__username"))
    assert moves == [("new", "annotating", "label", "a"), ("annotating", "in_review", "label", "b"),
                     ("in_review", "approved", "auto", None)]


def test_disagreeing_labels_wait_in_the_queue_worst_first(dataset):
    a, b = _team(dataset, "a", "b")
    SampleFactory.create_batch(2, dataset=dataset)
    services.queue_rank_refresh(dataset=dataset)
    mild = _label_sample(dataset, [a, b], [ACCEPT, {**ACCEPT, "accuracy": 2}])
    bad = _label_sample(dataset, [a, b], [ACCEPT, {**ACCEPT, "verdict": "reject"}])
    assert mild.status == bad.status == Sample.Status.IN_REVIEW
    from reviews.selectors import conflict_queue, conflict_reason_counts

    assert [i.sample_id for i in conflict_queue(dataset)] == [bad.pk, mild.pk]
    assert [i.sample_id for i in conflict_queue(dataset, reason="scale_spread")] == [mild.pk]
    assert conflict_reason_counts(dataset) == [("rejected", 1), ("scale_spread", 1), ("verdict_split", 1)]
    assert not ReviewDecision.objects.exists()


def test_a_metric_flag_holds_back_an_otherwise_agreed_sample(dataset):
    a, b = _team(dataset, "a", "b")
    sample = SampleFactory(dataset=dataset, flag_count=1)
    SampleFlag.objects.create(dataset=dataset, sample=sample, metric="cleaning", rule="refusal", reason="answer refuses")
    services.queue_rank_refresh(dataset=dataset)
    sample = _label_sample(dataset, [a, b], [ACCEPT, ACCEPT])
    assert sample.status == Sample.Status.IN_REVIEW
    assert ReviewItem.objects.get(sample=sample).reasons == [{"code": "flagged", "rules": ["refusal"]}]


def test_revising_a_label_in_review_re_routes_it_and_moves_the_version(dataset):
    a, b = _team(dataset, "a", "b")
    SampleFactory(dataset=dataset)
    services.queue_rank_refresh(dataset=dataset)
    sample = _label_sample(dataset, [a, b], [ACCEPT, {**ACCEPT, "verdict": "reject"}])
    version = sample.version
    asg = sample.assignments.get(annotator=b)
    services.assignment_submit(user=b, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
    sample.refresh_from_db()
    assert sample.status == Sample.Status.APPROVED  # the disagreement is gone and the rule approves it
    assert sample.version == version + 2


def test_turning_the_rule_off_keeps_completed_samples_for_a_reviewer_and_back_on_approves_them(dataset):
    a, b = _team(dataset, "a", "b")
    review_settings_set(actor=None, dataset=dataset, values={"auto_approve": False})
    SampleFactory(dataset=dataset)
    sample = _label_sample(dataset, [a, b], [ACCEPT, ACCEPT])
    assert sample.status == Sample.Status.IN_REVIEW
    assert ReviewItem.objects.get(sample=sample).reasons == [{"code": "manual"}]
    review_settings_set(actor=None, dataset=dataset, values={})
    sample.refresh_from_db()
    assert sample.status == Sample.Status.APPROVED


def test_raising_k_takes_an_open_item_back_out_of_the_queue(dataset):
    a, b = _team(dataset, "a", "b")
    SampleFactory(dataset=dataset)
    sample = _label_sample(dataset, [a, b], [ACCEPT, {**ACCEPT, "verdict": "reject"}])
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 3})
    sample.refresh_from_db()
    assert sample.status == Sample.Status.ANNOTATING and not ReviewItem.objects.exists()
    assert StatusChange.objects.filter(sample=sample).last().cause == "settings"


def test_gold_samples_are_never_routed(dataset, owner, tmp_path):
    gold, plain = SampleFactory.create_batch(2, dataset=dataset)
    services.gold_set(actor=owner, dataset=dataset, sample=gold, values={"verdict": "accept"})
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(f'{{"external_id": "{s.external_id}", "annotator": "{u}", "verdict": "reject"}}\n'
                            for s in (gold, plain) for u in ("a", "b")))
    services.labels_import(dataset=dataset, path=path)
    assert Sample.objects.get(pk=gold.pk).status == Sample.Status.NEW
    assert list(ReviewItem.objects.values_list("sample_id", flat=True)) == [plain.pk]


def test_imported_labels_are_routed_like_labels_from_the_page(dataset, tmp_path):
    samples = SampleFactory.create_batch(2, dataset=dataset)
    rows = ["external_id,annotator,verdict,accuracy,completeness,conciseness"]
    rows += [f"{samples[0].external_id},a,accept,5,5,5", f"{samples[0].external_id},b,accept,4,5,5",
             f"{samples[1].external_id},a,accept,5,5,5", f"{samples[1].external_id},b,reject,1,5,5"]
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    services.labels_import(dataset=dataset, path=path)
    statuses = dict(Sample.objects.filter(dataset=dataset).values_list("pk", "status"))
    assert statuses == {samples[0].pk: "approved", samples[1].pk: "in_review"}
    assert StatusChange.objects.filter(cause="import").count() == 2
    assert ReviewItem.objects.get(sample=samples[1]).severity == 4 + 3 + 4  # split, reject, accuracy spread 4
