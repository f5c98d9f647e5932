"""Agreement over a dataset's stored labels and the `agreement` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from sklearn.metrics import cohen_kappa_score

from annotator import services
from annotator.models import Membership
from reviews import agreement
from reviews.selectors import dataset_agreement
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
