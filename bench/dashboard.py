"""Reviewer dashboard benchmark: every dashboard section on a dataset of 1,000,000 samples in PostgreSQL.

    python bench/dashboard.py [--samples 1000000] [--runs 5] [--rebuild] [--explain] [--live-annotators]
                              [--database-url URL]
    make bench-dashboard

The database `sftdesk_bench_dash` is created and migrated if needed; the dataset is built once with
server-side SQL (INSERT ... SELECT over generate_series, not the ORM) and reused while its marker
(dataset settings "bench" = BUILD_MARKER and its size) matches; --rebuild builds it again. It holds:

- `--samples` samples from 10 imports, spread over the first 27 of 60 days, 8 task types;
  status: 15% new, 5% annotating, 17% in review, 55% approved, 8% rejected;
- ~2,000,000 labels from 20 annotators: two per sample past annotating (one while annotating),
  a third of them revised once (an older version kept), with their assignments, 3% skipped turns;
- a review item per sample past annotating (consensus, difficulty; the ones in review open with
  one or two reasons), scoring's difficulty bucket and answer length for every sample;
- every status change (new -> annotating -> in review -> approved / rejected) at its time, about
  2.3 million rows, and one succeeded agreement report.

Then each dashboard selector runs once to warm up and `--runs` times timed (the median is printed,
with the first, cold run), and the whole page is rendered through Django's test Client as a
logged-in reviewer, with the number of queries each one runs. Target: every section well under 1 s.
`--explain` prints EXPLAIN (ANALYZE, BUFFERS) of every query the page runs. `--live-annotators`
also times reviews.selectors.annotator_stats, which the page does not run (it shows the copy the
agreement report stored)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from pgutil import ensure_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/sftdesk_bench_dash"
SLUG = "bench-dashboard"
BUILD_MARKER = "dashboard-v5"
ANNOTATORS = 20
IMPORTS = 10
SPAN_DAYS = 60
TARGET_MS = 1000
TASK_TYPES = ("qa", "coding", "writing", "summarization", "classification", "extraction", "math", "brainstorming")
REASONS = ("verdict_split", "rejected", "corrected", "scale_spread", "flagged", "not_accepted", "manual")


def fresh_database(url: str, n: int, *, rebuild: bool) -> None:
    """Create the database, or drop and create it again when its dataset is not the one asked for
    (deleting a million samples row by row takes minutes; a new database takes seconds)."""
    import psycopg

    ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT settings FROM annotator_dataset WHERE slug = %s", [SLUG]).fetchone()
        except psycopg.errors.UndefinedTable:
            return  # not migrated yet: nothing to drop
    if row is None:
        return
    if not rebuild and {k: (row[0] or {}).get(k) for k in ("bench", "samples")} == {"bench": BUILD_MARKER, "samples": n}:
        return
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    print(f"dropping database {name}: its dataset is not {n:,} samples of build {BUILD_MARKER}, or --rebuild")
    with psycopg.connect(urlunparse(parsed._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}"')
    ensure_database(url)


def setup_django(database_url: str) -> None:
    var_dir = tempfile.mkdtemp(prefix="sftdesk-bench-dash-var-")
    os.environ.update({
        "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "config.settings.local", "SFTDESK_DEBUG": "false",
        "SFTDESK_VAR_DIR": var_dir, "SFTDESK_ALLOWED_HOSTS": "testserver,localhost", "SFTDESK_LOG_LEVEL": "WARNING",
    })
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


# ---------------------------------------------------------------------------------------------
# The dataset, built in the database
# ---------------------------------------------------------------------------------------------

def _exec(cursor, label: str, sql: str, params=None) -> None:
    started = time.perf_counter()
    cursor.execute(sql, params or [])
    print(f"  {label}: {cursor.rowcount:,} rows in {time.perf_counter() - started:.1f} s", flush=True)


def build(n: int, *, rebuild: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from annotator.models import Dataset, Membership, Sample

    User = get_user_model()
    reviewer, _ = User.objects.get_or_create(username="bench-dash-reviewer")
    reviewer.set_password("bench")
    reviewer.save()
    annotators = [User.objects.get_or_create(username=f"bench-dash-ann-{i:02d}")[0] for i in range(ANNOTATORS)]
    dataset = Dataset.objects.filter(slug=SLUG).first()
    marker = {"bench": BUILD_MARKER, "samples": n}
    if dataset is not None and not rebuild and {k: dataset.settings.get(k) for k in marker} == marker:
        print(f"reusing dataset {SLUG} ({n:,} samples, marker {BUILD_MARKER})")
        return {"dataset": dataset, "reviewer": reviewer}
    assert dataset is None, "fresh_database() drops a database whose dataset does not match"
    started = time.perf_counter()
    dataset = Dataset.objects.create(name="Dashboard benchmark", slug=SLUG, settings={})
    Membership.objects.create(user=reviewer, dataset=dataset, role=Membership.Role.REVIEWER)
    Membership.objects.bulk_create([Membership(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR) for u in annotators])
    now = timezone.now()
    day0 = now - timedelta(days=SPAN_DAYS)
    ann_ids = [u.pk for u in annotators]
    per_job = -(-n // IMPORTS)
    print(f"building dataset {SLUG}: {n:,} samples, {ANNOTATORS} annotators, {SPAN_DAYS} days")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        _exec(cursor, "import jobs", """
            INSERT INTO annotator_importjob (dataset_id, file, source_path, original_name, size_bytes, format, detected_format, options,
                status, progress, records_total, imported_count, duplicate_count, error_count, errors, created_at, started_at, finished_at)
            SELECT %(ds)s, '', '', 'part-' || j || '.jsonl', 0, 'auto', 'jsonl', '{}', 'succeeded', 100, cnt, cnt, 0, 0, '[]',
                   t - interval '5 minutes', t - interval '5 minutes', t
            FROM (SELECT j, LEAST(%(per)s, %(n)s - j * %(per)s) AS cnt, %(day0)s::timestamptz + j * interval '3 days' + interval '10 hours' AS t
                  FROM generate_series(0, %(jobs)s - 1) j) x
            WHERE cnt > 0 ORDER BY j""", {"ds": dataset.pk, "per": per_job, "n": n, "day0": day0, "jobs": IMPORTS})
        cursor.execute("SELECT array_agg(id ORDER BY id), array_agg(finished_at ORDER BY id) FROM annotator_importjob WHERE dataset_id = %s", [dataset.pk])
        job_ids, _times = cursor.fetchone()
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotator_sample")
        base = cursor.fetchone()[0]
        # The plan of every sample: status and the times it moved, in one unlogged table.
        cursor.execute("DROP TABLE IF EXISTS bench_plan")
        _exec(cursor, "plan", """
            CREATE UNLOGGED TABLE bench_plan AS
            SELECT g, %(base)s + g AS sid, (g - 1) / %(per)s AS job, r,
                   CASE WHEN r < 15 THEN 'new' WHEN r < 20 THEN 'annotating' WHEN r < 37 THEN 'in_review'
                        WHEN r < 92 THEN 'approved' ELSE 'rejected' END AS status,
                   t_new, t_ann, t_rev, t_done,
                   (g %% 20) + 1 AS a1, ((g + 7) %% 20) + 1 AS a2, ((g + 13) %% 20) + 1 AS a3
            FROM (SELECT *, t_rev - (t_rev - t_new - interval '1 hour') * (((g * 43) %% 1000)::float8 / 10000) AS t_ann
                  FROM (SELECT *, CASE WHEN r >= 37 THEN t_last - (t_last - t_new - interval '1 hour') * (((g * 41) %% 1000)::float8 / 10000)
                                       ELSE t_last END AS t_rev,
                               t_last AS t_done
                        FROM (SELECT g, r, t_new,
                                     -- the last move of a sample anywhere between its import and now, the ones before it
                                     -- shortly before: every day since the imports has its share of every kind of move
                                     t_new + interval '1 hour' + (%(now)s - interval '2 minutes' - t_new - interval '1 hour')
                                         * (((hashint8(g) & 2147483647) %% 1000)::float8 / 1000) + interval '1 second' * ((g * 7) %% 60) AS t_last
                              FROM (SELECT g, (hashint8(g + 7919) & 2147483647) %% 100 AS r,
                                           %(day0)s::timestamptz + ((g - 1) / %(per)s) * interval '3 days' + interval '10 hours' AS t_new
                                    FROM generate_series(1::bigint, %(n)s::bigint) g) a) b) c) d""",
              {"base": base, "per": per_job, "n": n, "day0": day0, "now": now})
        cursor.execute("CREATE INDEX ON bench_plan (g)")
        _exec(cursor, "samples", """
            INSERT INTO annotator_sample (id, dataset_id, import_job_id, external_id, messages, source, text, task_type, language, meta,
                content_hash, status, flag_count, label_count, queue_rank, version, created_at)
            SELECT p.sid, %(ds)s, (%(jobs)s::bigint[])[p.job + 1], p.g::text,
                   jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || p.g || ': ' || repeat('explain the data ', 8)),
                                     jsonb_build_object('role', 'assistant', 'content', 'Answer ' || p.g || '. ' || repeat('a plain clear answer ', 12))),
                   jsonb_build_object('id', p.g::text),
                   'Question ' || p.g || ': ' || repeat('explain the data ', 8) || E'\\n' || 'Answer ' || p.g || '. ' || repeat('a plain clear answer ', 12),
                   (%(types)s::text[])[1 + (p.g * 13) %% 8], 'en', '{}', md5(p.g::text) || md5('x' || p.g::text), p.status,
                   CASE WHEN p.g %% 20 = 0 THEN 1 ELSE 0 END,
                   CASE WHEN p.status = 'new' THEN 0 WHEN p.status = 'annotating' THEN 1 ELSE 2 END, NULL, 0, p.t_new
            FROM bench_plan p ORDER BY p.g""", {"ds": dataset.pk, "jobs": job_ids, "types": list(TASK_TYPES)})
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM annotator_assignment")
        abase = cursor.fetchone()[0]
        # Assignment ids: abase + 3g + k (k = 0: first annotator, 1: second, 2: a skipped turn).
        _exec(cursor, "assignments", """
            INSERT INTO annotator_assignment (id, dataset_id, sample_id, annotator_id, status, is_gold, reserved_at, expires_at, finished_at,
                skip_reason, draft, draft_saved_at)
            SELECT %(abase)s + 3 * p.g + k, %(ds)s, p.sid, (%(anns)s::int[])[CASE k WHEN 0 THEN p.a1 WHEN 1 THEN p.a2 ELSE p.a3 END],
                   CASE WHEN k = 2 THEN 'skipped' ELSE 'submitted' END, false, t - interval '10 minutes', t + interval '20 minutes', t,
                   CASE WHEN k = 2 THEN 'not my field' ELSE '' END, '{}', NULL
            FROM bench_plan p
            CROSS JOIN LATERAL (VALUES (0, p.t_ann), (1, p.t_rev), (2, p.t_ann)) v(k, t)
            WHERE p.status <> 'new' AND (k = 0 OR (k = 1 AND p.status <> 'annotating') OR (k = 2 AND p.g %% 33 = 0))""",
              {"abase": abase, "ds": dataset.pk, "anns": ann_ids})
        _exec(cursor, "labels", """
            INSERT INTO annotator_label (assignment_id, dataset_id, sample_id, annotator_id, version, is_current, accuracy, completeness,
                conciseness, difficulty, verdict, error_tags, corrected_answer, comment, extra, time_spent_s, gold_score, source, created_at)
            SELECT %(abase)s + 3 * p.g + k, %(ds)s, p.sid, (%(anns)s::int[])[CASE k WHEN 0 THEN p.a1 ELSE p.a2 END], v.version,
                   v.version = v.last, 1 + (p.g * (3 + k) + v.version) %% 5, 1 + (p.g * (5 + k)) %% 5, 1 + (p.g * (7 + k)) %% 5,
                   (ARRAY['easy', 'medium', 'hard'])[1 + (p.g * (11 + k)) %% 3],
                   CASE WHEN p.status = 'rejected' AND k = 1 THEN 'reject' WHEN (p.g + k) %% 9 = 0 THEN 'needs_fix' ELSE 'accept' END,
                   '[]', '', '', '{}', 20 + (p.g * 7 + k) %% 160, NULL, 'ui',
                   CASE WHEN k = 0 THEN p.t_ann ELSE p.t_rev END + (v.version - v.last) * interval '40 minutes'
            FROM bench_plan p
            CROSS JOIN LATERAL (VALUES (0), (1)) kk(k)
            CROSS JOIN LATERAL (SELECT version, CASE WHEN p.g %% 3 = 0 THEN 2 ELSE 1 END AS last
                                FROM generate_series(1, CASE WHEN p.g %% 3 = 0 THEN 2 ELSE 1 END) version) v
            WHERE p.status <> 'new' AND (k = 0 OR p.status <> 'annotating')""", {"abase": abase, "ds": dataset.pk, "anns": ann_ids})
        cursor.execute("SELECT setval(pg_get_serial_sequence('annotator_sample', 'id'), (SELECT MAX(id) FROM annotator_sample))")
        cursor.execute("SELECT setval(pg_get_serial_sequence('annotator_assignment', 'id'), (SELECT MAX(id) FROM annotator_assignment))")
        _exec(cursor, "review items", """
            INSERT INTO reviews_reviewitem (dataset_id, sample_id, is_open, severity, reasons, labels_n, verdict, verdict_confidence, method,
                accuracy, completeness, conciseness, difficulty, routed_at, decided_at)
            SELECT %(ds)s, p.sid, p.status = 'in_review',
                   CASE WHEN p.status = 'in_review' THEN 1 + (p.g * 3) %% 8 ELSE 0 END,
                   CASE WHEN p.status = 'approved' THEN '[]'::jsonb
                        WHEN p.g %% 4 = 0 THEN jsonb_build_array(jsonb_build_object('code', (%(reasons)s::text[])[1 + (p.g * 19) %% 7]),
                                                                 jsonb_build_object('code', 'scale_spread', 'scale', 'accuracy', 'spread', 2))
                        ELSE jsonb_build_array(jsonb_build_object('code', (%(reasons)s::text[])[1 + (p.g * 19) %% 7])) END,
                   2, CASE WHEN p.status = 'rejected' THEN 'reject' ELSE 'accept' END, 0.5 + ((p.g %% 2) * 0.5), 'majority',
                   1 + (p.g * 3) %% 5, 1 + (p.g * 5) %% 5, 1 + (p.g * 7) %% 5, (ARRAY['easy', 'medium', 'hard'])[1 + (p.g * 23) %% 3],
                   p.t_rev, CASE WHEN p.status = 'in_review' THEN NULL ELSE p.t_done END
            FROM bench_plan p WHERE p.status IN ('in_review', 'approved', 'rejected')""", {"ds": dataset.pk, "reasons": list(REASONS)})
        _exec(cursor, "status changes", """
            INSERT INTO reviews_statuschange (dataset_id, sample_id, from_status, to_status, actor_id, cause, at)
            SELECT %(ds)s, p.sid, m.a, m.b, NULL, m.cause, m.t
            FROM bench_plan p
            CROSS JOIN LATERAL (VALUES ('new', 'annotating', 'label', p.t_ann, 1), ('annotating', 'in_review', 'label', p.t_rev, 2),
                                       ('in_review', p.status, CASE WHEN p.status = 'approved' AND p.g %% 2 = 0 THEN 'auto' ELSE 'decision' END,
                                        p.t_done, 3)) m(a, b, cause, t, step)
            WHERE (m.step = 1 AND p.status <> 'new') OR (m.step = 2 AND p.status IN ('in_review', 'approved', 'rejected'))
               OR (m.step = 3 AND p.status IN ('approved', 'rejected'))
            ORDER BY m.t""", {"ds": dataset.pk})
        _exec(cursor, "sample metrics", """
            INSERT INTO scoring_samplemetric (dataset_id, sample_id, metric, value, label, details, input_hash, run_id, updated_at)
            SELECT %(ds)s, p.sid, m.metric, m.value, m.label, '{}', '', NULL, p.t_new + interval '1 hour'
            FROM bench_plan p
            CROSS JOIN LATERAL (VALUES ('difficulty_bucket', NULL::float8, (ARRAY['easy', 'medium', 'hard'])[1 + (p.g * 17) %% 3]),
                                       ('answer_length', (40 + (p.g * 29) %% 600)::float8, '')) m(metric, value, label)""", {"ds": dataset.pk})
        cursor.execute("DROP TABLE bench_plan")
    build_report(dataset, ann_ids)
    Dataset.objects.filter(pk=dataset.pk).update(settings=marker)
    with connection.cursor() as cursor:  # fresh statistics and visibility maps, as autovacuum leaves them after a load
        for table in ("annotator_sample", "annotator_importjob", "annotator_assignment", "annotator_label", "reviews_reviewitem",
                      "reviews_statuschange", "scoring_samplemetric", "reviews_agreementreport"):
            started_v = time.perf_counter()
            cursor.execute(f"VACUUM (ANALYZE) {table}")
            print(f"  vacuum analyze {table}: {time.perf_counter() - started_v:.1f} s", flush=True)
    print(f"built in {time.perf_counter() - started:.0f} s: {Sample.objects.filter(dataset=dataset).count():,} samples")
    return {"dataset": Dataset.objects.get(pk=dataset.pk), "reviewer": reviewer}


def build_report(dataset, ann_ids: list[int]) -> None:
    """One succeeded agreement report of the shape the task writes (numbers made up: computing the
    bootstrap over 2,000,000 labels is the background task's job, not the dashboard's)."""
    import itertools

    from django.contrib.auth import get_user_model
    from django.db.models import Max
    from django.utils import timezone

    from annotator.models import Label
    from reviews.models import AgreementReport

    names = dict(get_user_model().objects.filter(pk__in=ann_ids).values_list("pk", "username"))
    users = sorted(names.values())
    criteria = []
    for i, (name, level) in enumerate([("accuracy", "ordinal"), ("completeness", "ordinal"), ("conciseness", "ordinal"), ("difficulty", "nominal"),
                                       ("verdict", "nominal"), *[(f"tag:{t}", "nominal") for t in ("factual_error", "incomplete", "unsafe", "format")]]):
        value = 0.35 + 0.06 * i
        est = {"value": value, "low": value - 0.04, "high": value + 0.04, "n": 850_000}
        criteria.append({"criterion": name, "level": level, "annotators": len(users), "samples": 850_000, "alpha": est, "fleiss": None,
                         "cohen": [{"a": a, "b": b, **est, "n": 40_000} for a, b in itertools.combinations(users, 2)],
                         "cohen_weights": "quadratic" if level == "ordinal" else None})
    annotators = [{"annotator": u, "labels": 90_000, "agreement": 0.8, "compared": 85_000,
                   "leniency": {"accuracy": 0.1, "completeness": -0.2, "conciseness": 0.0}, "gold_n": 0, "gold_accuracy": None,
                   "labels_per_hour": 40.0, "hours": 2400.0, "skipped": 1500, "skip_rate": 0.016} for u in users]
    last = Label.objects.filter(dataset=dataset).aggregate(m=Max("id"))["m"] or 0
    AgreementReport.objects.create(dataset=dataset, status=AgreementReport.Status.SUCCEEDED, resamples=1000,
                                   labels_seen=Label.objects.filter(dataset=dataset, is_current=True).count(), last_label_id=last,
                                   report={"dataset": dataset.slug, "labels": 0, "criteria": criteria, "resamples": 1000, "seed": 0,
                                           "annotators": annotators}, finished_at=timezone.now())


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

class QueryLog:
    """Every query run on the default connection (an execute wrapper: Django's request_started
    signal clears connection.queries, so CaptureQueriesContext would miss a page's queries)."""

    def __init__(self):
        self.sql: list[tuple[str, object]] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append((sql, params))
        return execute(sql, params, many, context)


def measure(fn, runs: int) -> dict:
    """`fn` with an empty cache (`runs` times, the first one's queries logged), then with the cache
    it filled (`runs` times, queries logged once more)."""
    from django.core.cache import cache
    from django.db import connection

    out = {}
    for mode in ("cold", "warm"):
        times, log = [], QueryLog()
        for i in range(runs + (mode == "warm")):
            if mode == "cold":
                cache.clear()
            started = time.perf_counter()
            if i == 0:
                with connection.execute_wrapper(log):
                    fn()
            else:
                fn()
            times.append((time.perf_counter() - started) * 1000)
        if mode == "warm":
            times = times[1:]  # the first warm run may still fill what the cold run left out
        out[mode] = {"median": statistics.median(times), "max": max(times), "queries": len(log.sql), "sql": log.sql}
    return out


def explain(queries: list[tuple[str, object]]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for sql, params in queries:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            print("\n" + sql[:600])
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            print("\n".join("    " + r[0] for r in cursor.fetchall()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="build the dataset again even if its marker matches")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE every query the page runs")
    parser.add_argument("--live-annotators", action="store_true", help="also time annotator_stats (not on the page)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()

    fresh_database(args.database_url, args.samples, rebuild=args.rebuild)
    setup_django(args.database_url)
    info = build(args.samples, rebuild=args.rebuild)
    dataset, reviewer = info["dataset"], info["reviewer"]

    from django.db import connection
    from django.test import Client

    from annotator.models import Label, Sample
    from reviews import dashboard
    from reviews.models import StatusChange

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg = cursor.fetchone()[0].split(" on ")[0]
    counts = {"samples": Sample.objects.filter(dataset=dataset).count(), "labels": Label.objects.filter(dataset=dataset).count(),
              "status changes": StatusChange.objects.filter(dataset=dataset).count()}
    print(f"\n{pg}, {os.cpu_count()} cores; dataset {SLUG}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    sections = [
        ("status counts (part of progress)", lambda: dashboard.status_counts(dataset)),
        ("1. progress over time", lambda: dashboard.progress(dataset)),
        ("2. throughput per annotator", lambda: dashboard.throughput(dataset)),
        ("3. agreement (latest report)", lambda: dashboard.agreement_state(dataset)),
        ("4. annotator table (in the report)", lambda: dashboard.agreement_state(dataset)["annotators"]),
        ("5. conflict reasons", lambda: dashboard.conflict_reasons(dataset)),
        ("6. balance of approved data", lambda: dashboard.approved_balance(dataset)),
    ]
    if args.live_annotators:
        from reviews.selectors import annotator_stats

        sections.append(("annotator_stats live (not on the page)", lambda: annotator_stats(dataset)))
    client = Client()
    client.force_login(reviewer)
    url = f"/d/{dataset.slug}/dashboard/"

    def page():
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    sections.append(("whole page (test Client, reviewer)", page))
    print(f"\n{'section':<40} {'cold: median':>12} {'max':>7} {'queries':>7} {'warm: median':>13} {'max':>7} {'queries':>7}")
    results = {}
    for name, fn in sections:
        r = measure(fn, args.runs)
        results[name] = r
        c, w = r["cold"], r["warm"]
        flag = "" if max(c["median"], w["median"]) < TARGET_MS else "  <-- over the target"
        print(f"{name:<40} {c['median']:>9.1f} ms {c['max']:>7.1f} {c['queries']:>7} {w['median']:>10.1f} ms {w['max']:>7.1f} {w['queries']:>7}{flag}",
              flush=True)
    print(f"(milliseconds, median and max of {args.runs} runs; cold: the dashboard's cache emptied before each run, so the days "
          f"before today are counted again; warm: read from the cache, today counted live. Target: under {TARGET_MS} ms)")

    # The first view of a new day: yesterday's view left its days in the cache; today adds one day.
    # For the balance, the first view past a new checkpoint: the one an hour before is kept.
    from django.core.cache import cache
    from django.utils import timezone

    today, now = timezone.localdate(), timezone.now()
    yesterday = today - timedelta(days=1)
    rolled = [
        ("1. progress over time", lambda: dashboard.progress(dataset, today=yesterday), lambda: dashboard.progress(dataset, today=today)),
        ("2. throughput per annotator", lambda: dashboard.throughput(dataset, today=yesterday), lambda: dashboard.throughput(dataset, today=today)),
        ("6. balance of approved data", lambda: dashboard.approved_balance(dataset, now=now - timedelta(hours=1)),
         lambda: dashboard.approved_balance(dataset, now=now)),
    ]
    print(f"\n{'first view of a new day (balance: hour)':<40} {'median':>12} {'max':>7} {'queries':>7}")
    for name, before, fn in rolled:
        times, log = [], QueryLog()
        for i in range(args.runs):
            cache.clear()
            before()
            started = time.perf_counter()
            if i == 0:
                with connection.execute_wrapper(log):
                    fn()
            else:
                fn()
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name:<40} {statistics.median(times):>9.1f} ms {max(times):>7.1f} {len(log.sql):>7}", flush=True)
    print("(the cache holds what a view the day before left (the balance: a view an hour before): the finished days up to "
          "the day before yesterday, the approved samples at the checkpoint before)")
    print(f"\nload average while measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    if args.explain:
        explain(results["whole page (test Client, reviewer)"]["cold"]["sql"])


if __name__ == "__main__":
    main()
