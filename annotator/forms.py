from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import formats, rubric
from .models import Membership, Sample


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


# ---------------------------------------------------------------------------------------------
# Management pages: members, annotation settings, gold samples
# ---------------------------------------------------------------------------------------------

ROLE_CHOICES = Membership.Role.choices


class MemberInviteForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=ROLE_CHOICES, initial=Membership.Role.ANNOTATOR)
    create = forms.BooleanField(
        label=_("Create the account if there is none"), required=False,
        help_text=_("A password is generated and shown once, here; pass it on to the new member."),
    )


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=ROLE_CHOICES)


REQUIRABLE_LABELS = {
    **rubric.SCALE_LABELS,
    "difficulty": _("Difficulty"),
    "error_tags": _("Error tags"),
    "comment": _("Comment"),
}


class AnnotationSettingsForm(forms.Form):
    """The dataset's annotation settings and guidelines. Ranges are checked by rubric.config_parse
    (one place for the rules); its ConfigError lands on the field it names (see `add_config_error`)."""

    overlap = forms.IntegerField(
        label=_("Labels per sample (overlap k)"), widget=forms.NumberInput(attrs={"min": 1, "max": 5}),
        help_text=_("How many annotators label each sample, blind to each other (1 to 5)."),
    )
    reservation_minutes = forms.IntegerField(
        label=_("Reservation timeout (minutes)"), widget=forms.NumberInput(attrs={"min": 1, "max": 24 * 60}),
        help_text=_("How long a sample stays with an annotator who opened it before others may take it."),
    )
    gold_rate = forms.FloatField(
        label=_("Gold rate"), widget=forms.NumberInput(attrs={"min": 0, "max": 0.5, "step": "0.01"}),
        help_text=_("Share of requests that serve a gold sample (0 to 0.5)."),
    )
    order = forms.ChoiceField(label=_("Queue order"), choices=list(rubric.ORDER_LABELS.items()))
    seed = forms.IntegerField(label=_("Seed"), widget=forms.NumberInput(attrs={"min": 0}), help_text=_("The same seed gives the same order."))
    required = forms.MultipleChoiceField(
        label=_("Required fields"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(name, REQUIRABLE_LABELS[name]) for name in rubric.REQUIRABLE],
        help_text=_("The verdict is always required."),
    )
    extra_tags = forms.CharField(
        label=_("Extra error tags"), required=False,
        help_text=_("Comma separated, lower-case letters, digits and _, e.g. outdated, needs_source."),
    )
    extra_fields = forms.CharField(
        label=_("Extra fields"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line: name: choice1, choice2, ... (e.g. preference: 0, 1, 2)."),
    )
    guidelines = forms.CharField(
        label=_("Guidelines (markdown)"), required=False, strip=False, widget=forms.Textarea(attrs={"rows": 10}),
        help_text=_("Shown to annotators."),
    )

    @classmethod
    def initial_for(cls, config: rubric.AnnotationConfig, guidelines: str) -> dict:
        return {
            "overlap": config.overlap, "reservation_minutes": config.reservation_minutes, "gold_rate": config.gold_rate,
            "order": config.order, "seed": config.seed, "required": list(config.required),
            "extra_tags": ", ".join(config.extra_tags),
            "extra_fields": "\n".join(f"{f.name}: {', '.join(f.choices)}" for f in config.extra_fields),
            "guidelines": guidelines,
        }

    def clean_extra_tags(self) -> list[str]:
        text = self.cleaned_data.get("extra_tags") or ""
        return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]

    def clean_extra_fields(self) -> list[dict]:
        specs = []
        for n, line in enumerate((self.cleaned_data.get("extra_fields") or "").splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, rest = line.partition(":")
            choices = [c.strip() for c in rest.split(",") if c.strip()]
            if not sep or not name.strip():
                raise forms.ValidationError(
                    _("Line %(n)s: write name: choice1, choice2, ... (got %(line)s)") % {"n": n, "line": repr(line.strip())}
                )
            specs.append({"name": name.strip(), "choices": choices})
        return specs

    def values(self) -> dict:
        """The settings for services.annotation_settings_set (without the guidelines)."""
        data = self.cleaned_data
        return {
            "overlap": data["overlap"], "reservation_minutes": data["reservation_minutes"], "gold_rate": data["gold_rate"],
            "order": data["order"], "seed": data["seed"], "required": list(data["required"]),
            "extra_tags": data["extra_tags"], "extra_fields": data["extra_fields"],
        }

    def add_config_error(self, exc: Exception) -> None:
        """Put a rubric.ConfigError ("overlap: expected ...") on the field it names."""
        message = str(exc)
        name = message.split(":", 1)[0].strip()
        self.add_error(name if name in self.fields else None, message)


SCALE_CHOICES = [("", "—")] + [(str(n), str(n)) for n in range(rubric.SCALE_MIN, rubric.SCALE_MAX + 1)]


class GoldForm(forms.Form):
    """The known-good values of a gold sample: verdict required; scales, difficulty and the
    dataset's extra fields optional. Checked again by services.gold_set (rubric.label_clean)."""

    EXTRA_PREFIX = "extra__"

    verdict = forms.ChoiceField(label=_("Verdict"), choices=[("", "—")] + list(rubric.VERDICT_LABELS.items()))
    accuracy = forms.ChoiceField(label=rubric.SCALE_LABELS["accuracy"], choices=SCALE_CHOICES, required=False)
    completeness = forms.ChoiceField(label=rubric.SCALE_LABELS["completeness"], choices=SCALE_CHOICES, required=False)
    conciseness = forms.ChoiceField(label=rubric.SCALE_LABELS["conciseness"], choices=SCALE_CHOICES, required=False)
    difficulty = forms.ChoiceField(label=_("Difficulty"), choices=[("", "—")] + list(rubric.DIFFICULTY_LABELS.items()), required=False)

    def __init__(self, *args, config: rubric.AnnotationConfig, gold: dict | None = None, **kwargs):
        if gold and "initial" not in kwargs:
            initial = {k: gold.get(k) for k in rubric.SCALES + ("difficulty", "verdict") if gold.get(k) not in (None, "")}
            initial.update({self.EXTRA_PREFIX + k: v for k, v in (gold.get("extra") or {}).items()})
            kwargs["initial"] = initial
        super().__init__(*args, **kwargs)
        for f in config.extra_fields:
            self.fields[self.EXTRA_PREFIX + f.name] = forms.ChoiceField(
                label=f.name, required=False, choices=[("", "—")] + [(c, c) for c in f.choices]
            )

    def values(self) -> dict:
        data = self.cleaned_data
        out = {k: data.get(k) or None for k in rubric.SCALES}
        out.update(verdict=data["verdict"], difficulty=data.get("difficulty") or "")
        out["extra"] = {k[len(self.EXTRA_PREFIX):]: v for k, v in data.items() if k.startswith(self.EXTRA_PREFIX) and v}
        return out

    def add_label_errors(self, errors: dict[str, str]) -> None:
        """Put rubric.LabelInvalid errors ({"verdict": ..., "extra.preference": ...}) on their fields."""
        for key, message in errors.items():
            name = self.EXTRA_PREFIX + key.split(".", 1)[1] if key.startswith("extra.") else key
            self.add_error(name if name in self.fields else None, f"{key}: {message}" if name not in self.fields else message)
