"""In Debian's Chromium through Playwright: log in, upload a file, watch the progress bar finish
(a real worker imports it), open a sample with a <script> in its text and see it rendered inert."""

from __future__ import annotations

import json

import pytest
from django.db import connections

from annotator.models import Sample
from tests.conftest import CHROMIUM, DatasetFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="en-US")
        pg = context.new_page()
        dialogs = []
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.dialogs = dialogs
        console_errors = []
        pg.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        pg.console_errors = console_errors
        yield pg
        browser.close()
        # ORM calls made while Playwright's loop runs get their own connection; close it so the
        # test database can be dropped.
        connections.close_all()


def test_login_upload_progress_and_inert_script(page, live_server, celery_worker_process, tmp_path):
    user = UserFactory(username="expert")
    dataset = DatasetFactory(name="Browser set", slug="browser-set")
    MembershipFactory(user=user, dataset=dataset)
    evil = 'Sure.<script>window.__pwned = 1; alert("xss")</script> <img src=x onerror="window.__pwned = 2">'
    records = [{"id": "evil", "instruction": "Say something", "input": "", "output": evil}]
    records += [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(20_000)]
    upload = tmp_path / "upload.jsonl"
    upload.write_text("".join(json.dumps(r) + "\n" for r in records))

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "expert")
    page.fill("input[name=password]", "pw-for-tests")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.is_visible("text=Browser set")

    page.goto(f"{live_server.url}/d/browser-set/import/")
    page.set_input_files("input[name=file]", str(upload))
    page.click("main button[type=submit]")
    page.wait_for_url("**/imports/*/")
    page.wait_for_selector("#import-progress[data-status=succeeded]", timeout=120_000)  # htmx polling swaps it in
    assert page.get_attribute("#import-bar", "value") == "100.0"
    assert "20,001 imported" in page.inner_text("#import-progress")
    assert Sample.objects.filter(dataset=dataset).count() == 20_001

    page.goto(f"{live_server.url}/d/browser-set/?q=evil")
    page.click("a:text-is('evil')")
    page.wait_for_selector("article.turn.assistant")
    answer = page.inner_text("article.turn.assistant")
    assert '<script>window.__pwned = 1; alert("xss")</script>' in answer  # shown as text
    assert page.evaluate("window.__pwned") is None
    assert page.locator("article.turn.assistant script, article.turn.assistant img").count() == 0
    assert page.dialogs == []
    assert [e for e in page.console_errors if "Content Security Policy" in e] == []

    with page.expect_navigation():  # switches without a button (static JS, CSP-safe)
        page.select_option("select[name=language]", "zh-hans")
    assert page.inner_text("header nav").split()[0] == "数据集"


def test_score_the_demo_and_read_the_quality_report(page, live_server, celery_worker_process):
    import io

    from django.core.management import call_command

    from annotator.models import Dataset, Membership

    user = UserFactory(username="reviewer")
    call_command("load_demo", stdout=io.StringIO())
    MembershipFactory(user=user, dataset=Dataset.objects.get(slug="demo"), role=Membership.Role.OWNER)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "pw-for-tests")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/d/demo/")
    page.click("form[action$='/score/'] button")
    page.wait_for_url("**/quality/")
    page.wait_for_selector("#run-status[data-status=succeeded]", timeout=240_000)  # polled until the workers finish
    page.reload()
    for chart in ("flags", "duplicates", "clusters", "difficulty", "lengths"):
        assert page.locator(f"#chart-{chart} svg rect").count() > 0, chart
    assert page.locator("#chart-flags title", has_text="refusal: 2").count() == 1
    page.goto(f"{live_server.url}/d/demo/?flag=near_duplicate")
    page.click("a:text-is('demo-054')")
    assert "near-duplicate of sample demo-031" in page.inner_text("#sample-scores")
    assert page.console_errors == []
