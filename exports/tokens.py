"""Services for API tokens: make one (the key is returned once), revoke one, resolve a presented key."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from annotator.models import Dataset
from annotator.services import check_dataset_role

from .models import ApiToken

KEY_PREFIX = "sft_"
MAX_DAYS = 366


def hash_key(key: str) -> str:
    # The key carries 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(
    *, user: AbstractBaseUser, name: str, dataset: Dataset | None = None, can_write: bool = False, days: int = 90
) -> tuple[ApiToken, str]:
    """A new token and its key. The key is not stored and cannot be shown again."""
    if dataset is not None:
        check_dataset_role(user=user, dataset=dataset, roles=["owner", "reviewer", "annotator"])
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"a token lives 1 to {MAX_DAYS} days, not {days}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name.strip()[:100] or "token", prefix=key[:12], key_hash=hash_key(key), dataset=dataset,
            can_write=can_write, expires_at=timezone.now() + timedelta(days=days),
        )
    return token, key


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise Http404("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_resolve(key: str) -> ApiToken | None:
    """The token for a presented key if it exists (active or not), with its user."""
    return ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()


def api_token_touch(token: ApiToken) -> None:
    """Record use, at most once a minute per token."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def token_list(user: AbstractBaseUser):
    return ApiToken.objects.filter(user=user).select_related("dataset").order_by("-created_at", "-id")
