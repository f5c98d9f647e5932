from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import formats
from .models import Sample


class DatasetForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    slug = forms.SlugField(label=_("Slug"), max_length=100, required=False, help_text=_("Used in URLs; made from the name if empty."))
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 3}), required=False)
    guidelines = forms.CharField(label=_("Guidelines (markdown)"), widget=forms.Textarea(attrs={"rows": 6}), required=False)


class ImportForm(forms.Form):
    file = forms.FileField(label=_("File"), help_text=_("JSON, JSON Lines or CSV."))
    format = forms.ChoiceField(label=_("Format"), choices=[(f, f) for f in formats.FORMAT_CHOICES], initial="auto")
    columns = forms.CharField(
        label=_("CSV column mapping"), required=False,
        help_text=_("For CSV only, e.g. instruction=prompt, output=answer. Known fields: instruction, input, output, system, id, task_type."),
    )

    def clean_file(self):
        f = self.cleaned_data["file"]
        if f.size > settings.SFTDESK_IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                _("%(name)s is %(size)s bytes, over the import limit of %(cap)s bytes.")
                % {"name": f.name, "size": f"{f.size:,}", "cap": f"{settings.SFTDESK_IMPORT_MAX_BYTES:,}"}
            )
        return f

    def clean_columns(self):
        return parse_columns(self.cleaned_data.get("columns") or "")


def parse_columns(text: str) -> dict[str, str]:
    """'instruction=prompt, output=answer' -> {'instruction': 'prompt', 'output': 'answer'}."""
    mapping = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise forms.ValidationError(_("Write each mapping as field=column: %(part)s") % {"part": part})
        key, value = (x.strip() for x in part.split("=", 1))
        if key not in formats.CSV_DEFAULT_COLUMNS:
            raise forms.ValidationError(
                _("Unknown field %(key)s; known fields: %(known)s") % {"key": key, "known": ", ".join(formats.CSV_DEFAULT_COLUMNS)}
            )
        mapping[key] = value
    return mapping


class SampleFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False)
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("any status"))] + list(Sample.Status.choices))
    task_type = forms.CharField(label=_("Task type"), required=False)
    language = forms.CharField(label=_("Language"), required=False)
    has_flag = forms.ChoiceField(label=_("Flags"), required=False, choices=[("", _("any")), ("yes", _("flagged")), ("no", _("not flagged"))])
    flag = forms.CharField(label=_("Flag rule"), required=False, max_length=48)
    sort = forms.RegexField(label=_("Sort by"), required=False, regex=r"^-?[a-z_]{1,48}$")
    page = forms.IntegerField(required=False, min_value=1)

    def filters(self) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        flag = data.get("has_flag")
        return {
            "status": data.get("status") or "",
            "task_type": data.get("task_type") or "",
            "language": data.get("language") or "",
            "has_flag": {"yes": True, "no": False}.get(flag),
            "q": (data.get("q") or "").strip(),
            "flag": data.get("flag") or "",
            "sort": data.get("sort") or "",
        }
