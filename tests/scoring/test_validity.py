"""Metrics against expert judgement: Spearman and ROC AUC checked against published and hand-worked
values, and the quality page / API panel built from real labels."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotator import services
from annotator.models import Membership
from scoring.metrics import validity
from scoring.models import SampleFlag, SampleMetric
from tests.conftest import MembershipFactory, SampleFactory, UserFactory


def test_spearman_matches_the_published_example():
    # scipy.stats.spearmanr's documented example: x = [1, 2, 3, 4, 5], y = [5, 6, 7, 8, 7] -> 0.8207826816681233
    assert validity.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    assert validity.spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert validity.spearman([1, 2, 3, 4, 5], [3, 3, 3, 3, 3]) is None  # constant: undefined
    assert validity.spearman([1, 2, 3], [1, 2, 3]) is None  # too few pairs


def test_auc_matches_a_hand_computed_value():
    # positives score 0.35 and 0.8, negatives 0.1, 0.4, 0.2: of the 6 (positive, negative) pairs the
    # positive scores higher in 5 -> 5/6.
    assert validity.auc([0.1, 0.4, 0.35, 0.8, 0.2], [False, False, True, True, False]) == pytest.approx(5 / 6)
    assert validity.auc([1, 2, 3, 4, 5], [True, True, False, False, False]) == pytest.approx(0.0)
    assert validity.auc([1, 2, 3, 4, 5], [True] * 5) is None


def test_compare_names_the_scale_a_metric_follows():
    experts = {
        i: validity.ExpertView(accuracy=float(a), completeness=3.0 if i % 2 else 4.0, conciseness=None, not_accepted=a <= 2, labels=2)
        for i, a in enumerate([1, 2, 3, 4, 5, 5])
    }
    rows = validity.compare({"reward": {i: 0.1 * i for i in range(6)}, "absent": {99: 1.0}}, experts)
    assert [r["metric"] for r in rows] == ["reward"]
    row = rows[0]
    assert row["n"] == 6 and row["strongest"] == "accuracy" and row["spearman"]["conciseness"] is None
    assert row["spearman"]["accuracy"] == pytest.approx(validity.spearman([0, .1, .2, .3, .4, .5], [1, 2, 3, 4, 5, 5]))
    assert row["auc"] == pytest.approx(0.0)  # higher reward, more accepted: the metric runs the other way


def _labelled_dataset(dataset, owner):
    """Six samples, two annotators each; accuracy follows the sample index, the last two rejected."""
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2})
    users = [UserFactory(username=n) for n in ("ann1", "ann2")]
    for u in users:
        MembershipFactory(user=u, dataset=dataset, role=Membership.Role.ANNOTATOR)
    samples = [SampleFactory(dataset=dataset) for _ in range(6)]
    services.queue_rank_refresh(dataset=dataset)
    quality = {s.pk: i for i, s in enumerate(samples)}
    for u in users:
        while (asg := services.assignment_next(user=u, dataset=dataset)) is not None:
            q = quality[asg.sample_id]
            verdict = "reject" if q >= 4 else "accept"
            services.assignment_submit(user=u, dataset=dataset, assignment_id=asg.pk,
                                       values={"accuracy": 5 - q % 5, "completeness": 3, "conciseness": 3, "verdict": verdict})
    for s, q in quality.items():
        SampleMetric.objects.create(sample_id=s, dataset=dataset, metric="junk_score", value=float(q))
        if q >= 4:
            SampleFlag.objects.create(sample_id=s, dataset=dataset, metric="rules", rule="refusal", reason="refuses")
    return samples


def test_the_panel_on_the_quality_page_and_in_the_api(owner_client, dataset, owner, django_assert_max_num_queries):
    _labelled_dataset(dataset, owner)
    response = owner_client.get(reverse("scoring:quality", args=[dataset.slug]))
    panel = response.context["experts"]
    assert panel["labelled"] == 6
    row = next(r for r in panel["metrics"] if r["metric"] == "junk_score")
    assert row["n"] == 6 and row["auc"] == pytest.approx(1.0)  # the two rejected samples score highest
    assert row["spearman"]["completeness"] is None  # every expert gave 3
    assert panel["flags"] == [{"rule": "refusal", "flagged": 2, "not_accepted_flagged": 1.0, "not_accepted_unflagged": 0.0}]
    assert 'id="expert-agreement"' in response.content.decode()

    api = owner_client.get(f"/api/v1/datasets/{dataset.pk}/quality/").json()
    assert api["experts"]["labelled"] == 6 and api["experts"]["flags"][0]["rule"] == "refusal"


def test_the_panel_waits_for_labels(owner_client, dataset):
    SampleFactory(dataset=dataset)
    response = owner_client.get(reverse("scoring:quality", args=[dataset.slug]))
    assert response.context["experts"] == {"labelled": 0, "metrics": [], "flags": []}
    assert "needs at least 5" in response.content.decode()


def test_labels_without_a_verdict_count_for_correlations_only():
    experts = {i: validity.ExpertView(accuracy=float(i), completeness=None, conciseness=None, not_accepted=None, labels=1) for i in range(6)}
    row = validity.compare({"m": {i: float(i) for i in range(6)}}, experts)[0]
    assert row["spearman"]["accuracy"] == pytest.approx(1.0) and row["auc"] is None
    assert validity.flag_lift({"r": {0, 1}}, experts) == []
