"""The embedded default, as `make run` starts it: SQLite and kombu's filesystem broker under
SFTDESK_VAR_DIR, and a real Celery worker process. Needs no server, so it runs in the unit pass."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, time
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import transaction
    from annotator import services
    from annotator.models import ImportJob, Sample
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    ds = services.dataset_create(name="Embedded", slug="embedded", owner=admin)
    data = "".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\\n" for i in range(500)).encode()
    with transaction.atomic():
        job = services.import_job_create(user=admin, dataset=ds, upload=SimpleUploadedFile("e.jsonl", data))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished:
            break
        time.sleep(0.2)
    print(json.dumps({"status": job.status, "imported": job.imported_count, "samples": Sample.objects.filter(dataset=ds).count()}))
    """
)


def test_embedded_default_runs_an_import_through_a_real_worker(tmp_path):
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SFTDESK_MEDIA_ROOT")}
    env.update(SFTDESK_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="config.settings.local", SFTDESK_ADMIN_PASSWORD="pw-embedded")

    def manage(*args, timeout=120):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=True)

    manage("migrate", "--noinput")
    manage("ensure_owner")
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "cpu,gpu", "--concurrency=1", "--loglevel=INFO"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        result = manage("shell", "-c", SCRIPT, timeout=150)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    summary = result.stdout.strip().splitlines()[-1]
    assert summary == '{"status": "succeeded", "imported": 500, "samples": 500}', (tmp_path / "worker.log").read_text()[-3000:]
    assert (var / "db.sqlite3").exists()
    assert (var / "broker" / "out").is_dir()
    assert (var / "broker" / "control").is_dir()
    assert not (ROOT / "control").exists()  # nothing written outside SFTDESK_VAR_DIR
    assert list((var / "media" / "imports").rglob("e*.jsonl"))
