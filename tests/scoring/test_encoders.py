"""Embedder on the packaged all-MiniLM-L6-v2 against a plain one-text-at-a-time reference; fingerprints;
token batches; missing models. No Django, no network."""

from __future__ import annotations

import hashlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from scoring.encoders import (
    Embedder,
    ModelUnavailable,
    default_embedder_path,
    get_embedder,
    model_fingerprint,
    token_batches,
)

TEXTS = [
    "Hi",
    " ".join(f"This is sentence number {i} of a very long document about gardening." for i in range(40)),  # over 256 tokens
    "请用一句话解释什么是机器学习。",
    "A man is playing a guitar on the street.",
    "",
    "What are the three primary colors? Red, blue and yellow are the traditional answer in art class.",
    "机器学习是人工智能的一个分支，它让计算机从数据中学习规律，而不需要明确的编程。" * 3,
    "ok",
]


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def _reference(texts, max_length=256):
    path = default_embedder_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1)[0].numpy())
    return np.stack(out)


def test_minilm_gives_384_dim_unit_vectors(embedder):
    vectors = embedder.encode(["Hi", "", "机器学习是人工智能的一个分支。", "A man is playing a guitar on the street."])

    assert embedder.dim == 384
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_equals_plain_reference_in_input_order(embedder, monkeypatch):
    reference = _reference(TEXTS)

    monkeypatch.setattr(embedder, "max_tokens_per_batch", 1024)  # the long text padded with 3 others
    batched = embedder.encode(TEXTS)
    monkeypatch.setattr(embedder, "max_tokens_per_batch", 300)  # several batches, the long text alone
    split = embedder.encode(TEXTS)

    np.testing.assert_allclose(batched, reference, atol=1e-5)
    np.testing.assert_allclose(split, reference, atol=1e-5)
    assert len(token_batches([len(x) for x in embedder.tokenizer(TEXTS, truncation=True, max_length=256)["input_ids"]], 300)) > 2


def test_similar_sentences_are_closer(embedder):
    a, b, c = embedder.encode(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."])

    assert float(a @ b) > float(a @ c) + 0.3
    assert float(a @ b) > float(b @ c) + 0.3


def test_info_on_cpu(embedder):
    info = embedder.info()

    assert info["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["path"] == str(default_embedder_path())
    assert (info["device"], info["dtype"], info["dim"], info["max_length"]) == ("cpu", "float32", 384, 256)
    assert [w["file"] for w in info["weights"]] == ["model.safetensors"]


def test_fingerprint_hashes_both_ends_of_large_weights():
    weights = default_embedder_path() / "model.safetensors"
    size = weights.stat().st_size
    assert size > 32 * 1024 * 1024  # so the partial hash is what is tested
    with weights.open("rb") as f:
        head = f.read(16 * 1024 * 1024)
        f.seek(size - 16 * 1024 * 1024)
        tail = f.read()
    per_file = hashlib.sha256(size.to_bytes(8, "little") + head + tail).hexdigest()

    fp = model_fingerprint(default_embedder_path())

    assert fp["weights_sha256"] == hashlib.sha256(f"model.safetensors:{size}:{per_file}\n".encode()).hexdigest()
    assert fp["config_name_or_path"] == "nreimers/MiniLM-L6-H384-uncased"
    assert fp["model_type"] == "bert"


def test_fingerprint_of_hugging_face_snapshot(tmp_path):
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "models--acme--tiny-lm" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"_name_or_path": "acme/tiny-lm", "model_type": "llama"}')
    (snapshot / "model.safetensors").write_bytes(b"weights")

    fp = model_fingerprint(snapshot)

    per_file = hashlib.sha256((7).to_bytes(8, "little") + b"weights").hexdigest()
    assert fp["name"] == "acme/tiny-lm"
    assert fp["revision"] == revision
    assert fp["path"] == str(snapshot.resolve())
    assert fp["weights"] == [{"file": "model.safetensors", "size": 7}]
    assert fp["weights_sha256"] == hashlib.sha256(f"model.safetensors:7:{per_file}\n".encode()).hexdigest()


def test_token_batches_sorted_and_capped_by_padded_tokens():
    assert token_batches([5, 100, 3, 50], 200) == [[1, 3], [0, 2]]
    assert token_batches([500, 10], 100) == [[0], [1]]  # too long for the cap: a batch of its own
    assert token_batches([4, 4, 4], 8) == [[0, 1], [2]]
    assert token_batches([], 100) == []


def test_missing_model_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelUnavailable, match="no such directory") as e:
        Embedder(missing)
    assert str(missing) in str(e.value)
    assert "SFTDESK_EMBEDDER" in str(e.value)

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailable) as e:
        Embedder(tmp_path)
    assert (
        str(e.value)
        == f"embedder not found at {tmp_path.resolve()}: no weights (model.safetensors, pytorch_model.bin or a sharded index with all its shards); set SFTDESK_EMBEDDER to a local model directory"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_without_cuda_is_a_clear_error():
    with pytest.raises(ModelUnavailable, match="device cuda was asked for, but CUDA is not available on this machine"):
        Embedder(device="cuda")


def test_broken_weights_fail_with_model_unavailable(tmp_path):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (tmp_path / name).write_bytes((default_embedder_path() / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")

    with pytest.raises(ModelUnavailable, match=f"embedder at {tmp_path.resolve()} could not be loaded"):
        Embedder(tmp_path)


def test_get_embedder_loads_once(monkeypatch):
    monkeypatch.delenv("SFTDESK_EMBEDDER", raising=False)

    assert get_embedder() is get_embedder(default_embedder_path())
