"""Reads, always scoped to what the acting user may see. A foreign id answers 404."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from .models import Dataset, ImportJob, Membership, Sample
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
) -> QuerySet[Sample]:
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
    return qs.order_by("id")


def sample_get(user: AbstractBaseUser, dataset: Dataset, pk: int) -> Sample:
    sample = Sample.objects.filter(pk=pk, dataset=dataset, dataset__memberships__user=user).first()
    if sample is None:
        raise Http404("No such sample.")
    return sample


def dataset_facets(dataset: Dataset) -> dict[str, list[str]]:
    """Distinct task types and languages, for the filter menus."""
    base = Sample.objects.filter(dataset=dataset).order_by()
    return {
        "task_types": sorted(t for t in base.values_list("task_type", flat=True).distinct() if t),
        "languages": sorted(lang for lang in base.values_list("language", flat=True).distinct() if lang),
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
