import json
import re

from django import forms
from django.utils.translation import gettext_lazy as _

from . import spec as spec_module


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("What uses it, e.g. 'nightly fine-tune'."))
    dataset = forms.TypedChoiceField(label=_("Dataset"), coerce=int, required=False, empty_value=None)
    can_write = forms.BooleanField(label=_("Allow writes (uploads)"), required=False)
    days = forms.IntegerField(label=_("Expires after (days)"), min_value=1, max_value=366, initial=90)

    def __init__(self, *args, datasets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [("", _("all my datasets"))] + [(d.pk, d.name) for d in datasets]


class JobTokenForm(forms.Form):
    """A token for a fine-tuning job: read-only, this dataset only, expiring."""

    name = forms.CharField(label=_("Name"), max_length=100, initial="fine-tune job", help_text=_("What uses it, e.g. 'nightly fine-tune'."))
    days = forms.IntegerField(label=_("Expires after (days)"), min_value=1, max_value=366, initial=30)


_STRATUM_LINE = re.compile(r"^\s*(?P<key>[^=:]+?)\s*[=:]\s*(?P<value>\S+)\s*$")


def _table(text: str) -> tuple[dict[str, float | int], list[str]]:
    """`stratum = number` lines (or `stratum: number`) as a dict; malformed lines are returned apart."""
    table, bad = {}, []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        match = _STRATUM_LINE.match(line)
        if match is None:
            bad.append(line.strip())
            continue
        raw = match["value"]
        try:
            table[match["key"]] = int(raw) if re.fullmatch(r"-?\d+", raw) else float(raw)
        except ValueError:
            bad.append(line.strip())
    return table, bad


class ExportSpecForm(forms.Form):
    """The export spec as form fields, or as JSON (`use_json`): `to_spec()` gives the spec's JSON data, which
    `spec_parse` checks (its errors name fields by path; `spec_errors_to_fields` puts them on the fields)."""

    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("Letters, digits, '.', '_' or '-'; it names the files."))
    formats = forms.MultipleChoiceField(label=_("Formats"), widget=forms.CheckboxSelectMultiple, initial=["messages"], choices=[
        ("messages", _("OpenAI messages (JSON Lines)")), ("prompt_completion", _("TRL prompt-completion (JSON Lines)")),
        ("alpaca", _("Alpaca (JSON Lines)")), ("sharegpt", _("ShareGPT (JSON)")), ("parquet", _("Parquet of messages")),
    ])
    status = forms.MultipleChoiceField(label=_("Review status"), widget=forms.CheckboxSelectMultiple, initial=["approved"], choices=[
        ("new", _("new")), ("annotating", _("annotating")), ("in_review", _("in review")), ("approved", _("approved")), ("rejected", _("rejected")),
    ])
    task_types = forms.MultipleChoiceField(label=_("Task types"), required=False, widget=forms.CheckboxSelectMultiple,
                                           help_text=_("None ticked: every task type."))
    languages = forms.MultipleChoiceField(label=_("Languages"), required=False, widget=forms.CheckboxSelectMultiple,
                                          help_text=_("None ticked: every language."))
    flags = forms.ChoiceField(label=_("Metric flags"), initial="ignore", choices=[
        ("ignore", _("keep flagged samples")), ("exclude_any", _("leave out samples with any flag")),
        ("rules", _("leave out samples with the flags ticked below")),
    ])
    flag_rules = forms.MultipleChoiceField(label=_("Flag rules"), required=False, widget=forms.CheckboxSelectMultiple)
    drop_duplicates = forms.BooleanField(label=_("Drop duplicates (keep one of each group)"), required=False, initial=True)
    min_confidence = forms.FloatField(label=_("Consensus: minimum confidence"), required=False, min_value=0, max_value=1,
                                      help_text=_("0 to 1; empty: no consensus filter."))
    balance_by = forms.MultipleChoiceField(label=_("Balance by"), required=False, widget=forms.CheckboxSelectMultiple, choices=[
        ("task_type", _("task type")), ("difficulty", _("difficulty bucket")), ("language", _("language")), ("cluster", _("cluster")),
    ])
    balance_mode = forms.ChoiceField(label=_("Balance mode"), initial="none", choices=[
        ("none", _("none: take what the filters keep")), ("counts", _("fixed counts per stratum")),
        ("ratios", _("mixture ratios (scaled to the size)")), ("cap", _("a cap per stratum")),
    ])
    balance_table = forms.CharField(label=_("Counts or ratios per stratum"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
                                    help_text=_("One per line: stratum = number, e.g. 'qa/hard = 200'. A stratum joins its values in "
                                                "'balance by' order with '/', '-' for an empty value."))
    cap = forms.IntegerField(label=_("Cap per stratum"), required=False, min_value=1)
    short = forms.ChoiceField(label=_("When a stratum is short"), initial="take_all", choices=[
        ("take_all", _("take all it has and report it")), ("shrink", _("shrink the others in proportion")),
    ])
    select_method = forms.ChoiceField(label=_("Selection inside a stratum"), initial="random", choices=[
        ("random", _("random (seeded)")), ("quality", _("quality first")), ("diversity", _("diversity-aware")),
        ("cluster", _("an even draw from every cluster")),
    ])
    quality_key = forms.ChoiceField(label=_("Quality by"), required=False)
    diversity_method = forms.ChoiceField(label=_("Diversity method"), initial="k_center", choices=[
        ("k_center", _("k-center greedy over embeddings")), ("threshold", _("best first, skipping near neighbours")),
    ])
    diversity_threshold = forms.FloatField(label=_("Cosine similarity threshold"), required=False, min_value=0, max_value=1)
    size = forms.IntegerField(label=_("Target size"), required=False, min_value=1, help_text=_("Empty: as many as the balance gives."))
    validation = forms.CharField(label=_("Validation split"), required=False, initial="0",
                                 help_text=_("A fraction up to 0.5 (0.1) or a count (200)."))
    split_seed = forms.IntegerField(label=_("Split seed"), required=False, min_value=0, initial=0)
    seed = forms.IntegerField(label=_("Seed"), required=False, min_value=0, initial=0)
    use_json = forms.BooleanField(label=_("Use the JSON below instead of the fields above"), required=False)
    spec_json = forms.CharField(label=_("Spec JSON"), required=False, widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}))

    def __init__(self, *args, facets: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        facets = facets or {}
        self.fields["task_types"].choices = [(t, t) for t in facets.get("task_types", [])]
        self.fields["languages"].choices = [(lang, lang) for lang in facets.get("languages", [])]
        self.fields["flag_rules"].choices = [(r, r) for r in facets.get("flag_rules", [])]
        self.fields["quality_key"].choices = [("", "—"), ("consensus", _("review consensus"))] + [(m, m) for m in facets.get("metrics", [])]
        if not self.is_bound and not self.initial.get("spec_json"):
            self.initial["spec_json"] = ""

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
            raise forms.ValidationError(_("Letters, digits, '.', '_' or '-', starting with a letter or digit."))
        return name

    def clean_validation(self):
        raw = (self.cleaned_data.get("validation") or "0").strip()
        try:
            return int(raw) if re.fullmatch(r"\d+", raw) else float(raw)
        except ValueError:
            raise forms.ValidationError(_("A fraction up to 0.5 or a whole count.")) from None

    def clean_balance_table(self):
        table, bad = _table(self.cleaned_data.get("balance_table") or "")
        if bad:
            raise forms.ValidationError(_("Write one 'stratum = number' per line, not: %(lines)s"), params={"lines": "; ".join(bad[:3])})
        return table

    def clean_spec_json(self):
        text = (self.cleaned_data.get("spec_json") or "").strip()
        if not self.data.get(self.add_prefix("use_json")):
            return text
        try:
            value = json.loads(text or "null")
        except ValueError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s"), params={"error": str(exc)}) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The spec must be a JSON object."))
        return text

    def full_clean(self):
        # With the JSON as the source, the fields are not checked (the spec is).
        if self.is_bound and self.data.get(self.add_prefix("use_json")):
            for name, field in self.fields.items():
                if name not in ("use_json", "spec_json"):
                    field.required = False
        super().full_clean()
        if self.is_bound and self.data.get(self.add_prefix("use_json")):
            for name in list(self.errors):
                if name not in ("use_json", "spec_json", forms.forms.NON_FIELD_ERRORS):
                    del self._errors[name]

    def to_spec(self) -> dict:
        """The spec's JSON data (valid or not: spec_parse says). Call after is_valid()."""
        d = self.cleaned_data
        if d.get("use_json"):
            return json.loads(d.get("spec_json") or "{}")
        table = d.get("balance_table") or {}
        flags = {"ignore": "ignore", "exclude_any": "exclude_any"}.get(d.get("flags"), list(d.get("flag_rules") or []))
        mode = d.get("balance_mode") or "none"
        balance: dict = {"by": [b for b in ("task_type", "difficulty", "language", "cluster") if b in (d.get("balance_by") or [])],
                         "mode": mode, "short": d.get("short") or "take_all"}
        if mode in ("counts", "ratios"):
            balance[mode] = table
        if mode == "cap":
            balance["cap"] = d.get("cap")
        method = d.get("select_method") or "random"
        select: dict = {"method": method}
        if method in ("quality", "diversity") and d.get("quality_key"):
            select["quality_key"] = d["quality_key"]
        if method == "diversity":
            select["diversity"] = {"method": d.get("diversity_method") or "k_center"}
            if select["diversity"]["method"] == "threshold":
                select["diversity"]["threshold"] = d.get("diversity_threshold")
        filters: dict = {"status": list(d.get("status") or []), "task_types": list(d.get("task_types") or []),
                         "languages": list(d.get("languages") or []), "flags": flags, "drop_duplicates": bool(d.get("drop_duplicates"))}
        if d.get("min_confidence") is not None:
            filters["consensus"] = {"min_confidence": d["min_confidence"]}
        spec = {"name": d.get("name") or "", "formats": list(d.get("formats") or []), "filters": filters, "balance": balance,
                "select": select, "split": {"validation": d.get("validation") or 0, "seed": d.get("split_seed") or 0},
                "seed": d.get("seed") or 0}
        if d.get("size"):
            spec["size"] = d["size"]
        return spec

    def add_spec_errors(self, errors: dict[str, str]) -> None:
        """SpecError.errors ({path: message}) onto the field they concern, else onto the form."""
        for path, message in errors.items():
            field = spec_error_field(path) if not self.cleaned_data.get("use_json") else "spec_json"
            text = f"{path}: {message}"
            if field in self.fields:
                self.add_error(field, text)
            else:
                self.add_error(None, text)


_FIELD_FOR_PATH = (
    ("filters.status", "status"), ("filters.task_types", "task_types"), ("filters.languages", "languages"),
    ("filters.flags", "flags"), ("filters.drop_duplicates", "drop_duplicates"), ("filters.consensus", "min_confidence"),
    ("balance.by", "balance_by"), ("balance.mode", "balance_mode"), ("balance.counts", "balance_table"),
    ("balance.ratios", "balance_table"), ("balance.cap", "cap"), ("balance.short", "short"), ("select.method", "select_method"),
    ("select.quality_key", "quality_key"), ("select.diversity.threshold", "diversity_threshold"),
    ("select.diversity", "diversity_method"), ("split.validation", "validation"), ("split.seed", "split_seed"),
    ("formats", "formats"), ("name", "name"), ("size", "size"), ("seed", "seed"),
)


def spec_error_field(path: str) -> str | None:
    for prefix, field in _FIELD_FOR_PATH:
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return field
    return None


def initial_from_spec(data: dict) -> dict:
    """Form initial values from a spec's JSON (e.g. an earlier export's), the JSON included."""
    f, b, s, sp = data.get("filters") or {}, data.get("balance") or {}, data.get("select") or {}, data.get("split") or {}
    flags = f.get("flags", "ignore")
    table = b.get("counts") or b.get("ratios") or {}
    diversity = s.get("diversity") or {}
    consensus = f.get("consensus") or {}
    return {
        "name": data.get("name", ""), "formats": data.get("formats", ["messages"]), "status": f.get("status", ["approved"]),
        "task_types": f.get("task_types", []), "languages": f.get("languages", []),
        "flags": flags if isinstance(flags, str) else "rules", "flag_rules": [] if isinstance(flags, str) else flags,
        "drop_duplicates": f.get("drop_duplicates", True), "min_confidence": consensus.get("min_confidence"),
        "balance_by": b.get("by", []), "balance_mode": b.get("mode", "none"),
        "balance_table": "\n".join(f"{k} = {v}" for k, v in table.items()), "cap": b.get("cap"), "short": b.get("short", "take_all"),
        "select_method": s.get("method", "random"), "quality_key": s.get("quality_key") or "",
        "diversity_method": diversity.get("method", "k_center"), "diversity_threshold": diversity.get("threshold"),
        "size": data.get("size"), "validation": str(sp.get("validation", 0)), "split_seed": sp.get("seed", 0), "seed": data.get("seed", 0),
        "spec_json": json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True),
    }


def canonical_json(data: dict) -> str | None:
    """The spec as the canonical, indented JSON the build will store, or None when it does not parse."""
    try:
        parsed = spec_module.spec_parse(data)
    except spec_module.SpecError:
        return None
    return json.dumps(parsed.to_json(), indent=2, ensure_ascii=False, sort_keys=True)
