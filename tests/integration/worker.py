"""A real Celery worker process against the PostgreSQL test database and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start `celery -A config worker` on queues cpu and gpu, pointed at the test database, and
    wait until it answers a ping. Its log is printed if a test fails to get a result."""
    import redis
    from django.conf import settings
    from django.db import connection

    from config.celery_app import app

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # a test-only Redis database: no stale tasks
    parsed = urlparse(os.environ["DATABASE_URL"])
    db_url = urlunparse(parsed._replace(path="/" + connection.settings_dict["NAME"]))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": db_url,
        "REDIS_URL": settings.REDIS_URL,
        "SFTDESK_VAR_DIR": str(settings.VAR_DIR),
        "SFTDESK_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "cpu,gpu", "--concurrency=1",
             "-n", f"pytest-{os.getpid()}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Celery worker exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if app.control.ping(timeout=0.5):
            break
    else:
        proc.kill()
        pytest.fail(f"the Celery worker did not answer within 60 s:\n{log.read_text()[-4000:]}")
    proc.log_path = log
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    # Let PostgreSQL notice the worker's connections are gone before the test database is dropped.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        for _ in range(100):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.1)
