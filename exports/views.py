"""Export pages: the API tokens page (make, list, revoke your tokens), and per dataset the exports list, the
new-export form with its preview, an export's page (status polled while it builds, manifest, files, a job
token and copy-paste snippets). Owners and reviewers only: anyone else gets 404."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from annotator import selectors as annotator_selectors

from . import services, tokens
from .api.files import file_api_path
from .api.reads import export_files, export_get, export_list, exports_dataset
from .forms import ExportSpecForm, JobTokenForm, TokenForm, canonical_json, initial_from_spec
from .models import Export
from .spec import SpecError

PAGE_SIZE = 20
STRATA_SHOWN = 200
BAR_WIDTH = 300  # pixels for a share of 100%


# --- API tokens -------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    datasets = list(annotator_selectors.dataset_list(request.user))
    form = TokenForm(request.POST or None, datasets=datasets)
    new_key = None
    if request.method == "POST" and form.is_valid():
        dataset = next((d for d in datasets if d.pk == form.cleaned_data["dataset"]), None)
        _token, new_key = tokens.api_token_create(
            user=request.user, name=form.cleaned_data["name"], dataset=dataset,
            can_write=form.cleaned_data["can_write"], days=form.cleaned_data["days"],
        )
        form = TokenForm(datasets=datasets)
    context = {"form": form, "tokens": tokens.token_list(request.user), "new_key": new_key}
    return render(request, "exports/token_list.html", context)


@login_required
@require_POST
def token_revoke(request, pk: int):
    tokens.api_token_revoke(user=request.user, token_id=pk)
    return redirect("exports:token_list")


# --- charts and labels ------------------------------------------------------------------------------

def reason_labels() -> dict[str, str]:
    return {
        "status": _("review status not asked for"), "task_type": _("task type not asked for"), "language": _("language not asked for"),
        "duplicate": _("duplicate of a kept sample"), "flagged": _("metric flag"), "metric": _("metric out of range"),
        "consensus": _("consensus below the threshold"), "not_requested": _("stratum not asked for"),
        "no_embedding": _("no embedding for the diversity selection (not scored yet, or in a language the embedder does not know)"), "too_similar": _("too similar to a chosen sample"),
        "shrunk": _("stratum shrunk to keep the mixture"), "over_target": _("more than the stratum's target"),
    }


def paired_chart(chart_id: str, title: str, rows: list[dict]) -> dict:
    """Pool against selection per value, as shares of each side's total, so the two shapes compare."""
    pool_total = sum(r["pool"] for r in rows) or 1
    chosen_total = sum(r["selected"] for r in rows) or 1
    out = []
    for i, r in enumerate(rows):
        pool_share, chosen_share = r["pool"] / pool_total, r["selected"] / chosen_total
        out.append({"label": str(r["value"]), "pool": r["pool"], "selected": r["selected"], "y": 30 * i,
                    "pool_pct": round(100 * pool_share, 1), "selected_pct": round(100 * chosen_share, 1),
                    "pool_width": round(BAR_WIDTH * pool_share, 1), "selected_width": round(BAR_WIDTH * chosen_share, 1)})
    return {"id": chart_id, "title": title, "rows": out, "height": 30 * len(out) + 4, "empty": not out}


def preview_charts(preview: dict) -> list[dict]:
    d = preview.get("distributions") or {}
    return [
        paired_chart("task-type", _("Task types"), d.get("task_type") or []),
        paired_chart("difficulty", _("Difficulty buckets"), d.get("difficulty") or []),
        paired_chart("language", _("Languages"), d.get("language") or []),
        paired_chart("cluster", _("Clusters (the 50 largest)"), d.get("cluster") or []),
    ]


def preview_context(preview: dict) -> dict:
    labels = reason_labels()
    strata = sorted(preview.get("strata", {}).items())
    filtered = [{"reason": labels.get(k, k), "code": k, "count": v} for k, v in (preview.get("filtered") or {}).items() if v]
    filtered += [{"reason": _("metric %(name)s out of range") % {"name": k}, "code": f"metric:{k}", "count": v}
                 for k, v in (preview.get("metric_filtered") or {}).items() if v]
    dropped = [{"reason": labels.get(k, k), "code": k, "count": v} for k, v in (preview.get("dropped") or {}).items() if v]
    shrink = preview.get("shrink")
    return {
        "shrink_percent": services.share_percent(shrink["pool"], shrink["target"]) if shrink else None,
        "preview": preview, "charts": preview_charts(preview), "strata": [{"key": k, **v} for k, v in strata[:STRATA_SHOWN]],
        "strata_hidden": max(len(strata) - STRATA_SHOWN, 0), "short_count": sum(1 for _k, v in strata if v.get("short")),
        "filtered": filtered, "dropped": dropped,
    }


# --- exports ----------------------------------------------------------------------------------------

@login_required
def export_list_page(request, slug: str):
    dataset = exports_dataset(request.user, slug=slug)
    page = Paginator(export_list(dataset).prefetch_related("files").select_related("created_by"), PAGE_SIZE).get_page(request.GET.get("page"))
    for export in page.object_list:
        export.file_rows = [{"row": f, "url": file_api_path(export, f.path)} for f in export.files.all()]
    return render(request, "exports/export_list.html", {"dataset": dataset, "page": page})


def _spec_form(request, dataset, data=None, initial=None) -> ExportSpecForm:
    return ExportSpecForm(data, initial=initial, facets=annotator_selectors.dataset_facets(dataset))


@login_required
@require_http_methods(["GET", "POST"])
def export_new(request, slug: str):
    """The spec form. GET ?from=<export id> starts from that export's spec. POST builds (Build button)."""
    dataset = exports_dataset(request.user, slug=slug)
    if request.method == "GET":
        initial = {"name": f"{dataset.slug}-export"[:100]}
        source = request.GET.get("from")
        if source and source.isdigit():
            initial = initial_from_spec(export_get(dataset, int(source)).spec)
        return render(request, "exports/export_form.html", {"dataset": dataset, "form": _spec_form(request, dataset, initial=initial)})
    form = _spec_form(request, dataset, request.POST)
    if form.is_valid():
        try:
            export = services.export_create(user=request.user, dataset=dataset, spec=form.to_spec())
        except SpecError as exc:
            form.add_spec_errors(exc.errors)
        else:
            return redirect("exports:export_detail", slug=dataset.slug, pk=export.pk)
    return render(request, "exports/export_form.html", {"dataset": dataset, "form": form}, status=400)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def export_preview(request, slug: str):
    """What the spec in the form would give (htmx: the preview part only; without JavaScript: the form page
    with the preview below it)."""
    dataset = exports_dataset(request.user, slug=slug)
    form = _spec_form(request, dataset, request.POST)
    context: dict = {"dataset": dataset, "form": form}
    if form.is_valid():
        spec = form.to_spec()
        try:
            context.update(preview_context(services.export_preview(user=request.user, dataset=dataset, spec=spec)))
        except SpecError as exc:
            form.add_spec_errors(exc.errors)
        else:
            if not form.cleaned_data.get("use_json"):
                context["canonical_json"] = canonical_json(spec)
    if request.htmx:
        return render(request, "exports/export_form.html#preview", context)
    return render(request, "exports/export_form.html", context, status=200 if form.is_valid() and "preview" in context else 400)


def _snippets(request, dataset, export: Export, files) -> dict:
    """Copy-paste commands for this export. The key is never in them: they read $SFTDESK_TOKEN, which the
    job token box says how to set (the key is shown once, there)."""
    base = request.build_absolute_uri("/").rstrip("/")
    messages = {f.split or "train": request.build_absolute_uri(file_api_path(export, f.path)) for f in files if f.format == "messages"}
    data_files = ", ".join(f'"{split}": "{url}"' for split, url in sorted(messages.items(), key=lambda kv: kv[0] != "train"))
    finetune = (f"python examples/finetune.py --base-url {base} --dataset {dataset.pk} --export {export.pk} \\\n"
                "    --model /path/to/local/model --output-dir out/run1 --max-steps 200")
    load = (
        "import os\nfrom datasets import load_dataset\n\n"
        f"data = load_dataset(\n    \"json\",\n    data_files={{{data_files}}},\n"
        "    storage_options={\"headers\": {\"Authorization\": f\"Bearer {os.environ['SFTDESK_TOKEN']}\"}},\n)"
    ) if messages else ""
    first = messages.get("train") or next(iter(messages.values()), None)
    sign = ('curl -s -X POST -H "Authorization: Bearer $SFTDESK_TOKEN" -H "Content-Type: application/json" \\\n'
            f"    -d '{{\"expires_in\": 3600}}' {first}/sign/") if first else ""
    latest = f'curl -sL -H "Authorization: Bearer $SFTDESK_TOKEN" {base}{reverse("api-export-latest", kwargs={"dataset_id": dataset.pk})}'
    return {"finetune": finetune, "load_dataset": load, "sign": sign, "latest": latest}


def _detail_context(request, dataset, export: Export, *, new_key: str | None = None, token_form: JobTokenForm | None = None) -> dict:
    files = export_files(export) if export.status == Export.Status.SUCCEEDED else []
    manifest = export.manifest or {}
    counts = manifest.get("counts") or {}
    strata = sorted((manifest.get("strata") or {}).items())
    return {
        "dataset": dataset, "export": export, "manifest": manifest,
        "file_rows": [{"row": f, "url": file_api_path(export, f.path)} for f in files],
        "splits": counts.get("splits") or {}, "strata": [{"key": k, **v} for k, v in strata[:STRATA_SHOWN]],
        "strata_hidden": max(len(strata) - STRATA_SHOWN, 0),
        "spec_json": json.dumps(export.spec, indent=2, ensure_ascii=False, sort_keys=True),
        "manifest_json": json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) if manifest else "",
        "snippets": _snippets(request, dataset, export, files) if export.status == Export.Status.SUCCEEDED else {},
        "token_form": token_form or JobTokenForm(initial={"name": f"fine-tune {export.name}"[:100]}), "new_key": new_key,
        "api_url": reverse("api-export", kwargs={"dataset_id": dataset.pk, "export_id": export.pk}),
    }


@login_required
@vary_on_headers("HX-Request")
def export_detail(request, slug: str, pk: int):
    dataset = exports_dataset(request.user, slug=slug)
    export = export_get(dataset, pk)
    context = _detail_context(request, dataset, export)
    if request.htmx and request.htmx.target == "export-body":  # the status poll
        return render(request, "exports/export_detail.html#export-body", context)
    return render(request, "exports/export_detail.html", context)


@login_required
@require_POST
@never_cache
@vary_on_headers("HX-Request")
def export_token(request, slug: str, pk: int):
    """A job token for this dataset: read-only, expiring; the key is shown once, here."""
    dataset = exports_dataset(request.user, slug=slug)
    export = export_get(dataset, pk)
    form = JobTokenForm(request.POST)
    new_key = None
    if form.is_valid():
        _token, new_key = tokens.api_token_create(user=request.user, name=form.cleaned_data["name"], dataset=dataset,
                                                  can_write=False, days=form.cleaned_data["days"])
        form = None
    context = _detail_context(request, dataset, export, new_key=new_key, token_form=form)
    template = "exports/export_detail.html#job-token" if request.htmx else "exports/export_detail.html"
    return render(request, template, context, status=200 if new_key or request.htmx else 400)  # htmx swaps 200s only
