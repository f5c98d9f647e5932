"""Scoring runs end to end in-process (SQLite, tasks eager): stages, idempotent chunks, reuse of
unchanged work, flags written back as counts, the demo dataset's deliberate flaws found."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from annotator.models import Dataset, Sample
from scoring import services
from scoring.models import SampleEmbedding, SampleFlag, SampleMetric, ScoringChunk, ScoringRun

pytestmark = [pytest.mark.django_db, pytest.mark.both]  # also on PostgreSQL (its COPY upsert path)

DEMO_FLAWS = {
    ("demo-013", "unseeable_input"),
    ("demo-025", "wrong_language"),
    ("demo-032", "truncated_answer"),
    ("demo-045", "empty_answer"),
    ("demo-052", "refusal"),
    ("demo-056", "refusal"),
    ("demo-054", "near_duplicate"),
    ("demo-054", "semantic_duplicate"),  # a reworded copy of demo-031: both near and semantic
}


@pytest.fixture
def demo(db):
    call_command("load_demo", stdout=io.StringIO())
    return Dataset.objects.get(slug="demo")


def flags(dataset):
    return set(SampleFlag.objects.filter(dataset=dataset).values_list("sample__external_id", "rule"))


def test_rules_and_duplicates_flag_every_deliberate_flaw_of_the_demo(demo):
    run = services.run_create(user=None, dataset=demo, metrics="rules,duplicates", enqueue=False)
    assert run.stages == ["rules", "embed", "dataset"]
    run = services.run_inline(run_id=run.pk)
    assert run.status == "succeeded", run.errors
    found = flags(demo)
    assert found >= DEMO_FLAWS, sorted(DEMO_FLAWS - found)
    extra = found - DEMO_FLAWS
    assert extra == set(), sorted(extra)  # nothing else in the demo is flagged
    near = SampleFlag.objects.get(dataset=demo, rule="near_duplicate")
    assert near.reason.startswith("near-duplicate of sample demo-031, Jaccard 0.")
    assert near.other_sample.external_id == "demo-031"
    counts = dict(Sample.objects.filter(dataset=demo, flag_count__gt=0).values_list("external_id", "flag_count"))
    assert counts == {ext: 2 if ext == "demo-054" else 1 for ext, _rule in DEMO_FLAWS}
    assert run.summary["duplicates"]["near_groups"] == 1
    assert run.models_used["embedder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_chunk_run_twice_writes_its_rows_once(demo):
    with override_settings(SFTDESK_SCORING_CHUNK_SIZE=25):
        run = services.run_create(user=None, dataset=demo, metrics="rules", enqueue=False)
        services.run_advance(run_id=run.pk, enqueue=False)
    chunks = list(ScoringChunk.objects.filter(run=run).order_by("index"))
    assert [c.index for c in chunks] == [0, 1, 2]
    assert services.chunk_run(chunk_id=chunks[0].pk, enqueue=False) == "done"
    rows = list(SampleMetric.objects.order_by("id").values_list("sample_id", "metric", "value", "label"))
    # a redelivered chunk (the worker died after writing, before acking) is redone from the start
    ScoringChunk.objects.filter(pk=chunks[0].pk).update(status=ScoringChunk.Status.PENDING)
    assert services.chunk_run(chunk_id=chunks[0].pk, enqueue=False) == "done"
    assert sorted(SampleMetric.objects.values_list("sample_id", "metric", "value", "label")) == sorted(rows)
    assert services.chunk_run(chunk_id=chunks[0].pk, enqueue=False) == "skipped"  # done chunks are not redone
    run = services.run_inline(run_id=run.pk)
    assert run.status == "succeeded"
    assert (run.samples_computed, run.samples_reused) == (61, 25)  # the redone chunk found its own rows and reused them


def test_unchanged_samples_are_not_recomputed(demo):
    first = services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="rules,duplicates", enqueue=False).pk)
    # rules for each of the 61 samples, two embeddings for each of the 33 the English embedder covers
    assert (first.samples_computed, first.samples_reused) == (61 + 33 * 2, 0)
    before = flags(demo)
    second = services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="rules,duplicates", enqueue=False).pk)
    assert (second.samples_computed, second.samples_reused) == (0, 61 + 33 * 2)
    assert flags(demo) == before


def test_unknown_metric_is_refused():
    with pytest.raises(services.ScoringRefused, match="unknown metric nope"):
        services.parse_metrics("rules,nope")
    assert ScoringRun.objects.count() == 0


def test_score_and_score_report_commands(demo, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command("score", "demo", "--metrics", "rules", "--inline", stdout=out, stderr=err)
    assert "succeeded" in out.getvalue()
    assert "flags: refusal 2" in out.getvalue()
    report = io.StringIO()
    call_command("score_report", "demo", "--flagged", "--format", "jsonl", stdout=report)
    import json

    lines = [json.loads(line) for line in report.getvalue().splitlines()]
    assert sorted(r["external_id"] for r in lines) == ["demo-013", "demo-025", "demo-032", "demo-045", "demo-052", "demo-056"]
    refusal = next(r for r in lines if r["external_id"] == "demo-052")
    assert refusal["flags"] == [{"rule": "refusal", "reason": "answer refuses: matches 'as an AI language model'"}]
    assert refusal["refusal"] == "as an AI language model"
    csv_path = tmp_path / "r.csv"
    call_command("score_report", "demo", "--format", "csv", "--out", str(csv_path), stdout=io.StringIO())
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("external_id,answer_length,")
    assert len(rows) == 62


def test_ifd_stage_with_a_local_causal_lm_scores_buckets_and_reuses(demo, tmp_path):
    from tests.scoring.test_difficulty import _minilm_tokenizer, _save_tiny_llama

    _save_tiny_llama(tmp_path / "lm", _minilm_tokenizer())
    with override_settings(SFTDESK_CAUSAL_LM=str(tmp_path / "lm")):
        run = services.run_create(user=None, dataset=demo, metrics="difficulty", enqueue=False)
        assert run.stages == ["ifd", "dataset"]
        run = services.run_inline(run_id=run.pk)
        assert run.status == "succeeded", run.errors
        ifd = SampleMetric.objects.filter(dataset=demo, metric="ifd")
        assert ifd.count() == 61
        assert ifd.filter(value__isnull=True).count() == 1  # demo-045 has an empty answer
        buckets = dict(SampleMetric.objects.filter(dataset=demo, metric="difficulty_bucket").values_list("sample__external_id", "label"))
        assert sorted(set(buckets.values())) == ["easy", "hard", "medium"]
        assert run.models_used["causal_lm"]["path"] == str((tmp_path / "lm").resolve())
        assert SampleFlag.objects.filter(dataset=demo, rule="ifd_above_1").count() == ifd.filter(value__gt=1).count()
        again = services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="difficulty", enqueue=False).pk)
        assert (again.samples_computed, again.samples_reused) == (0, 61)


def test_a_missing_causal_lm_fails_that_metric_and_the_run_goes_on(demo, tmp_path):
    with override_settings(SFTDESK_CAUSAL_LM=str(tmp_path / "nowhere")):
        run = services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="rules,difficulty", enqueue=False).pk)
    assert run.status == "succeeded"
    assert len(run.errors) == 1 and run.errors[0]["stage"] == "ifd"
    assert str(tmp_path / "nowhere") in run.errors[0]["message"]
    assert SampleFlag.objects.filter(dataset=demo, rule="refusal").count() == 2  # the rules still ran


def test_an_empty_dataset_finishes(db):
    empty = Dataset.objects.create(name="empty", slug="empty")
    run = services.run_inline(run_id=services.run_create(user=None, dataset=empty, metrics="rules,duplicates", enqueue=False).pk)
    assert run.status == "succeeded"
    assert run.samples_total == 0


def test_a_sample_that_leaves_its_duplicate_group_loses_the_old_values(demo):
    services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="duplicates", enqueue=False).pk)
    rep = Sample.objects.get(dataset=demo, external_id="demo-031")
    assert SampleMetric.objects.get(sample=rep, metric="near_duplicate").value == 2
    Sample.objects.filter(dataset=demo, external_id="demo-054").delete()
    services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="duplicates", enqueue=False).pk)
    assert not SampleMetric.objects.filter(sample=rep, metric__in=["near_duplicate", "semantic_duplicate"]).exists()
    assert not SampleFlag.objects.filter(dataset=demo, rule__endswith="duplicate").exists()


def test_samples_imported_during_a_run_wait_for_the_next_one(demo):
    run = services.run_create(user=None, dataset=demo, metrics="rules", enqueue=False)
    Sample.objects.create(dataset=demo, external_id="late", messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}],
                          content_hash="late")
    run = services.run_inline(run_id=run.pk)
    assert not SampleMetric.objects.filter(sample__external_id="late").exists()
    assert run.samples_total == 61


SIMILARITY_METRICS = {"semantic_duplicate", "cluster", "completeness", "reference_similarity", "label_error"}


def test_an_english_embedder_judges_no_chinese_sample_by_similarity(demo):
    """The bundled all-MiniLM-L6-v2 is English-only: on Chinese text its cosines are noise (unrelated
    sentences at 0.95). Chinese samples get no similarity-based value or flag, and the report says so."""
    assert settings.SFTDESK_EMBEDDER_LANGUAGES == "en"  # the default with the bundled model
    run = services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="all", enqueue=False).pk)
    assert run.status == "succeeded", run.errors
    assert run.params["embedder_languages"] == ["en"]
    zh = set(Sample.objects.filter(dataset=demo, language="zh").values_list("id", flat=True))
    others = set(Sample.objects.filter(dataset=demo).exclude(language="zh").values_list("id", flat=True))
    assert (len(zh), len(others)) == (28, 33)  # 61 samples: one of the 62 records is an exact duplicate, skipped at import
    assert not SampleMetric.objects.filter(sample_id__in=zh, metric__in=SIMILARITY_METRICS).exists()
    assert not SampleEmbedding.objects.filter(sample_id__in=zh).exists()  # not even embedded: nothing may use them
    assert SampleEmbedding.objects.filter(sample_id__in=others, kind="instruction").count() == 33
    assert set(SampleMetric.objects.filter(metric="cluster").values_list("sample_id", flat=True)) == others
    # conciseness still judges repetition and structure, without a cluster to compare lengths with
    concise = dict(SampleMetric.objects.filter(metric="conciseness", sample_id__in=zh).values_list("sample_id", "details"))
    assert set(concise) == zh and all(d["cluster"] is None for d in concise.values())
    assert run.summary["embedder_coverage"] == {
        "languages": ["en"], "not_covered": {"zh": 28},
        "metrics": ["accuracy", "completeness", "conciseness", "consistency", "diversity", "duplicates", "label_errors"]}
    diversity = run.summary["diversity"]
    assert (diversity["n"], diversity["clustered"], diversity["languages"]) == (61, 33, {"en": 33, "zh": 28})
    assert sum(diversity["instructions"]["cluster_sizes"].values()) == 33
    assert sum(diversity["answer_length_histogram"].values()) == 61


def test_a_multilingual_embedder_judges_every_sample(demo):
    with override_settings(SFTDESK_EMBEDDER_LANGUAGES="zh, EN"):
        run = services.run_create(user=None, dataset=demo, metrics="diversity", enqueue=False)
    assert run.params["embedder_languages"] == ["en", "zh"]
    run = services.run_inline(run_id=run.pk)
    assert SampleMetric.objects.filter(metric="cluster").count() == 61
    assert "embedder_coverage" not in run.summary
    assert run.summary["diversity"]["clustered"] == 61


def test_identical_chinese_instructions_with_conflicting_answers_are_found_without_the_embedder(db):
    """Consistency among near-identical instructions needs embeddings; among identical ones it needs
    only the text, so it still applies to samples the embedder does not cover."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotator import services as annotator_services

    ds = Dataset.objects.create(name="zh", slug="zh")
    rows = [{"instruction": "判断下面这句话的情感，只回答“正面”或“负面”。", "input": "这部电影太好看了，我还想再看一遍。", "output": out}
            for out in ("正面", "负面")]
    rows.append({"instruction": "把下面的句子翻译成英文。", "input": "今天天气很好。", "output": "The weather is nice today."})
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    job = annotator_services.import_job_create(user=None, dataset=ds, upload=SimpleUploadedFile("zh.jsonl", data), enqueue=False)
    annotator_services.import_job_run(job=annotator_services.import_job_claim(job_id=job.pk))
    assert set(Sample.objects.filter(dataset=ds).values_list("language", flat=True)) == {"zh"}
    services.run_inline(run_id=services.run_create(user=None, dataset=ds, metrics="consistency", enqueue=False).pk)
    conflicts = SampleFlag.objects.filter(dataset=ds, rule="conflicting_answer").order_by("sample__external_id")
    assert conflicts.count() == 2
    assert "conflicts with" in conflicts[0].reason
    assert not SampleEmbedding.objects.filter(sample__dataset=ds).exists()
