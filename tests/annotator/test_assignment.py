"""The assignment engine and labels (services), on the embedded default (SQLite). The same engine under
20 parallel annotators on PostgreSQL is in tests/integration/test_annotation_concurrency.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from annotator import rubric, services
from annotator.models import Assignment, GoldLabel, Label, Membership, Sample, Suggestion
from reviews.services import review_settings_set
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

ACCEPT = {"accuracy": 5, "completeness": 4, "conciseness": 4, "difficulty": "easy", "verdict": "accept"}


def _annotators(dataset, *names):
    users = [UserFactory(username=n) for n in names]
    for u in users:
        MembershipFactory(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR)
    return users


def _samples(dataset, n):
    samples = [SampleFactory(dataset=dataset) for _ in range(n)]
    services.queue_rank_refresh(dataset=dataset)
    return samples


def _settings(dataset, *, auto_approve: bool = False, **values):
    """Annotation settings; completed samples wait in review (routing is tested in tests/reviews)."""
    review_settings_set(actor=None, dataset=dataset, values={"auto_approve": auto_approve})
    services.annotation_settings_set(actor=None, dataset=dataset, values=values)
    dataset.refresh_from_db()


def test_next_reserves_a_sample_and_a_reload_gets_the_same_one(dataset):
    ann, = _annotators(dataset, "ann")
    _samples(dataset, 3)

    first = services.assignment_next(user=ann, dataset=dataset)
    again = services.assignment_next(user=ann, dataset=dataset)
    other = services.assignment_next(user=ann, dataset=dataset, exclude=(first.pk,))

    assert first.status == Assignment.Status.RESERVED and again.pk == first.pk
    assert other.pk != first.pk and other.sample_id != first.sample_id
    assert Assignment.objects.filter(annotator=ann).count() == 2


def test_a_sample_is_never_held_by_more_than_k_and_never_given_twice_to_one_person(dataset):
    _settings(dataset, overlap=2)
    a, b, c = _annotators(dataset, "a", "b", "c")
    s1, s2 = _samples(dataset, 2)
    first = services.assignment_next(user=a, dataset=dataset)
    second = services.assignment_next(user=b, dataset=dataset)
    assert first.sample_id == second.sample_id  # the queue fills a sample before moving on

    third = services.assignment_next(user=c, dataset=dataset)
    assert third.sample_id != first.sample_id

    services.assignment_submit(user=a, dataset=dataset, assignment_id=first.pk, values=ACCEPT)
    nxt = services.assignment_next(user=a, dataset=dataset)
    assert nxt.sample_id == third.sample_id  # not the one a already labelled
    assert services.assignment_next(user=a, dataset=dataset, exclude=(nxt.pk,)) is None


def test_k_labels_complete_a_sample_and_it_leaves_the_queue(dataset):
    _settings(dataset, overlap=2)
    a, b, c = _annotators(dataset, "a", "b", "c")
    sample, = _samples(dataset, 1)
    for user in (a, b):
        asg = services.assignment_next(user=user, dataset=dataset)
        services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
        sample.refresh_from_db()
        assert sample.status == (Sample.Status.ANNOTATING if user == a else Sample.Status.IN_REVIEW)

    assert sample.label_count == 2
    assert services.assignment_next(user=c, dataset=dataset) is None
    assert sorted(Label.objects.filter(sample=sample).values_list("annotator__username", flat=True)) == ["a", "b"]


def test_an_expired_reservation_returns_to_the_pool_and_a_late_submit_is_refused_when_taken(dataset):
    _settings(dataset, overlap=2, reservation_minutes=10)
    a, b, c = _annotators(dataset, "a", "b", "c")
    sample, spare = _samples(dataset, 2)
    t0 = timezone.now()
    held = services.assignment_next(user=a, dataset=dataset, now=t0)
    services.assignment_next(user=b, dataset=dataset, now=t0)
    assert services.assignment_next(user=c, dataset=dataset, now=t0).sample_id != held.sample_id

    later = t0 + timedelta(minutes=11)
    taken = services.assignment_next(user=c, dataset=dataset, now=later, exclude=tuple(Assignment.objects.filter(annotator=c).values_list("pk", flat=True)))
    assert taken.sample_id == held.sample_id  # a's lapsed place went to c
    services.assignment_submit(user=c, dataset=dataset, assignment_id=taken.pk, values=ACCEPT, now=later)
    b_asg = Assignment.objects.get(annotator=b, sample=held.sample_id)
    services.assignment_submit(user=b, dataset=dataset, assignment_id=b_asg.pk, values=ACCEPT, now=later)

    with pytest.raises(services.AssignmentGone):
        services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values=ACCEPT, now=later)
    assert Label.objects.filter(sample_id=held.sample_id).count() == 2


def test_a_late_submit_is_accepted_while_there_is_still_room(dataset):
    _settings(dataset, overlap=2, reservation_minutes=5)
    a, = _annotators(dataset, "a")
    _samples(dataset, 1)
    t0 = timezone.now()
    held = services.assignment_next(user=a, dataset=dataset, now=t0)
    label = services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values=ACCEPT, now=t0 + timedelta(hours=2))
    assert label.version == 1 and Sample.objects.get(pk=held.sample_id).label_count == 1


def test_own_lapsed_reservation_is_resumed_when_there_is_room(dataset):
    _settings(dataset, overlap=1, reservation_minutes=5)
    a, = _annotators(dataset, "a")
    _samples(dataset, 2)
    t0 = timezone.now()
    held = services.assignment_next(user=a, dataset=dataset, now=t0)
    resumed = services.assignment_next(user=a, dataset=dataset, now=t0 + timedelta(minutes=30))
    assert resumed.pk == held.pk and resumed.expires_at == t0 + timedelta(minutes=35)


def test_skip_is_not_a_label_and_the_sample_goes_to_someone_else(dataset):
    _settings(dataset, overlap=1)
    a, b = _annotators(dataset, "a", "b")
    sample, = _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    services.assignment_skip(user=a, dataset=dataset, assignment_id=held.pk, reason="outside my field")

    assert services.assignment_next(user=a, dataset=dataset) is None
    assert services.assignment_next(user=b, dataset=dataset).sample_id == sample.pk
    held.refresh_from_db()
    assert (held.status, held.skip_reason) == (Assignment.Status.SKIPPED, "outside my field")
    assert Label.objects.count() == 0 and Sample.objects.get(pk=sample.pk).label_count == 0


def test_revising_keeps_every_version_until_the_sample_is_reviewed(dataset):
    a, = _annotators(dataset, "a")
    sample, = _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    v1 = services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values=ACCEPT)
    v2 = services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values={**ACCEPT, "accuracy": 2, "verdict": "reject"})

    assert (v2.version, v2.is_current, v2.accuracy) == (2, True, 2)
    v1.refresh_from_db()
    assert v1.is_current is False and v1.accuracy == 5
    assert Sample.objects.get(pk=sample.pk).label_count == 1

    Sample.objects.filter(pk=sample.pk).update(status=Sample.Status.APPROVED)
    with pytest.raises(services.LabelLocked):
        services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values=ACCEPT)
    assert Label.objects.filter(sample=sample).count() == 2


def test_the_rubric_names_every_bad_field(dataset):
    a, = _annotators(dataset, "a")
    _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    with pytest.raises(rubric.LabelInvalid) as exc:
        services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk,
                                   values={"accuracy": 7, "completeness": "x", "verdict": "maybe", "error_tags": ["nonsense"]})
    assert set(exc.value.errors) == {"accuracy", "completeness", "verdict", "error_tags", "conciseness"}

    with pytest.raises(rubric.LabelInvalid) as exc:
        services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values={**ACCEPT, "verdict": "needs_fix"})
    assert set(exc.value.errors) == {"corrected_answer"}
    assert Label.objects.count() == 0

    label = services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk,
                                       values={**ACCEPT, "verdict": "needs_fix", "corrected_answer": "A better answer.", "error_tags": "incomplete; factual_error"})
    assert label.error_tags == ["incomplete", "factual_error"] and label.corrected_answer == "A better answer."


def test_a_correction_equal_to_the_original_is_no_correction(dataset):
    a, = _annotators(dataset, "a")
    sample, = _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    with pytest.raises(rubric.LabelInvalid) as exc:
        services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk,
                                   values={**ACCEPT, "verdict": "needs_fix", "corrected_answer": sample.answer + "\n"})
    assert "corrected_answer" in exc.value.errors


def test_required_fields_and_extra_fields_come_from_the_dataset(dataset):
    _settings(dataset, required=["difficulty", "comment"], extra_tags=["style"],
              extra_fields=[{"name": "preference", "choices": ["0", "1", "2"]}])
    a, = _annotators(dataset, "a")
    _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    with pytest.raises(rubric.LabelInvalid) as exc:
        services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values={"verdict": "accept", "extra": {"preference": "3"}})
    assert set(exc.value.errors) == {"difficulty", "comment", "extra.preference"}
    label = services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values={
        "verdict": "accept", "difficulty": "hard", "comment": "fine", "error_tags": ["style"], "extra": {"preference": 2}})
    assert (label.accuracy, label.extra, label.error_tags) == (None, {"preference": "2"}, ["style"])


def test_someone_elses_assignment_is_404_for_every_action(dataset):
    a, b = _annotators(dataset, "a", "b")
    _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    for call in (
        lambda: services.assignment_submit(user=b, dataset=dataset, assignment_id=held.pk, values=ACCEPT),
        lambda: services.assignment_skip(user=b, dataset=dataset, assignment_id=held.pk),
        lambda: services.assignment_draft_save(user=b, dataset=dataset, assignment_id=held.pk, values={"accuracy": 1}),
    ):
        with pytest.raises(Http404):
            call()
    held.refresh_from_db()
    assert held.status == Assignment.Status.RESERVED and held.draft == {}


def test_a_non_member_cannot_ask_for_work(dataset, outsider):
    _samples(dataset, 1)
    with pytest.raises(Http404):
        services.assignment_next(user=outsider, dataset=dataset)
    assert Assignment.objects.count() == 0


def test_drafts_keep_incomplete_values_and_a_submit_clears_them(dataset):
    a, = _annotators(dataset, "a")
    _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    services.assignment_draft_save(user=a, dataset=dataset, assignment_id=held.pk, values={"accuracy": "9", "comment": "half", "junk": 1})
    held.refresh_from_db()
    assert held.draft == {"accuracy": "9", "comment": "half"} and held.draft_saved_at is not None
    services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values=ACCEPT)
    held.refresh_from_db()
    assert held.draft == {} and held.status == Assignment.Status.SUBMITTED


def test_gold_samples_are_mixed_in_for_everyone_and_scored(dataset, owner):
    _settings(dataset, overlap=1, gold_rate=0.5, seed=3)
    a, b = _annotators(dataset, "a", "b")
    gold_sample, *_rest = _samples(dataset, 21)
    services.gold_set(actor=owner, dataset=dataset, sample=gold_sample, values={"verdict": "reject", "accuracy": 1, "difficulty": "easy"})

    active = [a, b]
    while active:  # a and b take turns until the queue is empty for both
        for user in list(active):
            asg = services.assignment_next(user=user, dataset=dataset)
            if asg is None:
                active.remove(user)
                continue
            values = {**ACCEPT, "accuracy": 2, "verdict": "reject"} if user == a else ACCEPT
            services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values=values)
    gold_labels = {lab.annotator.username: lab.gold_score for lab in Label.objects.filter(sample=gold_sample).select_related("annotator")}

    # Both got the gold sample although overlap is 1, and each was scored against it:
    # a: verdict right, accuracy 2 within one of 1, difficulty right; b: only difficulty right.
    assert gold_labels == {"a": 1.0, "b": pytest.approx(1 / 3)}
    gold_sample.refresh_from_db()
    assert gold_sample.status == Sample.Status.NEW  # gold never goes to review
    assert Assignment.objects.filter(sample=gold_sample, is_gold=True).count() == 2
    assert Sample.objects.filter(dataset=dataset, label_count=1).count() == 20  # every ordinary sample once


def test_the_gold_rate_is_a_seeded_draw_per_request(dataset, owner):
    _settings(dataset, overlap=1, gold_rate=0.25, seed=11)
    a, = _annotators(dataset, "a")
    samples = _samples(dataset, 60)
    for s in samples[:20]:
        services.gold_set(actor=owner, dataset=dataset, sample=s, values={"verdict": "accept"})
    while (asg := services.assignment_next(user=a, dataset=dataset)) is not None and Assignment.objects.filter(annotator=a).count() <= 40:
        services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
    gold_share = Assignment.objects.filter(annotator=a, is_gold=True).count() / Assignment.objects.filter(annotator=a).count()
    assert 0.1 <= gold_share <= 0.45


def test_only_owners_set_gold_and_gold_needs_a_verdict(dataset):
    a, = _annotators(dataset, "a")
    sample, = _samples(dataset, 1)
    with pytest.raises(Http404):
        services.gold_set(actor=a, dataset=dataset, sample=sample, values={"verdict": "accept"})
    with pytest.raises(rubric.LabelInvalid):
        services.gold_set(actor=None, dataset=dataset, sample=sample, values={"accuracy": 5})
    assert GoldLabel.objects.count() == 0


def test_random_order_is_seeded(dataset):
    samples = _samples(dataset, 40)
    ids = [s.pk for s in samples]

    def order():
        return list(Sample.objects.filter(pk__in=ids).order_by("queue_rank", "id").values_list("id", flat=True))

    first = order()
    _settings(dataset, seed=1)
    second = order()
    _settings(dataset, seed=0)
    assert order() == first and second != first and sorted(first) == sorted(ids) and first != ids


def test_flagged_order_serves_the_most_flagged_first(dataset):
    a, = _annotators(dataset, "a")
    samples = _samples(dataset, 5)
    Sample.objects.filter(pk=samples[3].pk).update(flag_count=2)
    Sample.objects.filter(pk=samples[1].pk).update(flag_count=1)
    _settings(dataset, order="flagged", overlap=1)
    got = []
    while (asg := services.assignment_next(user=a, dataset=dataset)) is not None:
        services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
        got.append(asg.sample_id)
    assert got[:2] == [samples[3].pk, samples[1].pk] and len(got) == 5


def test_cluster_order_covers_every_cluster_before_repeating_one(dataset):
    from scoring.models import SampleMetric

    samples = _samples(dataset, 9)
    clusters = [0, 0, 0, 0, 0, 1, 1, 2, None]
    for s, c in zip(samples, clusters, strict=True):
        if c is not None:
            SampleMetric.objects.create(sample=s, dataset=dataset, metric="cluster", value=c)
    _settings(dataset, order="cluster")
    ordered = list(Sample.objects.filter(dataset=dataset).order_by("queue_rank", "id").values_list("id", flat=True))
    cluster_of = {s.pk: c for s, c in zip(samples, clusters, strict=True)}
    assert {cluster_of[i] for i in ordered[:3]} == {0, 1, 2}
    assert {cluster_of[i] for i in ordered[3:5]} == {0, 1}
    assert cluster_of[ordered[-1]] is None


def test_changing_the_overlap_moves_samples_between_annotating_and_review(dataset):
    _settings(dataset, overlap=2)
    a, = _annotators(dataset, "a")
    sample, = _samples(dataset, 1)
    asg = services.assignment_next(user=a, dataset=dataset)
    services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
    assert Sample.objects.get(pk=sample.pk).status == Sample.Status.ANNOTATING
    _settings(dataset, overlap=1)
    assert Sample.objects.get(pk=sample.pk).status == Sample.Status.IN_REVIEW
    _settings(dataset, overlap=3)
    assert Sample.objects.get(pk=sample.pk).status == Sample.Status.ANNOTATING


def test_settings_are_checked_and_only_owners_change_them(dataset):
    a, = _annotators(dataset, "a")
    with pytest.raises(rubric.ConfigError, match="overlap"):
        services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 6})
    with pytest.raises(rubric.ConfigError, match="extra_fields"):
        services.annotation_settings_set(actor=None, dataset=dataset, values={"extra_fields": [{"name": "verdict", "choices": ["a", "b"]}]})
    with pytest.raises(Http404):
        services.annotation_settings_set(actor=a, dataset=dataset, values={"overlap": 3})
    dataset.refresh_from_db()
    assert "annotation" not in dataset.settings


def test_suggestions_are_attached_all_or_nothing(dataset, owner):
    s1, s2 = _samples(dataset, 2)
    with pytest.raises(rubric.LabelInvalid) as exc:
        services.suggestions_attach(actor=owner, dataset=dataset, items=[
            {"sample_id": s1.pk, "values": {"accuracy": 4}, "model": "judge"},
            {"external_id": "nope", "values": {"accuracy": 4}},
            {"external_id": s2.external_id, "values": {"verdict": "perhaps"}},
        ])
    assert set(exc.value.errors) == {"items[1]", "items[2].values.verdict"} and Suggestion.objects.count() == 0
    made = services.suggestions_attach(actor=owner, dataset=dataset, items=[
        {"sample_id": s1.pk, "values": {"accuracy": 4, "verdict": "accept"}, "model": "judge"},
        {"external_id": s2.external_id, "values": {"difficulty": "hard"}},
    ])
    assert [(m.sample_id, m.values) for m in made] == [(s1.pk, {"accuracy": 4, "verdict": "accept"}), (s2.pk, {"difficulty": "hard"})]


def test_an_import_puts_new_samples_in_the_queue(dataset, owner, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = b"".join(b'{"instruction": "Q%d", "input": "", "output": "A%d"}\n' % (i, i) for i in range(5))
    job = services.import_job_create(user=owner, dataset=dataset, upload=SimpleUploadedFile("q.jsonl", data), enqueue=False)
    services.import_job_run(job=services.import_job_claim(job_id=job.pk))
    assert Sample.objects.filter(dataset=dataset, queue_rank__isnull=True).count() == 0
    assert Sample.objects.filter(dataset=dataset).count() == 5


def test_marking_a_sample_gold_scores_the_labels_it_already_has_and_clearing_unscores_them(dataset, owner):
    a, = _annotators(dataset, "a")
    sample, = _samples(dataset, 1)
    asg = services.assignment_next(user=a, dataset=dataset)
    services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
    assert Label.objects.get().gold_score is None

    services.gold_set(actor=owner, dataset=dataset, sample=sample, values={"verdict": "accept", "difficulty": "hard"})
    assert Label.objects.get().gold_score == pytest.approx(0.5)  # verdict right, difficulty wrong
    services.gold_set(actor=owner, dataset=dataset, sample=sample, values={"verdict": "accept"})
    assert Label.objects.get().gold_score == pytest.approx(1.0)
    services.gold_clear(actor=owner, dataset=dataset, sample=sample)
    assert Label.objects.get().gold_score is None and GoldLabel.objects.count() == 0


@pytest.mark.parametrize("raw, named", [
    ({"required": 5}, "required"), ({"required": "accuracy"}, "required"), ({"extra_tags": "style"}, "extra_tags"),
    ({"extra_fields": {"name": "x"}}, "extra_fields"), ({"overlapp": 2}, "overlapp"), ({"gold_rate": 0.9}, "gold_rate"),
    ({"order": "alphabetical"}, "order"), ({"seed": -1}, "seed"),
])
def test_bad_settings_name_the_setting(raw, named):
    with pytest.raises(rubric.ConfigError) as exc:
        rubric.config_parse(raw)
    assert str(exc.value).startswith(named + ":")


def test_malformed_suggestion_items_are_named_not_crashed_on(dataset, owner):
    s1, = _samples(dataset, 1)
    with pytest.raises(rubric.LabelInvalid) as exc:
        services.suggestions_attach(actor=owner, dataset=dataset, items=[
            "not an object", {"sample_id": "abc", "values": {}}, {"sample_id": s1.pk, "values": {"accuracy": 3, "bogus": 1, "other": 2}},
        ])
    assert set(exc.value.errors) == {"items[0]", "items[1].sample_id", "items[2].values.bogus", "items[2].values.other"}
    assert Suggestion.objects.count() == 0


def test_a_reviewed_sample_takes_no_new_label_nor_drafts(dataset):
    _settings(dataset, overlap=2)
    a, b = _annotators(dataset, "a", "b")
    sample, = _samples(dataset, 1)
    held_a = services.assignment_next(user=a, dataset=dataset)
    held_b = services.assignment_next(user=b, dataset=dataset)
    services.assignment_submit(user=a, dataset=dataset, assignment_id=held_a.pk, values=ACCEPT)
    services.assignment_draft_save(user=a, dataset=dataset, assignment_id=held_a.pk, values={"comment": "revising"})
    Sample.objects.filter(pk=sample.pk).update(status=Sample.Status.REJECTED)  # a reviewer decided early

    with pytest.raises(services.LabelLocked):
        services.assignment_submit(user=b, dataset=dataset, assignment_id=held_b.pk, values=ACCEPT)
    with pytest.raises(services.LabelLocked):
        services.assignment_draft_save(user=a, dataset=dataset, assignment_id=held_a.pk, values={"comment": "late"})
    assert Label.objects.filter(sample=sample).count() == 1 and Sample.objects.get(pk=sample.pk).label_count == 1


def test_a_revision_clears_the_draft_it_came_from(dataset):
    a, = _annotators(dataset, "a")
    _samples(dataset, 1)
    held = services.assignment_next(user=a, dataset=dataset)
    services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values=ACCEPT)
    services.assignment_draft_save(user=a, dataset=dataset, assignment_id=held.pk, values={"accuracy": 2})
    services.assignment_submit(user=a, dataset=dataset, assignment_id=held.pk, values={**ACCEPT, "accuracy": 2})
    held.refresh_from_db()
    assert held.draft == {} and held.draft_saved_at is None


def test_gold_does_not_stand_out_in_progress_or_after_review(dataset, owner):
    from annotator import selectors

    _settings(dataset, overlap=1, gold_rate=0.5, seed=5)
    a, = _annotators(dataset, "a")
    samples = _samples(dataset, 8)
    for s in samples[:4]:
        services.gold_set(actor=owner, dataset=dataset, sample=s, values={"verdict": "accept"})
    Sample.objects.filter(pk__in=[s.pk for s in samples[:4]]).update(status=Sample.Status.APPROVED)  # gold picked from approved data
    drops = set()
    while True:
        before = selectors.annotation_progress(a, dataset, overlap=1)["remaining"]
        asg = services.assignment_next(user=a, dataset=dataset)
        if asg is None:
            break
        drops.add(before - selectors.annotation_progress(a, dataset, overlap=1)["remaining"])
        services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
        # a gold sample can be revised like any other, although its status says reviewed
        services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values={**ACCEPT, "accuracy": 4})
    assert drops == {1}  # every reservation, gold or not, lowers "remaining" by one
    assert Assignment.objects.filter(annotator=a, is_gold=True).exists()


def test_clearing_gold_gives_the_sample_the_status_its_labels_call_for(dataset, owner):
    _settings(dataset, overlap=1)
    a, = _annotators(dataset, "a")
    sample, = _samples(dataset, 1)
    services.gold_set(actor=owner, dataset=dataset, sample=sample, values={"verdict": "accept"})
    now = timezone.now()
    asg = Assignment.objects.create(dataset=dataset, sample=sample, annotator=a, is_gold=True, reserved_at=now, expires_at=now + timedelta(hours=1))
    services.assignment_submit(user=a, dataset=dataset, assignment_id=asg.pk, values=ACCEPT)
    assert Sample.objects.get(pk=sample.pk).status == Sample.Status.NEW
    services.gold_clear(actor=owner, dataset=dataset, sample=sample)
    assert Sample.objects.get(pk=sample.pk).status == Sample.Status.IN_REVIEW


def test_one_annotator_holds_only_a_few_reservations(dataset):
    from annotator.services import annotation

    a, = _annotators(dataset, "a")
    _samples(dataset, 20)
    held = []
    for _ in range(10):
        asg = services.assignment_next(user=a, dataset=dataset, exclude=tuple(held))
        if asg is None:
            break
        held.append(asg.pk)
    assert len(held) == annotation.MAX_HELD


def test_a_draft_with_infinity_is_refused_by_name(dataset):
    a, = _annotators(dataset, "a")
    _samples(dataset, 1)
    asg = services.assignment_next(user=a, dataset=dataset)
    with pytest.raises(rubric.LabelInvalid) as exc:
        services.assignment_draft_save(user=a, dataset=dataset, assignment_id=asg.pk, values={"accuracy": float("inf")})
    assert set(exc.value.errors) == {"draft"}


def test_extra_field_choices_must_be_a_list():
    for choices in (5, True, "ab"):
        with pytest.raises(rubric.ConfigError, match="choices as a list"):
            rubric.config_parse({"extra_fields": [{"name": "p", "choices": choices}]})
