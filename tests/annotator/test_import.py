"""The import service against the database: counts, idempotency, all-or-nothing. These run on
SQLite in `make test-unit` and again on PostgreSQL (the COPY path) in `make test-integration`."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from annotator import services
from annotator.models import Dataset, ImportJob, Membership, Sample
from tests.conftest import DatasetFactory, SampleFactory

# transaction=True: on PostgreSQL each import really commits or rolls back, as in a worker.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both]


def jsonl(records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def run_import(dataset, data: bytes, name="data.jsonl", fmt="auto", options=None) -> ImportJob:
    job = services.import_job_create(user=None, dataset=dataset, upload=SimpleUploadedFile(name, data), fmt=fmt, options=options, enqueue=False)
    return services.import_job_run(job=services.import_job_claim(job_id=job.pk))


def snapshot():
    return (
        list(Sample.objects.order_by("id").values_list("id", "dataset_id", "content_hash", "status")),
        Dataset.objects.count(),
        Membership.objects.count(),
    )


def test_import_inserts_samples_with_every_field(dataset):
    records = [{"id": "a1", "instruction": "写一首诗", "input": "", "output": "春眠不觉晓", "category": "Generation"},
               {"instruction": "Add 2 and 3.", "input": "", "output": "5"}]
    job = run_import(dataset, jsonl(records))
    assert (job.status, job.imported_count, job.duplicate_count, job.records_total, job.error_count) == ("succeeded", 2, 0, 2, 0)
    assert job.detected_format == "alpaca"
    assert job.progress == 100.0
    a, b = Sample.objects.filter(dataset=dataset).order_by("id")
    assert (a.external_id, a.task_type, a.language, a.status, a.import_job_id) == ("a1", "generation", "zh", "new", job.pk)
    assert a.messages == [{"role": "user", "content": "写一首诗"}, {"role": "assistant", "content": "春眠不觉晓"}]
    assert a.source == records[0]
    assert a.text == "写一首诗\n春眠不觉晓"
    assert (b.external_id, b.language) == ("1", "en")


def test_duplicates_in_the_file_and_in_the_dataset_are_skipped_and_importing_twice_adds_nothing(dataset):
    rec = {"instruction": "Q", "input": "", "output": "A"}
    near = {"instruction": "Q ", "input": "", "output": " A"}  # same after normalization
    other = {"instruction": "Q2", "input": "", "output": "A2"}
    first = run_import(dataset, jsonl([rec, near, other]))
    assert (first.imported_count, first.duplicate_count) == (2, 1)
    before = snapshot()
    second = run_import(dataset, jsonl([rec, near, other]))
    assert (second.status, second.imported_count, second.duplicate_count) == ("succeeded", 0, 3)
    assert snapshot() == before


def test_duplicates_across_batches_are_found(dataset):
    records = [{"instruction": f"q{i % 7}", "output": "a"} for i in range(30)]
    with override_settings(SFTDESK_IMPORT_BATCH_SIZE=4):
        job = run_import(dataset, jsonl(records))
    assert (job.imported_count, job.duplicate_count) == (7, 23)
    assert Sample.objects.filter(dataset=dataset).count() == 7


def test_same_content_in_another_dataset_is_not_a_duplicate(dataset):
    other = DatasetFactory()
    SampleFactory(dataset=other, messages=[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])
    job = run_import(dataset, jsonl([{"instruction": "Q", "output": "A"}]))
    assert (job.imported_count, job.duplicate_count) == (1, 0)


def test_a_file_with_a_broken_line_imports_nothing_and_names_line_7(dataset):
    SampleFactory(dataset=dataset)
    before = snapshot()
    lines = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(10)]
    lines[6] = "{not json"
    with override_settings(SFTDESK_IMPORT_BATCH_SIZE=2):  # batches before line 7 were written, then rolled back
        job = run_import(dataset, ("\n".join(lines) + "\n").encode())
    assert job.status == "failed"
    assert job.errors == [{"line": 7, "record": 6, "field": None, "message": "invalid JSON: Expecting property name enclosed in double quotes (column 2)"}]
    assert (job.imported_count, job.error_count, job.records_total) == (0, 1, 9)
    assert snapshot() == before


def test_errors_are_capped_at_100(dataset):
    job = run_import(dataset, b"{bad\n" * 250)
    assert job.status == "failed"
    assert job.error_count == 100
    assert [e["line"] for e in job.errors] == list(range(1, 101))
    assert Sample.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"[1, 2", "a.json", "record must be a JSON object, got number"),
        (b'[{"instruction": "q"}]', "a.json", "is missing: the record has no answer"),
        (b'{"text": "x"}\n', "a.jsonl", "unknown format: the first record has keys [text]"),
        (b"[]", "a.json", "the file holds no records"),
    ],
)
def test_bad_files_fail_with_a_message_and_write_nothing(dataset, data, name, expected):
    before = snapshot()
    job = run_import(dataset, data, name=name)
    assert job.status == "failed"
    assert expected in job.errors[0]["message"]
    assert snapshot() == before


def test_file_over_the_size_cap_is_refused_before_anything_is_written(dataset):
    with override_settings(SFTDESK_IMPORT_MAX_BYTES=100), pytest.raises(services.ImportRefused, match="data.jsonl is 101 bytes, over the import limit of 100 bytes"):
        services.import_job_create(user=None, dataset=dataset, upload=SimpleUploadedFile("data.jsonl", b"x" * 101), enqueue=False)
    assert ImportJob.objects.count() == 0


def test_empty_upload_and_unknown_format_are_refused(dataset):
    with pytest.raises(services.ImportRefused, match="empty.jsonl is empty"):
        services.import_job_create(user=None, dataset=dataset, upload=SimpleUploadedFile("empty.jsonl", b""), enqueue=False)
    with pytest.raises(services.ImportRefused, match="Unknown format yaml"):
        services.import_job_create(user=None, dataset=dataset, upload=SimpleUploadedFile("a.yaml", b"a: b"), fmt="yaml", enqueue=False)
    assert ImportJob.objects.count() == 0


def test_only_owners_may_import(dataset, owner):
    from tests.conftest import MembershipFactory, UserFactory

    annotator = UserFactory(username="ann")
    MembershipFactory(user=annotator, dataset=dataset, role=Membership.Role.ANNOTATOR)
    from django.http import Http404

    with pytest.raises(Http404):
        services.import_job_create(user=annotator, dataset=dataset, upload=SimpleUploadedFile("a.jsonl", b"{}"), enqueue=False)
    assert ImportJob.objects.count() == 0


def test_a_finished_job_is_not_claimed_again(dataset):
    job = run_import(dataset, jsonl([{"instruction": "q", "output": "a"}]))
    assert services.import_job_claim(job_id=job.pk) is None
    assert Sample.objects.count() == 1


def test_csv_import_with_mapping(dataset):
    job = run_import(dataset, b"q,a,kind\nWhy?,Because.,qa\n", name="x.csv", options={"columns": {"instruction": "q", "output": "a", "task_type": "kind"}})
    assert job.status == "succeeded", job.errors
    s = Sample.objects.get(dataset=dataset)
    assert (s.task_type, s.source) == ("qa", {"q": "Why?", "a": "Because.", "kind": "qa"})
