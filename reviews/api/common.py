"""What the review API's operations share: the dataset lookup (owners and reviewers; anyone else 404),
documented error answers, and the consensus as it is shown."""

from __future__ import annotations

from collections.abc import Mapping

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from annotator import selectors as annotator_selectors

from .. import services

NOT_FOUND = OpenApiResponse(description="No such dataset or sample for you: annotators and non-members get 404 on every review route.")
INVALID = OpenApiResponse(description="`{field: [message]}` for what is wrong.")


def reviewable(request, dataset_id: int):
    """The dataset with the caller's role as `.my_role`; 404 unless they own or review it."""
    dataset = annotator_selectors.dataset_get(request.user, pk=dataset_id)
    if dataset.my_role not in services.REVIEW_ROLES:
        raise Http404("No such dataset.")
    return dataset


def answer_of(messages: list[dict] | None) -> str | None:
    """The last assistant turn of a conversation."""
    if messages is None:
        return None
    return next((m.get("content", "") for m in reversed(messages) if m.get("role") == "assistant"), "")


def errors_response(errors: Mapping[str, str]) -> Response:
    return Response({field: [message] for field, message in errors.items()}, status=status.HTTP_400_BAD_REQUEST)


class JsonObject(serializers.Serializer):
    """Documents an object's fields for the schema and hands it on unchanged (the service checks values)."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: ["Expected a JSON object."]})
        return dict(data)


class ConsensusOutput(serializers.Serializer):
    method = serializers.CharField(help_text="How the verdict was found: majority (a tie goes to the stricter verdict).")
    verdict = serializers.CharField()
    verdict_confidence = serializers.FloatField(allow_null=True, help_text="Share of labels that gave the consensus verdict.")
    accuracy = serializers.FloatField(allow_null=True, help_text="Median.")
    completeness = serializers.FloatField(allow_null=True, help_text="Median.")
    conciseness = serializers.FloatField(allow_null=True, help_text="Median.")
    difficulty = serializers.CharField()

