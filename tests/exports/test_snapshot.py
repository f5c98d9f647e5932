"""An export holds the dataset as it stood when it was asked for: samples approved then, with the answers
approved then, even when, before the build runs, other samples are approved, approved ones are rejected
or edited, and new samples are imported. Every change goes through the real services."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotator import services as annotator_services
from annotator.models import ImportJob, Sample
from exports import services, storage
from exports.models import Export
from reviews.models import StatusChange
from reviews.services import review_decide
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

ACCEPT = {"accuracy": 5, "completeness": 4, "conciseness": 4, "verdict": "accept"}
REJECT = {**ACCEPT, "verdict": "reject", "corrected_answer": "no"}


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def team(dataset):
    users = {}
    for name, role in (("a", "annotator"), ("b", "annotator"), ("rita", "reviewer")):
        users[name] = UserFactory(username=name)
        MembershipFactory(user=users[name], dataset=dataset, role=role)
    return users


def import_records(dataset, first: int, n: int) -> list[Sample]:
    data = "".join(json.dumps({"id": f"r{i}", "instruction": f"Question {i}: what is {i} plus {i}?", "output": f"{2 * i}."}) + "\n"
                   for i in range(first, first + n)).encode()
    job = annotator_services.import_job_create(user=None, dataset=dataset, upload=SimpleUploadedFile("r.jsonl", data), enqueue=False)
    job = annotator_services.import_job_run(job=annotator_services.import_job_claim(job_id=job.pk))
    assert job.imported_count == n, job.errors
    return list(Sample.objects.filter(dataset=dataset, external_id__in=[f"r{i}" for i in range(first, first + n)]).order_by("id"))


def label(team, dataset, who: str, values: dict) -> int:
    asg = annotator_services.assignment_next(user=team[who], dataset=dataset)
    annotator_services.assignment_submit(user=team[who], dataset=dataset, assignment_id=asg.pk, values=values)
    return asg.sample_id


def decide(team, dataset, sample: Sample, decision: str, **kw):
    sample.refresh_from_db()
    return review_decide(user=team["rita"], dataset=dataset, sample_id=sample.pk, decision=decision, expected_version=sample.version,
                         rationale=kw.pop("rationale", "because"), **kw)


def exported(export) -> list[dict]:
    root = storage.export_dir(export)
    rows = [json.loads(line) for line in (root / "samples.jsonl").read_text().splitlines()]
    messages = [json.loads(line)["messages"] for line in (root / "data/train.messages.jsonl").read_text().splitlines()]
    return [{**r, "answer": m[-1]["content"]} for r, m in zip(rows, messages, strict=True)]


def test_an_export_holds_exactly_what_was_approved_when_it_was_asked_for(owner, dataset, team):
    import_records(dataset, 0, 8)
    # two annotators accept six samples (the queue gives both the same ones): the default rule approves them
    first = [label(team, dataset, "a", ACCEPT) for _ in range(6)]
    assert [label(team, dataset, "b", ACCEPT) for _ in range(6)] == first
    s = {name: Sample.objects.get(pk=pk) for name, pk in zip(("rejected_later", "edited_later", "flip_flop", "edited", "rejected",
                                                              "kept"), first, strict=True)}
    # one more: one accepts, one rejects, so it waits for a reviewer; the last is untouched
    s["waiting"] = Sample.objects.get(pk=label(team, dataset, "a", ACCEPT))
    assert label(team, dataset, "b", REJECT) == s["waiting"].pk
    s["untouched"] = Sample.objects.get(dataset=dataset, status="new")
    decide(team, dataset, s["rejected"], "reject")
    fixed = decide(team, dataset, s["edited"], "approve_edit", answer="Six, checked.").revision
    approved_at_t = sorted(s[k].pk for k in ("rejected_later", "edited_later", "flip_flop", "edited", "kept"))
    assert sorted(Sample.objects.filter(dataset=dataset, status="approved").values_list("id", flat=True)) == approved_at_t

    export = services.export_create(user=owner, dataset=dataset, spec={"name": "at-t"}, enqueue=False)
    assert export.as_of["sample_id"] == Sample.objects.filter(dataset=dataset).latest("id").pk
    assert export.as_of["status_change_id"] == StatusChange.objects.latest("id").pk and export.as_of["revision_id"] == fixed.pk

    # Before the build runs, the dataset moves on.
    decide(team, dataset, s["waiting"], "approve")                       # approved after T: not in
    decide(team, dataset, s["rejected_later"], "reject")                 # rejected after T: still in
    late = decide(team, dataset, s["edited_later"], "approve_edit", answer="Edited late.").revision  # the old answer
    decide(team, dataset, s["flip_flop"], "reject")
    decide(team, dataset, s["flip_flop"], "approve")                     # rejected and approved again: in, once
    new = import_records(dataset, 100, 3)                                # imported after T: not in, even once approved
    for who in ("a", "b"):
        for _ in range(4):
            label(team, dataset, who, ACCEPT)                            # the untouched one and the new ones, approved after T
    assert set(Sample.objects.filter(pk__in=[s["untouched"].pk, *(x.pk for x in new)]).values_list("status", flat=True)) == {"approved"}

    export = services.export_build(export_id=export.pk)
    assert export.status == Export.Status.SUCCEEDED, export.error
    rows = exported(export)
    assert [r["sample_id"] for r in rows] == approved_at_t
    answers = {r["sample_id"]: r["answer"] for r in rows}
    assert answers[s["edited_later"].pk] == s["edited_later"].messages[-1]["content"]
    assert answers[s["edited"].pk] == "Six, checked."
    assert {r["sample_id"]: r["revision_id"] for r in rows if r["revision_id"]} == {s["edited"].pk: fixed.pk}
    assert export.manifest["revisions_used"] == 1 and export.sample_count == 5
    assert export.manifest["filters"] == {"samples": 8, "filtered": {"status": 3}, "metric_filtered": {}, "pool": 5}

    # An export asked for now sees the dataset as it is now.
    now = services.export_build(export_id=services.export_create(user=owner, dataset=dataset, spec={"name": "now"}, enqueue=False).pk)
    rows = exported(now)
    assert [r["sample_id"] for r in rows] == sorted(
        [s[k].pk for k in ("edited_later", "flip_flop", "edited", "kept", "waiting", "untouched")] + [x.pk for x in new])
    assert {r["sample_id"]: r["revision_id"] for r in rows if r["revision_id"]} == {s["edited_later"].pk: late.pk, s["edited"].pk: fixed.pk}


def test_the_preview_and_an_export_asked_for_later_agree(owner, dataset, team):
    import_records(dataset, 0, 4)
    labelled = [label(team, dataset, who, ACCEPT) for who in ("a", "b") for _ in range(3)]
    preview = services.export_preview(user=owner, dataset=dataset, spec={"name": "p"})
    assert preview["pool"] == 3 and preview["filtered"] == {"status": 1}
    export = services.export_build(export_id=services.export_create(user=owner, dataset=dataset, spec={"name": "p"}, enqueue=False).pk)
    assert [r["sample_id"] for r in exported(export)] == sorted(set(labelled))


def test_samples_of_an_import_still_running_at_the_time_are_not_in(owner, dataset):
    """An import commits its samples with its end; rows of one still running when the export is asked for
    may have lower ids than the mark once they commit, so the running import is named in the mark."""
    done = SampleFactory.create_batch(2, dataset=dataset, status="new")
    running = ImportJob.objects.create(dataset=dataset, status=ImportJob.Status.RUNNING)
    # (in a real run these rows are not committed yet; the test database cannot hold them back)
    SampleFactory.create_batch(2, dataset=dataset, status="new", import_job=running)
    export = services.export_create(user=owner, dataset=dataset, spec={"name": "n", "filters": {"status": ["new"]}}, enqueue=False)
    assert export.as_of["pending_imports"] == [running.pk]
    ImportJob.objects.filter(pk=running.pk).update(status=ImportJob.Status.SUCCEEDED)
    SampleFactory(dataset=dataset, status="new")  # after the mark
    export = services.export_build(export_id=export.pk)
    assert [r["sample_id"] for r in exported(export)] == [x.pk for x in done]
    assert export.manifest["filters"]["samples"] == 2


@pytest.mark.parametrize("pick", [
    lambda ids: ids,                                   # every sample: one range
    lambda ids: ids[::3],                              # sparse: by ids
    lambda ids: ids[:10] + ids[20:22] + ids[-9:],      # dense runs with a gap between them
])
def test_rows_stream_in_id_order_with_revisions_whichever_way_they_are_read(dataset, pick):
    import numpy as np

    from annotator.models import SampleRevision
    from exports import snapshot
    from tests.conftest import DatasetFactory

    other = DatasetFactory()
    samples = []
    for i in range(40):  # two datasets' rows interleaved, as concurrent imports leave them
        samples.append(SampleFactory(dataset=dataset))
        if i % 4 == 0:
            SampleFactory(dataset=other)
    revision = {s.pk: SampleRevision.objects.create(sample=s, messages=[s.messages[0], {"role": "assistant", "content": f"fixed {s.pk}"}],
                                                    status="approved").pk for s in samples[::5]}
    chosen = pick([s.pk for s in samples])
    ids = np.array(chosen, np.int64)
    revised = snapshot.revisions_at_mark(dataset.pk, snapshot.as_of_read(dataset=dataset), ids)
    rows = list(snapshot.iter_rows(dataset.pk, ids, revised, batch_size=4))
    by_id = {s.pk: s for s in samples}
    assert [r[0] for r in rows] == chosen
    for sample_id, external_id, rev, messages in rows:
        assert external_id == by_id[sample_id].external_id and rev == revision.get(sample_id)
        assert messages[-1]["content"] == (f"fixed {sample_id}" if rev else by_id[sample_id].messages[-1]["content"])


def test_a_chosen_sample_that_disappears_fails_the_stream(dataset):
    import numpy as np

    from exports import snapshot

    samples = SampleFactory.create_batch(6, dataset=dataset)
    ids = np.array([s.pk for s in samples], np.int64)
    Sample.objects.filter(pk=samples[3].pk).delete()
    with pytest.raises(RuntimeError, match="disappeared"):
        list(snapshot.iter_rows(dataset.pk, ids, (np.zeros(0, np.int64), np.zeros(0, np.int64)), batch_size=4))
