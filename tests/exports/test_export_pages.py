"""Export pages: the list (files with sizes, links and sha256), the spec form with its preview (counts per
stratum with short ones marked, what is left out and why, SVG charts of pool against selection) and its
Build button, an export's page (polled while it builds, manifest, files, snippets), the job token shown
once; owners and reviewers only (annotators and outsiders get 404)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Membership, Sample
from exports.models import ApiToken, Export
from tests.conftest import MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def samples(dataset):
    """12 approved samples (8 qa, 4 code; 3 of them in German) and 3 new ones."""
    made = []
    for i in range(12):
        made.append(SampleFactory(dataset=dataset, status=Sample.Status.APPROVED, task_type="qa" if i < 8 else "code",
                                  language="de" if i % 4 == 0 else "en"))
    for _ in range(3):
        made.append(SampleFactory(dataset=dataset, status=Sample.Status.NEW, task_type="qa"))
    return made


def form_data(**overrides):
    data = {
        "name": "balanced", "formats": ["messages"], "status": ["approved"], "flags": "ignore", "drop_duplicates": "on",
        "balance_by": ["task_type"], "balance_mode": "cap", "cap": "6", "short": "take_all", "select_method": "random",
        "diversity_method": "k_center", "validation": "0.25", "split_seed": "0", "seed": "7", "spec_json": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def member(dataset, username, role):
    user = UserFactory(username=username)
    MembershipFactory(user=user, dataset=dataset, role=role)
    return user


def urls(dataset, export=None):
    out = [reverse("exports:export_list", args=[dataset.slug]), reverse("exports:export_new", args=[dataset.slug])]
    if export is not None:
        out.append(reverse("exports:export_detail", args=[dataset.slug, export.pk]))
    return out


def build(client, dataset, data, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("exports:export_new", args=[dataset.slug]), data)
    return response


# --- preview ----------------------------------------------------------------------------------------

def test_the_preview_renders_counts_per_stratum_what_is_left_out_and_charts(owner_client, dataset, samples):
    # when the owner previews "6 qa and 6 code" with htmx
    data = form_data(balance_mode="counts", balance_table="qa = 6\ncode = 6", cap=None)
    response = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX)

    # then the preview part alone comes back, with the counts
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="preview"' in html
    assert re.search(r'id="preview-pool">12<', html) and re.search(r'id="preview-chosen">10<', html)
    # per stratum (pool, target, chosen, train, validation): code has 4 of the 6 asked for (short, marked), qa 6 of 8
    code_row = re.search(r'<tr class="short" data-stratum="code">(.*?)</tr>', html, re.S).group(1)
    assert [int(n) for n in re.findall(r'class="num">(\d+)<', code_row)] == [4, 6, 4, 3, 1]
    qa_row = re.search(r'<tr class="" data-stratum="qa">(.*?)</tr>', html, re.S).group(1)
    assert [int(n) for n in re.findall(r'class="num">(\d+)<', qa_row)] == [8, 6, 6, 5, 1]
    assert "1 stratum is short of its target" in html
    # left out: 3 by status (new), 2 over the qa cap
    assert re.search(r'data-reason="status"><td>review status not asked for</td><td class="num">3<', html)
    assert re.search(r'data-reason="over_target"><td>more than the stratum&#x27;s target</td><td class="num">2<', html)
    # charts of the pool against the selection, as SVG
    for chart in ("task-type", "difficulty", "language", "cluster"):
        assert f'id="chart-{chart}"' in html
    task_chart = re.search(r'id="chart-task-type".*?</figure>', html, re.S).group(0)
    assert task_chart.count('class="bar-pool"') == 2 and task_chart.count('class="bar-selected"') == 2
    assert "66.7% → 60.0% (6/8)" in task_chart and "33.3% → 40.0% (4/4)" in task_chart
    lang_chart = re.search(r'id="chart-language".*?</figure>', html, re.S).group(0)
    assert "<svg" in lang_chart and "de" in lang_chart
    # and the canonical spec goes into the JSON box (out of band)
    oob = re.search(r'<textarea name="spec_json"[^>]*hx-swap-oob="true">(.*?)</textarea>', html, re.S).group(1)
    assert "&quot;qa&quot;: 6" in oob and "&quot;version&quot;: 1" in oob
    assert Export.objects.count() == 0


def test_the_preview_works_without_javascript_as_a_full_page(owner_client, dataset, samples):
    response = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), form_data())
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="spec-form"' in html and 'id="chart-task-type"' in html
    assert 'hx-swap-oob' not in html


def test_a_wrong_spec_shows_its_errors_by_field(owner_client, dataset, samples):
    data = form_data(balance_mode="counts", balance_table="qa = 3\nnot a line", cap=None)
    response = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX)
    html = response.content.decode()
    assert "The spec has errors" in html
    assert "Write one &#x27;stratum = number&#x27; per line, not: not a line" in html

    data = form_data(balance_mode="counts", balance_table="qa/hard = 3", cap=None)
    html = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX).content.decode()
    assert "balance.counts[&quot;qa/hard&quot;]: has 2 parts but balance.by has 1" in html


def test_the_preview_says_how_far_a_shrink_went_and_which_stratum_set_it(owner_client, dataset, samples):
    # given 8 qa and 4 code approved; 400 qa and 300 code asked, shrunk in proportion
    data = form_data(balance_mode="counts", balance_table="qa = 400\ncode = 300", cap=None, short="shrink", validation="0")
    # when previewed
    response = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX)
    # then the factor min(8/400, 4/300) = 1/75 was set by code, and the preview says so
    html = response.content.decode()
    assert response.status_code == 200
    notice = re.search(r'<p class="notice" id="preview-shrink">(.*?)</p>', html, re.S).group(1)
    assert notice == ("Shrunk to 1.33% of the targets, limited by code: 4 available of 300 asked. "
                      "Every stratum is scaled by the same share to keep the mixture.")
    # quotas 5.33 qa and 4 code: 9 chosen
    assert re.search(r'id="preview-chosen">9<', html)
    # and in Chinese
    owner_client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    zh = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX).content.decode()
    notice = re.search(r'<p class="notice" id="preview-shrink">(.*?)</p>', zh, re.S).group(1)
    assert notice.startswith("已缩减至目标的 1.33%，受限于 code：可用 4 条，要求 300 条。")


def test_preview_and_build_refuse_a_shrink_that_a_stratum_without_samples_would_empty(owner_client, dataset, samples,
                                                                                     django_capture_on_commit_callbacks):
    # given a shrink that asks for 3 of "math", which has no samples
    data = form_data(balance_mode="counts", balance_table="qa = 6\nmath = 3", cap=None, short="shrink")
    message = ("balance.counts[&quot;math&quot;]: stratum math has no samples after the filters, so shrink would select nothing: "
               "set its target to 0, remove it, or use take_all")
    # when previewed: the error, by the counts field, instead of an empty preview
    preview = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX).content.decode()
    assert "The spec has errors" in preview
    assert f"<li>Counts or ratios per stratum: {message}</li>" in preview
    assert 'id="preview-chosen"' not in preview
    # when built: refused on the form, nothing made
    response = build(owner_client, dataset, data, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Export.objects.count() == 0


def test_the_json_box_is_the_spec_when_ticked(owner_client, dataset, samples, django_capture_on_commit_callbacks):
    spec = '{"name": "from-json", "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 2, "code": 1}}}'
    data = {"use_json": "on", "spec_json": spec, "name": "", "status": []}
    preview = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), data, **HTMX).content.decode()
    assert re.search(r'id="preview-chosen">3<', preview)
    assert "hx-swap-oob" not in preview  # the box is left as written
    response = build(owner_client, dataset, data, django_capture_on_commit_callbacks)
    export = Export.objects.get()
    assert response.status_code == 302 and (export.name, export.sample_count) == ("from-json", 3)
    bad = owner_client.post(reverse("exports:export_preview", args=[dataset.slug]), {"use_json": "on", "spec_json": "[1"}, **HTMX)
    assert "Not valid JSON" in bad.content.decode()


# --- build and the export's page --------------------------------------------------------------------

def test_build_creates_the_export_and_its_page_shows_the_files(owner_client, owner, dataset, samples, django_capture_on_commit_callbacks,
                                                               django_assert_max_num_queries):
    # when the owner builds
    response = build(owner_client, dataset, form_data(), django_capture_on_commit_callbacks)

    # then the export was asked for with the spec of the form, built, and the browser sent to its page
    export = Export.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:export_detail", args=[dataset.slug, export.pk])
    assert (export.name, export.created_by, export.spec["balance"]["cap"], export.spec["split"]["validation"]) == ("balanced", owner, 6, 0.25)
    export.refresh_from_db()
    assert (export.status, export.sample_count) == (Export.Status.SUCCEEDED, 10)

    with django_assert_max_num_queries(6):
        page = owner_client.get(response["Location"]).content.decode()
    assert 'data-status="succeeded"' in page and "hx-trigger" not in page.split('id="export-body"')[1].split(">")[0]
    train = export.files.get(path="data/train.messages.jsonl")
    api_url = f"/api/v1/datasets/{dataset.pk}/exports/{export.pk}/files/data/train.messages.jsonl"
    assert f'href="{api_url}"' in page and train.sha256 in page
    assert "python examples/finetune.py --base-url http://testserver --dataset" in page
    assert f"http://testserver{api_url}" in page and "storage_options=" in page
    # the download link works with the session
    assert b"".join(owner_client.get(api_url).streaming_content).count(b"\n") == train.rows == 8


def test_the_page_of_a_building_export_polls_and_the_poll_answers_the_status_part(owner_client, dataset):
    export = Export.objects.create(dataset=dataset, name="slow", spec={"name": "slow"}, spec_sha256="b" * 64, status=Export.Status.BUILDING)
    url = reverse("exports:export_detail", args=[dataset.slug, export.pk])
    page = owner_client.get(url).content.decode()
    assert f'hx-get="{url}" hx-trigger="every 1s"' in page
    Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error="The spec selects no samples", finished_at=timezone.now())
    poll = owner_client.get(url, HTTP_HX_TARGET="export-body", **HTMX).content.decode()
    assert poll.strip().startswith('<div id="export-body" data-status="failed">')
    assert "The spec selects no samples" in poll and "<html" not in poll


def test_a_new_export_can_start_from_an_earlier_spec(owner_client, dataset, samples, django_capture_on_commit_callbacks):
    build(owner_client, dataset, form_data(balance_mode="cap", cap="5"), django_capture_on_commit_callbacks)
    export = Export.objects.get()
    page = owner_client.get(reverse("exports:export_new", args=[dataset.slug]), {"from": export.pk}).content.decode()
    assert re.search(r'name="cap" value="5"', page)
    assert re.search(r'<option value="cap" selected>', page)


# --- job tokens -------------------------------------------------------------------------------------

def test_a_job_token_is_shown_once_and_reads_only_this_dataset(owner_client, owner, dataset, samples, django_capture_on_commit_callbacks):
    build(owner_client, dataset, form_data(), django_capture_on_commit_callbacks)
    export = Export.objects.get()
    detail = reverse("exports:export_detail", args=[dataset.slug, export.pk])

    # when the owner creates a job token (with htmx)
    response = owner_client.post(reverse("exports:export_token", args=[dataset.slug, export.pk]), {"name": "nightly", "days": "7"}, **HTMX)

    # then the key is shown once, in the token part, with how to set it
    html = response.content.decode()
    key = re.search(r'<pre id="new-key">(sft_[^<]+)</pre>', html).group(1)
    assert f"export SFTDESK_TOKEN={key}" in html and "<html" not in html
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.name, token.user, token.dataset, token.can_write) == ("nightly", owner, dataset, False)
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert key not in owner_client.get(detail).content.decode()

    # and the key pulls this dataset's exports, read-only
    job = APIClient()
    job.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert job.get(f"/api/v1/datasets/{dataset.pk}/exports/latest/")["Location"] == f"/api/v1/datasets/{dataset.pk}/exports/{export.pk}/"
    assert job.post(f"/api/v1/datasets/{dataset.pk}/exports/", {"name": "x"}, format="json").status_code == 403


def test_a_job_token_without_javascript_renders_the_whole_page(owner_client, dataset):
    export = Export.objects.create(dataset=dataset, name="e", spec={"name": "e"}, spec_sha256="c" * 64, status=Export.Status.SUCCEEDED)
    response = owner_client.post(reverse("exports:export_token", args=[dataset.slug, export.pk]), {"name": "job", "days": "30"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and html.count(ApiToken.objects.get().prefix) >= 1
    bad = owner_client.post(reverse("exports:export_token", args=[dataset.slug, export.pk]), {"name": "job", "days": "400"})
    assert bad.status_code == 400 and ApiToken.objects.count() == 1
    bad_htmx = owner_client.post(reverse("exports:export_token", args=[dataset.slug, export.pk]), {"name": "job", "days": "400"}, **HTMX)
    assert bad_htmx.status_code == 200 and "errorlist" in bad_htmx.content.decode() and ApiToken.objects.count() == 1


# --- the list ---------------------------------------------------------------------------------------

def test_the_list_shows_each_export_with_its_files_in_bounded_queries(owner_client, dataset, samples, django_capture_on_commit_callbacks,
                                                                     django_assert_max_num_queries):
    for cap in ("3", "4", "5"):
        build(owner_client, dataset, form_data(cap=cap, name=f"cap-{cap}"), django_capture_on_commit_callbacks)
    Export.objects.create(dataset=dataset, name="broken", spec={"name": "broken"}, spec_sha256="d" * 64, status=Export.Status.FAILED,
                          error="The spec selects no samples")
    with django_assert_max_num_queries(8):
        response = owner_client.get(reverse("exports:export_list", args=[dataset.slug]))
    html = response.content.decode()
    names = re.findall(r'<td><a href="/d/ds/exports/\d+/">([a-z][^<]*)</a></td>', html)
    assert names == ["broken", "cap-5", "cap-4", "cap-3"]
    newest = Export.objects.get(name="cap-5")
    train = newest.files.get(path="data/train.messages.jsonl")
    assert f'href="/api/v1/datasets/{dataset.pk}/exports/{newest.pk}/files/data/train.messages.jsonl" download' in html
    assert train.sha256 in html and "The spec selects no samples" in html


def test_the_dataset_page_links_the_exports_for_owners_and_reviewers_only(owner_client, client, dataset):
    assert 'id="exports-link"' in owner_client.get(reverse("annotator:dataset_detail", args=[dataset.slug])).content.decode()
    annotator = member(dataset, "anna", Membership.Role.ANNOTATOR)
    client.force_login(annotator)
    assert 'id="exports-link"' not in client.get(reverse("annotator:dataset_detail", args=[dataset.slug])).content.decode()


# --- access -----------------------------------------------------------------------------------------

def test_annotators_and_outsiders_get_404_on_every_export_page(client, dataset, outsider):
    export = Export.objects.create(dataset=dataset, name="e", spec={"name": "e"}, spec_sha256="e" * 64, status=Export.Status.SUCCEEDED)
    annotator = member(dataset, "anna", Membership.Role.ANNOTATOR)
    for user in (annotator, outsider):
        client.force_login(user)
        for url in urls(dataset, export):
            assert client.get(url).status_code == 404, (user, url)
        assert client.post(reverse("exports:export_preview", args=[dataset.slug]), form_data()).status_code == 404
        assert client.post(reverse("exports:export_new", args=[dataset.slug]), form_data()).status_code == 404
        assert client.post(reverse("exports:export_token", args=[dataset.slug, export.pk]), {"name": "x", "days": "7"}).status_code == 404
    assert Export.objects.count() == 1 and ApiToken.objects.count() == 0


def test_a_reviewer_reaches_every_export_page(client, dataset):
    export = Export.objects.create(dataset=dataset, name="e", spec={"name": "e"}, spec_sha256="f" * 64, status=Export.Status.SUCCEEDED)
    client.force_login(member(dataset, "rita", Membership.Role.REVIEWER))
    for url in urls(dataset, export):
        assert client.get(url).status_code == 200, url


def test_pages_ask_anonymous_visitors_to_log_in(client, dataset):
    response = client.get(reverse("exports:export_list", args=[dataset.slug]))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
