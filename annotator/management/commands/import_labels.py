"""python manage.py import_labels DATASET PATH [--format csv|jsonl] [--field NAME=CHOICE,CHOICE ...] [--dry-run]"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from annotator import services
from annotator.models import Dataset
from annotator.services.label_import import FORMATS


class Command(BaseCommand):
    help = (
        "Import labels made in another tool from CSV or JSON Lines (all or nothing). Columns: external_id, annotator, "
        "accuracy, completeness, conciseness, difficulty, verdict, error_tags, corrected_answer, comment, time_spent_s, "
        "the dataset's extra fields by name, created_at. Prints counts; exits non-zero listing every error."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug.")
        parser.add_argument("path", help="CSV (with a header row) or JSON Lines file.")
        parser.add_argument("--format", choices=FORMATS, help="csv or jsonl (default: from the file name's extension).")
        parser.add_argument(
            "--field", action="append", default=[], metavar="NAME=CHOICE,CHOICE",
            help="Add an extra nominal field to the dataset's annotation settings with the import, e.g. preference=0,1,2. Repeatable.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Check everything, write nothing.")

    def handle(self, *args, dataset: str, path: str, format: str | None, field: list[str], dry_run: bool, **options):
        fields: dict[str, list[str]] = {}
        for spec in field:
            try:
                name, choices = services.field_spec_parse(spec)
            except ValueError as exc:
                raise CommandError(f"--field: {exc}") from None
            if name in fields:
                raise CommandError(f"--field: {name} is given twice")
            fields[name] = choices
        if Dataset._meta.db_table not in connection.introspection.table_names():
            raise CommandError("the database has no tables yet: run `make migrate` (or `make run`) first")
        ds = Dataset.objects.filter(slug=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset {dataset!r}")
        try:
            result = services.labels_import(dataset=ds, path=path, fmt=format, fields=fields, dry_run=dry_run)
        except services.LabelImportError as exc:
            for line in exc.errors:
                self.stderr.write(line)
            more = f" (first {len(exc.errors)} shown)" if exc.total > len(exc.errors) or exc.total >= settings.SFTDESK_IMPORT_MAX_ERRORS else ""
            raise CommandError(f"import failed with {exc.total} error(s){more}; nothing was written") from None
        if result.fields_added and not dry_run:
            self.stderr.write(f"annotation settings of {ds.slug}: extra field(s) {', '.join(result.fields_added)} added")
        self.stdout.write(result.summary())
