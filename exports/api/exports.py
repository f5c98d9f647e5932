"""Exports through /api/v1/: ask for one (202), preview one, list them (cursor pages, newest first), read
one's manifest, and find the newest finished one.

    POST  datasets/{id}/exports/            spec JSON -> 202 {"id", "status", "url"}; 400 invalid_spec
    GET   datasets/{id}/exports/            cursor pages, newest first
    POST  datasets/{id}/exports/preview/    spec JSON -> what the export would hold, nothing built
    GET   datasets/{id}/exports/{export}/   the manifest (200 whatever the status; files only when succeeded)
    GET   datasets/{id}/exports/latest/     302 to the newest succeeded export; 404 when there is none

Owners and reviewers only (annotators, like outsiders, get 404). A job token reads all of it; asking for an
export needs a session or a token that can write."""

from __future__ import annotations

from collections.abc import Mapping

from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..models import Export
from ..spec import SpecError
from . import reads
from .files import ReadScope, file_api_path

NOT_FOUND = OpenApiResponse(description="No such dataset or export for you (annotators and other datasets' tokens get 404 too).")


def export_api_path(export: Export) -> str:
    return reverse("api-export", kwargs={"dataset_id": export.dataset_id, "export_id": export.pk})


def invalid_spec(exc: SpecError) -> Response:
    return Response({"code": "invalid_spec", "detail": _("The export spec is not valid."), "errors": exc.errors},
                    status=status.HTTP_400_BAD_REQUEST)


def status_field() -> serializers.CharField:
    # Plain text in the schema: an enum named "status" would collide with the other `status` enums.
    return serializers.CharField(help_text="queued, building, succeeded or failed. queued and building: not ready (files answer 409); "
                                           "succeeded: files listed; failed: see error (files answer 410).")


class SpecInput(serializers.Serializer):
    """The export spec (see exports/spec.py): documented here for the schema, checked by spec_parse, which
    names every wrong field by path."""

    version = serializers.IntegerField(required=False, default=1)
    name = serializers.CharField(help_text="Letters, digits, '.', '_' or '-'; names the files.")
    formats = serializers.ListField(child=serializers.ChoiceField(choices=["messages", "prompt_completion", "alpaca", "sharegpt", "parquet"]),
                                    required=False, help_text='Default ["messages"].')
    filters = serializers.JSONField(required=False, help_text="status, task_types, languages, flags, metrics, drop_duplicates, consensus.")
    balance = serializers.JSONField(required=False, help_text="by, mode (none|counts|ratios|cap), counts, ratios, cap, short (take_all|shrink).")
    select = serializers.JSONField(required=False, help_text="method (random|quality|diversity|cluster), quality_key, diversity.")
    size = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    split = serializers.JSONField(required=False, help_text="validation (a fraction up to 0.5, or a count), seed.")
    seed = serializers.IntegerField(required=False, min_value=0)
    system_prompt = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"spec": [_("Expected a JSON object.")]})
        return dict(data)


class SpecErrorOutput(serializers.Serializer):
    code = serializers.CharField(help_text="invalid_spec")
    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.CharField(), help_text='{field path: message}, e.g. {"balance.cap": "must be at least 1, got 0"}')


INVALID = OpenApiResponse(SpecErrorOutput, description="invalid_spec: every wrong field by path; also a `shrink` that would select "
                                                       'nothing, at the path of the stratum that empties it (balance.counts["qa/hard"]).')


class ExportCreatedOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    url = serializers.CharField(help_text="The export's manifest: poll it until status is succeeded or failed.")


class ExportListOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = status_field()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    sample_count = serializers.IntegerField()
    total_bytes = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    def get_url(self, export) -> str:
        return export_api_path(export)


class ExportFileOutput(serializers.Serializer):
    path = serializers.CharField()
    format = serializers.CharField()
    split = serializers.CharField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.SerializerMethodField()

    def get_url(self, row) -> str:
        return file_api_path(self.context["export"], row.path)


class ExportDetailOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    name = serializers.CharField()
    status = status_field()
    spec_sha256 = serializers.CharField()
    spec = serializers.JSONField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    sample_count = serializers.IntegerField()
    total_bytes = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)
    files = ExportFileOutput(many=True, source="files_list", help_text="Empty until the export has succeeded.")
    manifest = serializers.JSONField(help_text="The build's manifest: spec, counts per stratum and split, lineage, the state it was taken from.")


def export_detail_data(export: Export, files) -> dict:
    export.files_list = files
    return ExportDetailOutput(export, context={"export": export}).data


class ExportPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class ExportListApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="exports_list",
        parameters=[OpenApiParameter("status", str, enum=Export.Status.values), OpenApiParameter("cursor", str),
                    OpenApiParameter("page_size", int, description="At most 100.")],
        responses={200: ExportListOutput(many=True), 404: NOT_FOUND},
    )
    def get(self, request, dataset_id: int):
        dataset = reads.exports_dataset(request.user, pk=dataset_id)
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in Export.Status.values:
            raise serializers.ValidationError({"status": [_("must be one of %(values)s") % {"values": ", ".join(Export.Status.values)}]})
        paginator = ExportPagination()
        page = paginator.paginate_queryset(reads.export_list(dataset, status=wanted), request, view=self)
        return paginator.get_paginated_response(ExportListOutput(page, many=True).data)

    @extend_schema(
        operation_id="exports_create",
        request=SpecInput,
        responses={202: ExportCreatedOutput, 400: INVALID, 403: OpenApiResponse(description="A read-only token."), 404: NOT_FOUND},
        description="Ask for an export: the spec is checked, the export is queued and built by a worker. Poll its url.",
    )
    def post(self, request, dataset_id: int):
        dataset = reads.exports_dataset(request.user, pk=dataset_id)
        try:
            export = services.export_create(user=request.user, dataset=dataset, spec=_spec_body(request))
        except SpecError as exc:
            return invalid_spec(exc)
        url = export_api_path(export)
        response = Response({"id": export.pk, "status": export.status, "url": url}, status=status.HTTP_202_ACCEPTED)
        response["Location"] = url
        return response


def _spec_body(request) -> dict:
    """The request body as a spec, which must be a JSON object."""
    if not isinstance(request.data, Mapping):
        raise SpecError({"spec": "must be an object"})
    return dict(request.data)


class ExportPreviewApi(APIView):
    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated, ReadScope]  # a preview changes nothing: a read-only token may ask

    @extend_schema(
        operation_id="exports_preview",
        request=SpecInput,
        responses={200: OpenApiResponse(inline_serializer("ExportPreviewOutput", {"strata": serializers.JSONField()}),
                                        description="Counts per stratum (pool, target, chosen, short), dropped by reason, totals per "
                                                    "split, distributions of the pool against the selection, diversity score."),
                   400: INVALID, 404: NOT_FOUND},
        description="What an export with this spec would hold now. Builds nothing; a read-only token may ask.",
    )
    def post(self, request, dataset_id: int):
        dataset = reads.exports_dataset(request.user, pk=dataset_id)
        try:
            preview = services.export_preview(user=request.user, dataset=dataset, spec=_spec_body(request))
        except SpecError as exc:
            return invalid_spec(exc)
        return Response(preview)


class ExportDetailApi(APIView):
    @extend_schema(
        operation_id="export_get",
        responses={200: ExportDetailOutput, 404: NOT_FOUND},
        description="The export and its manifest. 200 whatever its status: poll until status is succeeded (files listed) or failed (error).",
    )
    def get(self, request, dataset_id: int, export_id: int):
        dataset = reads.exports_dataset(request.user, pk=dataset_id)
        export = reads.export_get(dataset, export_id)
        files = reads.export_files(export) if export.status == Export.Status.SUCCEEDED else []
        return Response(export_detail_data(export, files))


class ExportLatestApi(APIView):
    @extend_schema(
        operation_id="export_latest",
        responses={302: OpenApiResponse(description="Location: the newest succeeded export's URL."),
                   404: OpenApiResponse(description="No succeeded export yet (or no such dataset for you).")},
    )
    def get(self, request, dataset_id: int):
        dataset = reads.exports_dataset(request.user, pk=dataset_id)
        export = reads.export_latest(dataset)
        if export is None:
            return Response({"code": "no_export", "detail": _("This dataset has no finished export yet.")}, status=status.HTTP_404_NOT_FOUND)
        return HttpResponseRedirect(export_api_path(export))
