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


def worker_env(**overrides: str) -> dict[str, str]:
    """The environment of a worker process pointed at the test database and a test Redis database."""
    from django.conf import settings
    from django.db import connection

    parsed = urlparse(os.environ["DATABASE_URL"])
    db_url = urlunparse(parsed._replace(path="/" + connection.settings_dict["NAME"]))
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": db_url,
        "REDIS_URL": settings.REDIS_URL,
        "SFTDESK_VAR_DIR": str(settings.VAR_DIR),
        "SFTDESK_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **overrides,
    }


def start_worker(env: dict[str, str], log: Path, name: str, *, timeout: float = 60, queues: str = "cpu,gpu") -> subprocess.Popen:
    """`celery -A config worker` on `queues` in its own process group (so a test can kill it and its
    pool with one signal); returns once it answers a ping on its broker."""
    from celery import Celery

    with open(log, "a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--concurrency=1",
             "-n", f"{name}-{os.getpid()}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    probe = Celery(broker=env["REDIS_URL"], set_as_current=False)  # never replace the project app for shared tasks
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the Celery worker exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            if probe.control.ping(timeout=0.5, destination=[f"{name}-{os.getpid()}@{os.uname().nodename}"]):
                break
        else:
            os.killpg(proc.pid, 9)
            pytest.fail(f"the Celery worker did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")
    finally:
        probe.close()
    proc.log_path = log
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def wait_db_sessions_closed(django_db_blocker) -> None:
    """Let PostgreSQL notice a worker's connections are gone before the test database is dropped."""
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        for _ in range(100):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.1)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A worker on queues cpu and gpu, pointed at the test database, for the whole session."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # a test-only Redis database: no stale tasks
    with django_db_blocker.unblock():
        env = worker_env()
    proc = start_worker(env, tmp_path_factory.mktemp("worker") / "worker.log", "pytest")
    yield proc
    stop_worker(proc)
    wait_db_sessions_closed(django_db_blocker)
