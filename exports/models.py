"""API tokens for people and fine-tuning jobs, and the exports they pull: immutable snapshots with their files."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiToken(models.Model):
    """A bearer token. Only its sha256 is stored; the key is shown once, when it is made. Read-only
    unless `can_write`; limited to one dataset when `dataset` is set; always expiring; revocable."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, help_text=_("The key's first characters, to recognise it."))
    key_hash = models.CharField(max_length=64, unique=True)
    dataset = models.ForeignKey("annotator.Dataset", null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens",
                                help_text=_("Empty: every dataset the user belongs to."))
    can_write = models.BooleanField(_("can write"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class Export(models.Model):
    """An immutable snapshot of a dataset in the formats trainers read, built from a spec. The state it
    is taken from is fixed when it is asked for (`as_of`): samples, revisions and status moves after
    that point are not in it, however long the build takes."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        BUILDING = "building", _("Building")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="exports", db_index=False)
    name = models.CharField(_("name"), max_length=100)
    spec = models.JSONField(help_text=_("The export spec, canonical."))
    spec_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    as_of = models.JSONField(default=dict, help_text=_("The dataset state it is taken from: newest sample, revision and status move ids."))
    manifest = models.JSONField(default=dict, blank=True)
    sample_count = models.PositiveIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["dataset", "status", "-created_at"], name="export_ds_status_created")]
        verbose_name = _("export")
        verbose_name_plural = _("exports")

    def __str__(self) -> str:
        return f"export {self.pk} of dataset {self.dataset_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class ExportFile(models.Model):
    """One file of a finished export, addressed by its path inside the export."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=255)
    format = models.CharField(max_length=32, blank=True)
    split = models.CharField(max_length=16, blank=True)
    rows = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["export", "path"]
        constraints = [models.UniqueConstraint(fields=["export", "path"], name="exportfile_unique_path")]
        verbose_name = _("export file")
        verbose_name_plural = _("export files")

    def __str__(self) -> str:
        return f"{self.path} of export {self.export_id}"
