"""Exports on a real worker (PostgreSQL, Redis, a Celery worker process): asked for, built by the worker,
succeeded with its files; and an export asked for while annotators, a reviewer and an importer keep
working holds exactly the rows approved when it was asked for, however the dataset moves during the build."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time

import pytest
from django.db import connections

from annotator import services as annotator_services
from annotator.models import Dataset, Membership, Sample
from exports import services, storage
from exports.models import Export, ExportFile
from reviews.models import StatusChange
from reviews.services import DecisionConflict, review_decide
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ACCEPT = {"accuracy": 4, "completeness": 4, "conciseness": 4, "difficulty": "easy", "verdict": "accept"}
SPEC = {"name": "live", "formats": ["messages", "parquet"], "split": {"validation": 0.1, "seed": 1}}


def wait_export(export_id: int, timeout: float, log=None) -> Export:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        export = Export.objects.get(pk=export_id)
        if export.finished:
            return export
        time.sleep(0.05)
    tail = log.read_text()[-3000:] if log else ""
    pytest.fail(f"export {export_id} did not finish: {Export.objects.filter(pk=export_id).values('status', 'error').first()}\n{tail}")


def exported_ids(export) -> list[int]:
    lines = (storage.export_dir(export) / "samples.jsonl").read_text().splitlines()
    return [json.loads(line)["sample_id"] for line in lines]


def test_an_export_is_built_by_the_worker(dataset, owner, celery_worker_process):
    Sample.objects.bulk_create(SampleFactory.build_batch(300, dataset=dataset, status="approved"), batch_size=500)
    export = services.export_create(user=owner, dataset=dataset, spec=SPEC)
    export = wait_export(export.pk, 60, celery_worker_process.log_path)
    assert export.status == Export.Status.SUCCEEDED, export.error
    assert export.sample_count == 300 and export.manifest["counts"]["splits"] == {"train": 270, "validation": 30}
    for f in ExportFile.objects.filter(export=export):
        data = storage.export_file_path(export, f.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.bytes, f.sha256), f.path
    assert sorted(exported_ids(export)[:270]) == exported_ids(export)[:270]


def _status_at_mark(dataset: Dataset, as_of: dict, initial: dict[int, str]) -> dict[int, str]:
    """The oracle: every sample's status at the mark, replayed from its initial status and the status
    changes up to the mark, one by one in id order (not how the export computes it)."""
    status = {sid: st for sid, st in initial.items() if sid <= as_of["sample_id"]}
    moves = StatusChange.objects.filter(dataset=dataset, id__lte=as_of["status_change_id"]).order_by("id")
    for sid, before, after in moves.values_list("sample_id", "from_status", "to_status"):
        if sid in status:
            assert status[sid] == before, f"sample {sid}: the log says {before}, the replay {status[sid]}"
            status[sid] = after
    return status


def test_an_export_holds_exactly_the_rows_approved_when_it_was_asked_for_while_work_goes_on(dataset, owner, celery_worker_process):
    approved = SampleFactory.build_batch(20_000, dataset=dataset, status="approved")
    fresh = SampleFactory.build_batch(3_000, dataset=dataset, status="new")
    Sample.objects.bulk_create(approved + fresh, batch_size=2000)
    annotator_services.queue_rank_refresh(dataset=dataset)
    initial = dict(Sample.objects.filter(dataset=dataset).values_list("id", "status"))
    users = [UserFactory(username=f"annotator{i}") for i in range(4)]
    for user in users:
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    rita = UserFactory(username="rita")
    MembershipFactory(user=rita, dataset=dataset, role=Membership.Role.REVIEWER)

    stop = threading.Event()
    errors: list[BaseException] = []
    done = {"labels": 0, "decisions": 0, "imported": 0}

    def worker(fn):
        def run():
            try:
                ds = Dataset.objects.get(pk=dataset.pk)
                while not stop.is_set():
                    fn(ds)
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)
            finally:
                connections.close_all()
        return threading.Thread(target=run)

    def annotate(user_id):
        def step(ds):
            user = type(owner).objects.get(pk=user_id)
            asg = annotator_services.assignment_next(user=user, dataset=ds)
            if asg is None:
                time.sleep(0.01)
                return
            annotator_services.assignment_submit(user=user, dataset=ds, assignment_id=asg.pk, values=ACCEPT)
            done["labels"] += 1
        return step

    rng = random.Random(7)

    def review(ds):  # reject approved samples and approve them again, at random
        sample = Sample.objects.filter(dataset=ds, pk=rng.choice(list(initial))).values("pk", "version", "status").first()
        decision = "approve" if sample["status"] == "rejected" else "reject"
        try:
            review_decide(user=rita, dataset=ds, sample_id=sample["pk"], decision=decision, expected_version=sample["version"],
                          rationale="spot check")
            done["decisions"] += 1
        except DecisionConflict:
            pass

    def importer(ds):
        Sample.objects.bulk_create(SampleFactory.build_batch(50, dataset=ds, status="new"))  # as an import leaves them
        done["imported"] += 50
        time.sleep(0.02)

    threads = [worker(annotate(u.pk)) for u in users] + [worker(review), worker(importer)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)  # work is under way before the export is asked for
        export = services.export_create(user=owner, dataset=dataset, spec=SPEC)
        export = wait_export(export.pk, 120, celery_worker_process.log_path)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert export.status == Export.Status.SUCCEEDED, export.error

    # the dataset moved while the export was built
    during = StatusChange.objects.filter(dataset=dataset, at__gte=export.started_at, at__lte=export.finished_at).count()
    assert during > 0, done
    assert StatusChange.objects.filter(dataset=dataset, id__gt=export.as_of["status_change_id"]).exists()
    assert Sample.objects.filter(dataset=dataset, id__gt=export.as_of["sample_id"]).exists()

    every = dict.fromkeys(Sample.objects.filter(dataset=dataset).values_list("id", flat=True), "new")
    status = _status_at_mark(dataset, export.as_of, {**every, **initial})
    expected = sorted(sid for sid, st in status.items() if st == "approved")
    got = exported_ids(export)
    assert len(got) == len(set(got)) == export.sample_count
    assert sorted(got) == expected
    # and what is approved now is different: the export did not just take the current state
    assert sorted(Sample.objects.filter(dataset=dataset, status="approved").values_list("id", flat=True)) != expected
