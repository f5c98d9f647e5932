"""The reviewer dashboard: progress over time, throughput per annotator, agreement per criterion with
its interval (from the newest agreement report, recomputed on request), the annotator table, conflict
reasons and the balance of approved data. For the dataset's reviewers and owners only: anyone else
gets 404, as for a foreign dataset. Thin function views over reviews.dashboard's selectors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from annotator import selectors as annotator_selectors

from .. import charts, dashboard, services
from ..models import AgreementReport


def _reviewable(request, slug: str):
    dataset = annotator_selectors.dataset_get(request.user, slug=slug)
    services.check_can_review(user=request.user, dataset=dataset)
    return dataset


def _queue_url(dataset) -> str:
    # The conflict queue page (reviews:queue) takes ?reason=; a plain path works before it exists.
    return f"/d/{dataset.slug}/review/"


def _agreement_context(dataset, state: dict) -> dict:
    return {"dataset": dataset, "agreement": state, "agreement_chart": charts.agreement_chart(state)}


@login_required
@require_GET
def index(request, slug: str):
    dataset = _reviewable(request, slug)
    data = dashboard.dashboard(dataset)
    throughput_chart, throughput_rows = charts.throughput_charts(data["throughput"])
    context = {
        **data, **_agreement_context(dataset, data["agreement"]),
        "progress_chart": charts.progress_chart(data["progress"]),
        "progress_rows": _progress_rows(data["progress"]),
        "throughput_chart": throughput_chart, "throughput_rows": throughput_rows,
        "reasons_chart": charts.reasons_chart(data["reasons"]["reasons"], _queue_url(dataset)),
        "balance_table": charts.balance_table(data["balance"]),
        "queue_url": _queue_url(dataset), "statuses": charts.STACK_ORDER,
    }
    return render(request, "reviews/dashboard.html", context)


def _progress_rows(progress: dict) -> list[dict]:
    """The chart's numbers as table rows, newest day first."""
    rows = []
    for i, day in enumerate(progress["days"]):
        rows.append({"day": day, "counts": [progress["series"][s][i] for s in charts.STACK_ORDER],
                     "arrived": progress["arrived"][i], "moved": progress["moved"][i]})
    return rows[::-1]


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def agreement(request, slug: str):
    """POST: queue a fresh agreement report (none is added while one is queued or running). With
    htmx, GET and POST answer the agreement section (and the annotator table out of band), which
    polls itself every 2 s while a report is pending; without, both go back to the dashboard."""
    dataset = _reviewable(request, slug)
    if request.method == "POST":
        report = services.agreement_request(user=request.user, dataset=dataset)
        if not request.htmx:
            if report.status in (AgreementReport.Status.QUEUED, AgreementReport.Status.RUNNING):
                messages.info(request, _("The agreement report is being computed; this page shows it when it is ready."))
            return redirect(reverse("dashboard:index", kwargs={"slug": dataset.slug}) + "#agreement")
    elif not request.htmx:
        return redirect(reverse("dashboard:index", kwargs={"slug": dataset.slug}) + "#agreement")
    context = {**_agreement_context(dataset, dashboard.agreement_state(dataset)), "oob": True}
    return render(request, "reviews/_dashboard_agreement.html", context)
