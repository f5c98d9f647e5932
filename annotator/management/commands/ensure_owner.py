"""Create the owner account once. The password comes from SFTDESK_ADMIN_PASSWORD or is generated and
printed this one time; there is never a fixed default."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the owner (superuser) account if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=settings.SFTDESK_ADMIN_USER)

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"owner account {username!r} exists (reset its password with: python manage.py changepassword {username})")
            return
        password = os.environ.get("SFTDESK_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if os.environ.get("SFTDESK_ADMIN_PASSWORD"):
            self.stdout.write(f"created owner account {username!r} with the password from SFTDESK_ADMIN_PASSWORD")
        else:
            self.stdout.write(self.style.WARNING(f"created owner account {username!r}; password (shown once): {password}"))
