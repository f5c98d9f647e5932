"""Exports: ask for one (the dataset state is fixed then), preview a spec, and build the files.

`export_create` fixes the mark (`as_of`, see exports/snapshot.py) in the transaction that records the
export and queues `export_build_task` on commit. `export_build` (the task's body) selects from the
dataset as it stood at the mark, streams the chosen samples into every format of the spec and writes the
side files, a manifest and a tar of everything.

What is byte-identical between two builds of the same spec on the same data (same code and pyarrow):
every data file (`data/*`), `samples.jsonl`, `dataset_info.json`, `axolotl.yaml` and `README.md` (the
card names no export id, time or person). `manifest.json` differs in the export's id, times, creator and
mark, and so does the tar, which holds it (its other members are the identical files, in the same order).

Layout of an export's folder (EXPORT_ROOT/<dataset id>/<export id>/):

    data/train.messages.jsonl           one file per format and split (validation only when it has rows):
    data/validation.messages.jsonl      .jsonl for messages, prompt_completion, alpaca; .json for sharegpt;
    data/train.parquet                  .parquet (messages) for parquet
    samples.jsonl                       one line per row, in file order: external_id, sample_id, revision_id, split, stratum
    dataset_info.json                   LLaMA-Factory entries
    axolotl.yaml                        Axolotl datasets block (when the messages format is exported)
    README.md                           dataset card with Hugging Face `configs`
    manifest.json                       see `export_build`
    <name>.tar                          all of the above under <name>/"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from annotator.models import Dataset, Membership
from annotator.services import check_dataset_role

from . import formats, snapshot, storage
from .models import Export, ExportFile
from .selection import NO_CLUSTER, Selection, select_for_spec
from .spec import ExportSpec, SpecError, spec_parse

logger = logging.getLogger(__name__)

EXPORT_ROLES = (Membership.Role.OWNER, Membership.Role.REVIEWER)
MANIFEST_VERSION = 1
LINEAGE_LISTED = 1000  # revised rows listed in the manifest; samples.jsonl has every row
SKIPPED_LISTED = 1000  # rows left out because their conversation is not trainable, listed in the manifest
DIVERSITY_SAMPLE = 1000  # embeddings per side (pool, selection) the preview's diversity score is computed on
_LOCK_CLASS = 0x5EC0  # pg advisory lock namespace of export builds
SPLITS = ("train", "validation")


class ExportEmpty(Exception):
    """The spec selects no sample from the dataset."""


# ---------------------------------------------------------------------------------------------
# Access, create, preview
# ---------------------------------------------------------------------------------------------

def check_can_export(*, user: AbstractBaseUser, dataset: Dataset) -> str:
    """Owners and reviewers export; anyone else gets 404."""
    return check_dataset_role(user=user, dataset=dataset, roles=EXPORT_ROLES)


def export_create(*, user: AbstractBaseUser | None, dataset: Dataset, spec: dict, enqueue: bool = True) -> Export:
    """Ask for an export: check the user (owner or reviewer, else 404), parse the spec (SpecError names
    each wrong field), fix the dataset state it is taken from and record it queued; the build task is
    queued when the transaction commits. `user=None` is the command line (no check).

    A spec with `short: "shrink"` is selected once first, on the dataset as it stands (no lock held), and
    refused with a SpecError when the shrink would select nothing (see `shrink_errors`): nothing is written."""
    if user is not None:
        check_can_export(user=user, dataset=dataset)
    parsed = spec_parse(spec)
    if parsed.balance.short == "shrink":
        _snap, _pool, selection, _emb = _choose(dataset.pk, parsed, snapshot.as_of_read(dataset=dataset))
        errors = shrink_errors(parsed, selection)
        if errors:
            raise SpecError(errors)
    with transaction.atomic():
        as_of = snapshot.as_of_fix(dataset=dataset)
        export = Export.objects.create(
            dataset=dataset, name=parsed.name, spec=parsed.to_json(), spec_sha256=parsed.digest(), as_of=as_of,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        if enqueue:
            from .tasks import export_build_task

            transaction.on_commit(lambda: export_build_task.delay(export.pk))
    logger.info("export %s of dataset %s asked for", export.pk, dataset.pk, extra={"export": export.pk, "dataset": dataset.pk})
    return export


def _choose(dataset_id: int, spec: ExportSpec, as_of: dict[str, Any], attributes=()) -> tuple[snapshot.Snapshot, Any, Selection, Any]:
    """Filters, pool and selection: (snapshot, pool, selection, embeddings or None)."""
    snap = snapshot.snapshot_load(dataset_id=dataset_id, as_of=as_of, spec=spec, attributes=attributes)
    embeddings = rows = None
    if spec.select.method == "diversity":
        embeddings, rows, key = snapshot.embedding_rows(dataset_id, snap.ids)
        snap.extra["embedding_model"] = key
        if embeddings is None:
            embeddings = np.zeros((0, 1), np.float32)  # every candidate is left out as "no_embedding"
    pool = snap.pool(spec.balance.by, rows)
    selection = select_for_spec(pool, spec, embeddings)
    return snap, pool, selection, embeddings


def share_percent(part: int, whole: int) -> str:
    """part / whole as a percentage for people, without the sign: 3 significant digits ("1.5", "33.3", "40"),
    more where rounding would say 100 of a share below it, "<0.01" below a hundredth of a percent."""
    if whole <= 0 or part <= 0:
        return "0"
    exact = Fraction(100 * part, whole)
    if exact < Fraction(1, 100):
        return "<0.01"
    for digits in range(3, 9):
        text = f"{float(exact):.{digits}g}"
        if exact >= 100 or float(text) < 100:
            return text
    return text


def shrink_errors(spec: ExportSpec, selection: Selection) -> dict[str, str]:
    """{field path: message} when `short: "shrink"` leaves the selection empty, else {}.

    A requested stratum with no candidate after the filters makes the shrink factor 0: each such stratum
    is named at its own path (`balance.counts["qa/hard"]`) with the ways out. Otherwise (the limiting
    stratum has samples, but none of the scaled-down strata could give one, e.g. no embeddings for a
    diversity selection) the limiting stratum is named with the factor and what the selection left out."""
    shrink = selection.shrink
    if shrink is None or len(selection):
        return {}
    mode = spec.balance.mode

    def path(key: str) -> str:
        return f"balance.{mode}[{json.dumps(key, ensure_ascii=False)}]" if mode in ("counts", "ratios") else "balance.short"

    errors: dict[str, str] = {}
    for key, stratum in sorted(selection.strata.items()):
        if stratum["pool"] == 0 and stratum["target"] > 0:
            if mode == "ratios":  # a ratio must be above 0: the way out is to remove it
                message = _("stratum %(key)s has no samples after the filters, so shrink would select nothing: "
                            "remove it from the ratios, or use take_all") % {"key": key}
            else:
                message = _("stratum %(key)s has no samples after the filters, so shrink would select nothing: "
                            "set its target to 0, remove it, or use take_all") % {"key": key}
            errors.setdefault(path(key), message)
    if not errors:
        key = shrink["limited_by"]
        dropped = ", ".join(f"{k} {v}" for k, v in selection.dropped.items())
        errors[path(key)] = _("shrink selects nothing: every target is scaled to %(percent)s%% by stratum %(key)s (%(pool)d available "
                              "of %(target)d asked), and none of the samples left could be chosen (left out by the selection: "
                              "%(dropped)s)") % {"percent": share_percent(shrink["pool"], shrink["target"]), "key": key,
                                                 "pool": shrink["pool"], "target": shrink["target"], "dropped": dropped or _("none")}
    return errors


def _distribution(column: snapshot.Column | None, chosen: np.ndarray) -> list[dict[str, Any]]:
    if column is None:
        return []
    size = len(column.values)
    pool = np.bincount(column.codes, minlength=size)
    picked = np.bincount(column.codes[chosen], minlength=size) if chosen.shape[0] else np.zeros(size, np.int64)
    out = [{"value": column.values[i] or "-", "pool": int(pool[i]), "selected": int(picked[i])} for i in range(size) if pool[i]]
    return sorted(out, key=lambda d: (-d["pool"], d["value"]))


def _diversity(dataset_id: int, pool_ids: np.ndarray, chosen_ids: np.ndarray, seed: int) -> dict[str, Any] | None:
    """Vendi score (cosine kernel) of the instruction embeddings of a seeded sample of at most
    DIVERSITY_SAMPLE pool samples and as many selected ones; None when the dataset has no embeddings."""
    from scoring.metrics.diversity import vendi_score

    key = snapshot.embedder_key(dataset_id)
    if key is None or not pool_ids.shape[0]:
        return None
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"method": "vendi", "kernel": "cosine", "embedding": f"{snapshot.EMBEDDING_KIND}:{key}", "sample_size": {}}
    for side, ids in (("pool", pool_ids), ("selection", chosen_ids)):
        if ids.shape[0] > DIVERSITY_SAMPLE:
            ids = np.sort(rng.choice(ids, DIVERSITY_SAMPLE, replace=False))
        matrix, rows, _key = snapshot.embedding_rows(dataset_id, ids, key)
        have = rows >= 0
        out["sample_size"][side] = int(have.sum())
        if matrix is None or not have.any():
            out[side] = None
            continue
        x = matrix[have]
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out[side] = round(vendi_score(x), 4)
    if out.get("pool") is None and out.get("selection") is None:
        return None
    return out


def export_preview(*, user: AbstractBaseUser, dataset: Dataset, spec: dict) -> dict[str, Any]:
    """What an export with this spec would hold now, without writing anything. Owners and reviewers
    (else 404); SpecError for a wrong spec, and for a shrink that would select nothing (`shrink_errors`).
    Returns:

        {"spec": canonical spec, "spec_sha256", "as_of": the marks read now,
         "samples": samples in the dataset, "filtered": {reason: n} left out by the filters (reasons:
         status, task_type, language, duplicate, flagged, metric, consensus; only those > 0),
         "metric_filtered": {metric: n}, "pool": candidates after the filters,
         "chosen": n, "splits": {"train": n, "validation": n},
         "strata": {key: {"pool", "target", "chosen", "train", "validation", "short", "dropped": {reason: n}}},
         "dropped": {reason: n} left out by the selection (not_requested, no_embedding, too_similar,
         shrunk, over_target), "shrink": None or {"factor": share of the targets kept, "limited_by": the
         stratum that set it, "pool": its candidates, "target": what was asked of it},
         "distributions": {"task_type"|"difficulty"|"language"|"cluster": [{"value", "pool", "selected"}]}
         (most frequent in the pool first; "-" is no value; clusters: the 50 largest),
         "clusters": {"pool": clusters among the candidates, "covered": clusters in the selection},
         "diversity": None or {"method": "vendi", "kernel": "cosine", "embedding", "sample_size": {"pool",
         "selection"}, "pool": score, "selection": score}}"""
    check_can_export(user=user, dataset=dataset)
    parsed = spec_parse(spec)
    as_of = snapshot.as_of_read(dataset=dataset)
    snap, pool, selection, _emb = _choose(dataset.pk, parsed, as_of, attributes=snapshot.ATTRIBUTES)
    errors = shrink_errors(parsed, selection)
    if errors:
        raise SpecError(errors)
    report = selection.report()
    chosen = np.searchsorted(snap.ids, selection.ids) if len(selection) else np.zeros(0, np.int64)
    clusters = snap.cluster if snap.cluster is not None else np.full(len(snap), NO_CLUSTER, np.int64)
    in_pool = clusters[clusters != NO_CLUSTER]
    picked = clusters[chosen]
    picked = picked[picked != NO_CLUSTER]
    values, counts = np.unique(in_pool, return_counts=True)
    chosen_counts = dict(zip(*np.unique(picked, return_counts=True), strict=True)) if picked.shape[0] else {}
    order = np.lexsort((values, -counts))[:50]
    cluster_dist = [{"value": str(int(values[i])), "pool": int(counts[i]), "selected": int(chosen_counts.get(values[i], 0))} for i in order]
    return {
        "spec": parsed.to_json(),
        "spec_sha256": parsed.digest(),
        "as_of": as_of,
        "samples": snap.total,
        "filtered": snap.filtered,
        "metric_filtered": snap.extra.get("metric_dropped", {}),
        "pool": len(snap),
        "chosen": report["chosen"],
        "splits": {"train": report["train"], "validation": report["validation"]},
        "strata": report["strata"],
        "dropped": report["dropped"],
        "shrink": report["shrink"],
        "distributions": {
            "task_type": _distribution(snap.task_type, chosen),
            "difficulty": _distribution(snap.difficulty, chosen),
            "language": _distribution(snap.language, chosen),
            "cluster": cluster_dist,
        },
        "clusters": {"pool": int(values.shape[0]), "covered": int(np.unique(picked).shape[0])},
        "diversity": _diversity(dataset.pk, snap.ids, selection.ids, parsed.seed),
    }


# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _build_lock(export_id: int) -> Iterator[bool]:
    """Held by the process that builds an export, released when it ends or dies: on PostgreSQL a
    session advisory lock, elsewhere an flock on a file under EXPORT_ROOT. Yields whether it was got."""
    if connection.vendor == "postgresql":
        key = [_LOCK_CLASS, export_id % 2**31]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
            got = bool(cursor.fetchone()[0])
        try:
            yield got
        finally:
            if got:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
                except DatabaseError:  # the connection is gone, and the lock with it
                    logger.warning("could not release the build lock of export %s", export_id, exc_info=True)
        return
    path = storage.lock_path(export_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _claim(export_id: int) -> Export | None:
    """Mark the export building; None when it is finished or gone. Called with the build lock held, so
    an export found "building" was left so by a worker that died: it is built again from scratch."""
    with transaction.atomic():
        export = (Export.objects.select_for_update(of=("self",)).filter(pk=export_id, status__in=[Export.Status.QUEUED, Export.Status.BUILDING])
                  .select_related("dataset", "created_by").first())
        if export is None:
            return None
        export.status, export.started_at, export.error = Export.Status.BUILDING, timezone.now(), ""
        export.save(update_fields=["status", "started_at", "error"])
    return export


def export_build(*, export_id: int) -> Export | None:
    """Build a queued export (the task's body). Does nothing when the export is finished, or when another
    process is building it now. A failure leaves the export failed with the error and no files.

    The manifest (manifest.json, and Export.manifest with "bundle" added):

        {"manifest_version": 1, "id", "dataset": {"id", "slug"}, "name", "spec", "spec_sha256", "as_of",
         "created_by": username or None, "created_at", "started_at", "finished_at",
         "code_version": {"sftdesk": git describe or "unknown", "pyarrow": version},
         "counts": rows written {"total", "splits": {"train", "validation"}, "strata": {key: {"rows", "train", "validation"}}},
         "strata": the selection's per-stratum report, "selection": {"chosen", "train", "validation", "pool",
         "dropped", "shrink"}, "filters": {"samples", "filtered": {reason: n}, "metric_filtered", "pool"},
         "revisions_used": rows whose answer comes from a revision,
         "lineage": {"file": "samples.jsonl", "revised": [{"sample_id", "external_id", "revision_id",
         "split"}] (the first 1000), "truncated": bool},
         "skipped": {"count", "rows": [{"sample_id", "external_id", "revision_id", "split", "stratum", "problem"}] (the
         first 1000), "truncated": bool}: chosen rows left out because they are not a trainable conversation,
         "files": [{"path", "format", "split", "rows", "bytes", "sha256"}] (every file but manifest.json and
         the tar), "byte_identical": [paths identical across builds of the same spec and data]}"""
    with _build_lock(export_id) as got:
        if not got:
            logger.info("export %s is being built by another worker", export_id, extra={"export": export_id})
            return Export.objects.filter(pk=export_id).first()
        export = _claim(export_id)
        if export is None:
            return Export.objects.filter(pk=export_id).first()
        storage.remove_export_files(export)
        started = time.monotonic()
        try:
            _build(export)
        except Exception as exc:  # noqa: BLE001 - recorded on the export; the worker goes on
            if isinstance(exc, ExportEmpty):
                logger.warning("export %s selects nothing: %s", export_id, exc, extra={"export": export_id})
            else:
                logger.exception("export %s failed", export_id, extra={"export": export_id})
            storage.remove_export_files(export)
            message = str(exc) if isinstance(exc, ExportEmpty) else f"{type(exc).__name__}: {exc}"
            Export.objects.filter(pk=export_id, status=Export.Status.BUILDING).update(
                status=Export.Status.FAILED, error=message[:10_000], finished_at=timezone.now())
        else:
            logger.info("export %s built in %.2f s", export_id, time.monotonic() - started,
                        extra={"export": export_id, "seconds": round(time.monotonic() - started, 3)})
    return Export.objects.filter(pk=export_id).first()


@lru_cache(maxsize=1)
def code_version() -> dict[str, str]:
    root = Path(__file__).resolve().parent.parent
    version = "unknown"
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=False)
        version = out.stdout.strip() or version
    except OSError:
        pass
    if version == "unknown":
        with contextlib.suppress(Exception):
            from importlib.metadata import version as package_version

            version = package_version("sftdesk")
    try:
        from importlib.metadata import version as package_version

        arrow = package_version("pyarrow")
    except Exception:  # noqa: BLE001 - pragma: no cover
        arrow = "absent"
    return {"sftdesk": version, "pyarrow": arrow}


def data_path(split: str, fmt: str) -> str:
    """data/<split>.<format><suffix>; parquet is data/<split>.parquet."""
    if fmt == "parquet":
        return f"data/{split}.parquet"
    return f"data/{split}.{fmt}{formats.SUFFIX[fmt]}"


class _HashedText:
    """A text file written line by line, in blocks, hashed on the way; flushed to disk when closed."""

    BLOCK = 1 << 18

    def __init__(self, path: Path):
        self._f = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._h = hashlib.sha256()
        self._pending: list[str] = []
        self._pending_chars = 0
        self.rows = self.bytes = 0

    def write(self, text: str, rows: int = 1) -> None:
        self._pending.append(text)
        self._pending_chars += len(text)
        self.rows += rows
        if self._pending_chars >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = "".join(self._pending).encode("utf-8")
            self._h.update(data)
            self._f.write(data)
            self.bytes += len(data)
            self._pending, self._pending_chars = [], 0

    def close(self) -> dict[str, Any]:
        if not self._f.closed:
            try:
                self._flush()
                self._f.flush()
                os.fsync(self._f.fileno())
            finally:
                self._f.close()
        return {"rows": self.rows, "bytes": self.bytes, "sha256": self._h.hexdigest()}


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_text(folder: Path, path: str, text: str, rows: int = 0) -> dict[str, Any]:
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    out = _HashedText(target)
    out.write(text, rows=rows)
    return {"path": path, "format": "", "split": "", **out.close()}


def _write_data(export: Export, spec: ExportSpec, pool, selection: Selection, revised, folder: Path) -> tuple[list[dict], dict]:
    """Stream the chosen rows (train, then validation; each by sample id) into every format and samples.jsonl.
    A row whose conversation cannot be trained on (an empty answer, roles out of turn; see
    formats.validate_messages) is left out of every file and listed under "skipped"."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    samples = _HashedText(folder / "samples.jsonl")
    lineage: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    skipped_by: dict[tuple[str, str], int] = {}
    revisions_used = 0
    quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes for a string
    quoted = {k: quote(k) for k in pool.keys}
    conversation = formats.conversation
    system = spec.system_prompt
    try:
        for split, ids in (("train", selection.train_ids), ("validation", selection.validation_ids)):
            if split == "validation" and not ids.shape[0]:
                continue
            strata = pool.codes[np.searchsorted(pool.ids, ids)]
            keys = pool.keys
            writers = {fmt: formats.FormatWriter(fmt, folder / data_path(split, fmt)) for fmt in spec.formats}
            try:
                write = [w.write_conversation for w in writers.values()]
                i = 0
                for sample_id, external_id, revision_id, messages in snapshot.iter_rows(export.dataset_id, ids, revised):
                    stratum = keys[strata[i]]
                    i += 1
                    try:
                        conv = conversation({"external_id": external_id, "sample_id": sample_id, "messages": messages, "system": system})
                    except formats.InvalidRecord as exc:
                        skipped_by[(split, stratum)] = skipped_by.get((split, stratum), 0) + 1
                        if len(skipped) < SKIPPED_LISTED:
                            skipped.append({"sample_id": sample_id, "external_id": external_id, "revision_id": revision_id, "split": split,
                                            "stratum": stratum, "problem": str(exc).split("): ", 1)[-1]})
                        continue
                    for w in write:
                        w(conv)
                    # the bytes of dumps({"external_id", "sample_id", "revision_id", "split", "stratum"}), put together faster
                    samples.write(f'{{"external_id":{quote(external_id)},"sample_id":{sample_id},"revision_id":'
                                  f'{"null" if revision_id is None else revision_id},"split":"{split}","stratum":{quoted[stratum]}}}\n')
                    if revision_id is not None:
                        revisions_used += 1
                        if len(lineage) < LINEAGE_LISTED:
                            lineage.append({"sample_id": sample_id, "external_id": external_id, "revision_id": revision_id, "split": split})
                if i != ids.shape[0]:
                    raise RuntimeError(f"{split}: read {i} rows for {ids.shape[0]} chosen samples")
            except BaseException:
                for w in writers.values():
                    w.abort()
                raise
            for fmt, w in writers.items():
                files.append({"path": data_path(split, fmt), "format": fmt, "split": split, **w.close()})
    finally:
        result = samples.close()
    files.append({"path": "samples.jsonl", "format": "", "split": "", **result})
    n_skipped = sum(skipped_by.values())
    return files, {"revisions_used": revisions_used, "revised": lineage, "truncated": revisions_used > len(lineage),
                   "skipped": {"count": n_skipped, "rows": skipped, "truncated": n_skipped > len(skipped)}, "skipped_by": skipped_by}


def _build(export: Export) -> None:
    spec = spec_parse(export.spec)
    dataset = export.dataset
    snap, pool, selection, _emb = _choose(dataset.pk, spec, export.as_of)
    if not len(selection):
        errors = shrink_errors(spec, selection)
        if errors:  # export_create checked it; scoring results (not versioned) may have changed since
            raise ExportEmpty(_("The spec selects no samples: %(why)s.") % {"why": "; ".join(errors.values())})
        filtered = ", ".join(f"{k} {v}" for k, v in snap.filtered.items())
        raise ExportEmpty(_("The spec selects no samples (%(total)d in the dataset at the time asked for; left out by the filters: "
                            "%(filtered)s).") % {"total": snap.total, "filtered": filtered or _("none")})
    revised = snapshot.revisions_at_mark(dataset.pk, export.as_of, selection.ids)
    folder = storage.partial_dir(export)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)

    files, lineage = _write_data(export, spec, pool, selection, revised, folder)
    report = selection.report()
    strata_counts = {}
    for key, st in report["strata"].items():
        train = st["train"] - lineage["skipped_by"].get(("train", key), 0)
        validation = st["validation"] - lineage["skipped_by"].get(("validation", key), 0)
        strata_counts[key] = {"rows": train + validation, "train": train, "validation": validation}
    splits = {split: sum(c[split] for c in strata_counts.values()) for split in SPLITS}
    total = splits["train"] + splits["validation"]
    if not total:
        raise ExportEmpty(_("None of the %(n)d chosen samples is a conversation a model can be trained on (for example: %(problem)s).")
                          % {"n": report["chosen"], "problem": lineage["skipped"]["rows"][0]["problem"]})

    by_format: dict[str, dict[str, str]] = {}
    for f in files:
        if f["format"]:
            by_format.setdefault(f["format"], {})[f["split"]] = f["path"]
    info = formats.llamafactory_dataset_info(spec.name, by_format)
    files.append(_write_text(folder, "dataset_info.json", json.dumps(info, ensure_ascii=False, indent=2) + "\n"))
    if "messages" in by_format:
        snippet = formats.axolotl_snippet(spec.name, by_format["messages"]["train"], by_format["messages"].get("validation"))
        files.append(_write_text(folder, "axolotl.yaml", snippet))
    # The card counts the rows written (a skipped row is not in the files) and names no id, time or person,
    # so it is byte-identical between builds.
    card_strata = {k: {**st, "chosen": strata_counts[k]["rows"], "train": strata_counts[k]["train"],
                       "validation": strata_counts[k]["validation"]} for k, st in report["strata"].items()}
    card = {"name": spec.name, "dataset": dataset.slug, "files": sorted(files, key=lambda f: f["path"]), "strata": card_strata,
            "spec": spec.to_json()}
    files.append(_write_text(folder, "README.md", formats.dataset_card(card)))
    files.sort(key=lambda f: f["path"])

    finished = timezone.now()
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "id": export.pk,
        "dataset": {"id": dataset.pk, "slug": dataset.slug},
        "name": spec.name,
        "spec": spec.to_json(),
        "spec_sha256": export.spec_sha256,
        "as_of": export.as_of,
        "created_by": export.created_by.get_username() if export.created_by else None,
        "created_at": export.created_at.isoformat(),
        "started_at": export.started_at.isoformat() if export.started_at else None,
        "finished_at": finished.isoformat(),
        "code_version": code_version(),
        "counts": {"total": total, "splits": splits, "strata": strata_counts},
        "strata": report["strata"],
        "selection": {k: report[k] for k in ("chosen", "train", "validation", "pool", "dropped", "shrink")},
        "filters": {"samples": snap.total, "filtered": snap.filtered, "metric_filtered": snap.extra.get("metric_dropped", {}),
                    "pool": len(snap)},
        "revisions_used": lineage["revisions_used"],
        "lineage": {"file": "samples.jsonl", "revised": lineage["revised"], "truncated": lineage["truncated"]},
        "skipped": lineage["skipped"],
        "files": files,
        "byte_identical": [f["path"] for f in files],
    }
    if snap.extra.get("embedding_model"):
        manifest["selection"]["embedding_model"] = snap.extra["embedding_model"]
    manifest_entry = _write_text(folder, "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    everything = [*files, manifest_entry]
    bundle_path = f"{spec.name}.tar"
    bundle = formats.tar_bundle(folder / bundle_path, [(f"{spec.name}/{f['path']}", folder / f["path"]) for f in everything])
    bundle_entry = {"path": bundle_path, "format": "", "split": "", "rows": 0, "bytes": bundle["bytes"], "sha256": bundle["sha256"]}
    everything.append(bundle_entry)

    final = storage.export_dir(export)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(folder, final)
    _fsync_dir(final.parent)
    stored = {**manifest, "bundle": {"path": bundle_path, "bytes": bundle["bytes"], "sha256": bundle["sha256"], "files": bundle["files"]}}
    with transaction.atomic():
        ExportFile.objects.filter(export=export).delete()
        ExportFile.objects.bulk_create([ExportFile(export=export, **f) for f in everything])
        updated = Export.objects.filter(pk=export.pk, status=Export.Status.BUILDING).update(
            status=Export.Status.SUCCEEDED, manifest=stored, sample_count=total,
            total_bytes=sum(f["bytes"] for f in everything), finished_at=finished, error="",
        )
        if updated != 1:
            raise RuntimeError("the export changed while it was built")
