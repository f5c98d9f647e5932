"""The Celery application. Broker and queues come from Django settings (CELERY_ namespace)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("sftdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
