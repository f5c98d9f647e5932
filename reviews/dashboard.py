"""Reads for the reviewer dashboard. Every figure is an aggregate computed in the database (GROUP BY
over indexed columns); Python only walks the results, whose size is bounded by days x statuses,
annotators x days or task types x buckets, never by samples or labels. The page runs the same
number of queries whatever the dataset's size. Callers pass a dataset already scoped to the user.

Progress over time is anchored on the present: the current counts by status (one GROUP BY on
Sample) are the last day of the series, and each earlier day is found by undoing that day's moves
(samples arriving as `new` with their import job, the StatusChange log's from/to counts). What
happened before the window, and anything the log does not explain, is folded into the first day.
So the series always ends on the true counts, and starts at zero when the log tells the whole story.

Finished days in the cache, today live. At 1,000,000 samples an aggregate over the whole window
takes the better part of a second, so what cannot change any more is counted once and kept in the
cache, each finished day under its own key (a new day costs one day's query), and only today is
counted on every view, through the indexes on (dataset, at) of StatusChange and (dataset,
annotator, created_at) of Label:
- progress: the moves of each finished day (the log is append-only and stamped when written);
- throughput: the labels of each finished day, kept HISTORY_TTL (a label import can date labels in
  the past: those show within that time);
- balance: the approved samples as they stood at a checkpoint (the last full hour at least an hour
  ago), by task type x bucket, counted once in one statement (one snapshot) and then rolled forward
  hour by hour over the log: a sample's moves into `approved` minus its moves out over any stretch
  of time is [approved at its end] - [approved at its start]; live, the same sum over the moves
  since the checkpoint. Exact as long as status changes are logged; kept per scoring run, and
  counted afresh every BALANCE_RECOUNT.
A cache that fails is skipped (everything is counted live).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Case, Count, F, FilteredRelation, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotator.models import Dataset, ImportJob, Label, Sample
from annotator.rubric import DIFFICULTIES
from scoring.models import SampleMetric, ScoringRun

from .models import AgreementReport, ReviewItem, StatusChange
from .selectors import conflict_reason_counts

logger = logging.getLogger(__name__)

WINDOW_DAYS = 90
HISTORY_TTL = 6 * 3600  # seconds a finished day's labels are kept (a label import can date labels in the past)
PROGRESS_TTL = 35 * 24 * 3600  # a finished day's moves never change
BALANCE_TTL = 3 * 24 * 3600
BALANCE_RECOUNT = timedelta(days=7)  # the kept balance is counted afresh at least this often
CHECKPOINT_MARGIN = timedelta(hours=1)  # the balance is kept up to the last full hour at least this long ago
STATUSES: tuple[str, ...] = tuple(Sample.Status.values)  # new, annotating, in_review, approved, rejected
BUCKETS: tuple[str, ...] = (*DIFFICULTIES, "")  # "" = no bucket for the sample
MAX_TASK_TYPES = 30  # rows of the balance table; the rest are folded into one row
PENDING = (AgreementReport.Status.QUEUED, AgreementReport.Status.RUNNING)
APPROVED = Sample.Status.APPROVED


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _window(days: int, today: date | None) -> tuple[date, date, datetime]:
    """(first day, today, the first day's midnight in the current time zone)."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    return first, today, _midnight(first)


def _span(first: date, today: date, seen: set[date]) -> list[date]:
    """The days to draw: from the day before the earliest event in the window (so a series that
    starts inside the window starts from its state before that) up to today, at least two days."""
    start = max(first, min(seen) - timedelta(days=1)) if seen else today - timedelta(days=1)
    start = min(start, today - timedelta(days=1))
    return [start + timedelta(days=i) for i in range((today - start).days + 1)]


def _key(dataset: Dataset, kind: str, *parts) -> str:
    """The dataset's creation time is in the key, so a new dataset that reuses an id (SQLite can)
    never sees another's figures; so is the time zone, which draws the days' borders."""
    stamp = int(dataset.created_at.timestamp() * 1_000_000) if dataset.created_at else 0
    return ":".join(("dashboard", "v2", kind, str(dataset.pk), str(stamp), timezone.get_current_timezone_name(), *map(str, parts)))


def _cache_call(method: str, *args, default=None):
    """A cache that fails is skipped: the figures are computed without it."""
    try:
        return getattr(cache, method)(*args)
    except Exception:  # noqa: BLE001
        logger.warning("dashboard cache unavailable", exc_info=True)
        return default


def _per_day(dataset: Dataset, kind: str, days: list[date], compute: Callable[[datetime, datetime], dict[date, dict]],
             ttl: int) -> dict[date, dict]:
    """{day: figures} for finished days, each kept in the cache on its own: the days missing are
    counted by one `compute(since, until)` over the span they cover, so a new day costs one day."""
    keys = {day: _key(dataset, kind, day.isoformat()) for day in days}
    found = _cache_call("get_many", list(keys.values()), default={}) or {}
    out = {day: found[key] for day, key in keys.items() if key in found}
    missing = [day for day in days if day not in out]
    if missing:
        lo, hi = min(missing), max(missing)
        fresh = compute(_midnight(lo), _midnight(hi + timedelta(days=1)))
        span = [d for d in days if lo <= d <= hi]
        for day in span:
            out[day] = fresh.get(day, {})
        _cache_call("set_many", {keys[d]: out[d] for d in span}, ttl)
    return out


def status_counts(dataset: Dataset) -> dict[str, int]:
    """Samples per status now (one GROUP BY over the (dataset, status, id) index)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in Sample.objects.filter(dataset=dataset).order_by().values_list("status").annotate(n=Count("id")):
        counts[status] = counts.get(status, 0) + n
    return counts


# ---------------------------------------------------------------------------------------------
# 1. Progress over time
# ---------------------------------------------------------------------------------------------

def _flows(dataset: Dataset, since: datetime, until: datetime | None) -> dict[date, dict]:
    """Samples arriving (imports) and moving (StatusChange) in [since, until), per day (2 queries):
    {day: {"net": {status: n}, "arrived": n, "moved": n}}."""
    jobs = ImportJob.objects.filter(dataset=dataset, status=ImportJob.Status.SUCCEEDED, finished_at__gte=since, imported_count__gt=0)
    moves = StatusChange.objects.filter(dataset=dataset, at__gte=since)
    if until is not None:
        jobs, moves = jobs.filter(finished_at__lt=until), moves.filter(at__lt=until)
    out: dict[date, dict] = {}

    def day_of(day: date) -> dict:
        return out.setdefault(day, {"net": defaultdict(int), "arrived": 0, "moved": 0})

    # Samples arrive as `new` when their import finishes (an import writes its samples in one transaction).
    for day, n in jobs.order_by().annotate(day=TruncDate("finished_at")).values_list("day").annotate(n=Sum("imported_count")):
        d = day_of(day)
        d["net"][Sample.Status.NEW] += n
        d["arrived"] += n
    for day, before, after, n in (moves.order_by().annotate(day=TruncDate("at"))
                                  .values_list("day", "from_status", "to_status").annotate(n=Count("id"))):
        d = day_of(day)
        d["net"][before] -= n
        d["net"][after] += n
        d["moved"] += n
    return {day: {**d, "net": dict(d["net"])} for day, d in out.items()}


def progress(dataset: Dataset, *, days: int = WINDOW_DAYS, today: date | None = None) -> dict:
    """Samples by status at the end of each day of the window (3 queries: counts now, today's imports
    and moves; 2 more for the finished days not in the cache yet).

    {"days": [date], "series": {status: [n per day]}, "current": {status: n}, "before": {status: n},
     "arrived": [n per day], "moved": [n per day], "since": first day of the window, "window_days": days}

    `before` is the state at the start of the first drawn day: earlier history folded in (all zeros
    when every sample arrived through an import inside the window and every move is in the log)."""
    first, today, _since = _window(days, today)
    current = status_counts(dataset)
    finished = [first + timedelta(days=i) for i in range((today - first).days)]
    # The log is append-only and stamped when written: a finished day never changes.
    history = _per_day(dataset, "progress", finished, lambda lo, hi: _flows(dataset, lo, hi), PROGRESS_TTL)
    live = _flows(dataset, _midnight(today), None)
    net: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    arrived: dict[date, int] = defaultdict(int)
    moved: dict[date, int] = defaultdict(int)
    for part in (history, live):
        for day, figures in part.items():
            if not figures:
                continue
            day = min(day, today)
            for status, n in figures["net"].items():
                net[day][status] += n
            arrived[day] += figures["arrived"]
            moved[day] += figures["moved"]
    span = _span(first, today, set(net))
    state = {s: current.get(s, 0) - sum(d.get(s, 0) for d in net.values()) for s in STATUSES}
    before = dict(state)
    series: dict[str, list[int]] = {s: [] for s in STATUSES}
    for day in span:
        for s in STATUSES:
            state[s] += net[day].get(s, 0) if day in net else 0
            series[s].append(state[s])
    return {
        "days": span, "series": series, "current": current, "before": before, "since": first, "window_days": days,
        "arrived": [arrived.get(d, 0) for d in span], "moved": [moved.get(d, 0) for d in span],
        "total": sum(current.values()), "folded": any(before.values()),
    }


# ---------------------------------------------------------------------------------------------
# 2. Throughput per annotator
# ---------------------------------------------------------------------------------------------

def _label_cells(dataset: Dataset, since: datetime, *, until: datetime | None = None, annotators: list[int] | None = None) -> dict[date, dict]:
    """{day: {annotator id: labels}} made in [since, until) (1 query). With `annotators` the index on
    (dataset, annotator, created_at) is entered once per annotator, so a day costs what it holds."""
    qs = Label.objects.filter(dataset=dataset, created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    if annotators is not None:
        qs = qs.filter(annotator_id__in=annotators)
    out: dict[date, dict[int, int]] = defaultdict(dict)
    # COUNT(*), not COUNT(id): the index holds every column the query needs (an index-only scan).
    for user_id, day, n in qs.order_by().annotate(day=TruncDate("created_at")).values_list("annotator", "day").annotate(n=Count("*")):
        out[day][user_id] = n
    return dict(out)


def _label_authors(dataset: Dataset) -> list[int]:
    """Everyone with a label in the dataset (1 query: a loose scan of the (dataset, annotator,
    created_at) index, one step per person, however many labels each has)."""
    table = connection.ops.quote_name(Label._meta.db_table)
    sql = (f"WITH RECURSIVE a(id) AS (SELECT MIN(annotator_id) FROM {table} WHERE dataset_id = %s "
           f"UNION ALL SELECT (SELECT MIN(annotator_id) FROM {table} WHERE dataset_id = %s AND annotator_id > a.id) FROM a WHERE a.id IS NOT NULL) "
           f"SELECT id FROM a WHERE id IS NOT NULL")
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset.pk, dataset.pk])
        return [row[0] for row in cursor.fetchall()]


def throughput(dataset: Dataset, *, days: int = WINDOW_DAYS, today: date | None = None) -> dict:
    """Labels per day per annotator in the window (3 queries: who labelled, today's labels, names; 1
    more for the finished days not in the cache). Every label version counts: a revision is work done too (labels
    per hour in the annotator table counts the same way).

    {"days": [date], "per_day": [n], "total": n, "annotators": [{"id", "annotator", "total",
     "per_day": [n], "best": n, "active_days": n}] most labels first}"""
    first, today, _since = _window(days, today)
    finished = [first + timedelta(days=i) for i in range((today - first).days)]
    # One index range per person and day span: a day costs what it holds, not the whole dataset.
    people = _label_authors(dataset)
    if not people:
        return {"days": _span(first, today, set()), "per_day": [0, 0], "total": 0, "annotators": [], "since": first, "window_days": days}
    history = _per_day(dataset, "throughput", finished, lambda lo, hi: _label_cells(dataset, lo, until=hi, annotators=people), HISTORY_TTL)
    live = _label_cells(dataset, _midnight(today), annotators=people)
    cells: dict[int, dict[date, int]] = defaultdict(dict)
    seen: set[date] = set()
    for part in (history, live):
        for day, per in part.items():
            for user_id, n in per.items():
                d = min(day, today)
                cells[user_id][d] = cells[user_id].get(d, 0) + n
                seen.add(d)
    span = _span(first, today, seen)
    User = get_user_model()
    names = dict(User.objects.filter(pk__in=list(cells)).values_list("pk", User.USERNAME_FIELD)) if cells else {}
    annotators = []
    for user_id, per in cells.items():
        row = [per.get(d, 0) for d in span]
        annotators.append({"id": user_id, "annotator": names.get(user_id, f"#{user_id}"), "total": sum(row), "per_day": row,
                           "best": max(row), "active_days": sum(1 for n in row if n)})
    annotators.sort(key=lambda a: (-a["total"], a["annotator"]))
    per_day = [sum(a["per_day"][i] for a in annotators) for i in range(len(span))]
    return {"days": span, "per_day": per_day, "total": sum(per_day), "annotators": annotators, "since": first, "window_days": days}


def agreement_state(dataset: Dataset) -> dict:
    """The newest succeeded agreement report, the one pending (queued or running) if any, the newest
    failure after the last success, and whether labels were added since the shown report (2-3 queries).

    {"report": AgreementReport | None, "pending": AgreementReport | None, "failed": AgreementReport | None,
     "stale": bool, "criteria": [...], "annotators": [...]}"""
    reports = AgreementReport.objects.filter(dataset=dataset).order_by("-created_at", "-id")
    latest = reports.first()
    pending = latest if latest is not None and latest.status in PENDING else None
    if latest is not None and latest.status == AgreementReport.Status.SUCCEEDED:
        report = latest
    else:
        report = reports.filter(status=AgreementReport.Status.SUCCEEDED).first() if latest is not None else None
    failed = latest if latest is not None and latest.status == AgreementReport.Status.FAILED else None
    stale = bool(report) and Label.objects.filter(dataset=dataset, id__gt=report.last_label_id).exists()
    data = report.report if report is not None else {}
    criteria = []
    for c in data.get("criteria") or []:
        alpha = c.get("alpha") or {}
        criteria.append({
            "criterion": c.get("criterion", ""), "level": c.get("level", ""), "annotators": c.get("annotators"),
            "samples": c.get("samples"), "value": alpha.get("value"), "low": alpha.get("low"), "high": alpha.get("high"),
            "n": alpha.get("n"), "fleiss": c.get("fleiss"),
        })
    return {"report": report, "pending": pending, "failed": failed, "stale": stale, "criteria": criteria,
            "annotators": data.get("annotators") or [], "labels": data.get("labels")}


def conflict_reasons(dataset: Dataset) -> dict:
    """Open review items per reason code, most first (1 query), and how many items are open (1 query)."""
    return {"reasons": conflict_reason_counts(dataset), "open": ReviewItem.objects.filter(dataset=dataset, is_open=True).count()}


def _bucket_source(dataset: Dataset) -> tuple[str, int | None]:
    """("scoring", latest succeeded scoring run id) when the dataset has scoring's difficulty buckets,
    else ("consensus", None) (2 queries at most)."""
    if SampleMetric.objects.filter(dataset=dataset, metric="difficulty_bucket").exists():
        run = (ScoringRun.objects.filter(dataset=dataset, status=ScoringRun.Status.SUCCEEDED).order_by("-created_at", "-id")
               .values_list("id", flat=True).first())
        return "scoring", run
    return "consensus", None


def _with_bucket(qs: QuerySet[Sample], source: str) -> QuerySet[Sample]:
    if source == "scoring":
        return qs.annotate(bucket_m=FilteredRelation("metrics", condition=Q(metrics__metric="difficulty_bucket")), b=F("bucket_m__label"))
    return qs.annotate(b=F("review__difficulty"))


def _cell(task_type: str | None, b: str | None) -> tuple[str, str]:
    return task_type or "", b if b in DIFFICULTIES else ""


def _approved_flows(dataset: Dataset, source: str, since: datetime, until: datetime | None) -> QuerySet:
    """(task type, bucket, n) rows: what the moves in [since, until) did to the approved samples,
    +1 for each move into `approved`, -1 for each move out. Over any stretch of time a sample's
    moves in minus out is [approved at its end] - [approved at its start], so this is the change in
    approved samples per cell, from the log alone (no per-sample subquery)."""
    moves = StatusChange.objects.filter(dataset=dataset, at__gte=since).filter(Q(to_status=APPROVED) | Q(from_status=APPROVED))
    if until is not None:
        moves = moves.filter(at__lt=until)
    if source == "scoring":
        moves = moves.annotate(bucket_m=FilteredRelation("sample__metrics", condition=Q(sample__metrics__metric="difficulty_bucket")),
                               b=F("bucket_m__label"))
    else:
        moves = moves.annotate(b=F("sample__review__difficulty"))
    into = Case(When(to_status=APPROVED, then=Value(1)), default=Value(0))
    out_of = Case(When(from_status=APPROVED, then=Value(1)), default=Value(0))
    return (moves.order_by().values("sample__task_type", "b").annotate(n=Sum(into) - Sum(out_of))
            .values_list("sample__task_type", "b", "n"))


def _approved_moves(dataset: Dataset, source: str, since: datetime, until: datetime | None) -> dict[tuple[str, str], int]:
    """The change in approved samples per (task type, bucket) over [since, until) (1 query)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for task_type, b, n in _approved_flows(dataset, source, since, until):
        if n:
            out[_cell(task_type, b)] += n
    return dict(out)


def _approved_at(dataset: Dataset, source: str, at: datetime) -> dict[tuple[str, str], int]:
    """Approved samples as they stood at `at`, by (task type, bucket): approved now, less what the
    moves since did; one statement (UNION ALL), so both parts see the same snapshot."""
    now = (_with_bucket(Sample.objects.filter(dataset=dataset, status=APPROVED).order_by(), source)
           .values("task_type", "b").annotate(n=Count("id"), part=Value(0)).values_list("task_type", "b", "n", "part"))
    since = _approved_flows(dataset, source, at, None).annotate(part=Value(1)).values_list("sample__task_type", "b", "n", "part")
    out: dict[tuple[str, str], int] = defaultdict(int)
    for task_type, b, n, part in now.union(since, all=True):
        out[_cell(task_type, b)] += -n if part else n
    return {cell: n for cell, n in out.items() if n}


def _checkpoint(now: datetime) -> datetime:
    """The hour, at least CHECKPOINT_MARGIN ago, up to which the balance is kept: a move stamped
    before it was written by a transaction that has long committed."""
    return (now - CHECKPOINT_MARGIN).replace(minute=0, second=0, microsecond=0)


def _approved_at_checkpoint(dataset: Dataset, source: str, run: int | None, at: datetime) -> dict[tuple[str, str], int]:
    """The approved samples at `at`, from the cache: kept per bucket source and scoring run, rolled
    forward over the moves since the checkpoint it was kept at (one query), and counted afresh when
    missing or when its full count is BALANCE_RECOUNT old (a safety net: every path that changes
    a status logs it)."""
    key = _key(dataset, "balance", source, run)
    kept = _cache_call("get", key)
    if kept and kept["at"] == at:
        return kept["cells"]
    if kept and kept["at"] < at and at - kept["counted"] < BALANCE_RECOUNT:
        cells = defaultdict(int, kept["cells"])
        for cell, n in _approved_moves(dataset, source, kept["at"], at).items():
            cells[cell] += n
        kept = {"at": at, "counted": kept["counted"], "cells": {cell: n for cell, n in cells.items() if n}}
    else:
        kept = {"at": at, "counted": at, "cells": _approved_at(dataset, source, at)}
    _cache_call("set", key, kept, BALANCE_TTL)
    return kept["cells"]


def approved_balance(dataset: Dataset, *, now: datetime | None = None) -> dict:
    """Approved samples by task type x difficulty bucket (3-4 queries, plus 1 when the kept state
    has to move to a new checkpoint). The bucket is scoring's `difficulty_bucket` metric when the
    dataset has been scored for difficulty, else the reviewers' consensus difficulty
    (ReviewItem.difficulty); `source` says which. Samples without a bucket go in the "" column.
    Task types beyond the MAX_TASK_TYPES largest are folded into one row.

    {"source": "scoring"|"consensus", "buckets": [...], "rows": [{"task_type", "cells": {bucket: n}, "total", "other"}],
     "columns": {bucket: n}, "total": n, "max_cell": n, "folded": k}"""
    at = _checkpoint(now or timezone.now())
    source, run = _bucket_source(dataset)
    settled = _approved_at_checkpoint(dataset, source, run, at)
    live = _approved_moves(dataset, source, at, None)  # the moves since the checkpoint (two hours at most)
    table: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(BUCKETS, 0))
    for part in (settled, live):
        for (task_type, b), n in part.items():
            table[task_type][b] += n
    rows = sorted(({"task_type": t, "cells": cells, "total": sum(cells.values()), "other": False}
                   for t, cells in table.items() if any(cells.values())), key=lambda r: (-r["total"], r["task_type"]))
    folded = 0
    if len(rows) > MAX_TASK_TYPES:
        rest = rows[MAX_TASK_TYPES - 1:]
        folded = len(rest)
        cells = {b: sum(r["cells"][b] for r in rest) for b in BUCKETS}
        rows = rows[:MAX_TASK_TYPES - 1] + [{"task_type": "", "cells": cells, "total": sum(cells.values()), "other": True}]
    columns = {b: sum(r["cells"][b] for r in rows) for b in BUCKETS}
    return {
        "source": source, "buckets": BUCKETS, "rows": rows, "columns": columns,
        "total": sum(columns.values()), "max_cell": max((n for r in rows for n in r["cells"].values()), default=0), "folded": folded,
    }


def _align(p: dict, tp: dict) -> None:
    """Start both day series on the same day (the earlier start): progress keeps its state before
    its first day, throughput has no labels there."""
    start = min(p["days"][0], tp["days"][0])
    for data, pad in ((p, None), (tp, 0)):
        k = (data["days"][0] - start).days
        if not k:
            continue
        data["days"] = [start + timedelta(days=i) for i in range(k)] + data["days"]
        if pad is None:
            data["series"] = {s: [p["before"][s]] * k + v for s, v in data["series"].items()}
            data["arrived"], data["moved"] = [0] * k + data["arrived"], [0] * k + data["moved"]
        else:
            data["per_day"] = [0] * k + data["per_day"]
            for a in data["annotators"]:
                a["per_day"] = [0] * k + a["per_day"]


def dashboard(dataset: Dataset, *, days: int = WINDOW_DAYS, today: date | None = None) -> dict:
    """Everything the dashboard page shows, one section per key (progress and throughput on the same days)."""
    today = today or timezone.localdate()
    p, tp = progress(dataset, days=days, today=today), throughput(dataset, days=days, today=today)
    _align(p, tp)
    return {
        "progress": p,
        "throughput": tp,
        "agreement": agreement_state(dataset),
        "reasons": conflict_reasons(dataset),
        "balance": approved_balance(dataset),
    }
