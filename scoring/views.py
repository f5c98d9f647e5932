"""Scoring pages: start a run, the dataset quality report (charts, progress, downloads)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from annotator import selectors as annotator_selectors
from annotator.models import Membership
from annotator.services import check_dataset_role

from . import charts, selectors, services
from .report import report_lines

REVIEWERS = [Membership.Role.OWNER, Membership.Role.REVIEWER]


@login_required
@require_POST
def run_start(request, slug: str):
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    try:
        services.run_create(user=request.user, dataset=dataset, metrics=request.POST.getlist("metrics") or "all")
    except services.ScoringRefused as exc:
        messages.warning(request, str(exc))
    return redirect("scoring:quality", slug=dataset.slug)


@login_required
@vary_on_headers("HX-Request")
def quality(request, slug: str):
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)
    if request.htmx and request.htmx.target == "run-status":  # the poll: the run only, not the report
        return render(request, "scoring/quality.html#run-status", {"dataset": dataset, "run": selectors.run_latest(dataset)})
    report = selectors.quality_report(dataset)
    context = {"dataset": dataset, "report": report, "run": selectors.run_latest(dataset), "charts": charts.quality_charts(report),
               "metric_groups": list(services.METRIC_GROUPS), "experts": selectors.expert_comparison(dataset)}
    return render(request, "scoring/quality.html", context)


@login_required
def report_download(request, slug: str, fmt: str):
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    check_dataset_role(user=request.user, dataset=dataset, roles=REVIEWERS)
    flagged = request.GET.get("flagged") == "1"
    content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    response = StreamingHttpResponse(report_lines(dataset, fmt=fmt, flagged=flagged), content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{dataset.slug}-quality{"-flagged" if flagged else ""}.{fmt}"'
    return response


@login_required
def run_status(request, slug: str):
    """The latest run's progress, for the dataset page (loaded and polled by htmx)."""
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    if dataset.my_role not in REVIEWERS:
        return HttpResponse("")
    run = selectors.run_latest(dataset)
    waiting = selectors.run_waiting(run) if run is not None else None
    return render(request, "scoring/_run_status.html", {"dataset": dataset, "run": run, "waiting": waiting})
