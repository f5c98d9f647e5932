from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import factory
import pytest
from django.contrib.auth import get_user_model

from annotator.models import Dataset, Membership, Sample
from scoring.metrics.text import content_hash

pytest_plugins = ["tests.integration.worker"]


@pytest.fixture(autouse=True)
def _language_reset():
    """A request in Chinese (LocaleMiddleware) leaves the thread's language active after it: every test
    starts and ends in the default language, so messages checked in English do not depend on order."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"Dataset {n}")
    slug = factory.Sequence(lambda n: f"dataset-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    dataset = factory.SubFactory(DatasetFactory)
    role = Membership.Role.OWNER


def _messages(n):
    return [{"role": "user", "content": f"Question {n}?"}, {"role": "assistant", "content": f"Answer {n}."}]


class SampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sample

    dataset = factory.SubFactory(DatasetFactory)
    external_id = factory.Sequence(str)
    messages = factory.Sequence(_messages)
    text = factory.LazyAttribute(lambda o: "\n".join(m["content"] for m in o.messages))
    content_hash = factory.LazyAttribute(lambda o: content_hash(o.messages))
    language = "en"


@pytest.fixture
def owner(db):
    return UserFactory(username="olga")


@pytest.fixture
def dataset(owner):
    ds = DatasetFactory(slug="ds")
    MembershipFactory(user=owner, dataset=ds, role=Membership.Role.OWNER)
    return ds


@pytest.fixture
def outsider(db):
    return UserFactory(username="mallory")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


# --- services for the integration pass --------------------------------------------------------
# `make test-integration` sets DATABASE_URL (PostgreSQL) and REDIS_URL. A service that is absent
# skips its tests with the reason, and fails the run when CI=true.

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = "/usr/bin/chromium"


_reach_cache: dict[tuple[str, int], bool] = {}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    key = (parsed.hostname or "127.0.0.1", parsed.port or default_port)
    if key not in _reach_cache:
        try:
            with socket.create_connection(key, timeout=2):
                _reach_cache[key] = True
        except OSError:
            _reach_cache[key] = False
    return _reach_cache[key]


def _missing_services(item) -> list[str]:
    missing = []
    needs_services = item.get_closest_marker("integration") is not None
    db_url = os.environ.get("DATABASE_URL", "")
    if needs_services or db_url:
        if not db_url.startswith(("postgres://", "postgresql://")):
            if needs_services:
                missing.append("PostgreSQL (set DATABASE_URL; `make test-integration` does)")
        elif not _reachable(db_url, 5432):
            missing.append(f"PostgreSQL at {urlparse(db_url).hostname}:{urlparse(db_url).port or 5432} is not reachable")
    if needs_services:
        redis_url = os.environ.get("REDIS_URL", "")
        if not redis_url:
            missing.append("Redis (set REDIS_URL; `make test-integration` does)")
        elif not _reachable(redis_url, 6379):
            missing.append(f"Redis at {urlparse(redis_url).hostname}:{urlparse(redis_url).port or 6379} is not reachable")
    if item.get_closest_marker("browser") and not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return missing


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    missing = _missing_services(item)
    if missing:
        reason = "missing: " + "; ".join(missing)
        if IN_CI:
            pytest.fail(f"CI=true, so a missing service fails the run: {reason}", pytrace=False)
        pytest.skip(reason)
