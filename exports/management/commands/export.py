"""python manage.py export DATASET --spec SPEC.json --out DIR [--user USERNAME]"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from annotator.models import Dataset
from exports import services, storage
from exports.models import Export
from exports.spec import SpecError


class Command(BaseCommand):
    help = ("Build an export of a dataset from a spec, here and now (no worker needed), and copy its files to a folder. "
            "Prints the counts per stratum and split and every file with its sha256; exits non-zero on failure.")

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="Dataset slug (or id).")
        parser.add_argument("--spec", required=True, help="The export spec, a JSON file.")
        parser.add_argument("--out", required=True, help="Folder to copy the export's files into (made if missing).")
        parser.add_argument("--user", help="Build as this user (an owner or reviewer of the dataset); recorded as its creator.")

    def handle(self, *args, dataset: str, spec: str, out: str, user: str | None, **options):
        ds = Dataset.objects.filter(slug=dataset).first()
        if ds is None and dataset.isdigit():
            ds = Dataset.objects.filter(pk=int(dataset)).first()
        if ds is None:
            raise CommandError(f"no dataset {dataset!r}")
        try:
            data = json.loads(Path(spec).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"{spec}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"{spec}: not JSON: {exc}") from None
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"no user {user!r}")
        try:
            export = services.export_create(user=actor, dataset=ds, spec=data, enqueue=False)
        except SpecError as exc:
            for path, message in exc.errors.items():
                self.stderr.write(f"{spec}: {path}: {message}")
            raise CommandError(f"the spec has {len(exc.errors)} error{'s' if len(exc.errors) != 1 else ''}; nothing was written") from None
        except Http404:
            raise CommandError(f"user {user!r} may not export dataset {ds.slug} (owners and reviewers may)") from None

        export = services.export_build(export_id=export.pk)
        if export is None or export.status != Export.Status.SUCCEEDED:
            raise CommandError(f"export {export.pk if export else '?'} failed: {export.error if export else 'it is gone'}")

        manifest = export.manifest
        self.stdout.write(f"export {export.pk} of dataset {ds.slug}: {export.sample_count:,} samples "
                          f"(train {manifest['counts']['splits']['train']:,}, validation {manifest['counts']['splits']['validation']:,})")
        counts = manifest["counts"]["strata"]
        width = max([len(k) for k in manifest["strata"]] + [7])
        self.stdout.write(f"  {'stratum':<{width}}  {'pool':>8}  {'target':>8}  {'chosen':>8}  {'rows':>8}  {'train':>8}  {'valid.':>8}  short")
        for key, s in sorted(manifest["strata"].items()):
            c = counts[key]
            self.stdout.write(f"  {key:<{width}}  {s['pool']:>8,}  {s['target']:>8,}  {s['chosen']:>8,}  {c['rows']:>8,}  {c['train']:>8,}  "
                              f"{c['validation']:>8,}  {'yes' if s['short'] else 'no'}")
        if manifest.get("revisions_used"):
            self.stdout.write(f"  {manifest['revisions_used']:,} rows use a reviewer's corrected answer")
        if manifest.get("skipped", {}).get("count"):
            first = manifest["skipped"]["rows"][0]
            self.stdout.write(f"  {manifest['skipped']['count']:,} chosen samples left out: not a trainable conversation "
                              f"(e.g. {first['external_id']}: {first['problem']}); listed in manifest.json")

        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        for f in export.files.order_by("path"):
            dest = target.joinpath(*storage.safe_relative(f.path).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(storage.export_file_path(export, f.path), dest)
            self.stdout.write(f"{f.sha256}  {f.bytes:>12,}  {f.path}")
        self.stdout.write(f"copied {export.files.count()} files to {target}")
