"""python manage.py score_report DATASET [--flagged] [--format jsonl|csv] [--out FILE]"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Dataset
from scoring.report import report_lines


class Command(BaseCommand):
    help = "Write one line per sample: external_id, every metric value, its flags and reasons."

    def add_arguments(self, parser):
        parser.add_argument("dataset")
        parser.add_argument("--flagged", action="store_true", help="Only samples with at least one flag.")
        parser.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
        parser.add_argument("--out", help="File to write (default: standard output).")

    def handle(self, *args, dataset, flagged, format, out, **options):
        ds = Dataset.objects.filter(slug=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset {dataset!r}")
        stream = open(out, "w", encoding="utf-8", newline="") if out else None  # noqa: SIM115
        write = stream.write if stream else self.stdout.write
        try:
            for line in report_lines(ds, fmt=format, flagged=flagged):
                if stream:
                    write(line)
                else:
                    self.stdout.write(line, ending="")
        finally:
            if stream:
                stream.close()
        if out:
            sys.stderr.write(f"wrote {out}\n")
