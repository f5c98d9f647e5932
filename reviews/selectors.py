"""Reads for the review desk: agreement per rubric criterion and per annotator (gold samples apart,
since every annotator labels those and they are scored against gold instead), the conflict queue,
one sample's review and its audit trail. Callers pass a dataset already scoped to the user."""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import numpy as np
from django.db import connection, transaction
from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet, Sum

from annotator.models import Assignment, Dataset, GoldLabel, Label, Sample, SampleRevision
from annotator.rubric import SCALES, VERDICTS, config_from_settings

from . import agreement
from .models import ReviewDecision, ReviewItem, StatusChange

# Cohen's kappa for the 1-5 scales is weighted quadratically (disagreeing by 2 costs four times 1).
ORDINAL_WEIGHTS = "quadratic"


def _criteria(rows: list[tuple], tags: tuple[str, ...], extra: list[str]) -> dict[str, tuple[str, dict]]:
    """{criterion: (level, {(sample, annotator): value})} for every criterion someone gave a value."""
    out: dict[str, tuple[str, dict]] = {}

    def put(name: str, level: str, key, value) -> None:
        if value in (None, ""):
            return
        out.setdefault(name, (level, {}))[1][key] = value

    for sample, user, acc, comp, conc, difficulty, verdict, error_tags, extra_values in rows:
        key = (sample, user)
        for name, value in zip(SCALES, (acc, comp, conc), strict=True):
            put(name, "ordinal", key, value)
        put("difficulty", "nominal", key, difficulty)
        put("verdict", "nominal", key, verdict)
        if verdict:  # a tag left unticked on a judged label means "not this error"
            for tag in tags:
                put(f"tag:{tag}", "nominal", key, int(tag in (error_tags or [])))
        for name in extra:
            put(name, "nominal", key, (extra_values or {}).get(name))
    # a tag nobody ever ticked says nothing about agreement
    return {k: v for k, v in out.items() if not k.startswith("tag:") or any(v[1].values())}


def dataset_agreement(dataset: Dataset, *, resamples: int = 1000, seed: int = 0) -> dict:
    """Per criterion: Krippendorff's alpha (ordinal for the scales, nominal otherwise), Fleiss' kappa
    over the samples every annotator of that criterion labelled, and Cohen's kappa for each pair of
    annotators (quadratic weights for the scales); each with a bootstrap 95% interval and its n."""
    config = config_from_settings(dataset.settings)
    rows = list(
        Label.objects.filter(dataset=dataset, is_current=True)
        .exclude(Exists(GoldLabel.objects.filter(sample=OuterRef("sample"))))
        .values_list("sample_id", "annotator__username", "accuracy", "completeness", "conciseness", "difficulty",
                     "verdict", "error_tags", "extra")
        .order_by("sample_id", "annotator__username")
        .iterator(chunk_size=5000)
    )
    criteria = _criteria(rows, config.tags, [f.name for f in config.extra_fields])
    report = []
    for name, (level, values) in criteria.items():
        users = sorted({u for _s, u in values})
        samples = sorted({s for s, _u in values})
        col = {s: i for i, s in enumerate(samples)}
        raw = [[None] * len(samples) for _ in users]
        for (s, u), v in values.items():
            raw[users.index(u)][col[s]] = v
        if level == "ordinal":
            matrix = np.array([[np.nan if v is None else float(v) for v in row] for row in raw])
        else:
            matrix, _labels = agreement.codes(raw)
        alpha = agreement.bootstrap(matrix, lambda m, lv=level: agreement.krippendorff_alpha(m, lv), resamples=resamples, seed=seed)
        counts = (~np.isnan(matrix)).sum(axis=0)
        fleiss = None
        if len(users) >= 3 and counts.max(initial=0) == len(users):
            full = matrix[:, counts == len(users)]
            fleiss = agreement.bootstrap(full, agreement.fleiss_kappa, resamples=resamples, seed=seed)
        weights = ORDINAL_WEIGHTS if level == "ordinal" else None
        pairs = []
        for (i, a), (j, b) in itertools.combinations(enumerate(users), 2):
            pair = matrix[[i, j]]
            est = agreement.bootstrap(pair, lambda m, w=weights: agreement.cohen_kappa(list(m[0]), list(m[1]), weights=w),
                                      resamples=resamples, seed=seed)
            if est.n:
                pairs.append({"a": a, "b": b, **est.as_dict()})
        report.append({
            "criterion": name, "level": level, "annotators": len(users), "samples": len(samples),
            "alpha": alpha.as_dict(), "fleiss": fleiss.as_dict() if fleiss else None, "cohen": pairs,
            "cohen_weights": weights,
        })
    return {"dataset": dataset.slug, "labels": len(rows), "criteria": report, "resamples": resamples, "seed": seed}


# ---------------------------------------------------------------------------------------------
# Per annotator, the conflict queue, one sample's review, its audit trail
# ---------------------------------------------------------------------------------------------

def _peer_rows(dataset: Dataset) -> dict[int, dict]:
    """Per annotator: current labels (gold samples apart), verdict pairs with the other annotators of
    the same samples and how many match, and leniency per scale. One statement and one pass: window
    sums over each sample's current labels give its votes per verdict and its sums per scale, and a
    label's peers are those totals minus the label itself (an annotator has one current label per
    sample). 1.6 M labels: about 7 s on 2 cores (bench/dashboard.py --live-annotators)."""
    label, gold = Label._meta.db_table, GoldLabel._meta.db_table
    per_verdict = ", ".join(f"SUM(CASE WHEN verdict = %s THEN 1 ELSE 0 END) OVER w AS n_{i}" for i, _v in enumerate(VERDICTS))
    same = " ".join(f"WHEN %s THEN n_{i} - 1" for i, _v in enumerate(VERDICTS))
    sums = ", ".join(f"SUM({s}) OVER w AS sum_{s}, COUNT({s}) OVER w AS n_{s}" for s in SCALES)
    lenient = ", ".join(f"AVG(CASE WHEN {s} IS NOT NULL AND n_{s} > 1 THEN {s} - (sum_{s} - {s}) * 1.0 / (n_{s} - 1) END)" for s in SCALES)
    sql = f"""
        SELECT annotator_id, COUNT(*),
               SUM(CASE WHEN verdict <> '' THEN votes - 1 ELSE 0 END),
               SUM(CASE verdict {same} ELSE 0 END),
               {lenient}
        FROM (
            SELECT annotator_id, verdict, {", ".join(SCALES)},
                   SUM(CASE WHEN verdict <> '' THEN 1 ELSE 0 END) OVER w AS votes, {per_verdict}, {sums}
            FROM {label} l
            WHERE l.dataset_id = %s AND l.is_current AND NOT EXISTS (SELECT 1 FROM {gold} g WHERE g.sample_id = l.sample_id)
            WINDOW w AS (PARTITION BY sample_id)
        ) peers
        GROUP BY annotator_id"""
    params = [*VERDICTS, *VERDICTS, dataset.pk]  # `same` comes first in the statement, then `per_verdict`
    postgres = connection.vendor == "postgresql"
    with transaction.atomic() if postgres else nullcontext(), connection.cursor() as cursor:
        if postgres:  # sorting every current label by sample: in memory, not on disk
            cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute(sql, params)
        return {
            r[0]: {"labels": int(r[1]), "compared": int(r[2] or 0), "agreed": int(r[3] or 0),
                   **{f"lenient_{s}": float(v) if v is not None else None for s, v in zip(SCALES, r[4:], strict=True)}}
            for r in cursor.fetchall()
        }


def annotator_stats(dataset: Dataset) -> list[dict]:
    """One row per annotator, computed in the database, each label measured against the OTHER
    annotators' labels on the same sample (leave-one-out, so nobody agrees with their own vote):
    current labels (gold apart); agreement with peers, the share of pairs (their verdict, another
    annotator's verdict on the same sample) that match (`compared` counts the pairs; a sample
    counts once it has two labels, finished or not); leniency per scale, the mean of (their score
    minus the mean of the others' scores on that sample); accuracy on gold samples; labels per
    hour of time on task; and skip rate (skipped / (submitted + skipped) assignments)."""
    current = Label.objects.filter(dataset=dataset, is_current=True)
    peers = _peer_rows(dataset)
    gold_rows = (current.filter(gold_score__isnull=False).order_by().values("annotator")
                 .annotate(username=F("annotator__username"), gold_n=Count("id"), gold_accuracy=Avg("gold_score")))
    hours = (Label.objects.filter(dataset=dataset).order_by().values("annotator")
             .annotate(username=F("annotator__username"), versions=Count("id"), seconds=Sum("time_spent_s")))
    turns = (Assignment.objects.filter(dataset=dataset, status__in=[Assignment.Status.SUBMITTED, Assignment.Status.SKIPPED])
             .order_by().values("annotator")
             .annotate(username=F("annotator__username"), done=Count("id"), skipped=Count("id", filter=Q(status=Assignment.Status.SKIPPED))))
    out: dict[int, dict] = {}

    def row(r: dict) -> dict:
        return out.setdefault(r["annotator"], {
            "annotator": r["username"], "labels": 0, "agreement": None, "compared": 0,
            "leniency": dict.fromkeys(SCALES), "gold_n": 0, "gold_accuracy": None,
            "labels_per_hour": None, "hours": 0.0, "skipped": 0, "skip_rate": None,
        })

    for r in hours:  # first: every annotator with a current label has a label version, and their name comes with it
        o = row(r)
        o["hours"] = (r["seconds"] or 0.0) / 3600
        o["labels_per_hour"] = r["versions"] / o["hours"] if o["hours"] else None
    for annotator, r in peers.items():
        o = out[annotator]
        o["labels"], o["compared"] = r["labels"], r["compared"]
        o["agreement"] = r["agreed"] / r["compared"] if r["compared"] else None
        o["leniency"] = {s: r[f"lenient_{s}"] for s in SCALES}
    for r in gold_rows:
        o = row(r)
        o["gold_n"], o["gold_accuracy"] = r["gold_n"], r["gold_accuracy"]
    for r in turns:
        o = row(r)
        o["skipped"] = r["skipped"]
        o["skip_rate"] = r["skipped"] / r["done"] if r["done"] else None
    return sorted(out.values(), key=lambda o: o["annotator"])


def conflict_queue(dataset: Dataset, *, reason: str = "") -> QuerySet[ReviewItem]:
    """Open review items, worst first then oldest; `reason` keeps those with that reason code."""
    qs = (ReviewItem.objects.filter(dataset=dataset, is_open=True).select_related("sample")
          .defer("sample__messages", "sample__source", "sample__text", "sample__meta").order_by("-severity", "routed_at", "id"))
    if reason:
        if connection.vendor == "postgresql":
            qs = qs.filter(reasons__contains=[{"code": reason}])
        else:
            qs = qs.extra(where=["EXISTS (SELECT 1 FROM json_each(reviews_reviewitem.reasons) j "
                                 "WHERE json_extract(j.value, '$.code') = %s)"], params=[reason])
    return qs


def conflict_reason_counts(dataset: Dataset) -> list[tuple[str, int]]:
    """How many open items carry each reason, most first (counted in the database)."""
    if connection.vendor == "postgresql":
        sql = ("SELECT r->>'code', COUNT(*) FROM reviews_reviewitem i, jsonb_array_elements(i.reasons) r "
               "WHERE i.dataset_id = %s AND i.is_open GROUP BY 1")
    else:
        sql = ("SELECT json_extract(j.value, '$.code'), COUNT(*) FROM reviews_reviewitem i, json_each(i.reasons) j "
               "WHERE i.dataset_id = %s AND i.is_open GROUP BY 1")
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset.pk])
        rows = cursor.fetchall()
    return sorted(((code, n) for code, n in rows if code), key=lambda kv: (-kv[1], kv[0]))


def review_item_next(dataset: Dataset, *, after: ReviewItem | None = None, reason: str = "") -> ReviewItem | None:
    """The open item after `after` in queue order (the first when None)."""
    qs = conflict_queue(dataset, reason=reason)
    if after is not None:
        qs = qs.filter(
            Q(severity__lt=after.severity)
            | Q(severity=after.severity, routed_at__gt=after.routed_at)
            | Q(severity=after.severity, routed_at=after.routed_at, id__gt=after.id)
        )
    return qs.first()


def decision_list(sample: Sample) -> list[ReviewDecision]:
    """The sample's decisions, newest first, with who took them and the revision each made."""
    return list(ReviewDecision.objects.filter(sample=sample).select_related("reviewer", "revision").order_by("-created_at", "-id"))


def sample_review(dataset: Dataset, sample: Sample) -> dict:
    """What a reviewer needs to decide one sample: its current labels with annotator names, its review
    item (consensus and reasons), its decisions and revisions, and the conversation as it stands."""
    from .routing import current_answer

    labels = list(Label.objects.filter(sample=sample, is_current=True).select_related("annotator").order_by("annotator__username"))
    item = ReviewItem.objects.filter(sample=sample).first()
    decisions = decision_list(sample)
    messages, revision = current_answer(sample)
    return {"labels": labels, "item": item, "decisions": decisions, "messages": messages, "revision": revision}


def audit_trail(sample: Sample) -> list[dict]:
    """Every label version, decision, revision and status change of the sample, oldest first:
    {"at", "kind", "who", "before", "after", "detail"}. For reviewers and owners only."""
    events: list[dict] = []
    previous: dict[int, Label] = {}
    for label in Label.objects.filter(sample=sample).select_related("annotator").order_by("annotator_id", "version"):
        before = previous.get(label.annotator_id)
        events.append({"at": label.created_at, "kind": "label", "who": label.annotator.get_username(),
                       "before": _label_values(before) if before else None, "after": _label_values(label),
                       "detail": {"version": label.version, "source": label.source}})
        previous[label.annotator_id] = label
    for d in ReviewDecision.objects.filter(sample=sample).select_related("reviewer"):
        events.append({"at": d.created_at, "kind": "decision", "who": d.reviewer.get_username() if d.reviewer else None,
                       "before": d.status_before, "after": d.status_after,
                       "detail": {"decision": d.decision, "rationale": d.rationale, "revision": d.revision_id}})
    base = sample.messages
    for r in SampleRevision.objects.filter(sample=sample).select_related("author").order_by("created_at", "id"):
        events.append({"at": r.created_at, "kind": "revision", "who": r.author.get_username() if r.author else None,
                       "before": _answer(base), "after": _answer(r.messages), "detail": {"revision": r.pk, "reason": r.reason}})
        if r.status == SampleRevision.Status.APPROVED:
            base = r.messages
    for c in StatusChange.objects.filter(sample=sample).select_related("actor"):
        events.append({"at": c.at, "kind": "status", "who": c.actor.get_username() if c.actor else None,
                       "before": c.from_status, "after": c.to_status, "detail": {"cause": c.cause}})
    order = {"label": 0, "revision": 1, "decision": 2, "status": 3}
    return sorted(events, key=lambda e: (e["at"], order[e["kind"]]))


def _label_values(label: Label) -> dict:
    return {k: getattr(label, k) for k in (*SCALES, "difficulty", "verdict", "error_tags", "corrected_answer", "comment", "extra")}


def _answer(messages: list[dict]) -> str:
    return next((m.get("content", "") for m in reversed(messages) if m.get("role") == "assistant"), "")
