"""Load the demo dataset the project ships (annotator/demo/demo_samples.jsonl). Safe to run again."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotator import services
from annotator.models import Dataset, ImportJob, Membership

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "demo_samples.jsonl"
GUIDELINES = """\
# How to judge a sample

- **Accuracy**: is the answer correct? Check facts, numbers and code.
- **Completeness**: does it answer every part of the instruction?
- **Conciseness and clarity**: no padding, no repetition, easy to follow.

Mark answers that are empty, refuse a harmless request, are cut off, or depend on a link the model
cannot open. 空回答、拒答、被截断、依赖无法访问的链接的样本都要标记出来。
"""


class Command(BaseCommand):
    help = "Create the 'demo' dataset owned by the owner account and import the shipped demo samples."

    def handle(self, *args, **options):
        User = get_user_model()
        owner = User.objects.filter(username=settings.SFTDESK_ADMIN_USER).first()
        dataset = Dataset.objects.filter(slug="demo").first()
        if dataset is None:
            dataset = services.dataset_create(
                name="Demo: mixed Chinese and English", slug="demo", owner=owner,
                description="About 60 samples over several task types, with deliberate flaws to find.", guidelines=GUIDELINES,
            )
        elif owner is not None:
            Membership.objects.get_or_create(user=owner, dataset=dataset, defaults={"role": Membership.Role.OWNER})
        job = services.import_job_create(user=None, dataset=dataset, path=DEMO_FILE, enqueue=False)
        job = services.import_job_run(job=services.import_job_claim(job_id=job.pk))
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(f"demo import failed: {job.errors}")
        self.stdout.write(f"demo dataset: {job.imported_count} new samples, {job.duplicate_count} duplicates skipped")
