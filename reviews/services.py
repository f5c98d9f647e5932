"""Writes of the review desk: a reviewer's decision on a sample (with optimistic locking), the
dataset's review rule, and asking for a fresh agreement report."""

from __future__ import annotations

import copy
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from annotator.models import Dataset, Label, Membership, Sample, SampleRevision
from annotator.services import check_dataset_role

from .models import AgreementReport, ReviewDecision, ReviewItem, StatusChange
from .routing import ReviewConfig, current_answer, review_config_parse, samples_route, status_changes_record

Role = Membership.Role
REVIEW_ROLES = (Role.OWNER, Role.REVIEWER)
MAX_ANSWER_CHARS = 200_000
MAX_RATIONALE_CHARS = 10_000


class DecisionInvalid(ValueError):
    """A decision that cannot be taken as given; `errors` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class DecisionConflict(Exception):
    """The sample changed since the reviewer loaded it (someone decided, or its labels changed).
    Carries what is there now, so the reviewer can see it before deciding again."""

    def __init__(self, *, sample: Sample, latest: ReviewDecision | None):
        self.sample, self.latest = sample, latest
        if latest is not None:
            who = latest.reviewer.get_username() if latest.reviewer else _("the auto-approve rule")
            message = _("%(who)s already decided this sample (%(decision)s) at %(when)s; nothing of yours was saved. "
                        "Look at their decision and decide again if you disagree.") % {
                "who": who, "decision": latest.get_decision_display(), "when": timezone.localtime(latest.created_at).strftime("%Y-%m-%d %H:%M:%S")}
        else:
            message = _("This sample's labels changed since you opened it; nothing of yours was saved. Reload it and decide again.")
        super().__init__(message)


def check_can_review(*, user: AbstractBaseUser, dataset: Dataset) -> str:
    return check_dataset_role(user=user, dataset=dataset, roles=REVIEW_ROLES)


def review_decide(
    *, user: AbstractBaseUser, dataset: Dataset, sample_id: int, decision: str, expected_version: int,
    rationale: str = "", answer: str | None = None, now: datetime | None = None,
) -> ReviewDecision:
    """Approve, reject, or approve with an edited answer (a new approved SampleRevision). The decision
    is taken only if the sample is still at `expected_version`; else DecisionConflict, and nothing is
    written. A rationale is required to reject or edit."""
    check_can_review(user=user, dataset=dataset)
    now = now or timezone.now()
    rationale = (rationale or "").strip()
    errors: dict[str, str] = {}
    if decision not in ReviewDecision.Decision.values:
        errors["decision"] = _("expected one of %(choices)s, got %(value)r") % {
            "choices": ", ".join(ReviewDecision.Decision.values), "value": decision}
    if decision in (ReviewDecision.Decision.REJECT, ReviewDecision.Decision.APPROVE_EDIT) and not rationale:
        errors["rationale"] = _("say why: a rejection or an edit needs a rationale")
    if len(rationale) > MAX_RATIONALE_CHARS:
        errors["rationale"] = _("at most %(n)d characters") % {"n": MAX_RATIONALE_CHARS}
    if decision == ReviewDecision.Decision.APPROVE_EDIT:
        if answer is None or not answer.strip():
            errors["answer"] = _("approving with an edit needs the edited answer")
        elif len(answer) > MAX_ANSWER_CHARS:
            errors["answer"] = _("at most %(n)d characters") % {"n": MAX_ANSWER_CHARS}
    if isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0:
        errors["version"] = _("expected the sample's version as a whole number, got %(value)r") % {"value": expected_version}
    if errors:
        raise DecisionInvalid(errors)
    with transaction.atomic():
        sample = Sample.objects.select_for_update().filter(pk=sample_id, dataset=dataset).first()
        if sample is None:
            raise Http404("No such sample.")
        if sample.version != expected_version:
            latest = ReviewDecision.objects.select_related("reviewer", "revision").filter(sample=sample).order_by("-created_at", "-id").first()
            if latest is not None and latest.sample_version < expected_version:
                latest = None  # the change the reviewer missed is in the labels, not a decision
            raise DecisionConflict(sample=sample, latest=latest)
        revision = None
        if decision == ReviewDecision.Decision.APPROVE_EDIT:
            messages, _base = current_answer(sample)
            edited = _with_answer(messages, answer.replace("\r\n", "\n"))
            if edited == messages:
                raise DecisionInvalid({"answer": _("the edited answer is the same as the current one; approve it instead")})
            revision = SampleRevision.objects.create(sample=sample, messages=edited, author=user, reason=rationale,
                                                     status=SampleRevision.Status.APPROVED)
            now = max(now, revision.created_at)  # the trail reads: edit, then the decision that took it
        after = Sample.Status.REJECTED if decision == ReviewDecision.Decision.REJECT else Sample.Status.APPROVED
        made = ReviewDecision.objects.create(
            dataset=dataset, sample=sample, reviewer=user, decision=decision, rationale=rationale, revision=revision,
            status_before=sample.status, status_after=after, sample_version=sample.version, created_at=now,
        )
        status_changes_record(dataset=dataset, changes=[(sample.pk, sample.status, after)], cause=StatusChange.Cause.DECISION,
                              actor=user, at=now)
        Sample.objects.filter(pk=sample.pk).update(status=after, version=sample.version + 1)
        ReviewItem.objects.filter(sample=sample).update(is_open=False, decided_at=now)
    return made


def _with_answer(messages: list[dict], answer: str) -> list[dict]:
    """The conversation with its last assistant turn replaced (or one added when there is none)."""
    edited = copy.deepcopy(messages)
    for message in reversed(edited):
        if message.get("role") == "assistant":
            message["content"] = answer
            return edited
    edited.append({"role": "assistant", "content": answer})
    return edited


def review_settings_set(*, actor: AbstractBaseUser | None, dataset: Dataset, values: dict) -> ReviewConfig:
    """Set the dataset's auto-approve rule (owners) and apply it to every sample waiting in review."""
    if actor is not None:
        check_dataset_role(user=actor, dataset=dataset, roles=[Role.OWNER])
    config = review_config_parse(values)  # raises ReviewConfigError naming the setting
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        locked.settings = {**locked.settings, "review": config.to_json()}
        locked.save(update_fields=["settings", "updated_at"])
        dataset.settings = locked.settings
        waiting = Sample.objects.filter(dataset=locked, status=Sample.Status.IN_REVIEW).values_list("pk", flat=True)
        samples_route(dataset=locked, sample_ids=list(waiting), actor=actor)
    return config


def agreement_request(*, user: AbstractBaseUser | None, dataset: Dataset, resamples: int = 1000, seed: int = 0) -> AgreementReport:
    """Queue a fresh agreement report unless one is already queued or running for the dataset."""
    if user is not None:
        check_can_review(user=user, dataset=dataset)
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        pending = AgreementReport.objects.filter(
            dataset=dataset, status__in=[AgreementReport.Status.QUEUED, AgreementReport.Status.RUNNING]).first()
        if pending is not None:
            return pending
        report = AgreementReport.objects.create(dataset=dataset, resamples=resamples, seed=seed, requested_by=user)
        from .tasks import agreement_compute

        transaction.on_commit(lambda: agreement_compute.delay(report.pk))
    return report


def agreement_run(report_id: int) -> AgreementReport | None:
    """Compute a queued report (the task's body). Does nothing for one already finished."""
    from . import selectors

    claimed = AgreementReport.objects.filter(pk=report_id, status=AgreementReport.Status.QUEUED).update(status=AgreementReport.Status.RUNNING)
    report = AgreementReport.objects.select_related("dataset").filter(pk=report_id).first()
    if not claimed or report is None:
        return report
    try:
        last = Label.objects.filter(dataset=report.dataset).order_by("-id").values_list("id", flat=True).first() or 0
        data = selectors.dataset_agreement(report.dataset, resamples=report.resamples, seed=report.seed)
        data["annotators"] = selectors.annotator_stats(report.dataset)
        report.report, report.labels_seen, report.last_label_id = data, data["labels"], last
        report.status = AgreementReport.Status.SUCCEEDED
    except Exception as exc:  # recorded on the report for the dashboard; the task does not retry
        report.status, report.error = AgreementReport.Status.FAILED, f"{type(exc).__name__}: {exc}"
    report.finished_at = timezone.now()
    report.save(update_fields=["status", "report", "labels_seen", "last_label_id", "error", "finished_at"])
    return report
