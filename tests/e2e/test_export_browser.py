"""The export pages in Debian's Chromium through Playwright, with a real worker: an owner goes from the
dataset page to a new export, previews it (counts per stratum, charts as SVG, the canonical spec in the
JSON box), builds it, watches it succeed without reloading, and creates a job token whose key is shown
once. No console errors (a CSP violation would be one)."""

from __future__ import annotations

import re

import pytest

from annotator.models import Sample
from exports.models import ApiToken, Export
from tests.conftest import SampleFactory
from tests.e2e.conftest import eventually, open_page

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def test_an_owner_previews_builds_and_makes_a_job_token(browser, live_server, owner, dataset, celery_worker_process):
    # given 9 approved samples (6 qa, 3 code) and 2 new ones
    for i in range(11):
        SampleFactory(dataset=dataset, status=Sample.Status.APPROVED if i < 9 else Sample.Status.NEW, task_type="qa" if i % 3 else "code")
    page = open_page(browser, live_server, owner.username)

    # the dataset page links the exports; the exports page the form
    page.goto(f"{live_server.url}/d/{dataset.slug}/")
    page.click("#exports-link")
    page.wait_for_url(f"{live_server.url}/d/{dataset.slug}/exports/")
    page.click("#new-export")
    page.wait_for_url(f"{live_server.url}/d/{dataset.slug}/exports/new/")

    # when the owner asks for at most 4 per task type, 1 for validation, and previews
    page.fill("input[name=name]", "browser-export")
    page.check("input[name=balance_by][value=task_type]")
    page.select_option("select[name=balance_mode]", "cap")
    page.fill("input[name=cap]", "4")
    page.fill("input[name=validation]", "1")
    page.click("#preview-button")

    # then the preview shows the counts and the charts as SVG, and fills the JSON box
    page.wait_for_selector("#preview #preview-chosen")
    assert page.inner_text("#preview-pool") == "9" and page.inner_text("#preview-chosen") == "7"
    assert page.locator("#preview tr[data-stratum]").count() == 2
    assert page.locator("#chart-task-type svg rect.bar-selected").count() == 2
    assert page.locator("#preview figure.pool-chart svg").count() >= 2
    assert '"cap": 4' in page.input_value("#id_spec_json")
    assert page.url == f"{live_server.url}/d/{dataset.slug}/exports/new/"  # htmx: no navigation
    assert Export.objects.count() == 0

    # when the owner builds
    page.click("#build-button")
    page.wait_for_url(re.compile(rf"{re.escape(live_server.url)}/d/{dataset.slug}/exports/\d+/$"))
    export = Export.objects.get()

    # then the page follows the build by itself until it has succeeded, and lists the files
    page.wait_for_selector('#export-body[data-status="succeeded"]', timeout=60_000)
    assert (Export.objects.get().status, Export.objects.get().sample_count) == ("succeeded", 7)
    assert page.locator(".files-table a[href$='/files/data/train.messages.jsonl']").count() == 1
    assert "python examples/finetune.py" in page.inner_text("#snippet-finetune")

    # when the owner creates a job token
    page.fill("#job-token input[name=name]", "nightly")
    page.click("#create-token")

    # then its key is shown once, and the token is read-only and for this dataset
    page.wait_for_selector("#new-key")
    key = page.inner_text("#new-key").strip()
    assert key.startswith("sft_")
    token = eventually(lambda: ApiToken.objects.filter(name="nightly").first())
    assert (token.dataset_id, token.can_write, token.prefix) == (dataset.pk, False, key[:12])
    assert f"export SFTDESK_TOKEN={key}" in page.inner_text("#snippet-env")
    page.reload()
    page.wait_for_selector("#create-token")
    assert key not in page.content()
    assert export.pk == Export.objects.get().pk

    assert page.dialogs == [] and page.page_errors == [] and page.console_errors == []
