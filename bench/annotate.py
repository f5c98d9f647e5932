"""Annotation benchmark: 20 simulated annotators against the real server (gunicorn, PostgreSQL) on a
100,000-sample dataset, each looping "next, then submit" over the REST API for 60 seconds.

    python bench/annotate.py [--samples 100000] [--annotators 20] [--duration 60] [--think 0,1]
                             [--workers 4] [--threads 1] [--keep] [--explain] [--latency-log PREFIX]
                             [--database-url URL] [--redis-url URL]
    make bench-annotate      # the same with --think 0,1: saturated, then 1 s of reading per sample

Prints p50 / p95 / p99 latency of next and submit, throughput (requests/s, labels/s) and errors, for
each think time asked (`--think 0,1` runs 0 s, then 1 s, against the same server). Target: p95 at most
50 ms for next and for submit on a 2-core machine.

Baselines measured in the same run, against the same server:
- a trivial authenticated endpoint (GET /api/v1/datasets/{id}/), alone and while the load runs;
- one annotator alone (next, submit in turn): the figure comparable to Label Studio's next-task
  endpoint, 22 ms median for a single user on a 52,002-task project on the same kind of machine
  (issue figure, not re-measured here);
- the same next/submit called in-process through the services (no HTTP, no DRF), so the share of the
  web stack and of the engine can be told apart.

With --think 0 every client fires its next request the moment the last one answers: 20 such clients
saturate a 2-core box that also runs PostgreSQL and this load generator, so that figure measures
queueing as much as the endpoint. The think-time run is the realistic one (each annotator spends
0.5x-1.5x the think time on a sample, and they start spread over one think time rather than in the
same millisecond); both are printed, with the CPU each request costs the web workers and PostgreSQL,
and the share of the machine other processes took meanwhile (the figures are only as quiet as the box).

The database `sftdesk_bench` is created and migrated if needed; the dataset is built once (synthetic
records, generated here, imported through the real import service) and reused, its annotation state
reset at every run. --keep keeps the database afterwards (the next run reuses the dataset); without it
the database is dropped at the end.

If p95 misses the target, `--explain` prints where a next request spends its time: the queries one
next and one submit run (with their time), and EXPLAIN ANALYZE of the candidate query, measured on the
dataset as the load left it."""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from pgutil import ensure_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/sftdesk_bench"
LABEL_STUDIO_NEXT_MEDIAN_MS = 22
TARGET_P95_MS = 50
VALUES = {"accuracy": 4, "completeness": 4, "conciseness": 4, "difficulty": "easy", "verdict": "accept"}
SLUG = "bench-annotate"

WORDS = (
    "model", "data", "answer", "question", "explain", "list", "write", "describe", "compare", "summarize", "function",
    "table", "value", "user", "system", "example", "step", "result", "reason", "number", "language", "code", "python",
    "sentence", "paragraph", "story", "poem", "email", "letter", "report", "plan", "idea", "method", "test", "error", "fix",
    "improve", "translate", "classify", "extract", "format", "simple", "short", "long", "clear", "brief", "the", "a", "of",
    "to", "and", "in", "for", "with", "on", "by", "from", "that", "this", "is", "are", "be", "can", "should", "would",
    "how", "what", "why", "when", "which"
)


# ---------------------------------------------------------------------------------------------
# Set-up (in this process, through Django)
# ---------------------------------------------------------------------------------------------

def server_env(args, var_dir: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
        "SFTDESK_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1; no proxy in front
        "SFTDESK_VAR_DIR": var_dir,
        "SFTDESK_LOG_LEVEL": "WARNING",
    }
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


def synthetic_records(n: int, path: Path) -> None:
    """n distinct Alpaca-style records of realistic length (instruction ~60, answer ~300 characters)."""
    rng = random.Random(20240601)
    with open(path, "w", encoding="utf-8") as fp:
        for i in range(n):
            instruction = f"Task {i}: " + " ".join(rng.choices(WORDS, k=rng.randint(6, 16))).capitalize() + "?"
            has_input = rng.random() < 0.4
            record = {
                "id": f"b{i}",
                "instruction": instruction,
                "input": " ".join(rng.choices(WORDS, k=rng.randint(5, 30))) if has_input else "",
                "output": " ".join(rng.choices(WORDS, k=rng.randint(20, 90))) + ".",
            }
            fp.write(json.dumps(record) + "\n")


def import_file(dataset, path: Path):
    """Through the real import service, as `manage.py import_samples` runs it."""
    from annotator import services

    job = services.import_job_create(user=None, dataset=dataset, path=path, enqueue=False)
    return services.import_job_run(job=services.import_job_claim(job_id=job.pk))


def setup(args) -> dict:
    """Dataset with `args.samples` samples (built once, reused), annotation state reset, overlap 2,
    `args.annotators` annotators with write tokens. Returns what the clients need."""
    from django.contrib.auth import get_user_model
    from django.db import IntegrityError, connection, transaction

    from annotator import services
    from annotator.models import Assignment, Dataset, ImportJob, Label, Membership, Sample
    from exports.models import ApiToken
    from exports.tokens import api_token_create

    dataset = Dataset.objects.filter(slug=SLUG).first()
    if dataset is not None and Sample.objects.filter(dataset=dataset).count() != args.samples:
        print(f"dataset {SLUG} has a different size; rebuilding it")
        with transaction.atomic():
            Label.objects.filter(dataset=dataset).delete()
            Assignment.objects.filter(dataset=dataset).delete()
            dataset.delete()
        dataset = None
    if dataset is None:
        dataset = services.dataset_create(name="Annotation benchmark", slug=SLUG, owner=None)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.jsonl"
            started = time.perf_counter()
            synthetic_records(args.samples, path)
            try:
                job = import_file(dataset, path)
            except IntegrityError as exc:
                if "label_count" not in str(exc):
                    raise
                # The PostgreSQL import (COPY, then INSERT ... SELECT) names no label_count, and migration
                # 0003 added the column without a database default: every import fails. Until the import
                # writes it, give the column the default the model has, in this benchmark database only.
                print("WARNING: the import fails on PostgreSQL (label_count is NOT NULL without a database default); "
                      "working around it here with ALTER TABLE annotator_sample ALTER label_count SET DEFAULT 0")
                with connection.cursor() as cursor:
                    cursor.execute(f"ALTER TABLE {Sample._meta.db_table} ALTER COLUMN label_count SET DEFAULT 0")
                job = import_file(dataset, path)
            assert job.status == ImportJob.Status.SUCCEEDED, job.errors
            print(f"built dataset {SLUG}: {job.imported_count:,} samples imported in {time.perf_counter() - started:.1f} s")
    else:
        print(f"reusing dataset {SLUG} ({args.samples:,} samples); resetting its annotation state")
    with transaction.atomic():
        Label.objects.filter(dataset=dataset).delete()
        Assignment.objects.filter(dataset=dataset).delete()
        Sample.objects.filter(dataset=dataset).exclude(label_count=0, status=Sample.Status.NEW).update(label_count=0, status=Sample.Status.NEW)
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2, "reservation_minutes": 30})
    services.queue_rank_refresh(dataset=dataset, only_missing=True)

    User = get_user_model()
    users = []
    for i in range(args.annotators + 1):  # the last one measures the single-user baseline
        user, _ = User.objects.get_or_create(username=f"bench-annotator-{i:02d}")
        services.membership_set(actor=None, dataset=dataset, user=user, role=Membership.Role.ANNOTATOR)
        users.append(user)
    ApiToken.objects.filter(user__in=users, name="bench").delete()  # keys of earlier runs are gone anyway
    keys = [api_token_create(user=u, name="bench", dataset=dataset, can_write=True, days=1)[1] for u in users]
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would have after a real import
        for model in (Sample, Assignment, Label):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return {"dataset_id": dataset.pk, "keys": keys, "user_ids": [u.pk for u in users]}


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    try:
        with psycopg.connect(urlunparse(parsed._replace(path="/postgres")), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        print(f"dropped database {name} (--keep keeps it, and the next run reuses its dataset)")
    except psycopg.Error as exc:
        print(f"could not drop database {name}: {exc}".strip())


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, env: dict, port: int, log_path: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers), "--backlog", "256", "--timeout", "60", "--log-level", "warning",
    ]
    if args.threads > 1:
        cmd += ["--worker-class", "gthread", "--threads", str(args.threads), "--keep-alive", "30"]
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited at start:\n{log_path.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v1/datasets/")
            conn.getresponse().read()
            conn.close()
            return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    sys.exit(f"the server did not answer in 60 s:\n{log_path.read_text()[-4000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------

class Client:
    """One annotator: a keep-alive HTTP connection (reopened when the server closes it)."""

    def __init__(self, port: int, key: str, dataset_id: int):
        self.port, self.dataset_id = port, dataset_id
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, float]:
        data = json.dumps(body).encode() if body is not None else None
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload, (time.perf_counter() - started) * 1000
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # a kept-alive connection the server had closed: reconnect once (counted in the latency)
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def next(self) -> tuple[int, int | None, float]:
        status, payload, ms = self.call("POST", f"/api/v1/datasets/{self.dataset_id}/annotation/next/", {})
        assignment_id = json.loads(payload)["assignment"]["id"] if status == 200 else None
        return status, assignment_id, ms

    def submit(self, assignment_id: int) -> tuple[int, float]:
        status, _payload, ms = self.call("POST", f"/api/v1/datasets/{self.dataset_id}/assignments/{assignment_id}/submit/", VALUES)
        return status, ms

    def dataset(self) -> tuple[int, float]:
        status, _payload, ms = self.call("GET", f"/api/v1/datasets/{self.dataset_id}/")
        return status, ms

    def close(self) -> None:
        self.conn.close()


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.trace: list[tuple[float, str, float, int | str]] = []  # (seconds since start, kind, ms, status)
        self.started = time.perf_counter()

    def add(self, kind: str, ms: float, ok: bool, status: int | str = "") -> None:
        with self.lock:
            self.trace.append((time.perf_counter() - self.started - ms / 1000, kind, ms, status))
            if ok:
                self.ms[kind].append(ms)
            else:
                self.errors[f"{kind} {status}"] += 1


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def cpu_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid: int) -> float:
    """User + system CPU of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def server_pids(master: int) -> list[int]:
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def postgres_pids() -> list[int]:
    """Backends serving the benchmark database's clients: the server's connections (not this process's
    own, nor autovacuum)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        )
        return [r[0] for r in cursor.fetchall()]


class CpuMeter:
    """CPU spent by the web workers, their PostgreSQL backends and this load generator over a phase,
    beside the machine's whole busy time (the rest is every other process on the box)."""

    def __init__(self, master: int):
        self.master = master

    def snapshot(self) -> dict:
        busy, total = cpu_busy()
        return {
            "web": {pid: proc_cpu_ms(pid) for pid in server_pids(self.master)},
            "db": {pid: proc_cpu_ms(pid) for pid in postgres_pids()},
            "client": time.process_time() * 1000,
            "all": all_processes(),
            "busy_ms": busy * TICK_MS, "total_ms": total * TICK_MS,
        }

    @staticmethod
    def diff(a: dict, b: dict) -> dict:
        def spent(kind):
            return sum(ms - a[kind].get(pid, 0.0) for pid, ms in b[kind].items())

        ours = set(b["web"]) | set(b["db"]) | {os.getpid()}
        others: dict[str, float] = defaultdict(float)
        for pid, (name, ms) in b["all"].items():
            if pid not in ours:
                others[name] += ms - a["all"].get(pid, (name, 0.0))[1]
        # A backend whose connection closed during the phase (Django's CONN_MAX_AGE recycles them every
        # 60 s) is gone from the list; its CPU went to the postmaster as a child's. Counted with ours:
        # on a quiet machine they are ours (on a busy one they may be other databases' too).
        closed = others.pop("postgres server", 0.0)
        return {"web": spent("web"), "db": spent("db") + closed, "db_closed": closed, "client": b["client"] - a["client"],
                "busy": b["busy_ms"] - a["busy_ms"], "total": b["total_ms"] - a["total_ms"],
                "others": sorted(others.items(), key=lambda kv: -kv[1])}


def postgres_role(title: str) -> str:
    """'postgres: 15/main: autovacuum worker db' -> 'postgres autovacuum'; a client backend
    ('postgres: 15/main: user db 127.0.0.1(5555) idle') -> 'postgres backend (db)'."""
    parts = [p.strip() for p in title.split(":")]
    rest = parts[-1] if len(parts) > 1 else ""
    words = rest.split()
    if len(words) >= 3 and ("(" in words[2] or words[2] in ("[local]", "idle")):
        return f"postgres backend ({words[1]})"
    return f"postgres {words[0] if words else 'server'}"


def all_processes() -> dict[int, tuple[str, float]]:
    """Every process's name (postgres ones by their role: autovacuum, a backend of which database) and
    CPU so far."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            if name == "postgres":
                name = postgres_role((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            # with the CPU of its children that have exited: short-lived processes (a test run
            # started and finished within the phase) show up under the process that started them
            out[int(stat.parent.name)] = (name, sum(int(f) for f in fields[11:15]) * TICK_MS)
        except (OSError, ValueError, IndexError):
            pass
    return out


def annotator_loop(client: Client, rec: Recorder, until: float, think: float, rng: random.Random) -> None:
    if think:
        # People do not all click at the same instant: each starts somewhere in one think time, as in
        # steady state (a simultaneous start of 20 is a burst no real team makes).
        time.sleep(rng.uniform(0, think * 1.5))
    while time.perf_counter() < until:
        try:
            status, assignment_id, ms = client.next()
        except OSError as exc:
            rec.add("next", 0, False, type(exc).__name__)
            continue
        rec.add("next", ms, status == 200, status)
        if status == 204:
            return  # nothing left for this annotator
        if assignment_id is None:
            continue
        if think:
            time.sleep(think * rng.uniform(0.5, 1.5))  # reading and scoring the sample
        try:
            status, ms = client.submit(assignment_id)
        except OSError as exc:
            rec.add("submit", 0, False, type(exc).__name__)
            continue
        rec.add("submit", ms, status == 201, status)


def probe_loop(client: Client, rec: Recorder, until: float, interval: float) -> None:
    """The trivial endpoint, a few times a second, while the annotators work."""
    while time.perf_counter() < until:
        status, ms = client.dataset()
        rec.add("dataset", ms, status == 200, status)
        time.sleep(interval)


def run_load(args, info: dict, port: int, think: float, meter: CpuMeter) -> tuple[Recorder, float, dict]:
    rec = Recorder()
    clients = [Client(port, key, info["dataset_id"]) for key in info["keys"][: args.annotators]]
    probe = Client(port, info["keys"][-1], info["dataset_id"])
    before = meter.snapshot()
    started = time.perf_counter()
    until = started + args.duration
    threads = [
        threading.Thread(target=annotator_loop, args=(c, rec, until, think, random.Random(i)), daemon=True)
        for i, c in enumerate(clients)
    ]
    threads.append(threading.Thread(target=probe_loop, args=(probe, rec, until, 0.2), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = CpuMeter.diff(before, meter.snapshot())
    for c in [*clients, probe]:
        c.close()
    return rec, elapsed, cpu


def single_user(port: int, info: dict, n: int, meter: CpuMeter) -> tuple[Recorder, dict]:
    """One client alone; also the CPU each request costs the web worker and its database backend."""
    rec = Recorder()
    client = Client(port, info["keys"][-1], info["dataset_id"])
    cpu = {}
    before = meter.snapshot()
    for _ in range(n):
        status, ms = client.dataset()
        rec.add("dataset", ms, status == 200, status)
    middle = meter.snapshot()
    cpu["dataset"] = CpuMeter.diff(before, middle)
    for _ in range(n):
        status, assignment_id, ms = client.next()
        rec.add("next", ms, status == 200, status)
        if assignment_id is not None:
            status, ms = client.submit(assignment_id)
            rec.add("submit", ms, status == 201, status)
    cpu["next+submit"] = CpuMeter.diff(middle, meter.snapshot())
    client.close()
    return rec, cpu


def warm_up(port: int, info: dict, workers: int) -> None:
    """Every worker process loads the URLconf and opens its database connection before timing."""
    def hit(key):
        client = Client(port, key, info["dataset_id"])
        for _ in range(5):
            client.dataset()
        client.close()

    threads = [threading.Thread(target=hit, args=(info["keys"][i % len(info["keys"])],)) for i in range(max(8, workers * 4))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def in_process(info: dict, n: int) -> dict[str, list[float]]:
    """next and submit through the services in this process: the engine without HTTP and DRF."""
    from django.contrib.auth import get_user_model

    from annotator import services
    from annotator.models import Dataset

    user = get_user_model().objects.get(pk=info["user_ids"][-1])
    dataset = Dataset.objects.get(pk=info["dataset_id"])
    out: dict[str, list[float]] = defaultdict(list)
    for _ in range(n):
        t = time.perf_counter()
        assignment = services.assignment_next(user=user, dataset=dataset)
        out["next"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        services.assignment_submit(user=user, dataset=dataset, assignment_id=assignment.pk, values=VALUES)
        out["submit"].append((time.perf_counter() - t) * 1000)
    return out


def explain(info: dict) -> None:
    """Where one next and one submit spend their time, on the dataset as the load left it."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from annotator import services
    from annotator.models import Dataset

    user = get_user_model().objects.get(pk=info["user_ids"][0])
    dataset = Dataset.objects.get(pk=info["dataset_id"])
    for name in ("next", "submit"):
        with CaptureQueriesContext(connection) as queries:
            t = time.perf_counter()
            if name == "next":
                assignment = services.assignment_next(user=user, dataset=dataset)
            else:
                services.assignment_submit(user=user, dataset=dataset, assignment_id=assignment.pk, values=VALUES)
            total = (time.perf_counter() - t) * 1000
        db = sum(float(q["time"]) for q in queries.captured_queries) * 1000
        print(f"\n{name}: {total:.1f} ms in the service, {len(queries)} queries taking {db:.1f} ms (as timed by Django):")
        for q in queries.captured_queries:
            print(f"  {float(q['time']) * 1000:7.2f} ms  {q['sql'][:150]}")
        if name == "next":
            pick = next((q["sql"] for q in queries.captured_queries if "SKIP LOCKED" in q["sql"]), None)
    from django.test import Client as DjangoClient

    api = DjangoClient(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {info['keys'][0]}")
    base = f"/api/v1/datasets/{info['dataset_id']}"
    api.get(f"{base}/")  # load the URLconf and the API modules before timing
    for name in ("next", "submit"):
        with CaptureQueriesContext(connection) as queries:
            t = time.perf_counter()
            if name == "next":
                response = api.post(f"{base}/annotation/next/", "{}", content_type="application/json")
                assignment_id = response.json()["assignment"]["id"]
            else:
                response = api.post(f"{base}/assignments/{assignment_id}/submit/", json.dumps(VALUES), content_type="application/json")
            total = (time.perf_counter() - t) * 1000
        print(f"\n{name} through the API (in-process, no socket): {response.status_code} in {total:.1f} ms, {len(queries)} queries:")
        for q in queries.captured_queries:
            print(f"  {float(q['time']) * 1000:7.2f} ms  {q['sql'][:150]}")
    if pick:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + pick)
                plan = "\n".join(f"  {r[0]}" for r in cursor.fetchall())
            transaction.set_rollback(True)
        print(f"\nEXPLAIN ANALYZE of the candidate query (user {user.username}):\n{plan}")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def row(label: str, values: list[float], extra: str = "") -> str:
    if not values:
        return f"  {label:<40}{'(none)':>8}"
    return f"  {label:<40}{len(values):>8,}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}{pct(values, 99):>9.1f}{max(values):>9.1f}  {extra}"


HEADER = f"  {'':<40}{'n':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"


def verdict(values: list[float]) -> str:
    p95 = pct(values, 95)
    return f"p95 {'<=' if p95 <= TARGET_P95_MS else '>'} {TARGET_P95_MS} ms: {'met' if p95 <= TARGET_P95_MS else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per think time")
    parser.add_argument("--think", default="0", help="seconds an annotator spends between next and submit "
                        "(uniform 0.5x-1.5x); a comma list runs each in turn, e.g. 0,1")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes (the README's production command)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread); 1 = sync workers, as in production")
    parser.add_argument("--single", type=int, default=200, help="requests of each kind for the single-user baselines")
    parser.add_argument("--keep", action="store_true", help="keep the database (and the dataset, reused by the next run)")
    parser.add_argument("--explain", action="store_true", help="after the load: queries of one next/submit and the plan of the candidate query")
    parser.add_argument("--latency-log", metavar="PREFIX", help="write every request (start, kind, ms, status) to PREFIX.think<T>.csv")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""), help="cache for the server (default: none)")
    args = parser.parse_args()
    thinks = [float(t) for t in args.think.split(",") if t.strip()]

    ensure_database(args.database_url)
    var_dir = tempfile.mkdtemp(prefix="sftdesk-bench-var-")
    (Path(var_dir) / "staticfiles").mkdir()  # production settings serve static files from here (none are needed)
    env = server_env(args, var_dir)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "SFTDESK_SSL_REDIRECT", "SFTDESK_VAR_DIR", "SFTDESK_LOG_LEVEL")})
    if "REDIS_URL" not in env:
        os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    info = setup(args)

    port = free_port()
    log_path = Path(var_dir) / "gunicorn.log"
    kind = f"gthread, {args.threads} threads each" if args.threads > 1 else "sync"
    print(f"server: gunicorn config.wsgi, {args.workers} workers ({kind}), settings config.settings.production, "
          f"PostgreSQL {urlparse(args.database_url).path.lstrip('/')}; machine: {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} before the server starts")
    proc = start_server(args, env, port, log_path)
    meter = CpuMeter(proc.pid)
    try:
        warm_up(port, info, args.workers)
        alone, alone_cpu = single_user(port, info, args.single, meter)
        engine = in_process(info, args.single)
        print(f"\nbaselines, one client alone ({args.single} requests each):")
        print(HEADER)
        print(row("GET dataset (trivial endpoint)", alone.ms["dataset"]))
        print(row("next, one annotator", alone.ms["next"], f"Label Studio next-task: {LABEL_STUDIO_NEXT_MEDIAN_MS} ms median"))
        print(row("submit, one annotator", alone.ms["submit"]))
        print(row("next, in-process service (no HTTP)", engine["next"]))
        print(row("submit, in-process service (no HTTP)", engine["submit"]))
        if alone.errors:
            print(f"  errors: {dict(alone.errors)}")
        for kind, cpu in alone_cpu.items():
            what = "GET dataset" if kind == "dataset" else "next + submit pair"
            print(f"  CPU per {what}, alone: web worker {cpu['web'] / args.single:.1f} ms, PostgreSQL {cpu['db'] / args.single:.1f} ms")

        for think in thinks:
            rec, elapsed, cpu = run_load(args, info, port, think, meter)
            label = "no think time: saturating load" if think == 0 else f"think {think:g} s (0.5x-1.5x) between next and submit: realistic load"
            print(f"\n{args.annotators} annotators, {elapsed:.0f} s, {label}:")
            print(HEADER)
            print(row("next", rec.ms["next"], verdict(rec.ms["next"])))
            print(row("submit", rec.ms["submit"], verdict(rec.ms["submit"])))
            print(row("GET dataset (trivial, same load)", rec.ms["dataset"]))
            n_ok = len(rec.ms["next"]) + len(rec.ms["submit"])
            print(f"  throughput: {n_ok / elapsed:,.1f} requests/s (next + submit), {len(rec.ms['submit']) / elapsed:,.1f} labels/s; "
                  f"errors: {sum(rec.errors.values())} {dict(rec.errors) if rec.errors else ''}")
            n_all = max(1, n_ok + len(rec.ms["dataset"]))
            other = max(0.0, cpu["busy"] - cpu["web"] - cpu["db"] - cpu["client"])  # clock ticks: a little noise either way
            if args.latency_log:
                path = Path(f"{args.latency_log}.think{think:g}.csv")
                path.write_text("start_s,kind,ms,status\n" + "".join(f"{t:.4f},{k},{ms:.2f},{st}\n" for t, k, ms, st in sorted(rec.trace)))
                print(f"  every request's start and latency: {path}")
            print(f"  CPU: machine {100 * cpu['busy'] / max(1, cpu['total']):.0f}% busy; per request: web workers {cpu['web'] / n_all:.1f} ms, "
                  f"their PostgreSQL backends {cpu['db'] / n_all:.1f} ms ({cpu['db_closed'] / n_all:.1f} of it from connections closed "
                  f"meanwhile), this load generator {cpu['client'] / n_all:.1f} ms; "
                  f"other processes on the machine {100 * other / max(1, cpu['total']):.0f}% of its CPU")
            top = ", ".join(f"{name} {100 * ms / max(1, cpu['total']):.0f}%" for name, ms in cpu["others"][:4] if ms > 0.005 * cpu["total"])
            if top:
                print(f"  the other processes: {top}")
        from annotator.models import Label, Sample

        labelled = Sample.objects.filter(dataset_id=info["dataset_id"], label_count__gt=0).count()
        labels = Label.objects.filter(dataset_id=info["dataset_id"]).count()
        print(f"\nafter the run: {labels:,} labels on {labelled:,} samples")
        if args.explain:
            explain(info)
    finally:
        stop_server(proc)
        log = log_path.read_text()
        if "Traceback" in log or "ERROR" in log or "CRITICAL" in log:
            print(f"\nserver log (tail):\n{log[-3000:]}")
        if not args.keep:
            drop_database(args.database_url)


if __name__ == "__main__":
    main()
