"""The sample store: datasets, who may see them, samples, their corrections and imports; and the\nblind cross-validation annotation: assignments, labels, gold answers and model suggestions."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
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
    label_count = models.PositiveSmallIntegerField(default=0, help_text=_("Submitted labels, written by the assignment engine."))
    queue_rank = models.BigIntegerField(null=True, blank=True, help_text=_("Place in the annotation queue (the dataset's order)."))
    version = models.PositiveIntegerField(default=0, db_default=0, help_text=_("Goes up with every review decision and every label change of a "
                                                                 "sample in review: reviewers' optimistic lock."))
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
            # The annotation queue: only samples still open for labels, in the dataset's order.
            models.Index(fields=["dataset", "queue_rank", "id"], name="sample_ds_queue", condition=Q(status__in=["new", "annotating"])),
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


class Assignment(models.Model):
    """One annotator's turn at one sample: reserved, then submitted or skipped. At most one per
    (sample, annotator), so nobody is given a sample twice."""

    class Status(models.TextChoices):
        RESERVED = "reserved", _("Reserved")
        SUBMITTED = "submitted", _("Submitted")
        SKIPPED = "skipped", _("Skipped")
        EXPIRED = "expired", _("Expired")

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="assignments", db_index=False)
    annotator = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RESERVED)
    is_gold = models.BooleanField(default=False, help_text=_("Served as a gold sample (never shown as such)."))
    reserved_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.TextField(blank=True)
    draft = models.JSONField(default=dict, blank=True, help_text=_("Autosaved, unsubmitted rubric values."))
    draft_saved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "annotator"], name="assignment_sample_annotator_unique")]
        indexes = [
            models.Index(fields=["sample", "status"], name="assignment_sample_status"),
            models.Index(fields=["dataset", "annotator", "status"], name="assignment_ds_user_status"),
        ]
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")

    def __str__(self) -> str:
        return f"assignment {self.pk}: sample {self.sample_id} to user {self.annotator_id} ({self.status})"


class Label(models.Model):
    """One version of an annotator's label for a sample. Revising adds a version; the newest is
    `is_current`. Nothing is overwritten."""

    class Source(models.TextChoices):
        UI = "ui", _("Annotation page")
        API = "api", _("API")
        IMPORT = "import", _("Imported")

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="labels")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="labels", db_index=False)
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="labels", db_index=False)
    annotator = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labels")
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    accuracy = models.PositiveSmallIntegerField(null=True, blank=True)
    completeness = models.PositiveSmallIntegerField(null=True, blank=True)
    conciseness = models.PositiveSmallIntegerField(null=True, blank=True)
    difficulty = models.CharField(max_length=8, blank=True)
    verdict = models.CharField(max_length=16)
    error_tags = models.JSONField(default=list, blank=True)
    corrected_answer = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    extra = models.JSONField(default=dict, blank=True, help_text=_("Values of the dataset's extra fields."))
    time_spent_s = models.FloatField(default=0.0)
    gold_score = models.FloatField(null=True, blank=True, help_text=_("Share of gold fields this label got right."))
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.UI)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sample", "annotator", "version"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "version"], name="label_assignment_version_unique"),
            models.UniqueConstraint(fields=["sample", "annotator"], condition=Q(is_current=True), name="label_one_current"),
        ]
        indexes = [
            models.Index(fields=["sample", "is_current"], name="label_sample_current"),
            models.Index(fields=["dataset", "annotator", "-created_at"], name="label_ds_user_created"),
        ]
        verbose_name = _("label")
        verbose_name_plural = _("labels")

    def __str__(self) -> str:
        return f"label v{self.version} of sample {self.sample_id} by user {self.annotator_id}"


class GoldLabel(models.Model):
    """The known-good answer for a gold sample, set by an owner. Annotators are scored against it."""

    sample = models.OneToOneField(Sample, on_delete=models.CASCADE, related_name="gold")
    values = models.JSONField(help_text=_("Rubric values that count: verdict, scales, difficulty."))
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("gold label")
        verbose_name_plural = _("gold labels")

    def __str__(self) -> str:
        return f"gold for sample {self.sample_id}"


class Suggestion(models.Model):
    """Rubric values proposed by a model, shown prefilled (and marked) on the annotation page."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="suggestions")
    values = models.JSONField()
    model_name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sample", "-created_at", "-id"]
        indexes = [models.Index(fields=["sample", "-created_at"], name="suggestion_sample_created")]
        verbose_name = _("suggestion")
        verbose_name_plural = _("suggestions")

    def __str__(self) -> str:
        return f"suggestion for sample {self.sample_id} from {self.model_name or 'a model'}"
