"""Agreement through the API: the newest report (asking for a fresh one), and annotator statistics."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import dashboard, selectors, services
from .common import INVALID, NOT_FOUND, reviewable

MAX_RESAMPLES = 10_000


class AgreementEstimateOutput(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="Bootstrap 95% interval; null with fewer than 2 units or no resamples.")
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="Samples behind the value.")


class AgreementPairOutput(AgreementEstimateOutput):
    a = serializers.CharField(help_text="Annotator's username.")
    b = serializers.CharField()


class AgreementCriterionOutput(serializers.Serializer):
    criterion = serializers.CharField(help_text="A 1-5 scale, verdict, difficulty, `tag:<error tag>` or an extra field.")
    level = serializers.ChoiceField(choices=["ordinal", "nominal"])
    annotators = serializers.IntegerField()
    samples = serializers.IntegerField()
    alpha = AgreementEstimateOutput(help_text="Krippendorff's alpha.")
    fleiss = AgreementEstimateOutput(allow_null=True, help_text="Fleiss' kappa over the samples every annotator labelled (3+ annotators).")
    cohen = AgreementPairOutput(many=True, help_text="Cohen's kappa per pair of annotators.")
    cohen_weights = serializers.CharField(allow_null=True, help_text="quadratic for the scales, null (unweighted) otherwise.")


class LeniencyOutput(serializers.Serializer):
    accuracy = serializers.FloatField(allow_null=True)
    completeness = serializers.FloatField(allow_null=True)
    conciseness = serializers.FloatField(allow_null=True)


class AnnotatorStatsOutput(serializers.Serializer):
    annotator = serializers.CharField(help_text="Username.")
    labels = serializers.IntegerField(help_text="Current labels, gold samples apart.")
    agreement = serializers.FloatField(allow_null=True, help_text="Agreement with peers: the share of pairs (their verdict, another annotator's verdict on the same sample) that match. Their own vote is never counted.")
    compared = serializers.IntegerField(help_text="Verdict pairs behind `agreement`.")
    leniency = LeniencyOutput(help_text="Per scale, the mean of (their score minus the mean of the other annotators' scores on the same sample); + is more lenient.")
    gold_n = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    labels_per_hour = serializers.FloatField(allow_null=True)
    hours = serializers.FloatField(help_text="Time on task, from time_spent_s of every label version.")
    skipped = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True)


class AgreementPendingOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    requested_at = serializers.DateTimeField(source="created_at")


class AgreementOutput(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="The report shown; null until one has succeeded.")
    computed_at = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField(help_text="Labels were added or revised after the report was computed.")
    pending = AgreementPendingOutput(allow_null=True, help_text="A report queued or running.")
    error = serializers.CharField(allow_null=True, help_text="Why the newest request failed, when it did.")
    labels = serializers.IntegerField(allow_null=True, help_text="Current labels the report was computed over.")
    resamples = serializers.IntegerField(allow_null=True)
    seed = serializers.IntegerField(allow_null=True)
    criteria = AgreementCriterionOutput(many=True)
    annotators = AnnotatorStatsOutput(many=True)


def _agreement_data(state: dict) -> dict:
    report, failed = state["report"], state["failed"]
    data = report.report if report is not None else {}
    return AgreementOutput({
        "id": report.pk if report else None,
        "computed_at": report.finished_at if report else None,
        "stale": state["stale"],
        "pending": state["pending"],
        "error": failed.error if failed is not None else None,
        "labels": data.get("labels"),
        "resamples": report.resamples if report else None,
        "seed": report.seed if report else None,
        "criteria": data.get("criteria") or [],
        "annotators": data.get("annotators") or [],
    }).data


class AgreementApi(APIView):
    parser_classes = [JSONParser]

    class AgreementRequestInput(serializers.Serializer):
        resamples = serializers.IntegerField(required=False, default=1000, min_value=0, max_value=MAX_RESAMPLES,
                                             help_text="Bootstrap resamples for the intervals.")
        seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=2**31 - 1)

    class AgreementQueuedOutput(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        requested_at = serializers.DateTimeField(source="created_at")
        resamples = serializers.IntegerField()
        seed = serializers.IntegerField()

    @extend_schema(responses={200: AgreementOutput, 404: NOT_FOUND}, operation_id="review_agreement_get",
                   description="The newest computed agreement report: per criterion Krippendorff's alpha, Fleiss' and Cohen's kappa "
                               "with 95% intervals and n, and the annotator table.")
    def get(self, request, dataset_id: int):
        dataset = reviewable(request, dataset_id)
        return Response(_agreement_data(dashboard.agreement_state(dataset)))

    @extend_schema(request=AgreementRequestInput, responses={202: AgreementQueuedOutput, 400: INVALID, 404: NOT_FOUND},
                   operation_id="review_agreement_request",
                   description="Queue a fresh report; while one is queued or running, that one is answered instead of a second.")
    def post(self, request, dataset_id: int):
        dataset = reviewable(request, dataset_id)
        data = self.AgreementRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = services.agreement_request(user=request.user, dataset=dataset, **data.validated_data)
        return Response(self.AgreementQueuedOutput(report).data, status=status.HTTP_202_ACCEPTED)


class AnnotatorStatsApi(APIView):
    @extend_schema(responses={200: AnnotatorStatsOutput(many=True), 404: NOT_FOUND}, operation_id="review_annotators",
                   description="Per annotator, computed now: agreement with peers, leniency per scale, gold accuracy, "
                               "labels per hour and skip rate.")
    def get(self, request, dataset_id: int):
        dataset = reviewable(request, dataset_id)
        return Response(AnnotatorStatsOutput(selectors.annotator_stats(dataset), many=True).data)
