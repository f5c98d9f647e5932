"""Datasets, samples and imports through /api/v1/."""

from __future__ import annotations

from django.db import IntegrityError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from exports.auth import request_token

from .. import formats, selectors, services
from ..forms import parse_columns
from ..models import ImportJob, Membership, Sample


class DatasetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()
    description = serializers.CharField()
    guidelines = serializers.CharField()
    role = serializers.CharField(source="my_role")
    created_at = serializers.DateTimeField()


class DatasetListOutput(DatasetOutput):
    sample_count = serializers.IntegerField()


class DatasetListApi(APIView):
    class DatasetCreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=100, required=False, allow_blank=True)
        description = serializers.CharField(required=False, allow_blank=True)
        guidelines = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(responses=DatasetListOutput(many=True), operation_id="datasets_list")
    def get(self, request):
        datasets = selectors.dataset_list(request.user)
        token = request_token(request)
        if token is not None and token.dataset_id is not None:
            datasets = datasets.filter(pk=token.dataset_id)
        return Response(DatasetListOutput(datasets, many=True).data)

    @extend_schema(request=DatasetCreateInput, responses={201: DatasetOutput}, operation_id="datasets_create")
    def post(self, request):
        data = self.DatasetCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            dataset = services.dataset_create(owner=request.user, **data.validated_data)
        except IntegrityError:
            raise serializers.ValidationError({"slug": ["A dataset with this slug already exists."]}) from None
        dataset = selectors.dataset_get(request.user, pk=dataset.pk)
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    @extend_schema(responses=DatasetOutput)
    def get(self, request, dataset_id: int):
        return Response(DatasetOutput(selectors.dataset_get(request.user, pk=dataset_id)).data)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)


class SampleTextOutput(serializers.Serializer):
    """What anyone who labels may see of a sample: its text and facets, nothing about its review."""

    id = serializers.IntegerField()
    external_id = serializers.CharField()
    messages = MessageSerializer(many=True)
    task_type = serializers.CharField()
    language = serializers.CharField()


class SampleOutput(SampleTextOutput):
    status = serializers.CharField(required=False, help_text="Review outcome; absent for annotators, who label blind.")
    flag_count = serializers.IntegerField(required=False, help_text="Metric flags; absent for annotators, who label blind.")
    content_hash = serializers.CharField()
    meta = serializers.JSONField()


class SampleDetailOutput(SampleOutput):
    source = serializers.JSONField()
    import_job = serializers.IntegerField(source="import_job_id", allow_null=True)
    created_at = serializers.DateTimeField()


# What an annotator must not see of a sample: its review outcome (`status`) and its metric flags.
BLIND_FIELDS = ("status", "flag_count")
# Filters that would reveal the same thing by what they keep; ignored for annotators.
BLIND_FILTERS = ("status", "has_flag")


def _labels_blind(dataset) -> bool:
    """Annotators label blind: they never see the review outcome or metric flags (owners and reviewers do)."""
    return dataset.my_role == Membership.Role.ANNOTATOR


def _blind(rows: list, blind: bool) -> list:
    if blind:
        for row in rows:
            for name in BLIND_FIELDS:
                row.pop(name, None)
    return rows


class SamplePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class SampleListApi(APIView):
    class SampleFilter(serializers.Serializer):
        status = serializers.ChoiceField(choices=Sample.Status.values, required=False)
        task_type = serializers.CharField(required=False)
        language = serializers.CharField(required=False)
        has_flag = serializers.BooleanField(required=False, allow_null=True, default=None)
        q = serializers.CharField(required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Sample.Status.values, description="Ignored for annotators."),
            OpenApiParameter("task_type", str),
            OpenApiParameter("language", str),
            OpenApiParameter("has_flag", bool, description="Ignored for annotators."),
            OpenApiParameter("q", str, description="Text search over every turn, or an exact external_id."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=SampleOutput(many=True),
    )
    def get(self, request, dataset_id: int):
        dataset = selectors.dataset_get(request.user, pk=dataset_id)
        filters = self.SampleFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        blind = _labels_blind(dataset)
        params = {k: v for k, v in filters.validated_data.items() if not (blind and k in BLIND_FILTERS)}
        samples = selectors.sample_list(request.user, dataset, **params)
        paginator = SamplePagination()
        page = paginator.paginate_queryset(samples, request, view=self)
        return paginator.get_paginated_response(_blind(SampleOutput(page, many=True).data, blind))


class SampleDetailApi(APIView):
    @extend_schema(responses=SampleDetailOutput)
    def get(self, request, dataset_id: int, sample_id: int):
        dataset = selectors.dataset_get(request.user, pk=dataset_id)
        data = SampleDetailOutput(selectors.sample_get(request.user, dataset, sample_id)).data
        return Response(_blind([data], _labels_blind(dataset))[0])


class ImportErrorOutput(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True)
    record = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ImportJobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    file_name = serializers.CharField(source="original_name")
    size_bytes = serializers.IntegerField()
    format = serializers.CharField()
    detected_format = serializers.CharField()
    status = serializers.ChoiceField(choices=ImportJob.Status.values)
    progress = serializers.FloatField()
    records_total = serializers.IntegerField()
    imported_count = serializers.IntegerField()
    duplicate_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    errors = ImportErrorOutput(many=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def _job_data(job: ImportJob) -> dict:
    data = ImportJobOutput(job).data
    live = selectors.import_job_progress(job)
    data["progress"] = live["progress"]
    if job.status == ImportJob.Status.RUNNING:
        data["records_total"] = live["records"]
    return data


class ImportListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    class ImportCreateInput(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=formats.FORMAT_CHOICES, default="auto")
        columns = serializers.CharField(required=False, allow_blank=True, help_text="CSV mapping, e.g. instruction=prompt,output=answer")

        def validate_columns(self, value: str) -> dict:
            from django import forms

            try:
                return parse_columns(value)
            except forms.ValidationError as exc:
                raise serializers.ValidationError(exc.messages) from None

    @extend_schema(responses=ImportJobOutput(many=True), operation_id="imports_list")
    def get(self, request, dataset_id: int):
        dataset = selectors.dataset_get(request.user, pk=dataset_id)
        return Response([_job_data(j) for j in selectors.import_job_list(request.user, dataset, limit=100)])

    @extend_schema(request=ImportCreateInput, responses={202: ImportJobOutput}, operation_id="imports_create")
    def post(self, request, dataset_id: int):
        dataset = selectors.dataset_get(request.user, pk=dataset_id)
        services.check_dataset_role(user=request.user, dataset=dataset, roles=[Membership.Role.OWNER])
        data = self.ImportCreateInput(data=request.data)
        refused = getattr(request._request, "upload_refused", None)
        if refused:
            return Response({"file": [refused]}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        data.is_valid(raise_exception=True)
        columns = data.validated_data.get("columns") or {}
        try:
            job = services.import_job_create(
                user=request.user, dataset=dataset, upload=data.validated_data["file"], fmt=data.validated_data["format"],
                options={"columns": columns} if columns else {},
            )
        except services.ImportRefused as exc:
            raise serializers.ValidationError({"file": [str(exc)]}) from None
        return Response(_job_data(job), status=status.HTTP_202_ACCEPTED)


class ImportDetailApi(APIView):
    @extend_schema(responses=ImportJobOutput)
    def get(self, request, dataset_id: int, import_id: int):
        dataset = selectors.dataset_get(request.user, pk=dataset_id)
        return Response(_job_data(selectors.import_job_get(request.user, import_id, dataset=dataset)))
