"""Labels made in another tool, moved into a dataset: `labels_import` (used by `manage.py import_labels`).

A file is CSV (a header row) or JSON Lines (one object per line). Columns:

- `external_id` (required): the sample's external id in the dataset;
- `annotator` (required): a username; a missing user is created with an unusable password, and a
  user who is not a member becomes an annotator of the dataset;
- rubric fields, all optional: `accuracy`, `completeness`, `conciseness` (1-5), `difficulty`
  (easy/medium/hard), `verdict` (accept/needs_fix/reject), `error_tags` (a JSON list, or tags
  separated by `;` or `|`), `corrected_answer`, `comment`, `time_spent_s`;
- the dataset's extra nominal fields by name (`preference`, ...);
- `created_at` (optional, ISO 8601): when the label was made; else now.

Every row is checked with rubric.label_clean(partial=True) (another tool's labels need not meet this
dataset's required fields) and needs at least one rubric value. Any error, and nothing is written:
no users, no members, no settings, no labels. Errors read `PATH:LINE: field: message`, up to 100.

On success each row becomes a submitted Assignment and a Label (version 1, source "import"), and the
samples' label_count and status follow the rule of assignment_submit: `in_review` once a sample has
`k` labels, else `annotating`; gold samples keep their status. Lookups are batched and rows are
written with bulk_create, so the cost does not grow with queries per row."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from reviews import routing
from reviews.models import StatusChange

from .. import rubric
from ..models import Assignment, Dataset, GoldLabel, Label, Membership, Sample
from .annotation import OPEN, annotation_settings_set, gold_score

__all__ = ["LabelImportError", "LabelImportResult", "field_spec_parse", "labels_import"]

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonlines": "jsonl"}
KEY_COLUMNS = ("external_id", "annotator")
RUBRIC_COLUMNS = rubric.SCALES + ("difficulty", "verdict", "error_tags", "corrected_answer", "comment", "time_spent_s")
OPTIONAL_COLUMNS = ("created_at",)
# What counts as "a rubric value" (time spent alone is not a label).
VALUE_FIELDS = rubric.SCALES + ("difficulty", "verdict", "error_tags", "corrected_answer", "comment")
_CHUNK = 900  # ids per IN (...) lookup: well under SQLite's limit on query parameters


class LabelImportError(Exception):
    """The file cannot be imported; `errors` lists what is wrong (`PATH:LINE: field: message`, at
    most SFTDESK_IMPORT_MAX_ERRORS of them, first lines first). `total` counts all that were found.
    Nothing was written."""

    def __init__(self, errors: list[str], *, total: int | None = None):
        self.errors = errors
        self.total = len(errors) if total is None else total
        super().__init__("\n".join(errors))


@dataclass
class LabelImportResult:
    labels: int
    samples: int
    new_users: int
    new_members: int
    fields_added: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        text = f"{self.labels} labels imported for {self.samples} samples ({self.new_users} new users)"
        if self.dry_run:
            return f"dry run: {text.replace('imported', 'would be imported', 1)}; nothing was written"
        return text


def field_spec_parse(text: str) -> tuple[str, list[str]]:
    """'preference=0,1,2' -> ('preference', ['0', '1', '2']). ValueError says what is wrong."""
    name, sep, rest = text.partition("=")
    choices = [c.strip() for c in rest.split(",") if c.strip()]
    if not sep or not name.strip() or not choices:
        raise ValueError(f"write NAME=CHOICE,CHOICE,... (got {text!r})")
    return name.strip(), choices


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass
class _Raw:
    line: int
    values: dict


@dataclass
class _Parsed:
    rows: list[_Raw]
    header: list[str] | None  # CSV: the columns (line 1); JSON Lines: None (keys per row)
    errors: list[tuple[int, str, str]]  # (line, field, message)


def _read_csv(fp: io.TextIOBase) -> _Parsed:
    reader = csv.reader(fp)
    errors: list[tuple[int, str, str]] = []
    rows: list[_Raw] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return _Parsed([], None, [(1, "header", f"not readable as CSV: {exc}")])
    if header is None:
        return _Parsed([], [], [])
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            errors.append((1, name, "this column appears twice"))
        seen.add(name)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((start, "row", f"not readable as CSV: {exc}"))
            break
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            errors.append((start, "row", f"{len(cells)} cells, but the header has {len(header)} columns"))
            continue
        rows.append(_Raw(start, dict(zip(header, cells, strict=False))))
    return _Parsed(rows, header, errors)


def _read_jsonl(fp: io.BufferedIOBase) -> _Parsed:
    errors: list[tuple[int, str, str]] = []
    rows: list[_Raw] = []
    for n, raw in enumerate(fp, start=1):
        try:
            text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            errors.append((n, "line", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            errors.append((n, "json", f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(record, dict):
            errors.append((n, "json", f"expected an object, got {type(record).__name__}"))
            continue
        rows.append(_Raw(n, record))
    return _Parsed(rows, None, errors)


def _read(path: Path, fmt: str) -> _Parsed:
    if fmt == "csv":
        try:
            with open(path, encoding="utf-8-sig", newline="") as fp:
                return _read_csv(fp)
        except UnicodeDecodeError as exc:
            return _Parsed([], None, [(0, "file", f"not UTF-8 text ({exc.reason} at byte {exc.start})")])
    with open(path, "rb") as fp:
        return _read_jsonl(fp)


# ---------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------

def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _created_at(value) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    moment = datetime.fromisoformat(text)  # ValueError for what is not ISO 8601
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _tags(value):
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list: {exc.msg} at column {exc.colno}")
    return value


def _merge_fields(config: rubric.AnnotationConfig, fields: Mapping[str, Sequence[str]]) -> tuple[rubric.AnnotationConfig, list[str], list[str]]:
    """The config with the --field specs added: (config, names added or widened, errors)."""
    errors: list[str] = []
    changed: list[str] = []
    specs = {f.name: list(f.choices) for f in config.extra_fields}
    for name, choices in fields.items():
        choices = [str(c).strip() for c in choices if str(c).strip()]
        old = specs.get(name)
        if old == choices:
            continue
        if old is not None and not set(old) <= set(choices):
            missing = ", ".join(c for c in old if c not in choices)
            errors.append(f"--field {name}: the dataset already has this field with choices {', '.join(old)}; "
                          f"the new choices must keep them all (missing: {missing})")
            continue
        specs[name] = choices
        changed.append(name)
    if errors or not changed:
        return config, [], errors
    raw = config.to_json()
    raw["extra_fields"] = [{"name": n, "choices": c} for n, c in specs.items()]
    try:
        return rubric.config_parse(raw), changed, []
    except rubric.ConfigError as exc:
        return config, [], [f"--field {', '.join(changed)}: {exc}"]


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass
class _Row:
    line: int
    external_id: str
    username: str
    values: dict
    created_at: datetime | None
    sample_id: int | None = None
    cleaned: dict | None = None


def _format(path: str, line: int, name: str, message: str) -> str:
    return f"{path}:{line}: {name}: {message}" if line else f"{path}: {name}: {message}"


def labels_import(
    *,
    dataset: Dataset,
    path: str | Path,
    fmt: str | None = None,
    fields: Mapping[str, Sequence[str]] | None = None,
    dry_run: bool = False,
) -> LabelImportResult:
    """Import labels from `path` into `dataset`, all or nothing (see the module docstring). `fields`
    ({"preference": ["0", "1", "2"]}) adds extra nominal fields to the dataset's annotation settings
    in the same transaction. `dry_run` checks everything and writes nothing. Raises LabelImportError."""
    shown = str(path)
    path = Path(path)
    if fmt is None:
        fmt = EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise LabelImportError([f"{shown}: cannot tell the format from the name; pass --format csv or --format jsonl"])
    if fmt not in FORMATS:
        raise LabelImportError([f"{shown}: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"])
    if not path.is_file():
        raise LabelImportError([f"{shown}: no such file"])
    size, cap = path.stat().st_size, settings.SFTDESK_IMPORT_MAX_BYTES
    if size > cap:
        raise LabelImportError([f"{shown}: {size:,} bytes, over the import limit of {cap:,} bytes (SFTDESK_IMPORT_MAX_BYTES)"])
    parsed = _read(path, fmt)
    max_errors = settings.SFTDESK_IMPORT_MAX_ERRORS

    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)  # settings and counts change together
        base = rubric.config_from_settings(locked.settings)
        config, added, field_errors = _merge_fields(base, fields or {})
        errors: list[tuple[int, str, str]] = list(parsed.errors)
        rows = _check_rows(parsed, config, errors)
        if not rows and not errors and not field_errors:
            errors.append((0, "file", "no labels in the file"))
        users, new_names, member_ids = _lookup_people(rows, locked, errors)
        _match_samples(rows, locked, errors)
        _clean(rows, locked, config, errors)
        _check_existing(rows, locked, users, errors)
        if errors or field_errors:
            errors.sort(key=lambda e: e[0])
            texts = field_errors + [_format(shown, *e) for e in errors]
            raise LabelImportError(texts[:max_errors], total=len(texts))

        samples = {r.sample_id for r in rows}
        new_members = len({r.username for r in rows if r.username in new_names or users[r.username] not in member_ids})
        result = LabelImportResult(
            labels=len(rows), samples=len(samples), new_users=len(new_names), new_members=new_members,
            fields_added=added, dry_run=dry_run,
        )
        if dry_run:
            return result
        if added:
            annotation_settings_set(actor=None, dataset=locked, values=config.to_json())
            dataset.settings = locked.settings
        _write(rows, locked, config, users, new_names, member_ids)
    return result


def _check_rows(parsed: _Parsed, config: rubric.AnnotationConfig, errors: list) -> list[_Row]:
    """Columns, keys, dates and duplicate pairs in the file; the rubric values are checked later
    (they need the sample's answer)."""
    extra_names = [f.name for f in config.extra_fields]
    known = set(KEY_COLUMNS + RUBRIC_COLUMNS + OPTIONAL_COLUMNS) | set(extra_names)
    hint = ", ".join(KEY_COLUMNS + RUBRIC_COLUMNS + tuple(extra_names) + OPTIONAL_COLUMNS)
    if parsed.header is not None:
        for name in parsed.header:
            if name not in known:
                errors.append((1, name or "(empty)", f"unknown column; the columns are {hint}"))
        for name in KEY_COLUMNS:
            if parsed.header and name not in parsed.header:
                errors.append((1, name, "required column is missing"))
        if any(e[0] == 1 for e in errors):
            return []
    rows: list[_Row] = []
    first_line: dict[tuple[str, str], int] = {}
    for raw in parsed.rows:
        values = raw.values
        bad = False
        if parsed.header is None:
            for name in values:
                if name not in known:
                    errors.append((raw.line, name, f"unknown field; the fields are {hint}"))
                    bad = True
        external_id, username = _text(values.get("external_id")), _text(values.get("annotator"))
        for name, value in (("external_id", external_id), ("annotator", username)):
            if not value:
                errors.append((raw.line, name, "required; it is empty or missing"))
                bad = True
        try:
            created_at = _created_at(values.get("created_at"))
        except (ValueError, TypeError):
            errors.append((raw.line, "created_at", f"expected an ISO 8601 date and time, got {values.get('created_at')!r}"))
            created_at, bad = None, True
        if external_id and username:
            pair = (external_id, username)
            if pair in first_line:
                errors.append((raw.line, "annotator", f"{username} labels sample {external_id} twice in this file (first on line {first_line[pair]})"))
                bad = True
            else:
                first_line[pair] = raw.line
        if bad:
            continue
        label_values = {k: values.get(k) for k in RUBRIC_COLUMNS if k in values}
        label_values["extra"] = {k: values[k] for k in extra_names if k in values}
        rows.append(_Row(raw.line, external_id, username, label_values, created_at))
    return rows


def _lookup_people(rows: list[_Row], dataset: Dataset, errors: list) -> tuple[dict, set[str], set[int]]:
    """({username: user id} of existing users, names of users to create, ids of existing members)."""
    User = get_user_model()
    name_field = User.USERNAME_FIELD
    names = sorted({r.username for r in rows})
    users: dict[str, int] = {}
    for chunk in _chunks(names):
        users.update(User.objects.filter(**{f"{name_field}__in": chunk}).values_list(name_field, "pk"))
    new_names = {n for n in names if n not in users}
    model_field = User._meta.get_field(name_field)
    invalid: dict[str, str] = {}
    for name in new_names:
        try:
            model_field.run_validators(name)
        except ValidationError as exc:
            invalid[name] = " ".join(exc.messages)
    if invalid:
        for r in rows:
            if r.username in invalid:
                errors.append((r.line, "annotator", f"{r.username!r} cannot be a new username: {invalid[r.username]}"))
    ids = list(users.values())
    member_ids: set[int] = set()
    for chunk in _chunks(ids):
        member_ids.update(Membership.objects.filter(dataset=dataset, user_id__in=chunk).values_list("user_id", flat=True))
    return users, new_names, member_ids


def _match_samples(rows: list[_Row], dataset: Dataset, errors: list) -> None:
    ids = sorted({r.external_id for r in rows})
    found: dict[str, list[int]] = defaultdict(list)
    for chunk in _chunks(ids):
        for pk, ext in Sample.objects.filter(dataset=dataset, external_id__in=chunk).order_by().values_list("pk", "external_id"):
            found[ext].append(pk)
    for r in rows:
        matches = found.get(r.external_id, [])
        if not matches:
            errors.append((r.line, "external_id", f"no sample with external_id {r.external_id!r} in dataset {dataset.slug}"))
        elif len(matches) > 1:
            errors.append((r.line, "external_id", f"{len(matches)} samples in dataset {dataset.slug} have external_id {r.external_id!r}"))
        else:
            r.sample_id = matches[0]


def _clean(rows: list[_Row], dataset: Dataset, config: rubric.AnnotationConfig, errors: list) -> None:
    """rubric.label_clean on every row whose sample was found. The original answer (a corrected
    answer equal to it is no correction) is loaded only for rows that carry a corrected answer."""
    need_answer = sorted({r.sample_id for r in rows if r.sample_id and _text(r.values.get("corrected_answer"))})
    answers: dict[int, str] = {}
    for chunk in _chunks(need_answer):
        for sample in Sample.objects.filter(dataset=dataset, pk__in=chunk).only("pk", "messages"):
            answers[sample.pk] = sample.answer
    for r in rows:
        if r.sample_id is None:
            continue
        values = dict(r.values)
        try:
            if "error_tags" in values:
                values["error_tags"] = _tags(values["error_tags"])
        except ValueError as exc:
            errors.append((r.line, "error_tags", str(exc)))
            continue
        try:
            cleaned = rubric.label_clean(values, config=config, original_answer=answers.get(r.sample_id, ""), partial=True)
        except rubric.LabelInvalid as exc:
            for key, message in exc.errors.items():
                errors.append((r.line, key.removeprefix("extra."), message))
            continue
        if not any(cleaned.get(k) not in (None, "", []) for k in VALUE_FIELDS) and not cleaned["extra"]:
            names = ", ".join(VALUE_FIELDS + tuple(f.name for f in config.extra_fields))
            errors.append((r.line, "row", f"no rubric value; give at least one of {names}"))
            continue
        r.cleaned = cleaned


def _check_existing(rows: list[_Row], dataset: Dataset, users: dict[str, int], errors: list) -> None:
    """A (sample, annotator) pair that already has a label in the dataset is an error."""
    user_ids = sorted({users[r.username] for r in rows if r.username in users})
    sample_ids = sorted({r.sample_id for r in rows if r.sample_id and r.username in users})
    if not user_ids or not sample_ids:
        return
    labelled: set[tuple[int, int]] = set()
    for chunk in _chunks(sample_ids):
        labelled.update(
            Label.objects.filter(dataset=dataset, sample_id__in=chunk, annotator_id__in=user_ids)
            .order_by().values_list("sample_id", "annotator_id").distinct()
        )
    for r in rows:
        if r.sample_id and (r.sample_id, users.get(r.username)) in labelled:
            errors.append((r.line, "annotator", f"{r.username} already has a label for sample {r.external_id} in this dataset"))


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def _write(rows: list[_Row], dataset: Dataset, config: rubric.AnnotationConfig, users: dict[str, int],
           new_names: set[str], member_ids: set[int]) -> None:
    User = get_user_model()
    name_field = User.USERNAME_FIELD
    if new_names:
        fresh = []
        for name in sorted(new_names):
            user = User(**{name_field: name})
            user.set_unusable_password()
            fresh.append(user)
        User.objects.bulk_create(fresh, batch_size=500)
        names = sorted(new_names)
        for chunk in _chunks(names):
            users.update(User.objects.filter(**{f"{name_field}__in": chunk}).values_list(name_field, "pk"))
    joining = sorted({users[r.username] for r in rows} - member_ids)
    Membership.objects.bulk_create(
        [Membership(dataset=dataset, user_id=uid, role=Membership.Role.ANNOTATOR) for uid in joining], batch_size=500
    )

    sample_ids = sorted({r.sample_id for r in rows})
    samples: dict[int, Sample] = {}
    gold: dict[int, dict] = {}
    existing: dict[tuple[int, int], Assignment] = {}
    user_ids = sorted(set(users[r.username] for r in rows))
    for chunk in _chunks(sample_ids):
        # Locked like assignment_submit locks a sample before it counts a label.
        for s in Sample.objects.select_for_update().filter(pk__in=chunk).order_by("pk").only("pk", "status", "label_count"):
            samples[s.pk] = s
        gold.update(GoldLabel.objects.filter(sample_id__in=chunk).values_list("sample_id", "values"))
        for a in Assignment.objects.filter(dataset=dataset, sample_id__in=chunk, annotator_id__in=user_ids):
            existing[(a.sample_id, a.annotator_id)] = a

    now = timezone.now()
    new_assignments: list[Assignment] = []
    reused: list[Assignment] = []
    by_pair: dict[tuple[int, int], Assignment] = {}
    for r in rows:
        uid, when = users[r.username], r.created_at or now
        pair = (r.sample_id, uid)
        assignment = existing.get(pair)
        if assignment is not None:  # reserved, skipped or expired before: now submitted, its draft kept
            assignment.status, assignment.finished_at = Assignment.Status.SUBMITTED, when
            assignment.is_gold = assignment.is_gold or r.sample_id in gold
            reused.append(assignment)
        else:
            assignment = Assignment(
                dataset=dataset, sample_id=r.sample_id, annotator_id=uid, status=Assignment.Status.SUBMITTED,
                is_gold=r.sample_id in gold, reserved_at=when, expires_at=when, finished_at=when,
            )
            new_assignments.append(assignment)
        by_pair[pair] = assignment
    Assignment.objects.bulk_create(new_assignments, batch_size=1000)
    Assignment.objects.bulk_update(reused, ["status", "finished_at", "is_gold"], batch_size=1000)
    if any(a.pk is None for a in new_assignments):  # a database that does not return ids from bulk inserts
        for chunk in _chunks(sample_ids):
            for a in Assignment.objects.filter(dataset=dataset, sample_id__in=chunk, annotator_id__in=user_ids).only("pk", "sample_id", "annotator_id"):
                if (a.sample_id, a.annotator_id) in by_pair:
                    by_pair[(a.sample_id, a.annotator_id)].pk = a.pk

    labels = []
    for r in rows:
        uid = users[r.username]
        labels.append(Label(
            assignment_id=by_pair[(r.sample_id, uid)].pk, dataset=dataset, sample_id=r.sample_id, annotator_id=uid,
            version=1, is_current=True, source=Label.Source.IMPORT, created_at=r.created_at or now,
            gold_score=gold_score(r.cleaned, gold[r.sample_id]) if r.sample_id in gold else None, **r.cleaned,
        ))
    Label.objects.bulk_create(labels, batch_size=1000)

    added: dict[int, int] = defaultdict(int)
    for r in rows:
        added[r.sample_id] += 1
    # One UPDATE per distinct (label_count, status) outcome, not per sample (bulk_update's CASE per
    # row is slow); the rows are locked above, so the counts read there are current.
    outcome: dict[tuple[int, str], list[int]] = defaultdict(list)
    moves: list[tuple[int, str, str]] = []
    for sid, n in added.items():
        sample = samples[sid]
        count, status = sample.label_count + n, sample.status
        if sid not in gold and status in OPEN:  # the rule of assignment_submit
            status = Sample.Status.IN_REVIEW if count >= config.overlap else Sample.Status.ANNOTATING
        outcome[(count, status)].append(sid)
        moves.append((sid, sample.status, status))
    for (count, status), ids in outcome.items():
        for chunk in _chunks(ids):
            Sample.objects.filter(pk__in=chunk).update(label_count=count, status=status)
    routing.status_changes_record(dataset=dataset, changes=moves, cause=StatusChange.Cause.IMPORT, at=now)
    # Routed like a sample that gets its k-th label in the browser (new labels on one already in review re-route it).
    routing.samples_route(dataset=dataset, sample_ids=[sid for sid, _was, st in moves if st == Sample.Status.IN_REVIEW], now=now)
