"""An upload through the API is imported by a real worker process (PostgreSQL, Redis), and the
progress the API reports climbs to 100%."""

from __future__ import annotations

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotator.models import ImportJob, Sample
from exports.tokens import api_token_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for_job(api, dataset, job_id, worker, timeout=120):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/datasets/{dataset.pk}/imports/{job_id}/").json()
        seen.append((body["status"], body["progress"]))
        if body["status"] in ("succeeded", "failed"):
            return body, seen
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not finish; progress seen {seen[-5:]}\nworker log:\n{worker.log_path.read_text()[-4000:]}")


@pytest.fixture
def api(owner):
    client = APIClient()
    _token, key = api_token_create(user=owner, name="tests", can_write=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_upload_is_imported_by_the_worker_and_progress_reaches_100(api, dataset, celery_worker_process):
    n = 60_000
    data = "".join(json.dumps({"instruction": f"Question number {i}?", "input": "", "output": f"Answer {i}."}) + "\n" for i in range(n)).encode()
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": SimpleUploadedFile("big.jsonl", data)}, format="multipart")
    assert response.status_code == 202
    body, seen = wait_for_job(api, dataset, response.json()["id"], celery_worker_process)
    assert body["status"] == "succeeded", body["errors"]
    assert (body["progress"], body["imported_count"], body["duplicate_count"], body["records_total"]) == (100.0, n, 0, n)
    assert Sample.objects.filter(dataset=dataset).count() == n
    progress = [p for _s, p in seen]
    assert progress == sorted(progress)  # never goes backwards
    assert any(0 < p < 100 for p in progress), seen[:20]  # the worker reported progress while running


def test_a_bad_upload_fails_in_the_worker_and_writes_nothing(api, dataset, celery_worker_process):
    lines = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(10)]
    lines[6] = "{broken"
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": SimpleUploadedFile("b.jsonl", "\n".join(lines).encode())}, format="multipart")
    body, _ = wait_for_job(api, dataset, response.json()["id"], celery_worker_process)
    assert body["status"] == "failed"
    assert [(e["line"], e["record"]) for e in body["errors"]] == [(7, 6)]
    assert Sample.objects.count() == 0


def test_running_the_task_twice_imports_once(api, dataset, celery_worker_process):
    from annotator.tasks import import_run

    data = b'{"instruction": "q", "output": "a"}\n'
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": SimpleUploadedFile("c.jsonl", data)}, format="multipart")
    job_id = response.json()["id"]
    wait_for_job(api, dataset, job_id, celery_worker_process)
    import_run.delay(job_id)  # a redelivery: the worker must leave the finished job alone
    deadline = time.monotonic() + 30
    while f"import job {job_id} already finished: nothing to do" not in celery_worker_process.log_path.read_text():
        assert time.monotonic() < deadline, "the worker never handled the second delivery"
        time.sleep(0.1)
    assert ImportJob.objects.get(pk=job_id).imported_count == 1
    assert Sample.objects.filter(dataset=dataset).count() == 1


def test_a_second_delivery_while_the_job_runs_does_nothing(api, dataset, celery_worker_process):
    from annotator.tasks import import_run

    n = 80_000
    data = "".join(json.dumps({"instruction": f"Item {i}", "output": "ok"}) + "\n" for i in range(n)).encode()
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": SimpleUploadedFile("r.jsonl", data)}, format="multipart")
    job_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while ImportJob.objects.get(pk=job_id).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert import_run.apply(args=[job_id]).result == "busy"  # the row is locked by the worker's run
    assert time.monotonic() - started < 5  # skipped at once, not after waiting for the lock
    body, _ = wait_for_job(api, dataset, job_id, celery_worker_process)
    assert (body["status"], body["imported_count"], body["duplicate_count"]) == ("succeeded", n, 0)
    assert Sample.objects.filter(dataset=dataset).count() == n
    assert import_run.apply(args=[job_id]).result == "finished"
