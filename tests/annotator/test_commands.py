"""Command-line tools: import_samples, ensure_owner, load_demo."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotator.management.commands.load_demo import DEMO_FILE
from annotator.models import Dataset, ImportJob, Membership, Sample

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_samples_creates_the_dataset_and_prints_counts(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{i % 3}", "output": "a"}) + "\n" for i in range(5)))
    out, _ = run("import_samples", "cli", str(path), "--create")
    assert out.strip() == "3 imported, 2 duplicates skipped, 5 records read (format alpaca) into dataset cli"
    assert Sample.objects.filter(dataset__slug="cli").count() == 3
    out, _ = run("import_samples", "cli", str(path))
    assert out.startswith("0 imported, 5 duplicates skipped")


def test_import_samples_refuses_a_broken_line_7_and_imports_nothing(tmp_path):
    Dataset.objects.create(name="t", slug="t")
    lines = [json.dumps({"instruction": f"q{i}", "output": "a"}) for i in range(9)]
    lines[6] = '{"instruction": "q6", "output": "a"'
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    err = StringIO()
    with pytest.raises(CommandError, match="import failed with 1 error"):
        call_command("import_samples", "t", str(path), stdout=StringIO(), stderr=err)
    assert f"{path}: line 7, record 6: invalid JSON" in err.getvalue()
    assert Sample.objects.count() == 0


def test_import_samples_needs_create_for_a_new_dataset_and_a_real_file(tmp_path):
    with pytest.raises(CommandError, match="no dataset 'nope'; pass --create"):
        run("import_samples", "nope", str(tmp_path / "x.json"))
    Dataset.objects.create(name="t", slug="t")
    with pytest.raises(CommandError, match="no such file"):
        run("import_samples", "t", str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="unknown format 'xml'"):
        run("import_samples", "t", str(tmp_path / "missing.json"), "--format", "xml")
    assert ImportJob.objects.count() == 0


def test_import_samples_csv_with_map(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("q,a\nHi?,Hello.\n")
    out, _ = run("import_samples", "c", str(path), "--create", "--map", "instruction=q", "--map", "output=a")
    assert out.startswith("1 imported")


def test_ensure_owner_generates_a_password_once(monkeypatch):
    monkeypatch.delenv("SFTDESK_ADMIN_PASSWORD", raising=False)
    out, _ = run("ensure_owner")
    password = out.strip().rsplit(": ", 1)[1]
    assert len(password) >= 12
    assert authenticate(username="admin", password=password) is not None
    again, _ = run("ensure_owner")
    assert password not in again
    assert "exists" in again


def test_ensure_owner_takes_the_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("SFTDESK_ADMIN_PASSWORD", "s3cret-from-env")
    out, _ = run("ensure_owner")
    assert "s3cret-from-env" not in out
    user = authenticate(username="admin", password="s3cret-from-env")
    assert user is not None and user.is_superuser


def test_load_demo_imports_the_shipped_file_once(monkeypatch):
    monkeypatch.setenv("SFTDESK_ADMIN_PASSWORD", "pw")
    run("ensure_owner")
    records = [json.loads(line) for line in DEMO_FILE.read_text().splitlines() if line.strip()]
    out, _ = run("load_demo")
    demo = Dataset.objects.get(slug="demo")
    n = Sample.objects.filter(dataset=demo).count()
    assert 55 <= len(records) <= 70
    assert n == len(records) - 1  # the deliberate exact duplicate is skipped
    assert out.strip() == f"demo dataset: {n} new samples, 1 duplicates skipped"
    assert {"zh", "en"} <= set(Sample.objects.filter(dataset=demo).values_list("language", flat=True))
    assert len(set(Sample.objects.filter(dataset=demo).values_list("task_type", flat=True))) >= 5
    assert Membership.objects.get(dataset=demo).user == get_user_model().objects.get(username="admin")
    out, _ = run("load_demo")
    assert out.strip() == f"demo dataset: 0 new samples, {len(records)} duplicates skipped"
    assert Sample.objects.filter(dataset=demo).count() == n


def test_create_with_a_missing_or_bad_file_leaves_no_dataset(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("import_samples", "fresh", str(tmp_path / "missing.json"), "--create")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q"}\n')
    with pytest.raises(CommandError, match="import failed"):
        run("import_samples", "fresh", str(bad), "--create")
    assert not Dataset.objects.filter(slug="fresh").exists()
    assert ImportJob.objects.count() == 0
