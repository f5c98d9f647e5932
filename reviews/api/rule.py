"""The dataset's review rule through the API: read by owners and reviewers, set by owners."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from annotator.models import Membership

from .. import routing, services
from .common import INVALID, NOT_FOUND, JsonObject, reviewable

Role = Membership.Role
SETTINGS_NAMES = tuple(routing.ReviewConfig().to_json())


class ReviewSettingsOutput(serializers.Serializer):
    auto_approve = serializers.BooleanField(help_text="Approve a completed sample without a reviewer when nothing blocks it.")
    max_spread = serializers.IntegerField(help_text="Largest spread of a 1-5 scale that still auto-approves (0-3).")
    flags_block = serializers.BooleanField(help_text="A metric flag sends the sample to the queue.")


class ReviewSettingsInput(JsonObject):
    """The whole rule (PUT: what is absent takes its default) or a part of it (PATCH)."""

    auto_approve = serializers.BooleanField(required=False)
    max_spread = serializers.IntegerField(required=False, min_value=0, max_value=3)
    flags_block = serializers.BooleanField(required=False)


class ReviewSettingsApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses={200: ReviewSettingsOutput, 404: NOT_FOUND}, operation_id="review_settings_get")
    def get(self, request, dataset_id: int):
        dataset = reviewable(request, dataset_id)
        return Response(ReviewSettingsOutput(routing.review_config(dataset).to_json()).data)

    @extend_schema(request=ReviewSettingsInput, responses={200: ReviewSettingsOutput, 400: INVALID, 403: None, 404: NOT_FOUND},
                   operation_id="review_settings_put",
                   description="Replace the rule (owners); what is absent takes its default. Samples waiting in review are routed "
                               "again under the new rule.")
    def put(self, request, dataset_id: int):
        return self._set(request, dataset_id, partial=False)

    @extend_schema(request=ReviewSettingsInput, responses={200: ReviewSettingsOutput, 400: INVALID, 403: None, 404: NOT_FOUND},
                   operation_id="review_settings_patch", description="Change part of the rule (owners); the rest stays.")
    def patch(self, request, dataset_id: int):
        return self._set(request, dataset_id, partial=True)

    def _set(self, request, dataset_id: int, *, partial: bool):
        dataset = reviewable(request, dataset_id)
        if dataset.my_role != Role.OWNER:
            raise exceptions.PermissionDenied("Only the dataset's owners can change its review rule.")
        values = ReviewSettingsInput(data=request.data)
        values.is_valid(raise_exception=True)
        values = values.validated_data
        if partial:
            values = {**routing.review_config(dataset).to_json(), **values}
        try:
            config = services.review_settings_set(actor=request.user, dataset=dataset, values=values)
        except routing.ReviewConfigError as exc:
            name, _sep, message = str(exc).partition(": ")
            if name not in SETTINGS_NAMES:
                name = name if name and " " not in name else api_settings.NON_FIELD_ERRORS_KEY
            return Response({name: [message or str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ReviewSettingsOutput(config.to_json()).data)
