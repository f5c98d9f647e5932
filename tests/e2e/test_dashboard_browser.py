"""The reviewer dashboard in Debian's Chromium through Playwright: every chart is drawn as SVG with one
mark per datum (areas per status, columns per day, a sparkline per annotator, a dot and whisker per
criterion, a bar per conflict reason, a cell per task type x bucket), the reason bars link to the
filtered queue, Recompute queues a report that a real worker computes while the section polls, and
nothing is logged to the console (a CSP violation would be)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotator.models import Membership
from reviews.models import AgreementReport, ReviewItem
from scoring.models import SampleMetric
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory
from tests.e2e.conftest import open_page
from tests.reviews.test_dashboard import days_before, label, story

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def _data():
    """A reviewer, two annotators who label three samples with some disagreement, the story of six
    samples over four days, two open conflicts and approved samples of two task types."""
    reviewer = UserFactory(username="rita")
    owner = UserFactory(username="olga")
    ann_a, ann_b = UserFactory(username="ann_a"), UserFactory(username="ann_b")
    dataset = DatasetFactory(slug="dash", name="Dashboard set")
    MembershipFactory(user=owner, dataset=dataset, role=Membership.Role.OWNER)
    MembershipFactory(user=reviewer, dataset=dataset, role=Membership.Role.REVIEWER)
    for user in (ann_a, ann_b):
        MembershipFactory(user=user, dataset=dataset, role=Membership.Role.ANNOTATOR)
    today = timezone.localdate()
    s = story(dataset, today)
    scores = {ann_a: [(5, 4, "accept"), (2, 3, "reject"), (4, 4, "accept")], ann_b: [(4, 4, "accept"), (4, 2, "accept"), (1, 5, "reject")]}
    for user, rows in scores.items():
        for sample, (acc, comp, verdict), day in zip(s[:3], rows, (days_before(2, today), days_before(1, today), today), strict=True):
            label(sample, user, day, accuracy=acc, completeness=comp, conciseness=3, verdict=verdict, difficulty="easy")
    ReviewItem.objects.create(dataset=dataset, sample=s[2], is_open=True, severity=6, labels_n=2,
                              reasons=[{"code": "verdict_split"}, {"code": "rejected", "n": 1}])
    ReviewItem.objects.create(dataset=dataset, sample=s[1], is_open=True, severity=4, labels_n=2, reasons=[{"code": "verdict_split"}])
    for task_type, bucket in (("qa", "easy"), ("qa", "hard"), ("code", "medium")):
        sample = SampleFactory(dataset=dataset, status="approved", task_type=task_type)
        SampleMetric.objects.create(dataset=dataset, sample=sample, metric="difficulty_bucket", label=bucket)
    return dataset


def test_the_dashboard_draws_every_chart_and_recomputes_agreement(browser, live_server, celery_worker_process):
    dataset = _data()
    page = open_page(browser, live_server, "rita")
    response = page.goto(f"{live_server.url}/d/{dataset.slug}/dashboard/")
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]

    # Progress: one stacked area per status over the story's five days (the day before it started, then four).
    assert page.locator("#chart-progress svg polygon.area").count() == 5
    assert page.locator("#progress details tbody tr").count() == 5
    # Throughput on the same days: a column per day, a sparkline per annotator.
    assert page.locator("#chart-throughput svg rect.column").count() == 5
    assert page.locator("#throughput svg.spark polyline").count() == 2
    # Conflict reasons: a bar per reason, each a link to the queue filtered by it.
    bars = page.locator("#chart-reasons svg a.bar-link")
    assert bars.count() == 2 and page.locator("#chart-reasons svg rect.bar").count() == 2
    assert bars.nth(0).get_attribute("href") == f"/d/{dataset.slug}/review/?reason=verdict_split"
    assert bars.nth(1).get_attribute("href") == f"/d/{dataset.slug}/review/?reason=rejected"
    # Balance: 3 task types (qa, code, none: the story's approved sample, never scored) x (3 buckets + no bucket).
    assert page.locator("#balance-table tbody td.heat").count() == 12
    assert page.inner_text("#balance-table tfoot").split() == ["Total", "1", "1", "1", "1", "4"]
    # No report yet: no agreement chart; the SVGs actually lay out (a real width in the browser).
    assert page.locator("#chart-agreement").count() == 0
    assert page.evaluate("document.querySelector('#chart-progress svg').getBoundingClientRect().width") > 300

    # Recompute: the section shows the pending report and polls until the worker has computed it.
    page.click("#agreement-recompute")
    page.wait_for_selector("#agreement-pending")
    assert page.get_attribute("#agreement", "hx-trigger") == "every 2s"
    assert AgreementReport.objects.filter(dataset=dataset).count() == 1
    page.wait_for_selector("#agreement[data-status=idle] #chart-agreement", timeout=60_000)
    report = AgreementReport.objects.get(dataset=dataset)
    assert report.status == AgreementReport.Status.SUCCEEDED, report.error
    criteria = report.report["criteria"]
    defined = [c for c in criteria if c["alpha"]["value"] is not None]
    assert page.locator("#chart-agreement svg circle.dot").count() == len(defined) > 0
    with_interval = [c for c in defined if c["alpha"]["low"] is not None and c["alpha"]["high"] is not None]
    assert page.locator("#chart-agreement svg line.whisker").count() == len(with_interval)
    assert page.locator("#agreement table.agreement-table tbody tr").count() == len(criteria)
    # The annotator table came in with it (out of band), one row per annotator.
    assert page.locator("#annotators table.annotator-table tbody tr").count() == 2
    assert page.get_attribute("#agreement", "hx-trigger") is None  # polling stopped

    assert page.dialogs == [] and page.page_errors == []
    assert page.console_errors == []


def test_an_annotator_gets_404(browser, live_server):
    dataset = _data()
    page = open_page(browser, live_server, "ann_a")
    assert page.goto(f"{live_server.url}/d/{dataset.slug}/dashboard/").status == 404
