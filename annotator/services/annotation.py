"""The assignment engine and labels: blind, pull-based cross-validation.

An annotator asks for the next sample and gets one they have never been given, that still needs
labels and that fewer than `k` people hold (submitted labels plus live reservations). The candidate
row is locked with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so parallel requests take
different samples instead of queueing; every write to a sample's labels holds the same row lock, so
the capacity check after locking sees every committed reservation. SQLite serializes writers (the
embedded default opens transactions IMMEDIATE), which gives the same guarantees there.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, F, JSONField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Least
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from reviews import routing
from reviews.models import StatusChange

from .. import rubric
from ..models import Assignment, Dataset, GoldLabel, Label, Membership, Sample, Suggestion

__all__ = [
    "ANNOTATING_ROLES", "AssignmentGone", "LabelLocked", "annotation_config", "annotation_settings_set",
    "assignment_draft_save", "assignment_next", "assignment_skip", "assignment_submit", "check_can_annotate",
    "gold_clear", "gold_score", "gold_set", "queue_rank_refresh", "suggestions_attach",
]

Role = Membership.Role
ANNOTATING_ROLES = (Role.OWNER, Role.REVIEWER, Role.ANNOTATOR)
OPEN = (Sample.Status.NEW, Sample.Status.ANNOTATING)
REVIEWED = (Sample.Status.APPROVED, Sample.Status.REJECTED)
_HASH_MUL, _HASH_MOD = 2654435761, 4294967291  # Knuth's multiplier, the largest prime below 2**32
_RANK_BAND = 2**32
_MAX_DRAFT_CHARS = 1_000_000
LOCK_WAIT_MS = 2000
MAX_HELD = 5  # live reservations one annotator may hold at once  # how long next waits for a sample row someone holds for a moment


class AssignmentGone(Exception):
    """The reservation lapsed and the sample has since been taken by `k` others."""


class LabelLocked(Exception):
    """The sample has been reviewed: its labels can no longer change."""


def _check_role(*, user: AbstractBaseUser, dataset: Dataset, roles) -> str:
    from . import check_dataset_role  # the package's access check; imported here to avoid a cycle

    return check_dataset_role(user=user, dataset=dataset, roles=roles)


def check_can_annotate(*, user: AbstractBaseUser, dataset: Dataset) -> str:
    """Owners, reviewers and annotators may label; anyone else gets 404."""
    return _check_role(user=user, dataset=dataset, roles=ANNOTATING_ROLES)


def annotation_config(dataset: Dataset) -> rubric.AnnotationConfig:
    return rubric.config_from_settings(dataset.settings)


# ---------------------------------------------------------------------------------------------
# Settings and the queue order
# ---------------------------------------------------------------------------------------------

def annotation_settings_set(*, actor: AbstractBaseUser | None, dataset: Dataset, values: dict) -> rubric.AnnotationConfig:
    """Replace the dataset's annotation settings (owners only). A changed order or seed re-ranks the
    queue; a changed overlap moves samples between 'annotating' and 'in review' to match."""
    if actor is not None:
        _check_role(user=actor, dataset=dataset, roles=[Role.OWNER])
    config = rubric.config_parse(values)  # raises ConfigError naming the setting
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        old = rubric.config_from_settings(locked.settings)
        locked.settings = {**locked.settings, "annotation": config.to_json()}
        locked.save(update_fields=["settings", "updated_at"])
        dataset.settings = locked.settings
        if (old.order, old.seed) != (config.order, config.seed):
            queue_rank_refresh(dataset=locked)
        if old.overlap != config.overlap:
            _sync_completion(dataset=locked, overlap=config.overlap, actor=actor)
    return config


def _sync_completion(*, dataset: Dataset, overlap: int, actor=None) -> None:
    """After k changed: samples that now have k labels go to review (and are routed); samples in
    review that no longer have k go back to annotation. Every move is recorded."""
    ordinary = Sample.objects.filter(dataset=dataset).exclude(Exists(GoldLabel.objects.filter(sample=OuterRef("pk"))))
    moves = [
        (ordinary.filter(status__in=OPEN, label_count__gte=overlap), Sample.Status.IN_REVIEW),
        (ordinary.filter(status=Sample.Status.IN_REVIEW, label_count__lt=overlap, label_count__gt=0), Sample.Status.ANNOTATING),
        (ordinary.filter(status=Sample.Status.IN_REVIEW, label_count=0), Sample.Status.NEW),
    ]
    moved: list[int] = []
    for qs, status in moves:
        rows = list(qs.values_list("pk", "status"))
        ids = [pk for pk, _ in rows]
        for start in range(0, len(ids), 2000):
            Sample.objects.filter(pk__in=ids[start:start + 2000]).update(status=status)
        routing.status_changes_record(dataset=dataset, changes=[(pk, was, status) for pk, was in rows],
                                      cause=StatusChange.Cause.SETTINGS, actor=actor)
        moved += ids
    routing.samples_route(dataset=dataset, sample_ids=moved, actor=actor)


def queue_rank_refresh(*, dataset: Dataset, only_missing: bool = False) -> int:
    """Give samples their place in the annotation queue for the dataset's order:
    - random: a seeded scramble of the id (the same seed gives the same order);
    - flagged: samples with more metric flags first, random within the same count;
    - cluster: the first sample of every instruction cluster, then the second of every cluster, ...
      (cluster from the latest scoring run; samples without one come last).
    Returns the number of samples ranked."""
    config = annotation_config(dataset)
    qs = Sample.objects.filter(dataset=dataset)
    if only_missing:
        qs = qs.filter(queue_rank__isnull=True)
    scramble = ((F("id") + config.seed) * _HASH_MUL) % _HASH_MOD
    if config.order in ("random", "flagged"):
        rank = scramble if config.order == "random" else (255 - Least(F("flag_count"), Value(255))) * _RANK_BAND + scramble
        # only rows whose place changes: fewer rows locked while annotators are asking for work
        return qs.alias(new_rank=rank).filter(Q(queue_rank__isnull=True) | ~Q(queue_rank=F("new_rank"))).update(queue_rank=rank)
    # cluster coverage: round-robin over clusters, computed here (window functions cannot update)
    metric_model = Sample.metrics.rel.related_model
    clusters = dict(metric_model.objects.filter(dataset=dataset, metric="cluster", value__isnull=False).values_list("sample_id", "value"))
    members: dict[int, list[tuple[int, int]]] = defaultdict(list)
    rows = list(qs.values_list("id", flat=True))
    for sid in rows:
        key = int(clusters[sid]) if sid in clusters else -1
        members[key].append((((sid + config.seed) * _HASH_MUL) % _HASH_MOD, sid))
    updates = []
    for key, items in members.items():
        items.sort()
        for position, (scrambled, sid) in enumerate(items):
            band = 2**20 if key == -1 else position  # samples without a cluster after every cluster's
            updates.append(Sample(id=sid, queue_rank=band * _RANK_BAND + scrambled))
    Sample.objects.bulk_update(updates, ["queue_rank"], batch_size=2000)
    return len(updates)


# ---------------------------------------------------------------------------------------------
# Next sample
# ---------------------------------------------------------------------------------------------

def _has_room(sample: Sample, *, user, now: datetime, overlap: int, is_gold: bool) -> bool:
    """With the sample row locked: may `user` hold (or keep) a place on it?"""
    if is_gold:
        return True
    if sample.status not in OPEN:
        return False
    others = Assignment.objects.filter(sample=sample, status=Assignment.Status.RESERVED, expires_at__gt=now).exclude(annotator=user).count()
    return sample.label_count + others < overlap


def _gold_turn(*, user, dataset: Dataset, config: rubric.AnnotationConfig) -> bool:
    """Whether this request serves a gold sample: a seeded draw per (user, request number), so the
    rate holds per annotator and a test can predict it."""
    if config.gold_rate <= 0:
        return False
    served = Assignment.objects.filter(dataset=dataset, annotator=user).count()
    # Keyed with the server's secret: knowing the seed and their own id, an annotator still cannot
    # tell which of their requests serve gold.
    digest = hashlib.blake2b(f"{config.seed}:{dataset.pk}:{user.pk}:{served}".encode(), digest_size=8,
                             key=django_settings.SECRET_KEY.encode()[:64]).digest()
    return random.Random(int.from_bytes(digest, "big")).random() < config.gold_rate


def assignment_next(
    *, user: AbstractBaseUser, dataset: Dataset, exclude: tuple[int, ...] = (), now: datetime | None = None
) -> Assignment | None:
    """The user's next assignment: a reservation they already hold (oldest first, so a reload shows
    the same sample; `exclude` skips ones already on screen), else a new one. None when nothing is
    left for them. Never a sample they were given before, never more than `k` holders at once."""
    check_can_annotate(user=user, dataset=dataset)
    config = annotation_config(dataset)
    now = now or timezone.now()
    expires = now + timedelta(minutes=config.reservation_minutes)
    with transaction.atomic():
        held = (
            Assignment.objects.filter(dataset=dataset, annotator=user, status=Assignment.Status.RESERVED)
            .exclude(pk__in=exclude).order_by("reserved_at", "id")
        )
        held = list(held)
        for assignment in held:
            if assignment.expires_at > now:
                return assignment
            sample = Sample.objects.select_for_update().get(pk=assignment.sample_id)
            if _has_room(sample, user=user, now=now, overlap=config.overlap, is_gold=assignment.is_gold):
                Assignment.objects.filter(pk=assignment.pk).update(expires_at=expires)
                assignment.expires_at = expires
                return assignment
            Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.EXPIRED, finished_at=now)

        live_held = Assignment.objects.filter(dataset=dataset, annotator=user, status=Assignment.Status.RESERVED, expires_at__gt=now)
        if exclude and live_held.count() >= MAX_HELD:
            return None  # one person may hold only a few samples at once (the page holds two: current and next)
        seen = Assignment.objects.filter(sample=OuterRef("pk"), annotator=user)
        gold = GoldLabel.objects.filter(sample=OuterRef("pk"))
        order = (F("queue_rank").asc(nulls_last=True), "id")
        if _gold_turn(user=user, dataset=dataset, config=config):
            pick = (
                Sample.objects.filter(dataset=dataset).filter(Exists(gold)).exclude(Exists(seen))
                .order_by(*order).values_list("id", flat=True).first()
            )
            if pick is not None:
                return _reserve(user=user, dataset=dataset, sample_id=pick, now=now, expires=expires, is_gold=True)
        # One walk of the queue index in the dataset's order. Known cost: an annotator far ahead of the
        # others walks past the samples they labelled that still wait for other labels (about 7 us
        # each on PostgreSQL: 10,000 such samples add ~70 ms to their next).
        tried: list[int] = []
        for _attempt in range(8):
            sample = _candidate(dataset=dataset, user=user, overlap=config.overlap, now=now, tried=tried, lock=True)
            if sample is None:
                break
            if _room_after_lock(sample, user=user, now=now, overlap=config.overlap):
                return _reserve(user=user, dataset=dataset, sample=sample, now=now, expires=expires)
            tried.append(sample.pk)
        # SKIP LOCKED passes over rows held for a moment (someone's submit): before saying "nothing
        # left", wait briefly for the first such row.
        waiting = _candidate(dataset=dataset, user=user, overlap=config.overlap, now=now, tried=tried, lock=False)
        sample = _lock_briefly(waiting.pk) if waiting is not None else None
        if sample is not None and _room_after_lock(sample, user=user, now=now, overlap=config.overlap):
            return _reserve(user=user, dataset=dataset, sample=sample, now=now, expires=expires)
    return None


def _candidate(*, dataset: Dataset, user, overlap: int, now: datetime, tried: list[int], lock: bool) -> Sample | None:
    """The first sample in queue order that is open, short of `overlap` labels, never given to
    `user`, not gold, and held by fewer than `overlap` people; with `lock`, locked (PostgreSQL: rows
    others hold are skipped). Hand-written SQL: this runs on every request for work, and building
    the same query through the ORM costs more than running it (0.3 ms at 100,000 samples)."""
    samples, assignments, gold = Sample._meta.db_table, Assignment._meta.db_table, GoldLabel._meta.db_table
    not_tried = f"AND s.id NOT IN ({', '.join(['%s'] * len(tried))})" if tried else ""
    locking = "FOR UPDATE OF s SKIP LOCKED" if lock and connection.vendor == "postgresql" else ""
    sql = f"""
        SELECT s.* FROM {samples} s
        WHERE s.dataset_id = %s AND s.status IN (%s, %s) AND s.label_count < %s
          AND NOT EXISTS (SELECT 1 FROM {assignments} seen WHERE seen.sample_id = s.id AND seen.annotator_id = %s)
          AND NOT EXISTS (SELECT 1 FROM {gold} g WHERE g.sample_id = s.id)
          AND (SELECT COUNT(*) FROM {assignments} r WHERE r.sample_id = s.id AND r.status = %s AND r.expires_at > %s)
              < %s - s.label_count
          {not_tried}
        ORDER BY s.queue_rank ASC NULLS LAST, s.id ASC
        LIMIT 1 {locking}"""
    params = [dataset.pk, *OPEN, overlap, user.pk, Assignment.Status.RESERVED,
              connection.ops.adapt_datetimefield_value(now), overlap, *tried]
    return next(iter(Sample.objects.raw(sql, params)), None)


def _room_after_lock(sample: Sample, *, user, now: datetime, overlap: int) -> bool:
    """With the sample row locked: still open, fewer than `overlap` holders, and not already given
    to this user (the query's snapshot may predate a reservation committed since)."""
    if sample.status not in OPEN:
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT COALESCE(SUM(CASE WHEN status = %s AND expires_at > %s AND annotator_id <> %s THEN 1 ELSE 0 END), 0),
                       COALESCE(SUM(CASE WHEN annotator_id = %s THEN 1 ELSE 0 END), 0)
                FROM {Assignment._meta.db_table} WHERE sample_id = %s""",
            [Assignment.Status.RESERVED, connection.ops.adapt_datetimefield_value(now), user.pk, user.pk, sample.pk],
        )
        others, mine = cursor.fetchone()
    return mine == 0 and sample.label_count + others < overlap


def _lock_briefly(pk: int) -> Sample | None:
    """Lock one sample row, waiting at most LOCK_WAIT for whoever holds it; None if it stays held."""
    if connection.vendor != "postgresql":
        return Sample.objects.filter(pk=pk).first()  # SQLite: writers are serialized, nothing is held
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
            return Sample.objects.select_for_update(of=("self",)).filter(pk=pk).first()
    except OperationalError:
        return None


def _reserve(*, user, dataset: Dataset, now: datetime, expires: datetime, sample: Sample | None = None,
             sample_id: int | None = None, is_gold: bool = False) -> Assignment:
    if is_gold:  # gold rows are not locked: the same user racing themselves hits the unique constraint
        try:
            with transaction.atomic():
                return Assignment.objects.create(dataset=dataset, sample_id=sample_id, annotator=user, is_gold=True,
                                                 reserved_at=now, expires_at=expires)
        except IntegrityError:
            return Assignment.objects.get(sample_id=sample_id, annotator=user)
    assignment = Assignment.objects.create(dataset=dataset, sample=sample, annotator=user, reserved_at=now, expires_at=expires)
    return assignment


# ---------------------------------------------------------------------------------------------
# Submit, revise, skip, drafts
# ---------------------------------------------------------------------------------------------

def _own(*, user, dataset: Dataset, assignment_id: int, lock: bool = False) -> Assignment:
    qs = Assignment.objects.filter(pk=assignment_id, dataset=dataset, annotator=user)
    if lock:
        qs = qs.select_for_update()
    assignment = qs.first()
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


def gold_score(values: dict, gold: dict) -> float | None:
    """Share of the gold fields the label got right: verdict, difficulty and extra fields exactly,
    1-5 scales within one point."""
    hits = total = 0
    for key, expected in gold.items():
        if expected in (None, "", [], {}):
            continue
        if key in rubric.SCALES:
            total += 1
            hits += values.get(key) is not None and abs(int(values[key]) - int(expected)) <= 1
        elif key in ("verdict", "difficulty"):
            total += 1
            hits += values.get(key) == expected
        elif key == "extra" and isinstance(expected, dict):
            for name, choice in expected.items():
                total += 1
                hits += values.get("extra", {}).get(name) == str(choice)
    return hits / total if total else None


def assignment_submit(
    *, user: AbstractBaseUser, dataset: Dataset, assignment_id: int, values: dict,
    source: str = Label.Source.UI, now: datetime | None = None,
) -> Label:
    """Submit a label for the user's own assignment, or revise a submitted one (a new version; the
    old stays). Raises rubric.LabelInvalid (by field), AssignmentGone, or LabelLocked."""
    check_can_annotate(user=user, dataset=dataset)
    now = now or timezone.now()
    with transaction.atomic():
        # One statement locks the sample of the user's own assignment and reads its gold values and the
        # dataset's settings as they are now (an owner may just have changed k). Every write to the
        # sample's labels holds this lock, so the assignment read after it is current.
        own = Assignment.objects.filter(pk=assignment_id, dataset=dataset, annotator=user).values("sample_id")[:1]
        sample = (
            Sample.objects.select_for_update(of=("self",)).filter(pk=Subquery(own))
            .annotate(gold_values=Subquery(GoldLabel.objects.filter(sample=OuterRef("pk")).values("values")[:1], output_field=JSONField()),
                      dataset_settings=F("dataset__settings"))
            .first()
        )
        if sample is None:
            raise Http404("No such assignment.")
        assignment = Assignment.objects.get(pk=assignment_id)
        config = rubric.config_from_settings(sample.dataset_settings)
        cleaned = rubric.label_clean(values, config=config, original_answer=sample.answer)
        gold = sample.gold_values
        score = gold_score(cleaned, gold) if gold else None
        if assignment.status == Assignment.Status.SUBMITTED:
            if sample.status in REVIEWED and gold is None:  # gold samples stay open, or they would stand out
                raise LabelLocked(_("This sample has been reviewed; its labels can no longer change."))
            previous = Label.objects.select_for_update().get(assignment=assignment, is_current=True)
            Label.objects.filter(pk=previous.pk).update(is_current=False)
            Assignment.objects.filter(pk=assignment.pk).update(draft={}, draft_saved_at=None)
            label = Label.objects.create(
                assignment=assignment, dataset=dataset, sample=sample, annotator=user, version=previous.version + 1,
                gold_score=score, source=source, created_at=now, **cleaned,
            )
            if sample.status == Sample.Status.IN_REVIEW and gold is None:  # its consensus and reasons change with it
                routing.samples_route(dataset=dataset, sample_ids=[sample.pk], actor=user, now=now)
            return label
        is_gold = assignment.is_gold or gold is not None
        if not is_gold and sample.status in REVIEWED:
            raise LabelLocked(_("This sample has been reviewed; it takes no more labels."))
        fresh = assignment.status == Assignment.Status.RESERVED and assignment.expires_at > now
        if not fresh and not _has_room(sample, user=user, now=now, overlap=config.overlap, is_gold=is_gold):
            raise AssignmentGone(
                _("Your reservation of this sample lapsed and %(k)d other annotators have taken it; your draft is kept, "
                  "and the next sample is waiting.") % {"k": config.overlap}
            )
        label = Label.objects.create(
            assignment=assignment, dataset=dataset, sample=sample, annotator=user, version=1,
            gold_score=score, source=source, created_at=now, **cleaned,
        )
        Assignment.objects.filter(pk=assignment.pk).update(
            status=Assignment.Status.SUBMITTED, finished_at=now, draft={}, draft_saved_at=None
        )
        sample.label_count += 1
        fields = ["label_count"]
        before = sample.status
        if not is_gold and sample.status in OPEN:
            sample.status = Sample.Status.IN_REVIEW if sample.label_count >= config.overlap else Sample.Status.ANNOTATING
            fields.append("status")
        sample.save(update_fields=fields)
        if sample.status != before:
            routing.status_changes_record(dataset=dataset, changes=[(sample.pk, before, sample.status)],
                                          cause=StatusChange.Cause.LABEL, actor=user, at=now)
            if sample.status == Sample.Status.IN_REVIEW:
                routing.samples_route(dataset=dataset, sample_ids=[sample.pk], actor=user, now=now)
    return label


def assignment_skip(*, user: AbstractBaseUser, dataset: Dataset, assignment_id: int, reason: str = "", now: datetime | None = None) -> Assignment:
    """Give a reserved sample back with a reason; it is never offered to this user again and a skip
    is not a label."""
    check_can_annotate(user=user, dataset=dataset)
    with transaction.atomic():
        assignment = _own(user=user, dataset=dataset, assignment_id=assignment_id, lock=True)
        if assignment.status == Assignment.Status.SUBMITTED:
            raise LabelLocked(_("You already labelled this sample; revise the label instead of skipping."))
        assignment.status = Assignment.Status.SKIPPED
        assignment.skip_reason = reason.strip()[:2000]
        assignment.finished_at = now or timezone.now()
        assignment.save(update_fields=["status", "skip_reason", "finished_at"])
    return assignment


def assignment_draft_save(*, user: AbstractBaseUser, dataset: Dataset, assignment_id: int, values: dict) -> Assignment:
    """Autosave unsubmitted values as they are (a draft may be incomplete or not yet valid)."""
    check_can_annotate(user=user, dataset=dataset)
    draft = {k: v for k, v in values.items() if k in rubric.LABEL_FIELDS}
    try:
        json.dumps(draft, allow_nan=False)
    except (TypeError, ValueError):
        raise rubric.LabelInvalid({"draft": _("a draft holds text and numbers only (no NaN or infinity)")}) from None
    if sum(len(str(v)) for v in draft.values()) > _MAX_DRAFT_CHARS:
        raise rubric.LabelInvalid({"corrected_answer": _("the draft is over %(n)s characters") % {"n": f"{_MAX_DRAFT_CHARS:,}"}})
    assignment = _own(user=user, dataset=dataset, assignment_id=assignment_id)
    reviewed = Sample.objects.filter(pk=assignment.sample_id, status__in=REVIEWED).exclude(Exists(GoldLabel.objects.filter(sample=OuterRef("pk"))))
    if assignment.status == Assignment.Status.SUBMITTED and reviewed.exists():
        raise LabelLocked(_("This sample has been reviewed; its labels can no longer change."))
    now = timezone.now()
    Assignment.objects.filter(pk=assignment.pk).update(draft=draft, draft_saved_at=now)
    assignment.draft, assignment.draft_saved_at = draft, now
    return assignment


# ---------------------------------------------------------------------------------------------
# Gold samples and model suggestions
# ---------------------------------------------------------------------------------------------

GOLD_FIELDS = rubric.SCALES + ("difficulty", "verdict", "extra")
MAX_SUGGESTIONS = 5000


def gold_set(*, actor: AbstractBaseUser | None, dataset: Dataset, sample: Sample, values: dict) -> GoldLabel:
    """Mark a sample as gold with its known-good values (owners only). Verdict is required."""
    if actor is not None:
        _check_role(user=actor, dataset=dataset, roles=[Role.OWNER])
    if sample.dataset_id != dataset.pk:
        raise Http404("No such sample.")
    config = annotation_config(dataset)
    cleaned = rubric.label_clean(
        {k: v for k, v in values.items() if k in GOLD_FIELDS}, config=config, original_answer=sample.answer, partial=True
    )
    if not cleaned["verdict"]:
        raise rubric.LabelInvalid({"verdict": _("a gold sample needs the verdict it should get")})
    kept = {k: cleaned[k] for k in GOLD_FIELDS if cleaned.get(k) not in (None, "", {})}
    with transaction.atomic():
        gold, _created = GoldLabel.objects.update_or_create(sample=sample, defaults={"values": kept, "created_by": actor})
        _rescore_gold(sample=sample, gold=kept)
    return gold


def _rescore_gold(*, sample: Sample, gold: dict | None) -> None:
    """Score the sample's labels (every version) against its gold values; None when it has no gold."""
    labels = list(Label.objects.filter(sample=sample))
    for label in labels:
        values = {k: getattr(label, k) for k in GOLD_FIELDS}
        label.gold_score = gold_score(values, gold) if gold else None
    Label.objects.bulk_update(labels, ["gold_score"], batch_size=1000)


def gold_clear(*, actor: AbstractBaseUser | None, dataset: Dataset, sample: Sample) -> int:
    if actor is not None:
        _check_role(user=actor, dataset=dataset, roles=[Role.OWNER])
    with transaction.atomic():
        locked = Sample.objects.select_for_update().get(pk=sample.pk, dataset=dataset)
        deleted, _ = GoldLabel.objects.filter(sample=locked).delete()
        if deleted:
            _rescore_gold(sample=locked, gold=None)
            # an ordinary sample again: the status its labels call for (gold kept none)
            if locked.status in OPEN + (Sample.Status.IN_REVIEW,):
                overlap = annotation_config(dataset).overlap
                status = (Sample.Status.IN_REVIEW if locked.label_count >= overlap
                          else Sample.Status.ANNOTATING if locked.label_count else Sample.Status.NEW)
                Sample.objects.filter(pk=locked.pk).update(status=status)
                routing.status_changes_record(dataset=dataset, changes=[(locked.pk, locked.status, status)],
                                              cause=StatusChange.Cause.GOLD, actor=actor)
                routing.samples_route(dataset=dataset, sample_ids=[locked.pk], actor=actor)
    return deleted


def suggestions_attach(*, actor: AbstractBaseUser | None, dataset: Dataset, items: list[dict]) -> list[Suggestion]:
    """Attach model-proposed rubric values to samples, all or nothing. Each item: `sample_id` or
    `external_id`, `values` (rubric fields; partial is fine), `model` (a name). Owners and reviewers."""
    if actor is not None:
        _check_role(user=actor, dataset=dataset, roles=[Role.OWNER, Role.REVIEWER])
    config = annotation_config(dataset)
    errors: dict[str, str] = {}
    if len(items) > MAX_SUGGESTIONS:
        raise rubric.LabelInvalid({"items": f"at most {MAX_SUGGESTIONS:,} per request, got {len(items):,}"})
    keys: list[tuple[str, object] | None] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items[{n}]"] = "expected an object with sample_id or external_id, values and model"
            keys.append(None)
        elif item.get("sample_id") is not None:
            try:
                keys.append(("id", int(item["sample_id"])))
            except (TypeError, ValueError):
                errors[f"items[{n}].sample_id"] = f"expected a whole number, got {item['sample_id']!r}"
                keys.append(None)
        else:
            keys.append(("ext", str(item.get("external_id"))) if item.get("external_id") is not None else None)
    ids = {k[1] for k in keys if k and k[0] == "id"}
    ext = {k[1] for k in keys if k and k[0] == "ext"}
    found = Sample.objects.filter(dataset=dataset).filter(Q(pk__in=ids) | Q(external_id__in=ext))
    by_key = {}
    for s in found:
        by_key[("id", s.pk)] = s
        by_key[("ext", s.external_id)] = s
    rows = []
    for n, item in enumerate(items):
        if f"items[{n}]" in errors or f"items[{n}].sample_id" in errors:
            continue
        sample = by_key.get(keys[n]) if keys[n] else None
        if sample is None:
            errors[f"items[{n}]"] = "no such sample in this dataset (give sample_id or external_id)"
            continue
        values = item.get("values")
        if not isinstance(values, dict):
            errors[f"items[{n}].values"] = "expected an object of rubric values"
            continue
        try:
            cleaned = rubric.label_clean(values, config=config, original_answer=sample.answer, partial=True)
        except rubric.LabelInvalid as exc:
            errors.update({f"items[{n}].values.{k}": v for k, v in exc.errors.items()})
            continue
        kept = {k: v for k, v in cleaned.items() if v not in (None, "", [], {}) and not (k == "time_spent_s" and not v)}
        rows.append(Suggestion(sample=sample, values=kept, model_name=str(item.get("model") or "")[:200], created_by=actor))
    if errors:
        raise rubric.LabelInvalid(errors)
    return Suggestion.objects.bulk_create(rows, batch_size=1000)
