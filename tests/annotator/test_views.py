"""Pages: access scoping, the sample browser (filters, search, constant queries), safe rendering,
import through the page, languages."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotator.models import ImportJob, Membership, Sample
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_pages_require_login(client, dataset):
    response = client.get(reverse("annotator:dataset_detail", args=[dataset.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_dataset_list_shows_only_my_datasets(owner_client, dataset):
    DatasetFactory(name="Secret set", slug="secret")
    response = owner_client.get(reverse("annotator:dataset_list"))
    assert response.status_code == 200
    assert dataset.name in response.content.decode()
    assert "Secret set" not in response.content.decode()


def test_non_member_gets_404_on_every_page(client, dataset, outsider):
    sample = SampleFactory(dataset=dataset)
    job = ImportJob.objects.create(dataset=dataset, original_name="x.jsonl")
    client.force_login(outsider)
    urls = [
        reverse("annotator:dataset_detail", args=[dataset.slug]),
        reverse("annotator:sample_detail", args=[dataset.slug, sample.pk]),
        reverse("annotator:import_create", args=[dataset.slug]),
        reverse("annotator:import_detail", args=[dataset.slug, job.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url


def test_a_sample_of_another_dataset_is_404_even_for_a_member(owner_client, dataset):
    foreign = SampleFactory(dataset=DatasetFactory())
    assert owner_client.get(reverse("annotator:sample_detail", args=[dataset.slug, foreign.pk])).status_code == 404


def test_annotators_cannot_open_the_import_page(client, dataset):
    annotator = UserFactory(username="ann")
    MembershipFactory(user=annotator, dataset=dataset, role=Membership.Role.ANNOTATOR)
    client.force_login(annotator)
    assert client.get(reverse("annotator:dataset_detail", args=[dataset.slug])).status_code == 200
    assert client.get(reverse("annotator:import_create", args=[dataset.slug])).status_code == 404


def test_sample_browser_filters_and_searches(owner_client, dataset):
    SampleFactory(dataset=dataset, external_id="zh-1", language="zh", task_type="math",
                  messages=[{"role": "user", "content": "计算二加三"}, {"role": "assistant", "content": "五"}])
    SampleFactory(dataset=dataset, external_id="en-1", language="en", task_type="code", status="approved")
    SampleFactory(dataset=dataset, external_id="en-2", language="en", task_type="code", flag_count=2)
    url = reverse("annotator:dataset_detail", args=[dataset.slug])

    def ids(**params):
        page = owner_client.get(url, params).context["page"]
        return [s.external_id for s in page.object_list]

    assert ids() == ["zh-1", "en-1", "en-2"]
    assert ids(language="zh") == ["zh-1"]
    assert ids(task_type="code") == ["en-1", "en-2"]
    assert ids(status="approved") == ["en-1"]
    assert ids(has_flag="yes") == ["en-2"]
    assert ids(has_flag="no") == ["zh-1", "en-1"]
    assert ids(q="二加") == ["zh-1"]
    assert ids(q="en-2") == ["en-2"]


def test_sample_browser_paginates_with_a_constant_number_of_queries(owner_client, dataset, django_assert_max_num_queries):
    url = reverse("annotator:dataset_detail", args=[dataset.slug])
    SampleFactory.create_batch(5, dataset=dataset)
    with django_assert_max_num_queries(14) as small:
        owner_client.get(url)
    SampleFactory.create_batch(120, dataset=dataset)
    with django_assert_max_num_queries(14) as big:
        response = owner_client.get(url, {"page": 2})
    assert len(big.captured_queries) == len(small.captured_queries)
    assert [s.external_id for s in response.context["page"].object_list][:1] == [Sample.objects.order_by("id")[50].external_id]


def test_htmx_request_renders_only_the_table(owner_client, dataset):
    SampleFactory(dataset=dataset, external_id="only")
    response = owner_client.get(reverse("annotator:dataset_detail", args=[dataset.slug]), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="sample-table")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="sample-table">')
    assert "<html" not in body
    assert "only" in body


def test_sample_page_renders_markdown_and_code_but_no_script(owner_client, dataset):
    evil = (
        "Here is code:\n\n```python\nprint('hi')\n```\n\n<script>alert('x')</script>\n\n"
        '<img src=x onerror="alert(1)">\n\n[click](javascript:alert(1)) and **bold**'
    )
    sample = SampleFactory(dataset=dataset, messages=[{"role": "user", "content": "Show me"}, {"role": "assistant", "content": evil}])
    body = owner_client.get(reverse("annotator:sample_detail", args=[dataset.slug, sample.pk])).content.decode()
    assert "<pre><code class=\"language-python\">print('hi')\n</code></pre>" in body
    assert "<strong>bold</strong>" in body
    assert "<script>alert" not in body
    assert "<p>&lt;script&gt;alert('x')&lt;/script&gt;</p>" in body
    assert "<img" not in body
    assert "<p>&lt;img src=x onerror=\"alert(1)\"&gt;</p>" in body
    assert "javascript:" not in body.replace("[click](javascript:alert(1))", "")
    conversation = body.split('<section class="conversation">')[1].split("</section>")[0]
    assert "<a " not in conversation


def test_upload_through_the_page_imports_and_shows_the_result(owner_client, dataset, django_capture_on_commit_callbacks):
    data = "".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\n" for i in range(3)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("annotator:import_create", args=[dataset.slug]), {"file": SimpleUploadedFile("d.jsonl", data), "format": "auto"})
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("annotator:import_detail", args=[dataset.slug, job.pk])
    page = owner_client.get(response["Location"])
    assert page.context["job"].status == "succeeded"  # tasks run in-process in unit tests
    assert "3 records read, 3 imported, 0 duplicates skipped" in page.content.decode()
    assert Sample.objects.filter(dataset=dataset).count() == 3


def test_a_failed_import_page_lists_errors_with_lines(owner_client, dataset, django_capture_on_commit_callbacks):
    data = b'{"instruction": "q", "output": "a"}\n{"instruction": "q2"}\n'
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("annotator:import_create", args=[dataset.slug]), {"file": SimpleUploadedFile("d.jsonl", data), "format": "auto"})
    job = ImportJob.objects.get()
    body = owner_client.get(reverse("annotator:import_detail", args=[dataset.slug, job.pk])).content.decode()
    assert "Nothing was imported: 1 error" in body
    assert "line 2, record 1, field &#x27;output&#x27;: is missing: the record has no answer" in body
    assert Sample.objects.count() == 0


def test_import_progress_partial_polls_until_finished(owner_client, dataset):
    job = ImportJob.objects.create(dataset=dataset, original_name="x.jsonl", status="running", progress=40.0)
    url = reverse("annotator:import_detail", args=[dataset.slug, job.pk])
    body = owner_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<div id="import-progress"')
    assert 'hx-trigger="every 1s"' in body
    assert 'value="40.0"' in body
    ImportJob.objects.filter(pk=job.pk).update(status="succeeded", progress=100.0)
    done = owner_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done
    assert 'value="100.0"' in done


def test_ui_in_chinese_from_the_browser_language_and_switchable(owner_client, dataset):
    url = reverse("annotator:dataset_list")
    zh = owner_client.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "数据集" in zh
    en = owner_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Datasets" in en and "数据集" not in en
    owner_client.post(reverse("set_language"), {"language": "zh-hans", "next": url})
    switched = owner_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "数据集" in switched


def test_create_dataset_makes_me_owner(owner_client, owner):
    response = owner_client.post(reverse("annotator:dataset_create"), {"name": "Math set", "slug": "", "description": "", "guidelines": ""})
    assert response.status_code == 302
    assert Membership.objects.get(dataset__slug="math-set").user == owner


def test_an_upload_over_the_cap_is_refused_in_the_page_before_it_is_spooled(owner, dataset, settings, monkeypatch):
    from django.core.files import uploadhandler
    from django.test import Client

    spooled = []
    monkeypatch.setattr(uploadhandler.TemporaryFileUploadHandler, "receive_data_chunk", lambda self, data, start: spooled.append(len(data)))
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    url = reverse("annotator:import_create", args=[dataset.slug])
    token = client.get(url).context["csrf_token"]
    settings.SFTDESK_IMPORT_MAX_BYTES = 10
    response = client.post(url, {"file": SimpleUploadedFile("d.jsonl", b"x" * (3 * 1024 * 1024)), "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 413
    assert "over the import limit of 10 bytes" in response.content.decode()
    assert spooled == []  # not one byte reached the temporary file
    small = client.post(url, {"file": SimpleUploadedFile("d.jsonl", b"x" * 11), "csrfmiddlewaretoken": str(token)})
    assert small.status_code == 413
    assert ImportJob.objects.count() == 0


def test_images_in_samples_become_links_and_pages_carry_a_strict_csp(owner_client, dataset):
    sample = SampleFactory(dataset=dataset, messages=[
        {"role": "user", "content": "Describe it"},
        {"role": "assistant", "content": "![a chart](https://tracker.example/pixel.png?who=me)"},
    ])
    response = owner_client.get(reverse("annotator:sample_detail", args=[dataset.slug, sample.pk]))
    body = response.content.decode()
    assert '<a href="https://tracker.example/pixel.png?who=me" class="image-link" rel="noopener noreferrer nofollow">[a chart]</a>' in body
    assert "<img" not in body
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "img-src 'self' data:" in csp


def test_datasets_named_in_chinese_get_free_slugs(owner_client):
    for _ in range(3):
        assert owner_client.post(reverse("annotator:dataset_create"), {"name": "数学推理"}).status_code == 302
    assert sorted(Membership.objects.values_list("dataset__slug", flat=True)) == ["dataset", "dataset-2", "dataset-3"]
