"""The access sweep: every route of the `annotator` namespace (annotator/urls.py), of the review
desk's `reviews` and `dashboard` namespaces (reviews/urls_desk.py, reviews/urls_dashboard.py) and of
annotator/api_urls.py and reviews/api_urls.py, found from the URL resolver, tried with every method
it takes:

1. someone who is not a member of dataset A gets 404 on A's objects and learns nothing of them;
2. a second annotator gets 404 on every URL that carries the first annotator's assignment (or label),
   and no response to them anywhere contains another annotator's label values or draft, or a
   reviewer's decision;
3. every review route (queue, adjudication, dashboard, review API) answers 404 to the dataset's own
   annotators, as to an outsider;
4. no request changes anything that is not the caller's own.

Routes are not listed by hand: a new route is swept as soon as it exists. A route with a URL kwarg the
sweep cannot fill fails `test_every_route_can_be_filled` (add its filler below); a route without a
dataset in its URL fails unless it is in NOT_DATASET_SCOPED with the reason.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.converters import get_converters
from django.urls.resolvers import RoutePattern
from rest_framework.test import APIClient
from rest_framework.views import APIView

from annotator import services
from annotator.models import (
    Assignment,
    Dataset,
    GoldLabel,
    ImportJob,
    Label,
    Membership,
    Sample,
    SampleRevision,
    Suggestion,
)
from annotator.services.label_import import labels_import
from reviews.models import AgreementReport, ReviewDecision, ReviewItem, StatusChange
from reviews.services import review_decide
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role

# Routes that are legitimately not about one dataset, with the reason.
NOT_DATASET_SCOPED = {
    "annotator:dataset_list": "lists the caller's own datasets (checked below: A is not among the outsider's)",
    "annotator:dataset_create": "creates a new dataset; there is nothing of anyone else's to reach",
    "api-datasets": "lists the caller's own datasets or creates one (checked below: A is not among the outsider's)",
}
# Where the review desk's routes come from: their namespaces and API module. Only owners and reviewers
# of the dataset reach them; annotators get 404 like outsiders.
REVIEW_NAMESPACES = ("reviews", "dashboard")
API_MODULES = ("annotator.api_urls", "reviews.api_urls")
REVIEW_MODULES = ("reviews.api_urls",)
# URL kwargs that name dataset A.
DATASET_KWARGS = ("slug", "dataset_id")
# What a bare `pk` means, by the URL segment before it.
PK_BY_SEGMENT = {
    "samples": "sample_id", "sample": "sample_id",
    "imports": "import_id", "import": "import_id",
    "annotate": "assignment_id", "assignments": "assignment_id", "assignment": "assignment_id",
    "labels": "label_id", "label": "label_id", "my-labels": "label_id",
    "members": "user_id", "member": "user_id",
    "review": "sample_id",  # the adjudication page of a sample: d/<slug>/review/<pk>/
}
# Kwargs whose objects belong to ann1 alone: ann2 must get 404 wherever they appear.
ANN1_OWN = ("assignment_id", "label_id")

SECRET_COMMENT = "zqx-ann1-comment-5b7e"
SECRET_ANSWER = "zqx-ann1-corrected-answer-9c41"
SECRET_DRAFT = "zqx-ann1-draft-3d82"
SECRET_ANN3 = "zqx-ann3-comment-a1f6"
SECRET_RATIONALE = "zqx-owner-rationale-e09b"
SECRETS = (SECRET_COMMENT, SECRET_ANSWER, SECRET_DRAFT, SECRET_ANN3, SECRET_RATIONALE)
A_NAME = "Alpha-private-dataset-77e1"
A_TEXT = "alpha-only-question-41d0"

CONVERTERS = get_converters()
_KWARG = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    name: str  # "annotator:sample_detail" or "api-sample"
    route: str  # the full route, e.g. "api/v1/datasets/<int:dataset_id>/"
    pattern: URLPattern
    is_api: bool
    is_review: bool = False

    @property
    def kwargs(self) -> list[str]:
        return [m["name"] for m in _KWARG.finditer(self.route)]

    def meaning(self, kwarg: str) -> str | None:
        """What object a kwarg names: itself if the sweep knows it, `pk` by the segment before it."""
        if kwarg != "pk":
            return kwarg if kwarg in FILLABLE else None
        before = self.route.split(f"<int:{kwarg}>")[0].split(f"<{kwarg}>")[0]
        literal = [s for s in before.split("/") if s and "<" not in s]
        return PK_BY_SEGMENT.get(literal[-1]) if literal else None

    @property
    def methods(self) -> list[str]:
        """Every method a class-based view defines; GET and POST for a function view (whose
        decorators answer 405 to a method it does not take)."""
        view_class = getattr(self.pattern.callback, "view_class", None) or getattr(self.pattern.callback, "cls", None)
        if view_class is None:
            return ["GET", "POST"]
        return [m.upper() for m in view_class.http_method_names if m not in ("options", "head") and hasattr(view_class, m)]

    @property
    def is_drf(self) -> bool:
        view_class = getattr(self.pattern.callback, "cls", None)
        return isinstance(view_class, type) and issubclass(view_class, APIView)


FILLABLE = ("slug", "dataset_id", "sample_id", "import_id", "assignment_id", "label_id", "user_id")


def _walk(patterns, prefix: str, namespace: str, in_scope: bool, is_api: bool, is_review: bool):
    for p in patterns:
        if isinstance(p, URLResolver):
            module = getattr(p.urlconf_name, "__name__", p.urlconf_name)
            api = is_api or module in API_MODULES
            review = is_review or module in REVIEW_MODULES or p.namespace in REVIEW_NAMESPACES
            scoped = in_scope or api or review or p.namespace == "annotator"
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ":".join(filter(None, [namespace, p.namespace])), scoped, api, review)
        elif in_scope:
            route = prefix + str(p.pattern)
            assert isinstance(p.pattern, RoutePattern), f"{route}: use path(); the sweep reads routes, not regexes"
            assert p.name, f"{route}: every route needs a name"
            yield Route(name=f"{namespace}:{p.name}" if namespace else p.name, route=route, pattern=p, is_api=is_api, is_review=is_review)


def swept_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", "", False, False, False))


ROUTES = swept_routes()


def test_the_sweep_finds_the_routes():
    names = {r.name for r in ROUTES}
    assert {
        "annotator:dataset_list", "annotator:dataset_detail", "annotator:sample_detail", "annotator:import_create",
        "api-datasets", "api-sample", "api-annotation-next", "api-assignment-submit", "api-labels-mine", "api-suggestions",
    } <= names
    review = {r.name for r in ROUTES if r.is_review}
    assert {
        "reviews:queue", "reviews:adjudicate", "dashboard:index",
        "api-review-agreement", "api-review-annotators", "api-review-conflicts", "api-review-settings", "api-review-sample",
        "api-review-decisions", "api-review-audit",
    } <= review
    assert not {n for n in review if not n.startswith(("reviews:", "dashboard:", "api-review-"))}, review
    assert all(r.is_api == r.name.startswith("api-") for r in ROUTES), [r.name for r in ROUTES if r.is_api != r.name.startswith("api-")]
    assert len(names) == len(ROUTES), "route names must be unique"


def test_every_route_can_be_filled():
    unfillable = [f"{r.name} ({r.route}): <{k}>" for r in ROUTES for k in r.kwargs if r.meaning(k) is None]
    assert not unfillable, "the sweep cannot fill these URL kwargs; add them to FILLABLE / PK_BY_SEGMENT: " + "; ".join(unfillable)
    unscoped = [r.name for r in ROUTES if not set(r.kwargs) & set(DATASET_KWARGS) and r.name not in NOT_DATASET_SCOPED]
    assert not unscoped, f"routes without a dataset in the URL must be listed in NOT_DATASET_SCOPED with the reason: {unscoped}"
    stale = set(NOT_DATASET_SCOPED) - {r.name for r in ROUTES}
    assert not stale, f"NOT_DATASET_SCOPED names routes that no longer exist: {stale}"


# --- the scenario ------------------------------------------------------------------------------

@dataclass
class Scenario:
    a: Dataset
    b: Dataset
    owner: object
    ann1: object
    ann2: object
    outsider: object
    labelled: Sample  # carries ann1's submitted label
    reserved: Sample  # carries ann1's live reservation (with a draft)
    decided: Sample  # labelled by ann1 and ann3, rejected by the owner with a rationale
    submitted_assignment: Assignment
    reserved_assignment: Assignment
    label: Label
    job: ImportJob

    def values(self, meaning: str) -> list:
        return {
            "slug": [self.a.slug],
            "dataset_id": [self.a.pk],
            "sample_id": [self.labelled.pk, self.reserved.pk, self.decided.pk],
            "import_id": [self.job.pk],
            "assignment_id": [self.submitted_assignment.pk, self.reserved_assignment.pk],
            "label_id": [self.label.pk],
            "user_id": [self.ann1.pk],
        }[meaning]


@pytest.fixture
def scenario(db, tmp_path) -> Scenario:
    owner, ann1, ann2, outsider = (UserFactory(username=n) for n in ("owner-a", "ann1", "ann2", "owner-b"))
    a = DatasetFactory(name=A_NAME, slug="alpha")
    for user, role in ((owner, Role.OWNER), (ann1, Role.ANNOTATOR), (ann2, Role.ANNOTATOR)):
        MembershipFactory(user=user, dataset=a, role=role)
    services.annotation_settings_set(actor=None, dataset=a, values={"overlap": 2})
    samples = [
        SampleFactory(dataset=a, messages=[{"role": "user", "content": f"{A_TEXT} {n}?"}, {"role": "assistant", "content": f"Answer {n}."}])
        for n in range(3)
    ]
    job = ImportJob.objects.create(dataset=a, original_name="alpha.jsonl")
    b = DatasetFactory(name="Bravo", slug="bravo")
    MembershipFactory(user=outsider, dataset=b, role=Role.OWNER)
    SampleFactory(dataset=b)

    first = services.assignment_next(user=ann1, dataset=a)
    second = services.assignment_next(user=ann1, dataset=a, exclude=(first.pk,))
    label = services.assignment_submit(user=ann1, dataset=a, assignment_id=first.pk, values={
        "accuracy": 2, "completeness": 3, "conciseness": 4, "verdict": "needs_fix", "difficulty": "hard",
        "error_tags": ["factual_error"], "corrected_answer": SECRET_ANSWER, "comment": SECRET_COMMENT,
    })
    services.assignment_draft_save(user=ann1, dataset=a, assignment_id=second.pk, values={"comment": SECRET_DRAFT, "accuracy": 5})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Assignment.Status.SUBMITTED, Assignment.Status.RESERVED)
    # A sample labelled by ann1 and ann3 (moved in from another tool) and rejected by the owner: its
    # labels and the decision are for the owner and reviewers only.
    decided = SampleFactory(dataset=a, external_id="decided-1", messages=[
        {"role": "user", "content": f"{A_TEXT} decided?"}, {"role": "assistant", "content": "Decided answer."}])
    rows = [
        {"external_id": "decided-1", "annotator": "ann1", "accuracy": 2, "completeness": 3, "conciseness": 3, "verdict": "needs_fix",
         "corrected_answer": SECRET_ANSWER, "comment": SECRET_COMMENT},
        {"external_id": "decided-1", "annotator": "ann3", "accuracy": 1, "completeness": 2, "conciseness": 3, "verdict": "reject",
         "comment": SECRET_ANN3},
    ]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    labels_import(dataset=a, path=tmp_path / "labels.jsonl")
    decided.refresh_from_db()
    assert decided.status == Sample.Status.IN_REVIEW
    review_decide(user=owner, dataset=a, sample_id=decided.pk, decision="reject", rationale=SECRET_RATIONALE,
                  expected_version=decided.version)
    by_pk = {s.pk: s for s in samples}
    return Scenario(
        a=a, b=b, owner=owner, ann1=ann1, ann2=ann2, outsider=outsider, labelled=by_pk[first.sample_id],
        reserved=by_pk[second.sample_id], decided=decided, submitted_assignment=first, reserved_assignment=second, label=label, job=job,
    )


@dataclass(frozen=True)
class Call:
    route: Route
    url: str
    filled: dict  # meaning -> value

    @property
    def carries_ann1s_own(self) -> bool:
        return any(m in ANN1_OWN for m in self.filled)


def calls(scenario: Scenario) -> list[Call]:
    out = []
    for route in ROUTES:
        kwargs = route.kwargs
        meanings = [route.meaning(k) for k in kwargs]
        assert None not in meanings, f"{route.name}: unfillable kwarg (see test_every_route_can_be_filled)"
        for combo in itertools.product(*(scenario.values(m) for m in meanings)):
            values = dict(zip(kwargs, combo, strict=True))
            url = "/" + _KWARG.sub(lambda m, v=values: CONVERTERS[m["converter"] or "str"].to_url(v[m["name"]]), route.route)
            match = resolve(url)
            assert match.func is route.pattern.callback, f"{url} resolves to {match.view_name}, not {route.name}"
            out.append(Call(route=route, url=url, filled=dict(zip(meanings, combo, strict=True))))
    return out


def request(client: APIClient, call: Call, method: str, *, htmx: bool = False):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    if method == "GET":
        return client.get(call.url, **headers)
    if call.route.is_drf:
        return client.generic(method, call.url, "{}", content_type="application/json", **headers)
    return getattr(client, method.lower())(call.url, {}, **headers)


def body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def snapshot(*, exclude_annotator=None) -> dict:
    """Every row the annotator app keeps, to show a sweep changed nothing (but the caller's own)."""
    assignments = Assignment.objects.order_by("pk")
    if exclude_annotator is not None:
        assignments = assignments.exclude(annotator=exclude_annotator)
    return {
        "datasets": list(Dataset.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values()),
        "samples": list(Sample.objects.order_by("pk").values()),
        "revisions": list(SampleRevision.objects.order_by("pk").values()),
        "imports": list(ImportJob.objects.order_by("pk").values()),
        "assignments": list(assignments.values()),
        "labels": list(Label.objects.order_by("pk").values()),
        "gold": list(GoldLabel.objects.order_by("pk").values()),
        "suggestions": list(Suggestion.objects.order_by("pk").values()),
        "review_items": list(ReviewItem.objects.order_by("pk").values()),
        "decisions": list(ReviewDecision.objects.order_by("pk").values()),
        "status_changes": list(StatusChange.objects.order_by("pk").values()),
        "agreement_reports": list(AgreementReport.objects.order_by("pk").values()),
    }


def sweep(client: APIClient, scenario: Scenario, *, only_review: bool = False):
    """Yield (call, method, htmx, response) for every route (or every review route), filled URL and method."""
    for call in calls(scenario):
        if only_review and not call.route.is_review:
            continue
        for method in call.route.methods:
            yield call, method, False, request(client, call, method)
            if method == "GET" and not call.route.is_api:
                yield call, method, True, request(client, call, method, htmx=True)


# --- the sweeps --------------------------------------------------------------------------------

def test_an_outsider_gets_404_on_everything_of_a_dataset_not_theirs(scenario):
    client = APIClient()
    client.force_login(scenario.outsider)
    before = snapshot()
    problems, found = [], {}
    for call, method, htmx, response in sweep(client, scenario):
        where = f"{method} {call.url}{' (htmx)' if htmx else ''} [{call.route.name}] -> {response.status_code}"
        text = body(response)
        leaked = [s for s in (*SECRETS, A_NAME, A_TEXT) if s in text]
        if leaked:
            problems.append(f"{where}: the body contains {leaked}")
        if call.route.name in NOT_DATASET_SCOPED:
            if response.status_code >= 500:
                problems.append(where)
            continue
        found.setdefault(call.url, set()).add(response.status_code)
        # A class-based view names its methods, so each must answer 404; a function view may answer
        # 405 to a method it does not take (that says nothing about the dataset).
        allowed = {404} if call.route.is_drf else {404, 405}
        if response.status_code not in allowed:
            problems.append(f"{where}: expected 404")
    problems += [f"{url}: no method answered 404 ({sorted(codes)})" for url, codes in found.items() if 404 not in codes]
    assert not problems, "\n".join(problems)
    assert snapshot() == before


def test_a_second_annotator_never_reaches_the_first_ones_assignment_or_label(scenario):
    client = APIClient()
    client.force_login(scenario.ann2)
    before = snapshot(exclude_annotator=scenario.ann2)
    problems, swept = [], 0
    for call, method, htmx, response in sweep(client, scenario):
        swept += 1
        where = f"{method} {call.url}{' (htmx)' if htmx else ''} [{call.route.name}] -> {response.status_code}"
        leaked = [s for s in SECRETS if s in body(response)]
        if leaked:
            problems.append(f"{where}: the body contains ann1's {leaked}")
        if response.status_code >= 500:
            problems.append(f"{where}: server error")
        if call.carries_ann1s_own:
            allowed = {404} if call.route.is_drf else {404, 405}
            if response.status_code not in allowed:
                problems.append(f"{where}: expected 404 for ann1's {[m for m in call.filled if m in ANN1_OWN]}")
    assert swept > len(ROUTES)
    assert not problems, "\n".join(problems)
    # ann2 may have taken samples of their own (the annotate page and /next do that); nothing else changed
    assert snapshot(exclude_annotator=scenario.ann2) == before


def test_the_second_annotator_is_served_the_first_ones_samples_without_their_values(scenario):
    """The sweep above only means something if ann2 does see ann1's samples: k=2 leaves room on both."""
    client = APIClient()
    client.force_login(scenario.ann2)
    seen = set()
    for _ in range(3):
        response = client.post(f"/api/v1/datasets/{scenario.a.pk}/annotation/next/", {}, format="json")
        assert response.status_code == 200
        assert not [s for s in SECRETS if s in body(response)]
        assignment = response.json()["assignment"]
        seen.add(assignment["sample"]["id"])
        client.post(f"/api/v1/datasets/{scenario.a.pk}/assignments/{assignment['id']}/skip/", {"reason": "sweep"}, format="json")
    assert {scenario.labelled.pk, scenario.reserved.pk} <= seen


def test_every_review_route_answers_404_to_the_datasets_own_annotators(scenario):
    """The queue, adjudication, dashboards and the review API are for owners and reviewers: ann1 (whose
    labels are there) and ann2 get 404 like an outsider, and see no label, decision or rationale."""
    review_routes = [r for r in ROUTES if r.is_review]
    assert review_routes
    before = snapshot()
    for annotator in (scenario.ann1, scenario.ann2):
        client = APIClient()
        client.force_login(annotator)
        others = [s for s in SECRETS if annotator != scenario.ann1 or s in (SECRET_ANN3, SECRET_RATIONALE)]
        problems, found = [], {}
        for call, method, htmx, response in sweep(client, scenario, only_review=True):
            where = f"{annotator.username}: {method} {call.url}{' (htmx)' if htmx else ''} [{call.route.name}] -> {response.status_code}"
            leaked = [s for s in (*others, A_NAME) if s in body(response)]
            if leaked:
                problems.append(f"{where}: the body contains {leaked}")
            found.setdefault(call.url, set()).add(response.status_code)
            allowed = {404} if call.route.is_drf else {404, 405}
            if response.status_code not in allowed:
                problems.append(f"{where}: expected 404")
        problems += [f"{annotator.username}: {url}: no method answered 404 ({sorted(codes)})" for url, codes in found.items() if 404 not in codes]
        assert not problems, "\n".join(problems)
        assert {c.route.name for c in calls(scenario) if c.route.is_review} == {r.name for r in review_routes}
    assert snapshot() == before


def test_the_owner_does_reach_the_review_routes(scenario):
    """The 404s above mean something only if the same URLs answer the owner."""
    client = APIClient()
    client.force_login(scenario.owner)
    problems = []
    for call in calls(scenario):
        if not call.route.is_review or "GET" not in call.route.methods:
            continue
        response = client.get(call.url)
        if response.status_code not in ((200, 302) if call.route.is_drf else (200, 302, 405)):  # a POST-only function view: 405
            problems.append(f"GET {call.url} [{call.route.name}] -> {response.status_code}")
    assert not problems, "\n".join(problems)
    decided = client.get(f"/api/v1/datasets/{scenario.a.pk}/review/samples/{scenario.decided.pk}/").json()
    assert SECRET_RATIONALE in json.dumps(decided) and SECRET_ANN3 in json.dumps(decided)
