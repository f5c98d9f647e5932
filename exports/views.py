"""The API tokens page: make (the key is shown once), list and revoke your tokens."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotator import selectors as annotator_selectors

from . import tokens
from .forms import TokenForm


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
