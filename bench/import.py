"""Import benchmark: samples/s and peak memory of sftdesk's import into PostgreSQL, against a naive
baseline in the same run (json.load the whole file, then Django bulk_create), and memory as the
file grows (the same records repeated with distinct text, 1x and 4x).

    python bench/import.py [--file ../shared/data/alpaca_en_52k.json] [--database-url URL] [--scales 1,4]

Each measurement runs in its own process, so peak RSS (ru_maxrss) belongs to that run alone.
For reference, Label Studio 1.23 imported the same 52,002-sample file at 7,700 samples/s on the
same kind of machine (figure given in the issue, not re-measured here)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from pgutil import ensure_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT.parent / "shared" / "data" / "alpaca_en_52k.json"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/sftdesk_bench"
LABEL_STUDIO_RATE = 7700


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.db import transaction

    from annotator import services
    from annotator.models import Dataset, ImportJob, Sample

    slug = f"bench-{mode}-{os.getpid()}"
    dataset = services.dataset_create(name=slug, slug=slug, owner=None)
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    if mode == "sftdesk":
        job = services.import_job_create(user=None, dataset=dataset, path=path, enqueue=False)
        job = services.import_job_run(job=services.import_job_claim(job_id=job.pk))
        assert job.status == ImportJob.Status.SUCCEEDED, job.errors
        n = job.imported_count
    else:  # the naive way: load everything, build every object, bulk_create
        from scoring.metrics.text import content_hash

        records = json.load(open(path, encoding="utf-8"))  # noqa: SIM115
        objs = []
        for i, r in enumerate(records):
            user = f"{r['instruction']}\n\n{r['input']}" if r.get("input") else r["instruction"]
            messages = [{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}]
            objs.append(Sample(dataset=dataset, external_id=str(i), messages=messages, source=r,
                               text=user + "\n" + r["output"], content_hash=content_hash(messages)))
        with transaction.atomic():
            Sample.objects.bulk_create(objs, batch_size=2000, ignore_conflicts=True)
        n = len(objs)
    seconds = time.perf_counter() - started
    result = {"mode": mode, "n": n, "seconds": seconds, "rate": n / seconds, "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss_before}
    Sample.objects.filter(dataset=dataset).delete()
    Dataset.objects.filter(pk=dataset.pk).delete()
    print("RESULT " + json.dumps(result))


def scaled_copy(src: Path, factor: int, out: Path) -> Path:
    """The file's records repeated `factor` times, each copy's text made distinct, streamed out."""
    records = json.loads(src.read_text(encoding="utf-8"))
    with open(out, "w", encoding="utf-8") as fp:
        fp.write("[\n")
        first = True
        for k in range(factor):
            for r in records:
                copy = dict(r, instruction=r["instruction"] if k == 0 else f"{r['instruction']} (variant {k})")
                fp.write(("" if first else ",\n") + json.dumps(copy, ensure_ascii=False))
                first = False
        fp.write("\n]\n")
    return out


def run_child(mode: str, path: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], env=env, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"{mode} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--scales", default="1,4", help="file sizes to check memory at, as multiples of --file")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if not args.file.exists():
        sys.exit(f"{args.file}: not found (the shared data folder is beside the repository)")
    ensure_database(args.database_url)
    env = {**os.environ, "DATABASE_URL": args.database_url, "DJANGO_SETTINGS_MODULE": "config.settings.local", "SFTDESK_LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

    size_mb = args.file.stat().st_size / 1e6
    print(f"file: {args.file.name} ({size_mb:.1f} MB), database: PostgreSQL ({urlparse(args.database_url).path.lstrip('/')})")
    ours = run_child("sftdesk", args.file, env)
    naive = run_child("naive", args.file, env)
    print(f"{'run':<34}{'samples':>9}{'seconds':>9}{'samples/s':>11}{'peak RSS MB':>13}")
    for label, r in (("sftdesk import (streamed, COPY)", ours), ("naive json.load + bulk_create", naive)):
        print(f"{label:<34}{r['n']:>9,}{r['seconds']:>9.2f}{r['rate']:>11,.0f}{r['peak_rss_mb']:>13.0f}")
    print(f"{'Label Studio 1.23 (issue figure)':<34}{52002:>9,}{52002 / LABEL_STUDIO_RATE:>9.2f}{LABEL_STUDIO_RATE:>11,}{'':>13}")
    print(f"sftdesk vs naive: {ours['rate'] / naive['rate']:.2f}x; vs Label Studio: {ours['rate'] / LABEL_STUDIO_RATE:.2f}x")

    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    if len(scales) > 1:
        print("\nmemory as the file grows (sftdesk import):")
        with tempfile.TemporaryDirectory() as tmp:
            for factor in scales:
                path = args.file if factor == 1 else scaled_copy(args.file, factor, Path(tmp) / f"x{factor}.json")
                r = ours if factor == 1 else run_child("sftdesk", path, env)
                print(f"  {factor}x  {path.stat().st_size / 1e6:7.1f} MB  {r['n']:>9,} samples  {r['rate']:>8,.0f} samples/s  "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB (before import {r['rss_before_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
