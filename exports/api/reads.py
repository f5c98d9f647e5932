"""Scoped reads for the export API and pages: every lookup goes through the caller's dataset, and only
owners and reviewers reach a dataset's exports (an annotator, like an outsider, gets 404: exports hold
review outcomes, and annotators label blind)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from annotator import selectors as annotator_selectors
from annotator.models import Dataset, Membership

from ..models import Export, ExportFile

REVIEWERS = (Membership.Role.OWNER, Membership.Role.REVIEWER)


def exports_dataset(user: AbstractBaseUser, *, pk: int | None = None, slug: str | None = None) -> Dataset:
    """The dataset (with `.my_role`) when the user may read its exports; else 404."""
    dataset = annotator_selectors.dataset_get(user, pk=pk, slug=slug)
    if dataset.my_role not in REVIEWERS:
        raise Http404("No such dataset.")
    return dataset


def export_list(dataset: Dataset, *, status: str | None = None) -> QuerySet[Export]:
    """The dataset's exports, newest first, without their (possibly large) manifests."""
    exports = Export.objects.filter(dataset=dataset).defer("manifest", "spec", "as_of").order_by("-created_at", "-id")
    if status:
        exports = exports.filter(status=status)
    return exports


def export_get(dataset: Dataset, export_id: int, *, with_manifest: bool = True) -> Export:
    exports = Export.objects.filter(dataset=dataset, pk=export_id).select_related("created_by")
    if not with_manifest:
        exports = exports.defer("manifest", "spec", "as_of")
    export = exports.first()
    if export is None:
        raise Http404("No such export.")
    return export


def export_latest(dataset: Dataset) -> Export | None:
    """The newest succeeded export (by when it was asked for: the newest snapshot of the data)."""
    return (Export.objects.filter(dataset=dataset, status=Export.Status.SUCCEEDED).only("pk", "dataset_id", "created_at")
            .order_by("-created_at", "-id").first())


def export_files(export: Export) -> list[ExportFile]:
    return list(ExportFile.objects.filter(export=export).order_by("path"))


def export_file_get(export: Export, path: str) -> ExportFile | None:
    return ExportFile.objects.filter(export=export, path=path).first()


def export_for_signed_url(dataset_id: int, export_id: int, signer_id: int) -> Export | None:
    """The export a signed URL names, if its signer (an active user) still owns or reviews the dataset."""
    signer_may_read = Membership.objects.filter(dataset_id=dataset_id, user_id=signer_id, user__is_active=True, role__in=REVIEWERS)
    if not signer_may_read.exists():
        return None
    return Export.objects.filter(dataset_id=dataset_id, pk=export_id).defer("manifest", "spec", "as_of").first()
