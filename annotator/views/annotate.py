"""The annotation page: blind cross-validation in the browser.

An annotator sees one sample at a time (every turn, the guidelines, the rubric), labels it with the
keyboard and moves on; static/js/annotate.js preloads the next sample, autosaves drafts and submits
in the background. Every view also works without JavaScript (plain forms and redirects).

Blind: nothing here shows another person's label, the sample's status, a review outcome, gold
membership or metric flags. Every lookup goes through the user's own assignments (404 otherwise).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from .. import rubric, selectors, services
from ..models import Assignment, Dataset, Label, Sample

TEMPLATE = "annotator/annotate.html"
MY_LABELS_PAGE_SIZE = 50
MAX_EXCLUDE = 50
REVIEWED = (Sample.Status.APPROVED, Sample.Status.REJECTED)


def _is_id(value: str) -> bool:
    """A database id as typed in a URL: ASCII digits only ('²'.isdigit() is True), within bigint."""
    return value.isascii() and value.isdigit() and len(value) <= 18
SKIP_REASONS = (
    ("outside_expertise", gettext_lazy("Outside my expertise")),
    ("broken", gettext_lazy("The sample is broken or unreadable")),
    ("unclear", gettext_lazy("The instruction is too unclear to judge")),
)

# ---------------------------------------------------------------------------------------------
# Diff of the corrected answer against the original
# ---------------------------------------------------------------------------------------------

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")
_MAX_FINE_TOKENS = 20_000  # past this, compare lines (difflib is quadratic at worst)


@dataclass(frozen=True)
class AnswerDiff:
    html: SafeString
    changed: bool
    inserted: int
    deleted: int


def _newlines(text: str) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


def _tokens(text: str, cjk: bool) -> list[str]:
    return list(text) if cjk else _WORDS.findall(text)


def answer_diff(original: str, corrected: str) -> AnswerDiff:
    """The corrected answer against the original as escaped HTML with <ins>/<del>: characters for
    CJK text, words (with the whitespace between them) otherwise."""
    original, corrected = _newlines(original), _newlines(corrected)
    if original == corrected:
        return AnswerDiff(html=escape(original), changed=False, inserted=0, deleted=0)
    cjk = bool(_CJK.search(original) or _CJK.search(corrected))
    a, b = _tokens(original, cjk), _tokens(corrected, cjk)
    if max(len(a), len(b)) > _MAX_FINE_TOKENS:
        a, b = original.splitlines(keepends=True), corrected.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=len(b) > 2_000)
    parts: list[str] = []
    inserted = deleted = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(escape("".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(format_html("<del>{}</del>", "".join(a[i1:i2])))
            deleted += i2 - i1
        if op in ("insert", "replace"):
            parts.append(format_html("<ins>{}</ins>", "".join(b[j1:j2])))
            inserted += j2 - j1
    # Every part is escaped or built by format_html, so the whole is safe.
    return AnswerDiff(html=mark_safe("".join(parts)), changed=True, inserted=inserted, deleted=deleted)  # noqa: S308


# ---------------------------------------------------------------------------------------------
# Values: parsed from the form, normalized for display
# ---------------------------------------------------------------------------------------------

def _values_from_post(post, config: rubric.AnnotationConfig) -> dict:
    """The rubric values of a submitted form, in the shape label_clean and drafts take."""
    values: dict = {name: post.get(name, "") for name in rubric.SCALES}
    values["difficulty"] = post.get("difficulty", "")
    values["verdict"] = post.get("verdict", "")
    values["error_tags"] = post.getlist("error_tags")
    # Browsers send textarea line breaks as CRLF; the original answer has LF.
    values["corrected_answer"] = _newlines(post.get("corrected_answer", ""))
    values["comment"] = _newlines(post.get("comment", ""))
    values["time_spent_s"] = post.get("time_spent_s") or 0
    values["extra"] = {f.name: post.get(f"extra.{f.name}", "") for f in config.extra_fields if post.get(f"extra.{f.name}")}
    return values


def _label_values(label: Label) -> dict:
    return {
        **{name: getattr(label, name) for name in rubric.SCALES},
        "difficulty": label.difficulty, "verdict": label.verdict, "error_tags": label.error_tags,
        "corrected_answer": label.corrected_answer, "comment": label.comment, "extra": label.extra,
        "time_spent_s": label.time_spent_s,
    }


def _normalized(values: dict, original: str) -> dict:
    """Strings everywhere (radios compare as text); an empty correction shows the original."""
    def text(v) -> str:
        return "" if v is None else str(v)

    tags = values.get("error_tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in re.split(r"[;,|]", tags) if t.strip()]
    extra = values.get("extra") if isinstance(values.get("extra"), dict) else {}
    try:
        spent = max(0.0, float(values.get("time_spent_s") or 0))
    except (TypeError, ValueError):
        spent = 0.0
    return {
        **{name: text(values.get(name)) for name in rubric.SCALES},
        "difficulty": text(values.get("difficulty")),
        "verdict": text(values.get("verdict")).replace("-", "_"),
        "error_tags": [str(t) for t in tags if not isinstance(t, (dict, list))],
        "corrected_answer": _newlines(text(values.get("corrected_answer"))) or original,
        "comment": text(values.get("comment")),
        "extra": {str(k): text(v) for k, v in extra.items()},
        "time_spent_s": spent,
    }


def _version_row(label: Label) -> dict:
    """What a list shows of one of the user's own labels."""
    return {
        "label": label, "version": label.version, "created_at": label.created_at,
        "verdict": rubric.VERDICT_LABELS.get(label.verdict, label.verdict),
        "scales": [(rubric.SCALE_LABELS[name], getattr(label, name)) for name in rubric.SCALES],
        "difficulty": rubric.DIFFICULTY_LABELS.get(label.difficulty, label.difficulty),
        "tags": [rubric.TAG_LABELS.get(t, t) for t in label.error_tags],
        "corrected": bool(label.corrected_answer), "comment": label.comment,
    }


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000) if moment else 0


# ---------------------------------------------------------------------------------------------
# Page context
# ---------------------------------------------------------------------------------------------

def _group(name: str, field: str, label, options, *, value: str, required: set, errors: dict, suggested: set) -> dict:
    return {
        "name": name, "field": field, "label": label, "required": name in required,
        "error": errors.get(field, ""), "suggested": field in suggested,
        "options": [{"value": v, "label": lab, "checked": v == value, "key": n} for n, (v, lab) in enumerate(options, 1)],
    }


def _rubric_groups(config: rubric.AnnotationConfig, values: dict, *, errors: dict, suggested: set) -> dict:
    required = set(config.required) | {"verdict"}
    scale_options = [(str(n), str(n)) for n in range(rubric.SCALE_MIN, rubric.SCALE_MAX + 1)]
    common = {"required": required, "errors": errors, "suggested": suggested}
    keyboard = [
        _group(name, name, rubric.SCALE_LABELS[name], scale_options, value=values[name], **common) for name in rubric.SCALES
    ]
    keyboard.append(_group(
        "difficulty", "difficulty", _("Difficulty"), [(d, rubric.DIFFICULTY_LABELS[d]) for d in rubric.DIFFICULTIES],
        value=values["difficulty"], **common,
    ))
    for extra in config.extra_fields:
        keyboard.append(_group(
            extra.name, f"extra.{extra.name}", extra.name.replace("_", " ").capitalize(), [(c, c) for c in extra.choices],
            value=values["extra"].get(extra.name, ""), **common,
        ))
    verdict = _group(
        "verdict", "verdict", _("Verdict"), [(v, rubric.VERDICT_LABELS[v]) for v in rubric.VERDICTS],
        value=values["verdict"], **common,
    )
    for option, key in zip(verdict["options"], ("a", "f", "r"), strict=True):
        option["key"] = key
    tags = [{"value": t, "label": rubric.TAG_LABELS.get(t, t.replace("_", " ")), "checked": t in values["error_tags"]} for t in config.tags]
    other_errors = {
        k: v for k, v in errors.items()
        if k not in {g["field"] for g in keyboard} | {"verdict", "error_tags", "comment", "corrected_answer"}
    }
    return {
        "keyboard": keyboard, "verdict": verdict, "tags": tags, "tags_required": "error_tags" in required,
        "tags_error": errors.get("error_tags", ""), "tags_suggested": "error_tags" in suggested,
        "comment_required": "comment" in required, "comment_error": errors.get("comment", ""),
        "other_errors": other_errors, "suggested_fields": suggested,
    }


def _workspace_context(request, dataset: Dataset, assignment: Assignment, *, posted: dict | None = None,
                       errors: dict | None = None) -> dict:
    config = services.annotation_config(dataset)
    sample = assignment.sample
    original = _newlines(sample.answer)
    errors = errors or {}
    submitted = assignment.status == Assignment.Status.SUBMITTED
    versions = list(selectors.label_versions_own(request.user, assignment)) if submitted else []
    label = next((v for v in versions if v.is_current), None)
    # The sample's status decides only whether the label may still change; it is never shown.
    mode = ("locked" if sample.status in REVIEWED and not assignment.is_gold else "revise") if label else "label"
    draft = assignment.draft or None
    if draft and label and (assignment.draft_saved_at is None or assignment.draft_saved_at <= label.created_at):
        draft = None
    suggestion, suggested = None, set()
    if posted is not None:
        source, raw, base = "posted", posted, timezone.now()
    elif draft and mode != "locked":
        source, raw, base = "draft", draft, assignment.draft_saved_at
    elif label:
        source, raw, base = "label", _label_values(label), label.created_at
    else:
        suggestion = selectors.suggestion_latest(sample)
        raw = dict(suggestion.values) if suggestion else {}
        source, base = ("suggestion" if suggestion else "blank"), None
        suggested = {k for k, v in raw.items() if v not in (None, "", [], {}) and k != "extra"}
        suggested |= {f"extra.{k}" for k, v in (raw.get("extra") or {}).items() if v not in (None, "")}
        suggested.discard("time_spent_s")
    values = _normalized(raw, original)
    groups = _rubric_groups(config, values, errors=errors, suggested=suggested)
    roles = [m.get("role") for m in sample.messages]
    answer_index = max((i for i, role in enumerate(roles) if role == "assistant"), default=-1)
    slug, pk = dataset.slug, assignment.pk
    state = {
        "id": pk, "mode": mode, "original": original,
        "required": sorted(set(config.required) | {"verdict"}),
        "base_ms": _ms(base), "restore_local": source != "posted",
        "time_spent_s": values["time_spent_s"] if source in ("draft", "posted") else 0,
        "external_id": sample.external_id,
    }
    return {
        "dataset": dataset, "assignment": assignment, "sample": sample, "mode": mode, "label": label,
        "earlier_versions": [_version_row(v) for v in versions if not v.is_current], "values": values, "groups": groups,
        "answer_index": answer_index,
        "errors": errors, "source": source, "suggestion": suggestion, "original": original,
        "diff": answer_diff(original, values["corrected_answer"]),
        "editor_open": values["verdict"] == "needs_fix" or values["corrected_answer"] != original or "corrected_answer" in errors,
        "ws_state": state, "ws_state_id": f"ws-state-{pk}",
        "skip_reasons": SKIP_REASONS,
        "urls": {
            "page": reverse("annotator:annotate_assignment", args=[slug, pk]),
            "submit": reverse("annotator:annotate_submit", args=[slug, pk]),
            "skip": reverse("annotator:annotate_skip", args=[slug, pk]),
            "draft": reverse("annotator:annotate_draft", args=[slug, pk]),
            "diff": reverse("annotator:annotate_diff", args=[slug]),
        },
    }


def _page_context(request, dataset: Dataset) -> dict:
    config = services.annotation_config(dataset)
    slug = dataset.slug
    return {
        "dataset": dataset,
        "progress": selectors.annotation_progress(request.user, dataset, overlap=config.overlap),
        "page_state": {
            "user": request.user.pk,
            "server_now_ms": _ms(timezone.now()),
            "annotate_url": reverse("annotator:annotate", args=[slug]),
            "preload_url": reverse("annotator:annotate_preload", args=[slug]),
            "messages": {
                "required": _("Required."),
                "needs_fix": _("A “needs fix” verdict needs a corrected answer: edit the answer."),
                "skip_reason": _("Give a reason for skipping."),
                "fix_marked": _("Please fix the marked fields."),
                "not_saved": _("Your label for sample %(sample)s was not saved:"),
                "skip_not_saved": _("Skipping sample %(sample)s did not go through:"),
                "open_again": _("Open it again"),
                "offline": _("The server could not be reached. Your draft is kept in this browser."),
                "logged_out": _("You were logged out. Log in again; your draft is kept in this browser."),
                "restored": _("Your unsaved changes were restored."),
                "saving": _("Saving…"),
                "dismiss": _("Dismiss"),
            },
        },
    }


def _dataset(request, slug: str) -> Dataset:
    dataset = selectors.dataset_get(request.user, slug=slug)
    services.check_can_annotate(user=request.user, dataset=dataset)
    return dataset


def _render_page(request, dataset: Dataset, assignment: Assignment | None, *, status: int = 200, **extra) -> HttpResponse:
    context = {**_page_context(request, dataset), "assignment": None}
    if assignment is not None:
        context.update(_workspace_context(request, dataset, assignment, **extra))
    return render(request, TEMPLATE, context, status=status)


def _notice(request, dataset: Dataset, message: str, *, link: str, link_text: str, status: int) -> HttpResponse:
    return render(request, f"{TEMPLATE}#notice", {"dataset": dataset, "message": message, "link": link, "link_text": link_text},
                  status=status)


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------

@login_required
@require_GET
def annotate(request, slug: str):
    """Resume the reservation the user holds, or reserve the next sample; 'done' when none is left."""
    dataset = _dataset(request, slug)
    assignment = services.assignment_next(user=request.user, dataset=dataset)
    if assignment is not None:
        assignment = selectors.assignment_get_own(request.user, dataset, assignment.pk)
    return _render_page(request, dataset, assignment)


@login_required
@require_GET
def annotate_assignment(request, slug: str, pk: int):
    dataset = _dataset(request, slug)
    assignment = selectors.assignment_get_own(request.user, dataset, pk)
    return _render_page(request, dataset, assignment)


@login_required
@require_GET
def annotate_preload(request, slug: str):
    """The next assignment as a fragment, reserved now (204 when nothing is left). `exclude` names
    the assignments already on screen or still being submitted."""
    dataset = _dataset(request, slug)
    exclude = tuple(int(v) for v in request.GET.getlist("exclude")[:MAX_EXCLUDE] if _is_id(v))
    assignment = services.assignment_next(user=request.user, dataset=dataset, exclude=exclude)
    if assignment is None:
        return HttpResponse(status=204)
    assignment = selectors.assignment_get_own(request.user, dataset, assignment.pk)
    return render(request, f"{TEMPLATE}#workspace", _workspace_context(request, dataset, assignment))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def annotate_submit(request, slug: str, pk: int):
    dataset = _dataset(request, slug)
    assignment = selectors.assignment_get_own(request.user, dataset, pk)
    values = _values_from_post(request.POST, services.annotation_config(dataset))
    page_url = reverse("annotator:annotate_assignment", args=[slug, pk])
    next_url = reverse("annotator:annotate", args=[slug])
    try:
        label = services.assignment_submit(user=request.user, dataset=dataset, assignment_id=assignment.pk, values=values,
                                           source=Label.Source.UI)
    except rubric.LabelInvalid as exc:
        if request.htmx:
            context = _workspace_context(request, dataset, assignment, posted=values, errors=exc.errors)
            return render(request, f"{TEMPLATE}#rubric", context, status=422)
        return _render_page(request, dataset, assignment, posted=values, errors=exc.errors)
    except services.AssignmentGone as exc:
        if request.htmx:
            return _notice(request, dataset, str(exc), link=next_url, link_text=_("Next sample"), status=409)
        messages.error(request, str(exc))
        return redirect(next_url)
    except services.LabelLocked as exc:
        if request.htmx:
            return _notice(request, dataset, str(exc), link=page_url, link_text=_("Open it"), status=409)
        messages.error(request, str(exc))
        return redirect(page_url)
    if request.htmx:  # the background submit: answer with the fresh figures
        return render(request, f"{TEMPLATE}#progress", _page_context(request, dataset))
    if label.version > 1:
        messages.success(request, _("Saved as version %(n)s.") % {"n": label.version})
        return redirect(page_url)
    messages.success(request, _("Label saved."))
    return redirect(next_url)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def annotate_skip(request, slug: str, pk: int):
    dataset = _dataset(request, slug)
    assignment = selectors.assignment_get_own(request.user, dataset, pk)
    preset = dict(SKIP_REASONS).get(request.POST.get("reason", ""))
    reason = str(preset) if preset else request.POST.get("reason_text", "").strip()
    next_url = reverse("annotator:annotate", args=[slug])
    page_url = reverse("annotator:annotate_assignment", args=[slug, pk])
    if not reason:
        message = _("Give a reason for skipping.")
        if request.htmx:
            return _notice(request, dataset, message, link=page_url, link_text=_("Open it"), status=422)
        messages.error(request, message)
        return redirect(page_url)
    try:
        services.assignment_skip(user=request.user, dataset=dataset, assignment_id=assignment.pk, reason=reason)
    except services.LabelLocked as exc:
        if request.htmx:
            return _notice(request, dataset, str(exc), link=page_url, link_text=_("Open it"), status=409)
        messages.error(request, str(exc))
        return redirect(page_url)
    if request.htmx:
        return render(request, f"{TEMPLATE}#progress", _page_context(request, dataset))
    messages.success(request, _("Skipped."))
    return redirect(next_url)


@login_required
@require_POST
def annotate_draft(request, slug: str, pk: int):
    """Autosave (204). A draft may be incomplete; only its size is limited."""
    dataset = _dataset(request, slug)
    assignment = selectors.assignment_get_own(request.user, dataset, pk)
    values = _values_from_post(request.POST, services.annotation_config(dataset))
    try:
        services.assignment_draft_save(user=request.user, dataset=dataset, assignment_id=assignment.pk, values=values)
    except rubric.LabelInvalid as exc:
        return HttpResponse("; ".join(exc.errors.values()), status=422, content_type="text/plain; charset=utf-8")
    return HttpResponse(status=204)


@login_required
@require_POST
def annotate_diff(request, slug: str):
    """The corrected answer against the original of one of the user's own assignments."""
    dataset = _dataset(request, slug)
    raw = request.POST.get("assignment", "")
    if not _is_id(raw):
        raise Http404("No such assignment.")
    assignment = selectors.assignment_get_own(request.user, dataset, int(raw))
    original = _newlines(assignment.sample.answer)
    corrected = _newlines(request.POST.get("corrected_answer", "")) or original
    return render(request, f"{TEMPLATE}#diff", {"diff": answer_diff(original, corrected)})


@login_required
@require_GET
def my_labels(request, slug: str):
    """The user's own current labels, newest first; each opens its assignment for revision."""
    dataset = _dataset(request, slug)
    page = Paginator(selectors.label_list_own(request.user, dataset), MY_LABELS_PAGE_SIZE).get_page(request.GET.get("page"))
    config = services.annotation_config(dataset)
    return render(request, "annotator/my_labels.html", {
        "dataset": dataset, "page": page, "rows": [_version_row(label) for label in page.object_list],
        "progress": selectors.annotation_progress(request.user, dataset, overlap=config.overlap),
    })
