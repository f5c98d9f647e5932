"""An upload handler that enforces SFTDESK_IMPORT_MAX_BYTES while the body streams in, before any of
it is spooled to disk. It runs first in FILE_UPLOAD_HANDLERS, so it also guards bodies that are
parsed before a view runs (CSRF checks read request.POST)."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from django.utils.translation import gettext as _

ENVELOPE_BYTES = 1024 * 1024  # room for the multipart envelope and the small form fields


def refusal_message(size: int, cap: int) -> str:
    return _("The upload is %(size)s bytes, over the import limit of %(cap)s bytes (SFTDESK_IMPORT_MAX_BYTES).") % {
        "size": f"{size:,}", "cap": f"{cap:,}",
    }


class CappedUploadHandler(FileUploadHandler):
    """Stops the upload (and marks the request with `upload_refused`) once the declared or the
    received size passes the cap. Views answer 413 with that message."""

    def __init__(self, request=None):
        super().__init__(request)
        self.cap = settings.SFTDESK_IMPORT_MAX_BYTES
        self.received = 0

    def _mark(self, size: int) -> None:
        if self.request is not None:
            self.request.upload_refused = refusal_message(size, self.cap)

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.cap + ENVELOPE_BYTES:
            self._mark(content_length)
            return QueryDict(encoding=encoding), MultiValueDict()  # the body is never read
        return None

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.cap:
            self._mark(self.received)
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None
