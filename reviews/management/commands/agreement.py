"""python manage.py agreement DATASET [--format json|table] [--resamples N] [--seed S]

Per rubric criterion: Krippendorff's alpha, Fleiss' kappa and Cohen's kappa per pair (coefficient, 95%
bootstrap interval, n). Per annotator, against the other annotators of the same samples: agreement
(share of matching verdict pairs), leniency per scale (mean offset from the others' mean score);
and accuracy on gold samples, labels per hour and skip rate."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotator.models import Dataset
from annotator.rubric import SCALES
from reviews.selectors import annotator_stats, dataset_agreement

SCALE_SHORT = {"accuracy": "acc", "completeness": "comp", "conciseness": "conc"}


def _fmt(est: dict | None) -> str:
    if not est or est["value"] is None:
        return "—"
    interval = f" [{est['low']:.3f}, {est['high']:.3f}]" if est["low"] is not None else ""
    return f"{est['value']:.3f}{interval} n={est['n']}"


def _num(value: float | None, spec: str = ".3f", *, signed: bool = False) -> str:
    if value is None:
        return "—"
    return format(value, ("+" if signed else "") + spec)


def annotator_rows(stats: list[dict]) -> list[list[str]]:
    """The annotator table as text cells, a header row first."""
    leniency = "leniency " + "/".join(SCALE_SHORT[s] for s in SCALES)
    rows = [["annotator", "labels", "agreement", leniency, "gold accuracy", "labels/hour", "skip rate"]]
    for a in stats:
        agreement = f"{_num(a['agreement'])} n={a['compared']}" if a["compared"] else "—"
        lenient = " ".join(_num(a["leniency"][s], ".2f", signed=True) for s in SCALES)
        gold = f"{_num(a['gold_accuracy'])} n={a['gold_n']}" if a["gold_n"] else "—"
        skip = f"{_num(a['skip_rate'])} ({a['skipped']} skipped)" if a["skip_rate"] is not None else "—"
        rows.append([a["annotator"], str(a["labels"]), agreement, lenient, gold, _num(a["labels_per_hour"], ".1f"), skip])
    return rows


class Command(BaseCommand):
    help = ("Print the dataset's inter-annotator agreement per rubric criterion (coefficient, 95% interval, n) "
            "and per annotator (agreement with peers, leniency, gold accuracy, labels per hour, skip rate).")

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
        report["annotators"] = annotator_stats(dataset)
        if opts["format"] == "json":
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
            return
        if not report["criteria"]:
            self.stdout.write(f"{dataset.slug}: no labels to compare yet")
        else:
            self.stdout.write(f"{dataset.slug}: {report['labels']} current labels; 95% bootstrap intervals over samples "
                              f"({report['resamples']} resamples)")
        for c in report["criteria"]:
            self.stdout.write(f"\n{c['criterion']} ({c['level']}; {c['annotators']} annotators, {c['samples']} samples)")
            self.stdout.write(f"  Krippendorff's alpha  {_fmt(c['alpha'])}")
            if c["fleiss"]:
                self.stdout.write(f"  Fleiss' kappa         {_fmt(c['fleiss'])}")
            for p in c["cohen"]:
                weights = f", {c['cohen_weights']} weights" if c["cohen_weights"] else ""
                self.stdout.write(f"  Cohen's kappa {p['a']} / {p['b']}{weights}: {_fmt(p)}")
        if report["annotators"]:
            self.stdout.write("\nAnnotators (agreement: share of verdict pairs with the other annotators of a sample that match, n pairs; "
                              "leniency: mean offset from the others' mean score, + is more lenient; gold apart)")
            rows = annotator_rows(report["annotators"])
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                cells = [r[0].ljust(widths[0])] + [cell.rjust(w) if i == 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)) if i]
                self.stdout.write(("  " + "  ".join(cells)).rstrip())
