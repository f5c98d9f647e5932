"""The label rubric and each dataset's annotation settings: one place that says which fields a label
has, which values they take and which are required, used alike by the annotation page, the API and
`import_labels`. Values are checked here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

SCALES = ("accuracy", "completeness", "conciseness")
SCALE_LABELS = {
    "accuracy": _("Accuracy"),
    "completeness": _("Completeness"),
    "conciseness": _("Conciseness and clarity"),
}
SCALE_MIN, SCALE_MAX = 1, 5
DIFFICULTIES = ("easy", "medium", "hard")
DIFFICULTY_LABELS = {"easy": _("Easy"), "medium": _("Medium"), "hard": _("Hard")}
VERDICTS = ("accept", "needs_fix", "reject")
VERDICT_LABELS = {"accept": _("Accept"), "needs_fix": _("Needs fix"), "reject": _("Reject")}
DEFAULT_TAGS = (
    "factual_error", "incomplete", "hallucination", "instruction_unclear", "wrong_format",
    "off_topic", "duplicate", "unsafe", "wrong_label",
)
TAG_LABELS = {
    "factual_error": _("Factual error"),
    "incomplete": _("Incomplete"),
    "hallucination": _("Hallucination"),
    "instruction_unclear": _("Instruction unclear"),
    "wrong_format": _("Wrong format"),
    "off_topic": _("Off-topic"),
    "duplicate": _("Duplicate"),
    "unsafe": _("Unsafe"),
    "wrong_label": _("Wrong label"),
}
# Fields a dataset may make required (verdict always is; a corrected answer is for "needs fix").
REQUIRABLE = SCALES + ("difficulty", "error_tags", "comment")
ORDERS = ("random", "flagged", "cluster")
ORDER_LABELS = {
    "random": _("Random (seeded)"),
    "flagged": _("Flagged by metrics first"),
    "cluster": _("Cluster coverage (one per cluster in turn)"),
}
LABEL_FIELDS = SCALES + ("difficulty", "verdict", "error_tags", "corrected_answer", "comment", "time_spent_s", "extra")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


@dataclass(frozen=True)
class ExtraField:
    """A nominal field a dataset adds to the rubric (say `preference` with choices 0, 1, 2)."""

    name: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class AnnotationConfig:
    overlap: int = 2
    reservation_minutes: int = 30
    gold_rate: float = 0.0
    order: str = "random"
    seed: int = 0
    required: tuple[str, ...] = SCALES
    extra_tags: tuple[str, ...] = ()
    extra_fields: tuple[ExtraField, ...] = field(default_factory=tuple)

    @property
    def tags(self) -> tuple[str, ...]:
        return DEFAULT_TAGS + tuple(t for t in self.extra_tags if t not in DEFAULT_TAGS)

    def to_json(self) -> dict:
        data = asdict(self)
        data["required"] = list(self.required)
        data["extra_tags"] = list(self.extra_tags)
        data["extra_fields"] = [{"name": f.name, "choices": list(f.choices)} for f in self.extra_fields]
        return data


class ConfigError(ValueError):
    """Settings that cannot be used; the message names the setting."""


def config_from_settings(settings: dict | None) -> AnnotationConfig:
    """The dataset's `settings["annotation"]`, checked; defaults for what is absent."""
    raw = dict((settings or {}).get("annotation") or {})
    return config_parse(raw)


def config_parse(raw: dict) -> AnnotationConfig:
    base = AnnotationConfig()

    def integer(name: str, lo: int, hi: int) -> int:
        value = raw.get(name, getattr(base, name))
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"{name}: expected a whole number from {lo} to {hi}, got {value!r}")
        return value

    gold_rate = raw.get("gold_rate", base.gold_rate)
    if isinstance(gold_rate, bool) or not isinstance(gold_rate, (int, float)) or not 0 <= gold_rate <= 0.5:
        raise ConfigError(f"gold_rate: expected a fraction from 0 to 0.5, got {gold_rate!r}")
    order = raw.get("order", base.order)
    if order not in ORDERS:
        raise ConfigError(f"order: expected one of {', '.join(ORDERS)}, got {order!r}")
    for name in ("required", "extra_tags", "extra_fields"):
        if name in raw and not isinstance(raw[name], (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {raw[name]!r}")
    unknown_keys = sorted(set(raw) - set(AnnotationConfig.__dataclass_fields__))
    if unknown_keys:
        raise ConfigError(f"{unknown_keys[0]}: unknown setting; the settings are {', '.join(AnnotationConfig.__dataclass_fields__)}")
    required = tuple(raw.get("required", base.required))
    unknown = [r for r in required if r not in REQUIRABLE]
    if unknown:
        raise ConfigError(f"required: unknown field {unknown[0]!r}; choose from {', '.join(REQUIRABLE)}")
    extra_tags = tuple(str(t).strip() for t in raw.get("extra_tags", ()) if str(t).strip())
    bad = [t for t in extra_tags if not _NAME.match(t)]
    if bad:
        raise ConfigError(f"extra_tags: {bad[0]!r} is not a tag name (lower-case letters, digits, _)")
    extra_fields = []
    for spec in raw.get("extra_fields", ()):
        name = str(spec.get("name", "")) if isinstance(spec, dict) else ""
        raw_choices = spec.get("choices") if isinstance(spec, dict) else None
        if not isinstance(raw_choices, (list, tuple)):
            raise ConfigError(f"extra_fields: {name or spec!r} needs its choices as a list, got {raw_choices!r}")
        choices = tuple(str(c) for c in raw_choices)
        if not _NAME.match(name) or name in LABEL_FIELDS or name in ("external_id", "annotator"):
            raise ConfigError(f"extra_fields: {name!r} is not a free field name")
        if len(choices) < 2 or len(set(choices)) != len(choices):
            raise ConfigError(f"extra_fields: {name} needs at least two distinct choices")
        extra_fields.append(ExtraField(name=name, choices=choices))
    return AnnotationConfig(
        overlap=integer("overlap", 1, 5),
        reservation_minutes=integer("reservation_minutes", 1, 24 * 60),
        gold_rate=float(gold_rate),
        order=order,
        seed=integer("seed", 0, 2**31 - 1),
        required=required,
        extra_tags=extra_tags,
        extra_fields=tuple(extra_fields),
    )


class LabelInvalid(ValueError):
    """A label that breaks the rubric. `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _text(value) -> str:
    return "" if value is None else str(value)


def label_clean(values: dict, *, config: AnnotationConfig, original_answer: str, partial: bool = False) -> dict:
    """Check a label against the rubric and return the cleaned values (only LABEL_FIELDS). With
    `partial` (a draft) nothing is required. Raises LabelInvalid naming every bad field."""
    errors: dict[str, str] = {}
    out: dict = {}
    for name in sorted(set(values) - set(LABEL_FIELDS)):
        errors[name] = gettext("unknown field; the rubric has %(fields)s") % {"fields": ", ".join(LABEL_FIELDS)}
    for name in SCALES:
        value = values.get(name)
        if value in (None, ""):
            out[name] = None
            continue
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or not SCALE_MIN <= number <= SCALE_MAX or (isinstance(value, float) and not value.is_integer()):
            errors[name] = gettext("expected a whole number from %(lo)d to %(hi)d, got %(value)r") % {"lo": SCALE_MIN, "hi": SCALE_MAX, "value": value}
        out[name] = number
    difficulty = _text(values.get("difficulty")).strip()
    if difficulty and difficulty not in DIFFICULTIES:
        errors["difficulty"] = gettext("expected one of %(choices)s, got %(value)r") % {"choices": ", ".join(DIFFICULTIES), "value": difficulty}
    out["difficulty"] = difficulty
    verdict = _text(values.get("verdict")).strip().replace("-", "_").replace(" ", "_")
    if verdict and verdict not in VERDICTS:
        errors["verdict"] = gettext("expected one of %(choices)s, got %(value)r") % {"choices": ", ".join(VERDICTS), "value": values.get("verdict")}
    out["verdict"] = verdict
    tags = values.get("error_tags") or []
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[;,|]", tags)]
    if not isinstance(tags, (list, tuple)):
        errors["error_tags"] = gettext("expected a list of tags, got %(type)s") % {"type": type(tags).__name__}
        tags = []
    tags = [str(t).strip() for t in tags if str(t).strip()]
    known = config.tags
    bad = [t for t in tags if t not in known]
    if bad:
        errors["error_tags"] = gettext("unknown tag %(tag)r; this dataset's tags are %(tags)s") % {"tag": bad[0], "tags": ", ".join(known)}
    out["error_tags"] = sorted(set(tags), key=tags.index)
    corrected = _text(values.get("corrected_answer"))
    # A corrected answer equal to the original is no correction.
    out["corrected_answer"] = "" if corrected.strip() == original_answer.strip() else corrected
    out["comment"] = _text(values.get("comment")).strip()
    spent = values.get("time_spent_s")
    try:
        out["time_spent_s"] = max(0.0, min(float(spent or 0), 24 * 3600.0))
    except (TypeError, ValueError):
        errors["time_spent_s"] = gettext("expected seconds as a number, got %(value)r") % {"value": spent}
        out["time_spent_s"] = 0.0
    extra = values.get("extra") or {}
    if not isinstance(extra, dict):
        errors["extra"] = gettext("expected an object of the dataset's extra fields")
        extra = {}
    fields = {f.name: f for f in config.extra_fields}
    out["extra"] = {}
    for key, value in extra.items():
        if key not in fields:
            errors[f"extra.{key}"] = (gettext("this dataset has no such field; it has %(fields)s") % {"fields": ", ".join(fields)}
                                      if fields else gettext("this dataset has no extra fields"))
            continue
        text = _text(value).strip()
        if text == "":
            continue
        if text not in fields[key].choices:
            errors[f"extra.{key}"] = gettext("expected one of %(choices)s, got %(value)r") % {"choices": ", ".join(fields[key].choices), "value": value}
        out["extra"][key] = text
    if not partial:
        if not out["verdict"] and "verdict" not in errors:
            errors["verdict"] = gettext("required: accept, needs_fix or reject")
        for name in config.required:
            if name in errors:
                continue
            if out.get(name) in (None, "", []):
                errors[name] = gettext("required by this dataset")
        if out["verdict"] == "needs_fix" and not out["corrected_answer"].strip() and "corrected_answer" not in errors:
            errors["corrected_answer"] = gettext("required when the verdict is needs_fix: edit the answer")
    if errors:
        raise LabelInvalid(errors)
    return out
