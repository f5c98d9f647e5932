"""What keeps a scoring run going when workers misbehave: a redelivered last chunk that finds the
next stage never started; a dataset stage that is run twice or killed every time; database errors
that go away (retried) and bugs that do not (the run fails saying so); and a run whose work nobody
takes, which says which queue it waits on."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from annotator.models import Dataset, Membership
from scoring import compute, selectors, services, tasks
from scoring.models import SampleMetric, ScoringChunk, ScoringRun
from tests.conftest import MembershipFactory

pytestmark = [pytest.mark.django_db, pytest.mark.both]


@pytest.fixture
def demo(db):
    call_command("load_demo", stdout=io.StringIO())
    return Dataset.objects.get(slug="demo")


@pytest.fixture
def tasks_in_process(monkeypatch):
    """Tasks run in this process (also in the PostgreSQL pass, where a broker is configured), and
    re-run on retry, which eager tasks do only when they do not re-raise (Task.apply: throw=False)."""
    from config.celery_app import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)


def rules_done(dataset, chunk_size: int = 25) -> ScoringRun:
    """A rules run whose every chunk is done but whose next stage was never started."""
    with override_settings(SFTDESK_SCORING_CHUNK_SIZE=chunk_size):
        run = services.run_create(user=None, dataset=dataset, metrics="rules", enqueue=False)
        services.run_advance(run_id=run.pk, enqueue=False)
    for chunk in ScoringChunk.objects.filter(run=run).order_by("index"):
        assert services.chunk_run(chunk_id=chunk.pk, enqueue=False) == "done"
    run.refresh_from_db()
    assert (run.stage, run.chunks_done, run.chunks_total) == ("rules", 3, 3)
    return run


def test_a_redelivered_last_chunk_starts_the_stage_its_dead_worker_never_started(demo, django_capture_on_commit_callbacks, tasks_in_process):
    run = rules_done(demo)
    last = ScoringChunk.objects.filter(run=run).order_by("-index").first()
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.score_chunk.apply(args=[last.pk]).get() == "skipped"  # done: not recomputed...
    run.refresh_from_db()
    assert run.stage == "dataset"  # ...but the run moved on, and the dataset stage ran
    assert run.status == "succeeded", run.errors
    assert ScoringChunk.objects.get(pk=last.pk).attempts == 1


def test_a_redelivered_chunk_of_a_stage_still_running_starts_nothing(demo, django_capture_on_commit_callbacks):
    with override_settings(SFTDESK_SCORING_CHUNK_SIZE=25):
        run = services.run_create(user=None, dataset=demo, metrics="rules", enqueue=False)
        services.run_advance(run_id=run.pk, enqueue=False)
    first = ScoringChunk.objects.filter(run=run).order_by("index").first()
    services.chunk_run(chunk_id=first.pk, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.chunk_run(chunk_id=first.pk) == "skipped"
    assert callbacks == []
    run.refresh_from_db()
    assert (run.stage, run.status, run.chunks_done) == ("rules", "running", 1)


def test_the_dataset_stage_runs_once_however_often_it_is_delivered(demo):
    run = rules_done(demo)
    services.run_advance(run_id=run.pk, enqueue=False)
    assert services.dataset_stage_run(run_id=run.pk) == "done"
    assert services.dataset_stage_run(run_id=run.pk) == "skipped"
    piece = ScoringChunk.objects.get(run=run, stage="dataset")
    assert (piece.status, piece.attempts) == ("done", 1)
    assert piece.started_at <= piece.finished_at
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.chunks_total == 0  # the dataset piece is bookkeeping, not part of the progress bar


def test_a_dataset_stage_killed_every_time_fails_the_run_and_says_so(demo):
    run = rules_done(demo)
    services.run_advance(run_id=run.pk, enqueue=False)
    # three workers took it and died (no exception reached Python: SIGKILL, out of memory)
    ScoringChunk.objects.filter(run=run, stage="dataset").update(attempts=services.MAX_CHUNK_ATTEMPTS)
    assert services.dataset_stage_run(run_id=run.pk) == "skipped"
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.errors[-1]["message"] == "the dataset stage was started 3 times without finishing (out of memory?)"


def fail_first(times: int, exc: Exception, monkeypatch):
    """Make the rules stage raise `exc` the first `times` calls, then compute as usual."""
    real = compute.STAGES["rules"]
    calls = {"n": 0}

    def flaky(run, samples):
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return real(run, samples)

    monkeypatch.setitem(compute.STAGES, "rules", flaky)
    return calls




def one_chunk(dataset) -> ScoringChunk:
    run = services.run_create(user=None, dataset=dataset, metrics="rules", enqueue=False)
    services.run_advance(run_id=run.pk, enqueue=False)
    return ScoringChunk.objects.get(run=run)


def test_a_database_error_that_goes_away_is_retried_and_not_counted_as_a_start(demo, monkeypatch, tasks_in_process):
    chunk = one_chunk(demo)
    calls = fail_first(2, OperationalError("server closed the connection unexpectedly"), monkeypatch)
    assert tasks.score_chunk.apply(args=[chunk.pk]).get() == "done"
    assert calls["n"] == 3
    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts) == ("done", 1)
    run = ScoringRun.objects.get(pk=chunk.run_id)
    assert run.status == "running" and run.errors == []
    assert SampleMetric.objects.filter(dataset=demo).exists()


def test_a_database_error_that_stays_fails_the_run_after_the_retries(demo, monkeypatch, tasks_in_process):
    chunk = one_chunk(demo)
    calls = fail_first(100, OperationalError("could not connect to server"), monkeypatch)
    result = tasks.score_chunk.apply(args=[chunk.pk])
    assert isinstance(result.result, OperationalError)
    assert calls["n"] == tasks.TRANSIENT_RETRIES + 1
    run = ScoringRun.objects.get(pk=chunk.run_id)
    assert run.status == "failed"
    assert run.errors[-1]["message"] == "internal error: OperationalError: could not connect to server"
    assert ScoringChunk.objects.get(pk=chunk.pk).attempts == 0  # exceptions are not kills


def test_a_bug_fails_the_run_at_once(demo, monkeypatch, tasks_in_process):
    chunk = one_chunk(demo)
    calls = fail_first(100, ValueError("bad shape"), monkeypatch)
    assert isinstance(tasks.score_chunk.apply(args=[chunk.pk]).result, ValueError)
    assert calls["n"] == 1
    run = ScoringRun.objects.get(pk=chunk.run_id)
    assert (run.status, run.errors[-1]["message"]) == ("failed", "internal error: ValueError: bad shape")


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@override_settings(SFTDESK_SCORING_STALL_SECONDS=120)
def test_a_run_nobody_takes_says_which_queue_it_waits_on(demo):
    run = services.run_create(user=None, dataset=demo, metrics="completeness", enqueue=False)
    assert selectors.run_waiting(run) is None  # just made
    ScoringRun.objects.filter(pk=run.pk).update(created_at=ago(300))
    run.refresh_from_db()
    waiting = selectors.run_waiting(run)
    assert (waiting["queue"], waiting["stage"], waiting["taken"]) == ("cpu", "", False)  # nobody started it at all

    services.run_advance(run_id=run.pk, enqueue=False)
    run.refresh_from_db()
    assert run.stage == "embed"
    assert selectors.run_waiting(run) is None  # the stage was just queued
    ScoringRun.objects.filter(pk=run.pk).update(created_at=ago(410), stage_started_at=ago(400), started_at=ago(400))
    run.refresh_from_db()
    waiting = selectors.run_waiting(run)
    assert (waiting["queue"], waiting["taken"], waiting["in_progress"], waiting["idle_minutes"]) == ("gpu", False, 0, 6)
    assert 400 <= waiting["idle_seconds"] < 460

    chunk = ScoringChunk.objects.get(run=run, stage="embed")
    ScoringChunk.objects.filter(pk=chunk.pk).update(started_at=ago(30), attempts=1)
    assert selectors.run_waiting(run) is None  # a worker took it 30 s ago
    ScoringChunk.objects.filter(pk=chunk.pk).update(started_at=ago(200))
    waiting = selectors.run_waiting(run)
    assert (waiting["queue"], waiting["taken"], waiting["in_progress"]) == ("gpu", True, 1)

    services.chunk_run(chunk_id=chunk.pk, enqueue=False)
    services.run_inline(run_id=run.pk)
    run.refresh_from_db()
    assert run.finished and selectors.run_waiting(run) is None


@override_settings(SFTDESK_SCORING_STALL_SECONDS=60)
def test_the_dataset_page_and_the_api_say_start_a_gpu_worker(demo, owner, owner_client):
    MembershipFactory(user=owner, dataset=demo, role=Membership.Role.OWNER)
    run = services.run_create(user=None, dataset=demo, metrics="completeness", enqueue=False)
    services.run_advance(run_id=run.pk, enqueue=False)
    body = owner_client.get(reverse("scoring:run_status", args=["demo"])).content.decode()
    assert "data-waiting" not in body
    ScoringRun.objects.filter(pk=run.pk).update(created_at=ago(185), stage_started_at=ago(185), started_at=ago(185))

    body = owner_client.get(reverse("scoring:run_status", args=["demo"])).content.decode()
    assert 'data-waiting="gpu"' in body
    assert "No worker on the “gpu” queue has taken this run’s work for 3 minutes." in body
    assert "<code>make worker-gpu</code>" in body

    api = owner_client.get(reverse("api-scoring-run", args=[demo.pk, run.pk])).json()
    assert api["waiting"]["queue"] == "gpu" and api["waiting"]["taken"] is False
    assert 185 <= api["waiting"]["idle_seconds"] < 245
    owner_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    body = owner_client.get(reverse("scoring:run_status", args=["demo"])).content.decode()
    assert "“gpu”队列上没有任何 worker 接手本次运行的工作，已 3 分钟。" in body
