"""The review desk's pages: the conflict queue, the adjudication page, the dataset's review rule, and
the audit trail shown on the sample page.

Only owners and reviewers of a dataset get here; everyone else (annotators of the same dataset
included) gets 404, as for a foreign dataset. The adjudication page is keyboard-first
(static/js/review.js): its decision form posts with htmx and re-renders the decision panel (a conflict
answers 409, invalid input 422), and on success swaps in the next item of the queue. Without
JavaScript every form posts and redirects. User text is rendered escaped; diffs are built from
escaped parts (annotator.views.annotate.answer_diff).
"""

from __future__ import annotations

import itertools

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Substr
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotator import rubric
from annotator import selectors as annotator_selectors
from annotator import services as annotator_services
from annotator.models import Dataset, Label, Membership, Sample
from annotator.views.annotate import answer_diff

from .. import routing, selectors, services
from ..forms import DecisionForm, ReviewRuleForm
from ..models import ReviewDecision, ReviewItem, StatusChange

TEMPLATE = "reviews/adjudicate.html"
QUEUE_TEMPLATE = "reviews/queue.html"
QUEUE_PAGE_SIZE = 50
SNIPPET_CHARS = 160
Decision = ReviewDecision.Decision

# ---------------------------------------------------------------------------------------------
# Reasons a sample needs a reviewer, as readable text
# ---------------------------------------------------------------------------------------------

REASON_TITLES = {
    "verdict_split": gettext_lazy("Verdicts differ"),
    "rejected": gettext_lazy("Rejected by an annotator"),
    "corrected": gettext_lazy("Answer corrected"),
    "scale_spread": gettext_lazy("Scales spread"),
    "flagged": gettext_lazy("Flagged by metrics"),
    "not_accepted": gettext_lazy("Not accepted"),
    "manual": gettext_lazy("Manual review"),
}


def _lower(text) -> str:
    return str(text).lower()


def reason_text(reason: dict) -> str:
    """One reason of a review item in words: "verdicts differ: accept 1, reject 1"."""
    code = reason.get("code", "")
    if code == "verdict_split":
        counts = ", ".join(f"{_lower(rubric.VERDICT_LABELS.get(v, v))} {n}" for v, n in (reason.get("verdicts") or {}).items())
        return _("verdicts differ: %(counts)s") % {"counts": counts}
    if code == "rejected":
        n = int(reason.get("n") or 0)
        return ngettext("rejected by %(n)d annotator", "rejected by %(n)d annotators", n) % {"n": n}
    if code == "corrected":
        n = int(reason.get("n") or 0)
        return ngettext("answer corrected by %(n)d annotator", "answer corrected by %(n)d annotators", n) % {"n": n}
    if code == "scale_spread":
        scale = reason.get("scale", "")
        return _("%(scale)s spreads by %(spread)s") % {"scale": _lower(rubric.SCALE_LABELS.get(scale, scale)), "spread": reason.get("spread")}
    if code == "flagged":
        return _("flagged by metrics: %(rules)s") % {"rules": ", ".join(str(r) for r in reason.get("rules") or [])}
    if code == "not_accepted":
        verdict = reason.get("verdict", "")
        return _("nobody accepted it: every annotator said %(verdict)s") % {"verdict": _lower(rubric.VERDICT_LABELS.get(verdict, verdict))}
    if code == "manual":
        return _("waiting for a manual decision (the auto-approve rule does not apply)")
    return str(code)


def _reason_code(value: str | None) -> str:
    return value if value in REASON_TITLES else ""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def _newlines(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def _answer(messages_: list[dict]) -> str:
    return next((m.get("content", "") for m in reversed(messages_) if m.get("role") == "assistant"), "")


def _dataset(request, slug: str) -> Dataset:
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    services.check_can_review(user=request.user, dataset=dataset)
    return dataset


def _with_reason(url: str, reason: str) -> str:
    return f"{url}?{urlencode({'reason': reason})}" if reason else url


def _item_url(dataset: Dataset, sample_id: int, reason: str) -> str:
    return _with_reason(reverse("reviews:adjudicate", args=[dataset.slug, sample_id]), reason)


def _queue_url(dataset: Dataset, reason: str) -> str:
    return _with_reason(reverse("reviews:queue", args=[dataset.slug]), reason)


def _item_of(sample: Sample) -> ReviewItem | None:
    try:
        return sample.review
    except ReviewItem.DoesNotExist:
        return None


def _item_prev(dataset: Dataset, item: ReviewItem, reason: str) -> ReviewItem | None:
    """The open item before `item` in queue order (the mirror of selectors.review_item_next)."""
    return (
        selectors.conflict_queue(dataset, reason=reason)
        .filter(Q(severity__gt=item.severity)
                | Q(severity=item.severity, routed_at__lt=item.routed_at)
                | Q(severity=item.severity, routed_at=item.routed_at, id__lt=item.id))
        .reverse().only("id", "sample_id").first()
    )


def _who(user, *, none: str) -> str:
    return user.get_username() if user is not None else none


# ---------------------------------------------------------------------------------------------
# The conflict queue
# ---------------------------------------------------------------------------------------------

def _queue_row(dataset: Dataset, item: ReviewItem, reason: str) -> dict:
    snippet = (item.turn0 if item.turn0_role == "user" else item.turn1) or item.turn0 or ""
    return {
        "item": item, "sample": item.sample, "url": _item_url(dataset, item.sample_id, reason), "snippet": snippet,
        "reasons": [reason_text(r) for r in item.reasons or []],
        "verdict": rubric.VERDICT_LABELS.get(item.verdict, item.verdict),
        "confidence": item.verdict_confidence,
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def queue(request, slug: str):
    """Open items, worst first then oldest, each with its reasons; filter by reason; paginated."""
    dataset = _dataset(request, slug)
    reason = _reason_code(request.GET.get("reason"))
    # The conversation stays deferred: only the start of its first two turns comes back, for the snippet.
    items = selectors.conflict_queue(dataset, reason=reason).annotate(
        turn0_role=KeyTextTransform("role", KeyTransform("0", "sample__messages")),
        turn0=Substr(KeyTextTransform("content", KeyTransform("0", "sample__messages")), 1, SNIPPET_CHARS),
        turn1=Substr(KeyTextTransform("content", KeyTransform("1", "sample__messages")), 1, SNIPPET_CHARS),
    )
    page = Paginator(items, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_queue_row(dataset, item, reason) for item in page.object_list]
    if rows and page.number == 1:
        start = rows[0]["url"]
    else:
        first = selectors.review_item_next(dataset, reason=reason) if page.paginator.count else None
        start = _item_url(dataset, first.sample_id, reason) if first else ""
    context = {"dataset": dataset, "page": page, "rows": rows, "reason": reason, "start_url": start,
               "is_owner": dataset.my_role == Membership.Role.OWNER}
    if request.htmx and request.htmx.target == "queue-table":
        return render(request, f"{QUEUE_TEMPLATE}#queue-table", context)
    counts = selectors.conflict_reason_counts(dataset)
    total = page.paginator.count if not reason else selectors.conflict_queue(dataset).count()
    context.update(
        total=total,
        filters=[{"code": code, "title": REASON_TITLES.get(code, code), "count": n, "active": code == reason} for code, n in counts],
        page_state={"messages": {}},
    )
    return render(request, QUEUE_TEMPLATE, context)


@login_required
@require_GET
def queue_link(request, slug: str):
    """The link to the conflict queue with its open count (loaded into the dataset page)."""
    dataset = _dataset(request, slug)
    return render(request, "reviews/_queue_link.html", {"dataset": dataset, "open_count": selectors.conflict_queue(dataset).count()})


# ---------------------------------------------------------------------------------------------
# The adjudication page
# ---------------------------------------------------------------------------------------------

def _cell(text, *, empty: bool = False, tags: list | None = None) -> dict:
    return {"text": "" if text is None else str(text), "empty": empty, "tags": tags}


def _label_rows(labels: list[Label], config, max_spread: int) -> list[dict]:
    """One row per criterion, one cell per label; `disagree` marks rows whose values differ
    (`strong` when a scale spreads past the dataset's rule)."""
    rows: list[dict] = []

    def add(key: str, title, values: list, display) -> None:
        given = [v for v in values if v not in (None, "")]
        disagree = len({str(v) for v in given}) > 1
        rows.append({
            "key": key, "title": title, "disagree": disagree, "strong": False,
            "cells": [_cell(display(v), empty=True) if v in (None, "") else _cell(display(v)) for v in values],
        })

    add("verdict", _("Verdict"), [lb.verdict for lb in labels], lambda v: rubric.VERDICT_LABELS.get(v, v) if v else "—")
    for scale in rubric.SCALES:
        values = [getattr(lb, scale) for lb in labels]
        add(scale, rubric.SCALE_LABELS[scale], values, lambda v: "—" if v is None else v)
        given = [v for v in values if v is not None]
        rows[-1]["strong"] = bool(given) and max(given) - min(given) > max_spread
    add("difficulty", _("Difficulty"), [lb.difficulty for lb in labels], lambda v: rubric.DIFFICULTY_LABELS.get(v, v) if v else "—")
    tag_sets = [set(lb.error_tags or []) for lb in labels]
    shared = set.intersection(*tag_sets) if tag_sets else set()
    rows.append({
        "key": "error_tags", "title": _("Error tags"), "strong": False,
        "disagree": len({frozenset(s) for s in tag_sets}) > 1,
        "cells": [_cell("", empty=not tags, tags=[{"label": rubric.TAG_LABELS.get(t, t.replace("_", " ")), "shared": t in shared}
                                                  for t in (lb.error_tags or [])])
                  for lb, tags in zip(labels, tag_sets, strict=True)],
    })
    for extra in config.extra_fields:
        add(f"extra.{extra.name}", extra.name.replace("_", " ").capitalize(), [(lb.extra or {}).get(extra.name) for lb in labels],
            lambda v: "—" if v in (None, "") else v)
    rows.append({
        "key": "corrected", "title": _("Corrected the answer"), "strong": False, "disagree": False,
        "cells": [_cell(_("yes, see below") if lb.corrected_answer.strip() else _("no"), empty=not lb.corrected_answer.strip())
                  for lb in labels],
    })
    rows.append({
        "key": "comment", "title": _("Comment"), "strong": False, "disagree": False,
        "cells": [_cell(lb.comment or "—", empty=not lb.comment) for lb in labels],
    })
    return rows


def _consensus(item: ReviewItem | None) -> dict:
    if item is None:
        return {}
    return {
        "verdict": rubric.VERDICT_LABELS.get(item.verdict, item.verdict) if item.verdict else "—",
        "confidence": item.verdict_confidence,
        **{scale: getattr(item, scale) for scale in rubric.SCALES},
        "difficulty": rubric.DIFFICULTY_LABELS.get(item.difficulty, item.difficulty) if item.difficulty else "—",
        "method": item.get_method_display(),
    }


def _decision_row(d: ReviewDecision) -> dict:
    return {
        "decision": d, "who": _who(d.reviewer, none=_("auto rule")), "automatic": d.automatic,
        "title": d.get_decision_display(), "before": _status_label(d.status_before), "after": _status_label(d.status_after),
        "answer": _answer(d.revision.messages) if d.revision else None,
    }


def _workspace_context(request, dataset: Dataset, sample: Sample, *, reason: str, posted: dict | None = None,
                       errors: dict | None = None, conflict: dict | None = None, done: dict | None = None) -> dict:
    review = selectors.sample_review(dataset, sample)
    labels, item = review["labels"], review["item"]
    config = annotator_services.annotation_config(dataset)
    rule = routing.review_config(dataset)
    original = _newlines(sample.answer)
    current = _newlines(_answer(review["messages"]))
    columns = [{"n": n, "username": lb.annotator.get_username(), "label": lb} for n, lb in enumerate(labels, 1)]
    corrections = [
        {"n": c["n"], "username": c["username"], "answer": _newlines(c["label"].corrected_answer),
         "diff": answer_diff(original, c["label"].corrected_answer)}
        for c in columns if c["label"].corrected_answer.strip()
    ]
    pairs = [{"a": a, "b": b, "diff": answer_diff(a["answer"], b["answer"])} for a, b in itertools.combinations(corrections, 2)]
    values = {"decision": "", "rationale": "", "answer": current, "version": sample.version}
    if posted is not None:
        values.update(posted)
    errors = errors or {}
    slug, pk = dataset.slug, sample.pk
    next_item = selectors.review_item_next(dataset, after=item, reason=reason) if item else selectors.review_item_next(dataset, reason=reason)
    if next_item is not None and next_item.sample_id == pk:
        next_item = None
    prev_item = _item_prev(dataset, item, reason) if item else None
    urls = {
        "page": _item_url(dataset, pk, reason),
        "decide": reverse("reviews:decide", args=[slug, pk]),
        "diff": reverse("reviews:answer_diff", args=[slug, pk]),
        "queue": _queue_url(dataset, reason),
        "sample": reverse("annotator:sample_detail", args=[slug, pk]),
        "next": _item_url(dataset, next_item.sample_id, reason) if next_item else "",
        "prev": _item_url(dataset, prev_item.sample_id, reason) if prev_item else "",
    }
    edited = _newlines(values.get("answer") or "")
    ws_state_id = f"review-state-{pk}"
    return {
        "dataset": dataset, "sample": sample, "item": item, "reason": reason, "reason_title": REASON_TITLES.get(reason, ""),
        "reasons": [reason_text(r) for r in (item.reasons if item else [])],
        "consensus": _consensus(item), "columns": columns, "criteria": _label_rows(labels, config, rule.max_spread),
        "messages_now": review["messages"], "revision": review["revision"],
        "answer_index": max((i for i, m in enumerate(review["messages"]) if m.get("role") == "assistant"), default=-1),
        "current_diff": answer_diff(original, current) if review["revision"] else None,
        "corrections": corrections, "pairs": pairs,
        "flags": list(sample.flags.all()), "metrics": list(sample.metrics.all()),
        "decisions": [_decision_row(d) for d in review["decisions"]],
        "values": values, "errors": errors, "conflict": conflict, "done": done,
        "editor_open": values["decision"] == Decision.APPROVE_EDIT or edited != current or "answer" in errors,
        "edit_diff": answer_diff(current, edited),
        "decision_choices": [
            {"value": Decision.APPROVE, "label": Decision.APPROVE.label, "key": "a"},
            {"value": Decision.REJECT, "label": Decision.REJECT.label, "key": "r"},
            {"value": Decision.APPROVE_EDIT, "label": Decision.APPROVE_EDIT.label, "key": "e"},
        ],
        "urls": urls, "ws_state_id": ws_state_id,
        "ws_state": {
            "sample": pk, "external_id": sample.external_id, "current": current,
            "corrections": {str(c["n"]): c["answer"] for c in corrections},
            "usernames": {str(c["n"]): c["username"] for c in columns},
            "title": _("Review · sample %(sample)s") % {"sample": sample.external_id},
        },
    }


def _page_state() -> dict:
    return {"messages": {
        "unsaved": _("You have typed text that is not saved. Press the key again to leave it."),
        "no_correction": _("Annotator %(n)s made no correction."),
        "no_annotator": _("There is no annotator %(n)s on this sample."),
        "restored": _("Your text from before the reload was restored: check it against the current state."),
        "need_decision": _("Choose approve, reject or approve with an edited answer."),
        "need_rationale": _("say why: a rejection or an edit needs a rationale"),
        "offline": _("The server could not be reached; nothing was saved. Try again."),
        "logged_out": _("You were logged out; nothing was saved. Log in again in another tab, then submit again."),
        "failed": _("The decision did not go through (HTTP %(status)s); nothing was saved. Reload the page."),
        "no_next": _("This is the last item of the queue."),
        "no_prev": _("This is the first item of the queue."),
        "dismiss": _("Dismiss"),
    }}


def _render_page(request, dataset: Dataset, sample: Sample, *, reason: str, status: int = 200, **extra) -> HttpResponse:
    context = _workspace_context(request, dataset, sample, reason=reason, **extra)
    context["page_state"] = _page_state()
    context["open_count"] = selectors.conflict_queue(dataset, reason=reason).count()
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_GET
def adjudicate(request, slug: str, pk: int):
    dataset = _dataset(request, slug)
    sample = annotator_selectors.sample_get(request.user, dataset, pk, with_scores=True)
    return _render_page(request, dataset, sample, reason=_reason_code(request.GET.get("reason")))


def _conflict(exc: services.DecisionConflict) -> dict:
    latest = exc.latest
    if latest is None:
        return {"message": str(exc), "latest": None}
    return {
        "message": str(exc), "latest": latest, "who": _who(latest.reviewer, none=_("the auto-approve rule")),
        "title": latest.get_decision_display(), "rationale": latest.rationale,
        "answer": _answer(latest.revision.messages) if latest.revision_id else None,
    }


_DONE = {
    Decision.APPROVE: gettext_lazy("Approved sample %(sample)s."),
    Decision.REJECT: gettext_lazy("Rejected sample %(sample)s."),
    Decision.APPROVE_EDIT: gettext_lazy("Approved sample %(sample)s with your edited answer."),
}


@login_required
@require_POST
@vary_on_headers("HX-Request")
def decide(request, slug: str, pk: int):
    """Take a reviewer's decision. htmx: 422 or 409 re-render the decision panel; success swaps in
    the next item of the queue (or goes back to the queue when it is empty). Without htmx: the page
    again on an error, a redirect to the next item on success."""
    dataset = _dataset(request, slug)
    sample = annotator_selectors.sample_get(request.user, dataset, pk, with_scores=True)
    form = DecisionForm(request.POST)
    reason = _reason_code(request.POST.get("reason"))
    posted = {
        "decision": request.POST.get("decision", ""), "rationale": _newlines(request.POST.get("rationale", "")),
        "answer": _newlines(request.POST["answer"]) if "answer" in request.POST else None,
        "version": request.POST.get("version", ""),
    }
    if posted["answer"] is None:
        posted.pop("answer")

    def again(status: int, **extra) -> HttpResponse:
        if request.htmx:
            context = _workspace_context(request, dataset, sample, reason=reason, posted=posted, **extra)
            return render(request, f"{TEMPLATE}#decision", context, status=status)
        return _render_page(request, dataset, sample, reason=reason, posted=posted, status=status, **extra)

    if not form.is_valid():
        return again(422, errors=form.errors_by_field())
    data = form.cleaned_data
    decision, answer = data["decision"], data["answer"]
    if decision == Decision.APPROVE and answer is not None and data["version"] == sample.version:
        current, _revision = routing.current_answer(sample)
        if answer != _newlines(_answer(current)):  # an edit would be lost without a word
            return again(422, errors={"decision": _("You edited the answer: choose “approve with an edited answer”, or undo the edit.")})
    try:
        made = services.review_decide(
            user=request.user, dataset=dataset, sample_id=sample.pk, decision=decision, expected_version=data["version"],
            rationale=data["rationale"], answer=answer if decision == Decision.APPROVE_EDIT else None,
        )
    except services.DecisionInvalid as exc:
        return again(422, errors=exc.errors)
    except services.DecisionConflict as exc:
        return again(409, conflict=_conflict(exc))
    done_text = _DONE[made.decision] % {"sample": sample.external_id}
    item = _item_of(sample)
    following = selectors.review_item_next(dataset, after=item, reason=reason) if item else selectors.review_item_next(dataset, reason=reason)
    if following is not None and following.sample_id == sample.pk:
        following = None
    if following is None:
        messages.success(request, done_text + " " + _("The queue is empty."))
        if request.htmx:
            response = HttpResponse(status=200)
            response["HX-Redirect"] = _queue_url(dataset, reason)
            return response
        return redirect(_queue_url(dataset, reason))
    next_url = _item_url(dataset, following.sample_id, reason)
    if not request.htmx:
        messages.success(request, done_text)
        return redirect(next_url)
    nxt = annotator_selectors.sample_get(request.user, dataset, following.sample_id, with_scores=True)
    done = {"text": done_text, "url": _item_url(dataset, sample.pk, reason)}
    response = render(request, f"{TEMPLATE}#workspace", _workspace_context(request, dataset, nxt, reason=reason, done=done))
    response["HX-Retarget"] = "#review-workspace"
    response["HX-Reswap"] = "outerHTML"
    response["HX-Push-Url"] = next_url
    return response


@login_required
@require_POST
def answer_diff_view(request, slug: str, pk: int):
    """The edited answer against the sample's answer as it stands (the edit box's live diff)."""
    dataset = _dataset(request, slug)
    sample = annotator_selectors.sample_get(request.user, dataset, pk)
    current, _revision = routing.current_answer(sample)
    return render(request, f"{TEMPLATE}#edit-diff",
                  {"edit_diff": answer_diff(_newlines(_answer(current)), _newlines(request.POST.get("answer", "")))})


# ---------------------------------------------------------------------------------------------
# The review rule (owners)
# ---------------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def review_rule(request, slug: str):
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    annotator_services.check_dataset_role(user=request.user, dataset=dataset, roles=[Membership.Role.OWNER])
    form = ReviewRuleForm(request.POST or None, initial=routing.review_config(dataset).to_json())
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.review_settings_set(actor=request.user, dataset=dataset, values=form.cleaned_data)
            except routing.ReviewConfigError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Review rule saved; the samples waiting in review were routed again under it."))
                return redirect("reviews:review_rule", slug=dataset.slug)
        status = 400
    return render(request, "reviews/review_rule.html", {"dataset": dataset, "form": form}, status=status)


# ---------------------------------------------------------------------------------------------
# The audit trail (shown on the sample page to reviewers and owners)
# ---------------------------------------------------------------------------------------------

KIND_LABELS = {
    "label": gettext_lazy("Label"), "decision": gettext_lazy("Decision"),
    "revision": gettext_lazy("Revision"), "status": gettext_lazy("Status"),
}


def _status_label(value) -> str:
    return str(Sample.Status(value).label) if value in Sample.Status.values else str(value or "—")


def _label_parts(values: dict, keys) -> list[str]:
    parts = []
    for key in keys:
        value = values.get(key)
        if key in rubric.SCALES:
            parts.append(f"{rubric.SCALE_LABELS[key]} {'—' if value is None else value}")
        elif key == "verdict":
            parts.append(str(rubric.VERDICT_LABELS.get(value, value)) if value else _("no verdict"))
        elif key == "difficulty":
            if value:
                parts.append(str(rubric.DIFFICULTY_LABELS.get(value, value)))
        elif key == "error_tags":
            if value:
                parts.append(_("tags: %(tags)s") % {"tags": ", ".join(str(rubric.TAG_LABELS.get(t, t)) for t in value)})
        elif key == "corrected_answer":
            parts.append(_("with a corrected answer") if (value or "").strip() else _("no correction"))
        elif key == "comment":
            if value:
                parts.append(_("comment: “%(text)s”") % {"text": value if len(value) <= 200 else value[:199] + "…"})
        elif key == "extra":
            parts.extend(f"{k} {v}" for k, v in (value or {}).items())
    return parts


_LABEL_KEYS = ("verdict", *rubric.SCALES, "difficulty", "error_tags", "corrected_answer", "comment", "extra")


def audit_rows(events: list[dict]) -> list[dict]:
    """reviews.selectors.audit_trail's events as table rows: when, who, what, before -> after, detail."""
    sources = dict(Label.Source.choices)
    causes = dict(StatusChange.Cause.choices)
    rows = []
    for e in events:
        kind = e["kind"]
        row = {"at": e["at"], "kind": kind, "kind_label": KIND_LABELS.get(kind, kind), "who": e["who"], "automatic": False,
               "before": "", "after": "", "detail": "", "rationale": "", "diff": None}
        detail = e.get("detail") or {}
        if kind == "label":
            before, after = e["before"], e["after"]
            if before:
                changed = [k for k in _LABEL_KEYS if before.get(k) != after.get(k)]
                row["before"] = " · ".join(_label_parts(before, changed)) or "—"
                row["after"] = " · ".join(_label_parts(after, changed)) or _("no change")
            else:
                row["before"] = "—"
                row["after"] = " · ".join(_label_parts(after, _LABEL_KEYS))
            row["detail"] = _("version %(n)s (%(source)s)") % {
                "n": detail.get("version"), "source": sources.get(detail.get("source"), detail.get("source"))}
        elif kind == "decision":
            row["automatic"] = e["who"] is None
            row["who"] = e["who"] or _("auto rule")
            row["before"], row["after"] = _status_label(e["before"]), _status_label(e["after"])
            value = detail.get("decision")
            row["detail"] = str(Decision(value).label) if value in Decision.values else str(value)
            if detail.get("revision"):
                row["detail"] += " · " + _("revision #%(id)s") % {"id": detail["revision"]}
            row["rationale"] = detail.get("rationale") or ""
        elif kind == "revision":
            row["who"] = e["who"] or _("system")
            diff = answer_diff(e["before"] or "", e["after"] or "")
            row["diff"] = diff
            row["before"] = _("answer of %(n)d characters") % {"n": len(e["before"] or "")}
            row["after"] = _("answer of %(n)d characters") % {"n": len(e["after"] or "")}
            row["detail"] = _("revision #%(id)s: %(ins)d added, %(del)d removed") % {
                "id": detail.get("revision"), "ins": diff.inserted, "del": diff.deleted}
            row["rationale"] = detail.get("reason") or ""
        elif kind == "status":
            cause = detail.get("cause")
            row["automatic"] = e["who"] is None and cause == StatusChange.Cause.AUTO
            row["who"] = e["who"] or (_("auto rule") if row["automatic"] else _("system"))
            row["before"], row["after"] = _status_label(e["before"]), _status_label(e["after"])
            row["detail"] = str(causes.get(cause, cause))
        rows.append(row)
    return rows
