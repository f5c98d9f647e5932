"""Routing: what happens to a sample once it has its k labels. Its consensus is computed, the reasons
it needs a person are listed with a severity (the conflict queue shows the worst first), and the
dataset's rule either approves it on the spot or puts it in the queue.

The default rule (every one of them a setting, `settings["review"]`): approve automatically only when
every verdict is accept, every 1-5 scale is within 1 point, and no metric flags the sample.
A sample goes to the queue when verdicts differ, a scale spreads by 2 or more, anyone rejects or
corrects the answer, or a metric flags it. Annotation code calls `samples_route` inside its own
transaction, with the samples locked or being written.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from annotator.models import Dataset, GoldLabel, Label, Sample, SampleRevision
from annotator.rubric import DIFFICULTIES, SCALES, VERDICTS

from .models import ReviewDecision, ReviewItem, StatusChange

# Severity of each reason; a scale's spread adds its size (2 to 4). The sum orders the queue.
SEVERITY = {"verdict_split": 4, "rejected": 3, "corrected": 2, "flagged": 1, "not_accepted": 1, "manual": 0}
# A tie in the verdict vote goes to the stricter verdict: a reviewer looks at it anyway.
_STRICTNESS = {v: i for i, v in enumerate(VERDICTS)}  # accept < needs_fix < reject


class ReviewConfigError(ValueError):
    """Review settings that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class ReviewConfig:
    auto_approve: bool = True
    max_spread: int = 1
    flags_block: bool = True

    def to_json(self) -> dict:
        return asdict(self)


def review_config_parse(raw: dict | None) -> ReviewConfig:
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(ReviewConfig.__dataclass_fields__))
    if unknown:
        raise ReviewConfigError(f"{unknown[0]}: unknown setting; the settings are {', '.join(ReviewConfig.__dataclass_fields__)}")
    for name in ("auto_approve", "flags_block"):
        if name in raw and not isinstance(raw[name], bool):
            raise ReviewConfigError(f"{name}: expected true or false, got {raw[name]!r}")
    spread = raw.get("max_spread", ReviewConfig.max_spread)
    if isinstance(spread, bool) or not isinstance(spread, int) or not 0 <= spread <= 3:
        raise ReviewConfigError(f"max_spread: expected a whole number from 0 to 3, got {spread!r}")
    return ReviewConfig(**{**asdict(ReviewConfig()), **raw})


def review_config(dataset: Dataset) -> ReviewConfig:
    return review_config_parse((dataset.settings or {}).get("review"))


# ---------------------------------------------------------------------------------------------
# Pure parts: consensus and reasons over a sample's current labels
# ---------------------------------------------------------------------------------------------

def consensus(labels: list[dict]) -> dict:
    """Median of each 1-5 scale; majority verdict with the share that gave it as confidence (a tie
    goes to the stricter verdict); majority difficulty (a tie to the median of the tied values)."""
    out: dict = {"method": ReviewItem.Method.MAJORITY}
    for scale in SCALES:
        values = [lb[scale] for lb in labels if lb.get(scale) is not None]
        out[scale] = float(statistics.median(values)) if values else None
    verdicts = [lb["verdict"] for lb in labels if lb.get("verdict")]
    if verdicts:
        counts = Counter(verdicts)
        top = max(counts.values())
        out["verdict"] = max((v for v, n in counts.items() if n == top), key=_STRICTNESS.__getitem__)
        out["verdict_confidence"] = top / len(verdicts)
    else:
        out["verdict"], out["verdict_confidence"] = "", None
    levels = [lb["difficulty"] for lb in labels if lb.get("difficulty") in DIFFICULTIES]
    if levels:
        counts = Counter(levels)
        top = max(counts.values())
        tied = sorted((d for d, n in counts.items() if n == top), key=DIFFICULTIES.index)
        out["difficulty"] = tied[(len(tied) - 1) // 2]
    else:
        out["difficulty"] = ""
    return out


def reasons(labels: list[dict], flags: list[str], config: ReviewConfig) -> tuple[list[dict], int, bool]:
    """(reasons, severity, auto-approvable) for a sample's current labels and its metric flag rules."""
    found: list[dict] = []
    verdicts = Counter(lb["verdict"] for lb in labels if lb.get("verdict"))
    if len(verdicts) > 1:
        found.append({"code": "verdict_split", "verdicts": dict(sorted(verdicts.items()))})
    if verdicts.get("reject"):
        found.append({"code": "rejected", "n": verdicts["reject"]})
    corrected = sum(1 for lb in labels if (lb.get("corrected_answer") or "").strip())
    if corrected:
        found.append({"code": "corrected", "n": corrected})
    spread_severity = 0
    for scale in SCALES:
        values = [lb[scale] for lb in labels if lb.get(scale) is not None]
        if values and max(values) - min(values) > config.max_spread:
            spread = max(values) - min(values)
            found.append({"code": "scale_spread", "scale": scale, "spread": spread})
            spread_severity += spread
    if flags:
        found.append({"code": "flagged", "rules": sorted(set(flags))})
    if len(verdicts) == 1 and "accept" not in verdicts and not verdicts.get("reject"):
        found.append({"code": "not_accepted", "verdict": next(iter(verdicts))})
    blocking = [r for r in found if r["code"] != "flagged" or config.flags_block]
    auto = config.auto_approve and not blocking and verdicts.get("accept", 0) == len(labels) > 0
    if not auto and not found:
        found.append({"code": "manual"})
    severity = sum(SEVERITY.get(r["code"], 0) for r in found) + spread_severity
    return found, min(severity, 32767), auto


# ---------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------

def status_changes_record(*, dataset: Dataset, changes: Iterable[tuple[int, str, str]], cause: str,
                          actor=None, at: datetime | None = None) -> int:
    """Record (sample id, from, to) moves; moves to the same status are left out."""
    at = at or timezone.now()
    rows = [StatusChange(dataset=dataset, sample_id=sid, from_status=a, to_status=b, actor=actor, cause=cause, at=at)
            for sid, a, b in changes if a != b]
    StatusChange.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


_LABEL_VALUES = ("sample_id", *SCALES, "difficulty", "verdict", "error_tags", "corrected_answer")
_CHUNK = 2000


def samples_route(*, dataset: Dataset, sample_ids: Iterable[int], actor=None, now: datetime | None = None) -> dict:
    """Route the given samples by their current labels: write each one's consensus and reasons, and
    approve those the rule lets through. Samples not (or no longer) in review lose their open item.
    Returns counts {"queued": n, "approved": n, "closed": n}. Call inside a transaction."""
    from scoring.models import SampleFlag  # scoring comes before review; imported late to keep startup light

    now = now or timezone.now()
    config = review_config(dataset)
    ids = sorted(set(sample_ids))
    counts = {"queued": 0, "approved": 0, "closed": 0}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        found_rows = (
            Sample.objects.filter(pk__in=chunk, dataset=dataset, status=Sample.Status.IN_REVIEW)
            .exclude(pk__in=GoldLabel.objects.filter(sample_id__in=chunk).values("sample_id"))
            .values_list("pk", "version", "flag_count")
        )
        in_review = {pk: (version, flagged) for pk, version, flagged in found_rows}
        gone = [sid for sid in chunk if sid not in in_review]
        if gone:
            counts["closed"] += ReviewItem.objects.filter(sample_id__in=gone, is_open=True, decided_at__isnull=True).delete()[0]
        if not in_review:
            continue
        labels: dict[int, list[dict]] = defaultdict(list)
        for row in Label.objects.filter(sample_id__in=list(in_review), is_current=True).values(*_LABEL_VALUES).order_by("sample_id", "annotator_id"):
            labels[row["sample_id"]].append(row)
        flags: dict[int, list[str]] = defaultdict(list)
        flagged = [sid for sid, (_v, n) in in_review.items() if n]
        if flagged:
            for sid, rule in SampleFlag.objects.filter(sample_id__in=flagged).values_list("sample_id", "rule"):
                flags[sid].append(rule)
        items, approve = [], []
        for sid in sorted(in_review):
            found, severity, auto = reasons(labels[sid], flags[sid], config)
            agreed = consensus(labels[sid])
            items.append(ReviewItem(
                dataset=dataset, sample_id=sid, is_open=not auto, severity=severity, reasons=found,
                labels_n=len(labels[sid]), verdict=agreed["verdict"], verdict_confidence=agreed["verdict_confidence"],
                method=agreed["method"], accuracy=agreed["accuracy"], completeness=agreed["completeness"],
                conciseness=agreed["conciseness"], difficulty=agreed["difficulty"], routed_at=now,
                decided_at=now if auto else None,
            ))
            if auto:
                approve.append(sid)
        ReviewItem.objects.bulk_create(
            items, update_conflicts=True, unique_fields=["sample"],
            update_fields=["is_open", "severity", "reasons", "labels_n", "verdict", "verdict_confidence", "method",
                           "accuracy", "completeness", "conciseness", "difficulty", "routed_at", "decided_at"],
        )
        # Every routing moves the version on (labels changed under a reviewer's eyes make their page
        # stale); the auto rule's decision is taken against that version and moves it once more.
        waiting = [sid for sid in in_review if sid not in set(approve)]
        if waiting:
            Sample.objects.filter(pk__in=waiting).update(version=F("version") + 1)
        if approve:
            Sample.objects.filter(pk__in=approve).update(status=Sample.Status.APPROVED, version=F("version") + 2)
            ReviewDecision.objects.bulk_create([
                ReviewDecision(dataset=dataset, sample_id=sid, reviewer=None, decision=ReviewDecision.Decision.APPROVE,
                               status_before=Sample.Status.IN_REVIEW, status_after=Sample.Status.APPROVED,
                               sample_version=in_review[sid][0] + 1, created_at=now)
                for sid in approve
            ], batch_size=2000)
            status_changes_record(dataset=dataset, changes=[(sid, Sample.Status.IN_REVIEW, Sample.Status.APPROVED) for sid in approve],
                                  cause=StatusChange.Cause.AUTO, at=now)
        counts["approved"] += len(approve)
        counts["queued"] += len(waiting)
    return counts


def current_answer(sample: Sample) -> tuple[list[dict], SampleRevision | None]:
    """The conversation as it stands: the newest approved revision's, else the original."""
    revision = SampleRevision.objects.filter(sample=sample, status=SampleRevision.Status.APPROVED).order_by("-created_at", "-id").first()
    return (revision.messages if revision else sample.messages), revision
