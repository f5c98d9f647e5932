"""Tests: SQLite in memory unless DATABASE_URL points at PostgreSQL; Celery runs tasks in-process.

Integration tests (tests/integration) start a real worker against Redis and PostgreSQL instead."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Tests write nothing into the checkout's var/: a temporary folder, removed at exit, unless one is
# given (worker processes started by the tests inherit it through the environment).
if not os.environ.get("SFTDESK_VAR_DIR"):
    os.environ["SFTDESK_VAR_DIR"] = tempfile.mkdtemp(prefix="sftdesk-var-")
    atexit.register(shutil.rmtree, os.environ["SFTDESK_VAR_DIR"], ignore_errors=True)

from .base import *  # noqa: E402, F403
from .base import STATIC_ROOT  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = Path(os.environ.get("SFTDESK_MEDIA_ROOT") or Path(os.environ["SFTDESK_VAR_DIR"]) / "media")
EXPORT_ROOT = Path(os.environ.get("SFTDESK_EXPORT_ROOT") or Path(os.environ["SFTDESK_VAR_DIR"]) / "exports")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
if not os.environ.get("REDIS_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
