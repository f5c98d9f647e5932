"""The reviewer dashboard: its selectors on small hand-counted data (progress per day, throughput,
balance of approved data), the agreement section and its Recompute button, who may see it, and a
query count that does not grow with the data."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotator.models import Assignment, ImportJob, Label, Membership, Sample
from reviews import dashboard
from reviews.models import AgreementReport, ReviewItem, StatusChange
from reviews.services import agreement_run
from scoring.models import SampleMetric
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

T = date(2024, 3, 10)  # "today" for the selector tests
S = Sample.Status


pytestmark = pytest.mark.both  # SQLite in `make test-unit`, PostgreSQL in `make test-integration`


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """Finished days are kept in the cache: each test starts with an empty one of its own (never
    the integration pass's Redis, which the Celery worker shares)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "dashboard-tests"}}
    cache.clear()
    yield
    cache.clear()


def at(day: date, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def days_before(n: int, today: date = T) -> date:
    return today - timedelta(days=n)


def imported(dataset, n: int, day: date, *, status: str = ImportJob.Status.SUCCEEDED) -> ImportJob:
    return ImportJob.objects.create(dataset=dataset, status=status, imported_count=n, records_total=n, finished_at=at(day, 9))


def move(sample, before: str, after: str, day: date | None, cause=StatusChange.Cause.LABEL) -> None:
    """A logged move at noon of `day`, or now (None)."""
    when = timezone.now() if day is None else at(day)
    StatusChange.objects.create(dataset=sample.dataset, sample=sample, from_status=before, to_status=after, cause=cause, at=when)


def label(sample, user, day: date, hour: int = 12, **values) -> Label:
    asg, _ = Assignment.objects.get_or_create(
        sample=sample, annotator=user,
        defaults={"dataset": sample.dataset, "status": Assignment.Status.SUBMITTED, "reserved_at": at(day), "expires_at": at(day)})
    version = Label.objects.filter(assignment=asg).count() + 1
    Label.objects.filter(assignment=asg).update(is_current=False)
    return Label.objects.create(assignment=asg, dataset=sample.dataset, sample=sample, annotator=user, version=version,
                                verdict=values.pop("verdict", "accept"), created_at=at(day, hour), **values)


def story(dataset, today: date = T):
    """Six samples over four days, every move logged:
    T-3: import A (4 samples)
    T-2: import B (2 samples); s1, s2 new -> annotating
    T-1: s1, s2 annotating -> in_review; s3 new -> annotating; s1 in_review -> approved (auto rule)
    T  : s2 in_review -> rejected (a decision); s3 annotating -> in_review
    Now: s1 approved, s2 rejected, s3 in review, s4-s6 new."""
    job_a, job_b = imported(dataset, 4, days_before(3, today)), imported(dataset, 2, days_before(2, today))
    imported(dataset, 0, days_before(2, today), status=ImportJob.Status.FAILED)  # a failed import adds nothing
    final = [S.APPROVED, S.REJECTED, S.IN_REVIEW, S.NEW, S.NEW, S.NEW]
    s = [SampleFactory(dataset=dataset, status=st, import_job=job_a if i < 4 else job_b) for i, st in enumerate(final)]
    move(s[0], S.NEW, S.ANNOTATING, days_before(2, today))
    move(s[1], S.NEW, S.ANNOTATING, days_before(2, today))
    move(s[0], S.ANNOTATING, S.IN_REVIEW, days_before(1, today))
    move(s[1], S.ANNOTATING, S.IN_REVIEW, days_before(1, today))
    move(s[2], S.NEW, S.ANNOTATING, days_before(1, today))
    move(s[0], S.IN_REVIEW, S.APPROVED, days_before(1, today), StatusChange.Cause.AUTO)
    move(s[1], S.IN_REVIEW, S.REJECTED, today, StatusChange.Cause.DECISION)
    move(s[2], S.ANNOTATING, S.IN_REVIEW, today)
    return s


def test_progress_counts_samples_by_status_per_day_and_ends_on_todays_counts(dataset):
    story(dataset)
    other = DatasetFactory(slug="other")  # another dataset's imports and moves count nowhere here
    stranger = SampleFactory(dataset=other, status=S.ANNOTATING, import_job=imported(other, 1, days_before(1)))
    move(stranger, S.NEW, S.ANNOTATING, T)

    p = dashboard.progress(dataset, today=T)

    assert p["days"] == [days_before(4), days_before(3), days_before(2), days_before(1), T]
    assert p["series"] == {
        "new":        [0, 4, 4, 3, 3],
        "annotating": [0, 0, 2, 1, 0],
        "in_review":  [0, 0, 0, 1, 1],
        "approved":   [0, 0, 0, 1, 1],
        "rejected":   [0, 0, 0, 0, 1],
    }
    assert p["arrived"] == [0, 4, 2, 0, 0] and p["moved"] == [0, 0, 2, 4, 2]
    # The log explains everything: the day before the first import is empty, and the last day is now.
    assert p["before"] == dict.fromkeys(dashboard.STATUSES, 0) and p["folded"] is False
    assert {s: v[-1] for s, v in p["series"].items()} == p["current"] == dashboard.status_counts(dataset)
    assert p["current"] == {"new": 3, "annotating": 0, "in_review": 1, "approved": 1, "rejected": 1}
    assert p["total"] == 6


def test_progress_folds_history_before_the_window_into_its_first_day(dataset):
    story(dataset)
    old = SampleFactory(dataset=dataset, status=S.IN_REVIEW, import_job=imported(dataset, 1, days_before(200)))
    move(old, S.NEW, S.ANNOTATING, days_before(150))
    move(old, S.ANNOTATING, S.IN_REVIEW, days_before(2))

    p = dashboard.progress(dataset, today=T, days=90)

    assert p["days"][0] == days_before(4)  # the window starts at the day before its first event
    assert p["before"] == {"new": 0, "annotating": 1, "in_review": 0, "approved": 0, "rejected": 0} and p["folded"] is True
    assert p["series"]["annotating"] == [1, 1, 2, 1, 0]
    assert p["series"]["in_review"] == [0, 0, 1, 2, 2]
    assert {s: v[-1] for s, v in p["series"].items()} == dashboard.status_counts(dataset)

    # With a 3-day window the earlier days are folded into its first day.
    short = dashboard.progress(dataset, today=T, days=3)
    assert short["days"] == [days_before(2), days_before(1), T]
    assert short["series"]["new"] == [4, 3, 3] and short["series"]["annotating"] == [2, 1, 0]
    assert {s: v[-1] for s, v in short["series"].items()} == dashboard.status_counts(dataset)


def test_progress_of_an_empty_dataset_is_two_days_of_zeros(dataset):
    p = dashboard.progress(dataset, today=T)
    assert p["days"] == [days_before(1), T]
    assert p["series"] == {s: [0, 0] for s in dashboard.STATUSES}


def test_throughput_counts_labels_per_annotator_per_day_in_the_window(dataset):
    s = story(dataset)
    ann_a, ann_b = UserFactory(username="ann_a"), UserFactory(username="ann_b")
    label(s[0], ann_a, days_before(2), hour=9)
    label(s[1], ann_a, days_before(2), hour=15)
    label(s[0], ann_a, T)  # a revision counts: it is work done
    label(s[0], ann_b, days_before(1))
    label(s[1], ann_b, days_before(200))  # before the window
    other = DatasetFactory(slug="other")
    label(SampleFactory(dataset=other), ann_a, T)

    tp = dashboard.throughput(dataset, today=T)

    assert tp["days"] == [days_before(3), days_before(2), days_before(1), T]
    assert tp["per_day"] == [0, 2, 1, 1] and tp["total"] == 4
    assert [(a["annotator"], a["per_day"], a["total"], a["best"], a["active_days"]) for a in tp["annotators"]] == [
        ("ann_a", [0, 2, 0, 1], 3, 2, 2),
        ("ann_b", [0, 0, 1, 0], 1, 1, 1),
    ]


def _approved(dataset, task_type: str, difficulty: str | None, *, status=S.APPROVED, bucket: str | None = None):
    sample = SampleFactory(dataset=dataset, status=status, task_type=task_type)
    if difficulty is not None:
        ReviewItem.objects.create(dataset=dataset, sample=sample, is_open=False, labels_n=2, difficulty=difficulty)
    if bucket is not None:
        SampleMetric.objects.create(dataset=dataset, sample=sample, metric="difficulty_bucket", label=bucket)
    return sample


def test_balance_counts_approved_samples_by_task_type_and_consensus_difficulty(dataset):
    for task_type, difficulty in [("qa", "easy"), ("qa", "easy"), ("qa", "hard"), ("code", "medium"), ("code", None), ("", "easy")]:
        _approved(dataset, task_type, difficulty)
    _approved(dataset, "qa", "easy", status=S.REJECTED)
    _approved(dataset, "qa", "easy", status=S.IN_REVIEW)
    _approved(DatasetFactory(slug="other"), "qa", "easy")

    b = dashboard.approved_balance(dataset)

    assert b["source"] == "consensus"
    assert [(r["task_type"], r["cells"], r["total"]) for r in b["rows"]] == [
        ("qa", {"easy": 2, "medium": 0, "hard": 1, "": 0}, 3),
        ("code", {"easy": 0, "medium": 1, "hard": 0, "": 1}, 2),
        ("", {"easy": 1, "medium": 0, "hard": 0, "": 0}, 1),
    ]
    assert b["columns"] == {"easy": 3, "medium": 1, "hard": 1, "": 1} and b["total"] == 6 and b["max_cell"] == 2


def test_balance_uses_scorings_buckets_when_the_dataset_has_them(dataset):
    _approved(dataset, "qa", "easy", bucket="hard")
    _approved(dataset, "qa", "easy", bucket="medium")
    _approved(dataset, "qa", "hard")  # scored before this sample came: no bucket
    _approved(dataset, "code", None, bucket="easy")
    _approved(dataset, "code", None, bucket="easy", status=S.REJECTED)

    b = dashboard.approved_balance(dataset)

    assert b["source"] == "scoring"
    assert [(r["task_type"], r["cells"]) for r in b["rows"]] == [
        ("qa", {"easy": 0, "medium": 1, "hard": 1, "": 1}),
        ("code", {"easy": 1, "medium": 0, "hard": 0, "": 0}),
    ]


def test_balance_folds_the_smallest_task_types_into_one_row(dataset, monkeypatch):
    monkeypatch.setattr(dashboard, "MAX_TASK_TYPES", 3)
    for i, task_type in enumerate(["a", "b", "c", "d"]):
        for _ in range(4 - i):
            _approved(dataset, task_type, "easy")
    b = dashboard.approved_balance(dataset)
    assert [(r["task_type"], r["other"], r["total"]) for r in b["rows"]] == [("a", False, 4), ("b", False, 3), ("", True, 3)]
    assert b["folded"] == 2 and b["total"] == 10


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

REPORT = {
    "dataset": "ds", "labels": 16, "resamples": 200, "seed": 0,
    "criteria": [
        {"criterion": "accuracy", "level": "ordinal", "annotators": 2, "samples": 8,
         "alpha": {"value": 0.8123, "low": 0.6012, "high": 0.9345, "n": 8}, "fleiss": None, "cohen": []},
        {"criterion": "verdict", "level": "nominal", "annotators": 2, "samples": 8,
         "alpha": {"value": -0.1, "low": -0.45, "high": 0.2, "n": 8}, "fleiss": None, "cohen": []},
        {"criterion": "completeness", "level": "ordinal", "annotators": 2, "samples": 8,
         "alpha": {"value": None, "low": None, "high": None, "n": 0}, "fleiss": None, "cohen": []},
    ],
    "annotators": [
        {"annotator": "ann_a", "labels": 8, "agreement": 0.75, "compared": 8,
         "leniency": {"accuracy": 0.25, "completeness": 0.0, "conciseness": -0.5}, "gold_n": 2, "gold_accuracy": 0.5,
         "labels_per_hour": 42.0, "hours": 0.2, "skipped": 1, "skip_rate": 0.1111},
    ],
}


def _reviewer_client(client, dataset, role=Membership.Role.REVIEWER, username="rita"):
    user = UserFactory(username=username)
    MembershipFactory(user=user, dataset=dataset, role=role)
    client.force_login(user)
    return client, user


def _report(dataset, *, status=AgreementReport.Status.SUCCEEDED, last_label_id=0, report=None) -> AgreementReport:
    return AgreementReport.objects.create(dataset=dataset, status=status, report=REPORT if report is None else report,
                                          labels_seen=16, last_label_id=last_label_id, resamples=200,
                                          finished_at=timezone.now() if status == AgreementReport.Status.SUCCEEDED else None)


def test_the_page_shows_every_section(client, dataset):
    c, _user = _reviewer_client(client, dataset)
    today = timezone.localdate()
    s = story(dataset, today)
    ann = UserFactory(username="ann_a")
    MembershipFactory(user=ann, dataset=dataset, role=Membership.Role.ANNOTATOR)
    label(s[0], ann, today)
    ReviewItem.objects.create(dataset=dataset, sample=s[2], is_open=True, severity=4, labels_n=2,
                              reasons=[{"code": "verdict_split"}, {"code": "scale_spread", "scale": "accuracy", "spread": 2}])
    _report(dataset, last_label_id=Label.objects.order_by("-id").first().pk)

    response = c.get(f"/d/{dataset.slug}/dashboard/")

    assert response.status_code == 200
    body = response.content.decode()
    for section in ("progress", "throughput", "agreement", "annotators", "reasons", "balance"):
        assert f'id="{section}"' in body
    assert body.count('class="area st-') == 5
    assert body.count('<rect class="column"') == 5  # one column per day of the throughput chart
    assert body.count('<polyline class="sparkline"') == 1
    assert body.count('<circle class="dot"') == 2 and body.count('<line class="whisker"') == 2  # completeness is undefined
    assert "0.812" in body and "[0.601, 0.935]" in body and "undefined" in body
    assert 'href="/d/ds/review/?reason=verdict_split"' in body and 'href="/d/ds/review/?reason=scale_spread"' in body
    assert "+0.25" in body and "-0.50" in body and "75%" in body
    assert 'id="agreement-stale"' not in body
    assert 'hx-trigger="every 2s"' not in body


def test_the_page_says_when_labels_came_after_the_report(client, dataset):
    c, _user = _reviewer_client(client, dataset)
    sample = SampleFactory(dataset=dataset)
    first = label(sample, UserFactory(username="ann_a"), timezone.localdate())
    _report(dataset, last_label_id=first.pk)
    assert 'id="agreement-stale"' not in c.get(f"/d/{dataset.slug}/dashboard/").content.decode()

    label(sample, UserFactory(username="ann_b"), timezone.localdate())

    assert 'id="agreement-stale"' in c.get(f"/d/{dataset.slug}/dashboard/").content.decode()


def test_a_failed_computation_is_shown_above_the_last_good_report(client, dataset):
    c, _user = _reviewer_client(client, dataset)
    _report(dataset)
    AgreementReport.objects.create(dataset=dataset, status=AgreementReport.Status.FAILED, error="MemoryError: too many labels",
                                   finished_at=timezone.now())

    body = c.get(f"/d/{dataset.slug}/dashboard/").content.decode()

    assert "MemoryError: too many labels" in body and "0.812" in body and 'role="alert"' in body


def test_recompute_queues_one_report_and_polls_until_it_is_done(client, dataset, django_capture_on_commit_callbacks):
    c, user = _reviewer_client(client, dataset)
    url = f"/d/{dataset.slug}/dashboard/agreement/"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = c.post(url, HTTP_HX_REQUEST="true")

    assert response.status_code == 200 and len(callbacks) == 1
    report = AgreementReport.objects.get(dataset=dataset)
    assert (report.status, report.requested_by) == (AgreementReport.Status.QUEUED, user)
    body = response.content.decode()
    assert 'hx-trigger="every 2s"' in body and 'id="agreement-pending"' in body and 'hx-swap-oob="true"' in body

    # While it is pending, more clicks (htmx or a plain form) add nothing.
    with django_capture_on_commit_callbacks(execute=True) as again:
        assert c.post(url, HTTP_HX_REQUEST="true").status_code == 200
        assert c.post(url).status_code == 302
    assert again == [] and AgreementReport.objects.filter(dataset=dataset).count() == 1
    assert 'hx-trigger="every 2s"' in c.get(url, HTTP_HX_REQUEST="true").content.decode()

    agreement_run(report.pk)  # what the worker does with it (the enqueued callback is the same on any broker)
    report.refresh_from_db()
    assert report.status == AgreementReport.Status.SUCCEEDED
    body = c.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' not in body and 'id="agreement-computed"' in body


def test_recompute_without_javascript_redirects_to_the_dashboard(client, dataset, django_capture_on_commit_callbacks):
    c, _user = _reviewer_client(client, dataset, role=Membership.Role.OWNER, username="otto")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = c.post(f"/d/{dataset.slug}/dashboard/agreement/")
    assert response.status_code == 302 and response["Location"] == f"/d/{dataset.slug}/dashboard/#agreement"
    assert len(callbacks) == 1
    assert list(AgreementReport.objects.filter(dataset=dataset).values_list("status", flat=True)) == [AgreementReport.Status.QUEUED]
    assert "being computed" in c.get(response["Location"]).content.decode()  # the message says so
    assert c.get(f"/d/{dataset.slug}/dashboard/agreement/")["Location"] == f"/d/{dataset.slug}/dashboard/#agreement"


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_annotators_and_outsiders_get_404(client, dataset, who):
    user = UserFactory(username="anna")
    if who == "annotator":
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    else:
        MembershipFactory(user=user, dataset=DatasetFactory(slug="theirs"), role=Membership.Role.OWNER)
    client.force_login(user)
    _report(dataset)

    assert client.get(f"/d/{dataset.slug}/dashboard/").status_code == 404
    assert client.get(f"/d/{dataset.slug}/dashboard/agreement/", HTTP_HX_REQUEST="true").status_code == 404
    assert client.post(f"/d/{dataset.slug}/dashboard/agreement/").status_code == 404
    assert AgreementReport.objects.filter(dataset=dataset).count() == 1  # nothing queued


def test_anonymous_users_are_sent_to_log_in(client, dataset):
    response = client.get(f"/d/{dataset.slug}/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def _fill(dataset, k: int, annotators: list) -> None:
    """k copies of a small dataset's history: imports, moves, labels, open conflicts, approved samples."""
    today = timezone.localdate()
    for i in range(k):
        job = imported(dataset, 5, today - timedelta(days=3 + i))
        samples = [SampleFactory(dataset=dataset, import_job=job, status=st, task_type=f"type-{i % 4}")
                   for st in (S.APPROVED, S.REJECTED, S.IN_REVIEW, S.ANNOTATING, S.NEW)]
        for sample in samples[:4]:
            move(sample, S.NEW, S.ANNOTATING, today - timedelta(days=2 + i))
        for sample in samples[:3]:
            move(sample, S.ANNOTATING, S.IN_REVIEW, today - timedelta(days=1 + i))
            for user in annotators:
                label(sample, user, today - timedelta(days=1 + i))
        move(samples[0], S.IN_REVIEW, S.APPROVED, today - timedelta(days=i))
        move(samples[1], S.IN_REVIEW, S.REJECTED, today - timedelta(days=i))
        ReviewItem.objects.create(dataset=dataset, sample=samples[0], is_open=False, difficulty=["easy", "medium", "hard"][i % 3])
        ReviewItem.objects.create(dataset=dataset, sample=samples[2], is_open=True, reasons=[{"code": ["verdict_split", "rejected", "corrected"][i % 3]}])
    _report(dataset, report={**REPORT, "annotators": REPORT["annotators"] * k})


def _count_queries(c, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert c.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_page_runs_the_same_queries_for_three_times_the_data(client, dataset, django_assert_max_num_queries):
    c, _user = _reviewer_client(client, dataset)
    url = f"/d/{dataset.slug}/dashboard/"
    annotators = [UserFactory(username=f"ann{i}") for i in range(3)]
    for user in annotators:
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    _fill(dataset, 1, annotators)
    cold = _count_queries(c, url)  # the days before today computed and kept
    warm = _count_queries(c, url)  # ... and read from the cache

    more = [UserFactory(username=f"more{i}") for i in range(3)]
    for user in more:
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    _fill(dataset, 3, annotators + more)
    cache.clear()  # the new data is in the past: count it from scratch
    with django_assert_max_num_queries(cold):
        body = c.get(url).content.decode()
    with django_assert_max_num_queries(warm):
        assert c.get(url).status_code == 200
    assert body.count('class="area st-') == 5 and body.count('<polyline class="sparkline"') == 6
    assert warm == cold - 4 and cold <= 22


# ---------------------------------------------------------------------------------------------
# Settled days in the cache, today live
# ---------------------------------------------------------------------------------------------

def test_todays_moves_show_at_once_while_the_days_before_come_from_the_cache(dataset, django_assert_num_queries):
    today = timezone.localdate()
    s = story(dataset, days_before(1, today))  # everything happened up to yesterday
    first = dashboard.progress(dataset)
    assert first["series"]["in_review"][-1] == 1 and first["series"]["approved"][-1] == 1

    move(s[2], S.IN_REVIEW, S.APPROVED, today, StatusChange.Cause.DECISION)
    Sample.objects.filter(pk=s[2].pk).update(status=S.APPROVED)
    with django_assert_num_queries(3):  # counts now, today's imports and moves: the days before are kept
        p = dashboard.progress(dataset)

    assert p["days"] == first["days"] + [] and p["days"][-1] == today
    assert p["series"]["approved"][-2:] == [1, 2] and p["series"]["in_review"][-2:] == [1, 0]
    assert {st: v[-1] for st, v in p["series"].items()} == dashboard.status_counts(dataset)


def test_todays_labels_show_at_once(dataset):
    today = timezone.localdate()
    s = story(dataset, today)
    ann = UserFactory(username="ann_a")
    MembershipFactory(user=ann, dataset=dataset, role=Membership.Role.ANNOTATOR)
    label(s[0], ann, days_before(1, today))
    assert dashboard.throughput(dataset)["annotators"][0]["per_day"][-2:] == [1, 0]

    label(s[1], ann, today)
    label(s[2], ann, today)

    assert dashboard.throughput(dataset)["annotators"][0]["per_day"][-2:] == [1, 2]


def test_balance_follows_decisions_at_once_on_top_of_the_kept_state(dataset):
    today = timezone.localdate()
    kept = _approved(dataset, "qa", "easy")
    undone = _approved(dataset, "qa", "hard")
    waiting = _approved(dataset, "code", "medium", status=S.IN_REVIEW)
    move(kept, S.IN_REVIEW, S.APPROVED, days_before(1, today))
    assert dashboard.approved_balance(dataset)["columns"] == {"easy": 1, "medium": 0, "hard": 1, "": 0}

    # Now (after the state at the checkpoint was kept): one approved, one approved sample sent back.
    move(waiting, S.IN_REVIEW, S.APPROVED, None, StatusChange.Cause.DECISION)
    Sample.objects.filter(pk=waiting.pk).update(status=S.APPROVED)
    move(undone, S.APPROVED, S.IN_REVIEW, None, StatusChange.Cause.SETTINGS)
    Sample.objects.filter(pk=undone.pk).update(status=S.IN_REVIEW)
    b = dashboard.approved_balance(dataset)
    assert [(r["task_type"], r["cells"]) for r in b["rows"]] == [
        ("code", {"easy": 0, "medium": 1, "hard": 0, "": 0}),
        ("qa", {"easy": 1, "medium": 0, "hard": 0, "": 0}),
    ]

    # Approved again: counted once; counted from scratch it is the same; an hour later (the checkpoint
    # moves on, the kept state rolls forward over the log) too.
    move(undone, S.IN_REVIEW, S.APPROVED, None, StatusChange.Cause.DECISION)
    Sample.objects.filter(pk=undone.pk).update(status=S.APPROVED)
    live = dashboard.approved_balance(dataset)
    later = dashboard.approved_balance(dataset, now=timezone.now() + timedelta(hours=2))
    cache.clear()
    assert live == later == dashboard.approved_balance(dataset)
    assert live["columns"] == {"easy": 1, "medium": 1, "hard": 1, "": 0}


def test_a_new_day_counts_one_more_day_and_agrees_with_counting_afresh(dataset):
    story(dataset)
    yesterday = dashboard.progress(dataset, today=days_before(1))  # finished days up to T-2 are kept
    with CaptureQueriesContext(connection) as ctx:
        rolled = dashboard.progress(dataset, today=T)
    moves = [q["sql"] for q in ctx.captured_queries if "reviews_statuschange" in q["sql"]]
    assert len(moves) == 2  # T-1 (the one finished day not kept yet), then today
    cache.clear()
    assert rolled == dashboard.progress(dataset, today=T)
    assert yesterday["days"] == rolled["days"][:-1]


def test_the_kept_balance_rolls_forward_as_counting_afresh_does(dataset):
    a = _approved(dataset, "qa", "easy", status=S.REJECTED)
    b = _approved(dataset, "qa", "hard")
    c = _approved(dataset, "code", "medium")
    move(a, S.IN_REVIEW, S.APPROVED, days_before(3))
    move(b, S.IN_REVIEW, S.APPROVED, days_before(3))
    move(a, S.APPROVED, S.IN_REVIEW, days_before(2))
    move(c, S.IN_REVIEW, S.APPROVED, days_before(2))
    move(a, S.IN_REVIEW, S.REJECTED, days_before(1))
    move(b, S.APPROVED, S.IN_REVIEW, days_before(1))
    move(b, S.IN_REVIEW, S.APPROVED, days_before(1))

    def kept_at(n: int) -> dict:
        return dashboard._approved_at_checkpoint(dataset, "consensus", None, dashboard._midnight(days_before(n)))

    rolled = [kept_at(n) for n in (4, 3, 2, 1, 0)]
    afresh = []
    for n in (4, 3, 2, 1, 0):
        cache.clear()
        afresh.append(kept_at(n))

    assert rolled == afresh == [
        {},
        {},
        {("qa", "easy"): 1, ("qa", "hard"): 1},
        {("qa", "hard"): 1, ("code", "medium"): 1},
        {("qa", "hard"): 1, ("code", "medium"): 1},
    ]


def test_a_failing_cache_is_skipped(dataset, monkeypatch):
    story(dataset)

    class Down:
        def __getattr__(self, name):
            def broken(*args, **kwargs):
                raise ConnectionError("cache down")
            return broken

    monkeypatch.setattr(dashboard, "cache", Down())
    assert dashboard.progress(dataset, today=T)["series"]["new"] == [0, 4, 4, 3, 3]


# ---------------------------------------------------------------------------------------------
# Chart geometry
# ---------------------------------------------------------------------------------------------

def test_stacked_areas_close_on_the_layer_below_and_ticks_are_whole_numbers():
    from reviews import charts

    days = [T - timedelta(days=2), T - timedelta(days=1), T]
    chart = charts.area_chart(days, [("approved", "Approved", [0, 2, 3]), ("new", "New", [4, 2, -1])])
    bottom, top = (layer["points"].split() for layer in chart["layers"])
    assert len(bottom) == len(top) == 6  # 3 days along the top, 3 back along the bottom
    assert {p.split(",")[1] for p in bottom[3:]} == {str(float(chart["bottom"]))}  # the first layer stands on the axis
    assert top[3:] == list(reversed(bottom[:3]))  # the next one on the first
    assert [t["label"] for t in chart["y_ticks"]] == ["0", "1", "2", "3", "4", "5"]  # totals 4, 4, 3: the scale tops at 5
    assert [layer["last"] for layer in chart["layers"]] == [3, 0]  # a negative count is drawn as zero
    assert [t["label"] for t in chart["x_ticks"]] == ["03-08", "03-09", "03-10"]


def test_dot_and_whisker_scale_reaches_below_zero_only_when_needed():
    from reviews import charts

    chart = charts.dot_whisker_chart([{"label": "a", "value": 0.8, "low": 0.7, "high": 0.9, "n": 10},
                                      {"label": "b", "value": None, "low": None, "high": None, "n": 0}])
    assert chart["ticks"][0]["label"] == "0" and chart["rows"][0]["whisker"] and not chart["rows"][1]["defined"]
    assert chart["x0"] < chart["rows"][0]["x_low"] < chart["rows"][0]["cx"] < chart["rows"][0]["x_high"] < chart["x1"]
    low = charts.dot_whisker_chart([{"label": "a", "value": -0.12, "low": -0.31, "high": 0.1, "n": 10}])
    assert low["ticks"][0]["label"] == "-0.4" and low["rows"][0]["x_low"] == low["x0"] + round((-0.31 + 0.4) * (low["x1"] - low["x0"]) / 1.4, 1)


def test_heat_levels_scale_with_the_largest_cell():
    from reviews import charts

    assert [charts.heat_level(n, 10) for n in (0, 1, 2, 3, 5, 10)] == [0, 1, 1, 2, 3, 5]
    assert charts.short_number(1_234) == "1.2k" and charts.short_number(2_500_000) == "2.5M" and charts.short_number(40) == "40"
