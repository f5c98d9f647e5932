"""Scoring through /api/v1/: start runs, follow them, read a sample's scores and the quality report."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator import selectors as annotator_selectors
from annotator.models import Membership
from annotator.services import check_dataset_role

from . import selectors, services

REVIEWERS = [Membership.Role.OWNER, Membership.Role.REVIEWER]


class WaitingOutput(serializers.Serializer):
    queue = serializers.CharField(help_text="The Celery queue the run's current work waits on: cpu or gpu.")
    stage = serializers.CharField()
    idle_seconds = serializers.IntegerField(help_text="Seconds since a piece of this stage last started or finished (or since the stage was queued).")
    since = serializers.DateTimeField()
    taken = serializers.BooleanField(help_text="False: no worker has taken any of this stage's work; start one on `queue`.")
    in_progress = serializers.IntegerField(help_text="Pieces taken by a worker and not finished.")


class RunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    metrics = serializers.ListField(child=serializers.CharField())
    stages = serializers.ListField(child=serializers.CharField())
    stage = serializers.CharField()
    progress = serializers.FloatField()
    samples_total = serializers.IntegerField()
    samples_computed = serializers.IntegerField()
    samples_reused = serializers.IntegerField()
    models_used = serializers.JSONField()
    params = serializers.JSONField()
    code_version = serializers.CharField()
    timings = serializers.JSONField()
    errors = serializers.JSONField()
    summary = serializers.JSONField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    waiting = serializers.SerializerMethodField(help_text="Set when the run has made no progress for SFTDESK_SCORING_STALL_SECONDS; null otherwise.")

    @extend_schema_field(WaitingOutput(allow_null=True))
    def get_waiting(self, run) -> dict | None:
        waiting = selectors.run_waiting(run)
        return WaitingOutput(waiting).data if waiting else None


class RunListApi(APIView):
    class RunCreateInput(serializers.Serializer):
        metrics = serializers.ListField(child=serializers.ChoiceField(choices=list(services.METRIC_GROUPS)), required=False)

    @extend_schema(responses=RunOutput(many=True), operation_id="scoring_runs_list")
    def get(self, request, dataset_id: int):
        dataset = annotator_selectors.dataset_get(request.user, pk=dataset_id)
        check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)
        return Response(RunOutput(selectors.run_list(dataset, limit=50), many=True).data)

    @extend_schema(request=RunCreateInput, responses={202: RunOutput}, operation_id="scoring_runs_create")
    def post(self, request, dataset_id: int):
        dataset = annotator_selectors.dataset_get(request.user, pk=dataset_id)
        check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)
        data = self.RunCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = services.run_create(user=request.user, dataset=dataset, metrics=data.validated_data.get("metrics") or "all")
        except services.ScoringRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(RunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    @extend_schema(responses=RunOutput)
    def get(self, request, dataset_id: int, run_id: int):
        dataset = annotator_selectors.dataset_get(request.user, pk=dataset_id)
        check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)
        return Response(RunOutput(selectors.run_get(dataset, run_id)).data)


class FlagOutput(serializers.Serializer):
    metric = serializers.CharField()
    rule = serializers.CharField()
    reason = serializers.CharField()
    other_sample = serializers.IntegerField(source="other_sample_id", allow_null=True)


class MetricOutput(serializers.Serializer):
    metric = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    label = serializers.CharField()
    details = serializers.JSONField()


class SampleScoresOutput(serializers.Serializer):
    metrics = MetricOutput(many=True)
    flags = FlagOutput(many=True)


class SampleScoresApi(APIView):
    @extend_schema(responses=SampleScoresOutput)
    def get(self, request, dataset_id: int, sample_id: int):
        dataset = annotator_selectors.dataset_get(request.user, pk=dataset_id)
        check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)  # annotators label blind
        sample = annotator_selectors.sample_get(request.user, dataset, sample_id, with_scores=True)
        return Response(SampleScoresOutput({"metrics": sample.metrics.all(), "flags": sample.flags.all()}).data)


class QualityOutput(serializers.Serializer):
    samples = serializers.IntegerField()
    flagged = serializers.IntegerField()
    flags = serializers.DictField(child=serializers.IntegerField())
    difficulty = serializers.JSONField()
    length_histogram = serializers.JSONField()
    summary = serializers.JSONField()
    run = RunOutput(allow_null=True)
    experts = serializers.JSONField(help_text="Each metric against the experts' labels: Spearman per rubric scale, ROC AUC for 'not accepted', and each flag rule's share of samples the experts did not accept.")


class QualityApi(APIView):
    @extend_schema(responses=QualityOutput)
    def get(self, request, dataset_id: int):
        dataset = annotator_selectors.dataset_get(request.user, pk=dataset_id)
        check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)
        report = selectors.quality_report(dataset)
        return Response(QualityOutput({
            "samples": report["samples"], "flagged": report["flagged"], "flags": dict(report["flags"]),
            "difficulty": report["difficulty"], "length_histogram": report["length_hist"], "summary": report["summary"], "run": report["run"],
            "experts": selectors.expert_comparison(dataset),
        }).data)
