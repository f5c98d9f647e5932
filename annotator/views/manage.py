"""Owner pages: members, annotation settings, gold samples. Thin function views: parse a form, call
one service or selector, render. Everyone but an owner of the dataset gets 404, as for a foreign
dataset. With htmx the member table and the gold form render as partials; without JavaScript every
action posts and redirects."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from .. import rubric, selectors, services
from ..forms import AnnotationSettingsForm, GoldForm, MemberInviteForm, MemberRoleForm
from ..models import Membership
from ..services import members as manage

OWNER = [Membership.Role.OWNER]
GOLD_PAGE_SIZE = 50


def _owned_dataset(request, slug: str):
    dataset = selectors.dataset_get(request.user, slug=slug)
    services.check_dataset_role(user=request.user, dataset=dataset, roles=OWNER)
    return dataset


# ---------------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------------

def _members_page(request, dataset, *, invite_form=None, error: str = "", status: int = 200, created: dict | None = None):
    context = {
        "dataset": dataset, "members": selectors.member_list(request.user, dataset), "error": error, "created": created,
        "invite_form": invite_form or MemberInviteForm(), "roles": Membership.Role.choices,
    }
    if request.htmx:
        return render(request, "annotator/members.html#member-table", context)  # htmx swaps 2xx only
    return render(request, "annotator/members.html", context, status=status)


def _members_done(request, dataset, message: str):
    if request.htmx:
        return _members_page(request, dataset)
    messages.success(request, message)
    return redirect("annotator:members", slug=dataset.slug)


def _leave(request, message: str, url: str):
    """The owner changed their own access: go to a page they can still see (htmx: a full redirect)."""
    messages.success(request, message)
    if request.htmx:
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def members(request, slug: str):
    """The member list; POST invites an existing user with a role (or changes a member's role)."""
    dataset = _owned_dataset(request, slug)
    form = MemberInviteForm(request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            return _members_page(request, dataset, invite_form=form, status=400)
        try:
            membership = manage.member_invite(actor=request.user, dataset=dataset, **form.cleaned_data)
        except manage.MemberError as exc:
            form.add_error("username" if not isinstance(exc, manage.LastOwner) else "role", str(exc))
            return _members_page(request, dataset, invite_form=form, status=400)
        done = _("%(user)s is now %(role)s.") % {"user": membership.user.get_username(), "role": membership.get_role_display()}
        if membership.initial_password:  # shown once, on this response only
            response = _members_page(request, dataset, created={"username": membership.user.get_username(), "password": membership.initial_password})
            response["Cache-Control"] = "no-store"
            return response
        return _members_done(request, dataset, done)
    return _members_page(request, dataset, invite_form=form if form.is_bound else None)


@login_required
@vary_on_headers("HX-Request")
@require_POST
def member_role(request, slug: str, user_id: int):
    dataset = _owned_dataset(request, slug)
    user = selectors.member_get(request.user, dataset, user_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _members_page(request, dataset, error=_("Choose a role."), status=400)
    try:
        membership = manage.member_role_set(actor=request.user, dataset=dataset, user=user, role=form.cleaned_data["role"])
    except manage.MemberError as exc:
        return _members_page(request, dataset, error=str(exc), status=400)
    message = _("%(user)s is now %(role)s.") % {"user": user.get_username(), "role": membership.get_role_display()}
    if user.pk == request.user.pk and membership.role != Membership.Role.OWNER:  # stepped down: this page is closed now
        return _leave(request, message, reverse("annotator:dataset_detail", args=[dataset.slug]))
    return _members_done(request, dataset, message)


@login_required
@vary_on_headers("HX-Request")
@require_POST
def member_remove(request, slug: str, user_id: int):
    dataset = _owned_dataset(request, slug)
    user = selectors.member_get(request.user, dataset, user_id)
    try:
        manage.member_remove(actor=request.user, dataset=dataset, user=user)
    except manage.MemberError as exc:
        return _members_page(request, dataset, error=str(exc), status=400)
    message = _("%(user)s is no longer a member; their labels stay.") % {"user": user.get_username()}
    if user.pk == request.user.pk:  # left the dataset: its pages are closed to them now
        return _leave(request, message, reverse("annotator:dataset_list"))
    return _members_done(request, dataset, message)


# ---------------------------------------------------------------------------------------------
# Annotation settings
# ---------------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def annotation_settings(request, slug: str):
    dataset = _owned_dataset(request, slug)
    config = services.annotation_config(dataset)
    form = AnnotationSettingsForm(request.POST or None, initial=AnnotationSettingsForm.initial_for(config, dataset.guidelines))
    if request.method == "POST" and form.is_valid():
        try:
            services.dataset_annotation_update(
                actor=request.user, dataset=dataset, values=form.values(), guidelines=form.cleaned_data["guidelines"]
            )
        except rubric.ConfigError as exc:
            form.add_config_error(exc)
        else:
            messages.success(request, _("Annotation settings saved."))
            return redirect("annotator:annotation_settings", slug=dataset.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "annotator/annotation_settings.html", {"dataset": dataset, "form": form}, status=status)


# ---------------------------------------------------------------------------------------------
# Gold samples
# ---------------------------------------------------------------------------------------------

def _gold_list_context(request, dataset) -> dict:
    page = Paginator(selectors.gold_sample_list(request.user, dataset), GOLD_PAGE_SIZE).get_page(request.GET.get("page"))
    return {"dataset": dataset, "page": page, "accuracy": selectors.gold_accuracy(request.user, dataset)}


@login_required
def gold_list(request, slug: str):
    dataset = _owned_dataset(request, slug)
    return render(request, "annotator/gold_list.html", _gold_list_context(request, dataset))


def _gold_form_response(request, dataset, sample, form, *, status: int = 200):
    context = {"dataset": dataset, "sample": sample, "gold_form": form, "gold": getattr(sample, "gold", None)}
    if request.htmx:
        return render(request, "annotator/_gold_form.html", context, status=200)  # htmx swaps 2xx only
    return render(request, "annotator/gold_list.html", {**_gold_list_context(request, dataset), **context}, status=status)


@login_required
@vary_on_headers("HX-Request")
@require_http_methods(["GET", "POST"])
def gold_set(request, slug: str, pk: int):
    """GET: the gold form for a sample (a partial with htmx, else on the gold page). POST: save it."""
    dataset = _owned_dataset(request, slug)
    sample = selectors.sample_get(request.user, dataset, pk)
    config = services.annotation_config(dataset)
    current = getattr(sample, "gold", None)
    form = GoldForm(request.POST or None, config=config, gold=current.values if current else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.gold_set(actor=request.user, dataset=dataset, sample=sample, values=form.values())
            except rubric.LabelInvalid as exc:
                form.add_label_errors(exc.errors)
            else:
                if request.htmx:
                    sample = selectors.sample_get(request.user, dataset, pk)
                    return _gold_form_response(request, dataset, sample, GoldForm(config=config, gold=sample.gold.values))
                messages.success(request, _("Sample %(id)s is gold now.") % {"id": sample.external_id})
                return redirect("annotator:sample_detail", slug=dataset.slug, pk=sample.pk)
        return _gold_form_response(request, dataset, sample, form, status=400)
    return _gold_form_response(request, dataset, sample, form)


@login_required
@vary_on_headers("HX-Request")
@require_POST
def gold_clear(request, slug: str, pk: int):
    dataset = _owned_dataset(request, slug)
    sample = selectors.sample_get(request.user, dataset, pk)
    services.gold_clear(actor=request.user, dataset=dataset, sample=sample)
    if request.htmx:
        sample = selectors.sample_get(request.user, dataset, pk)
        return _gold_form_response(request, dataset, sample, GoldForm(config=services.annotation_config(dataset)))
    messages.success(request, _("Sample %(id)s is no longer gold.") % {"id": sample.external_id})
    if request.POST.get("next") == "gold_list":
        return redirect("annotator:gold_list", slug=dataset.slug)
    return redirect("annotator:sample_detail", slug=dataset.slug, pk=sample.pk)
