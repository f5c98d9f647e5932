"""Scoring pages and API: start a run, the quality report with its charts, downloads, a sample's
scores; scoped to reviewers and owners of the dataset."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Dataset, Membership
from exports.tokens import api_token_create
from scoring import services
from scoring.models import SampleFlag, ScoringRun
from tests.conftest import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(owner):
    call_command("load_demo", stdout=io.StringIO())
    ds = Dataset.objects.get(slug="demo")
    MembershipFactory(user=owner, dataset=ds, role=Membership.Role.OWNER)
    return ds


@pytest.fixture
def scored(demo):
    services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="rules", enqueue=False).pk)
    return demo


def test_score_button_starts_a_run_that_the_worker_finishes(owner_client, demo, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("scoring:run_start", args=["demo"]), {"metrics": ["rules"]})
    assert response.status_code == 302
    run = ScoringRun.objects.get()
    # tasks run in-process in unit tests; each stage's work is enqueued on commit, so run the chain out
    for _ in range(10):
        if run.finished:
            break
        with django_capture_on_commit_callbacks(execute=True):
            services.run_advance(run_id=run.pk)
        run.refresh_from_db()
    assert run.status == "succeeded"
    assert SampleFlag.objects.filter(dataset=demo, rule="refusal").count() == 2


def test_quality_page_shows_the_charts_and_downloads(owner_client, scored, django_assert_max_num_queries):
    with django_assert_max_num_queries(20):
        response = owner_client.get(reverse("scoring:quality", args=["demo"]))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="chart-flags"' in body and 'id="chart-lengths"' in body
    assert body.count("<svg") >= 2
    assert "<title>refusal: 2</title>" in body
    csv_body = b"".join(owner_client.get(reverse("scoring:report", args=["demo", "csv"]), {"flagged": "1"}).streaming_content).decode()
    assert csv_body.splitlines()[0].startswith("external_id,")
    assert len(csv_body.splitlines()) == 1 + 6
    jsonl = b"".join(owner_client.get(reverse("scoring:report", args=["demo", "jsonl"])).streaming_content).decode()
    assert len([json.loads(line) for line in jsonl.splitlines()]) == 61


def test_sample_page_shows_flags_with_reasons(owner_client, scored):
    sample = scored.samples.get(external_id="demo-045")
    body = owner_client.get(reverse("annotator:sample_detail", args=["demo", sample.pk])).content.decode()
    assert "empty_answer" in body and "answer is empty" in body


def test_sample_list_filters_by_flag_rule_and_sorts_by_metric(owner_client, scored):
    url = reverse("annotator:dataset_detail", args=["demo"])
    page = owner_client.get(url, {"flag": "refusal"}).context["page"]
    assert sorted(s.external_id for s in page.object_list) == ["demo-052", "demo-056"]
    longest = owner_client.get(url, {"sort": "-answer_length"}).context["page"].object_list[0]
    shortest = owner_client.get(url, {"sort": "answer_length"}).context["page"].object_list[0]
    lengths = dict(scored.samples.filter(metrics__metric="answer_length").values_list("external_id", "metrics__value"))
    assert lengths[longest.external_id] == max(lengths.values())
    assert lengths[shortest.external_id] == min(lengths.values())


def test_annotators_and_outsiders_cannot_see_quality(client, scored, outsider):
    annotator = UserFactory(username="ann")
    MembershipFactory(user=annotator, dataset=scored, role=Membership.Role.ANNOTATOR)
    for user in (annotator, outsider):
        client.force_login(user)
        assert client.get(reverse("scoring:quality", args=["demo"])).status_code == 404
        assert client.get(reverse("scoring:report", args=["demo", "csv"])).status_code == 404
        assert client.post(reverse("scoring:run_start", args=["demo"])).status_code == 404
    assert ScoringRun.objects.count() == 1


def test_api_runs_scores_and_quality(owner, scored, django_capture_on_commit_callbacks):
    _token, key = api_token_create(user=owner, name="t", can_write=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    run = ScoringRun.objects.get()
    detail = api.get(f"/api/v1/datasets/{scored.pk}/scoring-runs/{run.pk}/").json()
    assert (detail["status"], detail["progress"], detail["metrics"]) == ("succeeded", 100.0, ["rules"])
    sample = scored.samples.get(external_id="demo-013")
    scores = api.get(f"/api/v1/datasets/{scored.pk}/samples/{sample.pk}/scores/").json()
    assert [f["rule"] for f in scores["flags"]] == ["unseeable_input"]
    assert {m["metric"] for m in scores["metrics"]} >= {"answer_length", "unseeable_input", "empty_answer"}
    quality = api.get(f"/api/v1/datasets/{scored.pk}/quality/").json()
    assert (quality["samples"], quality["flagged"], quality["flags"]["refusal"]) == (61, 6, 2)
    with django_capture_on_commit_callbacks(execute=False):
        created = api.post(f"/api/v1/datasets/{scored.pk}/scoring-runs/", {"metrics": ["rules"]}, format="json")
    assert created.status_code == 202 and created.json()["status"] == "queued"
    assert api.post(f"/api/v1/datasets/{scored.pk}/scoring-runs/", {"metrics": ["nope"]}, format="json").status_code == 400


def test_api_scoring_is_scoped(scored, outsider):
    _token, key = api_token_create(user=outsider, name="t", can_write=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    run = ScoringRun.objects.get()
    sample = scored.samples.first()
    for url in (f"/api/v1/datasets/{scored.pk}/scoring-runs/", f"/api/v1/datasets/{scored.pk}/scoring-runs/{run.pk}/",
                f"/api/v1/datasets/{scored.pk}/samples/{sample.pk}/scores/", f"/api/v1/datasets/{scored.pk}/quality/"):
        assert api.get(url).status_code == 404, url
    assert api.post(f"/api/v1/datasets/{scored.pk}/scoring-runs/", {}, format="json").status_code == 404


def test_dataset_page_loads_the_run_status_for_reviewers_only(owner_client, client, scored):
    page = owner_client.get(reverse("annotator:dataset_detail", args=["demo"])).content.decode()
    assert reverse("scoring:run_status", args=["demo"]) in page
    status = owner_client.get(reverse("scoring:run_status", args=["demo"])).content.decode()
    assert 'data-status="succeeded"' in status and "hx-trigger" not in status
    annotator = UserFactory(username="ann2")
    MembershipFactory(user=annotator, dataset=scored, role=Membership.Role.ANNOTATOR)
    client.force_login(annotator)
    assert client.get(reverse("scoring:run_status", args=["demo"])).content == b""
    assert reverse("scoring:run_status", args=["demo"]) not in client.get(reverse("annotator:dataset_detail", args=["demo"])).content.decode()


def test_annotators_label_blind_no_scores_anywhere(client, scored):
    annotator = UserFactory(username="blind")
    MembershipFactory(user=annotator, dataset=scored, role=Membership.Role.ANNOTATOR)
    _token, key = api_token_create(user=annotator, name="t")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    sample = scored.samples.get(external_id="demo-052")
    run = ScoringRun.objects.get()
    for url in (f"/api/v1/datasets/{scored.pk}/scoring-runs/", f"/api/v1/datasets/{scored.pk}/scoring-runs/{run.pk}/",
                f"/api/v1/datasets/{scored.pk}/samples/{sample.pk}/scores/", f"/api/v1/datasets/{scored.pk}/quality/"):
        assert api.get(url).status_code == 404, url
    listing = api.get(f"/api/v1/datasets/{scored.pk}/samples/", {"has_flag": "true"}).json()
    assert listing["count"] == 61  # the flag filter is ignored for annotators
    assert all("flag_count" not in s for s in listing["results"])
    assert "flag_count" not in api.get(f"/api/v1/datasets/{scored.pk}/samples/{sample.pk}/").json()
    client.force_login(annotator)
    page = client.get(reverse("annotator:sample_detail", args=["demo", sample.pk])).content.decode()
    assert "Quality metrics" not in page and "refusal" not in page
    listing_page = client.get(reverse("annotator:dataset_detail", args=["demo"]), {"flag": "refusal"})
    assert listing_page.context["page"].paginator.count == 61
    assert "⚑" not in listing_page.content.decode() and 'name="flag"' not in listing_page.content.decode()


def test_a_second_run_is_refused_while_one_is_in_progress(owner, scored):
    services.run_create(user=None, dataset=scored, metrics="rules", enqueue=False)
    with pytest.raises(services.ScoringRefused, match="is still in progress"):
        services.run_create(user=None, dataset=scored, metrics="rules", enqueue=False)
    _token, key = api_token_create(user=owner, name="t", can_write=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post(f"/api/v1/datasets/{scored.pk}/scoring-runs/", {}, format="json").status_code == 409


def test_csv_report_cells_cannot_become_formulas(owner_client, scored):
    scored.samples.filter(external_id="demo-052").update(external_id="=HYPERLINK(\"http://x\")")
    body = b"".join(owner_client.get(reverse("scoring:report", args=["demo", "csv"])).streaming_content).decode()
    assert "'=HYPERLINK" in body
    assert "\n=HYPERLINK" not in body and ',=HYPERLINK' not in body


def test_quality_page_says_which_samples_the_embedder_cannot_judge(owner_client, demo):
    services.run_inline(run_id=services.run_create(user=None, dataset=demo, metrics="diversity", enqueue=False).pk)
    body = owner_client.get(reverse("scoring:quality", args=["demo"])).content.decode()
    assert 'id="embedder-coverage"' in body
    assert "The embedder understands en only." in body and "<b>28</b> zh" in body
    assert "SFTDESK_EMBEDDER_LANGUAGES" in body
