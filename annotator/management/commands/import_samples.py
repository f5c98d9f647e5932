"""python manage.py import_samples DATASET PATH [--format ...] [--create] [--owner USER] [--map field=column]"""

from __future__ import annotations

import sys

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from annotator import formats, services
from annotator.forms import parse_columns
from annotator.models import Dataset, ImportJob


class Command(BaseCommand):
    help = "Import samples from a file into a dataset (all or nothing). Prints counts; exits non-zero on failure."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug.")
        parser.add_argument("path", help="File to import: JSON array, JSON Lines or CSV.")
        parser.add_argument("--format", default="auto", help=f"One of {', '.join(formats.FORMAT_CHOICES)} (default auto).")
        parser.add_argument("--create", action="store_true", help="Create the dataset if it does not exist.")
        parser.add_argument("--owner", help="Owner of a dataset made by --create (default: SFTDESK_ADMIN_USER if it exists).")
        parser.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN", help="CSV column mapping, repeatable.")

    def handle(self, *args, dataset: str, path: str, format: str, create: bool, owner: str | None, map: list[str], **options):
        if format not in formats.FORMAT_CHOICES:
            raise CommandError(f"unknown format {format!r}; choose one of {', '.join(formats.FORMAT_CHOICES)}")
        try:
            columns = parse_columns(",".join(map))
        except Exception as exc:  # forms.ValidationError
            raise CommandError(f"--map: {'; '.join(getattr(exc, 'messages', [str(exc)]))}") from None
        if Dataset._meta.db_table not in connection.introspection.table_names():
            raise CommandError("the database has no tables yet: run `make migrate` (or `make run`) first")
        ds = Dataset.objects.filter(slug=dataset).first()
        if ds is None and not create:
            raise CommandError(f"no dataset {dataset!r}; pass --create to make it")
        created = ds is None
        try:
            with transaction.atomic():  # a refused file leaves no new dataset behind
                if created:
                    ds = services.dataset_create(name=dataset, slug=dataset, owner=self._owner(owner))
                job = services.import_job_create(
                    user=None, dataset=ds, path=path, fmt=format, options={"columns": columns} if columns else {}, enqueue=False
                )
        except services.ImportRefused as exc:
            raise CommandError(str(exc)) from None
        if created:
            self.stderr.write(f"created dataset {ds.slug}")
        job = services.import_job_claim(job_id=job.pk)
        show = self.stderr.isatty() if hasattr(self.stderr, "isatty") else False

        def progress(_job, pct, counts):
            if show:
                sys.stderr.write(f"\r{pct:5.1f}%  {counts.records:,} records, {counts.imported:,} imported")
                sys.stderr.flush()

        job = services.import_job_run(job=job, on_progress=progress)
        if show:
            sys.stderr.write("\n")
        if job.status != ImportJob.Status.SUCCEEDED:
            for err in job.errors:
                self.stderr.write(f"{path}: {formats.format_error(err)}")
            if created:
                ds.delete()  # the dataset was made for this import; leave nothing half-made
                self.stderr.write(f"removed the new dataset {dataset}")
            raise CommandError(
                f"import failed with {job.error_count} error(s){' (first 100 shown)' if job.error_count >= settings.SFTDESK_IMPORT_MAX_ERRORS else ''}; nothing was imported"
            )
        self.stdout.write(
            f"{job.imported_count:,} imported, {job.duplicate_count:,} duplicates skipped, {job.records_total:,} records read "
            f"(format {job.detected_format}) into dataset {ds.slug}"
        )

    def _owner(self, username: str | None):
        User = get_user_model()
        name = username or settings.SFTDESK_ADMIN_USER
        user = User.objects.filter(username=name).first()
        if user is None and username:
            raise CommandError(f"no user {username!r}")
        if user is None:
            self.stderr.write(f"warning: no user {name!r}; the new dataset has no members yet")
        return user
