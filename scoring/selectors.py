"""Reads for scoring: runs, a sample's metrics with their reasons, the dataset quality report, and
the per-sample report rows. Callers pass a dataset already scoped to the user (annotator.selectors)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Avg, Case, Count, Exists, FloatField, Max, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from annotator.models import Dataset, GoldLabel, Label, Sample

from .metrics import validity
from .models import SampleFlag, SampleMetric, ScoringChunk, ScoringRun


def run_list(dataset: Dataset, *, limit: int = 10) -> QuerySet[ScoringRun]:
    return ScoringRun.objects.filter(dataset=dataset).order_by("-created_at", "-id")[:limit]


def run_latest(dataset: Dataset) -> ScoringRun | None:
    return ScoringRun.objects.filter(dataset=dataset).order_by("-created_at", "-id").first()


def run_latest_succeeded(dataset: Dataset) -> ScoringRun | None:
    return ScoringRun.objects.filter(dataset=dataset, status=ScoringRun.Status.SUCCEEDED).order_by("-created_at", "-id").first()


def run_get(dataset: Dataset, pk: int) -> ScoringRun:
    from django.http import Http404

    run = ScoringRun.objects.filter(dataset=dataset, pk=pk).first()
    if run is None:
        raise Http404("No such scoring run.")
    return run


def run_waiting(run: ScoringRun, *, now=None) -> dict | None:
    """Whether the run has made no progress for SFTDESK_SCORING_STALL_SECONDS, and on which queue its
    work waits: {"queue", "idle_seconds", "idle_minutes", "since", "taken", "in_progress", "stage"}. `taken` False means no
    worker has taken any of the current stage's work (none listening on that queue, or all busy);
    True means a piece was taken and nothing finished since (a slow piece, or a worker that died
    with no other on the queue to redo it). None while the run moves or once it is finished."""
    from .services import CHUNKED

    if run.finished:
        return None
    now = now or timezone.now()
    # Starting a stage and the dataset stage are cpu tasks; a chunked stage's pieces go to its queue.
    queue = CHUNKED.get(run.stage, "cpu")
    agg = (run.chunks.filter(stage=run.stage).aggregate(
        started=Max("started_at"), finished=Max("finished_at"),
        in_progress=Count("id", filter=Q(status=ScoringChunk.Status.PENDING, started_at__isnull=False)))
        if run.stage else {"started": None, "finished": None, "in_progress": 0})
    since = max(t for t in (run.stage_started_at, run.started_at, run.created_at, agg["started"], agg["finished"]) if t is not None)
    idle = (now - since).total_seconds()
    if idle < settings.SFTDESK_SCORING_STALL_SECONDS:
        return None
    return {"queue": queue, "idle_seconds": int(idle), "idle_minutes": int(idle // 60), "since": since, "taken": agg["started"] is not None,
            "in_progress": agg["in_progress"], "stage": run.stage}


def run_summary_lines(run: ScoringRun) -> list[str]:
    lines = [f"run {run.pk}: {run.status}; {run.samples_computed:,} computed, {run.samples_reused:,} reused; "
             f"timings {', '.join(f'{k} {v:.1f}s' for k, v in run.timings.items())}"]
    counts = flag_counts(run.dataset)
    if counts:
        lines.append("flags: " + ", ".join(f"{rule} {n:,}" for rule, n in counts))
    for key, value in run.summary.items():
        lines.append(f"{key}: {value}")
    for err in run.errors:
        lines.append(f"error in {err.get('stage')}: {err.get('message')}")
    return lines


def flag_counts(dataset: Dataset) -> list[tuple[str, int]]:
    rows = SampleFlag.objects.filter(dataset=dataset).order_by().values("rule").annotate(n=Count("id")).order_by("-n", "rule")
    return [(r["rule"], r["n"]) for r in rows]


def sample_scores(sample: Sample) -> dict:
    """The sample's metrics (name -> value or label, with details) and its flags with reasons."""
    metrics = {m.metric: m for m in SampleMetric.objects.filter(sample=sample).order_by("metric")}
    flags = list(SampleFlag.objects.filter(sample=sample).select_related("other_sample").order_by("metric", "rule"))
    return {"metrics": metrics, "flags": flags}


def metric_names(dataset: Dataset) -> list[str]:
    return sorted(SampleMetric.objects.filter(dataset=dataset).order_by().values_list("metric", flat=True).distinct())


def quality_report(dataset: Dataset) -> dict:
    """Aggregates for the quality page, computed in the database, with the dataset-level figures of
    the latest run that finished."""
    run = run_latest_succeeded(dataset)
    buckets = defaultdict(lambda: {"easy": 0, "medium": 0, "hard": 0})
    rows = (SampleMetric.objects.filter(dataset=dataset, metric="difficulty_bucket").order_by()
            .values("sample__task_type", "label").annotate(n=Count("id")))
    for r in rows:
        if r["label"] in ("easy", "medium", "hard"):
            buckets[r["sample__task_type"] or "—"][r["label"]] = r["n"]
    edges = [0, 16, 32, 64, 128, 256, 512, 1024, 2048]
    bins = Case(*[When(value__gte=e, then=Value(i)) for i, e in reversed(list(enumerate(edges)))], default=Value(0))
    counts = dict(SampleMetric.objects.filter(dataset=dataset, metric="answer_length", value__isnull=False).order_by()
                  .annotate(bin=bins).values("bin").annotate(n=Count("id")).values_list("bin", "n"))
    hist = [counts.get(i, 0) for i in range(len(edges))]
    return {
        "run": run,
        "flags": flag_counts(dataset),
        "difficulty": dict(sorted(buckets.items())),
        "length_hist": [(f"{edges[i]}+" if i == len(edges) - 1 else f"{edges[i]}–{edges[i + 1] - 1}", n) for i, n in enumerate(hist)],
        "summary": run.summary if run else {},
        "samples": Sample.objects.filter(dataset=dataset).count(),
        "flagged": Sample.objects.filter(dataset=dataset, flag_count__gt=0).count(),
    }


def expert_comparison(dataset: Dataset) -> dict:
    """How each metric and flag agrees with the experts' labels so far (current labels; gold samples
    apart): {"labelled": n, "metrics": [...], "flags": [...]} as scoring.metrics.validity computes them."""
    not_accept = Case(When(verdict="accept", then=Value(0.0)), When(verdict="", then=None), default=Value(1.0), output_field=FloatField())
    per_sample = (
        Label.objects.filter(dataset=dataset, is_current=True)
        .exclude(Exists(GoldLabel.objects.filter(sample=OuterRef("sample"))))
        .order_by().values("sample")
        .annotate(acc=Avg("accuracy"), comp=Avg("completeness"), conc=Avg("conciseness"), bad=Avg(not_accept), n=Count("id"))
    )
    experts = {
        r["sample"]: validity.ExpertView(accuracy=r["acc"], completeness=r["comp"], conciseness=r["conc"],
                                         not_accepted=None if r["bad"] is None else r["bad"] >= 0.5, labels=r["n"])
        for r in per_sample
    }
    if not experts:
        return {"labelled": 0, "metrics": [], "flags": []}
    labelled = Exists(Label.objects.filter(sample=OuterRef("sample"), is_current=True))
    values: dict[str, dict[int, float]] = defaultdict(dict)
    rows = SampleMetric.objects.filter(labelled, dataset=dataset, value__isnull=False).values_list("metric", "sample_id", "value")
    for metric, sid, value in rows.iterator(chunk_size=5000):
        values[metric][sid] = value
    flagged: dict[str, set[int]] = defaultdict(set)
    for rule, sid in SampleFlag.objects.filter(labelled, dataset=dataset).values_list("rule", "sample_id"):
        flagged[rule].add(sid)
    return {"labelled": len(experts), "metrics": validity.compare(values, experts), "flags": validity.flag_lift(flagged, experts)}


def report_rows(dataset: Dataset, *, flagged: bool = False, names: list[str] | None = None) -> Iterator[dict]:
    """One dict per sample: external_id, every metric value, its flags and reasons. Streams in id
    order with two queries per 2,000 samples."""
    names = names if names is not None else metric_names(dataset)
    samples = Sample.objects.filter(dataset=dataset).order_by("id").values_list("id", "external_id", "flag_count")
    if flagged:
        samples = samples.filter(flag_count__gt=0)
    batch: list[tuple[int, str, int]] = []

    def emit(batch):
        ids = [b[0] for b in batch]
        values: dict[int, dict] = defaultdict(dict)
        for sid, metric, value, label in SampleMetric.objects.filter(sample_id__in=ids).values_list("sample_id", "metric", "value", "label"):
            values[sid][metric] = value if value is not None else (label or None)
        flags: dict[int, list] = defaultdict(list)
        for sid, rule, reason in SampleFlag.objects.filter(sample_id__in=ids).order_by("metric", "rule").values_list("sample_id", "rule", "reason"):
            flags[sid].append({"rule": rule, "reason": reason})
        for sid, ext, _count in batch:
            yield {"external_id": ext, **{n: values[sid].get(n) for n in names}, "flags": flags[sid]}

    for row in samples.iterator(chunk_size=2000):
        batch.append(row)
        if len(batch) == 2000:
            yield from emit(batch)
            batch = []
    if batch:
        yield from emit(batch)
