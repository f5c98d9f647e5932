"""The assignment engine under 20 annotators working at once on PostgreSQL: every sample ends with
exactly k labels from k different people, nobody is given a sample twice, and abandoned
reservations hold samples back only until they lapse. Each annotator is a thread with its own
database connection, calling the services as the API views do (next, then submit).

Time is simulated: the services take `now`, so a reservation "lapses" without waiting."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from annotator import services
from annotator.models import Assignment, Dataset, Label, Membership, Sample
from reviews.models import ReviewDecision, ReviewItem, StatusChange
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ACCEPT = {"accuracy": 4, "completeness": 4, "conciseness": 4, "difficulty": "easy", "verdict": "accept"}
N_ANNOTATORS = 20
K = 2


def _setup(dataset: Dataset, *, n_samples: int, reservation_minutes: int = 30) -> list:
    Sample.objects.bulk_create(SampleFactory.build_batch(n_samples, dataset=dataset), batch_size=500)
    services.queue_rank_refresh(dataset=dataset)
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": K, "reservation_minutes": reservation_minutes})
    users = [UserFactory(username=f"annotator{i:02d}") for i in range(N_ANNOTATORS)]
    for user in users:
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    return users


def _run_parallel(work, users) -> tuple[dict[int, object], list[tuple[str, BaseException]]]:
    """Run `work(user, dataset)` for every user, each in its own thread (so its own connection),
    all released at once. Returns each thread's result by user id and the exceptions raised."""
    start = threading.Barrier(len(users))
    results: dict[int, object] = {}
    errors: list[tuple[str, BaseException]] = []

    def thread(user_id: int, dataset_id: int) -> None:
        try:
            # Each thread loads its own rows: nothing is shared between connections but ids.
            user = type(users[0]).objects.get(pk=user_id)
            dataset = Dataset.objects.get(pk=dataset_id)
            start.wait(timeout=30)
            results[user_id] = work(user, dataset)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on in the test
            errors.append((f"user {user_id}", exc))
            start.abort()
        finally:
            connections.close_all()

    dataset_id = Membership.objects.filter(user=users[0]).values_list("dataset_id", flat=True).get()
    threads = [threading.Thread(target=thread, args=(u.pk, dataset_id), name=f"annotator-{u.pk}") for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an annotator thread hung (deadlock?)"
    return results, errors


def _assert_every_sample_has_k_labels_from_k_people(dataset: Dataset, n_samples: int) -> None:
    current = list(Label.objects.filter(dataset=dataset, is_current=True).values_list("sample_id", "annotator_id"))
    by_sample: dict[int, list[int]] = defaultdict(list)
    for sample_id, annotator_id in current:
        by_sample[sample_id].append(annotator_id)
    sample_ids = set(Sample.objects.filter(dataset=dataset).values_list("id", flat=True))
    assert set(by_sample) == sample_ids
    assert Counter(len(v) for v in by_sample.values()) == {K: n_samples}
    assert all(len(set(v)) == K for v in by_sample.values())  # k different people
    assert Label.objects.filter(dataset=dataset).count() == K * n_samples  # no revisions, no stray versions
    # nobody was given a sample twice (the unique constraint would raise, but say it outright)
    pairs = list(Assignment.objects.filter(dataset=dataset).values_list("sample_id", "annotator_id"))
    assert len(pairs) == len(set(pairs))
    # every label accepts with the same scores, so the default rule approved each sample as it completed
    assert list(Sample.objects.filter(dataset=dataset).values_list("label_count", "status").order_by().distinct()) == [(K, Sample.Status.APPROVED)]
    assert ReviewDecision.objects.filter(dataset=dataset, reviewer=None).count() == n_samples
    assert ReviewItem.objects.filter(dataset=dataset, is_open=False).count() == n_samples
    assert StatusChange.objects.filter(dataset=dataset, to_status=Sample.Status.APPROVED).count() == n_samples
    assert not Assignment.objects.filter(dataset=dataset, status=Assignment.Status.RESERVED).exists()


def test_twenty_annotators_in_parallel_give_every_sample_exactly_k_labels(dataset):
    # given 500 samples, overlap 2 and 20 annotators
    users = _setup(dataset, n_samples=500)

    def annotate(user, dataset):
        done = []
        while (assignment := services.assignment_next(user=user, dataset=dataset)) is not None:
            services.assignment_submit(user=user, dataset=dataset, assignment_id=assignment.pk, values=ACCEPT)
            done.append(assignment.sample_id)
        return done

    # when each loops next -> submit until nothing is left
    results, errors = _run_parallel(annotate, users)

    # then no request raised, and every sample has exactly 2 labels from 2 different people
    assert errors == []
    assert sum(len(done) for done in results.values()) == K * 500
    assert all(len(done) == len(set(done)) for done in results.values())
    _assert_every_sample_has_k_labels_from_k_people(dataset, 500)
    assert list(Assignment.objects.filter(dataset=dataset).values_list("status", flat=True).order_by().distinct()) == [Assignment.Status.SUBMITTED]
    # the work was shared: every annotator labelled something
    assert len([u for u, done in results.items() if done]) == N_ANNOTATORS


def test_abandoned_reservations_hold_samples_only_until_they_lapse(dataset):
    # given 200 samples, overlap 2, 10-minute reservations, 20 annotators of whom 5 walk away from
    # every third sample they are given (they never submit it and ask for another)
    users = _setup(dataset, n_samples=200, reservation_minutes=10)
    quitters = {u.pk for u in users[:5]}
    t0 = timezone.now()
    later = t0 + timedelta(minutes=11)  # every reservation made at t0 has lapsed

    def first_pass(user, dataset):
        abandoned: list[int] = []
        n = 0
        while (a := services.assignment_next(user=user, dataset=dataset, exclude=tuple(abandoned), now=t0)) is not None:
            n += 1
            if user.pk in quitters and n % 3 == 0:
                abandoned.append(a.pk)
                continue
            services.assignment_submit(user=user, dataset=dataset, assignment_id=a.pk, values=ACCEPT, now=t0)
        return abandoned

    # when everyone works until nothing is left at t0
    results, errors = _run_parallel(first_pass, users)
    assert errors == []
    abandoned = {pk for ids in results.values() for pk in ids}
    held = set(Assignment.objects.filter(pk__in=abandoned).values_list("sample_id", flat=True))

    # then exactly the samples under a live abandoned reservation are short of labels
    assert len(abandoned) > 0
    short = set(Sample.objects.filter(dataset=dataset).exclude(status=Sample.Status.APPROVED).values_list("id", flat=True))
    assert short == held
    assert Assignment.objects.filter(dataset=dataset, status=Assignment.Status.RESERVED).count() == len(abandoned)
    for sample in Sample.objects.filter(pk__in=held):
        reserved = Assignment.objects.filter(sample=sample, status=Assignment.Status.RESERVED).count()
        assert sample.label_count + reserved == K

    # when, after the reservations lapse, everyone (the 5 coming back too) works until nothing is left
    def second_pass(user, dataset):
        while (a := services.assignment_next(user=user, dataset=dataset, now=later)) is not None:
            services.assignment_submit(user=user, dataset=dataset, assignment_id=a.pk, values=ACCEPT, now=later)

    _results, errors = _run_parallel(second_pass, users)

    # then every sample still ends with exactly k labels, and no reservation is left
    assert errors == []
    _assert_every_sample_has_k_labels_from_k_people(dataset, 200)
    lapsed = Assignment.objects.filter(pk__in=abandoned)
    came_back = lapsed.filter(status=Assignment.Status.SUBMITTED).count()
    expired = lapsed.filter(status=Assignment.Status.EXPIRED).count()
    assert came_back + expired == len(abandoned)

    # and a late submit of a reservation that lapsed and was taken by others is refused, writing nothing
    # (the sample those others completed is approved by now, so the refusal says it is reviewed)
    for assignment in lapsed.filter(status=Assignment.Status.EXPIRED).select_related("annotator"):
        with pytest.raises(services.LabelLocked):
            services.assignment_submit(user=assignment.annotator, dataset=dataset, assignment_id=assignment.pk, values=ACCEPT, now=later)
    assert Label.objects.filter(dataset=dataset).count() == K * 200


def test_next_does_not_answer_nothing_left_while_a_sample_with_room_is_locked_for_a_moment(dataset):
    # given one sample, overlap 2, held by one annotator (one place left)
    a, b = _setup(dataset, n_samples=1)[:2]
    held = services.assignment_next(user=a, dataset=dataset)
    locked, errors = threading.Event(), []

    def submit_in_flight():  # what assignment_submit does first: lock the sample row, then work ~0.3 s
        try:
            with transaction.atomic():
                Sample.objects.select_for_update().get(pk=held.sample_id)
                locked.set()
                time.sleep(0.3)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            locked.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=submit_in_flight)
    thread.start()
    assert locked.wait(timeout=10)

    # when the other annotator asks for the next sample meanwhile
    got = services.assignment_next(user=b, dataset=dataset)
    thread.join(timeout=10)

    # then they get the place that is left, not "nothing left"
    assert errors == []
    assert got is not None and got.sample_id == held.sample_id
