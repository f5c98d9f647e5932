"""Annotation through /api/v1/: the next sample, submit (and revise), skip, drafts, the caller's own
labels and figures, the dataset's annotation settings and model suggestions.

Blind by construction: every read here is the caller's own (their assignments, their labels, their
figures). Nothing says whether a sample is gold, how anyone else labelled it, or how it was reviewed.
Label values are checked in one place, `annotator.rubric`; the input serializers here document the
fields for the schema and check only that the body is a JSON object, so the rubric reports every bad
field at once as `{field: [message]}`."""

from __future__ import annotations

from collections.abc import Mapping

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import rubric, selectors, services
from ..models import Label, Membership
from .datasets import SampleTextOutput

Role = Membership.Role
REVIEWERS = (Role.OWNER, Role.REVIEWER)
# Settings an annotator does not see: with the seed and the gold rate one could tell which of one's
# requests serve a gold sample (gold samples are never shown as such).
SETTINGS_HIDDEN_FROM_ANNOTATORS = ("gold_rate", "seed", "order")  # the order would say "flagged samples come first"
SETTINGS_NAMES = tuple(rubric.AnnotationConfig().to_json())
MAX_SUGGESTIONS = 5000

INVALID = OpenApiResponse(description="`{field: [message]}` for every field that is wrong.")
NOT_FOUND = OpenApiResponse(description="No such dataset or assignment for you (someone else's answers 404 too).")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def _dataset(request, dataset_id: int, roles=services.ANNOTATING_ROLES):
    """The dataset with the caller's role as `.my_role`; 404 unless they hold one of `roles`."""
    dataset = selectors.dataset_get(request.user, pk=dataset_id)
    if dataset.my_role not in roles:
        raise Http404("No such dataset.")
    return dataset


def _flat(errors, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as `{"items[2].values": [message]}`, the shape the rubric's errors take."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            if isinstance(key, int):  # a ListField's errors, by position
                name = f"{prefix}[{key}]"
            elif key == api_settings.NON_FIELD_ERRORS_KEY and prefix:
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flat(value, name))
    elif isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            if errors:
                out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(e) for e in errors]
        else:
            for n, item in enumerate(errors):
                out.update(_flat(item, f"{prefix}[{n}]"))
    else:
        out[prefix or api_settings.NON_FIELD_ERRORS_KEY] = [str(errors)]
    return out


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise serializers.ValidationError(_flat(serializer.errors))
    return serializer.validated_data


def _invalid(exc: rubric.LabelInvalid) -> Response:
    return Response({field: [message] for field, message in exc.errors.items()}, status=status.HTTP_400_BAD_REQUEST)


def _conflict(exc: Exception, code: str) -> Response:
    return Response({"detail": str(exc), "code": code}, status=status.HTTP_409_CONFLICT)


class _JsonObject(serializers.Serializer):
    """Documents an object's fields for the schema and hands the object on unchanged (values are
    checked by the service, through the rubric)."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: ["Expected a JSON object."]})
        return dict(data)


# ---------------------------------------------------------------------------------------------
# Serializers shared by the operations
# ---------------------------------------------------------------------------------------------

class LabelValuesInput(_JsonObject):
    """The rubric. Which fields are required depends on the dataset's settings (verdict always is)."""

    accuracy = serializers.IntegerField(min_value=rubric.SCALE_MIN, max_value=rubric.SCALE_MAX, required=False, allow_null=True)
    completeness = serializers.IntegerField(min_value=rubric.SCALE_MIN, max_value=rubric.SCALE_MAX, required=False, allow_null=True)
    conciseness = serializers.IntegerField(min_value=rubric.SCALE_MIN, max_value=rubric.SCALE_MAX, required=False, allow_null=True)
    difficulty = serializers.ChoiceField(choices=rubric.DIFFICULTIES, required=False, allow_blank=True)
    verdict = serializers.ChoiceField(choices=rubric.VERDICTS, required=False, help_text="Required to submit.")
    error_tags = serializers.ListField(child=serializers.CharField(), required=False, help_text="The dataset's tags (see settings).")
    corrected_answer = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                             help_text="The whole corrected answer; required when the verdict is needs_fix.")
    comment = serializers.CharField(required=False, allow_blank=True)
    time_spent_s = serializers.FloatField(required=False, min_value=0)
    extra = serializers.DictField(child=serializers.CharField(), required=False, help_text="Values of the dataset's extra fields.")


class LabelValuesOutput(serializers.Serializer):
    accuracy = serializers.IntegerField(allow_null=True)
    completeness = serializers.IntegerField(allow_null=True)
    conciseness = serializers.IntegerField(allow_null=True)
    difficulty = serializers.CharField()
    verdict = serializers.CharField()
    error_tags = serializers.ListField(child=serializers.CharField())
    corrected_answer = serializers.CharField()
    comment = serializers.CharField()
    time_spent_s = serializers.FloatField()
    extra = serializers.DictField(child=serializers.CharField())


class LabelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    sample = serializers.IntegerField(source="sample_id")
    version = serializers.IntegerField()
    values = LabelValuesOutput(source="*")
    created_at = serializers.DateTimeField()


class ConflictOutput(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=["assignment_gone", "label_locked", "already_labelled"])


CONFLICT = OpenApiResponse(ConflictOutput, description="assignment_gone: the reservation lapsed and k others took the sample; "
                                                       "label_locked: the sample was reviewed; already_labelled: (skip) "
                                                       "revise the label instead.")


# ---------------------------------------------------------------------------------------------
# Next, submit, skip, draft
# ---------------------------------------------------------------------------------------------

class SuggestionOutput(serializers.Serializer):
    values = serializers.JSONField()
    model = serializers.CharField(source="model_name")


class AssignmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()
    is_revision = serializers.BooleanField()
    draft = serializers.JSONField(help_text="Your autosaved, unsubmitted values.")
    sample = SampleTextOutput()
    suggestion = SuggestionOutput(allow_null=True, help_text="Values a model proposed, to prefill (and mark as such).")


class AnnotationNextOutput(serializers.Serializer):
    assignment = AssignmentOutput()


class AnnotationNextApi(APIView):
    parser_classes = [JSONParser]

    class AnnotationNextInput(serializers.Serializer):
        exclude = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, max_length=50,
                                        help_text="Ids of your assignments already on screen, to get another one.")

    @extend_schema(
        request=AnnotationNextInput,
        responses={200: AnnotationNextOutput, 204: OpenApiResponse(description="Nothing is left for you in this dataset."), 404: NOT_FOUND},
        operation_id="annotation_next",
    )
    def post(self, request, dataset_id: int):
        dataset = _dataset(request, dataset_id)
        data = _valid(self.AnnotationNextInput, request.data)
        assignment = services.assignment_next(user=request.user, dataset=dataset, exclude=tuple(data.get("exclude", ())))
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        sample = assignment.sample
        payload = {
            "id": assignment.pk, "expires_at": assignment.expires_at, "is_revision": False, "draft": assignment.draft,
            "sample": sample, "suggestion": selectors.suggestion_latest(sample),
        }
        return Response(AnnotationNextOutput({"assignment": payload}).data)


class AssignmentSubmitApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=LabelValuesInput,
        responses={201: LabelOutput, 400: INVALID, 404: NOT_FOUND, 409: CONFLICT},
        operation_id="assignment_submit",
        description="Label your assignment; on one already submitted this revises it (a new version).",
    )
    def post(self, request, dataset_id: int, assignment_id: int):
        dataset = _dataset(request, dataset_id)
        values = _valid(LabelValuesInput, request.data)
        try:
            label = services.assignment_submit(
                user=request.user, dataset=dataset, assignment_id=assignment_id, values=values, source=Label.Source.API,
            )
        except rubric.LabelInvalid as exc:
            return _invalid(exc)
        except services.AssignmentGone as exc:
            return _conflict(exc, "assignment_gone")
        except services.LabelLocked as exc:
            return _conflict(exc, "label_locked")
        return Response(LabelOutput(label).data, status=status.HTTP_201_CREATED)


class AssignmentStateOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    finished_at = serializers.DateTimeField(allow_null=True)


class AssignmentSkipApi(APIView):
    parser_classes = [JSONParser]

    class AssignmentSkipInput(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    @extend_schema(request=AssignmentSkipInput, responses={200: AssignmentStateOutput, 404: NOT_FOUND, 409: CONFLICT},
                   operation_id="assignment_skip")
    def post(self, request, dataset_id: int, assignment_id: int):
        dataset = _dataset(request, dataset_id)
        data = _valid(self.AssignmentSkipInput, request.data)
        try:
            assignment = services.assignment_skip(
                user=request.user, dataset=dataset, assignment_id=assignment_id, reason=data.get("reason", ""),
            )
        except services.LabelLocked as exc:  # the assignment was submitted: a label is revised, not skipped
            return _conflict(exc, "already_labelled")
        return Response(AssignmentStateOutput(assignment).data)


class DraftOutput(serializers.Serializer):
    id = serializers.IntegerField()
    draft = serializers.JSONField()
    draft_saved_at = serializers.DateTimeField(allow_null=True)


class AssignmentDraftApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=LabelValuesInput, responses={200: DraftOutput, 400: INVALID, 404: NOT_FOUND}, operation_id="assignment_draft",
                   description="Autosave unsubmitted values as they are (a draft may be incomplete or not yet valid).")
    def post(self, request, dataset_id: int, assignment_id: int):
        dataset = _dataset(request, dataset_id)
        values = _valid(LabelValuesInput, request.data)
        try:
            assignment = services.assignment_draft_save(user=request.user, dataset=dataset, assignment_id=assignment_id, values=values)
        except rubric.LabelInvalid as exc:
            return _invalid(exc)
        return Response(DraftOutput(assignment).data)


# ---------------------------------------------------------------------------------------------
# The caller's own labels and figures
# ---------------------------------------------------------------------------------------------

class MyLabelOutput(LabelOutput):
    external_id = serializers.CharField(source="sample.external_id")


class MyLabelPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = MyLabelOutput(many=True)


class LabelPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class MyLabelListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses={200: MyLabelPageOutput, 404: NOT_FOUND},
        operation_id="labels_mine",
        description="Your current labels in the dataset, newest first (never anyone else's).",
    )
    def get(self, request, dataset_id: int):
        dataset = _dataset(request, dataset_id)
        paginator = LabelPagination()
        page = paginator.paginate_queryset(selectors.label_list_own(request.user, dataset), request, view=self)
        return paginator.get_paginated_response(MyLabelOutput(page, many=True).data)


class ProgressOutput(serializers.Serializer):
    done_today = serializers.IntegerField()
    done_total = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="Samples still open to you.")
    overlap = serializers.IntegerField(help_text="k: labels each sample gets.")


class AnnotationProgressApi(APIView):
    @extend_schema(responses={200: ProgressOutput, 404: NOT_FOUND}, operation_id="annotation_progress")
    def get(self, request, dataset_id: int):
        dataset = _dataset(request, dataset_id)
        overlap = services.annotation_config(dataset).overlap
        return Response(ProgressOutput({**selectors.annotation_progress(request.user, dataset, overlap=overlap), "overlap": overlap}).data)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

class ExtraFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())


class AnnotationSettingsOutput(serializers.Serializer):
    overlap = serializers.IntegerField(help_text="k: labels each sample gets.")
    reservation_minutes = serializers.IntegerField()
    gold_rate = serializers.FloatField(required=False, help_text="Absent for annotators.")
    order = serializers.ChoiceField(choices=rubric.ORDERS)
    seed = serializers.IntegerField(required=False, help_text="Absent for annotators.")
    required = serializers.ListField(child=serializers.CharField())
    extra_tags = serializers.ListField(child=serializers.CharField())
    extra_fields = ExtraFieldSerializer(many=True)


class AnnotationSettingsInput(_JsonObject):
    """The whole settings object (PUT; what is absent takes its default) or a part of it (PATCH)."""

    overlap = serializers.IntegerField(required=False, min_value=1, max_value=5)
    reservation_minutes = serializers.IntegerField(required=False, min_value=1, max_value=24 * 60)
    gold_rate = serializers.FloatField(required=False, min_value=0, max_value=0.5)
    order = serializers.ChoiceField(choices=rubric.ORDERS, required=False)
    seed = serializers.IntegerField(required=False, min_value=0)
    required = serializers.ListField(child=serializers.ChoiceField(choices=rubric.REQUIRABLE), required=False)
    extra_tags = serializers.ListField(child=serializers.CharField(), required=False)
    extra_fields = ExtraFieldSerializer(many=True, required=False)

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        errors = {}
        for name in data:
            if name not in SETTINGS_NAMES:
                errors[name] = [f"unknown setting; the settings are {', '.join(SETTINGS_NAMES)}"]
        # The rubric's parser expects lists here (anything else would not fail cleanly).
        for name in ("required", "extra_tags", "extra_fields"):
            if name in data and not isinstance(data[name], list):
                errors[name] = ["expected a list"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


def _settings_data(dataset, config: rubric.AnnotationConfig) -> dict:
    data = AnnotationSettingsOutput(config.to_json()).data
    if dataset.my_role == Role.ANNOTATOR:
        for name in SETTINGS_HIDDEN_FROM_ANNOTATORS:
            data.pop(name, None)
    return data


class AnnotationSettingsApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses={200: AnnotationSettingsOutput, 404: NOT_FOUND}, operation_id="annotation_settings_get")
    def get(self, request, dataset_id: int):
        dataset = _dataset(request, dataset_id)
        return Response(_settings_data(dataset, services.annotation_config(dataset)))

    @extend_schema(request=AnnotationSettingsInput, responses={200: AnnotationSettingsOutput, 400: INVALID, 403: None, 404: NOT_FOUND},
                   operation_id="annotation_settings_put", description="Replace the settings (owners); what is absent takes its default.")
    def put(self, request, dataset_id: int):
        return self._set(request, dataset_id, partial=False)

    @extend_schema(request=AnnotationSettingsInput, responses={200: AnnotationSettingsOutput, 400: INVALID, 403: None, 404: NOT_FOUND},
                   operation_id="annotation_settings_patch", description="Change some settings (owners); the rest stay.")
    def patch(self, request, dataset_id: int):
        return self._set(request, dataset_id, partial=True)

    def _set(self, request, dataset_id: int, *, partial: bool):
        dataset = _dataset(request, dataset_id)
        if dataset.my_role != Role.OWNER:
            raise exceptions.PermissionDenied("Only the dataset's owners can change its annotation settings.")
        values = _valid(AnnotationSettingsInput, request.data)
        if partial:
            values = {**services.annotation_config(dataset).to_json(), **values}
        try:
            config = services.annotation_settings_set(actor=request.user, dataset=dataset, values=values)
        except rubric.ConfigError as exc:
            name, _sep, message = str(exc).partition(": ")
            if name not in SETTINGS_NAMES:
                name, message = api_settings.NON_FIELD_ERRORS_KEY, str(exc)
            return Response({name: [message]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_settings_data(dataset, config))


# ---------------------------------------------------------------------------------------------
# Model suggestions
# ---------------------------------------------------------------------------------------------

class SuggestionItemInput(serializers.Serializer):
    sample_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    external_id = serializers.CharField(required=False, allow_null=True, max_length=255)
    values = LabelValuesInput(help_text="Rubric values; partial is fine.")
    model = serializers.CharField(required=False, allow_blank=True, max_length=200)

    def validate(self, attrs):
        if attrs.get("sample_id") is None and attrs.get("external_id") is None:
            raise serializers.ValidationError("give sample_id or external_id")
        return attrs


class SuggestionsAttachApi(APIView):
    parser_classes = [JSONParser]

    class SuggestionsInput(serializers.Serializer):
        items = SuggestionItemInput(many=True, allow_empty=False, max_length=MAX_SUGGESTIONS)

    class SuggestionsOutput(serializers.Serializer):
        created = serializers.IntegerField()

    @extend_schema(request=SuggestionsInput, responses={201: SuggestionsOutput, 400: INVALID, 403: None, 404: NOT_FOUND},
                   operation_id="suggestions_attach",
                   description="Attach model-proposed values to samples (owners and reviewers), all or nothing; "
                               "errors name the item: `items[3].values.accuracy`.")
    def post(self, request, dataset_id: int):
        dataset = _dataset(request, dataset_id)
        if dataset.my_role not in REVIEWERS:
            raise exceptions.PermissionDenied("Only the dataset's owners and reviewers can attach suggestions.")
        items = _valid(self.SuggestionsInput, request.data)["items"]
        try:
            created = services.suggestions_attach(actor=request.user, dataset=dataset, items=[dict(item) for item in items])
        except rubric.LabelInvalid as exc:
            return _invalid(exc)
        return Response(self.SuggestionsOutput({"created": len(created)}).data, status=status.HTTP_201_CREATED)
