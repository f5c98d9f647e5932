"""Writes to the sample store. Keyword-only; permission checks in `check_*`; tasks enqueued on commit."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import Expression, F
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from .. import formats
from ..models import Dataset, ImportJob, Membership, Sample

logger = logging.getLogger(__name__)

Role = Membership.Role


class ImportRefused(Exception):
    """The import cannot start (size cap, unknown format, no permission). Nothing was written."""


# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------

def access_role(*, user: AbstractBaseUser, dataset: Dataset) -> str | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, dataset=dataset).values_list("role", flat=True).first()


def check_dataset_role(*, user: AbstractBaseUser, dataset: Dataset, roles: Iterable[str]) -> str:
    """The user's role if it is one of `roles`; else 404, so a foreign dataset reveals nothing."""
    role = access_role(user=user, dataset=dataset)
    if role not in set(roles):
        raise Http404("No such dataset.")
    return role


# ---------------------------------------------------------------------------------------------
# Datasets and members
# ---------------------------------------------------------------------------------------------

def dataset_create(
    *, name: str, owner: AbstractBaseUser | None, slug: str = "", description: str = "", guidelines: str = ""
) -> Dataset:
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=name, slug=slug or _free_slug(slugify(name)[:90] or "dataset"), description=description,
            guidelines=guidelines, created_by=owner,
        )
        if owner is not None:
            Membership.objects.create(user=owner, dataset=dataset, role=Role.OWNER)
    return dataset


def _free_slug(base: str) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever is free (names in Chinese all start from 'dataset')."""
    taken = set(Dataset.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def samples_set_flag_counts(*, dataset_id: int, counts: Expression) -> int:
    """Write each sample's number of metric flags (scoring passes the count as a subquery). Only rows
    whose count changed are written, so a re-run locks few samples."""
    return (
        Sample.objects.filter(dataset_id=dataset_id).alias(n=Coalesce(counts, 0)).exclude(flag_count=F("n"))
        .update(flag_count=Coalesce(counts, 0))
    )


def membership_set(*, actor: AbstractBaseUser | None, dataset: Dataset, user: AbstractBaseUser, role: str) -> Membership:
    """Give `user` a role on `dataset`. `actor` None means the command line (trusted)."""
    if actor is not None:
        check_dataset_role(user=actor, dataset=dataset, roles=[Role.OWNER])
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(Role.values)}")
    membership, _created = Membership.objects.update_or_create(user=user, dataset=dataset, defaults={"role": role})
    return membership


# ---------------------------------------------------------------------------------------------
# Imports
# ---------------------------------------------------------------------------------------------

def progress_key(job_id: int) -> str:
    return f"sftdesk:import-progress:{job_id}"


def import_job_create(
    *,
    user: AbstractBaseUser | None,
    dataset: Dataset,
    upload: UploadedFile | None = None,
    path: str | Path | None = None,
    fmt: str = "auto",
    options: dict | None = None,
    enqueue: bool = True,
) -> ImportJob:
    """Record an import of an uploaded file (run by a worker) or of a local path (the command line).
    Refuses early, writing nothing, when the format is unknown or the file is over the size cap."""
    if user is not None:
        check_dataset_role(user=user, dataset=dataset, roles=[Role.OWNER])
    if fmt not in formats.FORMAT_CHOICES:
        raise ImportRefused(_("Unknown format %(fmt)s; choose one of %(choices)s.") % {"fmt": fmt, "choices": ", ".join(formats.FORMAT_CHOICES)})
    cap = settings.SFTDESK_IMPORT_MAX_BYTES
    if upload is not None:
        size, name = upload.size, upload.name
    elif path is not None:
        p = Path(path)
        if not p.is_file():
            raise ImportRefused(_("%(path)s: no such file.") % {"path": path})
        size, name = p.stat().st_size, p.name
    else:
        raise ImportRefused(_("No file given."))
    if size > cap:
        raise ImportRefused(
            _("%(name)s is %(size)s bytes, over the import limit of %(cap)s bytes (SFTDESK_IMPORT_MAX_BYTES).")
            % {"name": name, "size": f"{size:,}", "cap": f"{cap:,}"}
        )
    if size == 0:
        raise ImportRefused(_("%(name)s is empty.") % {"name": name})
    with transaction.atomic():
        job = ImportJob(
            dataset=dataset, created_by=user if user and user.is_authenticated else None, format=fmt,
            options=options or {}, original_name=name[:255], size_bytes=size,
        )
        if upload is not None:
            job.file.save(Path(name).name[:200], upload, save=False)
        else:
            job.source_path = str(Path(path).resolve())
        job.save()
        if enqueue:
            from ..tasks import import_run

            transaction.on_commit(lambda: import_run.delay(job.pk))
    return job


@dataclass
class _Counts:
    records: int = 0
    imported: int = 0
    duplicates: int = 0


def import_job_claim(*, job_id: int) -> ImportJob | None:
    """Mark a queued job running; None when it finished or another worker is running it now (its
    row is locked). A job left 'running' by a worker that died is claimed again: that worker's
    transaction was rolled back, so nothing it wrote remains."""
    with transaction.atomic():
        job = (
            ImportJob.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING])
            .select_related("dataset")
            .first()
        )
        if job is None:
            return None
        job.status, job.started_at, job.progress = ImportJob.Status.RUNNING, timezone.now(), 0.0
        job.save(update_fields=["status", "started_at", "progress"])
    return job


def import_job_run(*, job: ImportJob, on_progress: Callable[[ImportJob, float, _Counts], None] | None = None) -> ImportJob | None:
    """Read the job's file and insert its samples, all or nothing: a file with any bad record imports
    nothing and the job lists up to 100 errors with line, record and field.

    The samples and the job's final state commit together, under a lock on the job row, so a second
    delivery of the same job while it runs does nothing (returns None) on PostgreSQL."""
    started = time.monotonic()
    limits = formats.Limits(
        max_record_bytes=settings.SFTDESK_IMPORT_MAX_RECORD_BYTES, max_field_chars=settings.SFTDESK_IMPORT_MAX_FIELD_CHARS
    )
    max_errors = settings.SFTDESK_IMPORT_MAX_ERRORS
    counts = _Counts()
    errors: list[dict] = []
    read = formats.ReadResult()
    total = max(job.size_bytes, 1)
    last_report = 0.0

    def report(fp: BinaryIO) -> None:
        nonlocal last_report
        now = time.monotonic()
        if now - last_report < 0.25:
            return
        last_report = now
        pct = min(99.0, 100.0 * fp.tell() / total)
        live = {"progress": pct, "records": counts.records, "imported": counts.imported, "duplicates": counts.duplicates}
        try:
            cache.set(progress_key(job.pk), live, 3600)
        except Exception:  # noqa: BLE001 - progress is best-effort; the import must not fail for it
            logger.warning("could not publish import progress", exc_info=True, extra={"job": job.pk})
        if on_progress:
            on_progress(job, pct, counts)

    with transaction.atomic():
        if not ImportJob.objects.select_for_update(skip_locked=True).filter(pk=job.pk, status=ImportJob.Status.RUNNING).exists():
            return None  # finished, or another worker holds it right now
        try:
            with _open_job_file(job) as fp, transaction.atomic():  # a savepoint: samples roll back alone
                sink = _CopySink(job, counts) if connection.vendor == "postgresql" else _BatchSink(job, counts, settings.SFTDESK_IMPORT_BATCH_SIZE)
                failed = True
                try:
                    for item in formats.read_samples(fp, fmt=job.format, filename=job.original_name, limits=limits, options=job.options, result=read):
                        if isinstance(item, formats.RecordError):
                            errors.append(item.as_dict())
                            if len(errors) >= max_errors:
                                break
                        else:
                            counts.records += 1
                            if not errors:  # after an error keep reading to report more, write nothing
                                sink.add(item)
                        if (counts.records + len(errors)) % 256 == 0:
                            report(fp)
                    failed = bool(errors)
                finally:
                    sink.close(abort=failed)
                if not errors and counts.records == 0:
                    errors.append(formats.RecordError("the file holds no records").as_dict())
                if errors:
                    transaction.set_rollback(True)
                else:
                    sink.finish()
        except formats.FileError as exc:
            errors.append(exc.error.as_dict())
        except OSError as exc:
            errors.append(formats.RecordError(f"cannot read the file: {exc.strerror or exc}").as_dict())

        job.detected_format = read.format
        job.records_total = counts.records
        job.finished_at = timezone.now()
        job.progress = 100.0
        job.status = ImportJob.Status.FAILED if errors else ImportJob.Status.SUCCEEDED
        if not errors:
            annotation.queue_rank_refresh(dataset=job.dataset, only_missing=True)  # new samples join the annotation queue
        job.errors = errors[:max_errors]
        job.error_count = len(job.errors)
        job.imported_count = 0 if errors else counts.imported
        job.duplicate_count = 0 if errors else counts.duplicates
        job.save(update_fields=["detected_format", "records_total", "finished_at", "status", "errors", "error_count", "imported_count", "duplicate_count", "progress"])
    try:
        cache.delete(progress_key(job.pk))
    except Exception:  # noqa: BLE001
        logger.warning("could not clear import progress", exc_info=True, extra={"job": job.pk})
    logger.info(
        "import %s into dataset %s %s: %s imported, %s duplicates, %s errors",
        job.pk, job.dataset_id, job.status, job.imported_count, job.duplicate_count, job.error_count,
        extra={"job": job.pk, "dataset": job.dataset_id, "status": job.status, "imported": job.imported_count,
               "duplicates": job.duplicate_count, "errors": job.error_count, "seconds": round(time.monotonic() - started, 3)},
    )
    return job


def import_job_fail(*, job_id: int, message: str) -> None:
    """Record an unexpected failure so the page stops waiting; the import's transaction was rolled back."""
    ImportJob.objects.filter(pk=job_id).exclude(status=ImportJob.Status.SUCCEEDED).update(
        status=ImportJob.Status.FAILED, finished_at=timezone.now(), progress=100.0, imported_count=0,
        errors=[{"line": None, "record": None, "field": None, "message": message}], error_count=1,
    )


class _open_job_file:
    def __init__(self, job: ImportJob):
        self.job = job

    def __enter__(self) -> BinaryIO:
        if self.job.source_path:
            self.fp = open(self.job.source_path, "rb")  # noqa: SIM115
        else:
            self.fp = self.job.file.open("rb")
        return self.fp

    def __exit__(self, *exc: object) -> None:
        self.fp.close()


class _BatchSink:
    """Inserts in batches with bulk_create (SQLite and other databases). Duplicates inside a batch, in
    earlier batches of this file (already inserted in this transaction) and in the dataset are
    skipped and counted."""

    def __init__(self, job: ImportJob, counts: _Counts, batch_size: int):
        self.job, self.counts, self.batch_size = job, counts, batch_size
        self.batch: list[formats.ParsedSample] = []

    def add(self, sample: formats.ParsedSample) -> None:
        self.batch.append(sample)
        if len(self.batch) >= self.batch_size:
            self._flush()

    def close(self, *, abort: bool = False) -> None:
        pass

    def finish(self) -> None:
        self._flush()

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        unique: dict[str, formats.ParsedSample] = {}
        for s in batch:
            if s.content_hash in unique:
                self.counts.duplicates += 1
            else:
                unique[s.content_hash] = s
        existing = set(
            Sample.objects.filter(dataset_id=self.job.dataset_id, content_hash__in=list(unique)).values_list("content_hash", flat=True)
        )
        self.counts.duplicates += len(existing)
        rows = [s for h, s in unique.items() if h not in existing]
        now = timezone.now()
        Sample.objects.bulk_create(
            [
                Sample(
                    dataset_id=self.job.dataset_id, import_job_id=self.job.pk, external_id=s.external_id, messages=s.messages,
                    source=s.source, text=s.text, task_type=s.task_type, language=s.language, meta=s.meta,
                    content_hash=s.content_hash, created_at=now,
                )
                for s in rows
            ],
            batch_size=500,
        )
        self.counts.imported += len(rows)


class _CopySink:
    """PostgreSQL: every record streams through one COPY into a temporary staging table while the
    file is still being parsed (the server ingests on its own core), then one INSERT ... SELECT
    keeps the first of each content hash that the dataset does not have yet."""

    STAGE = "sftdesk_import_stage"
    COLUMNS = ("seq", "external_id", "messages", "source", "text", "task_type", "language", "meta", "content_hash")

    def __init__(self, job: ImportJob, counts: _Counts):
        self.job, self.counts = job, counts
        self.seq = 0
        self.dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        self.cursor = connection.cursor()
        # The samples and the job's final state commit together; if the server crashed right after the
        # commit, both would be lost together and the job redone. So the commit need not wait for the
        # WAL flush of a whole file's rows.
        self.cursor.execute("SET LOCAL synchronous_commit = off")
        self.cursor.execute(
            f"CREATE TEMP TABLE {self.STAGE} (seq bigint, external_id text, messages jsonb, source jsonb, text text, "
            "task_type text, language text, meta jsonb, content_hash text) ON COMMIT DROP"
        )
        self._copy_cm = self.cursor.cursor.copy(f"COPY {self.STAGE} ({', '.join(self.COLUMNS)}) FROM STDIN")
        self.copy = self._copy_cm.__enter__()

    def add(self, s: formats.ParsedSample) -> None:
        dumps = self.dumps
        self.copy.write_row((
            self.seq, s.external_id, dumps(s.messages), s.source_json or dumps(s.source), s.text, s.task_type, s.language,
            dumps(s.meta) if s.meta else "{}", s.content_hash,
        ))
        self.seq += 1

    def close(self, *, abort: bool = False) -> None:
        """End the COPY; `abort` sends COPY FAIL so the server stops (the savepoint is rolled back)."""
        if self.copy is not None:
            self.copy = None
            reason = RuntimeError("import aborted") if abort else None
            self._copy_cm.__exit__(type(reason) if reason else None, reason, None)

    def finish(self) -> None:
        table = Sample._meta.db_table
        self.cursor.execute(
            f"""
            INSERT INTO {table} (dataset_id, import_job_id, external_id, messages, source, text, task_type, language, meta,
                                 content_hash, status, flag_count, label_count, version, created_at)
            SELECT %s, %s, external_id, messages, source, text, task_type, language, meta, content_hash, %s, 0, 0, 0, %s
            FROM (SELECT DISTINCT ON (content_hash) * FROM {self.STAGE} ORDER BY content_hash, seq) first_of_each
            ORDER BY seq
            ON CONFLICT (dataset_id, content_hash) DO NOTHING
            """,
            [self.job.dataset_id, self.job.pk, Sample.Status.NEW, timezone.now()],
        )
        self.counts.imported = self.cursor.rowcount
        self.counts.duplicates = self.counts.records - self.counts.imported
        self.cursor.execute(f"DROP TABLE {self.STAGE}")
        self.cursor.close()


from . import annotation  # noqa: E402
from .annotation import *  # noqa: E402,F403 - the assignment engine and labels, one import for callers
from .label_import import *  # noqa: E402,F403 - labels from other tools (import_labels)
from .members import *  # noqa: E402,F403 - members and the owner's settings page
