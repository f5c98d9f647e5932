"""Exports and the pull API under /api/v1/. `latest` and `preview` are words, export ids are numbers:
they cannot be taken for each other. The sign route comes before the file route: a file path never ends
with a slash, so `files/<path>/sign/` names no file."""

from django.urls import path

from . import api

P = "datasets/<int:dataset_id>/exports/"

urlpatterns = [
    path(P, api.ExportListApi.as_view(), name="api-exports"),
    path(P + "preview/", api.ExportPreviewApi.as_view(), name="api-export-preview"),
    path(P + "latest/", api.ExportLatestApi.as_view(), name="api-export-latest"),
    path(P + "<int:export_id>/", api.ExportDetailApi.as_view(), name="api-export"),
    path(P + "<int:export_id>/files/<path:file_path>/sign/", api.ExportFileSignApi.as_view(), name="api-export-file-sign"),
    path(P + "<int:export_id>/files/<path:file_path>", api.ExportFileApi.as_view(), name="api-export-file"),
]
