"""The sample store: datasets, who may see them, samples, their corrections, and imports."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Dataset(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    guidelines = models.TextField(_("guidelines"), blank=True, help_text=_("Markdown shown to annotators."))
    settings = models.JSONField(_("settings"), default=dict, blank=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("dataset")
        verbose_name_plural = _("datasets")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        REVIEWER = "reviewer", _("Reviewer")
        ANNOTATOR = "annotator", _("Annotator")

    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "dataset"], name="membership_user_dataset_unique")]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.dataset} ({self.role})"


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    file = models.FileField(upload_to="imports/%Y/%m/", blank=True, max_length=500)
    source_path = models.CharField(max_length=1000, blank=True, help_text=_("Path read by the command line."))
    original_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    format = models.CharField(max_length=16, default="auto", help_text=_("Format asked for."))
    detected_format = models.CharField(max_length=16, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text=_("CSV column mapping and other options."))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text=_("0 to 100."))
    records_total = models.PositiveIntegerField(default=0)
    imported_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="importjob_dataset_created")]
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")

    def __str__(self) -> str:
        return f"import {self.pk} into {self.dataset_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def display_name(self) -> str:
        return self.original_name or self.source_path or (self.file.name if self.file else "")


class Sample(models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("New")
        ANNOTATING = "annotating", _("Annotating")
        IN_REVIEW = "in_review", _("In review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    # No index of its own: every composite index below starts with dataset.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="samples", db_index=False)
    # No index: nothing looks samples up by import, and every index slows bulk imports.
    import_job = models.ForeignKey(ImportJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="samples", db_index=False)
    external_id = models.CharField(max_length=255, help_text=_("The record's own id, else its 0-based position in the file."))
    messages = models.JSONField(help_text=_('[{"role": "system|user|assistant", "content": "..."}]'))
    source = models.JSONField(default=dict, help_text=_("The original record, unchanged."))
    text = models.TextField(blank=True, help_text=_("All turns joined, for search."))
    task_type = models.CharField(max_length=64, blank=True)
    language = models.CharField(max_length=16, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    flag_count = models.PositiveIntegerField(default=0, help_text=_("Metric flags, written by scoring."))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "content_hash"], name="sample_dataset_hash_unique")]
        indexes = [
            models.Index(fields=["dataset", "status", "id"], name="sample_ds_status"),
            models.Index(fields=["dataset", "task_type", "id"], name="sample_ds_task"),
            models.Index(fields=["dataset", "language", "id"], name="sample_ds_lang"),
            models.Index(fields=["dataset", "external_id"], name="sample_ds_extid"),
            models.Index(fields=["dataset", "id"], name="sample_ds_flagged", condition=Q(flag_count__gt=0)),
        ]
        verbose_name = _("sample")
        verbose_name_plural = _("samples")

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"

    @property
    def instruction(self) -> str:
        return next((m["content"] for m in self.messages if m.get("role") == "user"), "")

    @property
    def answer(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m.get("role") == "assistant"), "")


class SampleRevision(models.Model):
    """A corrected conversation. The original sample is never overwritten."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="revisions")
    messages = models.JSONField(help_text=_("The whole corrected conversation."))
    author = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sample", "created_at", "id"]
        indexes = [models.Index(fields=["sample", "status", "-created_at"], name="revision_sample_status")]
        verbose_name = _("sample revision")
        verbose_name_plural = _("sample revisions")

    def __str__(self) -> str:
        return f"revision {self.pk} of sample {self.sample_id}"
