"""Scoring runs: plan the stages, run chunks idempotently, write per-sample metrics and flags.

A run goes through stages in order. Chunked stages (rules on the cpu queue; embeddings and IFD on the
gpu queue) split the dataset into id ranges of about SFTDESK_SCORING_CHUNK_SIZE samples, one task
per chunk; the last chunk to finish starts the next stage. The `dataset` stage needs every sample
at once (duplicates, clusters, group statistics) and runs as one task; then the run is finished and
each sample's flag count is written back through the annotator's service.

Writes are upserts keyed by (sample, metric) and (sample, metric, rule) inside one transaction per
chunk, so a chunk run twice writes the same rows once; done chunks are skipped on redelivery. A message
delivered twice at once (a broker's visibility timeout, a re-published stage) finds the piece of
work locked by the worker computing it and returns at once (PostgreSQL advisory locks)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Max, OuterRef, Subquery
from django.utils import timezone

from annotator.models import Dataset, Membership, Sample
from annotator.services import annotation_config, check_dataset_role, queue_rank_refresh, samples_set_flag_counts
from scoring.metrics.base import MetricResult

from . import compute
from .models import SampleFlag, SampleMetric, ScoringChunk, ScoringRun

logger = logging.getLogger(__name__)

# Metric groups a person can ask for, and the stage that computes each.
METRIC_GROUPS = {
    "rules": "rules",
    "difficulty": "ifd",
    "accuracy": "judge",
    "duplicates": "dataset",
    "diversity": "dataset",
    "completeness": "embed",
    "conciseness": "dataset",
    "consistency": "dataset",
    "label_errors": "dataset",
}
STAGE_ORDER = ("rules", "embed", "ifd", "judge", "dataset")
CHUNKED = {"rules": "cpu", "embed": "gpu", "ifd": "gpu", "judge": "gpu"}
EMBEDDING_GROUPS = {"diversity", "completeness", "conciseness", "consistency", "label_errors"}
MAX_CHUNK_ATTEMPTS = 3
ADVISORY_LOCK_CLASS = 0x5C0  # high bits of the advisory lock keys of scoring's pieces of work
DATASET_GROUPS = {"duplicates", "diversity", "conciseness", "consistency", "label_errors", "difficulty"}


class ScoringRefused(Exception):
    pass


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def parse_metrics(value: str | Iterable[str]) -> list[str]:
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    if not names or names == ["all"]:
        return list(METRIC_GROUPS)
    unknown = [n for n in names if n not in METRIC_GROUPS]
    if unknown:
        raise ScoringRefused(f"unknown metric {', '.join(unknown)}; choose from all, {', '.join(METRIC_GROUPS)}")
    return names


def plan_stages(metrics: Sequence[str]) -> list[str]:
    """The stages for these metric groups. Decided once, when the run is made, from this process's
    settings; workers follow run.stages and run.params, never their own settings."""
    stages = {METRIC_GROUPS[m] for m in metrics}
    if EMBEDDING_GROUPS & set(metrics) or "duplicates" in metrics:
        stages.add("embed")  # semantic duplicates and every embedding metric need it
    if "difficulty" in metrics and not settings.SFTDESK_CAUSAL_LM:
        stages.discard("ifd")
        stages.add("rules")  # the heuristic runs with the rules
    if "accuracy" in metrics:
        stages.discard("judge")
        if settings.SFTDESK_REWARD_MODEL:
            stages.add("judge")
        stages.add("embed")  # similarity to a reference answer, where the record has one
    stages.add("dataset")  # always: it also finishes the run
    return [s for s in STAGE_ORDER if s in stages]


def run_create(*, user: AbstractBaseUser | None, dataset: Dataset, metrics: str | Iterable[str] = "all", enqueue: bool = True) -> ScoringRun:
    if user is not None:
        check_dataset_role(user=user, dataset=dataset, roles=[Membership.Role.OWNER, Membership.Role.REVIEWER])
    names = parse_metrics(metrics)
    with transaction.atomic():
        busy = ScoringRun.objects.filter(dataset=dataset, status__in=[ScoringRun.Status.QUEUED, ScoringRun.Status.RUNNING]).first()
        if busy is not None:
            raise ScoringRefused(f"scoring run {busy.pk} is still in progress on this dataset; wait for it to finish")
        samples = Sample.objects.filter(dataset=dataset)
        run = ScoringRun.objects.create(
            dataset=dataset, created_by=user if user is not None and user.is_authenticated else None, metrics=names,
            stages=plan_stages(names), code_version=code_version(),
            params={"chunk_size": settings.SFTDESK_SCORING_CHUNK_SIZE, "embedder": settings.SFTDESK_EMBEDDER or "default",
                    "embedder_languages": compute.parse_languages(settings.SFTDESK_EMBEDDER_LANGUAGES),
                    "causal_lm": settings.SFTDESK_CAUSAL_LM or None, "reward_model": settings.SFTDESK_REWARD_MODEL or None,
                    "reward_threshold": settings.SFTDESK_REWARD_THRESHOLD, **compute.config_params(),
                    # every stage scores the same samples: those present when the run was made
                    "max_sample_id": samples.aggregate(m=Max("id"))["m"] or 0},
            samples_total=samples.count(),
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue_stage_start(run.pk))
    return run


def _enqueue_stage_start(run_id: int) -> None:
    from .tasks import run_advance

    run_advance.delay(run_id)


def run_advance(*, run_id: int, enqueue: bool = True) -> tuple[str, list[int]]:
    """Start the run's next stage: create its chunks and enqueue them, or the dataset stage.
    Returns the stage and its pending chunk ids (for running inline with enqueue=False)."""
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.finished:
            return "", []
        if run.status == ScoringRun.Status.QUEUED:
            run.status, run.started_at = ScoringRun.Status.RUNNING, timezone.now()
        stage = _next_stage(run)
        if run.stage != stage or run.stage_started_at is None:
            run.stage_started_at = timezone.now()
        run.stage = stage
        if stage in CHUNKED:
            chunks = _make_chunks(run, stage)
            run.timings.setdefault(stage, 0.0)  # planned: a stage with no chunks is done
            run.chunks_total, run.chunks_done = len(chunks), sum(c.status == ScoringChunk.Status.DONE for c in chunks)
        else:
            run.chunks_total = run.chunks_done = 0
            _dataset_piece(run)
        run.save()
        pending = [c.pk for c in run.chunks.filter(stage=stage, status=ScoringChunk.Status.PENDING)] if stage in CHUNKED else []
        if enqueue:
            transaction.on_commit(lambda: _enqueue_work(run.pk, stage, pending))
    return stage, pending


def run_inline(*, run_id: int, on_progress=None) -> ScoringRun:
    """Run every stage in this process (the command line's --inline; tests)."""
    while True:
        stage, pending = run_advance(run_id=run_id, enqueue=False)
        if not stage:
            break
        if stage in CHUNKED:
            for chunk_id in pending:
                chunk_run(chunk_id=chunk_id, enqueue=False)
                if on_progress:
                    on_progress(ScoringRun.objects.get(pk=run_id))
        else:
            dataset_stage_run(run_id=run_id)
    return ScoringRun.objects.get(pk=run_id)


def _next_stage(run: ScoringRun) -> str:
    """The first stage whose work is not all done."""
    for stage in run.stages:
        if stage in CHUNKED:
            if stage not in run.timings or run.chunks.filter(stage=stage, status=ScoringChunk.Status.PENDING).exists():
                return stage
        else:
            return stage
    return run.stages[-1]


def _enqueue_work(run_id: int, stage: str, chunk_ids: list[int]) -> None:
    from . import tasks

    if stage in CHUNKED:
        task = tasks.gpu_score_chunk if CHUNKED[stage] == "gpu" else tasks.score_chunk
        for chunk_id in chunk_ids:
            task.delay(chunk_id)
        if not chunk_ids:  # an empty dataset or a stage with nothing left to do
            tasks.run_advance.delay(run_id)
    else:
        tasks.score_dataset.delay(run_id)


def _make_chunks(run: ScoringRun, stage: str) -> list[ScoringChunk]:
    existing = list(run.chunks.filter(stage=stage).order_by("index"))
    if existing:
        return existing
    size = settings.SFTDESK_SCORING_CHUNK_SIZE
    ids = Sample.objects.filter(dataset_id=run.dataset_id, id__lte=run.params.get("max_sample_id", 0)).order_by("id").values_list("id", flat=True)
    bounds, first, count, last = [], None, 0, None
    for sample_id in ids.iterator(chunk_size=10_000):
        if first is None:
            first = sample_id
        last = sample_id
        count += 1
        if count == size:
            bounds.append((first, last))
            first, count = None, 0
    if first is not None:
        bounds.append((first, last))
    return ScoringChunk.objects.bulk_create(
        [ScoringChunk(run=run, stage=stage, index=i, first_sample_id=a, last_sample_id=b) for i, (a, b) in enumerate(bounds)]
    )


@contextmanager
def _exclusive(chunk_id: int) -> Iterator[bool]:
    """Whether this process may compute the piece of work `chunk_id` now. On PostgreSQL, a session
    advisory lock tried without waiting: a second delivery of the same message while the first is
    still computing gets False; a worker that dies releases the lock with its connection. Elsewhere
    (SQLite: the one embedded worker) always True."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = (ADVISORY_LOCK_CLASS << 40) | chunk_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        mine = cursor.fetchone()[0]
    try:
        yield mine
    finally:
        if mine:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:  # the connection broke: the lock went with it
                pass


def _claim(chunk_id: int) -> ScoringChunk | None:
    """Count a start of this piece of work; None when it is done or has been started too often."""
    chunk = ScoringChunk.objects.select_related("run").get(pk=chunk_id)
    if chunk.status == ScoringChunk.Status.DONE:
        return None
    if chunk.attempts >= MAX_CHUNK_ATTEMPTS:  # killed every time (out of memory?): stop, say so
        what = "the dataset stage" if chunk.stage == "dataset" else f"chunk {chunk.stage}/{chunk.index}"
        run_fail(run_id=chunk.run_id, message=f"{what} was started {chunk.attempts} times without finishing (out of memory?)")
        return None
    now = timezone.now()
    ScoringChunk.objects.filter(pk=chunk_id).update(attempts=F("attempts") + 1, started_at=now)
    chunk.attempts, chunk.started_at = chunk.attempts + 1, now
    return chunk


def _unclaim(chunk_id: int) -> None:
    """An exception (not a killed worker) ended this start: it does not count towards the limit."""
    try:
        ScoringChunk.objects.filter(pk=chunk_id, status=ScoringChunk.Status.PENDING, attempts__gt=0).update(attempts=F("attempts") - 1)
    except DatabaseError:
        pass  # the database is what failed; the retry finds the count one higher


def _follow_stage(run: ScoringRun, stage: str) -> None:
    """A redelivered chunk of a stage that is all done while the run still sits in that stage: the
    worker that finished the stage died before starting the next one. Start it now (starting a
    stage twice re-publishes its chunks, which the done check and the lock make harmless)."""
    if run.stage == stage and not run.chunks.filter(stage=stage, status=ScoringChunk.Status.PENDING).exists():
        _enqueue_stage_start(run.pk)


def chunk_run(*, chunk_id: int, enqueue: bool = True) -> str:
    """Compute one chunk. Safe to run twice: a done chunk is skipped; a chunk whose worker died is
    redone and its upserts replace the rows it may have written; a chunk being computed elsewhere
    right now is left to that worker ("busy")."""
    chunk = ScoringChunk.objects.select_related("run").filter(pk=chunk_id).first()
    if chunk is None or chunk.run.finished:
        return "skipped"
    if chunk.status == ScoringChunk.Status.DONE:
        if enqueue:
            _follow_stage(chunk.run, chunk.stage)
        return "skipped"
    with _exclusive(chunk_id) as mine:
        if not mine:
            return "busy"
        chunk = _claim(chunk_id)
        if chunk is None:
            return "skipped"
        try:
            return _chunk_compute(chunk, enqueue=enqueue)
        except Exception:
            _unclaim(chunk_id)
            raise


def _chunk_compute(chunk: ScoringChunk, *, enqueue: bool) -> str:
    run = chunk.run
    started = time.monotonic()
    samples = list(
        Sample.objects.filter(dataset_id=run.dataset_id, id__gte=chunk.first_sample_id, id__lte=chunk.last_sample_id)
        .only("id", "external_id", "messages", "task_type", "language", "meta", "content_hash").order_by("id")
    )
    try:
        outcome = compute.STAGES[chunk.stage](run, samples)
    except compute.ModelMissing as exc:
        outcome = compute.Outcome(errors=[{"stage": chunk.stage, "message": str(exc)}])
    with transaction.atomic():
        locked = ScoringChunk.objects.select_for_update().get(pk=chunk.pk)
        if locked.status == ScoringChunk.Status.DONE:
            return "skipped"
        write_results(run, outcome.results, metrics=outcome.metrics, sample_ids=outcome.sample_ids)
        locked.status, locked.seconds, locked.finished_at = ScoringChunk.Status.DONE, time.monotonic() - started, timezone.now()
        locked.save(update_fields=["status", "seconds", "finished_at"])
        run = ScoringRun.objects.select_for_update().get(pk=run.pk)
        run.chunks_done = run.chunks.filter(stage=chunk.stage, status=ScoringChunk.Status.DONE).count()
        run.samples_computed += outcome.computed
        run.samples_reused += outcome.reused
        run.timings[chunk.stage] = round(run.timings.get(chunk.stage, 0.0) + locked.seconds, 3)
        for err in outcome.errors:
            if err not in run.errors:
                run.errors.append(err)
        run.models_used = {**run.models_used, **outcome.models}
        run.save(update_fields=["chunks_done", "samples_computed", "samples_reused", "timings", "errors", "models_used"])
        if run.chunks_done >= run.chunks_total and enqueue:
            transaction.on_commit(lambda: _enqueue_stage_start(run.pk))
    return "done"


def _dataset_piece(run: ScoringRun) -> ScoringChunk:
    """The dataset stage's one piece of work: its starts are counted and locked like a chunk's."""
    piece, _ = ScoringChunk.objects.get_or_create(
        run=run, stage="dataset", index=0, defaults={"first_sample_id": 0, "last_sample_id": run.params.get("max_sample_id", 0)})
    return piece


def dataset_stage_run(*, run_id: int) -> str:
    """Duplicates, clusters and group statistics over every sample, then finish the run. Runs once:
    a second delivery while it computes returns "busy", one after it finished "skipped"."""
    run = ScoringRun.objects.filter(pk=run_id).first()
    if run is None or run.finished:
        return "skipped"
    piece = _dataset_piece(run)
    with _exclusive(piece.pk) as mine:
        if not mine:
            return "busy"
        if _claim(piece.pk) is None:
            return "skipped"
        try:
            return _dataset_compute(run, piece)
        except Exception:
            _unclaim(piece.pk)
            raise


def _dataset_compute(run: ScoringRun, piece: ScoringChunk) -> str:
    run_id = run.pk
    started = time.monotonic()
    if set(run.metrics) & DATASET_GROUPS:
        samples = list(
            Sample.objects.filter(dataset_id=run.dataset_id, id__lte=run.params.get("max_sample_id", 0))
            .only("id", "external_id", "messages", "task_type", "language", "meta", "content_hash").order_by("id")
        )
        outcome = compute.dataset_stage(run, samples)
    else:  # nothing dataset-wide was asked for: only finish the run
        outcome = compute.Outcome()
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        if run.finished:
            return "skipped"
        write_results(run, outcome.results, metrics=outcome.metrics, sample_ids=None)  # the whole dataset
        run.summary = {**run.summary, **outcome.summary}
        run.errors = run.errors + [e for e in outcome.errors if e not in run.errors]
        run.timings["dataset"] = round(time.monotonic() - started, 3)
        ScoringChunk.objects.filter(pk=piece.pk).update(status=ScoringChunk.Status.DONE, seconds=run.timings["dataset"], finished_at=timezone.now())
        run.status = ScoringRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.models_used = {**run.models_used, **outcome.models}
        # for the sample list's menus, computed once per run instead of on every page view
        run.summary["metric_names"] = sorted(SampleMetric.objects.filter(dataset_id=run.dataset_id, value__isnull=False)
                                             .order_by().values_list("metric", flat=True).distinct())
        run.summary["flag_rules"] = sorted(SampleFlag.objects.filter(dataset_id=run.dataset_id).order_by().values_list("rule", flat=True).distinct())
        run.save()
        counts = SampleFlag.objects.filter(sample=OuterRef("pk")).order_by().values("sample").annotate(n=Count("id")).values("n")
        samples_set_flag_counts(dataset_id=run.dataset_id, counts=Subquery(counts))
        if annotation_config(run.dataset).order != "random":  # the queue follows flags or clusters
            queue_rank_refresh(dataset=run.dataset)
    return "done"


def write_results(run: ScoringRun, results: dict[int, list[MetricResult]], *, metrics: Sequence[str], sample_ids: Sequence[int] | None) -> None:
    """Replace the given metrics' rows for these samples (None: every sample of the dataset): old
    rows and flags deleted, the new ones inserted. `results` maps sample id to its MetricResults;
    `metrics` names every metric the stage owns, so a value or flag that no longer applies goes."""
    if not metrics:
        return
    scope = {"dataset_id": run.dataset_id, "metric__in": metrics}
    if sample_ids is not None:
        scope["sample_id__in"] = sample_ids
    # Raw deletes: nothing depends on these rows, so no need to load them first.
    SampleFlag.objects.filter(**scope)._raw_delete(SampleFlag.objects.db)
    SampleMetric.objects.filter(**scope)._raw_delete(SampleMetric.objects.db)
    rows, flags = [], []
    for sample_id, items in results.items():
        for r in items:
            if r.value is None and not r.flags and not (r.details or {}).get("_input_hash"):
                continue  # "does not apply": no row, the report shows it empty
            value = float(r.value) if isinstance(r.value, (int, float, np.number)) else None  # bools become 1.0 / 0.0
            if value is not None and not math.isfinite(value):
                value = None
            label = "" if value is not None or r.value is None else str(r.value)[:64]
            rows.append(SampleMetric(
                sample_id=sample_id, dataset_id=run.dataset_id, metric=r.name, value=value, label=label,
                details=compute.jsonable(r.details), input_hash=r.details.get("_input_hash", "") if isinstance(r.details, dict) else "", run=run,
            ))
            for f in r.flags:
                other = r.details.get("matched_sample_id") if isinstance(r.details, dict) else None
                flags.append(SampleFlag(sample_id=sample_id, dataset_id=run.dataset_id, metric=r.name, rule=f.rule, reason=f.reason,
                                        other_sample_id=other, run=run))
    if connection.vendor == "postgresql":
        _upsert_metrics_copy(rows)
    else:
        SampleMetric.objects.bulk_create(
            rows, batch_size=1000, update_conflicts=True, unique_fields=["sample", "metric"],
            update_fields=["value", "label", "details", "input_hash", "run", "updated_at"],
        )
    SampleFlag.objects.bulk_create(flags, batch_size=1000, ignore_conflicts=True)


def _upsert_metrics_copy(rows: list[SampleMetric]) -> None:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT ... ON CONFLICT DO UPDATE
    (several times faster than row-wise upserts for the half-million rows of a 52k-sample run)."""
    if not rows:
        return
    table = SampleMetric._meta.db_table
    cols = ("sample_id", "dataset_id", "metric", "value", "label", "details", "input_hash", "run_id", "updated_at")
    now = timezone.now()
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE sftdesk_metric_stage (sample_id bigint, dataset_id bigint, metric text, value double precision, "
            "label text, details jsonb, input_hash text, run_id bigint, updated_at timestamptz) ON COMMIT DROP"
        )
        with cursor.cursor.copy(f"COPY sftdesk_metric_stage ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r.sample_id, r.dataset_id, r.metric, r.value, r.label, dumps(r.details), r.input_hash, r.run_id, now))
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM sftdesk_metric_stage "
            "ON CONFLICT (sample_id, metric) DO UPDATE SET value = EXCLUDED.value, label = EXCLUDED.label, details = EXCLUDED.details, "
            "input_hash = EXCLUDED.input_hash, run_id = EXCLUDED.run_id, updated_at = EXCLUDED.updated_at"
        )
        cursor.execute("DROP TABLE sftdesk_metric_stage")


def run_fail(*, run_id: int, message: str) -> None:
    with transaction.atomic():
        run = ScoringRun.objects.select_for_update().get(pk=run_id)
        if run.status != ScoringRun.Status.SUCCEEDED:
            run.status, run.finished_at = ScoringRun.Status.FAILED, timezone.now()
        run.errors = run.errors + [{"stage": run.stage, "message": message}]
        run.save(update_fields=["status", "finished_at", "errors"])


def input_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
