"""The access sweep: every route of the `annotator` namespace (annotator/urls.py), of the review
desk's `reviews` and `dashboard` namespaces (reviews/urls_desk.py, reviews/urls_dashboard.py), of the
`scoring` and `exports` namespaces (scoring/urls.py, exports/urls.py) and of annotator/api_urls.py,
reviews/api_urls.py, scoring/api_urls.py and exports/api_urls.py, found from the URL resolver, tried
with every method it takes:

1. someone who is not a member of dataset A gets 404 on A's objects and learns nothing of them;
2. a second annotator gets 404 on every URL that carries the first annotator's assignment (or label),
   or someone else's API token, and no response to them anywhere contains another annotator's label
   values or draft, a reviewer's decision, A's scores or A's exports;
3. every reviewer-only route (review queue, adjudication, dashboards, the quality report and scoring
   runs, exports and their files, and their APIs) answers 404 to the dataset's own annotators, by
   session or by their own job token, as to an outsider: annotators label blind;
4. a job token for another dataset gets 404 on every API route of A, even when its user owns A;
5. no request changes anything that is not the caller's own.

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
from django.conf import settings
from django.db.models import Value
from django.db.models.functions import Concat
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
from exports import services as export_services
from exports.models import ApiToken, Export, ExportFile
from exports.tokens import api_token_create
from reviews.models import AgreementReport, ReviewDecision, ReviewItem, StatusChange
from reviews.services import review_decide
from scoring import services as scoring_services
from scoring.models import SampleFlag, SampleMetric, ScoringChunk, ScoringRun
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role

# Routes that are legitimately not about one dataset, with the reason.
NOT_DATASET_SCOPED = {
    "annotator:dataset_list": "lists the caller's own datasets (checked below: A is not among the outsider's)",
    "annotator:dataset_create": "creates a new dataset; there is nothing of anyone else's to reach",
    "api-datasets": "lists the caller's own datasets or creates one (checked below: A is not among the outsider's)",
    "exports:token_list": "lists and makes the caller's own API tokens (checked below: A and others' tokens are not shown)",
    "exports:token_revoke": "revokes one of the caller's own tokens (checked below: anyone else's answers 404)",
}
# The namespaces and API modules swept. Only owners and reviewers of the dataset reach the review desk,
# the quality report and scoring runs, and exports (they hold scores and review outcomes, and annotators
# label blind): annotators get 404 like outsiders.
ANNOTATOR_NAMESPACES = ("annotator",)
REVIEWER_NAMESPACES = ("reviews", "dashboard", "scoring", "exports")
API_MODULES = ("annotator.api_urls", "reviews.api_urls", "scoring.api_urls", "exports.api_urls")
REVIEWER_MODULES = ("reviews.api_urls", "scoring.api_urls", "exports.api_urls")
# Routes of those namespaces that are not for reviewers only, with the reason.
NOT_REVIEWER_ONLY = {
    "exports:token_list": "every user's own API tokens: an annotator may make a job token too (it reads what they may read)",
    "exports:token_revoke": "revokes one of the caller's own tokens",
}
# Reviewer-only routes that answer the dataset's annotators an empty 200 rather than 404, with the reason
# (checked below: the body is empty). Outsiders still get 404.
EMPTY_FOR_ANNOTATORS = {
    "scoring:run_status": "the dataset page's htmx slot for the run's progress, loaded for reviewers only; an empty "
                          "answer swaps a stale poll away (tests/scoring/test_pages_api.py pins it)",
}
# Reviewer-only routes that are the owner's alone (a reviewer gets 404 too), with the reason.
OWNER_ONLY = {
    "reviews:review_rule": "the review rule is the owner's setting",
}
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
    "exports": "export_id", "export": "export_id",
    "tokens": "token_id", "token": "token_id",
}
# Kwargs whose objects belong to one user, never to ann2 or the outsider: ann1's assignments and label,
# ann1's and the owner's API tokens. Anyone else gets 404 wherever they appear.
PERSONAL = ("assignment_id", "label_id", "token_id")

SECRET_COMMENT = "zqx-ann1-comment-5b7e"
SECRET_ANSWER = "zqx-ann1-corrected-answer-9c41"
SECRET_DRAFT = "zqx-ann1-draft-3d82"
SECRET_ANN1_TOKEN = "zqx-ann1-token-name-0c5d"
SECRET_ANN3 = "zqx-ann3-comment-a1f6"
SECRET_RATIONALE = "zqx-owner-rationale-e09b"
SECRET_OWNER_TOKEN = "zqx-owner-token-name-6a2f"
# What scoring and exports wrote about A: for owners and reviewers only.
SECRET_FLAG = "zqx-flag-reason-8d13"  # stamped on the reason of A's flag
SECRET_EXPORT = "zqx-alpha-export-2e9a"  # A's export's name (and its files')
ANN1_SECRETS = (SECRET_COMMENT, SECRET_ANSWER, SECRET_DRAFT, SECRET_ANN1_TOKEN)
REVIEWER_SECRETS = (SECRET_ANN3, SECRET_RATIONALE, SECRET_FLAG, SECRET_EXPORT)
SECRETS = (*ANN1_SECRETS, *REVIEWER_SECRETS, SECRET_OWNER_TOKEN)
A_NAME = "Alpha-private-dataset-77e1"
A_TEXT = "alpha-only-question-41d0"

_KWARG = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    name: str  # "annotator:sample_detail" or "api-sample"
    route: str  # the full route, e.g. "api/v1/datasets/<int:dataset_id>/"
    pattern: URLPattern
    is_api: bool
    reviewer_only: bool = False

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


FILLABLE = (
    "slug", "dataset_id", "sample_id", "import_id", "assignment_id", "label_id", "user_id",
    "run_id", "fmt", "export_id", "file_path", "token_id",
)


def _walk(patterns, prefix: str, namespace: str, in_scope: bool, is_api: bool, reviewer_only: bool):
    for p in patterns:
        if isinstance(p, URLResolver):
            module = getattr(p.urlconf_name, "__name__", p.urlconf_name)
            api = is_api or module in API_MODULES
            reviewers = reviewer_only or module in REVIEWER_MODULES or p.namespace in REVIEWER_NAMESPACES
            scoped = in_scope or api or reviewers or p.namespace in ANNOTATOR_NAMESPACES
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ":".join(filter(None, [namespace, p.namespace])), scoped, api, reviewers)
        elif in_scope:
            route = prefix + str(p.pattern)
            assert isinstance(p.pattern, RoutePattern), f"{route}: use path(); the sweep reads routes, not regexes"
            assert p.name, f"{route}: every route needs a name"
            name = f"{namespace}:{p.name}" if namespace else p.name
            yield Route(name=name, route=route, pattern=p, is_api=is_api, reviewer_only=reviewer_only and name not in NOT_REVIEWER_ONLY)


def swept_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", "", False, False, False))


ROUTES = swept_routes()
CONVERTERS = get_converters()  # after the URLconf is loaded: scoring/urls.py registers its own converter


def test_the_sweep_finds_the_routes():
    names = {r.name for r in ROUTES}
    assert {
        "annotator:dataset_list", "annotator:dataset_detail", "annotator:sample_detail", "annotator:import_create",
        "api-datasets", "api-sample", "api-annotation-next", "api-assignment-submit", "api-labels-mine", "api-suggestions",
        "exports:token_list", "exports:token_revoke",
    } <= names
    reviewers = {r.name for r in ROUTES if r.reviewer_only}
    assert {
        "reviews:queue", "reviews:adjudicate", "dashboard:index",
        "api-review-agreement", "api-review-annotators", "api-review-conflicts", "api-review-settings", "api-review-sample",
        "api-review-decisions", "api-review-audit",
        "scoring:run_start", "scoring:quality", "scoring:run_status", "scoring:report",
        "api-scoring-runs", "api-scoring-run", "api-sample-scores", "api-quality",
        "exports:export_list", "exports:export_new", "exports:export_preview", "exports:export_detail", "exports:export_token",
        "api-exports", "api-export-preview", "api-export-latest", "api-export", "api-export-file-sign", "api-export-file",
    } <= reviewers
    prefixes = ("reviews:", "dashboard:", "scoring:", "exports:", "api-review-", "api-scoring-", "api-sample-scores", "api-quality", "api-export")
    assert not {n for n in reviewers if not n.startswith(prefixes)}, reviewers
    assert not set(NOT_REVIEWER_ONLY) & reviewers
    assert set(NOT_REVIEWER_ONLY) | set(EMPTY_FOR_ANNOTATORS) <= names, "NOT_REVIEWER_ONLY / EMPTY_FOR_ANNOTATORS name routes that no longer exist"
    assert set(EMPTY_FOR_ANNOTATORS) | set(OWNER_ONLY) <= reviewers
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
    run: ScoringRun  # finished, with metrics and a flag
    export: Export  # built, with its files on disk
    tokens: list[ApiToken]  # ann1's and the owner's job tokens for A

    def values(self, meaning: str) -> list:
        return {
            "slug": [self.a.slug],
            "dataset_id": [self.a.pk],
            "sample_id": [self.labelled.pk, self.reserved.pk, self.decided.pk],
            "import_id": [self.job.pk],
            "assignment_id": [self.submitted_assignment.pk, self.reserved_assignment.pk],
            "label_id": [self.label.pk],
            "user_id": [self.ann1.pk],
            "run_id": [self.run.pk],
            "fmt": ["jsonl", "csv"],
            "export_id": [self.export.pk],
            "file_path": sorted(self.export.files.values_list("path", flat=True)),
            "token_id": [t.pk for t in self.tokens],
        }[meaning]


@pytest.fixture
def scenario(db, tmp_path, settings) -> Scenario:
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
        {"role": "user", "content": f"{A_TEXT} decided?"}, {"role": "assistant", "content": "As an AI language model, I cannot decide."}])
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

    # A's scores: a finished run of the rules (the refusal above is flagged), the flag's reason stamped
    # so that it is found in any response that shows it.
    run = scoring_services.run_inline(run_id=scoring_services.run_create(user=None, dataset=a, metrics="rules", enqueue=False).pk)
    assert run.status == ScoringRun.Status.SUCCEEDED
    assert SampleFlag.objects.filter(dataset=a, sample=decided, rule="refusal").update(reason=Concat("reason", Value(f" ({SECRET_FLAG})"))) == 1
    # A's export, built, of every sample whatever its status (so its files hold A's text).
    settings.EXPORT_ROOT = tmp_path / "exports"
    export = export_services.export_create(user=owner, dataset=a, enqueue=False, spec={
        "name": SECRET_EXPORT, "filters": {"status": ["new", "annotating", "in_review", "approved", "rejected"]}})
    export = export_services.export_build(export_id=export.pk)
    assert export.status == Export.Status.SUCCEEDED and export.files.filter(path="samples.jsonl").exists(), export.error
    # Job tokens for A: ann1's own (an annotator may make one) and the owner's.
    tokens = [api_token_create(user=ann1, name=SECRET_ANN1_TOKEN, dataset=a)[0],
              api_token_create(user=owner, name=SECRET_OWNER_TOKEN, dataset=a)[0]]
    by_pk = {s.pk: s for s in samples}
    return Scenario(
        a=a, b=b, owner=owner, ann1=ann1, ann2=ann2, outsider=outsider, labelled=by_pk[first.sample_id],
        reserved=by_pk[second.sample_id], decided=decided, submitted_assignment=first, reserved_assignment=second, label=label, job=job,
        run=run, export=export, tokens=tokens,
    )


@dataclass(frozen=True)
class Call:
    route: Route
    url: str
    filled: dict  # meaning -> value

    @property
    def carries_someone_elses(self) -> bool:
        """The URL names an object of one user (PERSONAL): never the caller's in these sweeps."""
        return any(m in PERSONAL for m in self.filled)


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


def snapshot(*, exclude_user=None, exclude_token=None) -> dict:
    """Every row the annotator, review, scoring and export apps keep, and the export files on disk, to show
    a sweep changed nothing (but the caller's own: `exclude_user`'s assignments and tokens, the token used)."""
    assignments = Assignment.objects.order_by("pk")
    tokens = ApiToken.objects.order_by("pk")
    if exclude_user is not None:
        assignments = assignments.exclude(annotator=exclude_user)
        tokens = tokens.exclude(user=exclude_user)
    if exclude_token is not None:
        tokens = tokens.exclude(pk=exclude_token.pk)
    root = settings.EXPORT_ROOT
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
        "scoring_runs": list(ScoringRun.objects.order_by("pk").values()),
        "scoring_chunks": list(ScoringChunk.objects.order_by("pk").values()),
        "metrics": list(SampleMetric.objects.order_by("pk").values()),
        "flags": list(SampleFlag.objects.order_by("pk").values()),
        "exports": list(Export.objects.order_by("pk").values()),
        "export_files": list(ExportFile.objects.order_by("pk").values()),
        "tokens": list(tokens.values()),
        "files_on_disk": sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file()),
    }


def sweep(client: APIClient, scenario: Scenario, *, reviewer_only: bool = False, api_only: bool = False):
    """Yield (call, method, htmx, response) for every route (or every reviewer-only / API route), filled URL and method."""
    for call in calls(scenario):
        if (reviewer_only and not call.route.reviewer_only) or (api_only and not call.route.is_api):
            continue
        for method in call.route.methods:
            yield call, method, False, request(client, call, method)
            if method == "GET" and not call.route.is_api:
                yield call, method, True, request(client, call, method, htmx=True)


def not_found(call: Call) -> set[int]:
    """What "not found" may be: 404; for a function view also 405 to a method it does not take (that says
    nothing about the dataset). A class-based view names its methods, so each must answer 404."""
    return {404} if call.route.is_drf else {404, 405}


def bearer(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


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
        if call.route.name in NOT_DATASET_SCOPED and not call.carries_someone_elses:
            if response.status_code >= 500:
                problems.append(where)
            continue
        found.setdefault(call.url, set()).add(response.status_code)
        if response.status_code not in not_found(call):
            problems.append(f"{where}: expected 404")
    problems += [f"{url}: no method answered 404 ({sorted(codes)})" for url, codes in found.items() if 404 not in codes]
    assert not problems, "\n".join(problems)
    assert snapshot() == before


def test_a_second_annotator_never_reaches_the_first_ones_assignment_or_label(scenario):
    """Nor anyone's API token, nor (annotators label blind) A's scores or exports anywhere."""
    client = APIClient()
    client.force_login(scenario.ann2)
    before = snapshot(exclude_user=scenario.ann2)
    problems, swept = [], 0
    for call, method, htmx, response in sweep(client, scenario):
        swept += 1
        where = f"{method} {call.url}{' (htmx)' if htmx else ''} [{call.route.name}] -> {response.status_code}"
        leaked = [s for s in SECRETS if s in body(response)]
        if leaked:
            problems.append(f"{where}: the body contains {leaked}")
        if response.status_code >= 500:
            problems.append(f"{where}: server error")
        if call.carries_someone_elses and response.status_code not in not_found(call):
            problems.append(f"{where}: expected 404 for someone else's {[m for m in call.filled if m in PERSONAL]}")
    assert swept > len(ROUTES)
    assert not problems, "\n".join(problems)
    # ann2 may have taken samples of their own (the annotate page and /next do that); nothing else changed
    assert snapshot(exclude_user=scenario.ann2) == before


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


def test_every_reviewer_only_route_answers_404_to_the_datasets_own_annotators(scenario):
    """The review queue, adjudication, dashboards, the quality report and scoring runs, exports and their
    files, and their APIs are for owners and reviewers: ann1 (whose labels are there) and ann2 get 404 like
    an outsider, by session and by a job token of ann1's own for A, and see no label, decision, rationale,
    score or export. (EMPTY_FOR_ANNOTATORS routes answer them an empty 200 instead.) The token may write,
    so that no read-only refusal answers first."""
    reviewer_routes = [r for r in ROUTES if r.reviewer_only]
    assert reviewer_routes
    token, ann1_key = api_token_create(user=scenario.ann1, name="ann1-sweep", dataset=scenario.a, can_write=True)
    before = snapshot(exclude_token=token)
    session_ann1, session_ann2 = APIClient(), APIClient()
    session_ann1.force_login(scenario.ann1)
    session_ann2.force_login(scenario.ann2)
    clients = (("ann1", session_ann1, False), ("ann2", session_ann2, False), ("ann1's token", bearer(ann1_key), True))
    for who, client, api_only in clients:
        others = REVIEWER_SECRETS + ((SECRET_OWNER_TOKEN,) if who.startswith("ann1") else (*ANN1_SECRETS, SECRET_OWNER_TOKEN))
        problems, found = [], {}
        for call, method, htmx, response in sweep(client, scenario, reviewer_only=True, api_only=api_only):
            where = f"{who}: {method} {call.url}{' (htmx)' if htmx else ''} [{call.route.name}] -> {response.status_code}"
            text = body(response)
            leaked = [s for s in (*others, A_NAME) if s in text]
            if leaked:
                problems.append(f"{where}: the body contains {leaked}")
            if call.route.name in EMPTY_FOR_ANNOTATORS:
                if (response.status_code, text.strip()) != (200, ""):
                    problems.append(f"{where}: expected an empty 200")
                continue
            found.setdefault(call.url, set()).add(response.status_code)
            if response.status_code not in not_found(call):
                problems.append(f"{where}: expected 404")
        problems += [f"{who}: {url}: no method answered 404 ({sorted(codes)})" for url, codes in found.items() if 404 not in codes]
        assert not problems, "\n".join(problems)
        swept = {c.route.name for c in calls(scenario) if c.route.reviewer_only and (c.route.is_api or not api_only)}
        assert swept == {r.name for r in reviewer_routes if r.is_api or not api_only}
    assert snapshot(exclude_token=token) == before


def test_the_owner_and_a_reviewer_do_reach_the_reviewer_only_routes(scenario):
    """The 404s above mean something only if the same URLs answer the owner and reviewers (but OWNER_ONLY
    routes, the owner alone), with A's scores and exports in them."""
    reviewer = UserFactory(username="rev-a")
    MembershipFactory(user=reviewer, dataset=scenario.a, role=Role.REVIEWER)
    for user in (scenario.owner, reviewer):
        client = APIClient()
        client.force_login(user)
        problems, bodies = [], {}
        for call in calls(scenario):
            if not call.route.reviewer_only or "GET" not in call.route.methods:
                continue
            response = client.get(call.url)
            bodies[call.url] = body(response)
            if user == reviewer and call.route.name in OWNER_ONLY:
                if response.status_code != 404:
                    problems.append(f"{user.username}: GET {call.url} [{call.route.name}] -> {response.status_code}: expected 404 (owner only)")
            elif response.status_code not in ((200, 302) if call.route.is_drf else (200, 302, 405)):  # a POST-only function view: 405
                problems.append(f"{user.username}: GET {call.url} [{call.route.name}] -> {response.status_code}")
            elif call.route.name in EMPTY_FOR_ANNOTATORS and not bodies[call.url].strip():
                problems.append(f"{user.username}: GET {call.url} [{call.route.name}] is empty")
        assert not problems, "\n".join(problems)
        a, export = scenario.a, scenario.export
        decided = bodies[f"/api/v1/datasets/{a.pk}/review/samples/{scenario.decided.pk}/"]
        assert SECRET_RATIONALE in decided and SECRET_ANN3 in decided
        assert SECRET_FLAG in bodies[f"/api/v1/datasets/{a.pk}/samples/{scenario.decided.pk}/scores/"]
        assert SECRET_FLAG in bodies[f"/d/{a.slug}/quality/report.jsonl"] and SECRET_FLAG in bodies[f"/d/{a.slug}/quality/report.csv"]
        assert SECRET_EXPORT in bodies[f"/api/v1/datasets/{a.pk}/exports/"] and SECRET_EXPORT in bodies[f"/d/{a.slug}/exports/"]
        assert A_TEXT in bodies[f"/api/v1/datasets/{a.pk}/exports/{export.pk}/files/data/train.messages.jsonl"]


def test_a_token_for_another_dataset_reads_nothing_of_this_one(scenario):
    """A job token is tied to its dataset: a token for C gets 404 on every API route of A, whatever the method,
    even though its user owns A (by session they read all of it, above), and changes nothing. A write token,
    so that no read-only refusal answers first; and a read-only one, the usual job token."""
    c = DatasetFactory(name="Charlie", slug="charlie")
    MembershipFactory(user=scenario.owner, dataset=c, role=Role.OWNER)
    SampleFactory(dataset=c)
    writer, writer_key = api_token_create(user=scenario.owner, name="c-writer", dataset=c, can_write=True)
    reader, reader_key = api_token_create(user=scenario.owner, name="c-reader", dataset=c)
    for token, key in ((writer, writer_key), (reader, reader_key)):
        client = bearer(key)
        assert client.get(f"/api/v1/datasets/{c.pk}/").status_code == 200  # the token works, on its own dataset
        before = snapshot(exclude_token=token)
        problems, swept = [], 0
        for call, method, _htmx, response in sweep(client, scenario, api_only=True):
            swept += 1
            where = f"{token.name}: {method} {call.url} [{call.route.name}] -> {response.status_code}"
            leaked = [s for s in (*SECRETS, A_NAME, A_TEXT) if s in body(response)]
            if leaked:
                problems.append(f"{where}: the body contains {leaked}")
            if call.route.name in NOT_DATASET_SCOPED:
                if response.status_code >= 500:
                    problems.append(where)
                continue
            if response.status_code == 404:
                continue
            # a read-only token is refused a write before any dataset is looked at, which says nothing of A
            if not (not token.can_write and method != "GET" and response.status_code == 403
                    and response.json() == {"detail": "This token is read-only."}):
                problems.append(f"{where}: expected 404")
        assert swept > len([r for r in ROUTES if r.is_api])
        assert not problems, "\n".join(problems)
        assert snapshot(exclude_token=token) == before
