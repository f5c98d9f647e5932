"""Building exports: deterministic files, balance as the spec asks, corrected answers with lineage,
every format readable by its trainer, a manifest that matches the bytes on disk, failures that leave
nothing behind, a task that is safe to run twice, the command line, access and the preview."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.http import Http404

from annotator.models import Membership, Sample, SampleRevision
from exports import services, storage
from exports.formats import dumps, validate_messages
from exports.models import Export, ExportFile
from exports.spec import SpecError
from exports.tasks import export_build_task
from reviews.models import ReviewItem
from scoring.models import SampleEmbedding, SampleFlag, SampleMetric
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

ALL_FORMATS = ["messages", "prompt_completion", "alpaca", "sharegpt", "parquet"]
VARIABLE = {"manifest.json"}  # and the tar, which holds it


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    """Each test its own export folder (ids start again in every test's database)."""
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_samples(dataset, spec: dict[str, int], *, status="approved", language="en"):
    """{task_type: n} approved samples, in that order."""
    out = []
    for task, n in spec.items():
        out += SampleFactory.create_batch(n, dataset=dataset, task_type=task, status=status, language=language)
    return out


def build(owner, dataset, spec: dict) -> Export:
    export = services.export_create(user=owner, dataset=dataset, spec=spec, enqueue=False)
    export = services.export_build(export_id=export.pk)
    assert export.status == Export.Status.SUCCEEDED, export.error
    return export


def files_on_disk(export) -> dict[str, Path]:
    root = storage.export_dir(export)
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def mixed(dataset):
    """30 qa, 12 code, 5 math approved samples; 4 more not approved."""
    samples = make_samples(dataset, {"qa": 30, "code": 12, "math": 5})
    Sample.objects.filter(pk=samples[0].pk).update(external_id='zitat "größe" \\ ✓')
    make_samples(dataset, {"qa": 2}, status="in_review")
    make_samples(dataset, {"code": 2}, status="rejected")
    return samples


BALANCED = {
    "name": "mix", "formats": ALL_FORMATS, "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 10, "code": 10, "math": 10}},
    "split": {"validation": 0.2, "seed": 3}, "seed": 11, "system_prompt": "Be helpful.",
}


# --- determinism ------------------------------------------------------------------------------

def test_two_builds_of_the_same_spec_give_byte_identical_files(owner, dataset, mixed):
    first, second = build(owner, dataset, BALANCED), build(owner, dataset, BALANCED)
    a, b = files_on_disk(first), files_on_disk(second)
    assert set(a) == set(b)
    identical = {p for p in a if p not in VARIABLE and not p.endswith(".tar")}
    assert {"data/train.messages.jsonl", "data/validation.parquet", "samples.jsonl", "README.md", "dataset_info.json"} <= identical
    for path in identical:
        assert sha(a[path]) == sha(b[path]), path
    assert first.manifest["byte_identical"] == sorted(identical)
    assert first.manifest["files"] == second.manifest["files"]  # names, sizes and hashes
    # the tar's data members are the same bytes too
    with tarfile.open(a["mix.tar"]) as ta, tarfile.open(b["mix.tar"]) as tb:
        for path in identical:
            assert ta.extractfile(f"mix/{path}").read() == tb.extractfile(f"mix/{path}").read()


def test_a_different_seed_chooses_differently_but_as_many(owner, dataset, mixed):
    one = build(owner, dataset, BALANCED)
    other = build(owner, dataset, {**BALANCED, "seed": 12})
    ids = [{r["sample_id"] for r in read_jsonl(files_on_disk(e)["samples.jsonl"])} for e in (one, other)]
    assert len(ids[0]) == len(ids[1]) == 25 and ids[0] != ids[1]


# --- balance ----------------------------------------------------------------------------------

def test_counts_per_stratum_as_asked_and_a_short_stratum_is_reported(owner, dataset, mixed):
    export = build(owner, dataset, BALANCED)
    strata = export.manifest["strata"]
    assert {k: (s["pool"], s["target"], s["chosen"], s["short"]) for k, s in strata.items()} == {
        "qa": (30, 10, 10, False), "code": (12, 10, 10, False), "math": (5, 10, 5, True)}
    assert export.manifest["counts"]["splits"] == {"train": 20, "validation": 5}
    assert export.manifest["counts"]["total"] == export.sample_count == 25
    rows = read_jsonl(files_on_disk(export)["samples.jsonl"])
    by_stratum = {k: sum(1 for r in rows if r["stratum"] == k) for k in ("qa", "code", "math")}
    assert by_stratum == {"qa": 10, "code": 10, "math": 5}
    # every row is an approved sample of the dataset, from the stratum it claims
    samples = {s.pk: s for s in Sample.objects.filter(pk__in=[r["sample_id"] for r in rows])}
    assert all(samples[r["sample_id"]].status == "approved" and samples[r["sample_id"]].task_type == r["stratum"] for r in rows)
    assert all(samples[r["sample_id"]].external_id == r["external_id"] for r in rows)
    # file order: train rows by sample id, then validation rows by sample id
    splits = [r["split"] for r in rows]
    assert splits == ["train"] * 20 + ["validation"] * 5
    for split in ("train", "validation"):
        ids = [r["sample_id"] for r in rows if r["split"] == split]
        assert ids == sorted(ids)


def test_shrink_keeps_the_mixture(owner, dataset, mixed):
    spec = {"name": "shrunk", "balance": {"by": ["task_type"], "mode": "ratios", "ratios": {"qa": 2, "code": 1, "math": 1}, "short": "shrink"},
            "size": 40}
    export = build(owner, dataset, spec)
    chosen = {k: s["chosen"] for k, s in export.manifest["strata"].items()}
    assert chosen == {"qa": 10, "code": 5, "math": 5}  # math (5 of 10 asked) halves everything
    assert export.manifest["selection"]["shrink"]["limited_by"] == "math"


POETRY_EMPTY = ('stratum poetry has no samples after the filters, so shrink would select nothing: '
                'set its target to 0, remove it, or use take_all')
SHRINK_EMPTY = {"name": "empty", "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 20, "code": 10, "poetry": 5},
                                             "short": "shrink"}}


def test_the_preview_refuses_a_shrink_that_a_stratum_without_samples_would_empty(owner, dataset, mixed, export_root):
    # given qa, code and math samples, and a shrink spec that asks for 5 of "poetry", which has none
    # when previewed
    with pytest.raises(SpecError) as caught:
        services.export_preview(user=owner, dataset=dataset, spec=SHRINK_EMPTY)
    # then the error names the stratum at its path, with the ways out
    assert caught.value.errors == {'balance.counts["poetry"]': POETRY_EMPTY}
    assert not Export.objects.exists() and not export_root.exists()


def test_every_empty_stratum_is_named_and_ratios_are_told_to_remove_it(owner, dataset, mixed):
    spec = {"name": "r", "size": 40, "balance": {"by": ["task_type"], "mode": "ratios", "ratios": {"qa": 2, "poetry": 1, "chess": 1},
                                                 "short": "shrink"}}
    with pytest.raises(SpecError) as caught:
        services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert caught.value.errors == {
        f'balance.ratios["{k}"]': f"stratum {k} has no samples after the filters, so shrink would select nothing: "
                                  "remove it from the ratios, or use take_all" for k in ("chess", "poetry")}


def test_the_filters_can_empty_a_stratum_too(owner, dataset, mixed):
    # math has 5 samples, but the spec asks only for English ones: after the filters it has none
    Sample.objects.filter(dataset=dataset, task_type="math").update(language="de")
    spec = {"name": "f", "filters": {"languages": ["en"]},
            "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 4, "math": 2}, "short": "shrink"}}
    with pytest.raises(SpecError) as caught:
        services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert list(caught.value.errors) == ['balance.counts["math"]']


def test_export_create_refuses_a_shrink_that_would_select_nothing_and_writes_nothing(owner, dataset, mixed, export_root,
                                                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(SpecError) as caught:
        services.export_create(user=owner, dataset=dataset, spec=SHRINK_EMPTY)
    assert caught.value.errors == {'balance.counts["poetry"]': POETRY_EMPTY}
    assert callbacks == []
    assert not Export.objects.exists() and not ExportFile.objects.exists()
    assert not export_root.exists()


def test_the_same_spec_is_accepted_with_take_all_or_a_zero_target(owner, dataset, mixed):
    take_all = {**SHRINK_EMPTY, "balance": {**SHRINK_EMPTY["balance"], "short": "take_all"}}
    assert services.export_preview(user=owner, dataset=dataset, spec=take_all)["chosen"] == 30
    zero = {**SHRINK_EMPTY, "balance": {**SHRINK_EMPTY["balance"], "counts": {"qa": 20, "code": 10, "poetry": 0}}}
    preview = services.export_preview(user=owner, dataset=dataset, spec=zero)
    assert (preview["chosen"], preview["shrink"]) == (30, None)
    export = build(owner, dataset, zero)
    assert export.sample_count == 30


def test_a_shrink_left_empty_for_another_reason_names_the_limiting_stratum(owner, dataset, mixed, export_root):
    # given a diversity selection on a dataset without embeddings: shrink halves every target (math has 5 of
    # the 10 asked), and then no candidate can be chosen for want of an embedding
    spec = {"name": "d", "size": 20, "select": {"method": "diversity"},
            "balance": {"by": ["task_type"], "mode": "ratios", "ratios": {"qa": 1, "math": 1}, "short": "shrink"}}
    expected = {'balance.ratios["math"]': "shrink selects nothing: every target is scaled to 50% by stratum math (5 available of 10 "
                                          "asked), and none of the samples left could be chosen (left out by the selection: "
                                          "not_requested 12, no_embedding 35)"}
    with pytest.raises(SpecError) as caught:
        services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert caught.value.errors == expected
    with pytest.raises(SpecError) as caught:
        services.export_create(user=owner, dataset=dataset, spec=spec, enqueue=False)
    assert caught.value.errors == expected
    assert not Export.objects.exists() and not export_root.exists()


def test_a_build_whose_shrink_is_emptied_after_it_was_asked_for_fails_naming_the_stratum(owner, dataset, mixed):
    # given an export asked for while math passed its metric filter (metrics are not versioned)
    for s in mixed:
        SampleMetric.objects.create(sample=s, dataset=dataset, metric="ifd", value=0.1)
    spec = {"name": "m", "filters": {"metrics": {"ifd": {"max": 0.5}}},
            "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 4, "math": 2}, "short": "shrink"}}
    export = services.export_create(user=owner, dataset=dataset, spec=spec, enqueue=False)
    # when math's scores change before the build
    SampleMetric.objects.filter(sample__task_type="math").update(value=0.9)
    export = services.export_build(export_id=export.pk)
    # then the build fails with the same reason, and leaves no files
    assert export.status == Export.Status.FAILED
    assert export.error == ("The spec selects no samples: stratum math has no samples after the filters, so shrink would select "
                            "nothing: set its target to 0, remove it, or use take_all.")
    assert not ExportFile.objects.filter(export=export).exists() and not storage.export_dir(export).exists()


def test_share_percent_reads_as_a_person_expects():
    assert [services.share_percent(p, t) for p, t in ((3, 200), (1, 3), (4, 10), (5, 10), (1999, 2000), (1, 3000), (1, 10**7), (0, 5))] == [
        "1.5", "33.3", "40", "50", "99.95", "0.0333", "<0.01", "0"]


# --- revisions --------------------------------------------------------------------------------

def test_the_newest_approved_revision_replaces_the_answer_and_is_listed(owner, dataset):
    a, b, c = make_samples(dataset, {"qa": 3})
    SampleRevision.objects.create(sample=a, messages=[a.messages[0], {"role": "assistant", "content": "first fix"}], status="approved")
    newest = SampleRevision.objects.create(sample=a, messages=[a.messages[0], {"role": "assistant", "content": "second fix"}], status="approved")
    SampleRevision.objects.create(sample=b, messages=[b.messages[0], {"role": "assistant", "content": "only proposed"}], status="proposed")
    export = services.export_create(user=owner, dataset=dataset, spec={"name": "rev", "formats": ["messages", "alpaca"]}, enqueue=False)
    # approved after the export was asked for: not in it
    SampleRevision.objects.create(sample=c, messages=[c.messages[0], {"role": "assistant", "content": "too late"}], status="approved")
    export = services.export_build(export_id=export.pk)
    files = files_on_disk(export)
    answers = [r["messages"][-1]["content"] for r in read_jsonl(files["data/train.messages.jsonl"])]
    assert answers == ["second fix", b.messages[-1]["content"], c.messages[-1]["content"]]
    assert [r["output"] for r in read_jsonl(files["data/train.alpaca.jsonl"])] == answers
    rows = read_jsonl(files["samples.jsonl"])
    assert [r["revision_id"] for r in rows] == [newest.pk, None, None]
    assert export.manifest["revisions_used"] == 1
    assert export.manifest["lineage"] == {"file": "samples.jsonl", "truncated": False,
                                          "revised": [{"sample_id": a.pk, "external_id": a.external_id, "revision_id": newest.pk, "split": "train"}]}
    assert Sample.objects.get(pk=a.pk).messages == a.messages  # the original is untouched


# --- formats ----------------------------------------------------------------------------------

def test_every_format_reads_back_as_a_valid_conversation(owner, dataset, mixed):
    multi = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "Größe? ✓"}, {"role": "assistant", "content": "Groß."}]
    SampleFactory(dataset=dataset, task_type="qa", status="approved", messages=multi)
    export = build(owner, dataset, {**BALANCED, "balance": {}})
    files = files_on_disk(export)
    n = {"train": export.manifest["counts"]["splits"]["train"], "validation": export.manifest["counts"]["splits"]["validation"]}
    assert n == {"train": 39, "validation": 9}
    for split in ("train", "validation"):
        convs = {
            "messages": [r["messages"] for r in read_jsonl(files[f"data/{split}.messages.jsonl"])],
            "prompt_completion": [r["prompt"] + r["completion"] for r in read_jsonl(files[f"data/{split}.prompt_completion.jsonl"])],
            "sharegpt": [[{"role": {"human": "user", "gpt": "assistant", "system": "system"}[m["from"]], "content": m["value"]}
                          for m in r["conversations"]] for r in json.loads(files[f"data/{split}.sharegpt.json"].read_text())],
            "parquet": pq.read_table(files[f"data/{split}.parquet"]).to_pylist(),
        }
        convs["parquet"] = [r["messages"] for r in convs["parquet"]]
        alpaca = read_jsonl(files[f"data/{split}.alpaca.jsonl"])
        for fmt, rows in convs.items():
            assert len(rows) == n[split], (fmt, split)
            assert rows == convs["messages"], fmt
            for messages in rows:
                assert validate_messages(messages) == []  # roles alternate, the assistant speaks last
                assert messages[0] == {"role": "system", "content": "Be helpful."}
        assert all(r["system"] == "Be helpful." and r["input"] == "" for r in alpaca)
        assert [r["output"] for r in alpaca] == [m[-1]["content"] for m in convs["messages"]]
    both = [r["messages"] for split in ("train", "validation") for r in read_jsonl(files[f"data/{split}.messages.jsonl"])]
    assert [m[1:] for m in both if len(m) == 5] == [multi]  # the multi-turn one, whole, after the system prompt
    info = json.loads(files["dataset_info.json"].read_text())
    assert info["mix"]["file_name"] == "data/train.messages.jsonl" and info["mix_validation"]["file_name"] == "data/validation.messages.jsonl"
    assert "data/train.messages.jsonl" in files["axolotl.yaml"].read_text()
    card = files["README.md"].read_text()
    assert card.startswith("---\n") and "path: \"data/train.messages.jsonl\"" in card and "config_name: \"parquet\"" in card


# --- manifest ---------------------------------------------------------------------------------

def test_the_manifest_lists_every_file_with_its_size_and_hash(owner, dataset, mixed):
    export = build(owner, dataset, BALANCED)
    files = files_on_disk(export)
    manifest = json.loads(files["manifest.json"].read_text())
    assert {k: v for k, v in export.manifest.items() if k != "bundle"} == manifest
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json", "mix.tar"}
    for path, f in listed.items():
        assert (f["bytes"], f["sha256"]) == (files[path].stat().st_size, sha(files[path])), path
    assert listed["data/train.messages.jsonl"] | {} == {"path": "data/train.messages.jsonl", "format": "messages", "split": "train", "rows": 20,
                                                        "bytes": listed["data/train.messages.jsonl"]["bytes"],
                                                        "sha256": listed["data/train.messages.jsonl"]["sha256"]}
    assert listed["samples.jsonl"]["rows"] == 25
    for line in files["samples.jsonl"].read_text(encoding="utf-8").splitlines():  # written as formats.dumps writes them
        assert line == dumps(json.loads(line))
    rows = {r.path: r for r in ExportFile.objects.filter(export=export)}
    assert set(rows) == set(files)
    for path, r in rows.items():
        assert (r.bytes, r.sha256) == (files[path].stat().st_size, sha(files[path])), path
    assert (rows["data/validation.parquet"].format, rows["data/validation.parquet"].split, rows["data/validation.parquet"].rows) == ("parquet", "validation", 5)
    assert export.total_bytes == sum(p.stat().st_size for p in files.values())
    assert export.manifest["bundle"] == {"path": "mix.tar", "bytes": files["mix.tar"].stat().st_size, "sha256": sha(files["mix.tar"]),
                                         "files": len(files) - 1}
    with tarfile.open(files["mix.tar"]) as tar:
        assert sorted(tar.getnames()) == sorted(f"mix/{p}" for p in files if p != "mix.tar")
    assert manifest["id"] == export.pk and manifest["dataset"] == {"id": dataset.pk, "slug": "ds"}
    assert manifest["created_by"] == "olga" and manifest["spec_sha256"] == export.spec_sha256
    assert manifest["as_of"] == export.as_of and set(export.as_of) == {"sample_id", "status_change_id", "revision_id", "at"}
    assert manifest["filters"] == {"samples": 51, "filtered": {"status": 4}, "metric_filtered": {}, "pool": 47}
    assert manifest["code_version"]["sftdesk"] and manifest["code_version"]["pyarrow"]


# --- failure and re-runs ----------------------------------------------------------------------

def test_a_conversation_that_cannot_be_trained_on_is_left_out_and_listed(owner, dataset, mixed):
    bad = SampleFactory(dataset=dataset, status="approved", task_type="math", external_id="broken",
                        messages=[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": " "}])
    export = build(owner, dataset, {"name": "all", "formats": ["messages", "parquet"]})
    assert export.manifest["skipped"] == {"count": 1, "truncated": False, "rows": [
        {"sample_id": bad.pk, "external_id": "broken", "revision_id": None, "split": "train", "stratum": "all",
         "problem": "message 1: content is empty"}]}
    assert export.manifest["strata"]["all"]["chosen"] == 48
    assert export.manifest["counts"] == {"total": 47, "splits": {"train": 47, "validation": 0},
                                         "strata": {"all": {"rows": 47, "train": 47, "validation": 0}}}
    assert export.sample_count == 47
    files = files_on_disk(export)
    assert bad.pk not in [r["sample_id"] for r in read_jsonl(files["samples.jsonl"])]
    lines = files["samples.jsonl"].read_text(encoding="utf-8").splitlines()
    assert 'zitat "größe" \\ ✓' in [json.loads(line)["external_id"] for line in lines]
    assert all(line == dumps(json.loads(line)) for line in lines)
    assert len(read_jsonl(files["data/train.messages.jsonl"])) == pq.read_metadata(files["data/train.parquet"]).num_rows == 47
    assert "47 conversations: 47 for training, 0 for validation." in files["README.md"].read_text()


def test_a_failed_build_leaves_no_files_and_says_why(owner, dataset):
    SampleFactory(dataset=dataset, status="approved", external_id="broken",
                  messages=[{"role": "assistant", "content": "x"}, {"role": "user", "content": "no answer"}])
    export = services.export_create(user=owner, dataset=dataset, spec={"name": "all"}, enqueue=False)
    export = services.export_build(export_id=export.pk)
    assert export.status == Export.Status.FAILED and export.finished_at is not None
    assert export.error == ("None of the 1 chosen samples is a conversation a model can be trained on (for example: message 0: expected "
                            "a user message, got assistant; the last message must be from the assistant).")
    assert not ExportFile.objects.filter(export=export).exists() and export.manifest == {}
    root = storage.export_dir(export).parent
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))
    assert not storage.partial_dir(export).exists()


def test_a_crash_mid_write_leaves_no_files(owner, dataset, mixed, monkeypatch):
    from exports import formats

    calls = {"n": 0}
    real = formats.FormatWriter.write_conversation

    def flaky(self, messages):
        calls["n"] += 1
        if calls["n"] > 30:
            raise OSError(28, "No space left on device")
        return real(self, messages)

    monkeypatch.setattr(formats.FormatWriter, "write_conversation", flaky)
    export = services.export_create(user=owner, dataset=dataset, spec=BALANCED, enqueue=False)
    export = services.export_build(export_id=export.pk)
    assert export.status == "failed" and "No space left on device" in export.error
    assert not storage.export_dir(export).exists() and not storage.partial_dir(export).exists()


def test_an_export_that_selects_nothing_fails_with_the_reason(owner, dataset):
    make_samples(dataset, {"qa": 3}, status="in_review")
    export = services.export_create(user=owner, dataset=dataset, spec={"name": "none"}, enqueue=False)
    export = services.export_build(export_id=export.pk)
    assert export.status == "failed" and "selects no samples" in export.error and "status 3" in export.error


def test_running_the_task_twice_does_nothing_the_second_time(owner, dataset, mixed):
    export = services.export_create(user=owner, dataset=dataset, spec=BALANCED, enqueue=False)
    assert export_build_task(export.pk) == "succeeded"
    export.refresh_from_db()
    before = {p: (f.stat().st_mtime_ns, sha(f)) for p, f in files_on_disk(export).items()}
    rows = list(ExportFile.objects.filter(export=export).values_list("pk", "sha256"))
    assert export_build_task(export.pk) == "succeeded"
    again = Export.objects.get(pk=export.pk)
    assert (again.finished_at, again.started_at, again.manifest) == (export.finished_at, export.started_at, export.manifest)
    assert {p: (f.stat().st_mtime_ns, sha(f)) for p, f in files_on_disk(export).items()} == before
    assert list(ExportFile.objects.filter(export=export).values_list("pk", "sha256")) == rows


def test_an_export_another_worker_is_building_is_left_alone(owner, dataset, mixed):
    export = services.export_create(user=owner, dataset=dataset, spec=BALANCED, enqueue=False)
    holding, release = threading.Event(), threading.Event()

    def other_worker():  # its own database connection, as another worker process would have
        try:
            with services._build_lock(export.pk) as got:  # noqa: SLF001
                assert got
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert holding.wait(10)
        assert export_build_task(export.pk) == "queued"
        assert not storage.export_dir(export).exists()
    finally:
        release.set()
        thread.join(10)
    assert export_build_task(export.pk) == "succeeded"


def test_an_export_left_building_by_a_dead_worker_is_built_again(owner, dataset, mixed):
    export = services.export_create(user=owner, dataset=dataset, spec=BALANCED, enqueue=False)
    Export.objects.filter(pk=export.pk).update(status="building")
    stale = storage.partial_dir(export) / "data"
    stale.mkdir(parents=True)
    (stale / "train.messages.jsonl").write_text("half a line")
    export = services.export_build(export_id=export.pk)
    assert export.status == "succeeded" and not storage.partial_dir(export).exists()
    assert len(read_jsonl(files_on_disk(export)["data/train.messages.jsonl"])) == 20


def test_export_create_queues_the_build_on_commit(owner, dataset, mixed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        export = services.export_create(user=owner, dataset=dataset, spec=BALANCED)
    assert len(callbacks) == 1
    export.refresh_from_db()
    assert export.status == "succeeded" and export.sample_count == 25


# --- access -----------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["annotator", None])
def test_annotators_and_outsiders_get_404(dataset, mixed, role):
    user = UserFactory(username="anna")
    if role:
        MembershipFactory(user=user, dataset=dataset, role=role)
    with pytest.raises(Http404):
        services.export_create(user=user, dataset=dataset, spec=BALANCED, enqueue=False)
    with pytest.raises(Http404):
        services.export_preview(user=user, dataset=dataset, spec=BALANCED)
    assert not Export.objects.exists()


def test_a_reviewer_may_export_and_a_bad_spec_names_its_fields(dataset, mixed):
    rita = UserFactory(username="rita")
    MembershipFactory(user=rita, dataset=dataset, role=Membership.Role.REVIEWER)
    with pytest.raises(SpecError) as caught:
        services.export_create(user=rita, dataset=dataset, spec={"name": "x", "balance": {"mode": "cap"}}, enqueue=False)
    assert set(caught.value.errors) == {"balance.by", "balance.cap"}
    assert not Export.objects.exists()
    export = services.export_create(user=rita, dataset=dataset, spec=BALANCED, enqueue=False)
    assert export.created_by == rita and export.status == "queued"


def test_export_file_path_stays_inside_the_export(owner, dataset):
    export = Export(pk=7, dataset=dataset)
    assert storage.export_file_path(export, "data/train.parquet") == storage.export_dir(export) / "data" / "train.parquet"
    for bad in ("/etc/passwd", "../6/manifest.json", "data/../../x", "", "a\\b"):
        with pytest.raises(ValueError):
            storage.export_file_path(export, bad)


# --- the command line -------------------------------------------------------------------------

def test_the_command_builds_and_copies_the_files(owner, dataset, mixed, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(BALANCED))
    out, err = io.StringIO(), io.StringIO()
    call_command("export", "ds", "--spec", str(spec), "--out", str(tmp_path / "out"), "--user", "olga", stdout=out, stderr=err)
    export = Export.objects.get()
    text = out.getvalue()
    assert "25 samples (train 20, validation 5)" in text
    assert "  math" in text and "yes" in text  # the short stratum
    for f in ExportFile.objects.filter(export=export):
        copied = tmp_path / "out" / f.path
        assert sha(copied) == f.sha256 and f"{f.sha256}" in text and f.path in text
    assert export.created_by == owner


def test_the_command_refuses_a_bad_spec_and_writes_nothing(dataset, mixed, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "bad name!", "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa/x": 3}}}))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("export", "ds", "--spec", str(spec), "--out", str(tmp_path / "out"), stderr=err)
    lines = err.getvalue().splitlines()
    assert f"{spec}: name: must be 1 to 100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit" in lines
    assert any(line.startswith(f'{spec}: balance.counts["qa/x"]: has 2 parts') for line in lines)
    assert not (tmp_path / "out").exists() and not Export.objects.exists()


def test_the_command_refuses_a_user_who_may_not_export(dataset, mixed, tmp_path):
    UserFactory(username="anna")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(BALANCED))
    with pytest.raises(CommandError, match="may not export"):
        call_command("export", "ds", "--spec", str(spec), "--out", str(tmp_path / "out"), "--user", "anna")
    assert not Export.objects.exists()


# --- preview ----------------------------------------------------------------------------------

def test_the_preview_counts_what_is_kept_and_dropped_and_why(owner, dataset, mixed, export_root, django_assert_max_num_queries):
    qa = [s for s in mixed if s.task_type == "qa"]
    SampleFlag.objects.create(sample=qa[0], dataset=dataset, metric="exact_duplicate", rule="exact_duplicate", reason="dup", other_sample=qa[1])
    SampleFlag.objects.create(sample=qa[2], dataset=dataset, metric="length", rule="empty_answer", reason="empty")
    Sample.objects.filter(pk__in=[qa[0].pk, qa[2].pk]).update(flag_count=1)
    for i, s in enumerate(mixed):
        SampleMetric.objects.create(sample=s, dataset=dataset, metric="ifd", value=0.1 * (i % 10))
        SampleMetric.objects.create(sample=s, dataset=dataset, metric="difficulty_bucket", label=("easy", "medium", "hard")[i % 3])
        SampleMetric.objects.create(sample=s, dataset=dataset, metric="cluster", value=i % 4)
    spec = {**BALANCED, "filters": {"flags": "exclude_any", "metrics": {"ifd": {"max": 0.85}}}}
    with django_assert_max_num_queries(20):
        preview = services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert preview["samples"] == 51
    # ifd 0.9 for every tenth sample (3 qa, 1 code); the two flagged ones count under duplicate and flagged
    assert preview["filtered"] == {"status": 4, "duplicate": 1, "flagged": 1, "metric": 4}
    assert preview["metric_filtered"] == {"ifd": 4}
    assert preview["pool"] == 41
    assert {k: (s["pool"], s["target"], s["chosen"], s["short"]) for k, s in preview["strata"].items()} == {
        "qa": (25, 10, 10, False), "code": (11, 10, 10, False), "math": (5, 10, 5, True)}
    assert preview["dropped"] == {"over_target": 16}
    assert preview["splits"] == {"train": 20, "validation": 5} and preview["chosen"] == 25
    tasks = {d["value"]: (d["pool"], d["selected"]) for d in preview["distributions"]["task_type"]}
    assert tasks == {"qa": (25, 10), "code": (11, 10), "math": (5, 5)}
    assert sum(d["pool"] for d in preview["distributions"]["difficulty"]) == 41
    assert {d["value"] for d in preview["distributions"]["difficulty"]} == {"easy", "medium", "hard"}
    assert preview["distributions"]["language"] == [{"value": "en", "pool": 41, "selected": 25}]
    assert preview["clusters"] == {"pool": 4, "covered": 4}
    assert preview["diversity"] is None  # no embeddings
    assert json.loads(json.dumps(preview)) == preview  # plain JSON, for the page and the API
    assert not Export.objects.exists() and not (export_root / str(dataset.pk)).exists()


def test_the_preview_follows_consensus_and_difficulty_strata(owner, dataset, mixed):
    for i, s in enumerate(mixed[:20]):
        ReviewItem.objects.create(dataset=dataset, sample=s, verdict="accept", verdict_confidence=1.0 if i % 2 else 0.5,
                                  accuracy=5, completeness=4, conciseness=3, difficulty="hard" if i < 10 else "easy")
    spec = {"name": "c", "filters": {"consensus": {"min_confidence": 0.8}}, "balance": {"by": ["difficulty"], "mode": "cap", "cap": 3},
            "select": {"method": "quality", "quality_key": "consensus"}}
    preview = services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert preview["filtered"] == {"status": 4, "consensus": 37}
    assert {k: (s["pool"], s["chosen"]) for k, s in preview["strata"].items()} == {"hard": (5, 3), "easy": (5, 3)}


def test_named_flags_task_types_and_languages_filter_the_pool(owner, dataset, mixed):
    qa = [s for s in mixed if s.task_type == "qa"]
    SampleFlag.objects.create(sample=qa[0], dataset=dataset, metric="cleaning", rule="empty_answer", reason="empty")
    SampleFlag.objects.create(sample=qa[1], dataset=dataset, metric="length", rule="too_long", reason="long")
    Sample.objects.filter(pk=qa[2].pk).update(language="de")
    spec = {"name": "f", "filters": {"flags": ["empty_answer", "length"], "task_types": ["qa", "math"], "languages": ["en"]}}
    preview = services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert preview["filtered"] == {"status": 4, "task_type": 12, "language": 1, "flagged": 2}
    assert preview["pool"] == 32
    export = build(owner, dataset, spec)
    ids = {r["sample_id"] for r in read_jsonl(files_on_disk(export)["samples.jsonl"])}
    assert len(ids) == 32 and not ids & {qa[0].pk, qa[1].pk, qa[2].pk}


def test_diversity_selection_and_the_preview_score_use_the_embeddings(owner, dataset):
    samples = make_samples(dataset, {"qa": 12})
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)).astype(np.float32)
    for i, s in enumerate(samples):
        vec = centers[i % 3] + 0.01 * rng.normal(size=8).astype(np.float32)
        SampleEmbedding.objects.create(sample=s, kind="instruction", model_key="m1", content_hash="h", vector=vec.astype(np.float32).tobytes())
    spec = {"name": "div", "size": 3, "select": {"method": "diversity", "diversity": {"method": "k_center"}}}
    preview = services.export_preview(user=owner, dataset=dataset, spec=spec)
    assert preview["chosen"] == 3
    assert preview["diversity"]["method"] == "vendi" and preview["diversity"]["sample_size"] == {"pool": 12, "selection": 3}
    assert preview["diversity"]["selection"] > 2.5  # one from each of the 3 groups
    assert json.loads(json.dumps(preview)) == preview
    export = build(owner, dataset, spec)
    chosen = [r["sample_id"] for r in read_jsonl(files_on_disk(export)["samples.jsonl"])]
    assert sorted(samples.index(Sample.objects.get(pk=i)) % 3 for i in chosen) == [0, 1, 2]
    assert export.manifest["selection"]["embedding_model"] == "m1"
