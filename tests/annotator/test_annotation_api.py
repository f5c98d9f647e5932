"""The annotation API: next -> submit -> next (session and Bearer token), k, revise, errors by field,
409s, someone else's assignment, own labels and progress, settings, suggestions, blindness, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Assignment, Label, Membership, Sample, Suggestion
from annotator.services import annotation_config, annotation_settings_set
from exports.tokens import api_token_create
from reviews.services import review_settings_set
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

Role = Membership.Role
GOOD = {
    "accuracy": 4, "completeness": 5, "conciseness": 3, "difficulty": "medium", "verdict": "accept",
    "error_tags": [], "corrected_answer": "", "comment": "fine", "time_spent_s": 12.5, "extra": {},
}


def member(dataset, username: str, role: str = Role.ANNOTATOR):
    user = UserFactory(username=username)
    MembershipFactory(user=user, dataset=dataset, role=role)
    return user


def owner_of(dataset):
    return dataset.memberships.get(role=Role.OWNER).user


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def bearer(user, **kwargs) -> APIClient:
    _token, key = api_token_create(user=user, name="tests", **kwargs)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def url(dataset, tail: str) -> str:
    return f"/api/v1/datasets/{dataset.pk}/{tail}"


def next_(client, dataset, **body):
    return client.post(url(dataset, "annotation/next/"), body, format="json")


def submit(client, dataset, assignment_id: int, values: dict):
    return client.post(url(dataset, f"assignments/{assignment_id}/submit/"), values, format="json")


@pytest.fixture
def ann(dataset):
    return member(dataset, "anna")


@pytest.fixture
def two_samples(dataset):
    return SampleFactory(dataset=dataset, external_id="s1"), SampleFactory(dataset=dataset, external_id="s2")


def _flow(client, dataset, samples, user):
    first = next_(client, dataset)
    assert first.status_code == 200
    body = first.json()
    assignment = Assignment.objects.get(annotator=user, status=Assignment.Status.RESERVED)
    sample = assignment.sample
    assert body == {"assignment": {
        "id": assignment.pk,
        "expires_at": body["assignment"]["expires_at"],
        "is_revision": False,
        "draft": {},
        "sample": {"id": sample.pk, "external_id": sample.external_id, "messages": sample.messages, "task_type": "", "language": "en"},
        "suggestion": None,
    }}
    submitted = submit(client, dataset, assignment.pk, GOOD)
    assert submitted.status_code == 201
    label = Label.objects.get(assignment=assignment)
    assert submitted.json() == {
        "id": label.pk, "assignment": assignment.pk, "sample": sample.pk, "version": 1, "values": GOOD,
        "created_at": submitted.json()["created_at"],
    }
    assert (label.source, label.is_current, label.annotator_id) == (Label.Source.API, True, user.pk)
    second = next_(client, dataset).json()["assignment"]
    assert second["sample"]["id"] != sample.pk
    assert {second["sample"]["id"], sample.pk} == {s.pk for s in samples}
    assert submit(client, dataset, second["id"], {**GOOD, "verdict": "reject"}).status_code == 201
    done = next_(client, dataset)
    assert (done.status_code, done.content) == (204, b"")
    assert list(Assignment.objects.filter(annotator=user).values_list("status", flat=True)) == ["submitted", "submitted"]
    assert sorted(Sample.objects.values_list("label_count", "status")) == [(1, "annotating"), (1, "annotating")]


def test_next_submit_next_through_a_session(dataset, ann, two_samples):
    _flow(session(ann), dataset, two_samples, ann)


def test_next_submit_next_through_an_annotators_token(dataset, ann, two_samples):
    _flow(bearer(ann, dataset=dataset, can_write=True), dataset, two_samples, ann)


def test_an_empty_dataset_answers_204(dataset, ann):
    assert next_(session(ann), dataset).status_code == 204
    assert Assignment.objects.count() == 0


def test_next_gives_back_the_held_reservation_and_exclude_skips_it(dataset, ann, two_samples):
    client = session(ann)
    first = next_(client, dataset).json()["assignment"]
    assert next_(client, dataset).json()["assignment"]["id"] == first["id"]
    other = next_(client, dataset, exclude=[first["id"]]).json()["assignment"]
    assert other["id"] != first["id"]
    assert next_(client, dataset, exclude=["x"]).json() == {"exclude[0]": ["A valid integer is required."]}
    assert Assignment.objects.filter(annotator=ann).count() == 2


def test_k_is_respected_a_third_annotator_gets_nothing(dataset):
    annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 2})
    sample = SampleFactory(dataset=dataset)
    first, second, third = (member(dataset, n) for n in ("ann1", "ann2", "ann3"))
    holding = next_(session(first), dataset).json()["assignment"]  # held, not yet labelled
    labelled = next_(session(second), dataset).json()["assignment"]
    assert submit(session(second), dataset, labelled["id"], GOOD).status_code == 201
    assert holding["sample"]["id"] == labelled["sample"]["id"] == sample.pk
    assert next_(session(third), dataset).status_code == 204
    assert not Assignment.objects.filter(annotator=third).exists()
    assert Sample.objects.get().label_count == 1


def test_submitting_again_revises_with_a_new_version(dataset, ann, two_samples):
    client = session(ann)
    assignment = next_(client, dataset).json()["assignment"]
    first = submit(client, dataset, assignment["id"], GOOD).json()
    revised = submit(client, dataset, assignment["id"], {**GOOD, "accuracy": 2, "comment": "on second thought"})
    assert revised.status_code == 201
    assert (revised.json()["version"], revised.json()["values"]["accuracy"], revised.json()["values"]["comment"]) == (2, 2, "on second thought")
    assert list(Label.objects.order_by("version").values_list("version", "is_current", "accuracy")) == [(1, False, 4), (2, True, 2)]
    assert Sample.objects.get(pk=assignment["sample"]["id"]).label_count == 1  # a revision is not another label
    mine = client.get(url(dataset, "labels/mine/")).json()
    assert [(r["id"], r["version"]) for r in mine["results"]] == [(revised.json()["id"], 2)]
    assert first["id"] != revised.json()["id"]


def test_invalid_values_answer_400_by_field_and_write_nothing(dataset, ann, two_samples):
    client = session(ann)
    assignment = next_(client, dataset).json()["assignment"]
    bad = {"accuracy": 9, "completeness": "x", "conciseness": 3, "verdict": "maybe", "error_tags": ["bogus"], "extra": {"tone": "1"}, "time_spent_s": "long"}
    response = submit(client, dataset, assignment["id"], bad)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"accuracy", "completeness", "verdict", "error_tags", "extra.tone", "time_spent_s"}
    assert body["accuracy"] == ["expected a whole number from 1 to 5, got 9"]
    assert all(isinstance(v, list) and len(v) == 1 for v in body.values())
    missing = submit(client, dataset, assignment["id"], {"verdict": "needs_fix"}).json()
    assert missing == {
        "accuracy": ["required by this dataset"], "completeness": ["required by this dataset"],
        "conciseness": ["required by this dataset"],
        "corrected_answer": ["required when the verdict is needs_fix: edit the answer"],
    }
    assert submit(client, dataset, assignment["id"], {**GOOD, "bogus": 1}).json() == {
        "bogus": ["unknown field; the rubric has accuracy, completeness, conciseness, difficulty, verdict, error_tags, "
                  "corrected_answer, comment, time_spent_s, extra"],
    }
    assert submit(client, dataset, assignment["id"], [1, 2]).json() == {"non_field_errors": ["Expected a JSON object."]}
    assert Label.objects.count() == 0
    assert Assignment.objects.get(pk=assignment["id"]).status == Assignment.Status.RESERVED
    assert Sample.objects.filter(label_count__gt=0).count() == 0


def test_a_lapsed_reservation_taken_by_k_others_is_409(dataset):
    review_settings_set(actor=None, dataset=dataset, values={"auto_approve": False})  # the sample stays in review
    sample = SampleFactory(dataset=dataset)
    late, second, third = (member(dataset, n) for n in ("late", "second", "third"))
    held = next_(session(late), dataset).json()["assignment"]
    Assignment.objects.filter(pk=held["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    for user in (second, third):
        taken = next_(session(user), dataset).json()["assignment"]
        assert submit(session(user), dataset, taken["id"], GOOD).status_code == 201
    response = submit(session(late), dataset, held["id"], GOOD)
    assert response.status_code == 409
    assert response.json()["code"] == "assignment_gone"
    assert "other annotators have taken it" in response.json()["detail"]
    assert Label.objects.filter(annotator=late).count() == 0
    assert Sample.objects.get(pk=sample.pk).label_count == 2


def test_a_reviewed_sample_is_locked_409(dataset, ann, two_samples):
    client = session(ann)
    assignment = next_(client, dataset).json()["assignment"]
    submit(client, dataset, assignment["id"], GOOD)
    Sample.objects.filter(pk=assignment["sample"]["id"]).update(status=Sample.Status.APPROVED)  # as a reviewer's decision would
    revise = submit(client, dataset, assignment["id"], {**GOOD, "accuracy": 1})
    assert (revise.status_code, revise.json()["code"]) == (409, "label_locked")
    skip = client.post(url(dataset, f"assignments/{assignment['id']}/skip/"), {"reason": "x"}, format="json")
    assert (skip.status_code, skip.json()["code"]) == (409, "already_labelled")
    assert list(Label.objects.values_list("version", "accuracy")) == [(1, 4)]
    assert Assignment.objects.get(pk=assignment["id"]).status == Assignment.Status.SUBMITTED


def test_someone_elses_assignment_is_404_and_untouched(dataset, ann, two_samples):
    other = member(dataset, "otto")
    theirs = next_(session(other), dataset).json()["assignment"]
    client = session(ann)
    for tail, body in [("submit/", GOOD), ("skip/", {"reason": "mine now"}), ("draft/", {"comment": "x"})]:
        response = client.post(url(dataset, f"assignments/{theirs['id']}/{tail}"), body, format="json")
        assert response.status_code == 404, tail
    assignment = Assignment.objects.get(pk=theirs["id"])
    assert (assignment.status, assignment.draft, assignment.skip_reason) == (Assignment.Status.RESERVED, {}, "")
    assert Label.objects.count() == 0
    # nor through another dataset of mine
    mine = DatasetFactory(slug="mine")
    MembershipFactory(user=ann, dataset=mine, role=Role.OWNER)
    assert submit(client, mine, theirs["id"], GOOD).status_code == 404


def test_skip_and_draft(dataset, ann, two_samples):
    client = session(ann)
    first = next_(client, dataset).json()["assignment"]
    draft = client.post(url(dataset, f"assignments/{first['id']}/draft/"), {"accuracy": 2, "comment": "half way"}, format="json")
    assert draft.status_code == 200
    assert draft.json()["draft"] == {"accuracy": 2, "comment": "half way"}
    again = next_(client, dataset).json()["assignment"]
    assert (again["id"], again["draft"]) == (first["id"], {"accuracy": 2, "comment": "half way"})
    skip = client.post(url(dataset, f"assignments/{first['id']}/skip/"), {"reason": "not my language"}, format="json")
    assert skip.status_code == 200
    assert (skip.json()["id"], skip.json()["status"]) == (first["id"], "skipped")
    assert Assignment.objects.get(pk=first["id"]).skip_reason == "not my language"
    after = next_(client, dataset).json()["assignment"]
    assert after["sample"]["id"] != first["sample"]["id"]
    assert Label.objects.count() == 0


def test_my_labels_and_progress_are_my_own(dataset, ann, django_assert_max_num_queries):
    SampleFactory.create_batch(5, dataset=dataset)
    other = member(dataset, "otto")
    for user, n in ((ann, 3), (other, 2)):
        client = session(user)
        for _ in range(n):
            assignment = next_(client, dataset).json()["assignment"]
            submit(client, dataset, assignment["id"], {**GOOD, "comment": f"by {user.username}"})
    client = session(ann)
    with django_assert_max_num_queries(6):
        mine = client.get(url(dataset, "labels/mine/"), {"page_size": 2}).json()
    assert mine["count"] == 3
    assert len(mine["results"]) == 2
    row = mine["results"][0]
    label = Label.objects.get(pk=row["id"])
    assert row == {
        "id": label.pk, "assignment": label.assignment_id, "sample": label.sample_id, "external_id": label.sample.external_id,
        "version": 1, "values": {**GOOD, "comment": "by anna"}, "created_at": row["created_at"],
    }
    everything = client.get(url(dataset, "labels/mine/"), {"page_size": 50}).json()["results"]
    assert {r["values"]["comment"] for r in everything} == {"by anna"}
    progress = client.get(url(dataset, "annotation/progress/")).json()
    # 5 samples, k=2: ann labelled 3; of the other 2, otto labelled... whichever remain open to ann
    open_to_ann = Sample.objects.filter(label_count__lt=2).exclude(assignments__annotator=ann).count()
    assert progress == {"done_today": 3, "done_total": 3, "remaining": open_to_ann, "overlap": 2}


def test_a_read_only_token_cannot_take_or_submit(dataset, ann, two_samples):
    assignment = next_(session(ann), dataset).json()["assignment"]
    read_only = bearer(ann)
    assert next_(read_only, dataset).status_code == 403
    response = submit(read_only, dataset, assignment["id"], GOOD)
    assert response.status_code == 403
    assert response.json() == {"detail": "This token is read-only."}
    assert read_only.get(url(dataset, "labels/mine/")).status_code == 200
    assert Label.objects.count() == 0
    assert Assignment.objects.count() == 1


def test_a_token_for_another_dataset_reaches_nothing_here(dataset, ann, two_samples):
    elsewhere = DatasetFactory(slug="elsewhere")
    MembershipFactory(user=ann, dataset=elsewhere, role=Role.ANNOTATOR)
    client = bearer(ann, dataset=elsewhere, can_write=True)
    assert next_(client, dataset).status_code == 404
    assert client.get(url(dataset, "labels/mine/")).status_code == 404
    assert Assignment.objects.count() == 0


def test_non_members_get_404_everywhere(dataset, outsider, two_samples):
    client = session(outsider)
    for method, tail in [("post", "annotation/next/"), ("get", "annotation/progress/"), ("get", "annotation/settings/"),
                         ("put", "annotation/settings/"), ("get", "labels/mine/"), ("post", "suggestions/")]:
        assert getattr(client, method)(url(dataset, tail), {}, format="json").status_code == 404, tail
    assert Assignment.objects.count() == 0


# --- settings ---------------------------------------------------------------------------------

def test_owner_reads_and_replaces_the_settings(dataset):
    client = session(owner_of(dataset))
    assert client.get(url(dataset, "annotation/settings/")).json() == annotation_config(dataset).to_json()
    new = {"overlap": 3, "reservation_minutes": 10, "order": "flagged", "seed": 7, "required": ["accuracy"],
           "extra_tags": ["too_long"], "extra_fields": [{"name": "tone", "choices": ["formal", "casual"]}]}
    response = client.put(url(dataset, "annotation/settings/"), new, format="json")
    assert response.status_code == 200
    assert response.json() == {**new, "gold_rate": 0.0}
    dataset.refresh_from_db()
    assert dataset.settings["annotation"] == {**new, "gold_rate": 0.0}
    patched = client.patch(url(dataset, "annotation/settings/"), {"overlap": 2}, format="json").json()
    assert (patched["overlap"], patched["seed"], patched["extra_tags"]) == (2, 7, ["too_long"])


def test_bad_settings_answer_400_naming_the_setting(dataset):
    client = session(owner_of(dataset))
    before = dict(dataset.settings)
    settings_url = url(dataset, "annotation/settings/")
    assert client.put(settings_url, {"overlap": 9}, format="json").json() == {"overlap": ["expected a whole number from 1 to 5, got 9"]}
    assert list(client.put(settings_url, {"order": "alphabetical"}, format="json").json()) == ["order"]
    assert list(client.put(settings_url, {"required": ["verdict"]}, format="json").json()) == ["required"]
    assert client.put(settings_url, {"required": "accuracy"}, format="json").json() == {"required": ["expected a list"]}
    assert client.put(settings_url, {"extra_fields": 5}, format="json").json() == {"extra_fields": ["expected a list"]}
    assert list(client.put(settings_url, {"overlaps": 2}, format="json").json()) == ["overlaps"]
    dataset.refresh_from_db()
    assert dataset.settings == before


def test_only_owners_change_settings_and_annotators_do_not_see_the_gold_draw(dataset, ann):
    annotation_settings_set(actor=None, dataset=dataset, values={"gold_rate": 0.1, "seed": 42})
    reviewer = member(dataset, "rita", Role.REVIEWER)
    for user in (ann, reviewer):
        response = session(user).put(url(dataset, "annotation/settings/"), {"overlap": 1}, format="json")
        assert response.status_code == 403
        assert response.json() == {"detail": "Only the dataset's owners can change its annotation settings."}
    assert annotation_config(dataset).overlap == 2
    seen = session(ann).get(url(dataset, "annotation/settings/")).json()
    assert "seed" not in seen and "gold_rate" not in seen and "order" not in seen
    assert seen["overlap"] == 2
    assert session(reviewer).get(url(dataset, "annotation/settings/")).json()["seed"] == 42
    owner_read_only = bearer(owner_of(dataset))
    assert owner_read_only.put(url(dataset, "annotation/settings/"), {"overlap": 1}, format="json").status_code == 403
    assert annotation_config(dataset).overlap == 2


# --- suggestions ------------------------------------------------------------------------------

def test_suggestions_are_all_or_nothing_and_name_the_item(dataset, two_samples):
    s1, s2 = two_samples
    client = session(owner_of(dataset))
    suggestions_url = url(dataset, "suggestions/")
    bad = {"items": [
        {"sample_id": s1.pk, "values": {"accuracy": 4}, "model": "judge-7b"},
        {"external_id": "s2", "values": {"accuracy": 9, "verdict": "accept"}},
        {"external_id": "nope", "values": {}},
    ]}
    response = client.post(suggestions_url, bad, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "items[1].values.accuracy": ["expected a whole number from 1 to 5, got 9"],
        "items[2]": ["no such sample in this dataset (give sample_id or external_id)"],
    }
    shape = client.post(suggestions_url, {"items": [{"values": {}}, {"sample_id": "x", "values": 3}]}, format="json").json()
    assert shape == {
        "items[0]": ["give sample_id or external_id"],
        "items[1].sample_id": ["A valid integer is required."],
        "items[1].values": ["Expected a JSON object."],
    }
    assert client.post(suggestions_url, {"items": []}, format="json").status_code == 400
    assert Suggestion.objects.count() == 0
    good = {"items": [{"sample_id": s1.pk, "values": {"accuracy": 4, "verdict": "accept"}, "model": "judge-7b"},
                      {"external_id": "s2", "values": {"verdict": "reject"}}]}
    response = client.post(suggestions_url, good, format="json")
    assert (response.status_code, response.json()) == (201, {"created": 2})
    assert sorted(Suggestion.objects.values_list("sample__external_id", "model_name", "values")) == [
        ("s1", "judge-7b", {"accuracy": 4, "verdict": "accept"}), ("s2", "", {"verdict": "reject"}),
    ]


def test_the_next_sample_carries_its_suggestion(dataset, ann):
    sample = SampleFactory(dataset=dataset)
    session(owner_of(dataset)).post(
        url(dataset, "suggestions/"), {"items": [{"sample_id": sample.pk, "values": {"verdict": "accept"}, "model": "m"}]}, format="json"
    )
    assert next_(session(ann), dataset).json()["assignment"]["suggestion"] == {"values": {"verdict": "accept"}, "model": "m"}


def test_who_may_attach_suggestions(dataset, ann, two_samples):
    reviewer = member(dataset, "rita", Role.REVIEWER)
    body = {"items": [{"sample_id": two_samples[0].pk, "values": {"verdict": "accept"}}]}
    refused = session(ann).post(url(dataset, "suggestions/"), body, format="json")
    assert (refused.status_code, refused.json()) == (403, {"detail": "Only the dataset's owners and reviewers can attach suggestions."})
    assert bearer(ann, can_write=True).post(url(dataset, "suggestions/"), body, format="json").status_code == 403
    assert bearer(reviewer).post(url(dataset, "suggestions/"), body, format="json").status_code == 403  # read-only token
    elsewhere = DatasetFactory(slug="elsewhere")
    MembershipFactory(user=reviewer, dataset=elsewhere, role=Role.REVIEWER)
    assert bearer(reviewer, dataset=elsewhere, can_write=True).post(url(dataset, "suggestions/"), body, format="json").status_code == 404
    assert Suggestion.objects.count() == 0
    assert bearer(reviewer, dataset=dataset, can_write=True).post(url(dataset, "suggestions/"), body, format="json").status_code == 201
    assert Suggestion.objects.count() == 1


# --- blindness in the sample API ---------------------------------------------------------------

def test_annotators_never_see_the_review_outcome_or_flags(dataset, ann):
    approved = SampleFactory(dataset=dataset, status=Sample.Status.APPROVED, flag_count=2)
    SampleFactory(dataset=dataset, status=Sample.Status.REJECTED)
    client = session(ann)
    rows = client.get(url(dataset, "samples/")).json()["results"]
    assert len(rows) == 2
    assert all("status" not in r and "flag_count" not in r for r in rows)
    # filtering by status would tell the outcome by what it keeps: ignored for annotators
    assert client.get(url(dataset, "samples/"), {"status": "approved"}).json()["count"] == 2
    assert client.get(url(dataset, "samples/"), {"has_flag": "true"}).json()["count"] == 2
    detail = client.get(url(dataset, f"samples/{approved.pk}/")).json()
    assert "status" not in detail and "flag_count" not in detail
    owner = session(owner_of(dataset))
    assert owner.get(url(dataset, f"samples/{approved.pk}/")).json()["status"] == "approved"
    assert owner.get(url(dataset, "samples/"), {"status": "approved"}).json()["count"] == 1


# --- queries and schema ------------------------------------------------------------------------

def test_next_and_submit_run_a_bounded_number_of_queries(dataset, ann, django_assert_max_num_queries):
    review_settings_set(actor=None, dataset=dataset, values={"auto_approve": False})  # so the label can be revised
    SampleFactory.create_batch(30, dataset=dataset)
    others = [member(dataset, f"other{n}") for n in range(3)]
    for user in others:  # some labels and live reservations around
        client = session(user)
        taken = next_(client, dataset).json()["assignment"]
        submit(client, dataset, taken["id"], GOOD)
        next_(client, dataset)
    client = bearer(ann, dataset=dataset, can_write=True)
    with django_assert_max_num_queries(15):
        assignment = next_(client, dataset).json()["assignment"]
    # a submit that completes a sample also routes it (labels, review item, auto-approval, status log)
    with django_assert_max_num_queries(18):
        assert submit(client, dataset, assignment["id"], GOOD).status_code == 201
    with django_assert_max_num_queries(18):
        assert submit(client, dataset, assignment["id"], {**GOOD, "accuracy": 1}).status_code == 201


def test_the_schema_lists_the_annotation_operations(dataset):
    client = session(owner_of(dataset))
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    base = "/api/v1/datasets/{dataset_id}/"
    assert {
        base + "annotation/next/", base + "annotation/progress/", base + "annotation/settings/", base + "labels/mine/",
        base + "suggestions/", base + "assignments/{assignment_id}/submit/", base + "assignments/{assignment_id}/skip/",
        base + "assignments/{assignment_id}/draft/",
    } <= set(paths)
