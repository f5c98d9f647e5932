"""Settings shared by every environment. Everything that differs between machines comes from the
environment; see the README's Configuration table."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


# Everything the embedded default writes lives in this one folder.
VAR_DIR = Path(os.environ.get("SFTDESK_VAR_DIR") or BASE_DIR / "var").resolve()


def _local_secret_key() -> str:
    """A per-installation key kept under var/, so sessions survive restarts without a fixed default."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _local_secret_key()
DEBUG = env_bool("SFTDESK_DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("SFTDESK_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("SFTDESK_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "annotator",
    "reviews",
    "scoring",
    "exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

SFTDESK_CSP_EXEMPT = ("/api/docs/", "/admin/")
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: PostgreSQL from DATABASE_URL, else SQLite under var/ (WAL, so pages read while a worker writes).
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: import progress is written here by workers and read by pages, so it must be shared.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotator:dataset_list"
LOGOUT_REDIRECT_URL = "login"

# Languages: chosen from the browser's Accept-Language, switchable in the page.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("SFTDESK_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(os.environ.get("SFTDESK_MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "media/"  # never served: uploads are read by workers, not published
# Built exports: immutable files under <root>/<dataset id>/<export id>/, served by the pull API.
EXPORT_ROOT = Path(os.environ.get("SFTDESK_EXPORT_ROOT") or VAR_DIR / "exports")

# Uploads stream to a temporary file past 2.5 MB; the first handler refuses bodies over the cap
# while they arrive, before anything is spooled.
CSRF_FAILURE_VIEW = "annotator.views.csrf_failure"
FILE_UPLOAD_HANDLERS = [
    "annotator.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
SFTDESK_IMPORT_MAX_BYTES = env_int("SFTDESK_IMPORT_MAX_BYTES", 2 * 1024**3)
SFTDESK_IMPORT_MAX_RECORD_BYTES = env_int("SFTDESK_IMPORT_MAX_RECORD_BYTES", 64 * 1024**2)
SFTDESK_IMPORT_MAX_FIELD_CHARS = env_int("SFTDESK_IMPORT_MAX_FIELD_CHARS", 1_000_000)
SFTDESK_IMPORT_BATCH_SIZE = env_int("SFTDESK_IMPORT_BATCH_SIZE", 2000)
SFTDESK_IMPORT_MAX_ERRORS = 100
SFTDESK_ADMIN_USER = os.environ.get("SFTDESK_ADMIN_USER", "admin")

# Scoring: models are local paths (nothing is downloaded). Empty embedder = the bundled all-MiniLM-L6-v2.
SFTDESK_EMBEDDER = os.environ.get("SFTDESK_EMBEDDER", "")
# The languages (Sample.language codes) the embedder understands; "*" = every language. The bundled
# all-MiniLM-L6-v2 is English-only: its similarities on Chinese text are noise.
SFTDESK_EMBEDDER_LANGUAGES = os.environ.get("SFTDESK_EMBEDDER_LANGUAGES") or ("*" if SFTDESK_EMBEDDER else "en")
SFTDESK_CAUSAL_LM = os.environ.get("SFTDESK_CAUSAL_LM", "")
SFTDESK_REWARD_MODEL = os.environ.get("SFTDESK_REWARD_MODEL", "")  # a judge with a sequence-classification head
SFTDESK_REWARD_THRESHOLD = float(os.environ["SFTDESK_REWARD_THRESHOLD"]) if os.environ.get("SFTDESK_REWARD_THRESHOLD") else None
SFTDESK_SCORING_CHUNK_SIZE = env_int("SFTDESK_SCORING_CHUNK_SIZE", 2000)
# A run whose work has neither started nor finished for this long says which queue it waits on.
SFTDESK_SCORING_STALL_SECONDS = env_int("SFTDESK_SCORING_STALL_SECONDS", 120)

# Celery: Redis when REDIS_URL is set, else kombu's filesystem transport under var/ (no server).
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("cpu", "gpu"))
CELERY_TASK_DEFAULT_EXCHANGE = "cpu"
CELERY_TASK_DEFAULT_ROUTING_KEY = "cpu"
CELERY_TASK_ROUTES = {"scoring.tasks.gpu_*": {"queue": "gpu"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # A task a dead worker held comes back after this many seconds (keep it above the longest task).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("SFTDESK_BROKER_VISIBILITY_TIMEOUT", 6 * 3600)}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "exports.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "exports.auth.TokenScope"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "sftdesk API",
    "DESCRIPTION": "Curate instruction-tuning data: datasets, samples and imports.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SFTDESK_LOG_LEVEL", "INFO")},
}
