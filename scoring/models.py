"""Scoring runs and their per-sample results: one row per (sample, metric), one row per flag."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ScoringRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="scoring_runs")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    metrics = models.JSONField(default=list, help_text=_("Metric groups asked for."))
    params = models.JSONField(default=dict, blank=True)
    models_used = models.JSONField(default=dict, blank=True, help_text=_("Name, path, revision and weights hash of each model."))
    code_version = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=16, blank=True)
    stages = models.JSONField(default=list, help_text=_("Stages this run goes through, in order."))
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    samples_total = models.PositiveIntegerField(default=0)
    samples_computed = models.PositiveIntegerField(default=0)
    samples_reused = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text=_("Dataset-level results: diversity, duplicate groups, ..."))
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stage_started_at = models.DateTimeField(null=True, blank=True, help_text=_("When the current stage's work was queued."))
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["dataset", "-created_at"], name="scoringrun_dataset_created")]

    def __str__(self) -> str:
        return f"scoring run {self.pk} of dataset {self.dataset_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def progress(self) -> float:
        if self.finished:
            return 100.0
        if not self.stages:
            return 0.0
        # Each stage is an equal share; inside a chunked stage, chunks done count.
        try:
            index = self.stages.index(self.stage)
        except ValueError:
            return 0.0
        inside = self.chunks_done / self.chunks_total if self.chunks_total else 0.0
        return round(100.0 * (index + inside) / len(self.stages), 1)


class ScoringChunk(models.Model):
    """A slice of a chunked stage, or the one piece of work of the dataset stage. Done chunks are never
    redone; a chunk whose worker died is (up to MAX_CHUNK_ATTEMPTS times)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    stage = models.CharField(max_length=16)
    index = models.PositiveIntegerField()
    first_sample_id = models.BigIntegerField()
    last_sample_id = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    started_at = models.DateTimeField(null=True, blank=True, help_text=_("When a worker last took it."))
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "stage", "index"], name="scoringchunk_unique")]

    def __str__(self) -> str:
        return f"chunk {self.stage}/{self.index} of run {self.run_id}"


class SampleMetric(models.Model):
    sample = models.ForeignKey("annotator.Sample", on_delete=models.CASCADE, related_name="metrics")
    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="+", db_index=False)
    metric = models.CharField(max_length=48)
    value = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    input_hash = models.CharField(max_length=64, blank=True, help_text=_("Content and model/config fingerprint: unchanged means reuse."))
    run = models.ForeignKey(ScoringRun, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "metric"], name="samplemetric_unique")]
        indexes = [models.Index(fields=["dataset", "metric", "value"], name="samplemetric_ds_metric_value")]

    def __str__(self) -> str:
        return f"{self.metric}={self.value if self.value is not None else self.label} (sample {self.sample_id})"


class SampleFlag(models.Model):
    sample = models.ForeignKey("annotator.Sample", on_delete=models.CASCADE, related_name="flags")
    dataset = models.ForeignKey("annotator.Dataset", on_delete=models.CASCADE, related_name="+", db_index=False)
    metric = models.CharField(max_length=48)
    rule = models.CharField(max_length=48)
    reason = models.TextField()
    other_sample = models.ForeignKey("annotator.Sample", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey(ScoringRun, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "metric", "rule"], name="sampleflag_unique")]
        indexes = [models.Index(fields=["dataset", "rule"], name="sampleflag_ds_rule")]

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


class SampleEmbedding(models.Model):
    """A text's embedding under one model, kept so unchanged samples are not embedded again."""

    sample = models.ForeignKey("annotator.Sample", on_delete=models.CASCADE, related_name="embeddings")
    kind = models.CharField(max_length=16)  # instruction | answer | reference
    model_key = models.CharField(max_length=64)
    content_hash = models.CharField(max_length=64)
    vector = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sample", "kind", "model_key"], name="sampleembedding_unique")]

    def __str__(self) -> str:
        return f"{self.kind} embedding of sample {self.sample_id}"
