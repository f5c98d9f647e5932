"""The dataset as it stood when an export was asked for, read as NumPy columns.

`as_of_fix` records the state an export is taken from: the dataset's newest sample id, the newest
StatusChange and SampleRevision ids, and the time. Everything later is invisible to the export:

- a sample with an id above `sample_id` (imported later) is out, and so is a sample of an import that was
  still running then (`pending_imports`: its rows were not committed, though their ids may be lower);
- a sample's status "as of" is its current status, unless it has StatusChange rows with an id above
  `status_change_id`: then it is the `from_status` of the earliest of them. In the database that is the
  status filter on the (dataset, status, id) index plus one range scan of StatusChange ids above the
  mark (the few samples that moved since), never a loop over all samples;
- the answer is the newest approved SampleRevision with an id up to `revision_id`, else the original.

On PostgreSQL `as_of_fix` first takes SHARE locks on the revision and status-change tables: it waits for
transactions that are writing them to commit (milliseconds: a label submit, a decision) and holds new
writers off until the export row commits, so no change can be half-visible (an id below the mark that
commits after it). SQLite runs one writer at a time, so its marks are exact without locks.

Scoring results (metrics, flags, clusters, embeddings) and review consensus are not versioned: filters on
them read what is stored when the export is built.

Memory stays flat: columns are fetched with `values_list` in chunks into NumPy arrays; low-cardinality
text (task type, language, difficulty) is held as integer codes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Max, Q
from django.utils import timezone

from annotator.models import ImportJob, Sample, SampleRevision
from exports.selection import NO_CLUSTER, Pool
from exports.spec import ALL_STRATUM, STATUSES, ExportSpec, Filters, stratum_key_for
from reviews.models import ReviewItem, StatusChange
from scoring.models import SampleEmbedding, SampleFlag, SampleMetric, ScoringRun

CHUNK = 10_000
ROW_BATCH = 2_000
DUPLICATE_RULES = ("exact_duplicate", "near_duplicate", "semantic_duplicate")
DIFFICULTY_METRIC = "difficulty_bucket"
CLUSTER_METRIC = "cluster"
EMBEDDING_KIND = "instruction"
CONSENSUS_SCALES = ("accuracy", "completeness", "conciseness")
# Filter reasons, in the order the filters apply: a sample left out is counted under the first that drops it.
FILTER_REASONS = ("status", "task_type", "language", "duplicate", "flagged", "metric", "consensus")
ATTRIBUTES = ("task_type", "difficulty", "language", "cluster")


# --- the mark -----------------------------------------------------------------------------------

def _lock_for_mark() -> None:
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (SampleRevision, StatusChange))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '30s'")
        # Revision first: a decision writes its revision before its status change.
        cursor.execute(f"LOCK TABLE {tables} IN SHARE MODE")


def as_of_read(*, dataset) -> dict[str, Any]:
    """The marks of the dataset's state now, read in one statement (one snapshot) without locking."""
    q = connection.ops.quote_name
    sample_t, change_t, revision_t, job_t = (q(m._meta.db_table) for m in (Sample, StatusChange, SampleRevision, ImportJob))
    if connection.vendor == "postgresql":
        pending = f"ARRAY(SELECT id FROM {job_t} WHERE dataset_id = %s AND status = %s ORDER BY id)"
    else:
        pending = f"(SELECT group_concat(id) FROM (SELECT id FROM {job_t} WHERE dataset_id = %s AND status = %s ORDER BY id))"
    # The dataset's newest sample: the largest of the newest per status, each one step down the (dataset,
    # status, id) index. A plain MAX(id) ... WHERE dataset_id walks the primary key back from the newest
    # sample of every dataset (seconds on a big database, with the SHARE locks held).
    statuses = list(Sample.Status.values)
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    newest = ", ".join(f"COALESCE((SELECT MAX(id) FROM {sample_t} WHERE dataset_id = %s AND status = %s), 0)" for _s in statuses)
    sql = (f"SELECT {greatest}({newest}), (SELECT MAX(id) FROM {change_t}), "
           f"(SELECT MAX(id) FROM {revision_t}), {pending}")
    params = [p for st in statuses for p in (dataset.pk, st)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, dataset.pk, ImportJob.Status.RUNNING])
        sample_id, change_id, revision_id, jobs = cursor.fetchone()
    if isinstance(jobs, str):
        jobs = [int(j) for j in jobs.split(",") if j]
    mark: dict[str, Any] = {"sample_id": sample_id or 0, "status_change_id": change_id or 0, "revision_id": revision_id or 0,
                            "at": timezone.now().isoformat()}
    if jobs:
        mark["pending_imports"] = sorted(int(j) for j in jobs)
    return mark


def as_of_fix(*, dataset) -> dict[str, Any]:
    """The marks an export is taken from. Call inside the transaction that records the export."""
    _lock_for_mark()
    return as_of_read(dataset=dataset)


# --- columns ------------------------------------------------------------------------------------

def _chunks(rows: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


class _Coder:
    """Integer codes for text values (code 0 is "no value")."""

    def __init__(self) -> None:
        self.values: list[str | None] = [None]
        self._codes: dict[Any, int] = {None: 0, "": 0}

    def code(self, value: Any) -> int:
        c = self._codes.get(value)
        if c is None:
            c = self._codes[value] = len(self.values)
            self.values.append(value)
        return c


@dataclass
class Column:
    """A text attribute of every candidate: `codes` index `values` (values[0] is None: no value)."""

    codes: np.ndarray
    values: list[str | None]

    def value_of(self, position: int) -> str | None:
        return self.values[int(self.codes[position])]


def _positions(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted `ids`: (positions in ids, mask of `wanted` found there)."""
    pos = np.searchsorted(ids, wanted)
    pos_c = np.minimum(pos, max(ids.shape[0] - 1, 0))
    found = (pos < ids.shape[0]) & (ids[pos_c] == wanted) if ids.shape[0] else np.zeros(wanted.shape[0], bool)
    return pos_c, found


def _id_array(qs, field_name: str = "sample_id") -> np.ndarray:
    return np.unique(np.fromiter(qs.values_list(field_name, flat=True).iterator(chunk_size=CHUNK), dtype=np.int64))


@dataclass
class Snapshot:
    """The candidates: samples that pass the filters, as columns sorted by id; `total` samples were in
    the dataset at the mark and `filtered` says how many each filter left out."""

    ids: np.ndarray
    task_type: Column
    language: Column
    total: int
    filtered: dict[str, int]
    difficulty: Column | None = None
    cluster: np.ndarray | None = None
    quality: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def strata(self, by: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
        """The sorted distinct stratum keys for `balance.by` and each candidate's code into them."""
        n = len(self)
        if not by:
            return (ALL_STRATUM,), _zeros(n, np.int64)
        parts: list[tuple[np.ndarray, list[Any]]] = []
        for name in by:
            if name == "cluster":
                values, codes = np.unique(self.cluster if self.cluster is not None else np.full(n, NO_CLUSTER, np.int64),
                                          return_inverse=True)
                parts.append((codes.reshape(-1).astype(np.int64), [None if v == NO_CLUSTER else int(v) for v in values]))
            else:
                col = getattr(self, name)
                if col is None:
                    parts.append((np.zeros(n, np.int64), [None]))
                else:
                    parts.append((col.codes.astype(np.int64), col.values))
        combo = np.zeros(n, np.int64)
        for codes, values in parts:
            combo = combo * len(values) + codes
        uniq, inverse = np.unique(combo, return_inverse=True)
        names = []
        for c in uniq.tolist():
            attrs = {}
            for name, (_codes, values) in zip(reversed(by), reversed(parts), strict=True):
                c, r = divmod(c, len(values))
                attrs[name] = values[r]
            names.append(stratum_key_for(by, attrs))
        keys = tuple(sorted(set(names)))
        index = {k: i for i, k in enumerate(keys)}
        key_code = np.array([index[k] for k in names], np.int64)
        return keys, key_code[inverse.reshape(-1)] if n else np.zeros(0, np.int64)

    def pool(self, by: Sequence[str], rows: np.ndarray | None = None) -> Pool:
        """The selection's Pool: stratum codes, quality, cluster and embedding rows per candidate."""
        keys, codes = self.strata(by)
        n = len(self)
        # Columns the selection does not use are constant views that take no memory.
        return Pool(
            ids=self.ids, keys=keys, codes=codes,
            quality=self.quality if self.quality is not None else _constant(n, np.nan, np.float64),
            cluster=self.cluster if self.cluster is not None else _constant(n, NO_CLUSTER, np.int64),
            row=rows if rows is not None else _constant(n, -1, np.int64),
        )


def _changed_since(dataset_id: int, as_of: dict[str, Any]) -> dict[int, str]:
    """Samples that moved after the mark, with their status at the mark (the earliest move's from_status).
    One primary-key range scan of the moves since the mark (of every dataset: few, as the mark is recent);
    the dataset is checked here, so no database walks the dataset's whole history on a (dataset, ...) index."""
    status_at: dict[int, str] = {}
    bound = as_of.get("sample_id") or 0
    moves = (StatusChange.objects.filter(id__gt=as_of.get("status_change_id") or 0).order_by("id")
             .values_list("dataset_id", "sample_id", "from_status"))
    for move_dataset, sample_id, from_status in moves.iterator(chunk_size=CHUNK):
        if move_dataset == dataset_id and sample_id <= bound:
            status_at.setdefault(sample_id, from_status)
    return status_at


def _samples_at_mark(dataset_id: int, as_of: dict[str, Any]):
    qs = Sample.objects.filter(dataset_id=dataset_id, id__lte=as_of.get("sample_id") or 0).order_by()
    pending = as_of.get("pending_imports") or []
    if pending:
        qs = qs.exclude(import_job_id__in=pending)
    return qs


def _zeros(n: int, dtype) -> np.ndarray:
    """n zeros that take no memory (a read-only broadcast view): for columns that are not asked for."""
    return np.broadcast_to(np.zeros(1, dtype), (n,))


def _constant(n: int, value, dtype) -> np.ndarray:
    return np.broadcast_to(np.full(1, value, dtype), (n,))


def _fetch_base(qs, tt: _Coder | None, lang: _Coder | None, flags: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, task type codes, language codes, flag counts) of the rows of `qs`; a column that is not
    asked for (None / False) is left at 0 and not fetched, so the common case reads ids alone."""
    if tt is None and lang is None and not flags:
        ids = np.fromiter(qs.values_list("id", flat=True).iterator(chunk_size=CHUNK), dtype=np.int64)
        return ids, _zeros(ids.shape[0], np.int32), _zeros(ids.shape[0], np.int32), _zeros(ids.shape[0], np.int64)
    fields = ["id", "task_type" if tt else None, "language" if lang else None, "flag_count" if flags else None]
    wanted = [f for f in fields if f]
    ids, tts, langs, flag_counts = [], [], [], []
    for batch in _chunks(qs.values_list(*wanted).iterator(chunk_size=CHUNK)):
        cols = dict(zip(wanted, zip(*batch, strict=True), strict=True))
        n = len(batch)
        ids.append(np.array(cols["id"], np.int64))
        tts.append(np.array([tt.code(v) for v in cols["task_type"]], np.int32) if tt else np.zeros(n, np.int32))
        langs.append(np.array([lang.code(v) for v in cols["language"]], np.int32) if lang else np.zeros(n, np.int32))
        flag_counts.append(np.array(cols["flag_count"], np.int64) if flags else np.zeros(n, np.int64))
    if not ids:
        empty = np.zeros(0, np.int64)
        return empty, empty.astype(np.int32), empty.astype(np.int32), empty
    return np.concatenate(ids), np.concatenate(tts), np.concatenate(langs), np.concatenate(flag_counts)


def _metric_pass(dataset_id: int, rng) -> np.ndarray:
    qs = SampleMetric.objects.filter(dataset_id=dataset_id, metric=rng.name, value__isnull=False)
    if rng.min is not None:
        qs = qs.filter(value__gte=rng.min)
    if rng.max is not None:
        qs = qs.filter(value__lte=rng.max)
    return _id_array(qs)


def _consensus_pass(dataset_id: int, filters: Filters) -> np.ndarray:
    c = filters.consensus
    qs = ReviewItem.objects.filter(dataset_id=dataset_id)
    if c.min_confidence is not None:
        qs = qs.filter(verdict_confidence__gte=c.min_confidence)
    for name in CONSENSUS_SCALES:
        bound = getattr(c, f"min_{name}")
        if bound is not None:
            qs = qs.filter(**{f"{name}__gte": bound})
    if c.verdict:
        qs = qs.filter(verdict__in=c.verdict)
    return _id_array(qs)


def snapshot_load(*, dataset_id: int, as_of: dict[str, Any], spec: ExportSpec, attributes: Iterable[str] = ()) -> Snapshot:
    """The samples of the dataset at the mark that pass the spec's filters, with the attributes that the
    spec's balance and selection need (plus `attributes`: "difficulty", "cluster", for a preview)."""
    f = spec.filters
    statuses = set(f.status)
    base = _samples_at_mark(dataset_id, as_of)
    total = base.count()
    wanted = set(attributes) | set(spec.balance.by)
    tt = _Coder() if f.task_types or "task_type" in wanted else None
    lang = _Coder() if f.languages or "language" in wanted else None
    need_flags = f.flags == "exclude_any"
    # The current status on the index first, then the moves since the mark: a sample that moves in
    # between is in the move list, so its status at the mark is still right.
    qs = base if statuses >= set(STATUSES) else base.filter(status__in=sorted(statuses))
    ids, tts, langs, flags = _fetch_base(qs, tt, lang, need_flags)
    changed = _changed_since(dataset_id, as_of)
    if changed:
        moved = np.array(sorted(changed), np.int64)
        keep = ~np.isin(ids, moved)
        ids, tts, langs, flags = (a[keep] if a.strides[0] else a[: int(keep.sum())] for a in (ids, tts, langs, flags))
        back = [sid for sid in moved.tolist() if changed[sid] in statuses]
        by_pk = Sample.objects.order_by()  # the moves are this dataset's, up to the mark: look them up by primary key
        if as_of.get("pending_imports"):
            by_pk = by_pk.exclude(import_job_id__in=as_of["pending_imports"])
        extra = [_fetch_base(by_pk.filter(id__in=batch), tt, lang, need_flags) for batch in _chunks(back, ROW_BATCH)]
        if extra:
            ids, tts, langs, flags = (np.concatenate([a, *(e[i] for e in extra)]) if a.strides[0] or i == 0
                                      else _zeros(a.shape[0] + sum(e[0].shape[0] for e in extra), a.dtype)
                                      for i, a in enumerate((ids, tts, langs, flags)))
    if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        order = np.argsort(ids, kind="stable")
        ids, tts, langs, flags = (a[order] if a.strides[0] else a for a in (ids, tts, langs, flags))

    filtered = dict.fromkeys(FILTER_REASONS, 0)
    filtered["status"] = total - int(ids.shape[0])
    alive = np.ones(ids.shape[0], bool)

    def drop(reason: str, keep: np.ndarray) -> None:
        nonlocal alive
        gone = alive & ~keep
        filtered[reason] += int(gone.sum())
        alive &= keep

    if f.task_types:
        drop("task_type", np.isin(tts, [tt.code(v) for v in f.task_types]))
    if f.languages:
        drop("language", np.isin(langs, [lang.code(v) for v in f.languages]))
    if f.drop_duplicates and alive.any():
        dup = _id_array(SampleFlag.objects.filter(dataset_id=dataset_id, rule__in=DUPLICATE_RULES))
        drop("duplicate", ~np.isin(ids, dup))
    if f.flags == "exclude_any":
        drop("flagged", flags == 0)
    elif isinstance(f.flags, tuple) and f.flags and alive.any():
        names = list(f.flags)
        flagged = _id_array(SampleFlag.objects.filter(Q(rule__in=names) | Q(metric__in=names), dataset_id=dataset_id))
        drop("flagged", ~np.isin(ids, flagged))
    per_metric: dict[str, int] = {}
    for rng in f.metrics:
        before = filtered["metric"]
        drop("metric", np.isin(ids, _metric_pass(dataset_id, rng)))
        per_metric[rng.name] = filtered["metric"] - before
    if f.consensus.active:
        drop("consensus", np.isin(ids, _consensus_pass(dataset_id, f)))

    every = bool(alive.all())
    n_alive = int(alive.sum())

    def kept(a: np.ndarray) -> np.ndarray:
        return a if every else a[alive] if a.strides[0] else a[:n_alive]

    snap = Snapshot(ids=kept(ids), task_type=Column(kept(tts), tt.values if tt else [None]),
                    language=Column(kept(langs), lang.values if lang else [None]),
                    total=total, filtered={k: v for k, v in filtered.items() if v})
    if per_metric:
        snap.extra["metric_dropped"] = {k: v for k, v in per_metric.items() if v}
    if "difficulty" in wanted:
        snap.difficulty = difficulty_column(dataset_id, snap.ids)
    if "cluster" in wanted or spec.select.method == "cluster":
        snap.cluster = cluster_column(dataset_id, snap.ids)
    if spec.select.quality_key:
        snap.quality = quality_column(dataset_id, snap.ids, spec.select.quality_key)
    return snap


# --- attributes ---------------------------------------------------------------------------------

def _fill(ids: np.ndarray, rows: Iterable[tuple[int, Any]], out: np.ndarray, convert) -> np.ndarray:
    """Put each (sample id, value) of `rows` at the sample's position in `out`; ids not in `ids` are skipped."""
    for batch in _chunks(rows):
        sids = np.fromiter((r[0] for r in batch), np.int64, len(batch))
        pos, found = _positions(ids, sids)
        values = convert([r[1] for r in batch])
        out[pos[found]] = values[found]
    return out


def difficulty_column(dataset_id: int, ids: np.ndarray) -> Column:
    """Scoring's difficulty bucket, else the annotators' consensus difficulty, else none."""
    coder = _Coder()
    for v in ("easy", "medium", "hard"):
        coder.code(v)
    codes = np.zeros(ids.shape[0], np.int32)
    if ids.shape[0]:
        lo, hi = int(ids[0]), int(ids[-1])
        consensus = (ReviewItem.objects.filter(dataset_id=dataset_id, sample_id__gte=lo, sample_id__lte=hi).exclude(difficulty="")
                     .values_list("sample_id", "difficulty").iterator(chunk_size=CHUNK))
        _fill(ids, consensus, codes, lambda vs: np.array([coder.code(v) for v in vs], np.int32))
        buckets = (SampleMetric.objects.filter(dataset_id=dataset_id, metric=DIFFICULTY_METRIC, sample_id__gte=lo, sample_id__lte=hi)
                   .exclude(label="").values_list("sample_id", "label").iterator(chunk_size=CHUNK))
        _fill(ids, buckets, codes, lambda vs: np.array([coder.code(v) for v in vs], np.int32))  # scoring's bucket wins
    return Column(codes, coder.values)


def cluster_column(dataset_id: int, ids: np.ndarray) -> np.ndarray:
    """Scoring's instruction cluster (metric "cluster"), NO_CLUSTER where there is none."""
    out = np.full(ids.shape[0], NO_CLUSTER, np.int64)
    if ids.shape[0]:
        rows = (SampleMetric.objects.filter(dataset_id=dataset_id, metric=CLUSTER_METRIC, value__isnull=False,
                                            sample_id__gte=int(ids[0]), sample_id__lte=int(ids[-1]))
                .values_list("sample_id", "value").iterator(chunk_size=CHUNK))
        _fill(ids, rows, out, lambda vs: np.array(vs, np.float64).astype(np.int64))
    return out


def quality_column(dataset_id: int, ids: np.ndarray, key: str) -> np.ndarray:
    """Higher is better. "consensus": the mean of the consensus scales (accuracy, completeness,
    conciseness; 1-5) that are set; otherwise the value of the named metric. NaN where unknown."""
    out = np.full(ids.shape[0], np.nan)
    if not ids.shape[0]:
        return out
    lo, hi = int(ids[0]), int(ids[-1])
    if key == "consensus":
        rows = (ReviewItem.objects.filter(dataset_id=dataset_id, sample_id__gte=lo, sample_id__lte=hi)
                .values_list("sample_id", *CONSENSUS_SCALES).iterator(chunk_size=CHUNK))

        def mean(vs):
            a = np.array([[np.nan if x is None else x for x in v] for v in vs], np.float64).reshape(-1, len(CONSENSUS_SCALES))
            counts = (~np.isnan(a)).sum(axis=1)
            return np.where(counts > 0, np.nansum(a, axis=1) / np.maximum(counts, 1), np.nan)

        return _fill(ids, ((r[0], r[1:]) for r in rows), out, mean)
    rows = (SampleMetric.objects.filter(dataset_id=dataset_id, metric=key, value__isnull=False, sample_id__gte=lo, sample_id__lte=hi)
            .values_list("sample_id", "value").iterator(chunk_size=CHUNK))
    return _fill(ids, rows, out, lambda vs: np.array(vs, np.float64))


def embedder_key(dataset_id: int) -> str | None:
    """The embedding model of the dataset's newest scoring run that made embeddings, else the model
    most of its stored embeddings come from; None when it has none."""
    for used in ScoringRun.objects.filter(dataset_id=dataset_id).order_by("-created_at", "-id").values_list("models_used", flat=True)[:20]:
        if isinstance(used, dict) and used.get("embedder_key"):
            return str(used["embedder_key"])
    row = (SampleEmbedding.objects.filter(sample__dataset_id=dataset_id, kind=EMBEDDING_KIND).values("model_key")
           .annotate(n=Count("id")).order_by("-n", "model_key").first())
    return row["model_key"] if row else None


def embedding_rows(dataset_id: int, ids: np.ndarray, key: str | None = None) -> tuple[np.ndarray | None, np.ndarray, str | None]:
    """(matrix, rows, model key): the instruction embeddings of `ids`, row i of the matrix for ids[i]
    (rows[i] = i), rows[i] = -1 where a sample has none. None for the matrix when nothing is stored."""
    rows = np.full(ids.shape[0], -1, np.int64)
    key = key or embedder_key(dataset_id)
    if key is None or not ids.shape[0]:
        return None, rows, key
    qs = SampleEmbedding.objects.filter(kind=EMBEDDING_KIND, model_key=key).order_by()
    if ids.shape[0] <= ROW_BATCH:  # a few (the preview's sample): by the (sample, kind, model) index
        source = (r for batch in _chunks(ids.tolist(), ROW_BATCH)
                  for r in qs.filter(sample_id__in=batch).values_list("sample_id", "vector"))
    else:
        source = (qs.filter(sample__dataset_id=dataset_id, sample_id__gte=int(ids[0]), sample_id__lte=int(ids[-1]))
                  .values_list("sample_id", "vector").iterator(chunk_size=CHUNK // 4))
    matrix = None
    for batch in _chunks(source, CHUNK // 4):
        sids = np.fromiter((r[0] for r in batch), np.int64, len(batch))
        pos, found = _positions(ids, sids)
        for p, ok, (_sid, vec) in zip(pos.tolist(), found.tolist(), batch, strict=True):
            if not ok:
                continue
            v = np.frombuffer(bytes(vec), dtype=np.float32)
            if matrix is None:
                matrix = np.zeros((ids.shape[0], v.shape[0]), np.float32)
            if v.shape[0] != matrix.shape[1]:
                continue
            matrix[p] = v
            rows[p] = p
    return matrix, rows, key


# --- rows ---------------------------------------------------------------------------------------

def revisions_at_mark(dataset_id: int, as_of: dict[str, Any], ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sample ids, revision ids), sorted by sample id: for each of `ids` that has one, its newest approved
    revision with an id up to the mark."""
    rows = (SampleRevision.objects.filter(sample__dataset_id=dataset_id, status=SampleRevision.Status.APPROVED,
                                          id__lte=as_of.get("revision_id") or 0, sample_id__lte=as_of.get("sample_id") or 0)
            .order_by().values("sample_id").annotate(newest=Max("id")).values_list("sample_id", "newest"))
    pairs = np.array(list(rows), np.int64).reshape(-1, 2)
    pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
    keep = np.isin(pairs[:, 0], ids)
    return pairs[keep, 0], pairs[keep, 1]


def _segments(ids: np.ndarray, block: int) -> Iterator[tuple[int, int, bool]]:
    """Split sorted `ids` into runs [start, end) to read with one query each: consecutive blocks that stay
    dense (at least half the primary keys between the run's first and last id are wanted) make one run,
    read as a key range; a sparse block is a run of its own, read by its ids."""
    n = ids.shape[0]
    run_start, run_dense = 0, None
    for b in range(0, n, block):
        e = min(b + block, n)
        dense = (e - b) * 2 >= int(ids[e - 1]) - int(ids[b]) + 1
        if run_dense is not None and dense and run_dense and (e - run_start) * 2 >= int(ids[e - 1]) - int(ids[run_start]) + 1:
            continue  # the run grows
        if run_dense is not None:
            yield run_start, b, run_dense
        run_start, run_dense = b, dense
    if run_dense is not None:
        yield run_start, n, run_dense


def iter_rows(dataset_id: int, ids: np.ndarray, revised: tuple[np.ndarray, np.ndarray],
              batch_size: int = ROW_BATCH) -> Iterator[tuple[int, str, int | None, list[dict[str, Any]]]]:
    """(sample id, external id, revision id or None, messages) for `ids` (ascending), in that order; a
    revised sample's messages are its revision's. Dense runs of ids are streamed as one primary-key range
    (`.iterator(chunk_size=batch_size)`, a server-side cursor on PostgreSQL), rows not chosen skipped;
    sparse ones are read by their ids. The dataset is checked here rather than in SQL: with it in the WHERE
    clause SQLite (no statistics) walks a (dataset, ...) index, reading the whole dataset for every query."""
    rev_samples, rev_ids = revised
    rows_of = Sample.objects.order_by("id").values_list("id", "dataset_id", "external_id", "messages")
    for start, end, dense in _segments(ids, batch_size):
        if dense:
            rows = rows_of.filter(id__gte=int(ids[start]), id__lte=int(ids[end - 1]))
        else:
            rows = rows_of.filter(id__in=ids[start:end].tolist())
        k = start            # the next wanted position in ids
        block_end = start    # wanted ids of the current block, as Python ints, and their revisions
        wanted: list[int] = []
        revision_of: dict[int, int] = {}
        revision_messages: dict[int, Any] = {}
        for sample_id, row_dataset, external_id, messages in rows.iterator(chunk_size=batch_size):
            if k == block_end:
                block_end = min(k + batch_size, end)
                block = ids[k:block_end]
                wanted = block.tolist()
                pos, found = _positions(rev_samples, block)
                revision_of = dict(zip(block[found].tolist(), rev_ids[pos[found]].tolist(), strict=True))
                revision_messages = dict(SampleRevision.objects.filter(id__in=list(revision_of.values()))
                                         .values_list("id", "messages")) if revision_of else {}
            want = wanted[k - (block_end - len(wanted))]
            if sample_id < want:
                continue  # in the range, not chosen
            if sample_id > want or row_dataset != dataset_id:
                raise RuntimeError(f"chosen sample {want} disappeared while the export was built (deleted?)")
            rev = revision_of.get(sample_id)
            yield sample_id, external_id, rev, (revision_messages[rev] if rev is not None else messages)
            k += 1
            if k == end:
                break
        if k != end:
            raise RuntimeError(f"{end - k} chosen samples disappeared while the export was built (deleted?)")
