"""Owner pages: members (invite, role, remove, the last-owner guard), annotation settings, gold
samples and accuracy on gold. Everyone but an owner gets 404."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator import selectors, services
from annotator.models import Assignment, Dataset, GoldLabel, Label, Membership, Sample
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db
Role = Membership.Role


def roles(dataset) -> dict[str, str]:
    return dict(Membership.objects.filter(dataset=dataset).values_list("user__username", "role"))


def member(dataset, username, role=Role.ANNOTATOR):
    user = UserFactory(username=username)
    MembershipFactory(user=user, dataset=dataset, role=role)
    return user


def label(sample, user, *, gold_score=None, is_current=True, version=1, assignment=None):
    assignment = assignment or Assignment.objects.create(
        dataset=sample.dataset, sample=sample, annotator=user, status=Assignment.Status.SUBMITTED,
        reserved_at=timezone.now(), expires_at=timezone.now(), finished_at=timezone.now(),
    )
    return Label.objects.create(
        assignment=assignment, dataset=sample.dataset, sample=sample, annotator=user, verdict="accept",
        gold_score=gold_score, is_current=is_current, version=version,
    )


# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------

def manage_urls(dataset, sample, user):
    return [
        ("get", reverse("annotator:members", args=[dataset.slug])),
        ("post", reverse("annotator:members", args=[dataset.slug])),
        ("post", reverse("annotator:member_role", args=[dataset.slug, user.pk])),
        ("post", reverse("annotator:member_remove", args=[dataset.slug, user.pk])),
        ("get", reverse("annotator:annotation_settings", args=[dataset.slug])),
        ("post", reverse("annotator:annotation_settings", args=[dataset.slug])),
        ("get", reverse("annotator:gold_list", args=[dataset.slug])),
        ("get", reverse("annotator:gold_set", args=[dataset.slug, sample.pk])),
        ("post", reverse("annotator:gold_set", args=[dataset.slug, sample.pk])),
        ("post", reverse("annotator:gold_clear", args=[dataset.slug, sample.pk])),
    ]


@pytest.mark.parametrize("role", [None, Role.ANNOTATOR, Role.REVIEWER])
def test_everyone_but_an_owner_gets_404_and_nothing_changes(client, dataset, owner, role):
    sample = SampleFactory(dataset=dataset)
    services.gold_set(actor=None, dataset=dataset, sample=sample, values={"verdict": "accept"})
    user = UserFactory(username="someone")
    if role:
        MembershipFactory(user=user, dataset=dataset, role=role)
    client.force_login(user)
    before = (roles(dataset), dict(Dataset.objects.values_list("pk", "settings")), GoldLabel.objects.count())
    for method, url in manage_urls(dataset, sample, owner):
        data = {"username": "someone", "role": "owner", "overlap": 3, "verdict": "reject"} if method == "post" else None
        assert getattr(client, method)(url, data).status_code == 404, (method, url)
    assert (roles(dataset), dict(Dataset.objects.values_list("pk", "settings")), GoldLabel.objects.count()) == before


def test_an_owner_of_another_dataset_gets_404(client, dataset):
    other_owner = UserFactory(username="otto")
    MembershipFactory(user=other_owner, dataset=DatasetFactory(), role=Role.OWNER)
    client.force_login(other_owner)
    assert client.get(reverse("annotator:members", args=[dataset.slug])).status_code == 404


def test_anonymous_users_are_sent_to_log_in(client, dataset):
    response = client.get(reverse("annotator:members", args=[dataset.slug]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# ---------------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------------

def test_members_page_lists_members_owners_first(owner_client, dataset, django_assert_max_num_queries):
    for n in range(5):
        member(dataset, f"ann{n}")
    member(dataset, "rita", Role.REVIEWER)
    with django_assert_max_num_queries(8):
        response = owner_client.get(reverse("annotator:members", args=[dataset.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("olga") < html.index("rita") < html.index("ann0") < html.index("ann4")


def test_invite_an_existing_user_with_a_role(owner_client, dataset):
    UserFactory(username="newcomer")
    response = owner_client.post(reverse("annotator:members", args=[dataset.slug]), {"username": "newcomer", "role": "reviewer"})
    assert response.status_code == 302 and response["Location"] == reverse("annotator:members", args=[dataset.slug])
    assert roles(dataset) == {"olga": "owner", "newcomer": "reviewer"}


def test_inviting_a_member_again_changes_their_role(owner_client, dataset):
    member(dataset, "ann")
    owner_client.post(reverse("annotator:members", args=[dataset.slug]), {"username": "ann", "role": "owner"})
    assert roles(dataset) == {"olga": "owner", "ann": "owner"}


def test_inviting_an_unknown_username_names_it_and_changes_nothing(owner_client, dataset):
    response = owner_client.post(reverse("annotator:members", args=[dataset.slug]), {"username": "ghost", "role": "annotator"})
    assert response.status_code == 400
    assert "No user named &#x27;ghost&#x27;" in response.content.decode()
    assert roles(dataset) == {"olga": "owner"}


def test_invite_with_htmx_renders_the_member_table_only(owner_client, dataset):
    UserFactory(username="newcomer")
    response = owner_client.post(reverse("annotator:members", args=[dataset.slug]), {"username": "newcomer", "role": "annotator"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="member-table">') and "<html" not in html
    assert "newcomer" in html


def test_change_a_role(owner_client, dataset):
    ann = member(dataset, "ann")
    response = owner_client.post(reverse("annotator:member_role", args=[dataset.slug, ann.pk]), {"role": "reviewer"})
    assert response.status_code == 302
    assert roles(dataset) == {"olga": "owner", "ann": "reviewer"}


def test_the_last_owner_cannot_be_demoted(owner_client, dataset, owner):
    member(dataset, "ann")
    response = owner_client.post(reverse("annotator:member_role", args=[dataset.slug, owner.pk]), {"role": "annotator"})
    assert response.status_code == 400
    assert "olga is the last owner of this dataset and cannot become Annotator; make someone else an owner first." in response.content.decode()
    assert roles(dataset) == {"olga": "owner", "ann": "annotator"}
    # nor through the invite form
    response = owner_client.post(reverse("annotator:members", args=[dataset.slug]), {"username": "olga", "role": "reviewer"})
    assert response.status_code == 400
    assert roles(dataset) == {"olga": "owner", "ann": "annotator"}


def test_an_owner_can_step_down_when_another_owner_remains(owner_client, dataset, owner):
    member(dataset, "oscar", Role.OWNER)
    response = owner_client.post(reverse("annotator:member_role", args=[dataset.slug, owner.pk]), {"role": "reviewer"}, HTTP_HX_REQUEST="true")
    assert (response.status_code, response["HX-Redirect"]) == (200, reverse("annotator:dataset_detail", args=[dataset.slug]))
    assert roles(dataset) == {"olga": "reviewer", "oscar": "owner"}


def test_removing_a_member_keeps_their_labels_and_frees_their_reservations(owner_client, dataset):
    ann = member(dataset, "ann")
    done, held = SampleFactory(dataset=dataset), SampleFactory(dataset=dataset)
    kept = label(done, ann)
    reservation = Assignment.objects.create(
        dataset=dataset, sample=held, annotator=ann, reserved_at=timezone.now(), expires_at=timezone.now() + timezone.timedelta(minutes=30),
        draft={"comment": "half-written"},
    )
    response = owner_client.post(reverse("annotator:member_remove", args=[dataset.slug, ann.pk]))
    assert response.status_code == 302
    assert roles(dataset) == {"olga": "owner"}
    assert list(Label.objects.values_list("pk", flat=True)) == [kept.pk]
    reservation.refresh_from_db()
    assert (reservation.status, reservation.draft) == ("expired", {"comment": "half-written"})
    assert Assignment.objects.get(pk=kept.assignment_id).status == "submitted"
    # and they no longer see the dataset
    owner_client.force_login(ann)
    assert owner_client.get(reverse("annotator:dataset_detail", args=[dataset.slug])).status_code == 404


def test_the_last_owner_cannot_be_removed(owner_client, dataset, owner):
    response = owner_client.post(reverse("annotator:member_remove", args=[dataset.slug, owner.pk]))
    assert response.status_code == 400
    assert "olga is the last owner of this dataset and cannot be removed; make someone else an owner first." in response.content.decode()
    assert roles(dataset) == {"olga": "owner"}


def test_an_owner_who_leaves_is_sent_to_the_dataset_list(owner_client, dataset, owner):
    member(dataset, "oscar", Role.OWNER)
    response = owner_client.post(reverse("annotator:member_remove", args=[dataset.slug, owner.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("annotator:dataset_list")
    assert roles(dataset) == {"oscar": "owner"}


def test_removing_or_changing_a_non_member_is_404(owner_client, dataset, outsider):
    assert owner_client.post(reverse("annotator:member_remove", args=[dataset.slug, outsider.pk])).status_code == 404
    assert owner_client.post(reverse("annotator:member_role", args=[dataset.slug, outsider.pk]), {"role": "owner"}).status_code == 404
    assert roles(dataset) == {"olga": "owner"}


def test_member_services_guard_the_last_owner_and_check_the_actor(dataset, owner, outsider):
    with pytest.raises(services.LastOwner):
        services.member_remove(actor=None, dataset=dataset, user=owner)
    with pytest.raises(services.MemberError, match="No user named 'nobody'"):
        services.member_invite(actor=owner, dataset=dataset, username="nobody", role="annotator")
    with pytest.raises(services.MemberError, match="Unknown role 'boss'"):
        services.member_invite(actor=owner, dataset=dataset, username="mallory", role="boss")
    from django.http import Http404

    with pytest.raises(Http404):
        services.member_invite(actor=outsider, dataset=dataset, username="mallory", role="owner")
    assert roles(dataset) == {"olga": "owner"}


# ---------------------------------------------------------------------------------------------
# Annotation settings
# ---------------------------------------------------------------------------------------------

SETTINGS = {
    "overlap": "3", "reservation_minutes": "45", "gold_rate": "0.1", "order": "flagged", "seed": "42",
    "required": ["accuracy", "difficulty"], "extra_tags": "outdated, needs_source", "extra_fields": "preference: 0, 1, 2\n\nsafety: safe, unsafe",
    "guidelines": "# Be careful\n\nRead twice.",
}


def test_settings_page_shows_the_current_settings(owner_client, dataset):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 4, "extra_fields": [{"name": "preference", "choices": ["0", "1"]}]})
    html = owner_client.get(reverse("annotator:annotation_settings", args=[dataset.slug])).content.decode()
    assert 'name="overlap" value="4"' in html
    assert "preference: 0, 1</textarea>" in html


def test_settings_form_saves_settings_and_guidelines(owner_client, dataset):
    response = owner_client.post(reverse("annotator:annotation_settings", args=[dataset.slug]), SETTINGS)
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert dataset.settings["annotation"] == {
        "overlap": 3, "reservation_minutes": 45, "gold_rate": 0.1, "order": "flagged", "seed": 42,
        "required": ["accuracy", "difficulty"], "extra_tags": ["outdated", "needs_source"],
        "extra_fields": [{"name": "preference", "choices": ["0", "1", "2"]}, {"name": "safety", "choices": ["safe", "unsafe"]}],
    }
    assert dataset.guidelines == "# Be careful\n\nRead twice."


@pytest.mark.parametrize(("field", "value", "message"), [
    ("overlap", "7", "overlap: expected a whole number from 1 to 5, got 7"),
    ("reservation_minutes", "0", "reservation_minutes: expected a whole number from 1 to 1440, got 0"),
    ("gold_rate", "0.9", "gold_rate: expected a fraction from 0 to 0.5, got 0.9"),
    ("seed", "-1", "seed: expected a whole number from 0 to 2147483647, got -1"),
    ("extra_tags", "ok, Bad Tag", "extra_tags: &#x27;Bad Tag&#x27; is not a tag name (lower-case letters, digits, _)"),
    ("extra_fields", "verdict: a, b", "extra_fields: &#x27;verdict&#x27; is not a free field name"),
    ("extra_fields", "preference: 1", "extra_fields: preference needs at least two distinct choices"),
    ("extra_fields", "preference: 0, 1\nno colon here", "Line 2: write name: choice1, choice2, ... (got &#x27;no colon here&#x27;)"),
])
def test_settings_form_rejects_bad_values_naming_the_setting_and_saves_nothing(owner_client, dataset, field, value, message):
    before = Dataset.objects.values_list("settings", "guidelines").get(pk=dataset.pk)
    response = owner_client.post(reverse("annotator:annotation_settings", args=[dataset.slug]), {**SETTINGS, field: value})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    # the message sits with its field
    assert html.index(message) > html.index(f'for="id_{field}"')
    assert Dataset.objects.values_list("settings", "guidelines").get(pk=dataset.pk) == before


def test_changing_the_overlap_moves_samples_between_annotating_and_review(owner_client, dataset):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"overlap": 3})
    sample = SampleFactory(dataset=dataset, status=Sample.Status.ANNOTATING, label_count=2)
    owner_client.post(reverse("annotator:annotation_settings", args=[dataset.slug]), {**SETTINGS, "overlap": "2"})
    sample.refresh_from_db()
    assert sample.status == "in_review"


# ---------------------------------------------------------------------------------------------
# Gold samples
# ---------------------------------------------------------------------------------------------

def test_mark_a_sample_gold_and_clear_it(owner_client, dataset, owner):
    services.annotation_settings_set(actor=None, dataset=dataset, values={"extra_fields": [{"name": "preference", "choices": ["0", "1", "2"]}]})
    sample = SampleFactory(dataset=dataset)
    url = reverse("annotator:gold_set", args=[dataset.slug, sample.pk])
    response = owner_client.post(url, {"verdict": "needs_fix", "accuracy": "2", "difficulty": "hard", "extra__preference": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("annotator:sample_detail", args=[dataset.slug, sample.pk])
    gold = GoldLabel.objects.get(sample=sample)
    assert (gold.values, gold.created_by) == ({"accuracy": 2, "difficulty": "hard", "verdict": "needs_fix", "extra": {"preference": "1"}}, owner)

    response = owner_client.post(reverse("annotator:gold_clear", args=[dataset.slug, sample.pk]))
    assert response.status_code == 302
    assert GoldLabel.objects.count() == 0


def test_gold_needs_a_verdict(owner_client, dataset):
    sample = SampleFactory(dataset=dataset)
    response = owner_client.post(reverse("annotator:gold_set", args=[dataset.slug, sample.pk]), {"accuracy": "4"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert GoldLabel.objects.count() == 0


def test_gold_form_with_htmx_is_a_partial_and_shows_the_saved_values(owner_client, dataset):
    sample = SampleFactory(dataset=dataset)
    url = reverse("annotator:gold_set", args=[dataset.slug, sample.pk])
    html = owner_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith('<section class="card" id="gold-section"') and "<html" not in html
    assert 'name="verdict"' in html
    response = owner_client.post(url, {"verdict": "reject"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "<dt>verdict</dt><dd>reject</dd>" in response.content.decode()
    response = owner_client.post(reverse("annotator:gold_clear", args=[dataset.slug, sample.pk]), HTTP_HX_REQUEST="true")
    assert "Not gold." in response.content.decode()


def test_gold_form_without_javascript_is_on_the_gold_page(owner_client, dataset):
    sample = SampleFactory(dataset=dataset, external_id="q-17")
    response = owner_client.get(reverse("annotator:gold_set", args=[dataset.slug, sample.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="gold-section"' in html and 'name="verdict"' in html and "Sample q-17" in html


def test_sample_page_shows_the_gold_section_to_owners_only(client, dataset, owner):
    sample = SampleFactory(dataset=dataset)
    url = reverse("annotator:sample_detail", args=[dataset.slug, sample.pk])
    client.force_login(owner)
    assert 'id="gold-section"' in client.get(url).content.decode()
    for role in (Role.REVIEWER, Role.ANNOTATOR):
        client.force_login(member(dataset, f"u-{role}", role))
        assert 'id="gold-section"' not in client.get(url).content.decode()


def test_gold_of_a_sample_in_another_dataset_is_404(owner_client, dataset):
    foreign = SampleFactory(dataset=DatasetFactory())
    assert owner_client.post(reverse("annotator:gold_set", args=[dataset.slug, foreign.pk]), {"verdict": "accept"}).status_code == 404
    assert owner_client.post(reverse("annotator:gold_clear", args=[dataset.slug, foreign.pk])).status_code == 404
    assert GoldLabel.objects.count() == 0


def test_gold_list_shows_gold_samples_and_accuracy_per_annotator(owner_client, dataset, owner, django_assert_max_num_queries):
    g1, g2, plain = SampleFactory(dataset=dataset, external_id="g1"), SampleFactory(dataset=dataset, external_id="g2"), SampleFactory(dataset=dataset)
    for s in (g1, g2):
        services.gold_set(actor=None, dataset=dataset, sample=s, values={"verdict": "accept"})
    ann, bob, cy = member(dataset, "ann"), member(dataset, "bob"), member(dataset, "cy")
    label(g1, ann, gold_score=1.0)
    old = label(g2, ann, gold_score=0.0, is_current=False)       # a revised label: only the current version counts
    label(g2, ann, gold_score=0.5, version=2, assignment=old.assignment)
    label(plain, ann, gold_score=None)                           # not gold: not counted
    label(g1, bob, gold_score=0.0)
    label(g2, cy, gold_score=None)                               # labelled before g2 became gold: no score

    assert selectors.gold_accuracy(owner, dataset) == [
        {"user_id": ann.pk, "username": "ann", "accuracy": 0.75, "scored": 2, "labels": 2},
        {"user_id": bob.pk, "username": "bob", "accuracy": 0.0, "scored": 1, "labels": 1},
        {"user_id": cy.pk, "username": "cy", "accuracy": None, "scored": 0, "labels": 1},
    ]
    with django_assert_max_num_queries(9):
        response = owner_client.get(reverse("annotator:gold_list", args=[dataset.slug]))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<tr><td>ann</td><td class="num">75%</td><td class="num">2</td><td class="num">2</td></tr>' in html
    assert '<tr><td>bob</td><td class="num">0%</td><td class="num">1</td><td class="num">1</td></tr>' in html
    assert '<tr><td>cy</td><td class="num">—</td><td class="num">0</td><td class="num">1</td></tr>' in html
    assert ">g1</a>" in html and ">g2</a>" in html and f">{plain.external_id}</a>" not in html
    assert "2 gold samples." in html


def test_gold_list_query_count_does_not_grow_with_gold_samples(owner_client, dataset, django_assert_max_num_queries):
    ann = member(dataset, "ann")
    for n in range(20):
        s = SampleFactory(dataset=dataset)
        services.gold_set(actor=None, dataset=dataset, sample=s, values={"verdict": "accept", "accuracy": 3, "extra": {}})
        label(s, ann, gold_score=n / 20)
    with django_assert_max_num_queries(9):
        assert owner_client.get(reverse("annotator:gold_list", args=[dataset.slug])).status_code == 200


def test_an_owner_can_create_an_account_while_inviting_and_sees_its_password_once(owner_client, dataset, client):
    from django.contrib.auth import get_user_model

    url = reverse("annotator:members", args=[dataset.slug])
    refused = owner_client.post(url, {"username": "newbie", "role": "annotator"})
    assert refused.status_code == 400 and not get_user_model().objects.filter(username="newbie").exists()

    response = owner_client.post(url, {"username": "newbie", "role": "annotator", "create": "on"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    password = response.context["created"]["password"]
    assert len(password) >= 12 and password in response.content.decode()
    user = get_user_model().objects.get(username="newbie")
    assert user.check_password(password)
    assert Membership.objects.get(user=user, dataset=dataset).role == "annotator"
    assert password not in owner_client.get(url).content.decode()  # never shown again
    assert client.login(username="newbie", password=password)
