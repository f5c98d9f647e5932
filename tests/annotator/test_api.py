"""The REST API: token auth, scoping (404 for foreign ids), filters, upload, schema."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotator.models import ImportJob, Sample
from exports.tokens import api_token_create
from tests.conftest import DatasetFactory, SampleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner):
    client = APIClient()
    _token, key = api_token_create(user=owner, name="tests", can_write=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_no_token_is_refused(dataset):
    assert APIClient().get("/api/v1/datasets/").status_code == 401


def test_datasets_are_scoped_to_membership(api, dataset):
    DatasetFactory(slug="hidden")
    SampleFactory.create_batch(2, dataset=dataset)
    body = api.get("/api/v1/datasets/").json()
    assert [(d["slug"], d["role"], d["sample_count"]) for d in body] == [("ds", "owner", 2)]


def test_foreign_dataset_sample_and_import_are_404(api, dataset):
    foreign = DatasetFactory(slug="foreign")
    sample = SampleFactory(dataset=foreign)
    job = ImportJob.objects.create(dataset=foreign, original_name="x")
    own_sample = SampleFactory(dataset=dataset)
    for url in [
        f"/api/v1/datasets/{foreign.pk}/",
        f"/api/v1/datasets/{foreign.pk}/samples/",
        f"/api/v1/datasets/{foreign.pk}/samples/{sample.pk}/",
        f"/api/v1/datasets/{dataset.pk}/samples/{sample.pk}/",  # a foreign sample through my dataset
        f"/api/v1/datasets/{foreign.pk}/imports/",
        f"/api/v1/datasets/{foreign.pk}/imports/{job.pk}/",
        f"/api/v1/datasets/{dataset.pk}/imports/{job.pk}/",
    ]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert "foreign" not in response.content.decode()
    assert api.get(f"/api/v1/datasets/{dataset.pk}/samples/{own_sample.pk}/").status_code == 200
    upload = api.post(f"/api/v1/datasets/{foreign.pk}/imports/", {"file": SimpleUploadedFile("a.jsonl", b"{}")}, format="multipart")
    assert upload.status_code == 404
    assert ImportJob.objects.count() == 1


def test_sample_list_filters_and_detail(api, dataset, django_assert_max_num_queries):
    SampleFactory(dataset=dataset, external_id="a", language="zh", task_type="math")
    SampleFactory(dataset=dataset, external_id="b", language="en", task_type="code", flag_count=1)
    SampleFactory.create_batch(30, dataset=dataset, language="en", task_type="code")
    url = f"/api/v1/datasets/{dataset.pk}/samples/"
    with django_assert_max_num_queries(8):
        page = api.get(url, {"page_size": 20}).json()
    assert page["count"] == 32
    assert len(page["results"]) == 20
    assert [s["external_id"] for s in api.get(url, {"language": "zh"}).json()["results"]] == ["a"]
    assert [s["external_id"] for s in api.get(url, {"has_flag": "true"}).json()["results"]] == ["b"]
    assert api.get(url, {"task_type": "code"}).json()["count"] == 31
    assert api.get(url, {"status": "bogus"}).status_code == 400
    a = Sample.objects.get(external_id="a")
    detail = api.get(f"{url}{a.pk}/").json()
    assert detail["messages"] == a.messages
    assert detail["external_id"] == "a"
    assert set(detail) >= {"source", "content_hash", "language", "task_type", "status", "meta", "import_job"}


def test_upload_returns_202_and_the_job_reports_the_result(api, dataset, django_capture_on_commit_callbacks):
    data = "".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\n" for i in range(4)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": SimpleUploadedFile("d.jsonl", data)}, format="multipart")
    assert response.status_code == 202
    job_id = response.json()["id"]
    status = api.get(f"/api/v1/datasets/{dataset.pk}/imports/{job_id}/").json()
    assert (status["status"], status["progress"], status["imported_count"], status["detected_format"]) == ("succeeded", 100.0, 4, "alpaca")
    assert [j["id"] for j in api.get(f"/api/v1/datasets/{dataset.pk}/imports/").json()] == [job_id]


def test_failed_upload_reports_errors_with_line_and_field(api, dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/datasets/{dataset.pk}/imports/",
            {"file": SimpleUploadedFile("d.jsonl", b'{"instruction": "q", "output": 3}\n')}, format="multipart",
        )
    status = api.get(f"/api/v1/datasets/{dataset.pk}/imports/{response.json()['id']}/").json()
    assert status["status"] == "failed"
    assert status["errors"] == [{"line": 1, "record": 0, "field": "output", "message": "must be a string, got number"}]
    assert Sample.objects.count() == 0


def test_upload_with_an_unknown_format_is_a_400(api, dataset):
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": SimpleUploadedFile("d.jsonl", b"{}"), "format": "yaml"}, format="multipart")
    assert response.status_code == 400
    assert "format" in response.json()
    assert ImportJob.objects.count() == 0


def test_create_dataset(api, owner):
    response = api.post("/api/v1/datasets/", {"name": "From API"}, format="json")
    assert response.status_code == 201
    assert (response.json()["slug"], response.json()["role"]) == ("from-api", "owner")


def test_openapi_schema_and_docs(api, client):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/v1/datasets/{dataset_id}/samples/" in schema["paths"]
    assert "/api/v1/datasets/{dataset_id}/imports/" in schema["paths"]
    assert api.get("/api/docs/").status_code == 200


def test_an_upload_over_the_cap_is_refused_while_it_streams(api, dataset, settings):
    settings.SFTDESK_IMPORT_MAX_BYTES = 10
    big = SimpleUploadedFile("big.jsonl", b"x" * (2 * 1024 * 1024))
    response = api.post(f"/api/v1/datasets/{dataset.pk}/imports/", {"file": big}, format="multipart")
    assert response.status_code == 413
    assert "over the import limit of 10 bytes" in response.json()["file"][0]
    assert ImportJob.objects.count() == 0
