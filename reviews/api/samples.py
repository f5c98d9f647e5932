"""One sample through the API: what adjudication shows, its decisions (taken with the sample's version:
a stale one answers 409 with the decision that won) and its audit trail."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator import selectors as annotator_selectors
from annotator.api.annotation import LabelValuesOutput
from annotator.api.datasets import MessageSerializer

from .. import selectors, services
from ..models import ReviewDecision
from .common import INVALID, NOT_FOUND, ConsensusOutput, answer_of, errors_response, reviewable


class ReviewDecisionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    reviewer = serializers.SerializerMethodField(help_text="Username; null for the auto-approve rule.")
    automatic = serializers.BooleanField()
    decision = serializers.ChoiceField(choices=ReviewDecision.Decision.values)
    rationale = serializers.CharField()
    revision = serializers.IntegerField(source="revision_id", allow_null=True)
    answer = serializers.SerializerMethodField(help_text="The edited answer of approve_edit; null otherwise.")
    status_before = serializers.CharField()
    status_after = serializers.CharField()
    sample_version = serializers.IntegerField(help_text="The version it was decided against.")
    created_at = serializers.DateTimeField()

    def get_reviewer(self, decision: ReviewDecision) -> str | None:
        return decision.reviewer.get_username() if decision.reviewer_id else None

    def get_answer(self, decision: ReviewDecision) -> str | None:
        return answer_of(decision.revision.messages) if decision.revision_id else None


class ReviewLabelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    annotator = serializers.CharField(source="annotator.username")
    version = serializers.IntegerField()
    source = serializers.CharField()
    values = LabelValuesOutput(source="*")
    gold_score = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


class ReviewItemOutput(serializers.Serializer):
    is_open = serializers.BooleanField()
    severity = serializers.IntegerField()
    reasons = serializers.JSONField()
    labels_n = serializers.IntegerField()
    consensus = ConsensusOutput(source="*")
    routed_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class ReviewFlagOutput(serializers.Serializer):
    metric = serializers.CharField()
    rule = serializers.CharField()
    reason = serializers.CharField()
    other_sample = serializers.IntegerField(source="other_sample_id", allow_null=True)


class ReviewRevisionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.SerializerMethodField()
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_author(self, revision) -> str | None:
        return revision.author.get_username() if revision.author_id else None


class SampleReviewOutput(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    status = serializers.CharField()
    version = serializers.IntegerField(help_text="Send it with a decision.")
    task_type = serializers.CharField()
    language = serializers.CharField()
    messages = MessageSerializer(many=True, help_text="The conversation as it stands (the newest approved revision's).")
    original_messages = MessageSerializer(many=True, help_text="The conversation as imported.")
    revision = ReviewRevisionOutput(allow_null=True, help_text="The approved revision `messages` come from.")
    labels = ReviewLabelOutput(many=True, help_text="Current labels, with annotator names.")
    review = ReviewItemOutput(allow_null=True, help_text="Consensus and reasons; null until the sample has its labels.")
    flags = ReviewFlagOutput(many=True, help_text="Metric flags with their reasons.")
    decisions = ReviewDecisionOutput(many=True, help_text="Newest first.")


def _sample(request, dataset, sample_id: int, *, with_scores: bool = False):
    return annotator_selectors.sample_get(request.user, dataset, sample_id, with_scores=with_scores)


class SampleReviewApi(APIView):
    @extend_schema(responses={200: SampleReviewOutput, 404: NOT_FOUND}, operation_id="review_sample",
                   description="What a reviewer needs to decide one sample.")
    def get(self, request, dataset_id: int, sample_id: int):
        dataset = reviewable(request, dataset_id)
        sample = _sample(request, dataset, sample_id, with_scores=True)
        review = selectors.sample_review(dataset, sample)
        return Response(SampleReviewOutput({
            "id": sample.pk, "external_id": sample.external_id, "status": sample.status, "version": sample.version,
            "task_type": sample.task_type, "language": sample.language, "messages": review["messages"],
            "original_messages": sample.messages, "revision": review["revision"], "labels": review["labels"], "review": review["item"],
            "flags": list(sample.flags.all()), "decisions": review["decisions"],
        }).data)


class DecisionConflictOutput(serializers.Serializer):
    code = serializers.ChoiceField(choices=["decision_conflict"])
    detail = serializers.CharField()
    latest = ReviewDecisionOutput(allow_null=True, help_text="The decision you did not see; null when the labels changed instead.")
    version = serializers.IntegerField(help_text="The sample's version now.")
    status = serializers.CharField(help_text="The sample's status now.")


class DecisionListApi(APIView):
    parser_classes = [JSONParser]

    class ReviewDecisionInput(serializers.Serializer):
        decision = serializers.ChoiceField(choices=ReviewDecision.Decision.values)
        rationale = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                          help_text="Required to reject or to approve with an edit.")
        answer = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False,
                                       help_text="The whole edited answer (approve_edit only).")
        version = serializers.IntegerField(min_value=0, max_value=2**31 - 1, help_text="The sample's version you decided on.")

    @extend_schema(responses={200: ReviewDecisionOutput(many=True), 404: NOT_FOUND}, operation_id="review_decisions_list",
                   description="Every decision on the sample, newest first (the auto-approve rule's too).")
    def get(self, request, dataset_id: int, sample_id: int):
        dataset = reviewable(request, dataset_id)
        sample = _sample(request, dataset, sample_id)
        return Response(ReviewDecisionOutput(selectors.decision_list(sample), many=True).data)

    @extend_schema(
        request=ReviewDecisionInput,
        responses={201: ReviewDecisionOutput, 400: INVALID, 404: NOT_FOUND,
                   409: OpenApiResponse(DecisionConflictOutput, description="The sample changed since `version`: nothing was written.")},
        operation_id="review_decide",
        description="Approve, reject, or approve with an edited answer (a new approved revision). Taken only if the sample is "
                    "still at `version`.",
    )
    def post(self, request, dataset_id: int, sample_id: int):
        dataset = reviewable(request, dataset_id)
        sample = _sample(request, dataset, sample_id)
        data = self.ReviewDecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            made = services.review_decide(
                user=request.user, dataset=dataset, sample_id=sample.pk, decision=values["decision"],
                expected_version=values["version"], rationale=values.get("rationale", ""), answer=values.get("answer"),
            )
        except services.DecisionInvalid as exc:
            return errors_response(exc.errors)
        except services.DecisionConflict as exc:
            body = {"code": "decision_conflict", "detail": str(exc), "latest": exc.latest, "version": exc.sample.version,
                    "status": exc.sample.status}
            return Response(DecisionConflictOutput(body).data, status=status.HTTP_409_CONFLICT)
        return Response(ReviewDecisionOutput(made).data, status=status.HTTP_201_CREATED)


class AuditEventOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=["label", "revision", "decision", "status"])
    who = serializers.CharField(allow_null=True, help_text="Username; null for the system (auto-approve, settings).")
    before = serializers.JSONField(allow_null=True, help_text="Label values, answer or status before.")
    after = serializers.JSONField(allow_null=True)
    detail = serializers.JSONField()


class AuditTrailApi(APIView):
    @extend_schema(responses={200: AuditEventOutput(many=True), 404: NOT_FOUND}, operation_id="review_audit",
                   description="Every label version, revision, decision and status change of the sample, oldest first.")
    def get(self, request, dataset_id: int, sample_id: int):
        dataset = reviewable(request, dataset_id)
        sample = _sample(request, dataset, sample_id)
        return Response(AuditEventOutput(selectors.audit_trail(sample), many=True).data)
