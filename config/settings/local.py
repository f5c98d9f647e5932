"""The embedded default: SQLite and a filesystem broker under var/, debug pages on."""

from .base import *  # noqa: F403
from .base import STATIC_ROOT, env_bool

DEBUG = env_bool("SFTDESK_DEBUG", True)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from the finders here; collectstatic is for production
WHITENOISE_USE_FINDERS = True
