"""The pull API: exports are asked for, listed (cursor pages), read (manifest) and found (`latest`); their
files are served with ETag = sha256, byte ranges, HEAD and immutable caching, 409 while building and 410
when failed; job tokens reach only their dataset, expired or revoked ones 401, tokens in URLs are refused;
signed URLs serve one file without a header until they expire.

Exports here are rows and files made by the test (EXPORT_ROOT is a temporary folder), so the HTTP
behaviour is tested apart from the build; the last tests ask for real exports through the service."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Membership, Sample
from exports import signing, storage
from exports.models import ApiToken, Export, ExportFile
from exports.tokens import api_token_create
from tests.conftest import DatasetFactory, MembershipFactory, SampleFactory, UserFactory

pytestmark = pytest.mark.django_db

TRAIN = b"".join(b'{"messages": [{"role": "user", "content": "q%d"}, {"role": "assistant", "content": "a%d"}]}\n' % (i, i) for i in range(20))
VALIDATION = b'{"messages": [{"role": "user", "content": "v"}, {"role": "assistant", "content": "w"}]}\n'
README = "# Card\n\ncafé ✓\n".encode()
FILES = {
    "data/train.messages.jsonl": ("messages", "train", TRAIN),
    "data/validation.messages.jsonl": ("messages", "validation", VALIDATION),
    "README.md": ("", "", README),
    "export.parquet": ("parquet", "train", b"PAR1\x00\x01binary\xffPAR1"),
    "bundle.tar": ("", "", b"\x00" * 1024),
}
TRAIN_PATH = "data/train.messages.jsonl"


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    return settings.EXPORT_ROOT


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def make_export(dataset, *, status=Export.Status.SUCCEEDED, files=None, name="snap", age_s=0, manifest=None) -> Export:
    created = timezone.now() - timedelta(seconds=age_s)
    finished = status in (Export.Status.SUCCEEDED, Export.Status.FAILED)
    files = FILES if files is None else files
    export = Export.objects.create(
        dataset=dataset, name=name, spec={"name": name}, spec_sha256="a" * 64, status=status, created_at=created,
        finished_at=created + timedelta(seconds=1) if finished else None, error="boom" if status == Export.Status.FAILED else "",
        manifest=manifest if manifest is not None else ({"counts": {"train": 20, "validation": 1}} if status == Export.Status.SUCCEEDED else {}),
        sample_count=21 if status == Export.Status.SUCCEEDED else 0,
        total_bytes=sum(len(b) for _f, _s, b in files.values()) if status == Export.Status.SUCCEEDED else 0,
    )
    if status == Export.Status.SUCCEEDED:
        for path, (fmt, split, body) in files.items():
            disk = storage.export_file_path(export, path)
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.write_bytes(body)
            ExportFile.objects.create(export=export, path=path, format=fmt, split=split, rows=body.count(b"\n"), bytes=len(body), sha256=sha(body))
    return export


def member(dataset, username, role=Membership.Role.REVIEWER):
    user = UserFactory(username=username)
    MembershipFactory(user=user, dataset=dataset, role=role)
    return user


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def bearer(key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def job_token(user, dataset, **kwargs):
    return api_token_create(user=user, name="job", dataset=dataset, **kwargs)


def base(dataset) -> str:
    return f"/api/v1/datasets/{dataset.pk}/exports/"


def file_url(export, path=TRAIN_PATH) -> str:
    return f"{base(export.dataset)}{export.pk}/files/{path}"


@pytest.fixture
def job(owner, dataset):
    _token, key = job_token(owner, dataset)
    return bearer(key)


@pytest.fixture
def export(dataset):
    return make_export(dataset)


# --- manifest and files with a job token ------------------------------------------------------------

def test_a_job_token_reads_the_manifest_with_every_file(job, export, dataset, owner):
    # when a read-only job token reads the export
    response = job.get(f"{base(dataset)}{export.pk}/")

    # then it answers the export, its manifest and its files with their URLs
    assert response.status_code == 200
    data = response.json()
    assert {k: data[k] for k in ("id", "dataset", "name", "status", "spec_sha256", "sample_count", "error", "created_by")} == {
        "id": export.pk, "dataset": dataset.pk, "name": "snap", "status": "succeeded", "spec_sha256": "a" * 64, "sample_count": 21,
        "error": "", "created_by": None,
    }
    assert data["total_bytes"] == sum(len(b) for _f, _s, b in FILES.values())
    assert data["manifest"] == {"counts": {"train": 20, "validation": 1}}
    assert data["spec"] == {"name": "snap"}
    assert [f["path"] for f in data["files"]] == sorted(FILES)
    train = next(f for f in data["files"] if f["path"] == TRAIN_PATH)
    assert train == {"path": TRAIN_PATH, "format": "messages", "split": "train", "rows": 20, "bytes": len(TRAIN), "sha256": sha(TRAIN),
                     "url": file_url(export)}


def test_a_file_is_served_whole_with_etag_length_ranges_and_immutable_caching(job, export):
    response = job.get(file_url(export))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == TRAIN
    assert response["ETag"] == f'"{sha(TRAIN)}"'
    assert response["Content-Length"] == str(len(TRAIN))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="train.messages.jsonl"'


@pytest.mark.parametrize(("path", "content_type"), [
    ("data/validation.messages.jsonl", "application/x-ndjson"),
    ("README.md", "text/markdown; charset=utf-8"),
    ("export.parquet", "application/vnd.apache.parquet"),
    ("bundle.tar", "application/x-tar"),
])
def test_each_file_has_its_content_type_and_exact_bytes(job, export, path, content_type):
    response = job.get(file_url(export, path))
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert b"".join(response.streaming_content) == FILES[path][2]
    assert response["ETag"] == f'"{sha(FILES[path][2])}"'


def test_head_answers_the_headers_without_a_body(job, export):
    response = job.head(file_url(export))
    assert response.status_code == 200
    assert response.content == b""
    assert (response["Content-Length"], response["ETag"], response["Accept-Ranges"]) == (str(len(TRAIN)), f'"{sha(TRAIN)}"', "bytes")
    assert response["Content-Type"] == "application/x-ndjson"


@pytest.mark.parametrize("if_none_match", [f'"{sha(TRAIN)}"', f'W/"{sha(TRAIN)}"', f'"other", "{sha(TRAIN)}"', "*"])
def test_if_none_match_with_the_etag_answers_304_without_a_body(job, export, if_none_match):
    response = job.get(file_url(export), HTTP_IF_NONE_MATCH=if_none_match)
    assert response.status_code == 304
    assert response.content == b""
    assert response["Content-Length"] == str(len(TRAIN))  # the size a 200 would send, never 0
    assert response["ETag"] == f'"{sha(TRAIN)}"'
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"


def test_if_none_match_with_another_etag_sends_the_file(job, export):
    response = job.get(file_url(export), HTTP_IF_NONE_MATCH=f'"{sha(b"old")}"')
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == TRAIN


@pytest.mark.parametrize(("header", "first", "last"), [
    ("bytes=0-0", 0, 0),
    ("bytes=5-14", 5, 14),
    ("bytes=100-", 100, len(TRAIN) - 1),
    ("bytes=-7", len(TRAIN) - 7, len(TRAIN) - 1),
    (f"bytes=10-{len(TRAIN) + 500}", 10, len(TRAIN) - 1),  # an end past the file is cut to it
    (f"bytes=-{len(TRAIN) + 500}", 0, len(TRAIN) - 1),
])
def test_a_byte_range_answers_206_with_exactly_those_bytes(job, export, header, first, last):
    response = job.get(file_url(export), HTTP_RANGE=header)
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == TRAIN[first:last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(TRAIN)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["ETag"] == f'"{sha(TRAIN)}"'


def test_a_range_on_head_answers_206_without_a_body(job, export):
    response = job.head(file_url(export), HTTP_RANGE="bytes=5-14")
    assert (response.status_code, response.content) == (206, b"")
    assert (response["Content-Range"], response["Content-Length"]) == (f"bytes 5-14/{len(TRAIN)}", "10")


@pytest.mark.parametrize("header", [f"bytes={len(TRAIN)}-", f"bytes={len(TRAIN) + 10}-{len(TRAIN) + 20}", "bytes=-0"])
def test_an_unsatisfiable_range_answers_416_with_the_size(job, export, header):
    response = job.get(file_url(export), HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(TRAIN)}"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-2", "bytes=x-"])
def test_several_or_malformed_ranges_are_ignored_and_the_whole_file_sent(job, export, header):
    response = job.get(file_url(export), HTTP_RANGE=header)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == TRAIN


def test_if_range_with_another_etag_sends_the_whole_file_and_with_this_one_the_range(job, export):
    stale = job.get(file_url(export), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"stale"')
    assert stale.status_code == 200 and b"".join(stale.streaming_content) == TRAIN
    fresh = job.get(file_url(export), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{sha(TRAIN)}"')
    assert fresh.status_code == 206 and b"".join(fresh.streaming_content) == TRAIN[:10]


def test_a_strict_accept_header_still_gets_the_file(job, export):
    response = job.get(file_url(export), HTTP_ACCEPT="application/octet-stream")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == TRAIN


@pytest.mark.parametrize("status", [Export.Status.QUEUED, Export.Status.BUILDING])
def test_files_answer_409_while_the_export_is_built_and_the_manifest_says_so(job, dataset, status):
    # given an export still being built, whose folder is half-written
    export = make_export(dataset, status=status)
    partial = storage.export_file_path(export, TRAIN_PATH)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")

    # then its files answer 409 with the status, and the manifest 200 with no files
    response = job.get(file_url(export))
    assert response.status_code == 409
    assert response.json() == {"code": "export_not_ready", "status": status.value,
                               "detail": "The export is still being built: try again when it has finished."}
    assert response["Retry-After"] == "5"
    assert job.head(file_url(export)).status_code == 409
    manifest = job.get(f"{base(dataset)}{export.pk}/")
    assert manifest.status_code == 200
    assert (manifest.json()["status"], manifest.json()["files"]) == (status.value, [])


def test_files_of_a_failed_export_answer_410(job, dataset):
    export = make_export(dataset, status=Export.Status.FAILED)
    response = job.get(file_url(export))
    assert response.status_code == 410
    assert response.json()["code"] == "export_failed"
    detail = job.get(f"{base(dataset)}{export.pk}/").json()
    assert (detail["status"], detail["error"], detail["files"]) == ("failed", "boom", [])


@pytest.mark.parametrize("path", ["data/nope.jsonl", "data", "../../etc/passwd", "data/../README.md", "%2e%2e/%2e%2e/secret"])
def test_unknown_paths_answer_404_and_nothing_outside_the_export_is_read(job, export, export_root, path):
    (export_root / "secret").write_bytes(b"secret")
    response = job.get(file_url(export, path))
    assert response.status_code == 404
    assert b"secret" not in response.content


def test_a_listed_path_that_leads_outside_the_export_is_not_served(job, export, export_root):
    # given a file row whose path would leave the folder (no build writes one; the server checks anyway)
    (export_root / str(export.dataset_id) / "outside.jsonl").write_bytes(b"outside")
    ExportFile.objects.create(export=export, path="../outside.jsonl", format="messages", split="train", rows=1, bytes=7, sha256=sha(b"outside"))
    assert job.get(file_url(export, "../outside.jsonl")).status_code == 404


def test_a_listed_file_missing_on_disk_answers_404(job, export):
    storage.export_file_path(export, TRAIN_PATH).unlink()
    response = job.get(file_url(export))
    assert (response.status_code, response.json()["code"]) == (404, "file_missing")


def test_an_export_of_another_dataset_is_not_found_through_this_one(job, dataset, owner):
    other = DatasetFactory(slug="other")
    MembershipFactory(user=owner, dataset=other)
    foreign = make_export(other)
    assert job.get(f"{base(dataset)}{foreign.pk}/").status_code == 404
    assert job.get(f"{base(dataset)}{foreign.pk}/files/{TRAIN_PATH}").status_code == 404


# --- latest -----------------------------------------------------------------------------------------

def test_latest_redirects_to_the_newest_succeeded_export(job, dataset):
    # given succeeded exports, and newer ones that failed or are still building
    make_export(dataset, name="old", age_s=300)
    newest_ok = make_export(dataset, name="ok", age_s=200)
    make_export(dataset, name="failed", status=Export.Status.FAILED, age_s=100)
    make_export(dataset, name="building", status=Export.Status.BUILDING, age_s=0)

    response = job.get(f"{base(dataset)}latest/")

    assert response.status_code == 302
    assert response["Location"] == f"{base(dataset)}{newest_ok.pk}/"
    followed = job.get(response["Location"])
    assert (followed.json()["id"], followed.json()["name"]) == (newest_ok.pk, "ok")


def test_latest_answers_404_when_nothing_has_succeeded(job, dataset):
    make_export(dataset, status=Export.Status.BUILDING)
    response = job.get(f"{base(dataset)}latest/")
    assert (response.status_code, response.json()["code"]) == (404, "no_export")


# --- the token sweep --------------------------------------------------------------------------------

def _reads(dataset, export):
    return [base(dataset), f"{base(dataset)}{export.pk}/", f"{base(dataset)}latest/", file_url(export)]


def test_another_datasets_token_gets_404_everywhere(owner, dataset, export):
    other = DatasetFactory(slug="other")
    MembershipFactory(user=owner, dataset=other)
    _t, key = job_token(owner, other, can_write=True)
    client = bearer(key)
    for url in _reads(dataset, export):
        assert client.get(url).status_code == 404, url
    assert client.head(file_url(export)).status_code == 404
    assert client.post(base(dataset), {"name": "x"}, format="json").status_code == 404
    assert client.post(f"{file_url(export)}/sign/", {}, format="json").status_code == 404
    assert client.post(f"{base(dataset)}preview/", {"name": "x"}, format="json").status_code == 404


def test_revoked_and_expired_tokens_get_401(owner, dataset, export):
    revoked, revoked_key = job_token(owner, dataset)
    expired, expired_key = job_token(owner, dataset)
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for key, detail in ((revoked_key, "This token was revoked."), (expired_key, "This token has expired.")):
        client = bearer(key)
        for url in _reads(dataset, export):
            response = client.get(url)
            assert (response.status_code, response.json()["detail"]) == (401, detail), url
            assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert client.post(f"{file_url(export)}/sign/", {}, format="json").status_code == 401


@pytest.mark.parametrize("name", ["token", "access_token", "api_key", "key"])
def test_a_token_in_the_query_string_is_refused(owner, dataset, export, name):
    _t, key = job_token(owner, dataset)
    for url in _reads(dataset, export):
        response = APIClient().get(url, {name: key})
        assert response.status_code == 401, url
        assert "Tokens in the URL are refused" in response.json()["detail"]


def test_no_credentials_get_401(dataset, export):
    for url in _reads(dataset, export):
        assert APIClient().get(url).status_code == 401, url


def test_a_read_only_token_cannot_ask_for_an_export(owner, dataset):
    _t, key = job_token(owner, dataset)
    response = bearer(key).post(base(dataset), {"name": "x"}, format="json")
    assert (response.status_code, response.json()["detail"]) == (403, "This token is read-only.")
    assert Export.objects.count() == 0


def test_annotators_and_outsiders_get_404_everywhere(dataset, export, outsider):
    annotator = member(dataset, "anna", Membership.Role.ANNOTATOR)
    for user in (annotator, outsider):
        client = session(user)
        for url in _reads(dataset, export):
            assert client.get(url).status_code == 404, (user, url)
        assert client.post(base(dataset), {"name": "x"}, format="json").status_code == 404
        assert client.post(f"{file_url(export)}/sign/", {}, format="json").status_code == 404
    _t, key = job_token(annotator, dataset)  # an annotator's own job token reads nothing either
    assert bearer(key).get(file_url(export)).status_code == 404
    assert Export.objects.count() == 1


def test_a_reviewer_reads_exports_with_a_session(dataset, export):
    client = session(member(dataset, "rita"))
    assert client.get(f"{base(dataset)}{export.pk}/").status_code == 200
    response = client.get(file_url(export))
    assert response.status_code == 200 and b"".join(response.streaming_content) == TRAIN


# --- signed URLs ------------------------------------------------------------------------------------

def _sign(client, export, path=TRAIN_PATH, **body):
    return client.post(f"{file_url(export, path)}/sign/", body, format="json")


def test_a_signed_url_serves_its_file_without_a_header(job, export):
    # when a read-only job token asks for a signed URL
    before = int(time.time())
    response = _sign(job, export)

    # then the URL names the file with expires, signer and signature, for an hour
    assert response.status_code == 200
    data = response.json()
    url = urlsplit(data["url"])
    assert (url.scheme, url.netloc, url.path) == ("http", "testserver", file_url(export))
    query = parse_qs(url.query)
    assert sorted(query) == ["expires", "signature", "signer"]
    assert before + 3600 <= int(query["expires"][0]) <= int(time.time()) + 3600
    assert data["expires_at"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(int(query["expires"][0]))))

    # and anyone with the URL reads the file, whole, by range or by HEAD, with no header at all
    anonymous = APIClient()
    got = anonymous.get(f"{url.path}?{url.query}")
    assert got.status_code == 200 and b"".join(got.streaming_content) == TRAIN
    assert got["ETag"] == f'"{sha(TRAIN)}"'
    part = anonymous.get(f"{url.path}?{url.query}", HTTP_RANGE="bytes=0-9")
    assert part.status_code == 206 and b"".join(part.streaming_content) == TRAIN[:10]
    assert anonymous.head(f"{url.path}?{url.query}").status_code == 200


def test_a_signed_url_lives_as_long_as_asked_up_to_a_day(job, export):
    short = _sign(job, export, expires_in=60).json()
    assert int(parse_qs(urlsplit(short["url"]).query)["expires"][0]) <= int(time.time()) + 60
    for wrong in (59, 86401, "soon"):
        response = _sign(job, export, expires_in=wrong)
        assert response.status_code == 400
        assert list(response.json()) == ["expires_in"]


def _signed_query(export, *, path=TRAIN_PATH, signer, seconds=3600, now=None):
    params, _expires = signing.sign(dataset_id=export.dataset_id, export_id=export.pk, path=path, signer_id=signer.pk,
                                    seconds=seconds, now=now)
    return params


def test_an_expired_signed_url_is_refused(export, owner):
    params = _signed_query(export, signer=owner, seconds=60, now=time.time() - 61)
    response = APIClient().get(file_url(export), params)
    assert (response.status_code, response.json()["code"]) == (403, "signature_expired")


@pytest.mark.parametrize("change", ["signature", "expires", "signer", "path", "export", "dataset", "drop"])
def test_a_tampered_or_misused_signed_url_is_refused(export, owner, dataset, change):
    # given a valid signature for the train file
    params = _signed_query(export, signer=owner)
    url = file_url(export)
    other_signer = member(dataset, "rita")
    other_export = make_export(dataset, name="other")
    if change == "signature":
        params["signature"] = params["signature"][:-1] + ("0" if params["signature"][-1] != "0" else "1")
    elif change == "expires":
        params["expires"] = str(int(params["expires"]) + 3600)
    elif change == "signer":
        params["signer"] = str(other_signer.pk)
    elif change == "path":
        url = file_url(export, "data/validation.messages.jsonl")
    elif change == "export":
        url = file_url(other_export)
    elif change == "dataset":
        other = DatasetFactory(slug="other")
        MembershipFactory(user=owner, dataset=other)
        foreign = make_export(other)
        url = f"/api/v1/datasets/{other.pk}/exports/{export.pk}/files/{TRAIN_PATH}"
        assert foreign.pk != export.pk
    elif change == "drop":
        del params["signature"]

    # when it is used for something else, or changed
    response = APIClient().get(url, params)

    # then it is refused, and nothing of the file is sent
    assert (response.status_code, response.json()["code"]) == (403, "signature_invalid")
    assert b"q0" not in response.content


def test_a_signed_url_stops_working_when_its_signer_loses_access(export, dataset):
    rita = member(dataset, "rita")
    params = _signed_query(export, signer=rita)
    assert APIClient().get(file_url(export), params).status_code == 200
    Membership.objects.filter(user=rita).update(role=Membership.Role.ANNOTATOR)
    response = APIClient().get(file_url(export), params)
    assert (response.status_code, response.json()["code"]) == (403, "signature_invalid")


def test_signing_needs_a_finished_export_and_a_listed_file(job, dataset, export):
    building = make_export(dataset, status=Export.Status.BUILDING)
    assert _sign(job, building).status_code == 409
    failed = make_export(dataset, status=Export.Status.FAILED)
    assert _sign(job, failed).status_code == 410
    assert _sign(job, export, path="data/nope.jsonl").status_code == 404
    assert APIClient().post(f"{file_url(export)}/sign/", {}, format="json").status_code == 401


def test_a_signed_url_of_an_export_that_is_no_longer_ready_answers_its_status(export, owner):
    params = _signed_query(export, signer=owner)
    Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED)
    assert APIClient().get(file_url(export), params).status_code == 410


def test_the_signed_parameters_are_not_names_refused_as_tokens():
    from exports.auth import QUERY_KEYS

    assert not set(signing.PARAMS) & set(QUERY_KEYS)


# --- the list ---------------------------------------------------------------------------------------

def test_the_list_pages_by_cursor_newest_first_in_bounded_queries(job, dataset, django_assert_max_num_queries):
    # given 25 exports
    made = [make_export(dataset, name=f"e{i}", age_s=1000 - i, files={}) for i in range(25)]
    newest_first = [e.pk for e in reversed(made)]

    # when they are read 10 at a time
    seen, url, pages = [], f"{base(dataset)}?page_size=10", 0
    while url:
        with django_assert_max_num_queries(5):
            response = job.get(url)
        assert response.status_code == 200
        body = response.json()
        seen += [row["id"] for row in body["results"]]
        url, pages = body["next"], pages + 1

    # then every export came once, newest first, in 3 pages
    assert (seen, pages) == (newest_first, 3)
    first = job.get(base(dataset)).json()["results"][0]
    assert set(first) == {"id", "name", "status", "created_at", "finished_at", "sample_count", "total_bytes", "url"}
    assert (first["id"], first["name"], first["url"]) == (made[-1].pk, "e24", f"{base(dataset)}{made[-1].pk}/")


def test_the_list_filters_by_status(job, dataset):
    make_export(dataset, name="ok", files={})
    make_export(dataset, name="bad", status=Export.Status.FAILED)
    assert [r["name"] for r in job.get(base(dataset), {"status": "failed"}).json()["results"]] == ["bad"]
    assert job.get(base(dataset), {"status": "nope"}).status_code == 400


def test_reads_run_a_bounded_number_of_queries(job, dataset, export, django_assert_max_num_queries):
    job.get(base(dataset))  # the token's last use is recorded once a minute: not in the counts below
    with django_assert_max_num_queries(4):
        assert job.get(f"{base(dataset)}{export.pk}/").status_code == 200
    with django_assert_max_num_queries(4):
        response = job.get(file_url(export))
        assert response.status_code == 200
    response.close()
    with django_assert_max_num_queries(3):
        assert job.get(f"{base(dataset)}latest/").status_code == 302
    params = _signed_query(export, signer=export.dataset.memberships.get().user)
    with django_assert_max_num_queries(3):
        assert APIClient().get(file_url(export), params).status_code == 200


# --- asking for an export ---------------------------------------------------------------------------

def _approved(dataset, n):
    return [SampleFactory(dataset=dataset, status=Sample.Status.APPROVED, task_type="qa") for _ in range(n)]


def test_an_owner_asks_for_an_export_and_gets_202(owner, dataset, django_capture_on_commit_callbacks):
    _approved(dataset, 6)
    client = session(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(base(dataset), {"name": "first", "split": {"validation": 2}}, format="json")
    assert response.status_code == 202
    export = Export.objects.get()
    assert response.json() == {"id": export.pk, "status": "queued", "url": f"{base(dataset)}{export.pk}/"}
    assert response["Location"] == f"{base(dataset)}{export.pk}/"
    assert (export.name, export.created_by, export.dataset) == ("first", owner, dataset)

    # built at once here (Celery runs eagerly in tests): the manifest lists the files, which download
    export.refresh_from_db()
    assert export.status == Export.Status.SUCCEEDED, export.error
    detail = client.get(f"{base(dataset)}{export.pk}/").json()
    assert detail["sample_count"] == 6
    messages = {f["split"]: f for f in detail["files"] if f["format"] == "messages"}
    assert (messages["train"]["rows"], messages["validation"]["rows"]) == (4, 2)
    got = client.get(messages["train"]["url"])
    body = b"".join(got.streaming_content)
    assert (len(body), hashlib.sha256(body).hexdigest()) == (messages["train"]["bytes"], messages["train"]["sha256"])
    assert client.get(f"{base(dataset)}latest/")["Location"] == f"{base(dataset)}{export.pk}/"


def test_a_write_token_and_a_reviewer_may_ask_for_exports(owner, dataset, django_capture_on_commit_callbacks):
    _approved(dataset, 2)
    _t, key = job_token(owner, dataset, can_write=True)
    with django_capture_on_commit_callbacks(execute=False):
        assert bearer(key).post(base(dataset), {"name": "by-token"}, format="json").status_code == 202
        assert session(member(dataset, "rita")).post(base(dataset), {"name": "by-reviewer"}, format="json").status_code == 202
    assert sorted(Export.objects.values_list("name", flat=True)) == ["by-reviewer", "by-token"]


def test_an_invalid_spec_answers_400_with_every_wrong_field(owner, dataset):
    response = session(owner).post(base(dataset), {"name": "bad name!", "balance": {"mode": "cap"}, "size": 0}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_spec"
    assert set(body["errors"]) == {"name", "balance.by", "balance.cap", "size"}
    assert session(owner).post(base(dataset), [1, 2], format="json").json() == {
        "code": "invalid_spec", "detail": "The export spec is not valid.", "errors": {"spec": "must be an object"}}
    assert Export.objects.count() == 0


def test_a_preview_builds_nothing_and_a_read_only_token_may_ask(owner, dataset, job):
    _approved(dataset, 5)
    response = job.post(f"{base(dataset)}preview/", {"name": "p"}, format="json")
    assert response.status_code == 200
    assert Export.objects.count() == 0
    bad = job.post(f"{base(dataset)}preview/", {"name": "p", "size": -1}, format="json")
    assert (bad.status_code, bad.json()["code"], list(bad.json()["errors"])) == (400, "invalid_spec", ["size"])


def test_a_shrink_that_a_stratum_without_samples_would_empty_answers_400_naming_it(owner, dataset, export_root,
                                                                                 django_capture_on_commit_callbacks):
    # given 5 qa samples and a shrink spec asking for 3 of "math", which has none
    _approved(dataset, 5)
    spec = {"name": "s", "balance": {"by": ["task_type"], "mode": "counts", "counts": {"qa": 4, "math": 3}, "short": "shrink"}}
    expected = {"code": "invalid_spec", "detail": "The export spec is not valid.", "errors": {
        'balance.counts["math"]': "stratum math has no samples after the filters, so shrink would select nothing: "
                                  "set its target to 0, remove it, or use take_all"}}
    client = session(owner)
    # when it is asked for, and previewed
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        created = client.post(base(dataset), spec, format="json")
    preview = client.post(f"{base(dataset)}preview/", spec, format="json")
    # then both answer 400 with the stratum's path and the message, and nothing was made
    assert (created.status_code, created.json()) == (400, expected)
    assert (preview.status_code, preview.json()) == (400, expected)
    assert callbacks == [] and Export.objects.count() == 0 and not export_root.exists()


# --- the schema -------------------------------------------------------------------------------------

def test_the_schema_lists_every_export_operation(owner_client):
    schema = owner_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    prefix = "/api/v1/datasets/{dataset_id}/exports/"
    assert set(paths[prefix]) >= {"get", "post"}
    assert "post" in paths[prefix + "preview/"]
    assert "get" in paths[prefix + "latest/"]
    assert "get" in paths[prefix + "{export_id}/"]
    assert "post" in paths[prefix + "{export_id}/files/{file_path}/sign/"]
    file_op = paths[prefix + "{export_id}/files/{file_path}"]["get"]
    assert {"200", "206", "304", "404", "409", "410", "416"} <= set(file_op["responses"])
    assert {"Range", "If-None-Match", "expires", "signature"} <= {p["name"] for p in file_op["parameters"]}
