"""Agreement over a dataset's stored labels and the `agreement` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from sklearn.metrics import cohen_kappa_score

from annotator import services
from annotator.models import Assignment, Membership
from reviews import agreement
from reviews.models import ReviewItem
from reviews.selectors import annotator_stats, dataset_agreement
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

A = [1, 2, 3, 4, 5, 5, 2, 3]
B = [1, 2, 4, 4, 5, 4, 2, 1]


def _label_all(dataset):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2})
    users = [UserFactory(username=n) for n in ("ann_a", "ann_b")]
    for u in users:
        MembershipFactory(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR)
    samples = [SampleFactory(dataset=dataset) for _ in A]
    services.queue_rank_refresh(dataset=dataset)
    index = {s.pk: i for i, s in enumerate(samples)}
    for user, scores in zip(users, (A, B), strict=True):
        while (asg := services.assignment_next(user=user, dataset=dataset)) is not None:
            i = index[asg.sample_id]
            values = {"accuracy": scores[i], "completeness": 3, "conciseness": 3, "verdict": "accept" if scores[i] >= 3 else "reject",
                      "error_tags": ["factual_error"] if scores[i] == 1 else []}
            services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values=values)


def test_agreement_per_criterion_matches_the_reference_libraries(dataset):
    _label_all(dataset)
    report = dataset_agreement(dataset, resamples=50, seed=1)
    by_name = {c["criterion"]: c for c in report["criteria"]}
    assert report["labels"] == 16
    assert set(by_name) == {"accuracy", "completeness", "conciseness", "verdict", "tag:factual_error"}

    acc = by_name["accuracy"]
    assert acc["level"] == "ordinal" and acc["alpha"]["n"] == 8
    assert acc["alpha"]["value"] == pytest.approx(agreement.krippendorff_alpha(np.array([A, B], dtype=float), "ordinal"))
    assert acc["cohen"][0]["value"] == pytest.approx(cohen_kappa_score(A, B, weights="quadratic"))
    assert acc["alpha"]["low"] <= acc["alpha"]["value"] <= acc["alpha"]["high"]
    assert by_name["completeness"]["alpha"]["value"] is None  # everyone gave 3: undefined, not 1
    verdicts_a = ["accept" if x >= 3 else "reject" for x in A]
    verdicts_b = ["accept" if x >= 3 else "reject" for x in B]
    assert by_name["verdict"]["cohen"][0]["value"] == pytest.approx(cohen_kappa_score(verdicts_a, verdicts_b))


def test_the_command_prints_a_table_and_json(dataset, capsys):
    _label_all(dataset)
    call_command("agreement", dataset.slug, "--resamples", "20")
    out = capsys.readouterr().out
    assert "accuracy (ordinal; 2 annotators, 8 samples)" in out and "Cohen's kappa ann_a / ann_b, quadratic weights" in out
    call_command("agreement", dataset.slug, "--format", "json", "--resamples", "0")
    data = json.loads(capsys.readouterr().out)
    assert data["criteria"][0]["criterion"] == "accuracy" and data["criteria"][0]["alpha"]["low"] is None


def test_the_command_names_an_unknown_dataset(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no dataset with slug 'nope'"):
        call_command("agreement", "nope")


# --- per annotator -------------------------------------------------------------------------------
# Three annotators, k=3. Completeness: ann_a always 4, ann_b 3, ann_c 2 (consensus median 3).
#   s1: a accept acc 5 / b accept 4 / c reject 1    -> consensus accept, accuracy 4
#   s2: a accept 4 / b needs_fix 3 / c needs_fix 2  -> consensus needs_fix, accuracy 3
#   s3: a accept 5 / b accept 5 / c accept 5        -> consensus accept, accuracy 5
#   g:  labelled like s1, then made gold {verdict accept, accuracy 5}: scored, never compared
#   s5: a and b only (c skips it), so it has no consensus yet; a and b are compared with each other on it
# Time on task: a 60 s per label and a 240 s revision of s5; b 120 s; c 90 s.

def _stats_fixture(dataset):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 3})
    a, b, c = (UserFactory(username=n) for n in ("ann_a", "ann_b", "ann_c"))
    for u in (a, b, c):
        MembershipFactory(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR)
    samples = {name: SampleFactory(dataset=dataset, external_id=name) for name in ("s1", "s2", "s3", "g", "s5")}
    services.queue_rank_refresh(dataset=dataset)

    def lb(verdict, acc, comp, seconds):
        values = {"accuracy": acc, "completeness": comp, "conciseness": 3, "verdict": verdict, "time_spent_s": seconds}
        if verdict == "needs_fix":
            values["corrected_answer"] = "A better answer."
        return values

    plan = {
        a: {"s1": lb("accept", 5, 4, 60), "s2": lb("accept", 4, 4, 60), "s3": lb("accept", 5, 4, 60), "g": lb("accept", 5, 4, 60),
            "s5": lb("accept", 1, 4, 60)},
        b: {"s1": lb("accept", 4, 3, 120), "s2": lb("needs_fix", 3, 3, 120), "s3": lb("accept", 5, 3, 120), "g": lb("accept", 3, 3, 120),
            "s5": lb("reject", 5, 3, 120)},
        c: {"s1": lb("reject", 1, 2, 90), "s2": lb("needs_fix", 2, 2, 90), "s3": lb("accept", 5, 2, 90), "g": lb("reject", 1, 2, 90)},
    }
    for user, mine in plan.items():
        while (asg := services.assignment_next(user=user, dataset=dataset)) is not None:
            values = mine.get(asg.sample.external_id)
            if values is None:
                services.assignment_skip(user=user, dataset=dataset, assignment_id=asg.pk, reason="not for me")
            else:
                services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values=values)
    s5_of_a = Assignment.objects.get(annotator=a, sample=samples["s5"])
    services.assignment_submit(user=a, dataset=dataset, assignment_id=s5_of_a.pk, values=lb("accept", 2, 4, 240))
    services.gold_set(actor=None, dataset=dataset, sample=samples["g"], values={"verdict": "accept", "accuracy": 5})
    return samples


def test_annotator_stats_against_hand_computed_values(dataset):
    samples = _stats_fixture(dataset)
    # the consensus the figures are measured against
    review = {r.sample.external_id: r for r in ReviewItem.objects.filter(sample__in=[samples[n] for n in ("s1", "s2", "s3")])}
    assert {n: (r.verdict, r.accuracy, r.completeness) for n, r in review.items()} == {
        "s1": ("accept", 4.0, 3.0), "s2": ("needs_fix", 3.0, 3.0), "s3": ("accept", 5.0, 3.0)}
    assert not ReviewItem.objects.filter(sample=samples["s5"]).exists()

    stats = {row["annotator"]: row for row in annotator_stats(dataset)}
    assert list(stats) == ["ann_a", "ann_b", "ann_c"]
    a, b, c = stats["ann_a"], stats["ann_b"], stats["ann_c"]
    # current labels, the gold sample apart (s5 counts: it is a label, just not comparable yet)
    assert (a["labels"], b["labels"], c["labels"]) == (4, 4, 3)
    # agreement with peers: pairs (own verdict, another annotator's verdict on the same sample), own vote never counted.
    #   a: s1 b=, c≠ / s2 b≠, c≠ / s3 == / s5 b≠ -> 3 of 7;  b: s1 a=, c≠ / s2 a≠, c= / s3 == / s5 a≠ -> 4 of 7
    #   c: s1 a≠, b≠ / s2 a≠, b= / s3 == -> 3 of 6.  s5 counts: two labels are enough to compare, finished or not.
    assert (a["compared"], b["compared"], c["compared"]) == (7, 7, 6)
    assert a["agreement"] == pytest.approx(3 / 7) and b["agreement"] == pytest.approx(4 / 7) and c["agreement"] == pytest.approx(3 / 6)
    # leniency: mean over their labels of (own score - mean of the others' scores on that sample)
    #   accuracy a: s1 5-2.5, s2 4-2.5, s3 0, s5 2-5;  b: s1 4-3, s2 3-3, s3 0, s5 5-2;  c: s1 1-4.5, s2 2-3.5, s3 0
    assert a["leniency"] == pytest.approx({"accuracy": (2.5 + 1.5 + 0 - 3) / 4, "completeness": (1.5 * 3 + 1) / 4, "conciseness": 0.0})
    assert b["leniency"] == pytest.approx({"accuracy": (1 + 0 + 0 + 3) / 4, "completeness": (0 + 0 + 0 - 1) / 4, "conciseness": 0.0})
    assert c["leniency"] == pytest.approx({"accuracy": (-3.5 - 1.5 + 0) / 3, "completeness": -1.5, "conciseness": 0.0})
    assert a["leniency"]["completeness"] > 0 > c["leniency"]["completeness"]
    # gold: verdict exact, accuracy within one point of 5
    assert (a["gold_n"], a["gold_accuracy"]) == (1, 1.0)
    assert (b["gold_n"], b["gold_accuracy"]) == (1, 0.5)  # accept right, 3 is two points off
    assert (c["gold_n"], c["gold_accuracy"]) == (1, 0.0)
    # labels per hour: every label version over the time on task
    assert a["hours"] == pytest.approx((5 * 60 + 240) / 3600) and a["labels_per_hour"] == pytest.approx(6 / ((5 * 60 + 240) / 3600))
    assert b["hours"] == pytest.approx(600 / 3600) and b["labels_per_hour"] == pytest.approx(30.0)
    assert c["hours"] == pytest.approx(360 / 3600) and c["labels_per_hour"] == pytest.approx(40.0)
    # skip rate: skipped / (submitted + skipped) assignments
    assert (a["skipped"], a["skip_rate"]) == (0, 0.0)
    assert (b["skipped"], b["skip_rate"]) == (0, 0.0)
    assert (c["skipped"], c["skip_rate"]) == (1, pytest.approx(1 / 5))


def test_with_two_annotators_a_split_counts_against_both(dataset):
    """With k = 2 the consensus of a split verdict is the stricter one; measured against that, the
    stricter annotator would always agree. Against their peer, both disagree."""
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2})
    a, b = (UserFactory(username=n) for n in ("ann_a", "ann_b"))
    for u in (a, b):
        MembershipFactory(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR)
    for name in ("same", "split"):
        SampleFactory(dataset=dataset, external_id=name)
    services.queue_rank_refresh(dataset=dataset)
    verdicts = {(a, "same"): "accept", (b, "same"): "accept", (a, "split"): "accept", (b, "split"): "reject"}
    for user in (a, b):
        while (asg := services.assignment_next(user=user, dataset=dataset)) is not None:
            services.assignment_submit(user=user, dataset=dataset, assignment_id=asg.pk, values={
                "verdict": verdicts[(user, asg.sample.external_id)], "accuracy": 3, "completeness": 3, "conciseness": 3})
    assert ReviewItem.objects.get(sample__external_id="split").verdict == "reject"  # the stricter
    stats = {row["annotator"]: row for row in annotator_stats(dataset)}
    assert (stats["ann_a"]["agreement"], stats["ann_a"]["compared"]) == (0.5, 2)
    assert (stats["ann_b"]["agreement"], stats["ann_b"]["compared"]) == (0.5, 2)


def test_the_command_prints_the_annotator_table_and_json(dataset, capsys):
    _stats_fixture(dataset)
    call_command("agreement", dataset.slug, "--resamples", "0")
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("Annotators (")))
    table = [line.split("  ") for line in lines[header + 1:]]
    assert [cell for cell in table[0] if cell] == ["annotator", "labels", "agreement", "leniency acc/comp/conc", "gold accuracy",
                                                   "labels/hour", "skip rate"]
    rows = {line.split()[0]: line for line in lines[header + 2:]}
    assert set(rows) == {"ann_a", "ann_b", "ann_c"}
    assert rows["ann_a"].split() == ["ann_a", "4", "0.429", "n=7", "+0.25", "+1.38", "+0.00", "1.000", "n=1", "40.0", "0.000", "(0", "skipped)"]
    assert rows["ann_b"].split() == ["ann_b", "4", "0.571", "n=7", "+1.00", "-0.25", "+0.00", "0.500", "n=1", "30.0", "0.000", "(0", "skipped)"]
    assert rows["ann_c"].split() == ["ann_c", "3", "0.500", "n=6", "-1.67", "-1.50", "+0.00", "0.000", "n=1", "40.0", "0.200", "(1", "skipped)"]

    call_command("agreement", dataset.slug, "--format", "json", "--resamples", "0")
    data = json.loads(capsys.readouterr().out)
    assert data["annotators"] == json.loads(json.dumps(annotator_stats(dataset)))
    assert [a["annotator"] for a in data["annotators"]] == ["ann_a", "ann_b", "ann_c"]
    assert {c["criterion"] for c in data["criteria"]} >= {"accuracy", "completeness", "verdict"}


def test_the_command_on_a_dataset_without_labels(dataset, capsys):
    call_command("agreement", dataset.slug)
    assert capsys.readouterr().out == f"{dataset.slug}: no labels to compare yet\n"
    call_command("agreement", dataset.slug, "--format", "json")
    assert json.loads(capsys.readouterr().out)["annotators"] == []
