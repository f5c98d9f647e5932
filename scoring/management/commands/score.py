"""python manage.py score DATASET [--metrics all|NAME,...] [--wait] [--inline]"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Dataset
from scoring import services
from scoring.models import ScoringRun
from scoring.selectors import run_summary_lines, run_waiting


class Command(BaseCommand):
    help = "Start a scoring run on the workers; --wait prints progress and the summary; --inline runs it here."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug.")
        parser.add_argument("--metrics", default="all", help=f"all, or a comma-separated list of: {', '.join(services.METRIC_GROUPS)}")
        parser.add_argument("--wait", action="store_true", help="Wait for the workers and print the summary.")
        parser.add_argument("--inline", action="store_true", help="Compute in this process instead of the workers.")

    def handle(self, *args, dataset, metrics, wait, inline, **options):
        ds = Dataset.objects.filter(slug=dataset).first()
        if ds is None:
            raise CommandError(f"no dataset {dataset!r}")
        try:
            run = services.run_create(user=None, dataset=ds, metrics=metrics, enqueue=not inline)
        except services.ScoringRefused as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"scoring run {run.pk}: {', '.join(run.metrics)} on {run.samples_total:,} samples (stages: {', '.join(run.stages)})")
        if inline:
            run = services.run_inline(run_id=run.pk, on_progress=lambda r: self.stderr.write(f"  {r.stage}: {r.progress:5.1f}%"))
        elif wait:
            last, warned = None, None
            while not run.finished:
                time.sleep(1)
                run.refresh_from_db()
                line = f"  {run.stage or 'queued'}: {run.progress:5.1f}%"
                if line != last:
                    self.stderr.write(line)
                    last = line
                waiting = run_waiting(run)
                if waiting and (waiting["queue"], waiting["stage"], waiting["taken"]) != warned:
                    warned = (waiting["queue"], waiting["stage"], waiting["taken"])
                    start = "make worker-gpu" if waiting["queue"] == "gpu" else "make worker"
                    what = ("no worker has taken its work" if not waiting["taken"]
                            else f"nothing has finished ({waiting['in_progress']} in progress)")
                    self.stderr.write(f"  waiting on the {waiting['queue']} queue for {waiting['idle_seconds']} s: {what}; "
                                      f"start a worker for it: {start}")
        else:
            self.stdout.write(f"run {run.pk} queued; follow it with: python manage.py score_report {ds.slug} or on the dataset's quality page")
            return
        for line in run_summary_lines(run):
            self.stdout.write(line)
        if run.status != ScoringRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}")
