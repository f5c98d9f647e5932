"""Content-Security-Policy: scripts, styles, images and connections from our own origin only."""

from __future__ import annotations

from django.conf import settings

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every response except the paths in SFTDESK_CSP_EXEMPT (Swagger UI and the
    Django admin, which use inline scripts)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.exempt = tuple(getattr(settings, "SFTDESK_CSP_EXEMPT", ()))

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(self.exempt):
            response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
