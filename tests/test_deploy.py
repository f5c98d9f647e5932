"""Production settings pass Django's deployment checks, and the schema has no warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.production", DJANGO_SECRET_KEY="x" * 20 + "-long-random-" + "y" * 40,
               SFTDESK_VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_celery_queues_cpu_and_gpu_route_to_themselves():
    from django.conf import settings

    from config.celery_app import app

    queues = {q.name: (q.exchange.name, q.routing_key) for q in settings.CELERY_TASK_QUEUES}
    assert queues == {"cpu": ("cpu", "cpu"), "gpu": ("gpu", "gpu")}
    assert app.amqp.router.route({}, "annotator.tasks.import_run")["queue"].name == "cpu"
    assert app.amqp.router.route({"queue": "gpu"}, "scoring.tasks.anything")["queue"].routing_key == "gpu"
