"""The upload cap is enforced while the body streams in, whatever its Content-Length says."""

from __future__ import annotations

import pytest
from django.core.files.uploadhandler import StopUpload
from django.test import RequestFactory

from annotator.uploads import CappedUploadHandler


def test_declared_length_over_the_cap_stops_before_any_data(settings):
    settings.SFTDESK_IMPORT_MAX_BYTES = 100
    request = RequestFactory().post("/")
    handler = CappedUploadHandler(request)
    post, files = handler.handle_raw_input(None, {}, 100 + 1024 * 1024 + 1, b"b")
    assert (dict(post), dict(files)) == ({}, {})
    assert request.upload_refused == "The upload is 1,048,677 bytes, over the import limit of 100 bytes (SFTDESK_IMPORT_MAX_BYTES)."


def test_chunks_are_counted_when_the_length_is_not_declared(settings):
    settings.SFTDESK_IMPORT_MAX_BYTES = 100
    request = RequestFactory().post("/")
    handler = CappedUploadHandler(request)
    assert handler.handle_raw_input(None, {}, 0, b"b") is None
    assert handler.receive_data_chunk(b"x" * 60, 0) == b"x" * 60
    assert handler.receive_data_chunk(b"x" * 40, 60) == b"x" * 40
    with pytest.raises(StopUpload):
        handler.receive_data_chunk(b"x", 100)
    assert "101 bytes" in request.upload_refused
