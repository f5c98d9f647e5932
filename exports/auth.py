"""DRF authentication and permission for ApiToken: `Authorization: Bearer <key>` (or `Token <key>`).
A key in the query string is refused: URLs end up in logs and browser history."""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions, permissions

from .models import ApiToken
from .tokens import api_token_resolve, api_token_touch

QUERY_KEYS = ("token", "access_token", "api_key", "key")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        if any(k in request.query_params for k in QUERY_KEYS) and "HTTP_AUTHORIZATION" not in request.META:
            raise exceptions.AuthenticationFailed(_("Tokens in the URL are refused; send the header Authorization: Bearer <key>."))
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower().decode() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header: expected 'Bearer <key>'."))
        token = api_token_resolve(parts[1].decode("latin-1"))
        if token is None:
            raise exceptions.AuthenticationFailed(_("Unknown token."))
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This token was revoked."))
        if not token.active:
            raise exceptions.AuthenticationFailed(_("This token has expired."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The token's user is inactive."))
        api_token_touch(token)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def request_token(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class TokenScope(permissions.BasePermission):
    """A read-only token may only read; a dataset token reaches only its dataset (others answer 404,
    like any dataset that is not yours) and cannot create datasets."""

    message = _("This token is read-only.")

    def has_permission(self, request, view):
        token = request_token(request)
        if token is None:
            return True
        if request.method not in permissions.SAFE_METHODS and not token.can_write:
            return False
        dataset_id = view.kwargs.get("dataset_id")
        if token.dataset_id is not None:
            if dataset_id is not None and int(dataset_id) != token.dataset_id:
                raise Http404("No such dataset.")
            if dataset_id is None and request.method not in permissions.SAFE_METHODS:
                self.message = _("A token for one dataset cannot create datasets.")
                return False
        return True
