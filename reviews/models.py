"""The review desk's records: each completed sample's consensus and why it needs a person (the
conflict queue), reviewers' decisions, every status change, and stored agreement reports. Decisions
and status changes are append-only: with Label versions and SampleRevisions they are the audit trail."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ReviewItem(models.Model):
    """A sample that has its k labels: their consensus, the reasons it needs a reviewer (worst first by
    `severity`), and whether it is still waiting. Rewritten whenever the sample's labels change."""

    class Method(models.TextChoices):
        MAJORITY = "majority", _("Majority vote")

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="review_items", db_index=False)
    sample = models.OneToOneField("annotator.Sample", on_delete=models.CASCADE, related_name="review")
    is_open = models.BooleanField(default=True, help_text=_("Waiting for a reviewer's decision."))
    severity = models.PositiveSmallIntegerField(default=0, help_text=_("How badly the labels disagree; the queue puts the worst first."))
    reasons = models.JSONField(default=list, blank=True, help_text=_('[{"code": ..., ...}] why it needs a reviewer.'))
    labels_n = models.PositiveSmallIntegerField(default=0)
    # The consensus, one column per criterion so statistics aggregate in the database.
    verdict = models.CharField(max_length=16, blank=True)
    verdict_confidence = models.FloatField(null=True, blank=True, help_text=_("Share of labels that gave the consensus verdict."))
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.MAJORITY)
    accuracy = models.FloatField(null=True, blank=True)
    completeness = models.FloatField(null=True, blank=True)
    conciseness = models.FloatField(null=True, blank=True)
    difficulty = models.CharField(max_length=8, blank=True)
    routed_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The conflict queue: open items of a dataset, worst first, oldest first.
            models.Index(fields=["dataset", "-severity", "routed_at", "id"], name="reviewitem_queue", condition=Q(is_open=True)),
            models.Index(fields=["dataset", "is_open"], name="reviewitem_ds_open"),
        ]
        verbose_name = _("review item")
        verbose_name_plural = _("review items")

    def __str__(self) -> str:
        return f"review of sample {self.sample_id} (severity {self.severity})"


class ReviewDecision(models.Model):
    """A reviewer's decision on a sample, or the dataset's auto-approve rule's (reviewer empty).
    Never changed: deciding again adds a row."""

    class Decision(models.TextChoices):
        APPROVE = "approve", _("Approve")
        REJECT = "reject", _("Reject")
        APPROVE_EDIT = "approve_edit", _("Approve with an edited answer")

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="review_decisions", db_index=False)
    sample = models.ForeignKey("annotator.Sample", on_delete=models.CASCADE, related_name="decisions", db_index=False)
    reviewer = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="review_decisions")
    decision = models.CharField(max_length=16, choices=Decision.choices)
    rationale = models.TextField(blank=True)
    revision = models.ForeignKey("annotator.SampleRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status_before = models.CharField(max_length=16)
    status_after = models.CharField(max_length=16)
    sample_version = models.PositiveIntegerField(help_text=_("The sample's version the decision was made against."))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sample", "created_at", "id"]
        indexes = [
            models.Index(fields=["sample", "-created_at"], name="decision_sample_created"),
            models.Index(fields=["dataset", "-created_at"], name="decision_ds_created"),
        ]
        verbose_name = _("review decision")
        verbose_name_plural = _("review decisions")

    def __str__(self) -> str:
        return f"{self.decision} of sample {self.sample_id} by {self.reviewer_id or 'the auto rule'}"

    @property
    def automatic(self) -> bool:
        return self.reviewer_id is None


class StatusChange(models.Model):
    """One move of a sample from one status to another: who or what moved it and when. Progress over
    time is counted from these (and from imports, which create samples as new)."""

    class Cause(models.TextChoices):
        LABEL = "label", _("Label")
        DECISION = "decision", _("Decision")
        AUTO = "auto", _("Auto-approve rule")
        SETTINGS = "settings", _("Settings changed")
        GOLD = "gold", _("Gold set or cleared")
        IMPORT = "import", _("Labels imported")

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="status_changes", db_index=False)
    sample = models.ForeignKey("annotator.Sample", on_delete=models.CASCADE, related_name="status_changes", db_index=False)
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    actor = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cause = models.CharField(max_length=16, choices=Cause.choices)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["dataset", "at"], name="statuschange_ds_at"),
            models.Index(fields=["sample", "at"], name="statuschange_sample_at"),
        ]
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")

    def __str__(self) -> str:
        return f"sample {self.sample_id}: {self.from_status} -> {self.to_status}"


class AgreementReport(models.Model):
    """Agreement per criterion and per annotator as computed at one moment (bootstrap intervals take
    seconds, so the dashboard shows the newest report and says how old it is)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="agreement_reports", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    resamples = models.PositiveIntegerField(default=1000)
    seed = models.IntegerField(default=0)
    labels_seen = models.PositiveIntegerField(default=0, help_text=_("Current labels when it was computed."))
    last_label_id = models.BigIntegerField(default=0, help_text=_("Newest label id it saw: a newer one makes it stale."))
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="agreement_ds_created")]
        verbose_name = _("agreement report")
        verbose_name_plural = _("agreement reports")

    def __str__(self) -> str:
        return f"agreement of dataset {self.dataset_id} ({self.status})"
