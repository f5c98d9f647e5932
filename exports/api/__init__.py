"""The pull API under /api/v1/datasets/{id}/exports/: exports (ask, preview, list, manifest, latest) and
their files (download with ETag and ranges, signed URLs). Reads scoped to the caller are in `reads`."""

from .exports import (
    ExportCreatedOutput,
    ExportDetailApi,
    ExportDetailOutput,
    ExportLatestApi,
    ExportListApi,
    ExportListOutput,
    ExportPreviewApi,
)
from .files import ExportFileApi, ExportFileSignApi

__all__ = [
    "ExportCreatedOutput", "ExportDetailApi", "ExportDetailOutput", "ExportFileApi", "ExportFileSignApi", "ExportLatestApi",
    "ExportListApi", "ExportListOutput", "ExportPreviewApi",
]
