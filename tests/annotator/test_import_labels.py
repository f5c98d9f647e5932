"""import_labels: labels from other tools (CSV, JSON Lines) moved into a dataset, all or nothing."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator import services
from annotator.models import Assignment, Dataset, GoldLabel, Label, Membership, Sample
from scoring.metrics.text import content_hash
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_labels", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args, match: str):
    err = StringIO()
    with pytest.raises(CommandError, match=match):
        call_command("import_labels", *args, stdout=StringIO(), stderr=err)
    return err.getvalue().splitlines()


def snapshot() -> dict:
    """Every table's row count, plus the sample and dataset fields an import may change."""
    counts = {m._meta.label: m._default_manager.count() for m in apps.get_models()}
    samples = list(Sample.objects.order_by("pk").values_list("pk", "status", "label_count"))
    settings = list(Dataset.objects.order_by("pk").values_list("pk", "settings"))
    return {"counts": counts, "samples": samples, "settings": settings}


def write_csv(tmp_path, rows: list[list], name="labels.csv"):
    import csv

    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as fp:
        csv.writer(fp).writerows(rows)
    return path


def write_jsonl(tmp_path, records: list, name="labels.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def samples(dataset):
    return {ext: SampleFactory(dataset=dataset, external_id=ext) for ext in ("e1", "e2", "e3")}


def test_csv_import_creates_assignments_labels_users_and_members(tmp_path, dataset, owner, samples):
    # given: a known non-member, the owner, and a user who does not exist yet; overlap k = 2 (default)
    ann = UserFactory(username="ann")
    path = write_csv(tmp_path, [
        ["external_id", "annotator", "accuracy", "completeness", "conciseness", "difficulty", "verdict", "error_tags", "comment", "time_spent_s", "created_at"],
        ["e1", "ann", "4", "5", "3", "hard", "needs fix", "factual_error;incomplete", " too long ", "12.5", "2024-03-01T10:00:00Z"],
        ["e1", "newbie", "", "", "", "", "reject", '["unsafe"]', "", "", ""],
        ["e2", "olga", "2", "", "", "", "", "", "", "", ""],
    ])
    # when
    out, err = run("ds", str(path))
    # then
    assert out.strip() == "3 labels imported for 2 samples (1 new users)"
    assert err == ""
    newbie = User.objects.get(username="newbie")
    assert not newbie.has_usable_password()
    roles = dict(Membership.objects.filter(dataset=dataset).values_list("user__username", "role"))
    assert roles == {"olga": "owner", "ann": "annotator", "newbie": "annotator"}

    label = Label.objects.get(sample=samples["e1"], annotator=ann)
    assert (label.accuracy, label.completeness, label.conciseness, label.difficulty, label.verdict) == (4, 5, 3, "hard", "needs_fix")
    assert (label.error_tags, label.comment, label.time_spent_s) == (["factual_error", "incomplete"], "too long", 12.5)
    assert (label.version, label.is_current, label.source, label.extra, label.gold_score) == (1, True, "import", {}, None)
    assert label.created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assignment = label.assignment
    assert (assignment.status, assignment.annotator, assignment.sample, assignment.finished_at) == ("submitted", ann, samples["e1"], label.created_at)
    assert Label.objects.get(annotator=newbie).error_tags == ["unsafe"]
    assert Label.objects.get(annotator=owner).verdict == ""  # partial: another tool's label need not have a verdict

    assert list(Sample.objects.order_by("external_id").values_list("external_id", "label_count", "status")) == [
        ("e1", 2, "in_review"), ("e2", 1, "annotating"), ("e3", 0, "new"),
    ]
    assert Assignment.objects.count() == 3 and Label.objects.count() == 3


def test_jsonl_import_reads_typed_values_and_extra_fields(tmp_path, dataset, samples):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 1, "extra_fields": [{"name": "preference", "choices": ["0", "1", "2"]}]})
    path = write_jsonl(tmp_path, [
        {"external_id": "e1", "annotator": "ann", "accuracy": 5, "error_tags": ["duplicate", "off_topic"], "preference": 2, "created_at": "2024-05-06T07:08:09+02:00"},
        "",
        {"external_id": "e2", "annotator": "ann", "preference": "0", "corrected_answer": "Better.", "time_spent_s": 3},
    ])
    out, _ = run("ds", str(path))
    assert out.strip() == "2 labels imported for 2 samples (1 new users)"
    first, second = Label.objects.order_by("sample__external_id")
    assert (first.accuracy, first.error_tags, first.extra) == (5, ["duplicate", "off_topic"], {"preference": "2"})
    assert first.created_at.isoformat() == "2024-05-06T05:08:09+00:00"
    assert (second.extra, second.corrected_answer, second.time_spent_s) == ({"preference": "0"}, "Better.", 3.0)
    assert set(Sample.objects.filter(label_count=1).values_list("status", flat=True)) == {"in_review"}


def test_format_comes_from_the_extension_unless_given(tmp_path, dataset, samples):
    path = tmp_path / "labels.txt"
    path.write_text(json.dumps({"external_id": "e1", "annotator": "ann", "verdict": "accept"}) + "\n")
    before = snapshot()
    lines = run_failing("ds", str(path), match="import failed with 1 error")
    assert lines == [f"{path}: cannot tell the format from the name; pass --format csv or --format jsonl"]
    assert snapshot() == before
    out, _ = run("ds", str(path), "--format", "jsonl")
    assert out.strip() == "1 labels imported for 1 samples (1 new users)"


def test_an_unknown_column_is_an_error_at_line_1_and_nothing_is_written(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "annotator", "verdict", "score"], ["e1", "ann", "accept", "9"]])
    before = snapshot()
    lines = run_failing("ds", str(path), match="import failed with 1 error")
    assert lines == [
        f"{path}:1: score: unknown column; the columns are external_id, annotator, accuracy, completeness, conciseness, "
        "difficulty, verdict, error_tags, corrected_answer, comment, time_spent_s, created_at"
    ]
    assert snapshot() == before


def test_a_missing_key_column_is_an_error_at_line_1(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "verdict"], ["e1", "accept"]])
    lines = run_failing("ds", str(path), match="import failed with 1 error")
    assert lines == [f"{path}:1: annotator: required column is missing"]


def test_every_row_error_is_reported_with_its_line_and_nothing_is_written(tmp_path, dataset, owner, samples):
    # given: olga already labelled e3 (through the annotation engine)
    assignment = services.assignment_next(user=owner, dataset=dataset)
    services.assignment_submit(user=owner, dataset=dataset, assignment_id=assignment.pk, values={"verdict": "accept", "accuracy": 5, "completeness": 5, "conciseness": 5})
    labelled = assignment.sample.external_id
    path = write_csv(tmp_path, [
        ["external_id", "annotator", "accuracy", "difficulty", "verdict", "error_tags", "comment", "created_at"],
        ["e1", "ann", "4", "", "accept", "", "", ""],                     # 2: fine
        ["nope", "ann", "4", "", "", "", "", ""],                         # 3: unknown external id
        ["e2", "ann", "7", "", "", "", "", ""],                           # 4: out of range
        ["e2", "bob", "", "", "maybe", "", "", ""],                       # 5: bad verdict
        ["e1", "ann", "3", "", "", "", "", ""],                           # 6: duplicate pair in the file
        [labelled, "olga", "3", "", "", "", "", ""],                      # 7: already labelled in the dataset
        ["e3", "cat", "", "", "", "", "", ""],                            # 8: no rubric value
        ["e3", "dan", "2", "", "", "", "", "yesterday"],                  # 9: bad date
        ["e3", "", "2", "", "", "", "", ""],                              # 10: no annotator
        ["e2", "eve", "", "", "", "wrong_tag|unsafe", "", ""],            # 11: unknown tag
        ["e2", "fay", "", "", "", '["unsafe"', "", ""],                   # 12: broken JSON list
        ["e2", "gus", "", "extreme", "", "", "", ""],                     # 13: bad difficulty
        ["e2", "bad name!", "1", "", "", "", "", ""],                     # 14: not a username
        ["e2", "hal", "1", "", "", "", "", "", "extra cell"],             # 15: too many cells
    ])
    before = snapshot()
    lines = run_failing("ds", str(path), match=r"import failed with 13 error\(s\); nothing was written")
    p = str(path)
    expected = [
        f"{p}:3: external_id: no sample with external_id 'nope' in dataset ds",
        f"{p}:4: accuracy: expected a whole number from 1 to 5, got '7'",
        f"{p}:5: verdict: expected one of accept, needs_fix, reject, got 'maybe'",
        f"{p}:6: annotator: ann labels sample e1 twice in this file (first on line 2)",
        f"{p}:7: annotator: olga already has a label for sample {labelled} in this dataset",
        f"{p}:8: row: no rubric value; give at least one of accuracy, completeness, conciseness, difficulty, verdict, error_tags, corrected_answer, comment",
        f"{p}:9: created_at: expected an ISO 8601 date and time, got 'yesterday'",
        f"{p}:10: annotator: required; it is empty or missing",
        f"{p}:11: error_tags: unknown tag 'wrong_tag'; this dataset's tags are factual_error, incomplete, hallucination, instruction_unclear, wrong_format, off_topic, duplicate, unsafe, wrong_label",
        f"{p}:12: error_tags: not a JSON list: Expecting ',' delimiter at column 10",
        f"{p}:13: difficulty: expected one of easy, medium, hard, got 'extreme'",
        f"{p}:14: annotator: 'bad name!' cannot be a new username: Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
        f"{p}:15: row: 9 cells, but the header has 8 columns",
    ]
    assert lines == expected  # in line order; line 2 is fine, and line 6's own values are fine (the pair is the error)
    # nothing was written: no users (ann, bob, cat ... would be new), members, assignments, labels, counts
    assert snapshot() == before
    assert not User.objects.filter(username__in=["ann", "bob", "cat"]).exists()


def test_jsonl_errors_name_the_line(tmp_path, dataset, samples):
    path = write_jsonl(tmp_path, [
        {"external_id": "e1", "annotator": "ann", "verdict": "accept"},
        '{"external_id": "e2", "annotator": "ann"',
        "[1, 2]",
        {"external_id": "e2", "annotator": "ann", "verdict": "accept", "stars": 5},
        {"external_id": "e3", "annotator": "ann", "preference": "1"},
    ])
    before = snapshot()
    lines = run_failing("ds", str(path), match="import failed with 4 error")
    hint = ("external_id, annotator, accuracy, completeness, conciseness, difficulty, verdict, error_tags, corrected_answer, "
            "comment, time_spent_s, created_at")
    assert lines == [
        f"{path}:2: json: invalid JSON: Expecting ',' delimiter at column 41",
        f"{path}:3: json: expected an object, got list",
        f"{path}:4: stars: unknown field; the fields are {hint}",
        f"{path}:5: preference: unknown field; the fields are {hint}",
    ]
    assert snapshot() == before


def test_field_adds_an_extra_nominal_field_in_the_same_transaction(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "annotator", "preference"], ["e1", "a1", "2"], ["e2", "a1", "0"]])
    out, err = run("ds", str(path), "--field", "preference=0,1,2")
    assert out.strip() == "2 labels imported for 2 samples (1 new users)"
    assert err.strip() == "annotation settings of ds: extra field(s) preference added"
    dataset.refresh_from_db()
    assert dataset.settings["annotation"]["extra_fields"] == [{"name": "preference", "choices": ["0", "1", "2"]}]
    assert sorted(Label.objects.values_list("extra", flat=True), key=str) == [{"preference": "0"}, {"preference": "2"}]


def test_field_is_not_added_when_the_file_has_errors(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "annotator", "preference"], ["e1", "a1", "3"]])
    before = snapshot()
    lines = run_failing("ds", str(path), "--field", "preference=0,1,2", match="import failed with 1 error")
    assert lines == [f"{path}:2: preference: expected one of 0, 1, 2, got '3'"]
    assert snapshot() == before


def test_field_cannot_drop_choices_or_take_a_rubric_name(tmp_path, dataset, samples):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"extra_fields": [{"name": "preference", "choices": ["0", "1", "2"]}]})
    path = write_csv(tmp_path, [["external_id", "annotator", "preference"], ["e1", "a1", "1"]])
    before = snapshot()
    lines = run_failing("ds", str(path), "--field", "preference=1,2", match="import failed with 1 error")
    assert lines == ["--field preference: the dataset already has this field with choices 0, 1, 2; the new choices must keep them all (missing: 0)"]
    lines = run_failing("ds", str(path), "--field", "verdict=a,b", match="import failed with 1 error")
    assert lines == ["--field verdict: extra_fields: 'verdict' is not a free field name"]
    with pytest.raises(CommandError, match=r"--field: write NAME=CHOICE,CHOICE,... \(got 'preference'\)"):
        run("ds", str(path), "--field", "preference")
    assert snapshot() == before
    # the same choices again, or more of them, is fine
    out, _ = run("ds", str(path), "--field", "preference=0,1,2,3")
    assert out.strip() == "1 labels imported for 1 samples (1 new users)"
    dataset.refresh_from_db()
    assert dataset.settings["annotation"]["extra_fields"] == [{"name": "preference", "choices": ["0", "1", "2", "3"]}]


def test_dry_run_checks_everything_and_writes_nothing(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "annotator", "preference"], ["e1", "a1", "2"], ["e1", "a2", "1"]])
    before = snapshot()
    out, err = run("ds", str(path), "--field", "preference=0,1,2", "--dry-run")
    assert out.strip() == "dry run: 2 labels would be imported for 1 samples (2 new users); nothing was written"
    assert err == ""
    assert snapshot() == before


def test_gold_samples_keep_their_status_and_imported_labels_get_a_gold_score(tmp_path, dataset, samples):
    services.gold_set(actor=None, dataset=dataset, sample=samples["e1"], values={"verdict": "accept", "accuracy": 5})
    path = write_csv(tmp_path, [["external_id", "annotator", "verdict", "accuracy"], ["e1", "a1", "accept", "4"], ["e1", "a2", "reject", "1"], ["e1", "a3", "accept", "1"]])
    run("ds", str(path))
    sample = Sample.objects.get(pk=samples["e1"].pk)
    assert (sample.status, sample.label_count) == ("new", 3)
    assert dict(Label.objects.values_list("annotator__username", "gold_score")) == {"a1": 1.0, "a2": 0.0, "a3": 0.5}
    assert set(Assignment.objects.values_list("is_gold", flat=True)) == {True}


def test_an_earlier_skip_or_reservation_is_turned_into_the_imported_label(tmp_path, dataset, samples):
    ann = UserFactory(username="ann")
    MembershipFactory(user=ann, dataset=dataset, role=Membership.Role.ANNOTATOR)
    first = services.assignment_next(user=ann, dataset=dataset)
    services.assignment_skip(user=ann, dataset=dataset, assignment_id=first.pk, reason="later")
    path = write_csv(tmp_path, [["external_id", "annotator", "verdict"], [first.sample.external_id, "ann", "accept"]])
    out, _ = run("ds", str(path))
    assert out.strip() == "1 labels imported for 1 samples (0 new users)"
    first.refresh_from_db()
    assert (first.status, first.skip_reason) == ("submitted", "later")
    assert Label.objects.get().assignment_id == first.pk
    assert Assignment.objects.count() == 1


def test_at_most_100_errors_are_listed(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "annotator", "verdict"]] + [[f"x{i}", "ann", "accept"] for i in range(150)])
    lines = run_failing("ds", str(path), match=r"import failed with 150 error\(s\) \(first 100 shown\)")
    assert len(lines) == 100
    assert lines[0] == f"{path}:2: external_id: no sample with external_id 'x0' in dataset ds"
    assert lines[-1] == f"{path}:101: external_id: no sample with external_id 'x99' in dataset ds"


def test_unknown_dataset_missing_file_and_empty_file(tmp_path, dataset):
    with pytest.raises(CommandError, match="no dataset 'nope'"):
        run("nope", str(tmp_path / "x.csv"))
    lines = run_failing("ds", str(tmp_path / "x.csv"), match="import failed with 1 error")
    assert lines == [f"{tmp_path / 'x.csv'}: no such file"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert run_failing("ds", str(empty), match="import failed with 1 error") == [f"{empty}: file: no labels in the file"]


def test_the_service_raises_label_import_error_with_the_list(tmp_path, dataset, samples):
    path = write_csv(tmp_path, [["external_id", "annotator", "accuracy"], ["e1", "a", "0"]])
    with pytest.raises(services.LabelImportError) as info:
        services.labels_import(dataset=dataset, path=path)
    assert info.value.errors == [f"{path}:2: accuracy: expected a whole number from 1 to 5, got '0'"]
    assert info.value.total == 1


def test_pandalm_shaped_preferences_from_three_annotators(tmp_path):
    """PandaLM's human test set: per item, three annotators each say 0 (tie), 1 or 2 (that response is
    better). Generated here in its shape: samples carry the item's idx as external_id, and each
    annotator's verdict becomes a label with the `preference` extra field."""
    n = 300
    ds = DatasetFactory(slug="pandalm")
    services.annotation_settings_set(actor=None, dataset=ds, values={"overlap": 3})
    msgs = [[{"role": "user", "content": f"Which response is better? item {i}"}, {"role": "assistant", "content": f"Response 1: a{i}\nResponse 2: b{i}"}] for i in range(n)]
    Sample.objects.bulk_create([
        Sample(dataset=ds, external_id=str(i), messages=m, text="", content_hash=content_hash(m)) for i, m in enumerate(msgs)
    ])
    rng = random.Random(7)
    items = [{"idx": i, **{f"annotator{k}": rng.choice([0, 1, 2]) for k in (1, 2, 3)}} for i in range(n)]
    records = [{"external_id": it["idx"], "annotator": f"annotator{k}", "preference": it[f"annotator{k}"]} for it in items for k in (1, 2, 3)]
    path = write_jsonl(tmp_path, records, name="pandalm.jsonl")

    with CaptureQueriesContext(connection) as queries:
        result = services.labels_import(dataset=ds, path=path, fields={"preference": ["0", "1", "2"]})

    # batched: lookups do not grow with the rows; inserts go in batches (SQLite caps a query at 999 parameters)
    assert len([q for q in queries.captured_queries if not q["sql"].startswith("INSERT")]) <= 20
    assert len(queries) < 3 * n / 10

    assert result.summary() == f"{3 * n} labels imported for {n} samples (3 new users)"
    assert set(Membership.objects.filter(dataset=ds).values_list("user__username", "role")) == {
        ("annotator1", "annotator"), ("annotator2", "annotator"), ("annotator3", "annotator"),
    }
    assert set(Sample.objects.filter(dataset=ds).values_list("label_count", "status")) == {(3, "in_review")}
    got = {(int(ext), user): extra["preference"] for ext, user, extra in Label.objects.values_list("sample__external_id", "annotator__username", "extra")}
    assert got == {(it["idx"], f"annotator{k}"): str(it[f"annotator{k}"]) for it in items for k in (1, 2, 3)}
    assert set(Label.objects.values_list("source", "version", "is_current", "verdict")) == {("import", 1, True, "")}
    assert GoldLabel.objects.count() == 0
