"""python manage.py agreement DATASET [--format json|table] [--resamples N] [--seed S]"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Dataset
from reviews.selectors import dataset_agreement


def _fmt(est: dict | None) -> str:
    if not est or est["value"] is None:
        return "—"
    interval = f" [{est['low']:.3f}, {est['high']:.3f}]" if est["low"] is not None else ""
    return f"{est['value']:.3f}{interval} n={est['n']}"


class Command(BaseCommand):
    help = "Print the dataset's inter-annotator agreement per rubric criterion (coefficient, 95% interval, n)."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="the dataset's slug")
        parser.add_argument("--format", choices=["table", "json"], default="table")
        parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the intervals (0: none)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        dataset = Dataset.objects.filter(slug=opts["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset with slug {opts['dataset']!r}")
        report = dataset_agreement(dataset, resamples=max(0, opts["resamples"]), seed=opts["seed"])
        if opts["format"] == "json":
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
            return
        if not report["criteria"]:
            self.stdout.write(f"{dataset.slug}: no labels to compare yet")
            return
        self.stdout.write(f"{dataset.slug}: {report['labels']} current labels; 95% bootstrap intervals over samples ({report['resamples']} resamples)")
        for c in report["criteria"]:
            self.stdout.write(f"\n{c['criterion']} ({c['level']}; {c['annotators']} annotators, {c['samples']} samples)")
            self.stdout.write(f"  Krippendorff's alpha  {_fmt(c['alpha'])}")
            if c["fleiss"]:
                self.stdout.write(f"  Fleiss' kappa         {_fmt(c['fleiss'])}")
            for p in c["cohen"]:
                weights = f", {c['cohen_weights']} weights" if c["cohen_weights"] else ""
                self.stdout.write(f"  Cohen's kappa {p['a']} / {p['b']}{weights}: {_fmt(p)}")
