"""Reads, always scoped to what the acting user may see. A foreign id answers 404."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import (
    Avg,
    Case,
    Count,
    Exists,
    F,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.http import Http404
from django.utils import timezone

from .models import Assignment, Dataset, GoldLabel, ImportJob, Label, Membership, Sample, Suggestion
from .services import progress_key


def dataset_list(user: AbstractBaseUser) -> QuerySet[Dataset]:
    if not user.is_authenticated:
        return Dataset.objects.none()
    role = Membership.objects.filter(dataset=OuterRef("pk"), user=user).values("role")[:1]
    return (
        Dataset.objects.filter(memberships__user=user)
        .annotate(my_role=Subquery(role), sample_count=Count("samples", distinct=True))
        .order_by("name")
    )


def dataset_get(user: AbstractBaseUser, *, slug: str | None = None, pk: int | None = None) -> Dataset:
    """The dataset with the user's role on it as `.my_role`, or 404."""
    if not user.is_authenticated:
        raise Http404("No such dataset.")
    lookup = {"slug": slug} if slug is not None else {"pk": pk}
    role = Membership.objects.filter(dataset=OuterRef("pk"), user=user).values("role")[:1]
    dataset = Dataset.objects.filter(memberships__user=user, **lookup).annotate(my_role=Subquery(role)).first()
    if dataset is None:
        raise Http404("No such dataset.")
    return dataset


def sample_list(
    user: AbstractBaseUser,
    dataset: Dataset,
    *,
    status: str = "",
    task_type: str = "",
    language: str = "",
    has_flag: bool | None = None,
    q: str = "",
    flag: str = "",
    sort: str = "",
) -> QuerySet[Sample]:
    """Samples of the dataset with the page's filters. `flag` keeps samples with a metric flag of
    that rule; `sort` orders by a metric's value ('-name' for descending; samples without it last)."""
    qs = Sample.objects.filter(dataset=dataset, dataset__memberships__user=user)
    if status:
        qs = qs.filter(status=status)
    if task_type:
        qs = qs.filter(task_type=task_type)
    if language:
        qs = qs.filter(language=language)
    if has_flag is True:
        qs = qs.filter(flag_count__gt=0)
    elif has_flag is False:
        qs = qs.filter(flag_count=0)
    if q:
        qs = qs.filter(Q(text__icontains=q) | Q(external_id=q))
    if flag:
        flags = Sample.flags.rel.related_model.objects.filter(sample=OuterRef("pk"), rule=flag)
        qs = qs.filter(Exists(flags))
    if sort:
        name = sort.lstrip("-")
        qs = qs.annotate(sort_metric=FilteredRelation("metrics", condition=Q(metrics__metric=name)))
        value = F("sort_metric__value")
        return qs.order_by(value.desc(nulls_last=True) if sort.startswith("-") else value.asc(nulls_last=True), "id")
    return qs.order_by("id")


def sample_get(user: AbstractBaseUser, dataset: Dataset, pk: int, *, with_scores: bool = False) -> Sample:
    """The sample, or 404. `with_scores` prefetches what scoring wrote about it (metrics, flags)."""
    qs = Sample.objects.filter(pk=pk, dataset=dataset, dataset__memberships__user=user)
    if with_scores:
        qs = qs.prefetch_related(
            Prefetch("metrics", queryset=Sample.metrics.rel.related_model.objects.order_by("metric")),
            Prefetch("flags", queryset=Sample.flags.rel.related_model.objects.select_related("other_sample").order_by("metric", "rule")),
        )
    sample = qs.first()
    if sample is None:
        raise Http404("No such sample.")
    return sample


def dataset_facets(dataset: Dataset) -> dict[str, list[str]]:
    """Distinct task types and languages, and the flag rules and metric names the latest finished
    scoring run recorded, for the filter and sort menus."""
    base = Sample.objects.filter(dataset=dataset).order_by()
    summary = dataset.scoring_runs.filter(status="succeeded").order_by("-created_at", "-id").values_list("summary", flat=True).first() or {}
    return {
        "task_types": sorted(t for t in base.values_list("task_type", flat=True).distinct() if t),
        "languages": sorted(lang for lang in base.values_list("language", flat=True).distinct() if lang),
        "flag_rules": summary.get("flag_rules", []),
        "metrics": summary.get("metric_names", []),
    }


def dataset_status_counts(dataset: Dataset) -> list[dict]:
    """[{"status", "label", "count"}] for every status, in workflow order, zeros included."""
    rows = Sample.objects.filter(dataset=dataset).order_by().values("status").annotate(n=Count("id"))
    counts = {r["status"]: r["n"] for r in rows}
    return [{"status": value, "label": label, "count": counts.get(value, 0)} for value, label in Sample.Status.choices]


def import_job_list(user: AbstractBaseUser, dataset: Dataset, *, limit: int = 10) -> QuerySet[ImportJob]:
    return ImportJob.objects.filter(dataset=dataset, dataset__memberships__user=user).order_by("-created_at", "-id")[:limit]


def import_job_get(user: AbstractBaseUser, pk: int, *, dataset: Dataset | None = None) -> ImportJob:
    qs = ImportJob.objects.filter(pk=pk, dataset__memberships__user=user).select_related("dataset")
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    job = qs.first()
    if job is None:
        raise Http404("No such import.")
    return job


def import_job_progress(job: ImportJob) -> dict:
    """Live figures while a worker runs the job (from the shared cache), else the stored ones."""
    live = cache.get(progress_key(job.pk)) if job.status == ImportJob.Status.RUNNING else None
    if live:
        return {"progress": round(live["progress"], 1), "records": live["records"], "imported": live["imported"], "duplicates": live["duplicates"]}
    return {"progress": round(job.progress, 1), "records": job.records_total, "imported": job.imported_count, "duplicates": job.duplicate_count}


# ---------------------------------------------------------------------------------------------
# Annotation: what an annotator may see of their own work (never anyone else's labels)
# ---------------------------------------------------------------------------------------------

def assignment_get_own(user: AbstractBaseUser, dataset: Dataset, pk: int) -> Assignment:
    """The user's own assignment with its sample, or 404 (someone else's answers 404 too)."""
    assignment = (
        Assignment.objects.filter(pk=pk, dataset=dataset, annotator=user, dataset__memberships__user=user)
        .select_related("sample").first()
    )
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


def label_current_own(user: AbstractBaseUser, assignment: Assignment) -> Label | None:
    return Label.objects.filter(assignment=assignment, annotator=user, is_current=True).first()


def label_versions_own(user: AbstractBaseUser, assignment: Assignment) -> QuerySet[Label]:
    return Label.objects.filter(assignment=assignment, annotator=user).order_by("-version")


def label_list_own(user: AbstractBaseUser, dataset: Dataset) -> QuerySet[Label]:
    """The user's current labels in the dataset, newest first, with their samples."""
    return (
        Label.objects.filter(dataset=dataset, annotator=user, is_current=True, dataset__memberships__user=user)
        .select_related("sample", "assignment").order_by("-created_at", "-id")
    )


def suggestion_latest(sample: Sample) -> Suggestion | None:
    return Suggestion.objects.filter(sample=sample).order_by("-created_at", "-id").first()


def annotation_progress(user: AbstractBaseUser, dataset: Dataset, *, overlap: int) -> dict:
    """The user's own figures: labels done today (server's day) and in all, and how many samples
    are still open to them (not yet given to them, and not complete or gold)."""
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = Assignment.objects.filter(dataset=dataset, annotator=user, status=Assignment.Status.SUBMITTED).order_by()
    is_gold = Exists(GoldLabel.objects.filter(sample=OuterRef("pk")))
    open_to_all = Q(status__in=[Sample.Status.NEW, Sample.Status.ANNOTATING], label_count__lt=overlap)
    remaining = (  # gold samples count too (each annotator gets them), so reserving one looks like any other
        Sample.objects.filter(dataset=dataset).filter((open_to_all & ~is_gold) | is_gold)
        .exclude(Exists(Assignment.objects.filter(sample=OuterRef("pk"), annotator=user)))
        .order_by()
    )
    counts = mine.aggregate(total=Count("id"), today=Count("id", filter=Q(finished_at__gte=today)))
    return {"done_today": counts["today"], "done_total": counts["total"], "remaining": remaining.count()}


def dataset_label_completion(dataset: Dataset, *, overlap: int) -> dict:
    """For owners and reviewers: samples with all `k` labels, with some, and with none (gold apart)."""
    qs = Sample.objects.filter(dataset=dataset).exclude(Exists(GoldLabel.objects.filter(sample=OuterRef("pk")))).order_by()
    return qs.aggregate(
        complete=Count("id", filter=Q(label_count__gte=overlap)),
        partial=Count("id", filter=Q(label_count__gt=0, label_count__lt=overlap)),
        unlabelled=Count("id", filter=Q(label_count=0)),
    )


# ---------------------------------------------------------------------------------------------
# Management pages (owners): members and gold samples. Each answers only for datasets the user owns.
# ---------------------------------------------------------------------------------------------

def _owned(user: AbstractBaseUser, dataset: Dataset) -> Q:
    return Q(dataset=dataset, dataset__memberships__user=user, dataset__memberships__role=Membership.Role.OWNER)


def member_list(user: AbstractBaseUser, dataset: Dataset) -> QuerySet[Membership]:
    """The dataset's members with their users: owners first, then reviewers, then annotators."""
    order = {Membership.Role.OWNER: 0, Membership.Role.REVIEWER: 1, Membership.Role.ANNOTATOR: 2}
    rank = Case(*[When(role=r, then=Value(n)) for r, n in order.items()], default=Value(9), output_field=IntegerField())
    return Membership.objects.filter(_owned(user, dataset)).select_related("user").order_by(rank, "user__username")


def member_get(user: AbstractBaseUser, dataset: Dataset, user_id: int) -> AbstractBaseUser:
    """A member of the dataset (as a user), or 404."""
    membership = Membership.objects.filter(_owned(user, dataset), user_id=user_id).select_related("user").first()
    if membership is None:
        raise Http404("No such member.")
    return membership.user


def gold_sample_list(user: AbstractBaseUser, dataset: Dataset) -> QuerySet[Sample]:
    """Gold samples with their gold values (`sample.gold`), the number of current labels on each
    and the mean gold score of those labels, oldest gold first."""
    current = Q(labels__is_current=True)
    return (
        Sample.objects.filter(_owned(user, dataset)).filter(Exists(GoldLabel.objects.filter(sample=OuterRef("pk"))))
        .select_related("gold")
        .annotate(gold_labels=Count("labels", filter=current), gold_mean=Avg("labels__gold_score", filter=current))
        .order_by("gold__created_at", "id")
    )


def gold_accuracy(user: AbstractBaseUser, dataset: Dataset) -> list[dict]:
    """Per annotator: mean gold score of their current labels on gold samples (`accuracy`, 0 to 1 or
    None), how many of those labels have a score (`scored`) and how many there are (`labels`).
    A label submitted before its sample became gold has no score. Best first."""
    rows = (
        Label.objects.filter(_owned(user, dataset), is_current=True)
        .filter(Exists(GoldLabel.objects.filter(sample=OuterRef("sample"))))
        .order_by().values("annotator_id", "annotator__username")
        .annotate(accuracy=Avg("gold_score"), scored=Count("gold_score"), labels=Count("id"))
    )
    out = [
        {"user_id": r["annotator_id"], "username": r["annotator__username"], "accuracy": r["accuracy"], "scored": r["scored"], "labels": r["labels"]}
        for r in rows
    ]
    out.sort(key=lambda r: (r["accuracy"] is None, -(r["accuracy"] or 0), r["username"]))
    return out
