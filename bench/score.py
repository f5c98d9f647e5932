"""Scoring benchmark on ../shared/data/alpaca_en_52k.json: cleaning rules + exact and near-duplicates
(target under 60 s for 52,002 samples on the 2-core machine), against a plain datasketch MinHash LSH
in the same run; with --pipeline, the rules stage through the real pipeline into PostgreSQL
(chunks, upserts, flags) as a worker runs it.

    python bench/score.py [--file ...] [--n N] [--pipeline] [--database-url URL]

Embedding and IFD throughput against bare transformers loops: bench/score_models.py."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pgutil import ensure_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_FILE = ROOT.parent / "shared" / "data" / "alpaca_en_52k.json"


def load(path: Path, n: int | None) -> list[list[dict]]:
    records = json.loads(path.read_text(encoding="utf-8"))[:n]
    out = []
    for r in records:
        user = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        out.append([{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}])
    return out


def datasketch_baseline(texts: list[str], threshold: float = 0.8, num_perm: int = 128) -> tuple[float, int]:
    """How most pipelines do it: one datasketch MinHash per document fed its 5-gram shingles, LSH query."""
    from datasketch import MinHash, MinHashLSH

    from scoring.metrics.duplicates import prepare_text, shingles

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    pairs = 0
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([s.encode() for s in shingles(prepare_text(text), 5)])
        pairs += len(lsh.query(m))
        lsh.insert(str(i), m)
    return time.perf_counter() - started, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--n", type=int, default=None, help="only the first N records")
    parser.add_argument("--pipeline", action="store_true", help="also time the rules stage through Django into PostgreSQL")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sftdesk_bench"))
    args = parser.parse_args()
    if not args.file.exists():
        sys.exit(f"{args.file}: not found")

    from scoring.metrics import cleaning, duplicates

    conversations = load(args.file, args.n)
    n = len(conversations)
    texts = [c[0]["content"] + "\n\n" + c[1]["content"] for c in conversations]
    print(f"{n:,} samples from {args.file.name}")

    t0 = time.perf_counter()
    flagged = sum(1 for c in conversations if any(r.flags for r in cleaning.clean_sample(c)))
    t_rules = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = duplicates.exact_duplicate_groups(list(enumerate(texts)))
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    near = duplicates.near_duplicate_groups(list(enumerate(texts)))
    t_near = time.perf_counter() - t0
    total = t_rules + t_exact + t_near
    print(f"  cleaning rules      {t_rules:7.1f} s  ({n / t_rules:,.0f} samples/s; {flagged:,} samples flagged)")
    print(f"  exact duplicates    {t_exact:7.1f} s  ({len(exact)} groups)")
    print(f"  near duplicates     {t_near:7.1f} s  ({len(near)} groups, {sum(len(g.members) for g in near)} samples flagged; verified Jaccard >= 0.8)")
    print(f"  total               {total:7.1f} s  (target < 60 s: {'met' if total < 60 else 'NOT met'})")
    base, pairs = datasketch_baseline(texts)
    print(f"  baseline: plain datasketch MinHash + LSH query per document: {base:.1f} s ({pairs} candidate pairs, unverified); "
          f"sftdesk near-duplicates {base / t_near:.1f}x faster")

    if args.pipeline:
        env = {**os.environ, "DATABASE_URL": args.database_url, "DJANGO_SETTINGS_MODULE": "config.settings.local", "SFTDESK_LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        ensure_database(args.database_url)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        code = f"""
import time
from django.core.management import call_command
from annotator.models import Dataset
from annotator import services as a
from scoring import services as s
ds = Dataset.objects.filter(slug='bench-score').first() or a.dataset_create(name='bench-score', slug='bench-score', owner=None)
if not ds.samples.exists():
    job = a.import_job_create(user=None, dataset=ds, path={str(args.file)!r}, enqueue=False)
    a.import_job_run(job=a.import_job_claim(job_id=job.pk))
from scoring.models import SampleFlag, SampleMetric
SampleFlag.objects.filter(dataset=ds).delete()
SampleMetric.objects.filter(dataset=ds).delete()
for label in ('first run', 'again (unchanged samples reused)'):
    t = time.perf_counter()
    run = s.run_inline(run_id=s.run_create(user=None, dataset=ds, metrics='rules', enqueue=False).pk)
    print(f'  pipeline rules stage, {{label}}: {{time.perf_counter() - t:.1f}} s for {{run.samples_total:,}} samples '
          f'({{run.samples_computed:,}} computed, {{run.samples_reused:,}} reused; {{run.status}})')
"""
        subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True)


if __name__ == "__main__":
    main()
