"""Short-lived signed URLs for one export file, for tools that cannot send an Authorization header
(Axolotl, a URL handed to `datasets.load_dataset`).

    .../datasets/3/exports/12/files/data/train.messages.jsonl?expires=1767225600&signer=7&signature=<hex>

`signature` is an HMAC-SHA256 (keyed by SECRET_KEY through `salted_hmac`, with its own salt) over the
dataset id, the export id, the file path, the expiry (unix seconds) and the id of the user who signed.
It grants a GET or HEAD of that one file until `expires`, and only while the signer still may read the
dataset's exports. The parameters are deliberately not called token/key/access_token/api_key: those are
refused in URLs (see `exports.auth`). No Django request or model is needed to sign or check."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

SALT = "sftdesk.exports.signed-file-url"
DEFAULT_SECONDS = 3600
MIN_SECONDS = 60
MAX_SECONDS = 24 * 3600
PARAMS = ("expires", "signer", "signature")


class BadSignature(Exception):
    """A signed URL that does not hold: `code` is one of signature_invalid, signature_expired."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class SignedFile:
    """What a valid signature names."""

    dataset_id: int
    export_id: int
    path: str
    expires: int
    signer_id: int


def _message(dataset_id: int, export_id: int, path: str, expires: int, signer_id: int) -> str:
    # Fields joined with a newline: a path cannot hold one (checked when signing), so no two
    # different field tuples give the same message.
    return f"v1\n{int(dataset_id)}\n{int(export_id)}\n{path}\n{int(expires)}\n{int(signer_id)}"


def _digest(message: str, secret: str | None = None) -> str:
    return salted_hmac(SALT, message, secret=secret, algorithm="sha256").hexdigest()


def sign(*, dataset_id: int, export_id: int, path: str, signer_id: int, seconds: int = DEFAULT_SECONDS,
         now: float | None = None) -> tuple[dict[str, str], int]:
    """The query parameters for a signed URL of one file, and its expiry (unix seconds)."""
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"a signed URL lives {MIN_SECONDS} to {MAX_SECONDS} seconds, not {seconds}")
    if "\n" in path or "\r" in path:
        raise ValueError("a file path cannot hold a line break")
    expires = int(now if now is not None else time.time()) + int(seconds)
    signature = _digest(_message(dataset_id, export_id, path, expires, signer_id))
    return {"expires": str(expires), "signer": str(int(signer_id)), "signature": signature}, expires


def query_string(params: dict[str, str]) -> str:
    return urlencode([(k, params[k]) for k in PARAMS])


def is_signed(query: dict | object) -> bool:
    """Whether a request's query carries signed-URL parameters (any of them: a partial set is refused)."""
    return any(name in query for name in PARAMS)


def verify(query, *, dataset_id: int, export_id: int, path: str, now: float | None = None) -> SignedFile:
    """Check the signed-URL parameters of a request for this file; raise BadSignature when they do not hold.
    A signature for another dataset, export or path, or with any field changed, is invalid."""
    try:
        expires = int(query.get("expires", ""))
        signer_id = int(query.get("signer", ""))
    except (TypeError, ValueError):
        raise BadSignature("signature_invalid", _("The signed URL is incomplete or malformed.")) from None
    given = str(query.get("signature", ""))
    message = _message(dataset_id, export_id, path, expires, signer_id)
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    if not given or not any(constant_time_compare(given, _digest(message, secret)) for secret in secrets):
        raise BadSignature("signature_invalid", _("The signature does not match this file."))
    if expires <= int(now if now is not None else time.time()):
        raise BadSignature("signature_expired", _("The signed URL has expired: ask for a new one."))
    return SignedFile(dataset_id=int(dataset_id), export_id=int(export_id), path=path, expires=expires, signer_id=signer_id)


def expiry_datetime(expires: int) -> datetime:
    return datetime.fromtimestamp(expires, tz=UTC)
