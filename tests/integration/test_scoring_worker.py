"""A scoring run on real workers (PostgreSQL, Redis): completes; and when the worker is killed with
SIGKILL mid-run and a new one started, the run still completes with every row once. A chunk being
computed is not computed again by a second delivery; a run whose gpu work nobody takes says so, and
completes once a gpu worker starts."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from celery import Celery
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator import services as annotator_services
from annotator.models import Sample
from scoring import selectors, services
from scoring.compute import REUSE_MARKER
from scoring.metrics.cleaning import clean_sample
from scoring.models import SampleEmbedding, SampleMetric, ScoringChunk, ScoringRun
from tests.integration.worker import start_worker, stop_worker, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def import_n(dataset, n: int) -> None:
    data = "".join(json.dumps({"instruction": f"Question {i}: what is {i} plus {i}?", "output": f"{i} plus {i} is {2 * i}."}) + "\n"
                   for i in range(n)).encode()
    job = annotator_services.import_job_create(user=None, dataset=dataset, upload=SimpleUploadedFile("n.jsonl", data), enqueue=False)
    assert annotator_services.import_job_run(job=annotator_services.import_job_claim(job_id=job.pk)).imported_count == n


def expected_rule_rows(dataset) -> int:
    """Rows the rules stage stores: every rule that applies, plus the reuse marker (computed here, in
    the test process, from the same pure function)."""
    return sum(
        sum(1 for r in clean_sample(m, task_type=t) if r.value is not None or r.flags or r.name == REUSE_MARKER)
        for m, t in Sample.objects.filter(dataset=dataset).values_list("messages", "task_type")
    )


def wait_run(run_id: int, timeout: float, until=lambda run: run.finished, log=None) -> ScoringRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ScoringRun.objects.get(pk=run_id)
        if until(run):
            return run
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log else ""
    pytest.fail(f"run {run_id} did not get there: {ScoringRun.objects.filter(pk=run_id).values('status', 'stage', 'chunks_done', 'errors').first()}\n{tail}")


def test_a_run_completes_on_the_worker(dataset, celery_worker_process):
    import_n(dataset, 500)
    run = services.run_create(user=None, dataset=dataset, metrics="rules")
    run = wait_run(run.pk, 60, log=celery_worker_process.log_path)
    assert run.status == "succeeded", run.errors
    assert SampleMetric.objects.filter(dataset=dataset).count() == expected_rule_rows(dataset)


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(dataset, tmp_path, settings, django_db_blocker):
    import redis

    n, chunk = 12_000, 500
    import_n(dataset, n)
    url = settings.REDIS_URL.rsplit("/", 1)[0] + "/14"  # a broker of its own: only this test's workers
    redis.Redis.from_url(url).flushdb()
    env = worker_env(REDIS_URL=url, SFTDESK_SCORING_CHUNK_SIZE=str(chunk), SFTDESK_BROKER_VISIBILITY_TIMEOUT="3")
    log = tmp_path / "worker.log"
    first = start_worker(env, log, "victim")
    run = services.run_create(user=None, dataset=dataset, metrics="rules", enqueue=False)
    sender = Celery(broker=url, set_as_current=False)
    try:
        sender.send_task("scoring.tasks.run_advance", args=[run.pk], queue="cpu", routing_key="cpu", exchange="cpu")
        wait_run(run.pk, 120, until=lambda r: r.stage == "rules" and r.chunks_done >= 3, log=log)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, mid-chunk
        first.wait(timeout=10)
        killed_at = ScoringRun.objects.get(pk=run.pk).chunks_done
        assert 3 <= killed_at < n // chunk
        second = start_worker(env, log, "rescuer")
        try:
            run = wait_run(run.pk, 240, log=log)
        finally:
            stop_worker(second)
    finally:
        sender.close()
    assert run.status == "succeeded", run.errors
    assert ScoringChunk.objects.filter(run=run, stage="rules").count() == n // chunk
    assert not ScoringChunk.objects.filter(run=run, status="pending").exists()
    rows = SampleMetric.objects.filter(dataset=dataset)
    assert rows.count() == expected_rule_rows(dataset)  # no row missing, none doubled (unique per sample and metric)
    assert rows.filter(metric=REUSE_MARKER).count() == n


def test_a_chunk_being_computed_elsewhere_is_left_to_that_worker(dataset):
    """The advisory lock another worker holds while it computes a chunk (here: a second connection)."""
    import psycopg
    from django.db import connection

    import_n(dataset, 50)
    run = services.run_create(user=None, dataset=dataset, metrics="rules", enqueue=False)
    services.run_advance(run_id=run.pk, enqueue=False)
    chunk = ScoringChunk.objects.get(run=run)
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")}, autocommit=True) as other:
        key = (services.ADVISORY_LOCK_CLASS << 40) | chunk.pk
        assert other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        assert services.chunk_run(chunk_id=chunk.pk, enqueue=False) == "busy"
        chunk.refresh_from_db()
        assert (chunk.status, chunk.attempts) == ("pending", 0)
        assert not SampleMetric.objects.filter(dataset=dataset).exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
    assert services.chunk_run(chunk_id=chunk.pk, enqueue=False) == "done"
    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts) == ("done", 1)
    # and this process released its own lock: the other connection can take it again
    with psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")}, autocommit=True) as other:
        assert other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]


def test_a_run_without_a_gpu_worker_says_so_and_finishes_once_one_starts(dataset, tmp_path, settings):
    import redis

    import_n(dataset, 60)
    url = settings.REDIS_URL.rsplit("/", 1)[0] + "/13"  # a broker of its own: only this test's workers
    redis.Redis.from_url(url).flushdb()
    settings.SFTDESK_SCORING_STALL_SECONDS = 2
    env = worker_env(REDIS_URL=url)
    log = tmp_path / "worker.log"
    cpu = start_worker(env, log, "cpu-only", queues="cpu")
    sender = Celery(broker=url, set_as_current=False)
    gpu = None
    try:
        run = services.run_create(user=None, dataset=dataset, metrics="completeness", enqueue=False)
        assert run.stages == ["embed", "dataset"]
        sender.send_task("scoring.tasks.run_advance", args=[run.pk], queue="cpu", routing_key="cpu", exchange="cpu")
        run = wait_run(run.pk, 60, until=lambda r: (w := selectors.run_waiting(r)) is not None and w["queue"] == "gpu", log=log)
        waiting = selectors.run_waiting(run)
        assert (run.stage, waiting["taken"], waiting["in_progress"]) == ("embed", False, 0)
        gpu = start_worker(env, log, "gpu-late", queues="gpu")
        run = wait_run(run.pk, 180, log=log)
    finally:
        sender.close()
        for proc in (cpu, gpu):
            if proc is not None:
                stop_worker(proc)
    assert run.status == "succeeded", run.errors
    assert SampleEmbedding.objects.filter(sample__dataset=dataset, kind="instruction").count() == 60  # the gpu worker's work
    assert run.chunks.get(stage="embed").attempts == 1
    assert selectors.run_waiting(run) is None
