"""Forms of the review desk: a reviewer's decision on a sample, and the dataset's review rule. They
parse what the browser sends; reviews.services checks the values and raises errors by field."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ReviewDecision
from .services import MAX_ANSWER_CHARS, MAX_RATIONALE_CHARS


def _newlines(text: str) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n")


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(
        label=_("Decision"), choices=ReviewDecision.Decision.choices, widget=forms.RadioSelect,
        error_messages={"required": _("Choose approve, reject or approve with an edited answer."),
                        "invalid_choice": _("Choose approve, reject or approve with an edited answer.")},
    )
    rationale = forms.CharField(label=_("Rationale"), required=False, strip=True, max_length=MAX_RATIONALE_CHARS,
                                widget=forms.Textarea(attrs={"rows": 3}))
    answer = forms.CharField(label=_("Edited answer"), required=False, strip=False, max_length=MAX_ANSWER_CHARS,
                             widget=forms.Textarea(attrs={"rows": 12}))
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput,
                                 error_messages={"required": _("The page is missing the sample's version: reload it."),
                                                 "invalid": _("The page is missing the sample's version: reload it.")})
    reason = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)

    def clean_answer(self) -> str | None:
        # Absent (not merely empty) stays None: the service then knows no answer was sent.
        if "answer" not in self.data:
            return None
        return _newlines(self.cleaned_data.get("answer") or "")

    def errors_by_field(self) -> dict[str, str]:
        return {field: " ".join(str(e) for e in errs) for field, errs in self.errors.items()}


class ReviewRuleForm(forms.Form):
    auto_approve = forms.BooleanField(
        label=_("Approve automatically when the labels agree"), required=False,
        help_text=_("Every verdict accept, every scale within the spread below, and (if set) no metric flag."),
    )
    max_spread = forms.TypedChoiceField(
        label=_("Largest spread of a 1-5 scale that still counts as agreement"), coerce=int,
        choices=[(n, str(n)) for n in range(0, 4)],
        help_text=_("A scale whose labels differ by more than this sends the sample to the conflict queue."),
    )
    flags_block = forms.BooleanField(
        label=_("A metric flag sends the sample to the conflict queue"), required=False,
    )
