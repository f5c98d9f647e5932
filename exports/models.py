"""API tokens for people and fine-tuning jobs (export specs and snapshots arrive with their issue)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ApiToken(models.Model):
    """A bearer token. Only its sha256 is stored; the key is shown once, when it is made. Read-only
    unless `can_write`; limited to one dataset when `dataset` is set; always expiring; revocable."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, help_text=_("The key's first characters, to recognise it."))
    key_hash = models.CharField(max_length=64, unique=True)
    dataset = models.ForeignKey("annotator.Dataset", null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens",
                                help_text=_("Empty: every dataset the user belongs to."))
    can_write = models.BooleanField(_("can write"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
