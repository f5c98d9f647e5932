"""Export files through /api/v1/: download (GET and HEAD, byte ranges, ETag = sha256, immutable caching)
and short-lived signed URLs for tools that cannot send a header.

    GET|HEAD  datasets/{id}/exports/{export}/files/{path}         bearer token, session, or a signed URL
    POST      datasets/{id}/exports/{export}/files/{path}/sign/   -> {"url", "expires_at"}

Only paths listed in the export's files are served, and the file on disk must lie inside the export's
folder: nothing else can be named through the URL. An export's files never change, so a response is
cacheable for a year and its ETag is the sha256 the manifest gives."""

from __future__ import annotations

import logging
import mimetypes
import re
from pathlib import Path, PurePosixPath

from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import signing, storage
from ..auth import request_token
from ..models import Export, ExportFile
from . import reads

logger = logging.getLogger(__name__)

CACHE_CONTROL = "private, max-age=31536000, immutable"
CHUNK = 256 * 1024
RETRY_AFTER_S = 5
CONTENT_TYPES = {
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
    ".parquet": "application/vnd.apache.parquet",
    ".tar": "application/x-tar",
    ".md": "text/markdown; charset=utf-8",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_type_for(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def file_api_path(export: Export, path: str) -> str:
    """The file's URL path under /api/v1/ (the export's own id, never `latest`)."""
    return reverse("api-export-file", kwargs={"dataset_id": export.dataset_id, "export_id": export.pk, "file_path": path})


# --- HTTP details -----------------------------------------------------------------------------------

def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match: weak comparison, `*` matches any."""
    values = [v.strip() for v in header.split(",") if v.strip()]
    return "*" in values or any(v.removeprefix("W/") == etag for v in values)


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One byte range of `Range: bytes=...` as (first, last) inclusive; "unsatisfiable" when no byte of the
    file is in it; None when the header is absent, malformed or asks for several ranges (then the whole file
    is sent, as RFC 9110 allows)."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if last == "" else int(last)
    if last != "" and end < start:
        return None  # invalid: ignored
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _read_span(path: Path, start: int, length: int):
    with path.open("rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


def serve_file(request, export: Export, row: ExportFile, disk_path: Path):
    """200, 206, 304 or 416 for one export file; HEAD answers the same headers without a body."""
    try:
        size = disk_path.stat().st_size
    except OSError:
        logger.error("export file missing on disk", extra={"export": export.pk, "path": row.path})
        return _error(status.HTTP_404_NOT_FOUND, "file_missing", _("The file is listed but missing on the server."))
    etag = f'"{row.sha256}"'
    name = PurePosixPath(row.path).name
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition_header(True, name),
    }
    content_type = content_type_for(row.path)

    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and _etag_matches(if_none_match, etag):
        response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        # RFC 9110 8.6: a 304 may carry Content-Length only as the size a 200 would have sent (never "0").
        response["Content-Length"] = str(size)
        for key, value in headers.items():
            response[key] = value
        return response

    wanted = parse_range(request.headers.get("Range", ""), size)
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the client holds another version: send the whole file
    if wanted == "unsatisfiable":
        response = HttpResponse(status=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE)
        response["Content-Range"] = f"bytes */{size}"
        for key, value in headers.items():
            response[key] = value
        return response

    head = request.method == "HEAD"
    if wanted is None:
        response = HttpResponse(content_type=content_type) if head else FileResponse(disk_path.open("rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    else:
        start, end = wanted
        length = end - start + 1
        if head:
            response = HttpResponse(content_type=content_type, status=status.HTTP_206_PARTIAL_CONTENT)
        else:
            response = StreamingHttpResponse(_read_span(disk_path, start, length), content_type=content_type,
                                             status=status.HTTP_206_PARTIAL_CONTENT)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(length)
    for key, value in headers.items():
        response[key] = value
    return response


def _error(code: int, error_code: str, detail: str, **extra) -> Response:
    return Response({"code": error_code, "detail": detail, **extra}, status=code)


def not_ready(export: Export) -> Response | None:
    """409 while the export is queued or building, 410 when it failed (it will never have files)."""
    if export.status in (Export.Status.QUEUED, Export.Status.BUILDING):
        response = _error(status.HTTP_409_CONFLICT, "export_not_ready", _("The export is still being built: try again when it has finished."),
                          status=export.status)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
    if export.status == Export.Status.FAILED:
        return _error(status.HTTP_410_GONE, "export_failed", _("The export failed and has no files."), status=export.status)
    return None


def _disk_path(export: Export, path: str) -> Path | None:
    """The file on disk, or None when the stored path would lead outside the export's folder."""
    root = Path(storage.export_dir(export)).resolve()
    try:
        candidate = Path(storage.export_file_path(export, path)).resolve()
    except ValueError:
        return None
    return candidate if candidate.is_relative_to(root) and candidate != root else None


# --- DRF plumbing -----------------------------------------------------------------------------------

class AnyAccept(BaseContentNegotiation):
    """A file answers whatever the client accepts (aiohttp, curl and browsers differ): no 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReadScope(permissions.BasePermission):
    """TokenScope's dataset check without its read-only check: signing a URL grants no more than reading
    the file, so a read-only job token may do it. Another dataset's token answers 404."""

    def has_permission(self, request, view):
        token = request_token(request)
        if token is not None and token.dataset_id is not None and int(view.kwargs["dataset_id"]) != token.dataset_id:
            raise Http404("No such dataset.")
        return True


class FileError(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    status = serializers.CharField(required=False, help_text="The export's status, for export_not_ready and export_failed.")


SIGNED_PARAMETERS = [
    OpenApiParameter("expires", int, description="Signed URL only: expiry, unix seconds."),
    OpenApiParameter("signer", int, description="Signed URL only: the user who signed it."),
    OpenApiParameter("signature", str, description="Signed URL only: HMAC-SHA256 over dataset, export, path, expiry and signer."),
    OpenApiParameter("Range", str, OpenApiParameter.HEADER, description="One byte range, e.g. bytes=0-1023 or bytes=-500."),
    OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description='The file\'s ETag ("<sha256>"): 304 when it matches.'),
    OpenApiParameter("If-Range", str, OpenApiParameter.HEADER, description="Honour Range only if the ETag still matches."),
]


class ExportFileApi(APIView):
    """One file of a finished export. Authenticated by a bearer token or session (owners and reviewers),
    or by a signed URL's `expires`, `signer` and `signature` instead (no header needed)."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = AnyAccept

    def get_permissions(self):
        if signing.is_signed(self.request.query_params):
            return [permissions.AllowAny()]  # the signature is checked in get()
        return super().get_permissions()

    @extend_schema(
        operation_id="export_file_get",
        parameters=SIGNED_PARAMETERS,
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The file; ETag, Content-Length, Accept-Ranges, Cache-Control immutable."),
            (206, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The asked byte range, with Content-Range."),
            304: OpenApiResponse(description="If-None-Match matched the ETag."),
            403: OpenApiResponse(FileError, description="signature_invalid, signature_expired (signed URLs)."),
            404: OpenApiResponse(FileError, description="No such dataset, export or file for you."),
            409: OpenApiResponse(FileError, description="export_not_ready: queued or building (Retry-After)."),
            410: OpenApiResponse(FileError, description="export_failed: the export failed and has no files."),
            416: OpenApiResponse(description="The range lies outside the file (Content-Range: bytes */size)."),
        },
    )
    def get(self, request, dataset_id: int, export_id: int, file_path: str):
        if signing.is_signed(request.query_params):
            try:
                signed = signing.verify(request.query_params, dataset_id=dataset_id, export_id=export_id, path=file_path)
            except signing.BadSignature as exc:
                return _error(status.HTTP_403_FORBIDDEN, exc.code, str(exc))
            export = reads.export_for_signed_url(dataset_id, export_id, signed.signer_id)
            if export is None:
                return _error(status.HTTP_403_FORBIDDEN, "signature_invalid", _("The signer can no longer read this dataset."))
        else:
            dataset = reads.exports_dataset(request.user, pk=dataset_id)
            export = reads.export_get(dataset, export_id, with_manifest=False)
        refused = not_ready(export)
        if refused is not None:
            return refused
        row = reads.export_file_get(export, file_path)
        disk_path = _disk_path(export, file_path) if row is not None else None
        if row is None or disk_path is None:
            return _error(status.HTTP_404_NOT_FOUND, "file_not_found", _("The export has no such file."))
        return serve_file(request, export, row, disk_path)


class SignInput(serializers.Serializer):
    expires_in = serializers.IntegerField(min_value=signing.MIN_SECONDS, max_value=signing.MAX_SECONDS, default=signing.DEFAULT_SECONDS,
                                          help_text="Seconds the URL is valid: 60 to 86400 (24 h), 3600 by default.")


class SignOutput(serializers.Serializer):
    url = serializers.URLField(help_text="GET or HEAD it without any header, until expires_at.")
    expires_at = serializers.DateTimeField()


class ExportFileSignApi(APIView):
    """A short-lived URL for one file of a finished export, for tools that cannot send a header. A read-only
    job token may ask for one; the URL stops working at its expiry or when its signer loses access."""

    parser_classes = [JSONParser]
    permission_classes = [permissions.IsAuthenticated, ReadScope]

    @extend_schema(
        operation_id="export_file_sign",
        request=SignInput,
        responses={200: SignOutput, 400: OpenApiResponse(description="`{field: [message]}`"),
                   404: OpenApiResponse(FileError), 409: OpenApiResponse(FileError), 410: OpenApiResponse(FileError)},
    )
    def post(self, request, dataset_id: int, export_id: int, file_path: str):
        dataset = reads.exports_dataset(request.user, pk=dataset_id)
        export = reads.export_get(dataset, export_id, with_manifest=False)
        data = SignInput(data=request.data if isinstance(request.data, dict) else {})
        data.is_valid(raise_exception=True)
        refused = not_ready(export)
        if refused is not None:
            return refused
        if reads.export_file_get(export, file_path) is None:
            return _error(status.HTTP_404_NOT_FOUND, "file_not_found", _("The export has no such file."))
        params, expires = signing.sign(dataset_id=dataset.pk, export_id=export.pk, path=file_path, signer_id=request.user.pk,
                                       seconds=data.validated_data["expires_in"])
        url = request.build_absolute_uri(file_api_path(export, file_path)) + "?" + signing.query_string(params)
        return Response(SignOutput({"url": url, "expires_at": signing.expiry_datetime(expires)}).data)
