from django import forms
from django.utils.translation import gettext_lazy as _


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What uses it, e.g. 'nightly fine-tune'."))
    dataset = forms.TypedChoiceField(label=_("Dataset"), coerce=int, required=False, empty_value=None)
    can_write = forms.BooleanField(label=_("Allow writes (uploads)"), required=False)
    days = forms.IntegerField(label=_("Expires after (days)"), min_value=1, max_value=366, initial=90)

    def __init__(self, *args, datasets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [("", _("all my datasets"))] + [(d.pk, d.name) for d in datasets]
