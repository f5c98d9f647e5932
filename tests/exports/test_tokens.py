"""API tokens: hashed at rest, shown once, read-only by default, scoped, expiring, revocable, never
taken from the URL."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Dataset
from exports.models import ApiToken
from exports.tokens import api_token_create
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory

pytestmark = pytest.mark.django_db


def bearer(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_the_key_is_not_stored_only_its_hash(owner):
    token, key = api_token_create(user=owner, name="job")
    assert key.startswith("sft_") and len(key) > 40
    row = ApiToken.objects.values().get(pk=token.pk)
    assert key not in str(row)
    assert row["prefix"] == key[:12]
    assert (token.can_write, token.dataset_id) == (False, None)
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)


def test_a_read_only_token_reads_but_cannot_write(owner, dataset):
    _t, key = api_token_create(user=owner, name="ro")
    client = bearer(key)
    assert client.get("/api/v1/datasets/").status_code == 200
    response = client.post("/api/v1/datasets/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "This token is read-only."
    assert not Dataset.objects.filter(name="x").exists()


def test_a_dataset_token_sees_only_its_dataset(owner, dataset):
    other = DatasetFactory(slug="other")
    MembershipFactory(user=owner, dataset=other)
    SampleFactory(dataset=other)
    _t, key = api_token_create(user=owner, name="one", dataset=dataset, can_write=True)
    client = bearer(key)
    assert [d["slug"] for d in client.get("/api/v1/datasets/").json()] == ["ds"]
    assert client.get(f"/api/v1/datasets/{other.pk}/").status_code == 404
    assert client.get(f"/api/v1/datasets/{other.pk}/samples/").status_code == 404
    assert client.get(f"/api/v1/datasets/{dataset.pk}/samples/").status_code == 200
    assert client.post("/api/v1/datasets/", {"name": "x"}, format="json").status_code == 403


def test_expired_revoked_and_unknown_tokens_are_refused(owner, dataset):
    token, key = api_token_create(user=owner, name="t")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(key).get("/api/v1/datasets/")
    assert (response.status_code, response.json()["detail"]) == (401, "This token has expired.")
    token2, key2 = api_token_create(user=owner, name="t2")
    assert bearer(key2).get("/api/v1/datasets/").status_code == 200
    ApiToken.objects.filter(pk=token2.pk).update(revoked_at=timezone.now())
    assert bearer(key2).get("/api/v1/datasets/").json()["detail"] == "This token was revoked."
    assert bearer("sft_nope").get("/api/v1/datasets/").json()["detail"] == "Unknown token."


def test_a_token_in_the_query_string_is_refused(owner, dataset):
    _t, key = api_token_create(user=owner, name="t")
    response = APIClient().get(f"/api/v1/datasets/?token={key}")
    assert response.status_code == 401
    assert "Tokens in the URL are refused" in response.json()["detail"]


def test_last_used_is_recorded(owner):
    token, key = api_token_create(user=owner, name="t")
    bearer(key).get("/api/v1/datasets/")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_for_a_dataset_i_am_not_in_cannot_be_made(owner, outsider, dataset):
    from django.http import Http404

    with pytest.raises(Http404):
        api_token_create(user=outsider, name="t", dataset=dataset)
    assert ApiToken.objects.count() == 0


def test_tokens_page_shows_the_key_once_and_revokes(owner_client, owner, dataset):
    url = reverse("exports:token_list")
    response = owner_client.post(url, {"name": "nightly", "dataset": dataset.pk, "days": 30})
    key = response.context["new_key"]
    assert key in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.name, token.dataset_id, token.can_write) == ("nightly", dataset.pk, False)
    again = owner_client.get(url).content.decode()
    assert key not in again and token.prefix in again
    owner_client.post(reverse("exports:token_revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer(key).get("/api/v1/datasets/").status_code == 401


def test_someone_elses_token_cannot_be_revoked(client, owner, outsider):
    token, _key = api_token_create(user=owner, name="t")
    client.force_login(outsider)
    assert client.post(reverse("exports:token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_create_api_token_command_prints_the_key_once(owner, dataset):
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "olga", "--dataset", "ds", "--days", "7", stdout=out, stderr=err)
    key = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert token.prefix == key[:12] and token.dataset_id == dataset.pk and not token.can_write
    assert "read-only, dataset ds" in err.getvalue()
    assert bearer(key).get(f"/api/v1/datasets/{dataset.pk}/").status_code == 200
