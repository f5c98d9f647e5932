"""examples/finetune.py against the real pull API: a live Django server on PostgreSQL, a Celery worker that
builds the export, a read-only job token. `datasets` loads the files over HTTP with the bearer header
(HEAD for the size and ETag, then GET), the tiny model trains for 3 steps, and only assistant tokens
carry labels. A signed URL loads with no header at all.

    CI=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_pull REDIS_URL=redis://127.0.0.1:6379/8 \\
        python -m pytest tests/integration/test_finetune_pull.py -p no:cacheprovider"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
import urllib.error
import urllib.request

import pytest
from rest_framework.test import APIClient

from annotator.models import Sample
from exports.models import Export
from exports.tokens import api_token_create
from tests.conftest import SampleFactory

datasets = pytest.importorskip("datasets", reason="examples/finetune.py needs Hugging Face `datasets`")
pytest.importorskip("aiohttp", reason="datasets loads http(s) URLs through fsspec's HTTPFileSystem, which needs aiohttp")
pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")

from examples import finetune  # noqa: E402
from tests.exports.test_finetune import plain_tokenizer_dir, tiny_model_dir  # noqa: E402, F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CITIES = ["paris", "rome", "berlin", "madrid", "london", "vienna"]


def _conversation(i: int) -> list[dict]:
    messages = [{"role": "user", "content": f"name city number {i}"}, {"role": "assistant", "content": f"the city is {CITIES[i % 6]}"}]
    if i % 3 == 0:
        messages = [{"role": "system", "content": "be brief"}, *messages,
                    {"role": "user", "content": "and another"}, {"role": "assistant", "content": f"also {CITIES[(i + 1) % 6]}"}]
    return messages


def _wait_built(api: APIClient, url: str, worker, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(url).json()
        if body["status"] in ("succeeded", "failed"):
            assert body["status"] == "succeeded", body["error"]
            return body
        time.sleep(0.1)
    pytest.fail(f"the export was not built in {timeout:.0f} s\nworker log:\n{worker.log_path.read_text()[-4000:]}")


@pytest.fixture(autouse=True)
def close_http_sessions():
    """fsspec keeps its aiohttp sessions (and their keep-alive connections) in cached filesystem instances;
    the live server's handler threads hold a database connection while such a connection is open. Drop
    them after each test so the test database can be dropped at the end."""
    yield
    from fsspec.implementations.http import HTTPFileSystem

    HTTPFileSystem.clear_instance_cache()
    gc.collect()


@pytest.fixture
def built(owner, dataset, celery_worker_process):
    """12 approved conversations (4 with a system turn and two exchanges) and 3 new ones; an export of the
    approved ones with 2 for validation, built by the worker; a read-only job token for the dataset."""
    for i in range(15):
        messages = _conversation(i)
        SampleFactory(dataset=dataset, messages=messages, text="\n".join(m["content"] for m in messages),
                      status=Sample.Status.APPROVED if i < 12 else Sample.Status.NEW, task_type="qa")
    owner_api = APIClient()
    owner_api.force_login(owner)
    asked = owner_api.post(f"/api/v1/datasets/{dataset.pk}/exports/", {"name": "pull", "split": {"validation": 2, "seed": 1}}, format="json")
    assert asked.status_code == 202, asked.content
    manifest = _wait_built(owner_api, asked.json()["url"], celery_worker_process)
    _token, key = api_token_create(user=owner, name="job", dataset=dataset, days=1)
    return {"export": Export.objects.get(pk=asked.json()["id"]), "manifest": manifest, "key": key}


def test_finetune_pulls_the_latest_export_over_http_and_trains(built, dataset, live_server, tiny_model_dir, tmp_path, capsys):  # noqa: F811
    # given a built export and a read-only job token
    export, key = built["export"], built["key"]

    # when examples/finetune.py pulls the latest export from the live server and trains 3 steps
    out = tmp_path / "out"
    code = finetune.main(
        ["--base-url", live_server.url, "--dataset", str(dataset.pk), "--token", key, "--model", str(tiny_model_dir), "--output-dir", str(out),
         "--max-steps", "3", "--batch-size", "2", "--max-length", "64", "--lr", "1e-3", "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip

    # then it read export's 10 + 2 rows through `latest`, trained, and saved a finite loss
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"export {export.pk}: train 10 rows, validation 2 rows" in printed
    assert "train: 10 samples, 0 dropped" in printed
    results = json.loads((out / "train_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and results["train_loss"] > 0
    assert math.isfinite(results["eval_loss"])
    assert (out / "model.safetensors").is_file()


def test_datasets_loads_exactly_the_approved_rows_with_the_header(built, dataset, live_server, tmp_path):
    # given the export, loaded over HTTP by `datasets` with the bearer header
    key, manifest = built["key"], built["manifest"]
    loaded = finetune.load_export(live_server.url, dataset.pk, key, manifest=manifest, cache_dir=tmp_path / "cache")
    approved = {tuple((m["role"], m["content"]) for m in _conversation(i)) for i in range(12)}
    rows = [tuple((m["role"], m["content"]) for m in row["messages"]) for split in ("train", "validation") for row in loaded[split]]
    assert (loaded["train"].num_rows, loaded["validation"].num_rows) == (10, 2)
    assert sorted(rows) == sorted(approved)


@pytest.fixture
def tokenizer(tiny_model_dir):  # noqa: F811
    return finetune.load_tokenizer(tiny_model_dir)


def test_only_assistant_tokens_of_the_pulled_rows_carry_labels(built, dataset, live_server, tmp_path, tokenizer):
    # given the pulled train split
    loaded = finetune.load_export(live_server.url, dataset.pk, built["key"], manifest=built["manifest"], cache_dir=tmp_path / "cache")

    # when it is tokenized as the trainer sees it
    tokenized, dropped = finetune.tokenize_dataset(loaded["train"], tokenizer, max_length=64)

    # then every labelled token is an assistant reply or the end of its turn, and every reply is labelled
    assert dropped == 0 and tokenized.num_rows == 10
    for row, source in zip(tokenized, loaded["train"], strict=True):
        labelled = [label for label in row["labels"] if label != finetune.IGNORE_INDEX]
        expected = []
        for message in source["messages"]:
            if message["role"] == "assistant":
                expected += tokenizer(message["content"], add_special_tokens=False)["input_ids"] + tokenizer.convert_tokens_to_ids(["<|end|>"])
        assert labelled == expected
        assert all(label in (finetune.IGNORE_INDEX, token) for label, token in zip(row["labels"], row["input_ids"], strict=True))
        unlabelled = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label == finetune.IGNORE_INDEX])
        user_text = " ".join(m["content"] for m in source["messages"] if m["role"] != "assistant")
        assert all(word in unlabelled for word in user_text.split())


def test_a_signed_url_loads_with_datasets_and_no_header(built, dataset, live_server, tmp_path):
    # given a signed URL for the train file, asked for over HTTP with the read-only job token
    export, key = built["export"], built["key"]
    path = "data/train.messages.jsonl"
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/datasets/{dataset.pk}/exports/{export.pk}/files/{path}/sign/", data=b'{"expires_in": 600}', method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        url = json.loads(response.read())["url"]
    assert url.startswith(f"{live_server.url}/api/v1/datasets/{dataset.pk}/exports/{export.pk}/files/{path}?expires=")

    # when `datasets` loads it with no header at all
    loaded = datasets.load_dataset("json", data_files=url, cache_dir=str(tmp_path / "signed-cache"))

    # then it has the file's rows, the same as with the header
    with_header = finetune.load_export(live_server.url, dataset.pk, key, manifest=built["manifest"], cache_dir=tmp_path / "cache")
    assert loaded["train"].num_rows == 10
    assert loaded["train"].to_list() == with_header["train"].to_list()

    # and the same URL without its signature is refused
    bare = url.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare, timeout=10)
    assert refused.value.code == 401


def test_the_file_headers_hold_through_a_real_http_server(built, dataset, live_server):
    # given the train file's URL on the live server and its manifest entry
    export, key = built["export"], built["key"]
    entry = next(f for f in built["manifest"]["files"] if f["path"] == "data/train.messages.jsonl")
    url = f"{live_server.url}/api/v1/datasets/{dataset.pk}/exports/{export.pk}/files/{entry['path']}"
    auth = {"Authorization": f"Bearer {key}"}

    def fetch(method="GET", **headers):
        request = urllib.request.Request(url, method=method, headers={**auth, **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    # then HEAD answers the size and ETag without a body, GET the exact bytes, a range its bytes,
    # a matching If-None-Match 304, an unsatisfiable range 416
    status, headers, body = fetch("HEAD")
    assert (status, body) == (200, b"")
    assert (headers["Content-Length"], headers["ETag"], headers["Accept-Ranges"]) == (str(entry["bytes"]), f'"{entry["sha256"]}"', "bytes")
    status, headers, body = fetch()
    assert status == 200 and len(body) == entry["bytes"]
    assert headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert hashlib.sha256(body).hexdigest() == entry["sha256"]
    status, headers, part = fetch(Range="bytes=10-19")
    assert (status, part, headers["Content-Range"]) == (206, body[10:20], f"bytes 10-19/{entry['bytes']}")
    status, headers, nothing = fetch(**{"If-None-Match": f'"{entry["sha256"]}"'})
    assert (status, nothing) == (304, b"")
    status, headers, _ = fetch(Range=f"bytes={entry['bytes']}-")
    assert (status, headers["Content-Range"]) == (416, f"bytes */{entry['bytes']}")
