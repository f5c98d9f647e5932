"""HTML pages: thin function views that parse a form, call a selector or service, and render. With
htmx they render a partial of the same template; every page also works as a full page."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from .. import selectors, services
from ..formats import format_error
from ..forms import DatasetForm, ImportForm, SampleFilterForm
from ..models import Membership

PAGE_SIZE = 50


@login_required
def dataset_list(request):
    return render(request, "annotator/dataset_list.html", {"datasets": selectors.dataset_list(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def dataset_create(request):
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_create(owner=request.user, **form.cleaned_data)
        except IntegrityError:
            form.add_error("slug", _("A dataset with this slug already exists."))
        else:
            return redirect("annotator:dataset_detail", slug=dataset.slug)
    return render(request, "annotator/dataset_form.html", {"form": form})


@login_required
@vary_on_headers("HX-Request")
def dataset_detail(request, slug: str):
    dataset = selectors.dataset_get(request.user, slug=slug)
    form = SampleFilterForm(request.GET or None)
    filters = form.filters()
    can_review = dataset.my_role in (Membership.Role.OWNER, Membership.Role.REVIEWER)
    if not can_review:  # annotators label blind: no metric flags, no sorting by scores, no review outcome
        filters.update(flag="", sort="", has_flag=None, status="")
    samples = selectors.sample_list(request.user, dataset, **filters)
    page = Paginator(samples, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"dataset": dataset, "form": form, "page": page, "filters": filters, "can_review": can_review,
               "overlap": services.annotation_config(dataset).overlap}
    if request.htmx and request.htmx.target == "sample-table":
        return render(request, "annotator/dataset_detail.html#sample-table", context)
    context.update(
        facets=selectors.dataset_facets(dataset),
        status_counts=selectors.dataset_status_counts(dataset) if can_review else [],
        imports=selectors.import_job_list(request.user, dataset, limit=5),
        is_owner=dataset.my_role == Membership.Role.OWNER,
        progress=selectors.annotation_progress(request.user, dataset, overlap=context["overlap"]),
        completion=selectors.dataset_label_completion(dataset, overlap=context["overlap"]) if can_review else None,
    )
    return render(request, "annotator/dataset_detail.html", context)


@login_required
def sample_detail(request, slug: str, pk: int):
    dataset = selectors.dataset_get(request.user, slug=slug)
    can_review = dataset.my_role in (Membership.Role.OWNER, Membership.Role.REVIEWER)
    sample = selectors.sample_get(request.user, dataset, pk, with_scores=can_review)
    source_pretty = json.dumps(sample.source, ensure_ascii=False, indent=2)
    audit = None
    if can_review:  # the audit trail names annotators and shows their labels: reviewers and owners only
        from reviews.selectors import audit_trail
        from reviews.views.desk import audit_rows

        audit = audit_rows(audit_trail(sample))
    return render(request, "annotator/sample_detail.html",
                  {"dataset": dataset, "sample": sample, "source_pretty": source_pretty, "can_review": can_review,
                   "audit_trail": audit})


@login_required
@require_http_methods(["GET", "POST"])
def import_create(request, slug: str):
    dataset = selectors.dataset_get(request.user, slug=slug)
    services.check_dataset_role(user=request.user, dataset=dataset, roles=[Membership.Role.OWNER])
    form = ImportForm(request.POST or None, request.FILES or None)
    refused = getattr(request, "upload_refused", None) if request.method == "POST" else None
    if refused:
        return render(request, "annotator/import_form.html", {"dataset": dataset, "form": ImportForm(), "refused": refused}, status=413)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_job_create(
                user=request.user, dataset=dataset, upload=form.cleaned_data["file"], fmt=form.cleaned_data["format"],
                options={"columns": form.cleaned_data["columns"]} if form.cleaned_data["columns"] else {},
            )
        except services.ImportRefused as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("annotator:import_detail", slug=dataset.slug, pk=job.pk)
    return render(request, "annotator/import_form.html", {"dataset": dataset, "form": form})


@login_required
@vary_on_headers("HX-Request")
def import_detail(request, slug: str, pk: int):
    dataset = selectors.dataset_get(request.user, slug=slug)
    job = selectors.import_job_get(request.user, pk, dataset=dataset)
    errors = [{**e, "text": format_error(e)} for e in job.errors]
    context = {"dataset": dataset, "job": job, "live": selectors.import_job_progress(job), "errors": errors}
    if request.htmx:
        return render(request, "annotator/import_detail.html#progress", context)
    return render(request, "annotator/import_detail.html", context)


def csrf_failure(request, reason: str = ""):
    """An upload refused for its size never had its CSRF token read: say what really happened."""
    refused = getattr(request, "upload_refused", None)
    if refused:
        return render(request, "413.html", {"message": refused}, status=413)
    from django.views.csrf import csrf_failure as default_failure

    return default_failure(request, reason=reason)
